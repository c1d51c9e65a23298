/*
 * lazy-conn.c - the lazy-pages daemon's client connections: accept, check
 * who is calling, parse protocol messages (lazy-proto.h) strictly, and hand
 * each announced process to lazy-proc.c. Anything malformed refuses that
 * connection alone, with one log line saying why.
 */
#define LOG_PREFIX "lazy-pages: "

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lazy-int.h"
#include "log.h"

#define MAX_RANGES (1U << 20) /* registered ranges of one process */

static void conn_close(struct lazy_conn *c)
{
	struct lazy_daemon *d = c->d;

	for (struct lazy_conn **pp = &d->conns; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	for (struct lpi *p = d->procs; p; p = p->next) {
		if (p->conn != c)
			continue;
		/* Handed over by a restore that never said it finished: the
		 * restore failed, and the process must not run half restored. */
		if (!p->finished)
			lpi_kill(p, "the restore that handed it over went away before it finished");
		p->conn = NULL;
	}
	for (int i = 0; i < c->add_nfds; i++)
		close(c->add_fds[i]);
	free(c->ranges);
	daemon_epoll_del(d, c->fd);
	close(c->fd);
	free(c);
}

static void conn_refuse(struct lazy_conn *c, uint32_t seq, const char *fmt, ...) __printf(3, 4);
static void conn_refuse(struct lazy_conn *c, uint32_t seq, const char *fmt, ...)
{
	char msg[240];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err("client pid %d: %s; connection refused", c->peer, msg);
	lz_reply(c->fd, seq, -EPROTO, "%s", msg);
	conn_close(c);
}

void conn_accept(struct lazy_daemon *d)
{
	for (;;) {
		struct ucred cr;
		socklen_t len = sizeof(cr);
		struct lazy_conn *c;
		int fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				pr_warn_perror("accept");
			return;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) || !lz_uid_trusted(cr.uid)) {
			pr_err("connection from pid %d uid %d refused: only root or uid %d may hand "
			       "processes over", cr.pid, cr.uid, geteuid());
			close(fd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->d = d;
		c->fd = fd;
		c->peer = cr.pid;
		/* A client that connects and says nothing must not hold a slot of
		 * ours forever (it never blocks the loop: sockets are non-blocking). */
		c->t_deadline_ns = lz_now_ns() + (uint64_t)d->o.conn_timeout_ms * 1000000;
		c->next = d->conns;
		d->conns = c;
		if (daemon_epoll_add(d, fd, &c->h, H_CONN, c))
			conn_close(c);
	}
}

/*
 * The dump this daemon serves is the one whose inventory.img is in its
 * images directory now (read at each HELLO: a new dump committed there
 * since the start is the one served). A restore of another dump, even of
 * the same pid, would get wrong memory: refuse it before it hands anything
 * over.
 */
static int conn_check_dump(struct lazy_conn *c, char *why, size_t len)
{
	struct lazy_daemon *d = c->d;
	char a[LZ_DUMP_ID_HEX], b[LZ_DUMP_ID_HEX], whyr[320];
	struct img_reader r;
	int ret = src_read_image(d->dirfd, &d->trust, "inventory.img", LZ_IMG_INVENTORY, &r, whyr,
				 sizeof(whyr));

	if (ret) {
		snprintf(why, len, "%s/%s", d->images_dir, whyr);
		return ret;
	}
	if (!lz_dump_id_eq(&r.dump_id, &c->dump_id)) {
		snprintf(why, len, "%s/inventory.img: this daemon serves dump %s, not dump %s of "
			 "this restore", d->images_dir, lz_dump_id_hex(&r.dump_id, a),
			 lz_dump_id_hex(&c->dump_id, b));
		ret = -ESTALE;
	}
	img_reader_close(&r);
	return ret;
}

static int conn_hello(struct lazy_conn *c, struct lz_msg *m)
{
	static const uint8_t zero[LZ_LAZY_DUMP_ID_LEN];
	struct lz_lazy_hello h;
	char why[PATH_MAX + 320];
	int ret;

	if (c->hello || m->hdr.len != sizeof(h) || m->nfds) {
		conn_refuse(c, m->hdr.seq, "malformed or repeated HELLO");
		return -EPROTO;
	}
	memcpy(&h, m->payload, sizeof(h));
	if (h.flags || h.reserved ||
	    (h.role != LZ_LAZY_ROLE_RESTORE && h.role != LZ_LAZY_ROLE_RESUME) ||
	    (h.role == LZ_LAZY_ROLE_RESUME && memcmp(h.dump_id, zero, sizeof(zero)))) {
		conn_refuse(c, m->hdr.seq, "HELLO with unknown role or flags");
		return -EPROTO;
	}
	if (h.role == LZ_LAZY_ROLE_RESUME) {
		pr_warn("client pid %d asked to resume, but this daemon is alive", c->peer);
		lz_reply(c->fd, m->hdr.seq, -EBUSY, "lazy-pages daemon pid %d is alive and serving "
			 "%s; there is nothing to resume", getpid(), c->d->work_dir);
		conn_close(c);
		return -EBUSY;
	}
	memcpy(&c->dump_id, h.dump_id, sizeof(c->dump_id));
	ret = conn_check_dump(c, why, sizeof(why));
	if (ret) {
		pr_err("client pid %d refused: %s", c->peer, why);
		lz_reply(c->fd, m->hdr.seq, ret, "%s", why);
		conn_close(c);
		return ret;
	}
	c->hello = true;
	c->t_deadline_ns = 0;
	c->d->nr_clients++;
	return lz_reply(c->fd, m->hdr.seq, 0, "lazy-pages daemon pid %d ready", getpid());
}

/* Ranges arrive as {start, len}; keep them as [start, end). */
static int conn_take_ranges(struct lazy_conn *c, const uint8_t *p, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		struct lz_lazy_range r;

		memcpy(&r, p + i * sizeof(r), sizeof(r));
		if (!r.len || r.start > UINT64_MAX - r.len)
			return -EINVAL;
		c->ranges[c->nr_ranges++] = (struct lr_range){ r.start, r.start + r.len };
	}
	return 0;
}

static int conn_add_done(struct lazy_conn *c)
{
	struct lazy_add a = {
		.pid = c->add.pid,
		.img_id = c->add.img_id,
		.dump_id = &c->dump_id,
		.features = c->add.features,
		.uffd = c->add_fds[0],
		.pidfd = c->add_nfds > 1 ? c->add_fds[1] : -1,
		.ranges = c->ranges,
		.nr_ranges = c->nr_ranges,
	};
	char why[256] = "";
	int ret;

	c->add_nfds = 0; /* lpi_add owns them now */
	c->adding = false;
	c->t_deadline_ns = 0;
	ret = lpi_add(c->d, c, &a, why, sizeof(why));
	free(c->ranges);
	c->ranges = NULL;
	c->nr_ranges = 0;
	if (ret) {
		pr_err("%s", why);
		return lz_reply(c->fd, c->add_seq, ret, "%s", why);
	}
	return lz_reply(c->fd, c->add_seq, 0, "serving pid %d", a.pid);
}

static int conn_process(struct lazy_conn *c, struct lz_msg *m)
{
	struct lz_lazy_process *p = &c->add;
	size_t have;

	if (!c->hello || c->finished || c->adding || m->hdr.len < sizeof(*p)) {
		conn_refuse(c, m->hdr.seq, "PROCESS out of order or too short");
		return -EPROTO;
	}
	memcpy(p, m->payload, sizeof(*p));
	have = m->hdr.len - sizeof(*p);
	if (p->pid <= 0 || p->reserved || (p->flags & ~LZ_LAZY_PF_PIDFD) ||
	    p->nr_here > p->nr_ranges || p->nr_ranges > MAX_RANGES ||
	    have != (size_t)p->nr_here * sizeof(struct lz_lazy_range) ||
	    m->nfds != 1 + !!(p->flags & LZ_LAZY_PF_PIDFD)) {
		conn_refuse(c, m->hdr.seq, "malformed PROCESS (pid %d, %u fds)", p->pid, m->nfds);
		return -EPROTO;
	}
	c->ranges = malloc(((size_t)p->nr_ranges + 1) * sizeof(*c->ranges));
	if (!c->ranges) {
		lz_msg_close_fds(m);
		return lz_reply(c->fd, m->hdr.seq, -ENOMEM, "out of memory");
	}
	c->adding = true;
	c->t_deadline_ns = lz_now_ns() + (uint64_t)c->d->o.conn_timeout_ms * 1000000;
	c->add_seq = m->hdr.seq;
	memcpy(c->add_fds, m->fds, sizeof(int) * (size_t)m->nfds);
	c->add_nfds = m->nfds;
	m->nfds = 0;
	if (conn_take_ranges(c, m->payload + sizeof(*p), p->nr_here)) {
		conn_refuse(c, m->hdr.seq, "PROCESS pid %d: a range is empty or wraps", p->pid);
		return -EPROTO;
	}
	return c->nr_ranges == p->nr_ranges ? conn_add_done(c) : 0;
}

static int conn_ranges(struct lazy_conn *c, struct lz_msg *m)
{
	uint32_t n = m->hdr.len / sizeof(struct lz_lazy_range);

	if (!c->adding || m->nfds || m->hdr.len % sizeof(struct lz_lazy_range) ||
	    n > c->add.nr_ranges - c->nr_ranges) {
		conn_refuse(c, m->hdr.seq, "RANGES out of order or malformed");
		return -EPROTO;
	}
	if (conn_take_ranges(c, m->payload, n)) {
		conn_refuse(c, m->hdr.seq, "RANGES: a range is empty or wraps");
		return -EPROTO;
	}
	return c->nr_ranges == c->add.nr_ranges ? conn_add_done(c) : 0;
}

static int conn_finished(struct lazy_conn *c, struct lz_msg *m)
{
	unsigned n = 0;

	if (!c->hello || c->adding || c->finished || m->hdr.len || m->nfds) {
		conn_refuse(c, m->hdr.seq, "FINISHED out of order or malformed");
		return -EPROTO;
	}
	c->finished = true;
	for (struct lpi *p = c->d->procs; p; p = p->next)
		if (p->conn == c) {
			lpi_set_finished(p);
			n++;
		}
	pr_info("client pid %d: restore finished; background fill of its %u processes starts",
		c->peer, n);
	return lz_reply(c->fd, m->hdr.seq, 0, "%u processes will be filled", n);
}

/* The shared memory objects the restore serves lazily: before its processes. */
static int conn_shmem(struct lazy_conn *c, struct lz_msg *m)
{
	uint32_t n = m->hdr.len / sizeof(struct lz_lazy_shmem_obj);
	struct lz_lazy_shmem_obj *o;
	char why[320];
	int ret;

	if (!c->hello || c->adding || c->finished || m->nfds || !n ||
	    m->hdr.len % sizeof(*o) || n > LZ_LAZY_SHMEM_MAX) {
		conn_refuse(c, m->hdr.seq, "SHMEM out of order or malformed");
		return -EPROTO;
	}
	o = malloc(m->hdr.len);
	if (!o)
		return lz_reply(c->fd, m->hdr.seq, -ENOMEM, "out of memory");
	memcpy(o, m->payload, m->hdr.len);
	ret = lshm_add(c->d, &c->dump_id, o, n, why, sizeof(why));
	free(o);
	if (ret) {
		pr_err("client pid %d: %s", c->peer, why);
		return lz_reply(c->fd, m->hdr.seq, ret, "%s", why);
	}
	return lz_reply(c->fd, m->hdr.seq, 0, "%u shared memory objects will be served", n);
}

/* Nonzero: stop reading this connection (it may be gone). */
static int conn_dispatch(struct lazy_conn *c, struct lz_msg *m)
{
	switch (m->hdr.type) {
	case LZ_LAZY_HELLO:
		return conn_hello(c, m);
	case LZ_LAZY_PROCESS:
		return conn_process(c, m);
	case LZ_LAZY_RANGES:
		return conn_ranges(c, m);
	case LZ_LAZY_FINISHED:
		return conn_finished(c, m);
	case LZ_LAZY_SHMEM:
		return conn_shmem(c, m);
	default:
		lz_msg_close_fds(m);
		conn_refuse(c, m->hdr.seq, "unexpected message type %u", m->hdr.type);
		return -EPROTO;
	}
}

void conn_readable(struct lazy_conn *c)
{
	struct lz_msg *m = &c->d->msg;
	const char *why;

	for (;;) {
		int ret = lz_msg_recv(c->fd, m, &why);

		if (ret == -EAGAIN)
			return;
		if (ret == -ENODATA || ret == -ECONNRESET) {
			if (c->adding || (c->hello && !c->finished))
				pr_warn("client pid %d hung up before it finished", c->peer);
			conn_close(c);
			return;
		}
		if (ret) {
			conn_refuse(c, 0, "%s", why ? why : strerror(-ret));
			return;
		}
		ret = conn_dispatch(c, m);
		/* The fds of a refused message: a handler that keeps fds clears m->nfds. */
		lz_msg_close_fds(m);
		if (ret)
			return;
	}
}

int conn_expire(struct lazy_daemon *d)
{
	uint64_t now = lz_now_ns(), next = 0;
	struct lazy_conn *c, *nx;

	for (c = d->conns; c; c = nx) {
		nx = c->next;
		if (!c->t_deadline_ns)
			continue;
		if (now < c->t_deadline_ns) {
			next = next && next < c->t_deadline_ns ? next : c->t_deadline_ns;
			continue;
		}
		pr_err("client pid %d %s within %u ms; connection closed", c->peer,
		       c->hello ? "did not send the rest of its PROCESS (RANGES)" : "sent no HELLO",
		       d->o.conn_timeout_ms);
		conn_close(c);
	}
	return next ? (int)MIN((next - now) / 1000000 + 1, (uint64_t)INT32_MAX) : -1;
}

bool conn_pending(const struct lazy_daemon *d)
{
	for (const struct lazy_conn *c = d->conns; c; c = c->next)
		if (c->hello && !c->finished)
			return true;
	return false;
}

void conn_free_all(struct lazy_daemon *d)
{
	while (d->conns) {
		struct lazy_conn *c = d->conns;

		/* Normal exit: every connection has finished or left. */
		for (struct lpi *p = d->procs; p; p = p->next)
			if (p->conn == c)
				p->conn = NULL;
		d->conns = c->next;
		for (int i = 0; i < c->add_nfds; i++)
			close(c->add_fds[i]);
		free(c->ranges);
		close(c->fd);
		free(c);
	}
}
