/*
 * lazy-client.c - the restore side of the lazy-pages protocol: connect to
 * (or start) the daemon, hand processes over with their userfaultfds, say
 * when the restore is finished. See lazy-client.h for the order of calls.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lazy-client.h"
#include "lazy-daemon.h"
#include "lazy-sock.h"
#include "log.h"
#include "safe-file.h"

struct lazy_client {
	int sock;
	int dirfd; /* work dir, keeps a /proc/self/fd socket path valid */
	uint32_t seq;
	pid_t daemon_pid;
	unsigned timeout_ms;  /* each connect, send and wait for a reply */
	char sock_name[4200]; /* WORKDIR/lazy-pages.sock, for messages */
	struct lz_msg msg;
	char err[512];
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

static uint64_t client_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * The socket file, before connecting: in a directory only we or root can
 * write (checked at connect), it must be a socket owned by us or root, not
 * a symlink to somebody else's. -ENOENT when there is none.
 */
static int client_check_sock_file(struct lazy_client *c)
{
	struct stat st;

	if (fstatat(c->dirfd, LZ_LAZY_SOCK_NAME, &st, AT_SYMLINK_NOFOLLOW))
		return errno == ENOENT ? -ENOENT :
		       client_fail(c, -errno, "%s: %s", c->sock_name, strerror(errno));
	if (S_ISLNK(st.st_mode))
		return client_fail(c, -EPERM, "%s: is a symbolic link; refusing to hand a "
				   "userfaultfd to it", c->sock_name);
	if (!S_ISSOCK(st.st_mode))
		return client_fail(c, -EPERM, "%s: not a socket; refusing to hand a userfaultfd to "
				   "it", c->sock_name);
	if (!lz_uid_trusted(st.st_uid))
		return client_fail(c, -EPERM, "%s: owned by uid %u, not root or uid %u; refusing to "
				   "hand a userfaultfd to it", c->sock_name, (unsigned)st.st_uid,
				   (unsigned)geteuid());
	return 0;
}

/* 0 connected; -ENOENT/-ECONNREFUSED: nobody listens (c->err not set). */
static int client_try_connect(struct lazy_client *c, const char *work_dir)
{
	struct sockaddr_un sa;
	socklen_t len;
	int ret = client_check_sock_file(c);

	if (ret)
		return ret;
	ret = lz_sock_addr(work_dir, c->dirfd, &sa, &len);
	if (ret)
		return client_fail(c, ret, "%s: %s", c->sock_name, strerror(-ret));
	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0)
		return client_fail(c, -errno, "socket: %s", strerror(errno));
	ret = lz_sock_timeouts(c->sock, c->timeout_ms);
	if (!ret)
		ret = lz_sock_connect(c->sock, &sa, len);
	if (ret) {
		close(c->sock);
		c->sock = -1;
	}
	if (ret == -ETIMEDOUT)
		return client_fail(c, ret, "%s: the lazy-pages daemon did not accept the connection "
				   "within %u ms", c->sock_name, c->timeout_ms);
	if (ret && ret != -ENOENT && ret != -ECONNREFUSED)
		return client_fail(c, ret, "%s: %s", c->sock_name, strerror(-ret));
	return ret;
}

/*
 * Who listens: root or our own uid, else the uffd of the process we restore
 * (with everything it may do to that memory) would go to another user.
 */
static int client_check_peer(struct lazy_client *c)
{
	struct ucred cr;
	int ret = lz_peer_cred(c->sock, &cr);

	if (ret)
		return client_fail(c, ret, "%s: SO_PEERCRED: %s", c->sock_name, strerror(-ret));
	if (!lz_uid_trusted(cr.uid))
		return client_fail(c, -EPERM, "%s: the listener (pid %d) runs as uid %u, not root "
				   "or uid %u; refusing to hand a userfaultfd to it", c->sock_name,
				   cr.pid, (unsigned)cr.uid, (unsigned)geteuid());
	return 0;
}

/* The daemon, in a grandchild in its own session: it outlives the restore. */
static void client_daemon_child(const struct lazy_client_opts *o, const char *work_dir,
				int ready)
{
	struct lazy_daemon_opts d;
	char why[SF_WHY_MAX];
	sigset_t all;
	int null, log;

	lz_close_fds_except(&ready, 1);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd <= STDERR_FILENO && null >= 0; fd++)
		dup2(null, fd);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	log_init(o->log_level ? o->log_level : LOG_INFO, -1);
	log = log_open_file_why(work_dir, o->log_file ? o->log_file : "lazy-pages.log", why);
	if (log) {
		/* No log to say it in: the restore that waits for the ready
		 * byte reads this line instead. */
		dprintf(ready, "its log %s/%s: %s", work_dir,
			o->log_file ? o->log_file : "lazy-pages.log", why);
		_exit(1);
	}
	lazy_daemon_opts_init(&d);
	d.images_dir = o->images_dir;
	d.work_dir = work_dir;
	d.ready_fd = ready;
	d.detached = true;
	d.trust_images_of = o->trust_images_of;
	_exit(lazy_daemon_run(&d) ? 1 : 0);
}

static int client_spawn(struct lazy_client *c, const struct lazy_client_opts *o,
			const char *work_dir)
{
	struct pollfd pfd = { .events = POLLIN };
	int p[2], status, n;
	char line[256];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC))
		return client_fail(c, -errno, "pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return client_fail(c, -errno, "fork: %s", strerror(errno));
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		pid = fork();
		if (pid == 0)
			client_daemon_child(o, work_dir, p[1]);
		_exit(pid < 0);
	}
	close(p[1]);
	waitpid(pid, &status, 0); /* the middle child exits right after its fork */
	/* The daemon writes a byte when it listens, a line when it cannot
	 * even log, or exits without a word. */
	pfd.fd = p[0];
	do
		n = poll(&pfd, 1, (int)c->timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n == 1) {
		ssize_t got;

		do
			got = read(p[0], line, sizeof(line) - 1);
		while (got < 0 && errno == EINTR);
		line[got > 0 ? got : 0] = '\0';
		n = got == 1 && line[0] == 1 ? 0 : -ECHILD;
		if (got > 0 && line[0] != 1)
			n = client_fail(c, -EPERM, "%s: the lazy-pages daemon it started failed: %s",
					c->sock_name, line);
	} else {
		n = n == 0 ? -ETIMEDOUT : -ECHILD;
	}
	close(p[0]);
	return n;
}

static int client_wait(struct lazy_client *c, uint32_t seq, const char *what)
{
	uint64_t deadline = client_now_ms() + c->timeout_ms;
	struct lz_lazy_reply r;
	const char *why = NULL;
	int ret;

	for (;;) {
		struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
		uint64_t now = client_now_ms();
		int n = now < deadline ? poll(&pfd, 1, (int)(deadline - now)) : 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n == 0)
			return client_fail(c, -ETIMEDOUT, "%s: the lazy-pages daemon did not answer "
					   "%s within %u ms", c->sock_name, what, c->timeout_ms);
		ret = n < 0 ? -errno : lz_msg_recv(c->sock, &c->msg, &why);
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

static int client_send_fail(struct lazy_client *c, int ret, const char *what)
{
	if (ret == -EAGAIN)
		return client_fail(c, -ETIMEDOUT, "%s: the lazy-pages daemon did not take %s within "
				   "%u ms", c->sock_name, what, c->timeout_ms);
	return client_fail(c, ret, "lazy-pages daemon: send: %s", strerror(-ret));
}

static int client_request(struct lazy_client *c, uint16_t type, const struct iovec *iov,
			  int niov, const char *what)
{
	uint32_t seq = ++c->seq;
	int ret = lz_msg_sendv(c->sock, type, seq, iov, niov, NULL, 0);

	if (ret)
		return client_send_fail(c, ret, what);
	return client_wait(c, seq, what);
}

static int client_open(struct lazy_client *c, const struct lazy_client_opts *o,
		       const char *work_dir)
{
	int ret = client_try_connect(c, work_dir);

	if ((ret == -ENOENT || ret == -ECONNREFUSED) && o->spawn) {
		/* A failed spawn may mean another one won the race: try anyway. */
		ret = client_spawn(c, o, work_dir);
		if (ret == -ETIMEDOUT)
			return client_fail(c, -ETIMEDOUT, "%s: the lazy-pages daemon it started did "
					   "not get ready within %u ms", c->sock_name,
					   c->timeout_ms);
		if (ret == -EPERM)
			return ret;
		ret = client_try_connect(c, work_dir);
	}
	if (ret == -ENOENT || ret == -ECONNREFUSED)
		return client_fail(c, ret, "no lazy-pages daemon in %s (%s: %s)", work_dir,
				   c->sock_name, strerror(-ret));
	if (!ret)
		ret = client_check_peer(c);
	return ret;
}

#define CONNECT_RETRIES 100 /* x 20 ms */

static unsigned client_timeout(const struct lazy_client_opts *o)
{
	const char *env = getenv(LAZY_CLIENT_TIMEOUT_ENV);
	char *end;
	unsigned long v;

	if (o->timeout_ms)
		return o->timeout_ms;
	if (env && *env) {
		errno = 0;
		v = strtoul(env, &end, 10);
		if (!errno && !*end && v > 0 && v <= 3600000)
			return (unsigned)v;
	}
	return LAZY_CLIENT_TIMEOUT_MS;
}

int lazy_client_connect(const struct lazy_client_opts *o, struct lazy_client **out)
{
	const char *work_dir = o->work_dir ? o->work_dir : o->images_dir;
	struct lz_lazy_hello h = { .role = LZ_LAZY_ROLE_RESTORE };
	struct iovec v = { &h, sizeof(h) };
	struct lazy_client *c = calloc(1, sizeof(*c));
	char why[SF_WHY_MAX];
	int ret;

	*out = c;
	if (!c)
		return -ENOMEM;
	c->sock = -1;
	c->timeout_ms = client_timeout(o);
	snprintf(c->sock_name, sizeof(c->sock_name), "%s/%s", work_dir, LZ_LAZY_SOCK_NAME);
	if (o->dump_id)
		memcpy(h.dump_id, o->dump_id, sizeof(h.dump_id));
	/* Before anything is sent, or a daemon started: whoever else can write
	 * there could put their own socket in place (the directory rule of
	 * safe-file.h: ours or root's, nobody else may write, not a symlink). */
	c->dirfd = sf_dir_open_checked(AT_FDCWD, work_dir, 0, why);
	if (c->dirfd == -EPERM || c->dirfd == -ELOOP)
		return client_fail(c, c->dirfd, "%s: its directory: %s; refusing to hand a "
				   "userfaultfd to it", c->sock_name, why);
	if (c->dirfd < 0)
		return client_fail(c, c->dirfd, "work directory %s: %s", work_dir, why);
	for (int attempt = 0;; attempt++) {
		ret = client_open(c, o, work_dir);
		if (ret)
			return ret;
		ret = client_request(c, LZ_LAZY_HELLO, &v, 1, "HELLO");
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
			return client_send_fail(c, ret, "RANGES");
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
		return client_send_fail(c, ret, "PROCESS");
	ret = client_send_ranges(c, p->ranges + first, p->nr_ranges - first);
	if (ret)
		return ret;
	return client_wait(c, seq, "PROCESS");
}

int lazy_client_shmem(struct lazy_client *c, const struct lz_lazy_shmem_obj *o, uint32_t n)
{
	struct iovec v = { (void *)o, n * sizeof(*o) };

	return client_request(c, LZ_LAZY_SHMEM, &v, 1, "SHMEM");
}

int lazy_client_finish(struct lazy_client *c)
{
	return client_request(c, LZ_LAZY_FINISHED, NULL, 0, "FINISHED");
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
