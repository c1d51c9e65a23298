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
	size_t idx;	    /* t's index in im->tasks (and of this in the procs array) */
	pid_t pid;	    /* the restored process, its pid here (known once created; --pidns:
			       once we hold its pidfd, 0 until then) */
	int pidfd;	    /* it, once known to be ours (-d: taken while the helper is its parent;
			       a child: copied from its parent's CLONE_PIDFD); -1 */
	pid_t helper;	    /* -d: clones it, exits when it is released and we let it (hold_wr) */
	int hold_wr;	    /* -d: closed once we hold a pidfd of the process; -1 */
	void *helper_stack; /* -d, CLONE_VM helper: its stack, unmapped once it is reaped */
	bool detach;	    /* -d: it is not our child */
	bool ours;	    /* our child (the root without -d): we reap it */
	pid_t init;	    /* --pidns: the namespace's init (pid here), parent of the root; 0;
			       -1: pids inside differ from here, no init of ours */
	bool newpid;	    /* PIDNS_ROOT_INIT: the root, pid 1 of a fresh pid namespace */
	bool tagged;	    /* a tree: its log lines start "process PID: " */
	bool ready;	    /* "OK" received (a zombie: set up, exiting) */
	int status_rd;	    /* read end of the status pipe */
	uint64_t t_clone;   /* CLOCK_MONOTONIC ns right before clone3 */
	struct lz_rst_msg ok; /* the blob's OK record, with its timestamps */
	unsigned nr_warnings;
	unsigned nr_children; /* RST_MSG_CHILD records taken */
	struct lz_rst_msg held; /* a record kept until we hold this process's pidfd */
	bool has_held;
	struct rst_lazy lazy; /* lazy mode: what the child gets */
	bool lazy_on;
	int go_wr;	      /* write end of the go pipe: pidfds taken, lazy handover, finish */
	uint64_t area;	      /* from "OK": the bootstrap area left to unmap */
	uint64_t area_len;
	unsigned nr_stops;    /* ptrace stops on the way out of the blob */
};

/*
 * Lazy mode: called when the process announced its userfaultfd (fd number
 * in the process, and the features it has). Hand it to the daemon; 0 lets
 * the process go on, -errno (already logged) fails the restore; -ESRCH
 * (not logged): the process has exited, its own record says why.
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
 * Before anything is created: every pid of the dump free, and every
 * process's pipes (chans, one per task, index as in im->tasks). procs has
 * im->nr_tasks entries. Logs once.
 */
int rst_tree_prepare(struct rst_proc *procs, struct rst_chan *chans, const struct rst_images *im,
		     bool detach, bool pidns, const struct uffd_kinfo *lazy);

/*
 * --pidns: the init of the fresh pid namespace, our child always (with -d
 * it outlives us as an orphan). It creates the root with its dumped pid
 * inside, reaps orphans, and exits with the root's status (128 + signal)
 * when the root exits, which ends every process of the namespace.
 */
struct rst_init {
	pid_t pid;  /* here; 0: none */
	int pidfd;  /* -1: none */
};
/*
 * Create the root with its pid; it creates the rest of the tree
 * (rst_child_main). Without detach the root is our child; with detach a
 * helper creates it and exits, so it is reparented like an orphan. Closes
 * the processes' ends of every pipe here. Logs once.
 */
int rst_tree_create(struct rst_proc *procs, struct rst_chan *chans, struct rst_init *init);
/* --pidns, a failed restore: kill the init (the whole namespace goes) and reap it. */
void rst_init_kill(struct rst_init *init);
/* --pidns without -d: wait for the init; its wait status. */
int rst_init_wait(struct rst_init *init, int *status);
/*
 * Wait until every process said "OK" (a zombie: that it exits as one, and
 * it did) on its status pipe. Logs warnings, and the failure once, naming
 * the process. Takes a pidfd of every process as its parent reports it. On
 * success every process but the zombies waits for rst_tree_finish(). The
 * wait is bounded: when no process says anything, uses any CPU time or
 * reads anything for RST_IDLE_TIMEOUT_S seconds, the restore fails
 * (-ETIMEDOUT). A big eager restore reads and so makes progress all along;
 * only a tree stuck for good is given up on. On failure the caller calls
 * rst_tree_abort().
 */
int rst_tree_wait_ready(struct rst_proc *procs, size_t n, rst_uffd_cb on_uffd, void *ctx);
/*
 * Release every process, the leaves first (rst_proc_finish); one stopped
 * at dump time gets SIGSTOP right after its release. On failure the caller
 * calls rst_tree_abort().
 */
int rst_tree_finish(struct rst_proc *procs, size_t n);
/*
 * A restore that failed: kill every process of the tree we created (by
 * pidfd; first the pidfds still announced on the status pipes are taken),
 * parents first, wait for each to die (bounded), reap ours and the -d
 * helper. Idempotent.
 */
void rst_tree_abort(struct rst_proc *procs, size_t n);
/*
 * Let the process leave the blob under ptrace, unmap the bootstrap area
 * once rt_sigreturn is done, detach: it runs on exactly as dumped. On
 * failure it is killed (and reaped if ours); logs once.
 */
int rst_proc_finish(struct rst_proc *p);
/* Kill one process if it is still there and ours (by pidfd). Idempotent. */
void rst_proc_abort(struct rst_proc *p);
/* Close what rst_proc still holds (the pidfd); the process is left alone. */
void rst_proc_release(struct rst_proc *p);
/* Without detach: wait for the restored process to exit; its wait status. */
int rst_proc_wait_exit(struct rst_proc *p, int *status);

/* Write one text record on a status pipe (used by the child and the helper). */
void rst_msg_text(int fd, int type, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
