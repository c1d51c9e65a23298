/*
 * restore-fds.h - file descriptors in the process being restored: lazarus's
 * own service fds moved out of the way, and the target's fd table.
 */
#ifndef LZ_RESTORE_FDS_H
#define LZ_RESTORE_FDS_H

#include <stddef.h>
#include <sys/types.h>

#include "fd-kind.h"
#include "restore-images.h"

/* The fds restore itself needs until the blob is done with them. */
struct rst_svc {
	int status_fd; /* pipe to the lazarus parent */
	int release_fd; /* -d: pipe to the helper that cloned us; -1 */
	int go_fd;     /* the parent's go pipe (lazy handover, finish) */
	int uffd;      /* lazy: our userfaultfd; -1 */
	int log_fd;    /* where this process logs (a copy of lazarus's) */
	int pages_fd;  /* pages-<pid>.img */
	int exe_fd;    /* the dumped executable, for PR_SET_MM_MAP */
	int *vma_fds;  /* per mm VMA: its file, -1 if anonymous */
	int *all;      /* every fd above, for moving and closing */
	unsigned nr_all;
	int lowest;    /* after rst_svc_move: the lowest service fd */
	struct lz_blob_lock *locks; /* POSIX locks, taken by the blob after closing these */
	unsigned nr_locks;
};

/* Open the pages file, the executable and every mapped file (at any fd). */
/* The fds the service set starts with, opened elsewhere; -1 when unused. */
struct rst_svc_in {
	const struct rst_images *im; /* its shared memory objects (restore-shmem.h) */
	int status_fd;
	int release_fd;
	int go_fd;
	int uffd;
};

int rst_svc_open(struct rst_svc *s, const struct rst_task *rt, const struct rst_svc_in *in,
		 char *why, size_t len);
/*
 * Move every service fd to the top of RLIMIT_NOFILE, above every fd the
 * target uses and above the store FST, and close everything else but the
 * store, lazarus's stdio included.
 */
int rst_svc_move(struct rst_svc *s, const struct rst_task *rt, const struct rst_fstore *fst,
		 char *why, size_t len);

/*
 * In lazarus, with every image verified, before the tree is created: open
 * every file description of files.img through its kind into ST (fd-kind.h).
 * Logs once. rst_fstore_fini() in every case.
 */
int rst_fstore_open(const struct rst_images *im, struct rst_fstore *st);
/* Close the store's fds (it stays usable for get: it is empty). */
void rst_fstore_close(struct rst_fstore *st);
void rst_fstore_fini(struct rst_fstore *st);

/*
 * In the restored process, after rst_svc_move: dup each fd of RT from the
 * store ST at its number with its fd flags, close the store, then run each
 * fd's kind's post(). The POSIX locks of RT go to S->locks for the blob.
 */
int rst_fds_install(const struct rst_images *im, const struct rst_task *rt,
		    struct rst_fstore *st, struct rst_svc *s, char *why, size_t len);

/*
 * fd-reg.c: a /proc file of RT's own or of the ancestor it inherited it
 * from (reg_file_entry proc_self), opened in RT under that process's
 * restored pid into ST; rst_fds_install calls it.
 */
int reg_open_proc_self(const FileEntry *e, const struct rst_images *im,
		       const struct rst_task *rt, struct rst_fstore *st, char *why, size_t len);

/*
 * open() that cannot block on a FIFO or a device waiting for a peer, and
 * fails with -EINVAL (WHAT says why) unless the file is of type WANT.
 * O_CLOEXEC always; O_NONBLOCK as FLAGS say.
 */
int rst_open_typed(const char *path, int flags, mode_t want, char *what, size_t len);

/* "regular file", "FIFO", ...: the S_IFMT part of MODE in words. */
const char *rst_file_type_name(mode_t mode);

#endif
