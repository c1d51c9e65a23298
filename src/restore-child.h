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
 * Never returns: it becomes the target (rt_sigreturn in the blob) or
 * reports a failure on status_fd and exits. go_fd is the read end of the go
 * pipe: the parent writes one byte when the process may go on (lazy mode:
 * after the uffd handover; always: once it traces the blob after "OK").
 * detach is NULL without -d, lazy NULL in eager mode.
 */
__attribute__((noreturn)) void rst_child_main(const struct rst_images *im,
					      const struct rst_task *t, int status_fd,
					      int go_fd, const struct rst_detach *detach,
					      const struct rst_lazy *lazy);

#endif
