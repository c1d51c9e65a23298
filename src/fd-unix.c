/*
 * fd-unix.c - dump and verify of unix sockets (restore: fd-unix-restore.c).
 *
 * What the kernel knows of each socket comes from one sock_diag dump of
 * AF_UNIX (every state, names, vfs inodes, peers, icons, queue lengths,
 * shutdown), taken once per dump when the first socket of the tree is met:
 * the tree is frozen then, so nothing it holds changes under us. Options
 * and the queued data come from the socket itself, through a pidfd_getfd
 * copy: the same open file description, so getsockopt reads the target's
 * values and recv(MSG_PEEK) its queue.
 *
 * Reading a queue without taking anything out of it: SO_PEEK_OFF makes
 * each MSG_PEEK start where the previous one stopped. The offset is state
 * of the target's socket: we read its value first and put it back after.
 * Control messages come along: SCM_RIGHTS fds still in flight are refused
 * (peeking installs copies of them into lazarus; those are closed at once),
 * SCM_CREDENTIALS are dropped (see lazarus(8)).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/unix_diag.h>
#include <netinet/tcp.h> /* TCP_ESTABLISHED, TCP_LISTEN, TCP_CLOSE */
#include <netlink/attr.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "fd-kind.h"
#include "fd-unix.h"
#include "sk-diag.h"

#define UNIX_NAME_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))
#define RCV_SHUTDOWN 1
#define SEND_SHUTDOWN 2

/* One unix socket of the network namespace, as sock_diag tells it. */
struct unix_diag {
	uint32_t ino, type, state;
	uint32_t peer;	      /* 0: none or gone (see has_peer) */
	bool has_peer;	      /* UNIX_DIAG_PEER present: connected (peer 0: it has gone) */
	bool has_vfs;	      /* bound to a path: the socket file's inode */
	uint32_t vfs_ino, vfs_dev; /* vfs_dev in the kernel's encoding (MKDEV) */
	uint32_t rqlen, wqlen; /* listening: backlog length and listen()'s backlog */
	uint32_t shutdown;
	uint8_t name[UNIX_NAME_MAX];
	size_t namelen;	      /* 0: unnamed */
	uint32_t *icons;      /* listening: client inodes in backlog order (0: client gone) */
	size_t nr_icons;
};

/* A socket of the tree, dumped. */
struct unix_mine {
	pid_t pid;
	int fd;
	const struct unix_diag *d;
	UnixSkEntry *e; /* in its FileEntry (dump-files.c frees it) */
};

struct unix_dump {
	bool ext_unix_sk;
	bool collected;
	struct unix_diag *socks; /* sorted by ino */
	size_t nr, cap;
	struct unix_mine *mine;
	size_t nr_mine;
};

int unix_dump_new(struct unix_dump **out, bool ext_unix_sk)
{
	struct unix_dump *u = calloc(1, sizeof(*u));

	if (!u)
		return -ENOMEM;
	u->ext_unix_sk = ext_unix_sk;
	*out = u;
	return 0;
}

void unix_dump_free(struct unix_dump *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->nr; i++)
		free(u->socks[i].icons);
	free(u->socks);
	free(u->mine);
	free(u);
}

/* ---- what the kernel says: sock_diag ---- */

static int diag_one(const struct nlmsghdr *h, void *arg)
{
	struct unix_dump *u = arg;
	const struct unix_diag_msg *m = NLMSG_DATA(h);
	struct nlattr *tb[UNIX_DIAG_MAX + 1];
	struct unix_diag *d;

	if (h->nlmsg_len < NLMSG_LENGTH(sizeof(*m)) || sk_diag_attrs(h, sizeof(*m), tb, UNIX_DIAG_MAX))
		return -EBADMSG;
	if (u->nr == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 256;
		struct unix_diag *n = realloc(u->socks, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		u->socks = n;
		u->cap = cap;
	}
	d = &u->socks[u->nr];
	memset(d, 0, sizeof(*d));
	d->ino = m->udiag_ino;
	d->type = m->udiag_type;
	d->state = m->udiag_state;
	if (tb[UNIX_DIAG_NAME]) {
		d->namelen = (size_t)nla_len(tb[UNIX_DIAG_NAME]);
		if (d->namelen > UNIX_NAME_MAX)
			return -EBADMSG;
		memcpy(d->name, nla_data(tb[UNIX_DIAG_NAME]), d->namelen);
	}
	if (tb[UNIX_DIAG_VFS] && nla_len(tb[UNIX_DIAG_VFS]) >= (int)sizeof(struct unix_diag_vfs)) {
		const struct unix_diag_vfs *v = nla_data(tb[UNIX_DIAG_VFS]);

		d->has_vfs = true;
		d->vfs_ino = v->udiag_vfs_ino;
		d->vfs_dev = v->udiag_vfs_dev;
	}
	if (tb[UNIX_DIAG_PEER]) {
		d->has_peer = true;
		d->peer = nla_get_u32(tb[UNIX_DIAG_PEER]);
	}
	if (tb[UNIX_DIAG_RQLEN] &&
	    nla_len(tb[UNIX_DIAG_RQLEN]) >= (int)sizeof(struct unix_diag_rqlen)) {
		const struct unix_diag_rqlen *r = nla_data(tb[UNIX_DIAG_RQLEN]);

		d->rqlen = r->udiag_rqueue;
		d->wqlen = r->udiag_wqueue;
	}
	if (tb[UNIX_DIAG_SHUTDOWN])
		d->shutdown = nla_get_u8(tb[UNIX_DIAG_SHUTDOWN]);
	if (tb[UNIX_DIAG_ICONS]) {
		size_t n = (size_t)nla_len(tb[UNIX_DIAG_ICONS]) / sizeof(uint32_t);

		d->icons = malloc((n ? n : 1) * sizeof(uint32_t));
		if (!d->icons)
			return -ENOMEM;
		memcpy(d->icons, nla_data(tb[UNIX_DIAG_ICONS]), n * sizeof(uint32_t));
		d->nr_icons = n;
	}
	u->nr++;
	return 0;
}

static int cmp_diag(const void *a, const void *b)
{
	const struct unix_diag *x = a, *y = b;

	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

static int diag_collect(struct unix_dump *u)
{
	struct unix_diag_req req = {
		.sdiag_family = AF_UNIX,
		.udiag_states = ~0U,
		.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER |
			      UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN,
	};
	char why[160] = "";
	int ret;

	if (u->collected)
		return 0;
	ret = sk_diag_dump(&req, sizeof(req), diag_one, u, why, sizeof(why));
	if (ret) {
		pr_err("listing unix sockets: %s", why[0] ? why : strerror(-ret));
		return ret;
	}
	qsort(u->socks, u->nr, sizeof(*u->socks), cmp_diag);
	u->collected = true;
	return 0;
}

static const struct unix_diag *diag_find(const struct unix_dump *u, uint64_t ino)
{
	struct unix_diag key = { .ino = (uint32_t)ino };

	if (!ino || ino > UINT32_MAX)
		return NULL;
	return bsearch(&key, u->socks, u->nr, sizeof(*u->socks), cmp_diag);
}

int unix_dump_is_unix(struct unix_dump *u, uint64_t ino, bool *yes)
{
	int ret = diag_collect(u);

	if (!ret)
		*yes = diag_find(u, ino) != NULL;
	return ret;
}

/* ---- what the socket says: options and queue ---- */

static const char *type_name(uint32_t type)
{
	switch (type) {
	case SOCK_STREAM:
		return "stream";
	case SOCK_DGRAM:
		return "datagram";
	case SOCK_SEQPACKET:
		return "seqpacket";
	default:
		return "unknown type";
	}
}

static int get_int(int fd, int opt, int *val)
{
	socklen_t l = sizeof(*val);

	return getsockopt(fd, SOL_SOCKET, opt, val, &l) ? -errno : 0;
}

static int get_timeo(int fd, int opt, uint64_t *us)
{
	struct timeval tv;
	socklen_t l = sizeof(tv);

	if (getsockopt(fd, SOL_SOCKET, opt, &tv, &l))
		return -errno;
	*us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	return 0;
}

static int dump_opts(int fd, UnixSkEntry *e)
{
	int snd, rcv, cred, sec, peek;
	int ret;

	ret = get_int(fd, SO_SNDBUF, &snd);
	if (!ret)
		ret = get_int(fd, SO_RCVBUF, &rcv);
	if (!ret)
		ret = get_int(fd, SO_PASSCRED, &cred);
	if (!ret)
		ret = get_int(fd, SO_PASSSEC, &sec);
	if (!ret)
		ret = get_int(fd, SO_PEEK_OFF, &peek);
	if (!ret)
		ret = get_timeo(fd, SO_RCVTIMEO, &e->rcvtimeo_us);
	if (!ret)
		ret = get_timeo(fd, SO_SNDTIMEO, &e->sndtimeo_us);
	if (ret)
		return ret;
	e->sndbuf = (uint32_t)snd;
	e->rcvbuf = (uint32_t)rcv;
	e->has_passcred = e->passcred = cred != 0;
	e->has_passsec = e->passsec = sec != 0;
	e->has_rcvtimeo_us = e->rcvtimeo_us != 0;
	e->has_sndtimeo_us = e->sndtimeo_us != 0;
	e->has_peek_off = peek >= 0;
	e->peek_off = peek;
	return 0;
}

struct peek_ctx {
	pid_t pid;
	int fd, local;
	uint32_t type;
	uint8_t *buf;
	size_t size;
};

/* Close what a peek installed; true if it carried fds (SCM_RIGHTS). */
static bool close_passed_fds(struct msghdr *mh)
{
	bool rights = false;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		rights = true;
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			close(fd);
		}
	}
	return rights;
}

static int add_msg(UnixSkEntry *e, const uint8_t *data, size_t len, const struct sockaddr_un *from,
		   socklen_t fromlen)
{
	UnixSkMsg **n = realloc(e->rqueue, (e->n_rqueue + 1) * sizeof(*n));
	UnixSkMsg *m;

	if (!n)
		return -ENOMEM;
	e->rqueue = n;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	unix_sk_msg__init(m);
	m->data.data = malloc(len ? len : 1);
	if (!m->data.data) {
		free(m);
		return -ENOMEM;
	}
	memcpy(m->data.data, data, len);
	m->data.len = len;
	if (fromlen > sizeof(sa_family_t)) {
		m->has_from = true;
		m->from.len = fromlen - sizeof(sa_family_t);
		m->from.data = malloc(m->from.len);
		if (!m->from.data) {
			free(m->data.data);
			free(m);
			return -ENOMEM;
		}
		memcpy(m->from.data, from->sun_path, m->from.len);
	}
	e->rqueue[e->n_rqueue++] = m;
	e->rq_bytes += len;
	return 0;
}

/*
 * One MSG_PEEK at byte offset OFF of the queue. Returns the length read
 * (the whole message for datagrams: the buffer grows until it fits),
 * -EAGAIN at the end of the queue, -EPIPE when a datagram socket shut for
 * reading has nothing left, -EOPNOTSUPP for fds in flight.
 */
static ssize_t peek_at(struct peek_ctx *pc, int off, struct sockaddr_un *from, socklen_t *fromlen)
{
	union {
		char buf[CMSG_SPACE(253 * sizeof(int)) + CMSG_SPACE(64)];
		struct cmsghdr align;
	} cbuf;

	for (;;) {
		struct iovec iov = { pc->buf, pc->size };
		struct msghdr mh = {
			.msg_name = from,
			.msg_namelen = sizeof(*from),
			.msg_iov = &iov,
			.msg_iovlen = 1,
			.msg_control = cbuf.buf,
			.msg_controllen = sizeof(cbuf.buf),
		};
		ssize_t n;

		if (setsockopt(pc->local, SOL_SOCKET, SO_PEEK_OFF, &off, sizeof(off)))
			return -errno;
		n = recvmsg(pc->local, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		if (close_passed_fds(&mh) || (mh.msg_flags & MSG_CTRUNC))
			return -EOPNOTSUPP;
		*fromlen = mh.msg_namelen;
		if (pc->type == SOCK_STREAM || (size_t)n <= pc->size)
			return n;
		/* A datagram longer than the buffer: again, whole. */
		uint8_t *nb = realloc(pc->buf, (size_t)n);

		if (!nb)
			return -ENOMEM;
		pc->buf = nb;
		pc->size = (size_t)n;
	}
}

static int peek_queue(struct peek_ctx *pc, const struct unix_diag *d, UnixSkEntry *e)
{
	int off = 0;

	for (;;) {
		struct sockaddr_un from;
		socklen_t fromlen = 0;
		ssize_t n = peek_at(pc, off, &from, &fromlen);

		if (n == -EAGAIN)
			return 0;
		if (n == -EOPNOTSUPP) {
			pr_err("process %d fd %d: unix %s socket: file descriptors in flight (SCM_RIGHTS "
			       "queued, not yet received): not supported",
			       pc->pid, pc->fd, type_name(d->type));
			return -EOPNOTSUPP;
		}
		if (n < 0) {
			pr_err("process %d fd %d: reading the queue of its unix socket: %s", pc->pid,
			       pc->fd, strerror((int)-n));
			return (int)n;
		}
		if (n == 0) {
			/* A stream at EOF, or a shut socket with nothing left. */
			if (pc->type == SOCK_STREAM || (d->shutdown & RCV_SHUTDOWN))
				return 0;
			pr_err("process %d fd %d: unix %s socket: an empty message is queued: not "
			       "supported",
			       pc->pid, pc->fd, type_name(d->type));
			return -EOPNOTSUPP;
		}
		if (pc->type != SOCK_DGRAM)
			fromlen = 0; /* only a datagram's sender can differ from the peer */
		n = add_msg(e, pc->buf, (size_t)n, &from, fromlen);
		if (n)
			return (int)n;
		if (e->rq_bytes > INT32_MAX) {
			pr_err("process %d fd %d: unix socket queue over 2 GiB: not supported", pc->pid,
			       pc->fd);
			return -EOPNOTSUPP;
		}
		off = (int)e->rq_bytes;
	}
}

static int dump_queue(pid_t pid, int fd, int local, const struct unix_diag *d, UnixSkEntry *e)
{
	struct peek_ctx pc = { .pid = pid, .fd = fd, .local = local, .type = d->type };
	int ret;

	pc.size = 64 << 10;
	pc.buf = malloc(pc.size);
	if (!pc.buf)
		return -ENOMEM;
	ret = peek_queue(&pc, d, e);
	free(pc.buf);
	/* Put the target's peek offset back (-1: off). */
	if (setsockopt(local, SOL_SOCKET, SO_PEEK_OFF, &e->peek_off, sizeof(e->peek_off)) && !ret) {
		ret = -errno;
		pr_err("process %d fd %d: restoring SO_PEEK_OFF: %s", pid, fd, strerror(errno));
	}
	if (!ret && d->type == SOCK_STREAM && d->rqlen != e->rq_bytes) {
		pr_err("process %d fd %d: unix stream socket: read %llu queued bytes, the kernel "
		       "counts %u",
		       pid, fd, (unsigned long long)e->rq_bytes, d->rqlen);
		ret = -EIO;
	}
	return ret;
}

static int set_bytes(ProtobufCBinaryData *b, const void *data, size_t len)
{
	b->data = malloc(len ? len : 1);
	if (!b->data)
		return -ENOMEM;
	memcpy(b->data, data, len);
	b->len = len;
	return 0;
}

static int add_mine(struct unix_dump *u, pid_t pid, int fd, const struct unix_diag *d,
		    UnixSkEntry *e)
{
	struct unix_mine *n = realloc(u->mine, (u->nr_mine + 1) * sizeof(*n));

	if (!n)
		return -ENOMEM;
	u->mine = n;
	n[u->nr_mine++] = (struct unix_mine){ .pid = pid, .fd = fd, .d = d, .e = e };
	return 0;
}

int unix_dump_one(struct unix_dump *u, pid_t pid, int fd, int local, uint64_t ino,
		  UnixSkEntry **out)
{
	const struct unix_diag *d;
	UnixSkEntry *e;
	int ret;

	ret = diag_collect(u);
	if (ret)
		return ret;
	d = diag_find(u, ino);
	if (!d) {
		pr_err("process %d fd %d: unix socket socket:[%llu] is not in sock_diag's list "
		       "(another network namespace?): not supported",
		       pid, fd, (unsigned long long)ino);
		return -EOPNOTSUPP;
	}
	if (d->type != SOCK_STREAM && d->type != SOCK_DGRAM && d->type != SOCK_SEQPACKET) {
		pr_err("process %d fd %d: unix socket of type %u: not supported", pid, fd, d->type);
		return -EOPNOTSUPP;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	unix_sk_entry__init(e);
	*out = e; /* the caller's from here on, also on failure */
	e->ino = d->ino;
	e->type = d->type;
	e->state = d->state;
	e->has_shutdown = d->shutdown != 0;
	e->shutdown = d->shutdown;
	ret = add_mine(u, pid, fd, d, e);
	if (ret)
		return ret;
	if (d->namelen) {
		e->has_name = true;
		ret = set_bytes(&e->name, d->name, d->namelen);
		if (ret)
			return ret;
	}
	ret = dump_opts(local, e);
	if (ret) {
		pr_err("process %d fd %d: reading its unix socket's options: %s", pid, fd,
		       strerror(-ret));
		return ret;
	}
	if (d->state == TCP_LISTEN) {
		e->has_backlog = true;
		e->backlog = d->wqlen;
	} else {
		ret = dump_queue(pid, fd, local, d, e);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- the tree as a whole: peers, listeners, backlogs ---- */

static struct unix_mine *mine_find(const struct unix_dump *u, uint32_t ino)
{
	for (size_t i = 0; i < u->nr_mine; i++)
		if (u->mine[i].d->ino == ino)
			return &u->mine[i];
	return NULL;
}

/* The listener of the tree whose backlog holds client INO; NULL if none. */
static struct unix_mine *backlog_of(const struct unix_dump *u, uint32_t ino)
{
	for (size_t i = 0; i < u->nr_mine; i++) {
		const struct unix_diag *d = u->mine[i].d;

		for (size_t k = 0; d->state == TCP_LISTEN && k < d->nr_icons; k++)
			if (d->icons[k] == ino)
				return &u->mine[i];
	}
	return NULL;
}

static bool same_name(const struct unix_diag *a, const struct unix_diag *b)
{
	return a->namelen && a->namelen == b->namelen && !memcmp(a->name, b->name, a->namelen) &&
	       a->has_vfs == b->has_vfs && (!a->has_vfs || (a->vfs_ino == b->vfs_ino &&
							    a->vfs_dev == b->vfs_dev));
}

/*
 * A connected stream or seqpacket socket that shares its name (and socket
 * file) with a listening socket was accepted from it: the kernel gives an
 * accepted socket its listener's address. NULL if no listener of the
 * namespace has the name.
 */
static const struct unix_diag *listener_of(const struct unix_dump *u, const struct unix_diag *d)
{
	if (d->type == SOCK_DGRAM || d->state != TCP_ESTABLISHED || !d->namelen)
		return NULL;
	for (size_t i = 0; i < u->nr; i++) {
		const struct unix_diag *l = &u->socks[i];

		if (l->state == TCP_LISTEN && l->type == d->type && same_name(l, d))
			return l;
	}
	return NULL;
}

static int check_backlog(const struct unix_dump *u, const struct unix_mine *m)
{
	const struct unix_diag *d = m->d;

	for (size_t k = 0; k < d->nr_icons; k++) {
		const struct unix_mine *c = mine_find(u, d->icons[k]);

		if (!d->icons[k]) {
			pr_err("process %d fd %d: unix listening socket: a connection waiting in its "
			       "backlog was closed by its client: not supported",
			       m->pid, m->fd);
			return -EOPNOTSUPP;
		}
		if (!c) {
			pr_err("process %d fd %d: unix listening socket: the client socket:[%u] "
			       "waiting in its backlog is outside the dumped tree: not supported",
			       m->pid, m->fd, d->icons[k]);
			return -EOPNOTSUPP;
		}
		/*
		 * The embryo (the server end, not accepted yet) has no inode, so
		 * sock_diag does not list it; what the client sent into it is
		 * still charged to the client's send buffer (its wqlen).
		 */
		if (c->d->wqlen) {
			pr_err("process %d fd %d: unix listening socket: the connection of process %d "
			       "fd %d waiting in its backlog has data queued: not supported",
			       m->pid, m->fd, c->pid, c->fd);
			return -EOPNOTSUPP;
		}
	}
	m->e->n_icons = d->nr_icons;
	m->e->icons = malloc((d->nr_icons ? d->nr_icons : 1) * sizeof(uint32_t));
	if (!m->e->icons)
		return -ENOMEM;
	memcpy(m->e->icons, d->icons, d->nr_icons * sizeof(uint32_t));
	return 0;
}

/* The listener of the namespace whose backlog holds client INO; NULL if none. */
static const struct unix_diag *any_backlog_of(const struct unix_dump *u, uint32_t ino)
{
	for (size_t i = 0; i < u->nr; i++) {
		const struct unix_diag *d = &u->socks[i];

		for (size_t k = 0; d->state == TCP_LISTEN && k < d->nr_icons; k++)
			if (d->icons[k] == ino)
				return d;
	}
	return NULL;
}

/*
 * A peer outside the tree (P: the peer, or the listener in whose backlog
 * the socket waits): refused, or with --ext-unix-sk reconnected by name.
 */
static int check_external(const struct unix_dump *u, const struct unix_mine *m,
			  const struct unix_diag *p)
{
	const char *hint = u->ext_unix_sk ? "" : " (--ext-unix-sk reconnects it by name)";

	if (!u->ext_unix_sk || !p || !p->namelen) {
		pr_err("process %d fd %d: unix %s socket connected to socket:[%u] outside the "
		       "dumped tree%s: not supported%s",
		       m->pid, m->fd, type_name(m->d->type), p ? p->ino : m->d->peer,
		       p && p->namelen ? "" : ", which has no name",
		       p && p->namelen ? hint : "");
		return -EOPNOTSUPP;
	}
	if (m->e->rq_bytes && m->d->type != SOCK_DGRAM) {
		pr_err("process %d fd %d: unix %s socket connected outside the tree with %llu bytes "
		       "queued from it: --ext-unix-sk cannot put them back",
		       m->pid, m->fd, type_name(m->d->type), (unsigned long long)m->e->rq_bytes);
		return -EOPNOTSUPP;
	}
	m->e->has_ext_peer = true;
	return set_bytes(&m->e->ext_peer, p->name, p->namelen);
}

/* A name bound to a path: its socket file must still be the one the socket made. */
static int check_socket_file(const struct unix_mine *m)
{
	const struct unix_diag *d = m->d;
	char path[UNIX_NAME_MAX + 1];
	struct stat st;

	memcpy(path, d->name, d->namelen);
	path[d->namelen] = '\0';
	if (path[0] != '/') {
		pr_err("process %d fd %d: unix socket bound to the relative path %s: not supported",
		       m->pid, m->fd, path);
		return -EOPNOTSUPP;
	}
	if (lstat(path, &st) || !S_ISSOCK(st.st_mode) || !d->has_vfs || st.st_ino != d->vfs_ino ||
	    st.st_dev != makedev(d->vfs_dev >> 20, d->vfs_dev & 0xfffff)) {
		pr_err("process %d fd %d: unix socket bound to %s: its socket file was removed or "
		       "replaced: not supported",
		       m->pid, m->fd, path);
		return -EOPNOTSUPP;
	}
	m->e->has_file_mode = m->e->has_file_uid = m->e->has_file_gid = true;
	m->e->file_mode = st.st_mode & 07777;
	m->e->file_uid = st.st_uid;
	m->e->file_gid = st.st_gid;
	return 0;
}

static int finish_one(struct unix_dump *u, struct unix_mine *m)
{
	const struct unix_diag *d = m->d, *l = listener_of(u, d);
	UnixSkEntry *e = m->e;

	if (l) {
		/* Accepted: restored through its listener when that is ours, else unnamed. */
		if (mine_find(u, l->ino)) {
			e->has_listener = true;
			e->listener = l->ino;
		}
		free(e->name.data);
		e->name.data = NULL;
		e->name.len = 0;
		e->has_name = false;
	} else if (d->namelen && d->name[0]) {
		int ret = check_socket_file(m);

		if (ret)
			return ret;
	}
	if (d->state == TCP_LISTEN)
		return check_backlog(u, m);
	/* A client waiting in a backlog of the tree: restored by connecting to it. */
	if (!d->has_peer || backlog_of(u, d->ino))
		return 0;
	if (!d->peer) {
		/* No inode: gone, or an embryo in the backlog of a listener outside. */
		const struct unix_diag *l = any_backlog_of(u, d->ino);

		if (l)
			return check_external(u, m, l);
		e->has_peer_closed = e->peer_closed = true;
		return 0;
	}
	if (mine_find(u, d->peer)) {
		const struct unix_mine *p = mine_find(u, d->peer);

		/* A datagram socket connected to one that is not connected back needs its name. */
		if (d->type == SOCK_DGRAM && !p->d->namelen &&
		    !(p->d->has_peer && p->d->peer == d->ino)) {
			pr_err("process %d fd %d: unix datagram socket connected to process %d fd %d, "
			       "which has no name and is connected elsewhere: not supported",
			       m->pid, m->fd, p->pid, p->fd);
			return -EOPNOTSUPP;
		}
		e->has_peer = true;
		e->peer = d->peer;
		return 0;
	}
	return check_external(u, m, diag_find(u, d->peer));
}

int unix_dump_finish(struct unix_dump *u)
{
	for (size_t i = 0; i < u->nr_mine; i++) {
		int ret = finish_one(u, &u->mine[i]);

		if (ret == -ENOMEM)
			pr_err("dumping unix sockets: %s", strerror(ENOMEM));
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- verify (restore, before anything is created) ---- */

#define vfail(...) (snprintf(why, len, __VA_ARGS__), -EBADMSG)

static bool valid_name(const ProtobufCBinaryData *n)
{
	const uint8_t *nul;

	if (!n->len || n->len > UNIX_NAME_MAX)
		return false;
	if (n->data[0] == '\0')
		return n->len > 1; /* abstract: any bytes */
	/* A path: absolute, at most a trailing NUL. */
	nul = memchr(n->data, '\0', n->len);
	return n->data[0] == '/' && (!nul || nul == n->data + n->len - 1);
}

int unix_verify_entry(const UnixSkEntry *e, char *why, size_t len)
{
	uint64_t sum = 0;
	int links;

	if (e->type != SOCK_STREAM && e->type != SOCK_DGRAM && e->type != SOCK_SEQPACKET)
		return vfail("unix socket %u: unknown type %u", e->ino, e->type);
	if (e->state != TCP_ESTABLISHED && e->state != TCP_CLOSE && e->state != TCP_LISTEN)
		return vfail("unix socket %u: unknown state %u", e->ino, e->state);
	if (!e->ino || (e->has_shutdown && e->shutdown > (RCV_SHUTDOWN | SEND_SHUTDOWN)))
		return vfail("unix socket %u: bad inode or shutdown", e->ino);
	if ((e->has_name && !valid_name(&e->name)) || (e->has_ext_peer && !valid_name(&e->ext_peer)))
		return vfail("unix socket %u: bad name", e->ino);
	if (e->has_name && e->name.data[0] &&
	    !(e->has_file_mode && e->has_file_uid && e->has_file_gid))
		return vfail("unix socket %u: path name without its file's owner and mode", e->ino);
	links = (e->has_peer && e->peer) + (e->has_peer_closed && e->peer_closed) + e->has_ext_peer;
	if (links > 1 || (e->has_peer && !e->peer))
		return vfail("unix socket %u: more than one peer", e->ino);
	if (e->state == TCP_LISTEN) {
		if (links || e->n_rqueue || !e->has_name || e->has_listener || e->type == SOCK_DGRAM)
			return vfail("unix socket %u: a listening socket with a peer, a queue or no "
				     "name", e->ino);
	} else if (e->n_icons || e->has_backlog) {
		return vfail("unix socket %u: a backlog but not listening", e->ino);
	}
	if (e->has_listener && !(e->has_peer && e->peer))
		return vfail("unix socket %u: accepted without a peer", e->ino);
	for (size_t i = 0; i < e->n_rqueue; i++) {
		const UnixSkMsg *m = e->rqueue[i];

		if (m->has_from && (e->type != SOCK_DGRAM || !valid_name(&m->from)))
			return vfail("unix socket %u: message %zu: bad sender", e->ino, i);
		if (!m->data.len)
			return vfail("unix socket %u: message %zu is empty", e->ino, i);
		sum += m->data.len;
	}
	if (sum != e->rq_bytes)
		return vfail("unix socket %u: its queue holds %llu bytes, the entry says %llu "
			     "(cut or corrupted)", e->ino, (unsigned long long)sum,
			     (unsigned long long)e->rq_bytes);
	if (e->n_rqueue && e->type != SOCK_DGRAM && !(e->has_peer || e->peer_closed))
		return vfail("unix socket %u: a queue but no peer to write it", e->ino);
	return 0;
}

static const UnixSkEntry *set_find(const struct unix_rst_set *set, uint32_t ino)
{
	for (size_t i = 0; i < set->nr; i++)
		if (set->files[i]->unix_sk->ino == ino)
			return set->files[i]->unix_sk;
	return NULL;
}

static bool is_icon(const struct unix_rst_set *set, uint32_t ino, size_t *count)
{
	*count = 0;
	for (size_t i = 0; i < set->nr; i++) {
		const UnixSkEntry *l = set->files[i]->unix_sk;

		for (size_t k = 0; k < l->n_icons; k++)
			*count += l->icons[k] == ino;
	}
	return *count != 0;
}

static int verify_links(const struct unix_rst_set *set, const UnixSkEntry *e, char *why,
			size_t len)
{
	const UnixSkEntry *p = e->has_peer ? set_find(set, e->peer) : NULL;
	size_t icons;

	if (e->has_peer && !p)
		return vfail("unix socket %u: its peer %u is not in files.img", e->ino, e->peer);
	if (p && (p->type != e->type || p->state == TCP_LISTEN))
		return vfail("unix socket %u: its peer %u is of another type", e->ino, e->peer);
	if (p && e->type != SOCK_DGRAM && !(p->has_peer && p->peer == e->ino))
		return vfail("unix socket %u: its peer %u is connected elsewhere", e->ino, e->peer);
	if (p && e->type == SOCK_DGRAM && !p->has_name && !(p->has_peer && p->peer == e->ino))
		return vfail("unix socket %u: its peer %u has no name", e->ino, e->peer);
	if (e->has_listener) {
		const UnixSkEntry *l = set_find(set, e->listener);

		if (!l || l->state != TCP_LISTEN || l->type != e->type || p->has_listener)
			return vfail("unix socket %u: accepted from %u, not a listener of its kind",
				     e->ino, e->listener);
	}
	if (is_icon(set, e->ino, &icons) && (icons > 1 || e->has_peer || e->has_listener ||
					     e->state != TCP_ESTABLISHED || e->n_rqueue))
		return vfail("unix socket %u: waits in a backlog and is connected otherwise",
			     e->ino);
	for (size_t k = 0; k < e->n_icons; k++) {
		const UnixSkEntry *c = set_find(set, e->icons[k]);

		if (!c || c->type != e->type)
			return vfail("unix socket %u: the client %u in its backlog is not in "
				     "files.img", e->ino, e->icons[k]);
	}
	return 0;
}

int unix_verify_set(const struct unix_rst_set *set, char *why, size_t len)
{
	for (size_t i = 0; i < set->nr; i++) {
		const UnixSkEntry *e = set->files[i]->unix_sk;
		int ret;

		for (size_t j = 0; j < i; j++)
			if (set->files[j]->unix_sk->ino == e->ino)
				return vfail("unix socket %u is in files.img twice", e->ino);
		ret = verify_links(set, e, why, len);
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- the kind (fd-kind.h) ---- */

static bool unix_match(const struct fd_probe *p)
{
	struct fd_dump_ctx *c = p->ctx;
	bool yes = false;

	if (!S_ISSOCK(p->st.st_mode))
		return false;
	if (!c->unix_sk && unix_dump_new(&c->unix_sk, c->ext_unix_sk))
		return true; /* dump() says what failed */
	/* Not listed: another family (or network namespace), refused as a socket. */
	return unix_dump_is_unix(c->unix_sk, (uint64_t)p->st.st_ino, &yes) || yes;
}

static int unix_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	int local, ret;

	(void)imgs;
	if (!p->ctx->unix_sk) {
		pr_err("process %d fd %d: %s", p->pid, p->fd, strerror(ENOMEM));
		return -ENOMEM;
	}
	local = fd_probe_getfd(p);
	if (local < 0)
		return local;
	ret = unix_dump_one(p->ctx->unix_sk, p->pid, p->fd, local, (uint64_t)p->st.st_ino,
			    &e->unix_sk);
	if (ret == -ENOMEM)
		pr_err("process %d fd %d: %s", p->pid, p->fd, strerror(ENOMEM));
	return ret;
}

static int unix_finish(struct fd_dump_ctx *c)
{
	return c->unix_sk ? unix_dump_finish(c->unix_sk) : 0;
}

static void unix_dump_fini(struct fd_dump_ctx *c)
{
	unix_dump_free(c->unix_sk);
	c->unix_sk = NULL;
}

static int unix_verify(const FileEntry *e, char *why, size_t len)
{
	if (!e->unix_sk) {
		snprintf(why, len, "unix socket without its unix_sk entry");
		return -EBADMSG;
	}
	return unix_verify_entry(e->unix_sk, why, len);
}

const struct fd_kind fd_kind_unix = {
	.kind = FILE_KIND__FD_UNIX_SK,
	.name = "unix socket",
	.match = unix_match,
	.dump = unix_dump,
	.verify = unix_verify,
	.check = unix_check,
	.open = unix_open,
	.finish = unix_finish,
	.dump_fini = unix_dump_fini,
};
