/*
 * lazy-int.h - what the files of the lazy-pages daemon share: the daemon
 * context, the per-process state, client connections, and the functions
 * each file offers the others. Not for use outside src/lazy-*.c.
 */
#ifndef LZ_LAZY_INT_H
#define LZ_LAZY_INT_H

#include <limits.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lazy-daemon.h"
#include "lazy-proto.h"
#include "lazy-ranges.h"
#include "lazy-shm.h"
#include "lazy-sock.h"
#include "lazy-source.h"
#include "lazy-ws.h"
#include "restore-trust.h"

enum lazy_hkind { H_LISTEN, H_CONN, H_UFFD, H_PIDFD, H_GUARD };

/* What an epoll event points at. */
struct lazy_handler {
	enum lazy_hkind kind;
	void *obj;
};

/* A fault that could not be resolved yet (the layout was changing). */
struct lazy_fault {
	uint64_t addr;
	uint64_t t_read; /* when its message was read */
	uint32_t tid;	 /* faulting thread (THREAD_ID), 0 if unknown */
};

/* One served process: one userfaultfd. */
#define LZ_AROUND_MAX 64

struct lpi {
	struct lazy_daemon *d;
	struct lpi *next;
	unsigned slot;
	struct lz_shm_slot *sh;	 /* its shared state */
	int uffd, pidfd;	 /* pidfd -1 while the pid is unknown */
	pid_t pid;		 /* 0: a forked child not identified yet */
	pid_t kin;		 /* a forked child: a process here in its pid namespace */
	struct lazy_src *src;
	struct lr_set lay;	 /* private copy of the published layout */
	uint64_t *done;		 /* done bitmap, in the shared state */
	uint64_t outstanding;	 /* pages in lay not done */
	uint64_t fill_cursor;	 /* where the background fill goes on */
	struct lazy_conn *conn;	 /* the restore that handed it over; NULL after resume */
	bool finished;		 /* restore finished: fill may run, it may complete */
	bool warned_enoent;
	struct lazy_fault *deferred;
	size_t nr_deferred, cap_deferred;
	/* Served faults whose fault-around window is still due, newest last
	 * (lpi_around_one); when full the oldest is forgotten: the fill gets
	 * its pages. */
	uint64_t around[LZ_AROUND_MAX];
	unsigned nr_around;
	struct lazy_handler h_uffd, h_pidfd;
	struct lazy_ws *ws_rec;	 /* --record-ws: faults recorded, fill held back */
	uint64_t ws_rec_end_ns;	 /* when the recording ends; 0: when it exits */
	struct lazy_ws *ws_pre;	 /* --prefetch-ws: placed first, in order */
	char name[64];		 /* "pid 1234", "child of pid 1234", for logs */
};

/* One client connection. */
struct lazy_conn {
	struct lazy_daemon *d;
	struct lazy_conn *next;
	int fd;
	pid_t peer;		   /* SO_PEERCRED */
	bool hello, finished;
	struct lz_dump_id dump_id; /* HELLO's: the dump the client restores */
	uint64_t t_deadline_ns;	   /* it must have said HELLO / completed its PROCESS by then */
	/* A PROCESS whose ranges are still arriving. */
	bool adding;
	uint32_t add_seq;
	struct lz_lazy_process add;
	int add_fds[LZ_LAZY_MAX_FDS];
	int add_nfds;
	struct lr_range *ranges;
	uint32_t nr_ranges;
	struct lazy_handler h;
};

struct lazy_daemon {
	struct lazy_daemon_opts o;
	char images_dir[PATH_MAX];
	char work_dir[PATH_MAX];
	int dirfd, workfd;
	struct rst_trust trust;	 /* whose images are served (restore-trust.h) */
	int epfd;
	int listen_fd, lock_fd;
	int guard_fd;		 /* channel to the guardian; -1 if none */
	pid_t guard_pid;
	bool guard_is_child;	 /* we forked it (not so after --resume) */
	unsigned guard_spawns;	 /* guardians started, to stop a respawn loop */
	struct lz_shm shm;
	struct lpi *procs;
	struct lazy_conn *conns;
	uint64_t fa_pages;	 /* fault-around window, pages, power of two */
	uint64_t fill_pages;	 /* background fill chunk, pages */
	uint64_t fill_piece;	 /* most pages a fault can wait behind (lpi_fill_one) */
	unsigned nr_served;	 /* processes ever handed over or taken over */
	unsigned nr_clients;	 /* restore connections ever greeted */
	unsigned nr_killed;	 /* processes killed: their memory could not be served */
	unsigned rr;		 /* fill round-robin position */
	bool thp;		 /* the kernel's THP is not "never": collapse (lazy-thp.c) */
	uint64_t t_start_ns;
	struct lshm_set *lshm;	 /* shared memory served lazily (lazy-shmem.c); NULL: none */
	struct lz_msg msg;	 /* receive buffer */
	struct lazy_handler h_listen, h_guard;
};

/* lazy-daemon.c */
int daemon_epoll_add(struct lazy_daemon *d, int fd, struct lazy_handler *h, enum lazy_hkind kind,
		     void *obj);
void daemon_epoll_del(struct lazy_daemon *d, int fd);
/* Something is ready (a fault, an event, a message): the fill yields to it. */
bool daemon_work_pending(struct lazy_daemon *d);

/* lazy-conn.c */
void conn_accept(struct lazy_daemon *d);
void conn_readable(struct lazy_conn *c);
void conn_free_all(struct lazy_daemon *d);
/* Connections that may still hand processes over. */
bool conn_pending(const struct lazy_daemon *d);
/* Close connections that owe a message past their deadline; ms until the
 * next deadline, -1 if none. */
int conn_expire(struct lazy_daemon *d);

/* lazy-proc.c */
struct lazy_add {
	pid_t pid;
	uint32_t img_id;
	const struct lz_dump_id *dump_id; /* the connection's: images must carry it */
	uint64_t features;
	int uffd, pidfd; /* owned by lpi_add from the call on */
	struct lr_range *ranges;
	uint32_t nr_ranges;
};
/* Start serving a process. On failure *why says what failed, the fds are
 * closed, and when the process can never be served it has been killed. */
int lpi_add(struct lazy_daemon *d, struct lazy_conn *c, struct lazy_add *a, char *why,
	    size_t whylen);
/* Take over a slot from the guardian (--resume): fds are owned from here. */
int lpi_resume(struct lazy_daemon *d, unsigned slot, int uffd, int pidfd);
/* After every lpi_resume: replay unapplied events, wake stuck faults. */
void lpi_resume_finish(struct lpi *p);
void lpi_readable(struct lpi *p);
void lpi_exited(struct lpi *p);
void lpi_set_finished(struct lpi *p);
/* UFFDIO_POISON every outstanding page of (lay, done): a touch is SIGBUS,
 * never a zero page, even after every copy of uffd is closed. */
void lazy_poison(int uffd, const struct lr_set *lay, const uint64_t *done);
/* Kill it: its memory cannot be served. */
void lpi_kill(struct lpi *p, const char *fmt, ...) __printf(2, 3);
void lpi_retry_deferred(struct lazy_daemon *d);
/* One background fill chunk; false when there was nothing to fill. */
bool lpi_fill_one(struct lazy_daemon *d);
/* Complete or free what is finished; true while some process is served. */
bool lpi_reap(struct lazy_daemon *d);
bool lpi_any_deferred(const struct lazy_daemon *d);
void lpi_free_all(struct lazy_daemon *d);
enum place_kind { PLACE_FAULT, PLACE_FILL, PLACE_PREFETCH };
/* Place outstanding pages [ch->start, +npages) of one run: 0, -EAGAIN (the
 * layout is changing: retry), or -errno when the process is gone or killed.
 * data: their contents, checked; NULL: from the page source. */
int lpi_place(struct lpi *p, const struct lr_run *ch, enum place_kind kind,
	      const uint8_t *data);

/* lazy-thp.c */
bool lz_thp_available(void);
/* Every page of p is in place: its MADV_HUGEPAGE VMAs back on huge pages. */
void lpi_thp_collapse(struct lpi *p);

/* lazy-ws.c */
/* At handover: start recording, or load and check the working set to
 * prefetch (-errno with why set: the process must not run). */
int lpi_ws_start(struct lpi *p, char *why, size_t whylen);
/* A fault placed ch: recorded while recording. */
void lpi_ws_fault(struct lpi *p, const struct lr_run *ch);
/* Stop recording and write ws-<id>.img (why: for the log). */
void lpi_ws_end(struct lpi *p, const char *why);
void lpi_ws_free(struct lpi *p);
/* End recordings whose time is over; ms until the next one ends, -1: none. */
int lpi_ws_tick(struct lazy_daemon *d);
/* One batch of working-set pages; false when there was none left. */
bool lpi_prefetch_one(struct lpi *p);

/* lazy-guard.c */
int guard_spawn(struct lazy_daemon *d);
int guard_add(struct lazy_daemon *d, struct lpi *p);
void guard_pidfd(struct lazy_daemon *d, struct lpi *p);
void guard_drop(struct lazy_daemon *d, struct lpi *p);
/* Tell the guardian everything is in place and wait for it to go. */
void guard_done(struct lazy_daemon *d);
void guard_lost(struct lazy_daemon *d);
/* --resume: take fds and state over from a waiting guardian. */
int guard_take_over(struct lazy_daemon *d);
/*
 * SIGKILL pid and every descendant (stopped first, so none escapes by fork).
 * With a pidfd, nothing is done when that process is already gone: its pid
 * may belong to someone else by now.
 */
void lz_kill_tree(pid_t pid, int pidfd);

/* lazy-shmem.c: shared memory objects, one outstanding-page map each */
struct lshm_set;
/* The objects a client made empty and registered (LZ_LAZY_SHMEM). */
int lshm_add(struct lazy_daemon *d, const struct lz_dump_id *id,
	     const struct lz_lazy_shmem_obj *w, uint32_t n, char *why, size_t len);
/* A fault no private lazy run holds: 1 when not on shared memory of ours
 * (the caller zero-fills as before), 0 when served, -EAGAIN to retry later,
 * another -errno when the process is gone or was killed. */
int lshm_fault(struct lpi *p, uint64_t addr);
/* UFFD_EVENT_REMOVE over [start, end) of p. */
void lshm_removed(struct lpi *p, uint64_t start, uint64_t end);
/* Some object still has data pages to place: no process may be let go. */
bool lshm_outstanding(const struct lazy_daemon *d);
/* One background fill chunk of shared memory; false when none was due. */
bool lshm_fill_one(struct lazy_daemon *d);
/* --resume: the objects the shared state lists. */
int lshm_resume(struct lazy_daemon *d, char *why, size_t len);
void lshm_free_all(struct lazy_daemon *d);
/* The objects' entries of lazy-pages-stats.json (lazy-pages.md). */
void lshm_stats(const struct lazy_daemon *d, FILE *f);
/* Guardian: UFFDIO_POISON every absent page of our objects that PID maps. */
void lshm_poison(const struct lz_shm *m, int uffd, pid_t pid);

/* lazy-stats.c */
int stats_write(struct lazy_daemon *d);
void stats_fault(struct lz_shm_stats *st, uint32_t tid, uint64_t ns);

#endif
