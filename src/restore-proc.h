/*
 * restore-proc.h - create the restored process with its pid, follow it
 * through the status pipe until its blob says "OK" (or fails), then take
 * the blob away with ptrace and let it resume.
 */
#ifndef LZ_RESTORE_PROC_H
#define LZ_RESTORE_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "restore-child.h"
#include "restore-images.h"
#include "restorer.h"

struct rst_proc {
	const struct rst_images *im;
	const struct rst_task *t; /* what it is restored from */
	pid_t pid;	    /* the restored process */
	int pidfd;	    /* it, once known to be ours (-d: taken while the helper is its parent); -1 */
	pid_t helper;	    /* -d: clones it, exits when it is released and we let it (hold_wr) */
	int hold_wr;	    /* -d: closed once we hold a pidfd of the process; -1 */
	bool detach;	    /* -d: it is not our child */
	int status_rd;	    /* read end of the status pipe */
	uint64_t t_clone;   /* CLOCK_MONOTONIC ns right before clone3 */
	struct lz_rst_msg ok; /* the blob's OK record, with its timestamps */
	unsigned nr_warnings;
	struct rst_lazy lazy; /* lazy mode: what the child gets */
	bool lazy_on;
	int go_rd;	      /* the child's end of the go pipe (closed here once created) */
	int go_wr;	      /* write end of the go pipe: lazy handover, then the finish */
	uint64_t area;	      /* from "OK": the bootstrap area left to unmap */
	uint64_t area_len;
	unsigned nr_stops;    /* ptrace stops on the way out of the blob */
};

/*
 * Lazy mode: called when the process announced its userfaultfd (fd number
 * in the process, and the features it has). Hand it to the daemon; 0 lets
 * the process go on, -errno (already logged) fails the restore.
 */
typedef int (*rst_uffd_cb)(void *ctx, struct rst_proc *p, int fd, uint64_t features);

/* Default bound on a restored process that gives no sign of progress. */
#define RST_IDLE_TIMEOUT_S 60
/* Test-only override, in seconds (Documentation/testing.md). */
#define RST_IDLE_TIMEOUT_ENV "LAZARUS_TEST_RESTORE_TIMEOUT"

uint64_t rst_now_ns(void);
/* 0 when pid is free (after waiting a few seconds for a zombie); else logs, -EEXIST. */
int rst_pid_wait_free(pid_t pid);

/*
 * Create the process with the dumped pid; it becomes the target in
 * rst_child_main(). Without detach it is our child; with detach a helper
 * creates it and exits, so it is reparented like an orphan. Logs once.
 */
int rst_proc_create(struct rst_proc *p, const struct rst_images *im, const struct rst_task *t,
		    bool detach,
		    const struct uffd_kinfo *lazy);
/*
 * Wait for "OK" on the status pipe. Logs warnings, and the failure once.
 * On success the process waits for rst_proc_finish(). The wait is bounded:
 * when the process neither says anything nor uses any CPU time nor reads
 * anything for RST_IDLE_TIMEOUT_S seconds, it is killed and the restore
 * fails (-ETIMEDOUT). A big eager restore reads and so makes progress all
 * along; only a process stuck for good is given up on.
 */
int rst_proc_wait_ready(struct rst_proc *p, rst_uffd_cb on_uffd, void *ctx);
/*
 * Let the process leave the blob under ptrace, unmap the bootstrap area
 * once rt_sigreturn is done, detach: it runs on exactly as dumped. On
 * failure it is killed (and reaped unless -d); logs once.
 */
int rst_proc_finish(struct rst_proc *p);
/*
 * A restore that failed after rst_proc_create: kill the process if it is
 * still there and ours (by pidfd), reap it and the -d helper. Idempotent;
 * safe on a struct that rst_proc_create never filled (pid 0).
 */
void rst_proc_abort(struct rst_proc *p);
/* Close what rst_proc still holds (the pidfd); the process is left alone. */
void rst_proc_release(struct rst_proc *p);
/* Without detach: wait for the restored process to exit; its wait status. */
int rst_proc_wait_exit(struct rst_proc *p, int *status);

/* Write one text record on a status pipe (used by the child and the helper). */
void rst_msg_text(int fd, int type, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
