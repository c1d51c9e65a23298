/*
 * fd-unix.h - unix sockets (stream, datagram, seqpacket): dump, verify and
 * restore. See fd-unix.c (dump, verify) and fd-unix-restore.c (restore).
 *
 * The dump learns every unix socket of the network namespace once, from the
 * kernel through sock_diag (sk-diag.h): type, state, name, peer, shutdown,
 * queue lengths and the clients waiting in a listener's backlog. Each fd of
 * the tree then adds what only the socket itself tells (options, the queued
 * data, read with MSG_PEEK through a pidfd_getfd copy), and a last pass over
 * the whole tree checks that every peer is in it (or --ext-unix-sk says how
 * to reconnect it).
 *
 * Functions return 0 or -errno; dump functions log their refusals once
 * (naming pid, fd and the reason), verify and restore fill WHY.
 */
#ifndef LZ_FD_UNIX_H
#define LZ_FD_UNIX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "files.pb-c.h"
#include "sk-unix.pb-c.h"

struct unix_dump;

int unix_dump_new(struct unix_dump **out, bool ext_unix_sk);
void unix_dump_free(struct unix_dump *u);
/* Whether socket inode INO is a unix socket (of this network namespace). */
int unix_dump_is_unix(struct unix_dump *u, uint64_t ino, bool *yes);
/*
 * Fd FD of PID, socket inode INO, LOCAL a pidfd_getfd copy of it (the same
 * open file description). *OUT (malloc'd, set also on failure) is the
 * caller's to free, after unix_dump_finish.
 */
int unix_dump_one(struct unix_dump *u, pid_t pid, int fd, int local, uint64_t ino,
		  UnixSkEntry **out);
/* With every fd of the tree dumped: peers, listeners, backlogs. */
int unix_dump_finish(struct unix_dump *u);

/* Restore-side: the entries of files.img that are unix sockets. */
struct rst_images;
struct unix_rst_set {
	const FileEntry **files;
	size_t nr;
	/* whose credentials each socket is made with (as-owner.h); NULL: lazarus's own */
	const struct rst_images *im;
};

/* One entry alone: known type and state, names and queue lengths that add up. */
int unix_verify_entry(const UnixSkEntry *e, char *why, size_t len);
/*
 * The entries together: every inode one names is a socket of SET of the
 * right kind (a peer, a listener, a client in a backlog), a stream pair
 * points at each other. Before anything is created.
 */
int unix_verify_set(const struct unix_rst_set *set, char *why, size_t len);

/*
 * Create every unix socket of SET in this process: FDS[i] gets the socket of
 * SET->files[i] (above ABOVE, O_CLOEXEC). On failure nothing stays open.
 */
int unix_restore_all(const struct unix_rst_set *set, int above, int *fds, char *why,
		     size_t len);

struct rst_images;
struct rst_fstore;
/* fd_kind check: a path name can be bound again (nothing but a stale socket there). */
int unix_check(const FileEntry *e, char *why, size_t len);
/* fd_kind open: every unix socket of IM at once, into ST (fd-kind.h). */
int unix_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
	      char *why, size_t len);

#endif
