/*
 * lazarus.h - the public C API of Lazarus, for container runtimes and test
 * harnesses. Every call returns 0 or -errno; failures have been logged once
 * through the logger set up by lz_log_setup() (stderr by default).
 */
#ifndef LAZARUS_H
#define LAZARUS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define LAZARUS_VERSION "0.1.0"

/* Log level 0..4 (CRIU's -v), to fd (-1: stderr). */
void lz_log_setup(int level, int fd);

struct lz_dump_opts {
	int pid;		/* root of the tree to dump */
	const char *images_dir; /* where images go; must exist */
	bool leave_running;	/* -R: resume the tree after dumping */
	bool progress;		/* print progress of long memory dumps to stderr */
	bool ext_unix_sk;	/* --ext-unix-sk: reconnect unix sockets whose peer is outside */
	unsigned freeze_timeout_ms; /* give up when the process does not stop; 0: default */
	bool tcp_established;	/* keep established TCP connections (TCP_REPAIR, network lock) */
	bool shell_job;		/* --shell-job: the root's session and terminal are outside */
};

#define LZ_FREEZE_TIMEOUT_MS 10000

/*
 * Dump the tree rooted at opts->pid into opts->images_dir. On success the
 * tree is killed (or resumed with leave_running) only after every image is
 * written and synced. On failure the tree is resumed unharmed.
 *
 * Signals: for its whole run lz_dump blocks SIGINT, SIGTERM, SIGHUP and
 * SIGQUIT in the calling thread (except those whose disposition is SIG_IGN)
 * and sets SIGPIPE to SIG_IGN if it was SIG_DFL. One of them arriving, or
 * already pending, is a request to stop: until inventory.img is written the
 * dump stops at its next safe point (within one 4 MiB batch of memory, or
 * while waiting for the freeze), puts the tree back and resumes it, removes
 * the images it wrote, logs "interrupted by SIGxxx; process PID left running"
 * and returns -EINTR; after inventory.img the dump is complete and finishes
 * (returns 0, with a warning). Before returning, lz_dump restores the
 * caller's signal mask and SIGPIPE disposition and raises the signal it took
 * again, so the caller sees it as if it had arrived just after the call (a
 * caller that blocks it finds it pending; SIG_DFL ends the process). A
 * process-directed signal reaches lz_dump only if no other thread of the
 * caller can take it. SIGKILL cannot be caught: see lazarus(8), SIGNALS.
 */
int lz_dump(const struct lz_dump_opts *opts);

struct lz_restore_opts {
	const char *images_dir;
	bool detach;	       /* -d: return once the tree runs, do not wait */
	bool lazy_pages;       /* serve anonymous memory through userfaultfd */
	bool pidns;	       /* --pidns: into a fresh pid namespace, pids kept inside */
	const char *netns;     /* --netns: into this network namespace (nsfs path); NULL: ours */
	bool tcp_established;  /* established TCP connections may be restored */
	bool shell_job;	       /* --shell-job: attach a shell job to our terminal (stdin) */
	const char *work_dir;  /* lazy-pages socket and stats; default images_dir */
	/*
	 * Also trust images owned by this uid (--trust-images-of). Restore
	 * reads images only of root and of its own effective uid otherwise
	 * (lazarus(8), TRUST); 0 adds nobody.
	 */
	uid_t trust_images_of;
};

/*
 * Restore the tree from opts->images_dir. Every image is verified before
 * anything is created. Without detach, waits for the restored root and
 * stores its wait status in *wait_status; with detach, *wait_status is 0 and
 * *root_pid (if not NULL) gets the restored root's pid. With pidns the
 * tree runs in a fresh pid namespace under an init of Lazarus's own (pid 1
 * there): *root_pid is the root's pid as seen from here, and without detach
 * *wait_status is the init's, which exits with the root's status (128 +
 * signal for a signal).
 */
int lz_restore(const struct lz_restore_opts *opts, int *wait_status, int *root_pid);

#endif
