/*
 * restore-child.h - the restored process's own work while it is still a
 * copy of lazarus: fds, session, signal handlers, fs, then the jump into
 * the restorer blob.
 */
#ifndef LZ_RESTORE_CHILD_H
#define LZ_RESTORE_CHILD_H

#include <sys/types.h>

#include "restore-images.h"
#include "uffd.h"

/*
 * -d: the process is cloned by a helper that waits on release_fd. Once the
 * blob is past every step that can fail, it writes a byte there; the helper
 * exits (once lazarus holds a pidfd of the process, restore-proc.c) and the
 * process is orphaned. Until then a failing process is the
 * helper's child, reaped by it, not a stray zombie.
 */
struct rst_detach {
	pid_t helper;
	int release_fd;
};

/*
 * Lazy mode: a userfaultfd binds to the mm of the process that opens it, so
 * the restored process opens its own, tells the parent its number
 * (LZ_MSG_UFFD; the parent takes a copy with pidfd_getfd and hands it to the
 * lazy-pages daemon) and waits for one byte on the go pipe before the blob
 * registers anything. EOF there means the daemon did not take it.
 */
struct rst_lazy {
	struct uffd_kinfo ki; /* probed once by the parent */
};

/*
 * The pipes of one process of the tree, all made by lazarus before the root
 * is created (restore-proc.c): every process inherits every pipe, keeps
 * its own child ends and closes the rest once its children exist.
 */
struct rst_chan {
	int status_rd, status_wr; /* status pipe: the process writes, lazarus reads */
	int go_rd, go_wr;	  /* go pipe: lazarus writes, the process reads */
};

/*
 * Records of a process's lazarus code besides the blob's (enum
 * lz_rst_msg_type in plugin/restorer.h, which stays below these), on its
 * own status pipe:
 *  RST_MSG_CHILD     it created a child: arg = a pidfd of it (the sender's
 *                    fd number, for pidfd_getfd), addr = the child's pid;
 *  RST_MSG_CHILDREN  every child reported; it waits for a byte on its go
 *                    pipe (lazarus holds the pidfds) before it goes on;
 *  RST_MSG_ZOMBIE    a zombie of the dump, set up: it exits now with its
 *                    dumped status.
 */
#define RST_MSG_CHILD 64
#define RST_MSG_CHILDREN 65
#define RST_MSG_ZOMBIE 66

/*
 * Never returns: it becomes the target (rt_sigreturn in the blob) or
 * reports a failure on its status pipe and exits. First it creates its
 * children, each with its pid (clone3 set_tid), which run rst_child_main()
 * for their own task; a zombie of the dump only sets up its session and
 * group and exits with its dumped status. chans holds the pipes of every
 * task (index as in im->tasks). detach is NULL without -d (and for every
 * process but the root), lazy NULL in eager mode.
 */
__attribute__((noreturn)) void rst_child_main(const struct rst_images *im,
					      const struct rst_task *t,
					      const struct rst_chan *chans,
					      const struct rst_detach *detach,
					      const struct rst_lazy *lazy);

#endif
