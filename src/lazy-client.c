/*
 * lazy-client.c - the restore side of the lazy-pages protocol: connect to
 * (or start) the daemon, hand processes over with their userfaultfds, say
 * when the restore is finished. See lazy-client.h for the order of calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lazy-client.h"
#include "lazy-daemon.h"
#include "lazy-sock.h"
#include "log.h"

struct lazy_client {
	int sock;
	int dirfd; /* work dir, keeps a /proc/self/fd socket path valid */
	uint32_t seq;
	pid_t daemon_pid;
	struct lz_msg msg;
	char err[256];
};

static int client_fail(struct lazy_client *c, int ret, const char *fmt, ...) __printf(3, 4);
static int client_fail(struct lazy_client *c, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	return ret;
}

const char *lazy_client_error(const struct lazy_client *c)
{
	return c->err;
}

pid_t lazy_client_daemon_pid(const struct lazy_client *c)
{
	return c->daemon_pid;
}

static int client_try_connect(struct lazy_client *c, const char *work_dir)
{
	struct sockaddr_un sa;
	socklen_t len;
	int ret = lz_sock_addr(work_dir, c->dirfd, &sa, &len);

	if (ret)
		return ret;
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0)
		return -errno;
	if (connect(c->sock, (struct sockaddr *)&sa, len)) {
		ret = -errno;
		close(c->sock);
		c->sock = -1;
	}
	return ret;
}

/* The daemon, in a grandchild in its own session: it outlives the restore. */
static void client_daemon_child(const struct lazy_client_opts *o, const char *work_dir,
				int ready)
{
	struct lazy_daemon_opts d;
	sigset_t all;
	int null;

	lz_close_fds_except(&ready, 1);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd <= STDERR_FILENO && null >= 0; fd++)
		dup2(null, fd);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	log_init(o->log_level ? o->log_level : LOG_INFO, -1);
	if (log_open_file(work_dir, o->log_file ? o->log_file : "lazy-pages.log"))
		_exit(1);
	lazy_daemon_opts_init(&d);
	d.images_dir = o->images_dir;
	d.work_dir = work_dir;
	d.ready_fd = ready;
	d.detached = true;
	_exit(lazy_daemon_run(&d) ? 1 : 0);
}

static int client_spawn(struct lazy_client *c, const struct lazy_client_opts *o,
			const char *work_dir)
{
	int pfd[2], status;
	ssize_t n;
	char b;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC))
		return client_fail(c, -errno, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return client_fail(c, -errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(pfd[0]);
		setsid();
		pid = fork();
		if (pid == 0)
			client_daemon_child(o, work_dir, pfd[1]);
		_exit(pid < 0);
	}
	close(pfd[1]);
	waitpid(pid, &status, 0);
	do
		n = read(pfd[0], &b, 1);
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	return n == 1 ? 0 : -ECHILD;
}

static int client_wait(struct lazy_client *c, uint32_t seq)
{
	struct lz_lazy_reply r;
	const char *why = NULL;
	int ret;

	for (;;) {
		ret = lz_msg_recv(c->sock, &c->msg, &why);
		if (ret)
			return client_fail(c, ret == -ENODATA ? -ECONNRESET : ret,
					   "lazy-pages daemon: %s",
					   why ? why : ret == -ENODATA ? "it hung up" :
					   ret == -EAGAIN ? "no answer (timeout)" : strerror(-ret));
		lz_msg_close_fds(&c->msg);
		/* seq 0: the daemon refused a message it could not even frame. */
		if (c->msg.hdr.type == LZ_LAZY_REPLY && c->msg.hdr.len == sizeof(r) &&
		    (c->msg.hdr.seq == seq || c->msg.hdr.seq == 0))
			break;
	}
	memcpy(&r, c->msg.payload, sizeof(r));
	r.msg[sizeof(r.msg) - 1] = '\0';
	c->daemon_pid = (pid_t)r.pid;
	if (r.status >= 0)
		return 0;
	return client_fail(c, r.status, "lazy-pages daemon: %s", r.msg);
}

static int client_request(struct lazy_client *c, uint16_t type, const struct iovec *iov,
			  int niov)
{
	uint32_t seq = ++c->seq;
	int ret = lz_msg_sendv(c->sock, type, seq, iov, niov, NULL, 0);

	if (ret)
		return client_fail(c, ret, "lazy-pages daemon: send: %s", strerror(-ret));
	return client_wait(c, seq);
}

static int client_open(struct lazy_client *c, const struct lazy_client_opts *o,
		       const char *work_dir)
{
	int ret = client_try_connect(c, work_dir);

	if ((ret == -ENOENT || ret == -ECONNREFUSED) && o->spawn) {
		/* A failed spawn may mean another one won the race: try anyway. */
		client_spawn(c, o, work_dir);
		ret = client_try_connect(c, work_dir);
	}
	return ret;
}

#define CONNECT_RETRIES 100 /* x 20 ms */

int lazy_client_connect(const struct lazy_client_opts *o, struct lazy_client **out)
{
	const char *work_dir = o->work_dir ? o->work_dir : o->images_dir;
	unsigned ms = o->timeout_ms ? o->timeout_ms : 60000;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	struct lz_lazy_hello h = { .role = LZ_LAZY_ROLE_RESTORE };
	struct iovec v = { &h, sizeof(h) };
	struct lazy_client *c = calloc(1, sizeof(*c));
	int ret;

	*out = c;
	if (!c)
		return -ENOMEM;
	c->sock = -1;
	c->dirfd = -1;
	c->dirfd = open(work_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->dirfd < 0)
		return client_fail(c, -errno, "work directory %s: %s", work_dir, strerror(errno));
	for (int attempt = 0;; attempt++) {
		ret = client_open(c, o, work_dir);
		if (ret)
			return client_fail(c, ret, "no lazy-pages daemon in %s (%s/%s: %s)",
					   work_dir, work_dir, LZ_LAZY_SOCK_NAME, strerror(-ret));
		setsockopt(c->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		ret = client_request(c, LZ_LAZY_HELLO, &v, 1);
		/*
		 * A daemon whose last pages just went in is on its way out: it
		 * may still take the connection, then hang up. Its successor
		 * (or one we start) will answer: try again for a while.
		 */
		if ((ret != -ECONNRESET && ret != -EPIPE) || attempt == CONNECT_RETRIES)
			return ret;
		close(c->sock);
		c->sock = -1;
		usleep(20000);
	}
}

static int client_send_ranges(struct lazy_client *c, const struct lz_lazy_range *r, uint32_t n)
{
	while (n) {
		uint32_t k = MIN(n, (uint32_t)LZ_LAZY_RANGES_PER_MSG);
		struct iovec v = { (void *)r, k * sizeof(*r) };
		int ret = lz_msg_sendv(c->sock, LZ_LAZY_RANGES, c->seq, &v, 1, NULL, 0);

		if (ret)
			return client_fail(c, ret, "lazy-pages daemon: send: %s", strerror(-ret));
		r += k;
		n -= k;
	}
	return 0;
}

/* The PROCESS message, its RANGES, then the one reply. */
int lazy_client_add(struct lazy_client *c, const struct lazy_client_proc *p)
{
	uint32_t first = MIN(p->nr_ranges, (uint32_t)LZ_LAZY_RANGES_PER_MSG);
	struct lz_lazy_process m = {
		.pid = p->pid, .img_id = p->img_id, .features = p->features, .ioctls = p->ioctls,
		.nr_ranges = p->nr_ranges, .nr_here = first,
	};
	struct iovec v[2] = { { &m, sizeof(m) }, { (void *)p->ranges, first * sizeof(*p->ranges) } };
	int fds[2] = { p->uffd, p->pidfd }, own = -1, ret;
	uint32_t seq;

	if (fds[1] < 0)
		fds[1] = own = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (fds[1] >= 0)
		m.flags |= LZ_LAZY_PF_PIDFD;
	seq = ++c->seq;
	ret = lz_msg_sendv(c->sock, LZ_LAZY_PROCESS, seq, v, first ? 2 : 1, fds,
			   fds[1] >= 0 ? 2 : 1);
	if (own >= 0)
		close(own);
	if (ret)
		return client_fail(c, ret, "lazy-pages daemon: send: %s", strerror(-ret));
	ret = client_send_ranges(c, p->ranges + first, p->nr_ranges - first);
	if (ret)
		return ret;
	return client_wait(c, seq);
}

int lazy_client_finish(struct lazy_client *c)
{
	return client_request(c, LZ_LAZY_FINISHED, NULL, 0);
}

void lazy_client_close(struct lazy_client *c)
{
	if (!c)
		return;
	if (c->sock >= 0)
		close(c->sock);
	if (c->dirfd >= 0)
		close(c->dirfd);
	free(c);
}
