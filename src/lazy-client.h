/*
 * lazy-client.h - what `restore --lazy-pages` uses to hand restored
 * processes to the lazy-pages daemon. Documentation/lazy-protocol.md has
 * the protocol behind it.
 *
 * Order of use:
 *   1. once:  lazy_client_connect()  - connects to WORKDIR/lazy-pages.sock,
 *             or (spawn) starts a daemon there first when none listens.
 *             Before it sends anything it checks that WORKDIR is owned by
 *             us or root and writable by nobody else, that the socket file
 *             is a socket (not a symlink) owned by us or root, and that the
 *             listener (SO_PEERCRED) runs as us or root. HELLO carries the
 *             dump id: a daemon serving another dump refuses.
 *             Call it before the calling process holds a registered uffd:
 *             starting a daemon forks, and a process whose uffd has
 *             EVENT_FORK blocks in fork() until a daemon reads the event.
 *   2. each restored process, in that process (a uffd binds to the mm of
 *      its creator) before its final switch:
 *             uffd_open(&ki, UFFD_LAZY_WANTED, UFFD_LAZY_REQUIRED, &features)
 *      then, from any process that holds the uffd:
 *             lazy_client_add()      - returns once the daemon has checked
 *                                      the images and guards the uffd;
 *      then the restorer registers the announced ranges in MISSING mode
 *      (uffd_register_missing with UFFD_LAZY_RANGE_IOCTLS) and may close
 *      its own copy of the uffd.
 *   3. once every process is in place (before they run freely, at latest
 *      right after):  lazy_client_finish() - background fill starts.
 *   4. lazy_client_close().
 *
 * If the connection is closed before lazy_client_finish(), the daemon kills
 * the processes it was given on it: a restore that failed half way must not
 * leave them running. Every connect, send and wait is bounded (timeout_ms,
 * LAZARUS_LAZY_TIMEOUT_MS, 60 s): -ETIMEDOUT then. Every call returns 0 or -errno; on failure
 * lazy_client_error() has one line saying why (the daemon's words when it
 * refused). lazy_client_connect() sets *out even when it fails (close it),
 * except for -ENOMEM where *out may be NULL. The library does not log.
 */
#ifndef LZ_LAZY_CLIENT_H
#define LZ_LAZY_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lazy-proto.h"

struct lazy_client;
struct lz_dump_id;

/* Default bound of every connect, send and wait for a reply; the
 * environment variable overrides it (milliseconds, for tests). */
#define LAZY_CLIENT_TIMEOUT_MS 60000
#define LAZY_CLIENT_TIMEOUT_ENV "LAZARUS_LAZY_TIMEOUT_MS"

struct lazy_client_opts {
	const char *images_dir; /* the dump: pagemap-<id>.img, pages-<id>.img */
	const char *work_dir;	/* socket, lock, stats, daemon log; NULL: images_dir */
	bool spawn;		/* start a daemon when none listens */
	const char *log_file;	/* spawned daemon's log; NULL: WORKDIR/lazy-pages.log */
	int log_level;		/* spawned daemon's log level; 0: info (3) */
	unsigned timeout_ms;	/* bound of each connect, send, reply; 0: env, else 60 s */
	const struct lz_dump_id *dump_id; /* the dump restored (inventory.img's id);
					     the daemon refuses another dump's */
	uid_t trust_images_of;	/* spawned daemon: also serve images of this uid */
};

struct lazy_client_proc {
	pid_t pid;			   /* the restored process (the mm the uffd belongs to) */
	uint32_t img_id;		   /* its images: pagemap-<img_id>.img, pages-<img_id>.img */
	int uffd;			   /* from uffd_open() in that process; the caller keeps it */
	int pidfd;			   /* of pid, or -1: opened here */
	uint64_t features;		   /* uffd_open()'s *enabled */
	uint64_t ioctls;		   /* AND of REGISTER's ioctls if known, else 0 */
	const struct lz_lazy_range *ranges; /* every range registered (or to be) in MISSING mode */
	uint32_t nr_ranges;
};

int lazy_client_connect(const struct lazy_client_opts *o, struct lazy_client **out);
int lazy_client_add(struct lazy_client *c, const struct lazy_client_proc *p);
/* The shared memory objects served lazily (before any process maps them). */
int lazy_client_shmem(struct lazy_client *c, const struct lz_lazy_shmem_obj *o, uint32_t n);
int lazy_client_finish(struct lazy_client *c);
void lazy_client_close(struct lazy_client *c);
const char *lazy_client_error(const struct lazy_client *c);
pid_t lazy_client_daemon_pid(const struct lazy_client *c);

#endif
