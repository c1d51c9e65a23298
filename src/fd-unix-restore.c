/*
 * fd-unix-restore.c - create the unix sockets of a dump, in lazarus, before
 * the tree is cloned (its processes inherit them; see fd-unix.h).
 *
 * All of them at once, in an order the kernel allows:
 *  1. every socket exists: listeners bound and listening; connections a
 *     listener of the tree accepted made again by connect + accept (so the
 *     accepted end has its listener's name), then the clients waiting in its
 *     backlog connected in their order; other stream and seqpacket pairs by
 *     socketpair(); datagram sockets bound; buffer sizes set;
 *  2. receive queues filled by writing from the peer (a datagram from the
 *     socket of the tree bound to its sender's name, or from a fresh
 *     unnamed socket), before datagram sockets connect: a connected
 *     datagram socket takes messages from its peer only;
 *  3. datagram sockets connected; shutdown; the options that would change
 *     what queued messages carry (SO_PASSCRED) or how they are read
 *     (SO_PEEK_OFF), timeouts and O_NONBLOCK; the peers of sockets whose
 *     peer had closed are closed now, which shuts them as then.
 *
 * Every socket is made O_NONBLOCK (a full backlog or queue is an error, never
 * a hang of lazarus); the dumped status flags are set at the end.
 *
 * Credentials (as-owner.h): each socket is made (socket, socketpair,
 * accept) and bound, connected and put to listen as the process that owns
 * its description, so that SO_PEERCRED shows the owner's uid and gid (a
 * client's is its listener's at listen(), an accepted socket's its
 * client's at connect()) and the socket inode is the owner's. A socketpair
 * gives both ends the credentials of its maker: the owner of the first
 * end in files.img (when the two ends have different owners, the second
 * end's SO_PEERCRED shows the first one's credentials, not its own peer's:
 * the kernel has no way to make it otherwise). Refused to the owner, a
 * bind to a path (a daemon that bound in /run as root and dropped
 * privileges) and a connect to a listener of the tree are done as lazarus:
 * the process had that name or that connection. A connect to a socket out
 * of the tree (--ext-unix-sk) is the owner's alone.
 *
 * Path names: the socket file is made again by bind(). A stale socket file
 * of the same owner at the path (the dumped socket's own, its process
 * gone) is removed first; anything else there is refused by name (see
 * bind_path).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <netinet/tcp.h>

#include "as-owner.h"
#include "fd-kind.h"
#include "fd-unix.h"
#include "restore-images.h"
#include "safe-file.h"

#define RCV_SHUTDOWN 1
#define SEND_SHUTDOWN 2

struct rsk {
	const FileEntry *f;
	const UnixSkEntry *e;
	int fd;		/* the socket; -1 until made */
	int closed_peer; /* peer_closed: the other end, closed at the end; -1 */
};

struct urst {
	struct rsk *s;
	size_t nr;
	const struct rst_images *im; /* owners of the sockets; NULL: lazarus's own */
	char *why;
	size_t len;
};

#define fail(u, err, ...) (snprintf((u)->why, (u)->len, __VA_ARGS__), (err))

/* Act as the owner of R's description (as-owner.h) until back(). */
static int as_of(struct urst *u, const struct rsk *r, struct as_owner *ao)
{
	return as_owner_enter(ao, u->im ? as_owner_of_file(u->im, r->f->id) : NULL, u->why, u->len);
}

/* Back to lazarus: RET, or the failure to come back. */
static int back(struct urst *u, struct as_owner *ao, int ret)
{
	return as_owner_leave(ao, ret, u->why, u->len);
}

/* bind/connect as R's owner; refused to it and FALLBACK: as lazarus. -errno. */
static int as_owner_call(struct urst *u, const struct rsk *r, bool fallback, bool is_bind, int fd,
			 const struct sockaddr_un *a, socklen_t alen)
{
	struct as_owner ao;
	int ret = as_of(u, r, &ao), err;

	if (ret)
		return ret;
	err = (is_bind ? bind(fd, (const struct sockaddr *)a, alen)
		       : connect(fd, (const struct sockaddr *)a, alen)) ? -errno : 0;
	ret = back(u, &ao, 0);
	if (ret)
		return ret;
	if (fallback && (err == -EACCES || err == -EPERM))
		err = (is_bind ? bind(fd, (const struct sockaddr *)a, alen)
			       : connect(fd, (const struct sockaddr *)a, alen)) ? -errno : 0;
	return err;
}

static struct rsk *by_ino(const struct urst *u, uint32_t ino)
{
	for (size_t i = 0; i < u->nr; i++)
		if (u->s[i].e->ino == ino)
			return &u->s[i];
	return NULL;
}

/* Printable name: "@name" for abstract ones. */
static const char *show_name(const ProtobufCBinaryData *n, char *buf, size_t size)
{
	size_t l = n->len;
	const char *p = (const char *)n->data;

	if (l && p[0] == '\0') {
		snprintf(buf, size, "@%.*s", (int)l - 1, p + 1);
	} else {
		while (l && p[l - 1] == '\0')
			l--;
		snprintf(buf, size, "%.*s", (int)l, p);
	}
	return buf;
}

static socklen_t make_addr(const ProtobufCBinaryData *n, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	memcpy(a->sun_path, n->data, n->len);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n->len);
}

static int new_sock(struct urst *u, const struct rsk *r)
{
	struct as_owner ao;
	int fd, ret = as_of(u, r, &ao);

	if (ret)
		return ret;
	fd = socket(AF_UNIX, (int)r->e->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		fd = fail(u, -errno, "file %u: socket(): %s", r->f->id, strerror(errno));
	ret = back(u, &ao, 0);
	if (ret && fd >= 0)
		close(fd);
	return ret ? ret : fd;
}

/* socketpair() as the owner of R (the header comment). */
static int new_pair(struct urst *u, const struct rsk *r, int type, int sv[2])
{
	struct as_owner ao;
	int ret = as_of(u, r, &ao);

	if (ret)
		return ret;
	if (socketpair(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv))
		return back(u, &ao, fail(u, -errno, "file %u: socketpair: %s", r->f->id,
					 strerror(errno)));
	ret = back(u, &ao, 0);
	if (ret) {
		close(sv[0]);
		close(sv[1]);
	}
	return ret;
}

/*
 * A stale socket file at the path: removed only when it is a socket (never
 * a symlink, never something else), owned as the dumped one was, and
 * nobody listens on it (connect says ECONNREFUSED). The directory passed
 * the trust rule of safe-file.h (sticky ones too: the owner check stands in
 * for the sticky bit, which root ignores).
 */
static int clear_stale(struct urst *u, const struct rsk *r, int dirfd, const char *base,
		       const char *path, bool dry)
{
	struct sockaddr_un a;
	struct stat st;
	int probe, ret;

	if (fstatat(dirfd, base, &st, AT_SYMLINK_NOFOLLOW)) {
		if (errno == ENOENT)
			return 0;
		return fail(u, -errno, "file %u: unix socket path %s: %s", r->f->id, path,
			    strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return fail(u, -EEXIST, "file %u: unix socket path %s is taken by something that is "
			    "not a socket", r->f->id, path);
	if (st.st_uid != r->e->file_uid)
		return fail(u, -EEXIST, "file %u: unix socket path %s is taken by a socket file of "
			    "uid %u, not %u", r->f->id, path, st.st_uid, r->e->file_uid);
	probe = socket(AF_UNIX, (int)r->e->type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (probe < 0)
		return fail(u, -errno, "file %u: socket(): %s", r->f->id, strerror(errno));
	ret = connect(probe, (struct sockaddr *)&a, make_addr(&r->e->name, &a)) ? errno : 0;
	close(probe);
	if (ret != ECONNREFUSED)
		return fail(u, -EADDRINUSE, "file %u: unix socket path %s is in use by a live socket",
			    r->f->id, path);
	if (!dry && unlinkat(dirfd, base, 0))
		return fail(u, -errno, "file %u: removing the stale socket file %s: %s", r->f->id,
			    path, strerror(errno));
	return 0;
}

/* The socket file bind() made: owner and mode as dumped. */
static int fix_file(struct urst *u, const struct rsk *r, int dirfd, const char *base,
		    const char *path)
{
	char proc[64];
	struct stat st;
	int o = openat(dirfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int ret = 0;

	if (o < 0)
		return fail(u, -errno, "file %u: opening %s after bind: %s", r->f->id, path,
			    strerror(errno));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", o);
	if (fstat(o, &st) || !S_ISSOCK(st.st_mode))
		ret = fail(u, -EEXIST, "file %u: %s is no socket after bind", r->f->id, path);
	else if (fchownat(o, "", r->e->file_uid, r->e->file_gid, AT_EMPTY_PATH) ||
		 chmod(proc, r->e->file_mode))
		ret = fail(u, -errno, "file %u: setting owner and mode of %s: %s", r->f->id, path,
			   strerror(errno));
	close(o);
	return ret;
}

/*
 * The directory of a socket path, checked by the directory rule
 * (safe-file.h), which also takes a directory owned by the socket's owner
 * (a server's own socket directory, like PostgreSQL's /var/run/postgresql):
 * *MINE then says so, and the bind runs as that owner only, never falling
 * back to lazarus, whose bind by path in a directory another user controls
 * could be sent elsewhere. DRY (the early check, which knows no owner):
 * a directory of one other user that only that user can write passes; the
 * bind checks that this user is the owner.
 */
static int owners_dir_open(struct urst *u, const struct rsk *r, const char *dir, bool dry,
			   bool *mine, char why[SF_WHY_MAX])
{
	const struct rst_task *t = u->im ? as_owner_of_file(u->im, r->f->id) : NULL;
	const CredsEntry *c = t && t->nr_cores ? t->cores[0]->creds : NULL;
	struct stat st;
	int dirfd, ret;

	*mine = false;
	dirfd = sf_dir_open_checked(AT_FDCWD, dir, SF_DIR_STICKY_OK, why);
	if (dirfd != -EPERM || (!dry && (!c || !c->fsuid)))
		return dirfd;
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	if (fstat(dirfd, &st) || (!dry && st.st_uid != c->fsuid) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		ret = sf_dir_check(dirfd, SF_DIR_STICKY_OK, why);
		close(dirfd);
		return ret ? ret : -EPERM;
	}
	*mine = true;
	return dirfd;
}

static int bind_path(struct urst *u, const struct rsk *r, int fd, bool dry)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1], dir[PATH_MAX];
	char why[SF_WHY_MAX];
	struct sockaddr_un a;
	const char *base;
	bool mine;
	int dirfd, ret;

	memcpy(path, r->e->name.data, r->e->name.len);
	path[r->e->name.len] = '\0';
	base = sf_split(path, dir, sizeof(dir));
	if (!base)
		return fail(u, -EINVAL, "file %u: unix socket path %s: no file name", r->f->id, path);
	dirfd = owners_dir_open(u, r, dir, dry, &mine, why);
	if (dirfd < 0)
		return fail(u, dirfd, "file %u: unix socket path %s: directory %s: %s", r->f->id,
			    path, dir, why);
	ret = clear_stale(u, r, dirfd, base, path, dry);
	if (dry) {
		close(dirfd);
		return ret;
	}
	if (!ret) {
		socklen_t alen = make_addr(&r->e->name, &a);
		int err = as_owner_call(u, r, !mine, true, fd, &a, alen);

		if (err)
			ret = fail(u, err, "file %u: bind to %s: %s", r->f->id, path, strerror(-err));
	}
	if (!ret)
		ret = fix_file(u, r, dirfd, base, path);
	close(dirfd);
	return ret;
}

static int bind_name(struct urst *u, const struct rsk *r, int fd)
{
	struct sockaddr_un a;
	char buf[128];

	if (!r->e->has_name)
		return 0;
	if (r->e->name.data[0] != '\0')
		return bind_path(u, r, fd, false);
	if (bind(fd, (struct sockaddr *)&a, make_addr(&r->e->name, &a)))
		return fail(u, -errno, "file %u: bind to %s: %s", r->f->id,
			    show_name(&r->e->name, buf, sizeof(buf)), strerror(errno));
	return 0;
}

/* SO_SNDBUF and SO_RCVBUF: getsockopt reads double what setsockopt was given. */
static int set_bufs(struct urst *u, const struct rsk *r, int fd)
{
	static const int opt[2][2] = { { SO_SNDBUFFORCE, SO_SNDBUF }, { SO_RCVBUFFORCE, SO_RCVBUF } };
	int val[2] = { (int)(r->e->sndbuf / 2), (int)(r->e->rcvbuf / 2) };

	for (int i = 0; i < 2; i++) {
		if (!setsockopt(fd, SOL_SOCKET, opt[i][0], &val[i], sizeof(int)))
			continue;
		if (errno != EPERM || setsockopt(fd, SOL_SOCKET, opt[i][1], &val[i], sizeof(int)))
			return fail(u, -errno, "file %u: setting its buffer sizes: %s", r->f->id,
				    strerror(errno));
	}
	return 0;
}

static int made(struct urst *u, struct rsk *r, int fd)
{
	int ret;

	r->fd = fd;
	ret = set_bufs(u, r, fd);
	return ret;
}

/* As R's owner; OURS: a socket of the tree, which lazarus may reach for it if refused. */
static int connect_to(struct urst *u, const struct rsk *r, int fd, const ProtobufCBinaryData *n,
		      bool ours)
{
	struct sockaddr_un a;
	char buf[128];
	int err = as_owner_call(u, r, ours, false, fd, &a, make_addr(n, &a));

	if (err)
		return fail(u, err, "file %u: connect to %s: %s", r->f->id,
			    show_name(n, buf, sizeof(buf)), strerror(-err));
	return 0;
}

/* A client socket (named if it was), connected to listener L. */
static int make_client(struct urst *u, struct rsk *c, const struct rsk *l)
{
	int fd = new_sock(u, c), ret;

	if (fd < 0)
		return fd;
	ret = made(u, c, fd);
	if (!ret)
		ret = bind_name(u, c, fd);
	if (!ret)
		ret = connect_to(u, c, fd, &l->e->name, true);
	return ret;
}

/* What L accepted, made by accept() as A's owner (its socket inode is A's). */
static int accept_as(struct urst *u, const struct rsk *l, struct rsk *a)
{
	struct as_owner ao;
	int fd, ret = as_of(u, a, &ao);

	if (ret)
		return ret;
	fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		ret = fail(u, -errno, "file %u: accept: %s", l->f->id, strerror(errno));
	ret = back(u, &ao, ret);
	if (fd >= 0 && ret) {
		close(fd);
		return ret;
	}
	return ret ? ret : made(u, a, fd);
}

/* A listener, then what it accepted (its accepted sockets of the tree), then its backlog. */
static int make_listener(struct urst *u, struct rsk *l)
{
	int fd = new_sock(u, l), ret;

	if (fd < 0)
		return fd;
	ret = made(u, l, fd);
	if (!ret)
		ret = bind_name(u, l, fd);
	if (!ret) {
		struct as_owner ao;

		ret = as_of(u, l, &ao);
		if (!ret && listen(fd, (int)l->e->backlog))
			ret = fail(u, -errno, "file %u: listen: %s", l->f->id, strerror(errno));
		if (ao.in)
			ret = back(u, &ao, ret);
	}
	for (size_t i = 0; !ret && i < u->nr; i++) {
		struct rsk *a = &u->s[i], *c;

		if (!a->e->has_listener || a->e->listener != l->e->ino)
			continue;
		c = by_ino(u, a->e->peer);
		ret = make_client(u, c, l);
		if (ret)
			break;
		ret = accept_as(u, l, a);
	}
	for (size_t k = 0; !ret && k < l->e->n_icons; k++)
		ret = make_client(u, by_ino(u, l->e->icons[k]), l);
	return ret;
}

/* Stream and seqpacket sockets not made through a listener. */
static int make_stream(struct urst *u, struct rsk *r)
{
	struct rsk *p = r->e->has_peer ? by_ino(u, r->e->peer) : NULL;
	int sv[2], ret;

	if (p || r->e->peer_closed) {
		ret = new_pair(u, r, (int)r->e->type, sv);
		if (ret)
			return ret;
		ret = made(u, r, sv[0]);
		if (p) {
			if (!ret)
				ret = made(u, p, sv[1]);
			if (!ret)
				ret = bind_name(u, p, sv[1]);
		} else {
			r->closed_peer = sv[1];
		}
		return ret ? ret : bind_name(u, r, sv[0]);
	}
	sv[0] = new_sock(u, r);
	if (sv[0] < 0)
		return sv[0];
	ret = made(u, r, sv[0]);
	if (!ret)
		ret = bind_name(u, r, sv[0]);
	if (!ret && r->e->has_ext_peer)
		ret = connect_to(u, r, sv[0], &r->e->ext_peer, false);
	return ret;
}

/* Datagram sockets connected to each other with no names: a socketpair; others bound. */
static int make_dgram(struct urst *u, struct rsk *r)
{
	struct rsk *p = r->e->has_peer ? by_ino(u, r->e->peer) : NULL;
	int sv[2], ret;

	if (p && p->fd < 0 && !r->e->has_name && !p->e->has_name && p->e->has_peer &&
	    p->e->peer == r->e->ino) {
		ret = new_pair(u, r, SOCK_DGRAM, sv);
		if (ret)
			return ret;
		ret = made(u, r, sv[0]);
		return ret ? ret : made(u, p, sv[1]);
	}
	sv[0] = new_sock(u, r);
	if (sv[0] < 0)
		return sv[0];
	ret = made(u, r, sv[0]);
	return ret ? ret : bind_name(u, r, sv[0]);
}

static int make_all(struct urst *u)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < u->nr; i++)
		if (u->s[i].e->state == TCP_LISTEN)
			ret = make_listener(u, &u->s[i]);
	for (size_t i = 0; !ret && i < u->nr; i++) {
		struct rsk *r = &u->s[i];

		if (r->fd >= 0)
			continue;
		ret = r->e->type == SOCK_DGRAM ? make_dgram(u, r) : make_stream(u, r);
	}
	return ret;
}

/* ---- queues ---- */

static int send_all(struct urst *u, const struct rsk *r, int from, const UnixSkMsg *m,
		    const struct sockaddr_un *to, socklen_t tolen)
{
	size_t done = 0;

	do {
		ssize_t n = sendto(from, m->data.data + done, m->data.len - done,
				   MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)to, tolen);

		if (n < 0)
			return fail(u, -errno, "file %u: putting back its receive queue: %s%s",
				    r->f->id, strerror(errno),
				    errno == EAGAIN ? " (it does not fit any more)" : "");
		done += (size_t)n;
	} while (done < m->data.len && r->e->type == SOCK_STREAM);
	return 0;
}

/* The socket of the tree bound to FROM; NULL if none. */
static const struct rsk *by_name(const struct urst *u, const ProtobufCBinaryData *from)
{
	for (size_t i = 0; i < u->nr; i++) {
		const UnixSkEntry *e = u->s[i].e;

		if (e->has_name && e->name.len == from->len &&
		    !memcmp(e->name.data, from->data, from->len) && e->type == SOCK_DGRAM)
			return &u->s[i];
	}
	return NULL;
}

static int fill_dgram(struct urst *u, const struct rsk *r, int *anon)
{
	const struct rsk *p = r->e->has_peer ? by_ino(u, r->e->peer) : NULL;
	struct sockaddr_un a;
	socklen_t alen = 0;

	if (r->e->has_name)
		alen = make_addr(&r->e->name, &a);
	for (size_t k = 0; k < r->e->n_rqueue; k++) {
		const UnixSkMsg *m = r->e->rqueue[k];
		const struct rsk *s = m->has_from ? by_name(u, &m->from) : NULL;
		int from;

		if (!m->has_from && p && !p->e->has_name)
			s = p; /* from its unnamed peer */
		if (s) {
			from = s->fd;
		} else {
			/* Sent by a socket not in the tree, or unnamed: from a fresh one. */
			if (*anon < 0) {
				int big = INT_MAX / 2;

				*anon = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
				if (*anon < 0)
					return fail(u, -errno, "socket(): %s", strerror(errno));
				setsockopt(*anon, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof(big));
			}
			from = *anon;
		}
		/* An unnamed receiver is a socketpair end: its peer is connected already. */
		int ret = send_all(u, r, from, m, alen ? &a : NULL, alen);

		if (ret)
			return ret;
	}
	return 0;
}

static int fill_queues(struct urst *u)
{
	int anon = -1, ret = 0;

	for (size_t i = 0; !ret && i < u->nr; i++) {
		const struct rsk *r = &u->s[i], *p;

		if (!r->e->n_rqueue)
			continue;
		if (r->e->type == SOCK_DGRAM) {
			ret = fill_dgram(u, r, &anon);
			continue;
		}
		p = r->e->has_peer ? by_ino(u, r->e->peer) : NULL;
		for (size_t k = 0; !ret && k < r->e->n_rqueue; k++)
			ret = send_all(u, r, p ? p->fd : r->closed_peer, r->e->rqueue[k], NULL, 0);
	}
	if (anon >= 0)
		close(anon);
	return ret;
}

/* ---- connections of datagram sockets, shutdown, options ---- */

static int connect_dgram(struct urst *u, const struct rsk *r)
{
	const struct rsk *p = r->e->has_peer ? by_ino(u, r->e->peer) : NULL;
	struct sockaddr_un a;
	int tmp, ret;

	if (p && p->e->has_name)
		return connect_to(u, r, r->fd, &p->e->name, true);
	if (r->e->has_ext_peer)
		return connect_to(u, r, r->fd, &r->e->ext_peer, false);
	if (!r->e->peer_closed)
		return 0; /* unconnected, or a socketpair */
	/* Connected to a socket that has gone: to one that goes now (ECONNREFUSED). */
	tmp = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (tmp < 0)
		return fail(u, -errno, "socket(): %s", strerror(errno));
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	socklen_t alen = sizeof(a);

	ret = bind(tmp, (struct sockaddr *)&a, sizeof(sa_family_t)) || /* autobind */
	      getsockname(tmp, (struct sockaddr *)&a, &alen) ||
	      connect(r->fd, (struct sockaddr *)&a, alen) ? -errno : 0;
	close(tmp);
	return ret ? fail(u, ret, "file %u: connecting to a closed peer: %s", r->f->id,
			  strerror(-ret)) : 0;
}

static int set_timeo(int fd, int opt, uint64_t us)
{
	struct timeval tv = { .tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000) };

	return setsockopt(fd, SOL_SOCKET, opt, &tv, sizeof(tv));
}

static int finish_one(struct urst *u, struct rsk *r)
{
	const UnixSkEntry *e = r->e;
	int one = 1, fl;

	if (e->type == SOCK_DGRAM) {
		int ret = connect_dgram(u, r);

		if (ret)
			return ret;
	}
	if (e->shutdown && shutdown(r->fd, (int)e->shutdown - 1) && errno != ENOTCONN)
		return fail(u, -errno, "file %u: shutdown: %s", r->f->id, strerror(errno));
	if ((e->passcred && setsockopt(r->fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one))) ||
	    (e->passsec && setsockopt(r->fd, SOL_SOCKET, SO_PASSSEC, &one, sizeof(one))) ||
	    (e->has_peek_off && setsockopt(r->fd, SOL_SOCKET, SO_PEEK_OFF, &e->peek_off,
					   sizeof(e->peek_off))) ||
	    (e->rcvtimeo_us && set_timeo(r->fd, SO_RCVTIMEO, e->rcvtimeo_us)) ||
	    (e->sndtimeo_us && set_timeo(r->fd, SO_SNDTIMEO, e->sndtimeo_us)))
		return fail(u, -errno, "file %u: setting its socket options: %s", r->f->id,
			    strerror(errno));
	fl = fcntl(r->fd, F_GETFL);
	if (fl < 0 || fcntl(r->fd, F_SETFL, (fl & ~O_NONBLOCK) | ((int)r->f->flags & O_NONBLOCK)))
		return fail(u, -errno, "file %u: setting O_NONBLOCK: %s", r->f->id, strerror(errno));
	if (r->closed_peer >= 0) {
		close(r->closed_peer);
		r->closed_peer = -1;
	}
	return 0;
}

static void close_all(struct urst *u)
{
	for (size_t i = 0; i < u->nr; i++) {
		if (u->s[i].fd >= 0)
			close(u->s[i].fd);
		if (u->s[i].closed_peer >= 0)
			close(u->s[i].closed_peer);
		u->s[i].fd = u->s[i].closed_peer = -1;
	}
}

int unix_restore_all(const struct unix_rst_set *set, int above, int *fds, char *why, size_t len)
{
	struct urst u = { .nr = set->nr, .im = set->im, .why = why, .len = len };
	int ret = 0;

	u.s = calloc(set->nr ? set->nr : 1, sizeof(*u.s));
	if (!u.s)
		return fail(&u, -ENOMEM, "out of memory");
	for (size_t i = 0; i < set->nr; i++)
		u.s[i] = (struct rsk){ .f = set->files[i], .e = set->files[i]->unix_sk, .fd = -1,
				       .closed_peer = -1 };
	ret = make_all(&u);
	if (!ret)
		ret = fill_queues(&u);
	for (size_t i = 0; !ret && i < u.nr; i++)
		ret = finish_one(&u, &u.s[i]);
	for (size_t i = 0; !ret && i < u.nr; i++) {
		fds[i] = fcntl(u.s[i].fd, F_DUPFD_CLOEXEC, above);
		if (fds[i] < 0) {
			ret = fail(&u, -errno, "file %u: dup: %s", u.s[i].f->id, strerror(errno));
			while (i--)
				close(fds[i]);
		}
	}
	close_all(&u);
	free(u.s);
	return ret;
}

/* ---- the kind's hooks ---- */

int unix_check(const FileEntry *e, char *why, size_t len)
{
	struct urst u = { .why = why, .len = len };
	struct rsk r = { .f = e, .e = e->unix_sk, .fd = -1, .closed_peer = -1 };

	/* Accepted sockets have no name of their own here (fd-unix.c). */
	if (!r.e->has_name || r.e->name.data[0] == '\0')
		return 0;
	return bind_path(&u, &r, -1, true);
}

int unix_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
	      char *why, size_t len)
{
	struct unix_rst_set set = { .im = im };
	int *fds = NULL, ret = -ENOMEM;
	size_t i;

	(void)e; /* every socket at once: open() is not called again for the others */
	set.files = calloc(im->nr_files + 1, sizeof(*set.files));
	fds = calloc(im->nr_files + 1, sizeof(*fds));
	if (!set.files || !fds) {
		snprintf(why, len, "out of memory");
		goto out_free;
	}
	for (i = 0; i < im->nr_files; i++)
		if (im->files[i]->kind == FILE_KIND__FD_UNIX_SK)
			set.files[set.nr++] = im->files[i];
	ret = unix_verify_set(&set, why, len);
	if (ret) {
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "%s", why);
		snprintf(why, len, "files.img: %s", tmp);
	}
	if (!ret)
		ret = unix_restore_all(&set, st->floor, fds, why, len);
	if (ret)
		goto out_free;
	for (i = 0; i < set.nr; i++) {
		ret = rst_fstore_put(st, set.files[i]->id, fds[i], why, len);
		if (ret) {
			while (++i < set.nr)
				close(fds[i]);
			break;
		}
	}
out_free:
	free(fds);
	free(set.files);
	return ret;
}
