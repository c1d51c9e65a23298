/*
 * lazy-daemon.h - the lazy-pages daemon: serves the page faults of restored
 * processes from their images through userfaultfd, fills the rest in the
 * background, and exits when every page is in place or its process gone.
 * Documentation/lazy-pages.md describes the design.
 */
#ifndef LZ_LAZY_DAEMON_H
#define LZ_LAZY_DAEMON_H

#include <stdbool.h>
#include <sys/types.h>

#define LZ_LAZY_FAULT_AROUND_KIB 64  /* see Documentation/lazy-pages.md, "Fault-around" */
#define LZ_LAZY_FILL_CHUNK_KIB 2048
/* The fill copies a chunk in pieces of at most this and stops between two
 * when a fault (or anything else) is ready: what a fault can wait behind. */
#define LZ_LAZY_FILL_PIECE_KIB 256
#define LZ_LAZY_GUARD_TIMEOUT_S 10
#define LZ_LAZY_RECORD_WS_MS 10000  /* --record-ws without =MS */
#define LZ_LAZY_CONN_TIMEOUT_MS 10000 /* a client owes HELLO, or a PROCESS's RANGES */

struct lazy_daemon_opts {
	const char *images_dir;	     /* pagemap-<id>.img, pages-<id>.img */
	const char *work_dir;	     /* socket, lock, stats; NULL: images_dir */
	int status_fd;		     /* one byte written when ready; -1: none */
	int ready_fd;		     /* the same, for whoever started us detached; -1 */
	bool detached;		     /* -d: stderr to /dev/null once ready (the log keeps all) */
	bool resume;		     /* take over from the guardian of a dead daemon */
	unsigned guard_timeout_s;    /* guardian waits this long for --resume */
	unsigned conn_timeout_ms;    /* a client that owes a message is closed after this */
	unsigned fault_around_kib;   /* 4..2048, power of two */
	unsigned fill_chunk_kib;     /* background fill chunk, 64..2048 */
	unsigned fill_delay_us;	     /* test hook: pause after each fill chunk */
	bool test_crash_on_fork;     /* test hook: SIGKILL ourselves on reading a FORK */
	bool record_ws;		     /* record each process's working set into ws-<id>.img */
	unsigned record_ws_ms;	     /* recording time from handover; 0: until it exits */
	bool prefetch_ws;	     /* place the recorded working set first */
	uid_t trust_images_of;	     /* also trust images of this uid (0: root and ours only) */
};

/* Set the defaults above; dirs NULL, status_fd -1. */
void lazy_daemon_opts_init(struct lazy_daemon_opts *o);

/*
 * Run the daemon in this process until every page of every process handed
 * to it is in place or its process is gone. 0 then; -EIO when it had to
 * kill a process whose memory could not be served (damaged images); another
 * -errno when it could not start. Everything is logged.
 */
int lazy_daemon_run(const struct lazy_daemon_opts *o);

/* `lazarus lazy-pages ...`: parse argv (argv[1] is "lazy-pages"), run. */
int cli_lazy_pages(int argc, char **argv);

#endif
