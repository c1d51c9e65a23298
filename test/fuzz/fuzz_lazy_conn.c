/*
 * fuzz_lazy_conn.c - libFuzzer target for the lazy-pages daemon's client
 * handling beyond the framing (src/lazy-conn.c): HELLO, PROCESS, RANGES and
 * FINISHED in any order and shape, with fds attached, over a real
 * SOCK_SEQPACKET socket pair, through conn_readable() as the daemon's loop
 * calls it.
 *
 * The per-process side (lazy-proc.c) and epoll are test doubles here: no
 * uffd is needed, and nothing is ever killed. The double of lpi_add() is
 * the oracle: a process handed over must come with a uffd (and a pidfd
 * when flagged), exactly the announced number of ranges, each non-empty and
 * not wrapping. After each input no fd and no memory may be left behind
 * (LeakSanitizer), and a refused connection must be gone.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lazy-int.h"
#include "log.h"
#include "records.h"

static struct lazy_daemon *d_;

/* --- test doubles of lazy-daemon.c and lazy-proc.c --- */

int daemon_epoll_add(struct lazy_daemon *d, int fd, struct lazy_handler *h, enum lazy_hkind kind,
		     void *obj)
{
	(void)d, (void)fd, (void)h, (void)kind, (void)obj;
	return 0;
}

void daemon_epoll_del(struct lazy_daemon *d, int fd)
{
	(void)d, (void)fd;
}

int lpi_add(struct lazy_daemon *d, struct lazy_conn *c, struct lazy_add *a, char *why,
	    size_t whylen)
{
	struct lpi *p;

	if (a->uffd < 0 || fcntl(a->uffd, F_GETFD) < 0)
		abort(); /* no uffd */
	if (a->pidfd != -1 && fcntl(a->pidfd, F_GETFD) < 0)
		abort();
	if ((a->pidfd != -1) != !!(c->add.flags & LZ_LAZY_PF_PIDFD) || a->pid <= 0)
		abort();
	if (a->nr_ranges != c->add.nr_ranges)
		abort(); /* not every announced range */
	for (uint32_t i = 0; i < a->nr_ranges; i++)
		if (a->ranges[i].start >= a->ranges[i].end)
			abort(); /* an empty or wrapping range */
	close(a->uffd);
	if (a->pidfd >= 0)
		close(a->pidfd);
	if (a->pid & 1) {
		snprintf(why, whylen, "pid %d: refused by the test double", a->pid);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		abort();
	p->d = d;
	p->conn = c;
	p->pid = a->pid;
	p->uffd = p->pidfd = -1;
	p->next = d->procs;
	d->procs = p;
	return 0;
}

int lshm_add(struct lazy_daemon *d, const struct lz_dump_id *id,
	     const struct lz_lazy_shmem_obj *w, uint32_t n, char *why, size_t len)
{
	(void)d, (void)id;
	if (!n || n > LZ_LAZY_SHMEM_MAX)
		abort(); /* conn_shmem must bound the count */
	if (w[0].id & 1) {
		snprintf(why, len, "object %u: refused by the test double", w[0].id);
		return -EINVAL;
	}
	return 0;
}

void lpi_set_finished(struct lpi *p)
{
	p->finished = true;
}

void lpi_kill(struct lpi *p, const char *fmt, ...)
{
	if (p->finished)
		abort(); /* killed a process whose restore finished */
	p->pid = 0;
	(void)fmt;
}

/* --- the target --- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(LOG_MSG, -1);
	d_ = calloc(1, sizeof(*d_));
	if (!d_)
		abort();
	d_->epfd = -1;
	strcpy(d_->work_dir, "/fuzz");
	return 0;
}

static int send_rec(int sock, uint8_t tag, const uint8_t *p, size_t len)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 4)];
	} cbuf;
	struct lz_lazy_hdr h = { LZ_LAZY_MAGIC, LZ_LAZY_VERSION, 0, 0, 1 };
	struct iovec v[2] = { { (void *)p, len } };
	struct msghdr mh = { .msg_iov = v, .msg_iovlen = 1 };
	int nfds = MIN(tag & FZ_C_NFDS, 4U), fds[4];
	ssize_t n;

	if ((tag & FZ_C_FRAMED) && len) {
		h.type = p[0];
		h.len = (uint32_t)len - 1;
		v[0] = (struct iovec){ &h, sizeof(h) };
		v[1] = (struct iovec){ (void *)(p + 1), len - 1 };
		mh.msg_iovlen = 2;
	}
	for (int i = 0; i < nfds; i++)
		if ((fds[i] = eventfd(0, EFD_CLOEXEC)) < 0) {
			perror("eventfd");
			abort();
		}
	if (nfds) {
		struct cmsghdr *cm;

		mh.msg_control = cbuf.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * (size_t)nfds);
	}
	n = sendmsg(sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
	for (int i = 0; i < nfds; i++)
		close(fds[i]);
	return n < 0 ? -1 : 0;
}

static int count_fds(void)
{
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;

	if (!dir)
		abort();
	while (readdir(dir))
		n++;
	closedir(dir);
	return n;
}

static bool conn_alive(const struct lazy_conn *c)
{
	for (const struct lazy_conn *x = d_->conns; x; x = x->next)
		if (x == c)
			return true;
	return false;
}

static void drain(int sock)
{
	struct lz_lazy_hdr h[9];

	while (recv(sock, h, sizeof(h), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lazy_conn *c;
	const uint8_t *p;
	int sv[2], nr_fds = count_fds();
	uint8_t tag;
	size_t len;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		abort();
	fcntl(sv[1], F_SETFL, O_NONBLOCK);
	c = calloc(1, sizeof(*c));
	if (!c)
		abort();
	c->d = d_;
	c->fd = sv[1];
	c->peer = 4242;
	d_->conns = c;

	while (conn_alive(c) && fz_next(&data, &size, &tag, &p, &len)) {
		if (len > LZ_LAZY_MAX_MSG || send_rec(sv[0], tag, p, len))
			continue;
		conn_readable(c);
		drain(sv[0]);
	}
	if (conn_alive(c)) {
		/* The client hangs up: what is unfinished must go with it. */
		shutdown(sv[0], SHUT_WR);
		conn_readable(c);
		if (conn_alive(c))
			abort(); /* a hangup did not close the connection */
	}
	for (struct lpi *pp = d_->procs; pp; pp = pp->next)
		if (pp->conn)
			abort(); /* still points at the closed connection */
	close(sv[0]);
	while (d_->procs) {
		struct lpi *pp = d_->procs;

		d_->procs = pp->next;
		free(pp);
	}
	if (count_fds() != nr_fds) {
		fprintf(stderr, "%d fds open, %d before\n", count_fds(), nr_fds);
		abort(); /* an fd was left open */
	}
	return 0;
}
