/*
 * lzunix.c - unix sockets of every kind between two processes, each of
 * which checks after a restore what it holds.
 *
 *   lzunix --dir DIR                 the two processes below
 *   lzunix --dir DIR --ext PATH      one process, connected to a listener
 *                                    outside the tree (at PATH)
 *   lzunix --dir DIR --refuse WHAT   one process holding what dump refuses:
 *        inflight  a stream socketpair with an fd (SCM_RIGHTS) queued in
 *                  fd 10's receive queue; its check receives it, and
 *                  checks it is its stdout
 *        embryo    a listener (fd 10) with a client (fd 11) waiting in its
 *                  backlog that sent 1 byte; its check accepts and reads it
 *
 * Two processes: the parent (DIR) and its child (DIR/child). Set up before
 * the dump, nothing read since:
 *   st   stream socketpair parent-child, 3000 bytes queued each way;
 *        SO_RCVBUF set on the parent's end, SO_RCVTIMEO on the child's
 *   dg   datagram socketpair, the child sent 4 datagrams of 1, 100, 1000
 *        and 7 bytes; O_NONBLOCK on the parent's end
 *   sq   seqpacket socketpair, the parent sent 3 records of 5, 70000 and 1
 *        bytes; SO_PASSCRED on the child's end
 *   L    stream listener bound to DIR/sock (O_NONBLOCK, as A), two clients waiting in its
 *        backlog: c1 (parent, connected first), c2 (child)
 *   A    stream listener bound to the abstract name "lzunix-<pid>", with
 *        one connection accepted: a3 (parent) - c3 (child), 10 and 20
 *        bytes queued
 *   sh   stream socketpair: the parent wrote "bye" and shut it for writing
 *   R    datagram socket bound to DIR/dgram (parent), 2 datagrams queued
 *        from the child's S, bound to the abstract name "lzunix-s-<pid>"
 *   gone stream socket (parent) whose peer wrote 5 bytes and closed; SO_PEEK_OFF
 *        set to 2 after a peek; the parent reads 3 bytes from offset 2, then EOF
 *   dgone datagram socket (child) connected to one that closed: send fails
 *        with ECONNREFUSED
 *   a4   accepted (parent) from a listener at DIR/old.sock since closed and
 *        its file removed; its client c4 (child) sent "old!" into it
 * Each writes DIR/ready ("pid=P child=C") or DIR/child/ready ("pid=C"),
 * and answers SIGUSR1 with result: "PASS pid=P" or "FAIL pid=P: reasons".
 * Checks read the queues, so each runs once; the parent's check must run
 * before the child's (it accepts, then writes to c2 through the server
 * end). SIGTERM exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzunix"
#include "wl.h"


struct fds {
	int st[2], dg[2], sq[2], sh[2];
	int L, c1, c2;
	int A, a3, c3;
	int R, S;
	int gone, dgone;
	int a4, c4;
	int ext;
	int rcvbuf; /* SO_RCVBUF of st[0] as read before the dump */
};

struct check {
	char buf[4096];
	size_t len;
	int fails;
};

__attribute__((format(printf, 2, 3))) static void bad(struct check *c, const char *fmt, ...)
{
	va_list ap;

	if (c->len < sizeof(c->buf) - 2) {
		c->len += (size_t)snprintf(c->buf + c->len, sizeof(c->buf) - c->len, "%s",
					   c->fails ? "; " : "");
		va_start(ap, fmt);
		c->len += (size_t)vsnprintf(c->buf + c->len, sizeof(c->buf) - c->len, fmt, ap);
		va_end(ap);
		if (c->len > sizeof(c->buf) - 1)
			c->len = sizeof(c->buf) - 1;
	}
	c->fails++;
}

static uint8_t pat(int seed, size_t i)
{
	return (uint8_t)(seed * 31 + i * 7 + (i >> 8));
}

static void fill(uint8_t *b, size_t n, int seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = pat(seed, i);
}

static socklen_t path_addr(struct sockaddr_un *a, const char *dir, const char *name)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	snprintf(a->sun_path, sizeof(a->sun_path), "%s/%s", dir, name);
	return (socklen_t)sizeof(*a);
}

static socklen_t abstract_addr(struct sockaddr_un *a, const char *what, pid_t pid)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "lzunix%s-%d", what, pid);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

static int sock(int type)
{
	int fd = socket(AF_UNIX, type, 0);

	if (fd < 0)
		die("socket");
	return fd;
}

static void pair(int type, int sv[2])
{
	if (socketpair(AF_UNIX, type, 0, sv))
		die("socketpair");
}

static void send_pat(int fd, size_t n, int seed)
{
	uint8_t *b = malloc(n);

	if (!b)
		die("malloc");
	fill(b, n, seed);
	if (send(fd, b, n, MSG_DONTWAIT) != (ssize_t)n)
		die("send %zu", n);
	free(b);
}

/* Exactly N bytes of pattern SEED on stream FD, and nothing after them. */
static void expect_stream(struct check *c, const char *what, int fd, size_t n, int seed)
{
	uint8_t *b = malloc(n + 1);
	size_t got = 0;

	if (!b)
		die("malloc");
	while (got < n) {
		ssize_t r = recv(fd, b + got, n - got, MSG_DONTWAIT);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got != n)
		bad(c, "%s: read %zu bytes, want %zu", what, got, n);
	for (size_t i = 0; i < got; i++)
		if (b[i] != pat(seed, i)) {
			bad(c, "%s: byte %zu differs", what, i);
			break;
		}
	if (recv(fd, b, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		bad(c, "%s: more than %zu bytes queued", what, n);
	free(b);
}

/* One message of N bytes (boundaries kept). */
static void expect_msg(struct check *c, const char *what, int fd, size_t n, int seed,
		       struct sockaddr_un *from, socklen_t *fromlen)
{
	size_t cap = n + 64;
	uint8_t *b = malloc(cap);
	ssize_t r;

	if (!b)
		die("malloc");
	r = recvfrom(fd, b, cap, MSG_DONTWAIT, (struct sockaddr *)from, fromlen);
	if (r != (ssize_t)n)
		bad(c, "%s: message of %zd bytes, want %zu (%s)", what, r, n,
		    r < 0 ? strerror(errno) : "boundary lost");
	for (ssize_t i = 0; i < r && r == (ssize_t)n; i++)
		if (b[i] != pat(seed, (size_t)i)) {
			bad(c, "%s: byte %zd differs", what, i);
			break;
		}
	free(b);
}

static void expect_empty(struct check *c, const char *what, int fd)
{
	char x;

	if (recv(fd, &x, 1, MSG_DONTWAIT) != -1 || errno != EAGAIN)
		bad(c, "%s: more queued than expected", what);
}

/* The name FD is bound to equals WANT (LEN bytes). */
static void expect_name(struct check *c, const char *what, int fd, const struct sockaddr_un *want,
			socklen_t len, int peer)
{
	struct sockaddr_un a;
	socklen_t l = sizeof(a);
	int r = peer ? getpeername(fd, (struct sockaddr *)&a, &l)
		     : getsockname(fd, (struct sockaddr *)&a, &l);

	if (r || l != len || memcmp(a.sun_path, want->sun_path, len - offsetof(struct sockaddr_un, sun_path)))
		bad(c, "%s: %s is not %s%s", what, peer ? "peer name" : "name",
		    want->sun_path[0] ? "" : "@", want->sun_path[0] ? want->sun_path : want->sun_path + 1);
}

static int opt(int fd, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	getsockopt(fd, SOL_SOCKET, name, &v, &l);
	return v;
}

static int accept_one(struct check *c, int l, const char *what)
{
	int fd = accept4(l, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		bad(c, "%s: accept: %s", what, strerror(errno));
	return fd;
}

static void parent_check(struct check *c, struct fds *f, const char *dir, pid_t me)
{
	struct sockaddr_un a, from;
	socklen_t alen, flen;
	int x1, x2;

	expect_stream(c, "stream from child", f->st[0], 3000, 2);
	if (opt(f->st[0], SO_RCVBUF) != f->rcvbuf)
		bad(c, "SO_RCVBUF %d, want %d", opt(f->st[0], SO_RCVBUF), f->rcvbuf);
	if (!(fcntl(f->dg[0], F_GETFL) & O_NONBLOCK))
		bad(c, "dgram end lost O_NONBLOCK");
	expect_msg(c, "dgram 1", f->dg[0], 1, 10, NULL, NULL);
	expect_msg(c, "dgram 2", f->dg[0], 100, 11, NULL, NULL);
	expect_msg(c, "dgram 3", f->dg[0], 1000, 12, NULL, NULL);
	expect_msg(c, "dgram 4", f->dg[0], 7, 13, NULL, NULL);
	expect_empty(c, "dgram", f->dg[0]);
	/* The backlog: c1 first, then c2; the accepted end has the listener's name. */
	alen = path_addr(&a, dir, "sock");
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1);
	x1 = accept_one(c, f->L, "backlog 1");
	x2 = accept_one(c, f->L, "backlog 2");
	if (x1 >= 0 && x2 >= 0) {
		expect_name(c, "accepted 1", x1, &a, alen, 0);
		expect_name(c, "client 1", f->c1, &a, alen, 1);
		send_pat(f->c1, 50, 40);
		expect_stream(c, "client 1 to accepted 1", x1, 50, 40);
		send_pat(x1, 60, 41);
		expect_stream(c, "accepted 1 to client 1", f->c1, 60, 41);
		send_pat(x2, 70, 42); /* the child's check reads it on c2 */
		if (accept4(f->L, NULL, NULL, SOCK_NONBLOCK) >= 0 || errno != EAGAIN)
			bad(c, "a third connection in the backlog");
	}
	/* The accepted connection of the abstract listener. */
	alen = abstract_addr(&a, "", me);
	expect_name(c, "abstract accepted", f->a3, &a, alen, 0);
	expect_stream(c, "c3 to a3", f->a3, 20, 31);
	if (accept4(f->A, NULL, NULL, SOCK_NONBLOCK) >= 0 || errno != EAGAIN)
		bad(c, "abstract listener: a connection in its backlog");
	/* Shut for writing. */
	if (send(f->sh[0], "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT) != -1 || errno != EPIPE)
		bad(c, "write after SHUT_WR did not fail with EPIPE");
	/* R: two datagrams from S, by S's name. */
	for (int k = 0; k < 2; k++) {
		struct sockaddr_un s;
		socklen_t slen = abstract_addr(&s, "-s", getpid());

		flen = sizeof(from);
		expect_msg(c, k ? "R 2" : "R 1", f->R, k ? 33 : 22, 50 + k, &from, &flen);
		if (flen != slen || memcmp(from.sun_path, s.sun_path, slen - offsetof(struct sockaddr_un, sun_path)))
			bad(c, "R %d: sender address lost", k + 1);
	}
	expect_empty(c, "R", f->R);
	{
		char o[8];

		if (recv(f->a4, o, sizeof(o), MSG_DONTWAIT) != 4 || memcmp(o, "old!", 4))
			bad(c, "a4: \"old!\" lost");
	}
	/* The peer closed: SO_PEEK_OFF 2, so a peek reads from byte 2; then the data, then EOF. */
	{
		char g[8];

		if (opt(f->gone, SO_PEEK_OFF) != 2)
			bad(c, "gone: SO_PEEK_OFF %d, want 2", opt(f->gone, SO_PEEK_OFF));
		if (recv(f->gone, g, sizeof(g), MSG_PEEK | MSG_DONTWAIT) != 3 || memcmp(g, "ne!", 3))
			bad(c, "gone: peek at offset 2 did not read \"ne!\"");
		if (recv(f->gone, g, sizeof(g), MSG_DONTWAIT) != 5 || memcmp(g, "gone!", 5))
			bad(c, "gone: \"gone!\" lost");
		if (recv(f->gone, g, sizeof(g), MSG_DONTWAIT) != 0)
			bad(c, "gone: no EOF after its peer closed");
	}
	alen = path_addr(&a, dir, "dgram");
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(a.sun_path) + 1);
	expect_name(c, "R", f->R, &a, alen, 0);
}

static void child_check(struct check *c, struct fds *f)
{
	struct timeval tv;
	socklen_t l = sizeof(tv);
	char b[8];

	expect_stream(c, "stream from parent", f->st[1], 3000, 1);
	if (getsockopt(f->st[1], SOL_SOCKET, SO_RCVTIMEO, &tv, &l) || tv.tv_sec != 7 ||
	    tv.tv_usec != 500000)
		bad(c, "SO_RCVTIMEO lost");
	if (opt(f->sq[1], SO_PASSCRED) != 1)
		bad(c, "SO_PASSCRED lost");
	expect_msg(c, "seqpacket 1", f->sq[1], 5, 20, NULL, NULL);
	expect_msg(c, "seqpacket 2", f->sq[1], 70000, 21, NULL, NULL);
	expect_msg(c, "seqpacket 3", f->sq[1], 1, 22, NULL, NULL);
	expect_empty(c, "seqpacket", f->sq[1]);
	expect_stream(c, "server to c2", f->c2, 70, 42);
	expect_stream(c, "a3 to c3", f->c3, 10, 30);
	/* The parent shut sh for writing after "bye": read it, then EOF. */
	if (recv(f->sh[1], b, sizeof(b), MSG_DONTWAIT) != 3 || memcmp(b, "bye", 3))
		bad(c, "shut stream: \"bye\" lost");
	if (recv(f->sh[1], b, sizeof(b), MSG_DONTWAIT) != 0)
		bad(c, "shut stream: no EOF after the data");
	if (send(f->dgone, "x", 1, MSG_DONTWAIT) != -1 || errno != ECONNREFUSED)
		bad(c, "dgone: send to a closed peer did not fail with ECONNREFUSED");
}

static void ext_check(struct check *c, struct fds *f)
{
	char b[16];
	ssize_t n;

	if (send(f->ext, "ping\n", 5, MSG_NOSIGNAL) != 5) {
		bad(c, "ext: send: %s", strerror(errno));
		return;
	}
	n = recv(f->ext, b, sizeof(b), 0);
	if (n != 5 || memcmp(b, "ping\n", 5))
		bad(c, "ext: echo %zd bytes, want \"ping\"", n);
}

static void refuse_check(struct check *c, struct fds *f, const char *what)
{
	char b[4];

	if (!strcmp(what, "embryo")) {
		int a = accept4(10, NULL, NULL, SOCK_NONBLOCK);

		if (a < 0 || recv(a, b, sizeof(b), 0) != 1 || b[0] != 'x')
			bad(c, "embryo: the byte sent before accept is lost");
		return;
	}
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} cb;
	struct iovec iov = { b, sizeof(b) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf,
			     .msg_controllen = sizeof(cb.buf) };
	struct cmsghdr *cm;
	struct stat a, o;
	int fd = -1;

	(void)f;
	if (recvmsg(10, &mh, MSG_DONTWAIT) != 1 || !(cm = CMSG_FIRSTHDR(&mh)) ||
	    cm->cmsg_type != SCM_RIGHTS) {
		bad(c, "inflight: the fd in flight is lost");
		return;
	}
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	if (fstat(fd, &a) || fstat(1, &o) || a.st_ino != o.st_ino)
		bad(c, "inflight: the fd received is not stdout");
	close(fd);
}

static void serve(const char *dir, const char *who, pid_t me, struct fds *f)
{
	char text[4200 + 64];

	while (!term_requested) {
		if (check_requested) {
			struct check c = { .len = 0 };

			check_requested = 0;
			if (!strcmp(who, "parent"))
				parent_check(&c, f, dir, me);
			else if (!strcmp(who, "child"))
				child_check(&c, f);
			else if (!strcmp(who, "ext"))
				ext_check(&c, f);
			else
				refuse_check(&c, f, who);
			snprintf(text, sizeof(text), "%s pid=%d%s%s\n", c.fails ? "FAIL" : "PASS",
				 getpid(), c.fails ? ": " : "", c.fails ? c.buf : "");
			wl_publish(dir, "result", text);
		}
		usleep(1000);
	}
}

static void ready(const char *dir, const char *text)
{
	wl_publish(dir, "ready", text);
}

static void wait_file(const char *path)
{
	for (int i = 0; i < 60000; i++) {
		if (!access(path, F_OK))
			return;
		usleep(1000);
	}
	errno = ETIMEDOUT;
	die("waiting for %s", path);
}

static void setup_parent_side(struct fds *f, const char *dir, pid_t me)
{
	struct sockaddr_un a;
	socklen_t alen;
	int v = 65536;
	struct timeval tv = { 7, 500000 };

	pair(SOCK_STREAM, f->st);
	pair(SOCK_DGRAM, f->dg);
	pair(SOCK_SEQPACKET, f->sq);
	pair(SOCK_STREAM, f->sh);
	setsockopt(f->st[0], SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	f->rcvbuf = opt(f->st[0], SO_RCVBUF);
	setsockopt(f->st[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	v = 1;
	setsockopt(f->sq[1], SOL_SOCKET, SO_PASSCRED, &v, sizeof(v));
	fcntl(f->dg[0], F_SETFL, O_NONBLOCK);
	send_pat(f->st[0], 3000, 1);
	send_pat(f->sq[0], 5, 20);
	send_pat(f->sq[0], 70000, 21);
	send_pat(f->sq[0], 1, 22);
	if (send(f->sh[0], "bye", 3, 0) != 3 || shutdown(f->sh[0], SHUT_WR))
		die("shut");

	f->L = sock(SOCK_STREAM);
	alen = path_addr(&a, dir, "sock");
	if (bind(f->L, (struct sockaddr *)&a, alen) || listen(f->L, 8))
		die("listen %s", a.sun_path);
	fcntl(f->L, F_SETFL, O_NONBLOCK);
	f->c1 = sock(SOCK_STREAM);
	if (connect(f->c1, (struct sockaddr *)&a, alen))
		die("connect c1");

	f->A = sock(SOCK_STREAM);
	alen = abstract_addr(&a, "", me);
	if (bind(f->A, (struct sockaddr *)&a, alen) || listen(f->A, 4))
		die("listen abstract");
	f->c3 = sock(SOCK_STREAM); /* the child's */
	if (connect(f->c3, (struct sockaddr *)&a, alen))
		die("connect c3");
	f->a3 = accept(f->A, NULL, NULL);
	if (f->a3 < 0)
		die("accept a3");
	fcntl(f->A, F_SETFL, O_NONBLOCK);
	send_pat(f->a3, 10, 30);
	send_pat(f->c3, 20, 31);

	f->R = sock(SOCK_DGRAM);
	alen = path_addr(&a, dir, "dgram");
	if (bind(f->R, (struct sockaddr *)&a, alen))
		die("bind R");

	{
		int sv[2], two = 2;
		char g[2];

		pair(SOCK_STREAM, sv);
		if (send(sv[1], "gone!", 5, 0) != 5 || close(sv[1]))
			die("gone");
		f->gone = sv[0];

		int l4 = sock(SOCK_STREAM);

		alen = path_addr(&a, dir, "old.sock");
		f->c4 = sock(SOCK_STREAM); /* the child's */
		if (bind(l4, (struct sockaddr *)&a, alen) || listen(l4, 1) ||
		    connect(f->c4, (struct sockaddr *)&a, alen) ||
		    (f->a4 = accept(l4, NULL, NULL)) < 0 || close(l4) || unlink(a.sun_path) ||
		    send(f->c4, "old!", 4, 0) != 4)
			die("a4");
		if (setsockopt(f->gone, SOL_SOCKET, SO_PEEK_OFF, &(int){ 0 }, sizeof(int)) ||
		    recv(f->gone, g, 2, MSG_PEEK) != 2 ||
		    opt(f->gone, SO_PEEK_OFF) != two)
			die("peek_off");
	}
}

static void setup_child_side(struct fds *f, const char *dir, pid_t parent)
{
	struct sockaddr_un a, s;
	socklen_t alen, slen;

	send_pat(f->st[1], 3000, 2);
	send_pat(f->dg[1], 1, 10);
	send_pat(f->dg[1], 100, 11);
	send_pat(f->dg[1], 1000, 12);
	send_pat(f->dg[1], 7, 13);
	f->c2 = sock(SOCK_STREAM);
	alen = path_addr(&a, dir, "sock");
	if (connect(f->c2, (struct sockaddr *)&a, alen))
		die("connect c2");
	f->S = sock(SOCK_DGRAM);
	slen = abstract_addr(&s, "-s", parent);
	if (bind(f->S, (struct sockaddr *)&s, slen))
		die("bind S");
	{
		int sv[2];

		pair(SOCK_DGRAM, sv);
		close(sv[1]);
		f->dgone = sv[0];
	}
	alen = path_addr(&a, dir, "dgram");
	for (int k = 0; k < 2; k++) {
		uint8_t b[64];

		fill(b, k ? 33 : 22, 50 + k);
		if (sendto(f->S, b, k ? 33 : 22, 0, (struct sockaddr *)&a, alen) != (k ? 33 : 22))
			die("sendto R");
	}
}

/* Close in each process what belongs to the other, so each socket has one holder. */
static void close_others(struct fds *f, int child)
{
	int mine_parent[] = { f->st[1], f->dg[1], f->sq[1], f->sh[1], f->c3, f->c4 };
	int mine_child[] = { f->st[0], f->dg[0], f->sq[0], f->sh[0], f->L, f->c1, f->A, f->a3, f->R,
			     f->gone, f->a4 };

	if (child)
		for (size_t i = 0; i < sizeof(mine_child) / sizeof(int); i++)
			close(mine_child[i]);
	else
		for (size_t i = 0; i < sizeof(mine_parent) / sizeof(int); i++)
			close(mine_parent[i]);
}

static int run_ext(const char *dir, const char *path)
{
	struct fds f = { .ext = -1 };
	struct sockaddr_un a;
	char b[8], text[64];

	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	f.ext = sock(SOCK_STREAM);
	if (connect(f.ext, (struct sockaddr *)&a, sizeof(a)))
		die("connect %s", path);
	if (send(f.ext, "hi\n", 3, 0) != 3 || recv(f.ext, b, sizeof(b), 0) != 3)
		die("hello to %s", path);
	snprintf(text, sizeof(text), "pid=%d\n", getpid());
	ready(dir, text);
	serve(dir, "ext", getpid(), &f);
	return 0;
}

static int run_refuse(const char *dir, const char *what)
{
	struct fds f = { .ext = -1 };
	char text[64];
	int sv[2];

	if (!strcmp(what, "inflight")) {
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} cb;
		struct iovec iov = { "f", 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.buf,
				     .msg_controllen = sizeof(cb.buf) };
		struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
		int one = 1;

		pair(SOCK_STREAM, sv);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &one, sizeof(int));
		if (sendmsg(sv[0], &mh, 0) != 1)
			die("sendmsg");
		if (dup2(sv[1], 10) < 0 || dup2(sv[0], 11) < 0)
			die("dup2");
	} else {
		struct sockaddr_un a;
		socklen_t alen = path_addr(&a, dir, "refuse.sock");
		int l = sock(SOCK_STREAM), c = sock(SOCK_STREAM);

		if (bind(l, (struct sockaddr *)&a, alen) || listen(l, 4) ||
		    connect(c, (struct sockaddr *)&a, alen) || send(c, "x", 1, 0) != 1)
			die("embryo");
		if (dup2(l, 10) < 0 || dup2(c, 11) < 0)
			die("dup2");
		sv[0] = l;
		sv[1] = c;
	}
	close(sv[0]);
	close(sv[1]);
	snprintf(text, sizeof(text), "pid=%d\n", getpid());
	ready(dir, text);
	serve(dir, what, getpid(), &f);
	return 0;
}

int main(int argc, char **argv)
{
	const char *dir = NULL, *ext = NULL, *refuse = NULL;
	char cdir[4200], path[4300], text[128];
	struct sigaction sa = { .sa_handler = wl_on_usr1 };
	struct fds f = { .ext = -1 };
	pid_t me = getpid(), child;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--ext"))
			ext = argv[i + 1];
		else if (!strcmp(argv[i], "--refuse"))
			refuse = argv[i + 1];
	}
	if (!dir) {
		fprintf(stderr, "usage: lzunix --dir DIR [--ext PATH]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = wl_on_term;
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (ext)
		return run_ext(dir, ext);
	if (refuse)
		return run_refuse(dir, refuse);

	setup_parent_side(&f, dir, me);
	snprintf(cdir, sizeof(cdir), "%s/child", dir);
	if (mkdir(cdir, 0755) && errno != EEXIST)
		die("mkdir %s", cdir);
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		close_others(&f, 1);
		setup_child_side(&f, dir, me);
		snprintf(text, sizeof(text), "pid=%d\n", getpid());
		ready(cdir, text);
		serve(cdir, "child", me, &f);
		return 0;
	}
	close_others(&f, 0);
	snprintf(path, sizeof(path), "%s/ready", cdir);
	wait_file(path);
	snprintf(text, sizeof(text), "pid=%d child=%d\n", me, child);
	ready(dir, text);
	serve(dir, "parent", me, &f);
	kill(child, SIGTERM);
	waitpid(child, NULL, 0);
	return 0;
}
