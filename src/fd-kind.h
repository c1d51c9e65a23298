/*
 * fd-kind.h - one place per kind of open file (issue 7).
 *
 * Every kind of file description Lazarus can dump and restore (regular
 * files and directories, character devices, pipes, unix sockets, eventfd,
 * epoll, ...) is one struct fd_kind in one file of its own (src/fd-<kind>.c,
 * or one per family), listed in fd_kinds[] (fd-kinds.c). dump-files.c,
 * restore-verify.c and restore-fds.c only walk that table; none of them
 * knows a kind by name.
 *
 * The life of a file description:
 *
 *   dump, per fd of every process (frozen):
 *     probe   dump-files.c fills struct fd_probe (link, stat, fdinfo text,
 *             status flags, offset) and looks for an fd already dumped, in
 *             this process or another one of the tree, with the same open
 *             file description (kcmp(KCMP_FILE)): then the fd only refers
 *             to that entry's id, and no kind is asked again. Ids are
 *             final when dump() runs (unique in the dump), so a kind may
 *             name extra images after them.
 *     match   the first kind whose match() says yes owns it; none: refused
 *             with one line naming pid, fd and what it is.
 *     dump    the kind fills its sub-message of FileEntry (files.proto);
 *             everything it puts in E is malloc'd (strdup...): dump-files.c
 *             frees E with protobuf_c_message_free_unpacked(). It may write
 *             extra images (queued data, file contents) through IMGS, so
 *             that inventory.img lists them with their checksum. Refusals:
 *             -EOPNOTSUPP after one line naming pid, fd and the reason
 *             (pr_err: dump-files.c adds nothing).
 *
 *   restore:
 *     verify  structure only, reading no file (test/fuzz/fuzz_verify.c runs
 *             it): the sub-message is there and consistent. WHY gets the
 *             problem; the caller prefixes "files.img: file ID: ".
 *     check   optional, in lazarus with every image verified, before
 *             anything is opened or created: what the entry needs on this
 *             machine is there (a path of the dumped type, not a FIFO in a
 *             file's place). WHY gets "PATH: problem"; the caller adds the
 *             fd. Changes since the dump that are only worth a warning are
 *             logged here (pr_warn).
 *     open    in lazarus, before the root of the tree is cloned: create the
 *             file description and put it into the store under its id
 *             (rst_fstore_put). Kinds are opened in fd_kinds[] order, so a
 *             kind may use entries of kinds listed before it (an epoll set
 *             adds its targets from the store). A kind creating two
 *             descriptions at once (a pipe's two ends, a socketpair) puts
 *             both; open() is not called for an id already in the store.
 *             Every process of the tree inherits the store through fork,
 *             so an open file description shared by several processes stays
 *             one. What belongs to the description (offset, status flags,
 *             flock and OFD locks, the O_ASYNC owner) is set here.
 *     post    optional, in each restored process once all its fds are at
 *             their numbers and the store is closed, once per fd of the
 *             kind (an epoll interest list held only there). POSIX locks,
 *             the process's, are checked there too and taken last by the
 *             restorer blob (fd-desc.c).
 *
 * Why the `check` hook (not in the first draft): verify must stay free of
 * file system access so that the fuzzer can run it, and the file-system
 * check must come before the first open() so that a FIFO in a file's place
 * is named as such and not opened at all.
 *
 * Functions return 0 or -errno; WHY (restore) holds one line without a
 * trailing newline (open(): left empty when the failure was logged
 * already, by rst_fd_data_restore for one).
 */
#ifndef LZ_FD_KIND_H
#define LZ_FD_KIND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "files.pb-c.h"

struct dump_imgs;
struct sk_dump_opts;
struct rst_images;
struct rst_task;
struct unix_dump;

/*
 * What kinds keep for the whole dump, across fds and processes (one per
 * dump, in files_table): what the user said and what a kind learnt once
 * (sock_diag's list of sockets) or must check across the tree (peers).
 */
struct fd_dump_ctx {
	bool ext_unix_sk;	/* --ext-unix-sk */
	struct unix_dump *unix_sk; /* fd-unix.c; NULL until the first socket */
	const struct sk_dump_opts *net; /* sk-net.h: --tcp-established, the network lock */
};

/* What dump knows of one fd before its kind is chosen. */
struct fd_probe {
	pid_t pid;
	int fd;
	const char *link;   /* readlink of /proc/PID/fd/FD */
	struct stat st;	    /* stat of /proc/PID/fd/FD */
	const char *fdinfo; /* text of /proc/PID/fdinfo/FD */
	uint32_t flags;	    /* status flags and access mode, without O_CLOEXEC */
	uint64_t pos;
	int pidfd;	    /* of PID, for pidfd_getfd() (fd_probe_getfd); -1 until asked */
	int local;	    /* fd_probe_getfd()'s copy; -1 until asked */
	struct fd_dump_ctx *ctx; /* the dump's */
};

/*
 * A copy (pidfd_getfd) of the target's fd: the same open file description,
 * in lazarus. Kept in P and closed by dump-files.c; do not close it.
 * -errno (logged) when it cannot be had.
 */
int fd_probe_getfd(struct fd_probe *p);

/*
 * The store (restore): every open file description of the dump, by file
 * id, at fds above every fd number of the dump (floor), so that installing
 * an fd at its number never closes a store fd. Built in lazarus, inherited
 * by every process of the tree, closed by each one once its fds are in
 * place (rst_fds_install) and by lazarus once the tree exists.
 */
struct rst_fstore {
	uint32_t *ids;
	int *fds;
	size_t nr, cap;
	int floor; /* every fd of the store is >= floor */
	int hi;	   /* the highest fd of the store; -1 when empty */
};

/* Take FD (closed here in every case) into the store as the description ID. */
int rst_fstore_put(struct rst_fstore *st, uint32_t id, int fd, char *why, size_t len);
/* The store's fd of ID; -1 when it has none. */
int rst_fstore_get(const struct rst_fstore *st, uint32_t id);

struct fd_kind {
	FileKind kind;	  /* files.proto */
	const char *name; /* "pipe", "unix socket": in refusals and messages */

	bool (*match)(const struct fd_probe *p);
	int (*dump)(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs);

	int (*verify)(const FileEntry *e, char *why, size_t len);
	int (*check)(const FileEntry *e, char *why, size_t len); /* optional */
	int (*open)(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		    char *why, size_t len);
	int (*post)(const FileEntry *e, const struct rst_task *t, int fd, char *why,
		    size_t len); /* optional */

	/*
	 * Optional, dump: once every fd of every process is dumped (what needs
	 * the whole tree: a socket's peer is in it or not); logs its refusals
	 * like dump(). Then dump_fini, in every case, frees what the kind kept
	 * in the context.
	 */
	int (*finish)(struct fd_dump_ctx *ctx);
	void (*dump_fini)(struct fd_dump_ctx *ctx);
};

extern const struct fd_kind *const fd_kinds[];
extern const size_t nr_fd_kinds;

/*
 * Content of a description kept in the images (fd-data.c): fddata-ID.img.
 * Dump: bytes [0, SIZE) of FD (pread: its offset stays), at most
 * FD_DATA_MAX (-EFBIG, not logged: the kind names what is too big).
 * Restore: FD truncated to SIZE and the content written in (pwrite); a
 * chunk out of order or past SIZE is refused (-EBADMSG), WHY says so; an
 * image that cannot be read is logged here and WHY left empty.
 */
#define FD_DATA_MAX (512ULL << 20)
int fd_data_dump(struct dump_imgs *imgs, uint32_t id, int fd, uint64_t size);
int rst_fd_data_restore(const struct rst_images *im, uint32_t id, int fd, uint64_t size,
			char *why, size_t len);

/* The kind of KIND; NULL when the table has none (an image of a newer tool). */
const struct fd_kind *fd_kind_of(FileKind kind);

#endif
