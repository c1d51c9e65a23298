/*
 * lzinet.c - a process with network sockets, for test_inet.py.
 *
 *   lzinet --dir DIR --mode sockets|pair|serve|packet [--packet 1]
 *
 * sockets: a TCP listener on 127.0.0.1 (backlog 7, O_NONBLOCK, and
 *   SO_REUSEADDR, SO_SNDBUF, SO_RCVBUF, TCP_NODELAY, SO_KEEPALIVE with
 *   TCP_KEEPIDLE/INTVL/CNT, SO_RCVTIMEO, SO_SNDTIMEO and TCP_CORK set), one
 *   on [::1] (IPV6_V6ONLY, SO_REUSEPORT); a UDP socket on 127.0.0.1
 *   connected to a second one, which has sent it 3 datagrams; a dual-stack
 *   UDP socket on [::] with datagrams from [::1] and from 127.0.0.1 queued
 *   (their senders closed); a NETLINK_ROUTE socket bound to RTMGRP_LINK and
 *   an unbound NETLINK_GENERIC one. Ready: "pid=P tcp4=PORT tcp6=PORT".
 *   SIGUSR1: checks every option, address and queued datagram, that the
 *   UDP pair still talks, that the route socket answers RTM_GETLINK, then
 *   accepts one connection on each listener (the harness made them before
 *   signalling), reads "ping" and answers "pong4"/"pong6"; DIR/result
 *   "PASS pid=P" or "FAIL pid=P: what". Later checks: the options and the
 *   two connections only (the datagrams were read).
 * pair: an established TCP connection inside the process (127.0.0.1), with
 *   data queued unread both ways. SIGUSR1: both ends read what was queued,
 *   then exchange more; PASS or FAIL as above.
 * serve: a listener; ready "pid=P port=PORT". It accepts one connection
 *   and answers every line "N" with "N+1" on it, then the next one, until
 *   SIGTERM. SIGUSR1: PASS once a connection was accepted.
 * packet: an AF_PACKET socket, which dump refuses. SIGUSR1: PASS.
 * --packet 1: an AF_PACKET socket too, after the mode's own sockets.
 * SIGTERM: exit 0.
 */
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/time.h>

#define WL_NAME "lzinet"
#include "wl.h"

static volatile sig_atomic_t check_requested, term_requested;
static const char *dir;
static char fail[2048];

struct sockets {
	int t4, t6, u4, u4peer, u6, nl, ng;
	uint16_t u4port, u4peerport, s6port, s4port; /* senders of u6's datagrams */
	uint32_t nlport;
	struct timeval rcvtimeo, sndtimeo; /* as read back: the kernel keeps jiffies */
};

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		check_requested = 1;
	else
		term_requested = 1;
}

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
	size_t n = strlen(fail);
	va_list ap;

	if (n + 2 >= sizeof(fail))
		return;
	if (n)
		strcat(fail, "; ");
	va_start(ap, fmt);
	vsnprintf(fail + strlen(fail), sizeof(fail) - strlen(fail), fmt, ap);
	va_end(ap);
}

static void seti(int fd, int level, int name, int v)
{
	if (setsockopt(fd, level, name, &v, sizeof(v)))
		die("setsockopt %d/%d", level, name);
}

static int geti(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	if (getsockopt(fd, level, name, &v, &l))
		failf("getsockopt %d/%d: %s", level, name, strerror(errno));
	return v;
}

static void want(const char *what, long got, long exp)
{
	if (got != exp)
		failf("%s: got %ld, want %ld", what, got, exp);
}

static uint16_t port_of(int fd)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &l))
		die("getsockname");
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static int sock4(int type, uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, type, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)))
		die("socket/bind v4");
	return fd;
}

static int sock6(int type, const struct in6_addr *addr, int v6only)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = *addr };
	int fd = socket(AF_INET6, type, 0);

	if (fd < 0)
		die("socket v6");
	seti(fd, IPPROTO_IPV6, IPV6_V6ONLY, v6only);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
		die("bind v6");
	return fd;
}

static void send_to6(int from, const struct in6_addr *to, uint16_t port, const char *msg)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = *to };

	if (sendto(from, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("sendto v6");
}

static void send_to4(int from, uint16_t port, const char *msg)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	if (sendto(from, msg, strlen(msg), 0, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("sendto v4");
}

static void make_listeners(struct sockets *s)
{
	struct timeval rt = { 3, 250000 }, st = { 1, 500000 };

	s->t4 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (s->t4 < 0)
		die("socket");
	seti(s->t4, SOL_SOCKET, SO_REUSEADDR, 1);
	seti(s->t4, SOL_SOCKET, SO_SNDBUF, 65536);
	seti(s->t4, SOL_SOCKET, SO_RCVBUF, 98304);
	seti(s->t4, IPPROTO_TCP, TCP_NODELAY, 1);
	seti(s->t4, SOL_SOCKET, SO_KEEPALIVE, 1);
	seti(s->t4, IPPROTO_TCP, TCP_KEEPIDLE, 77);
	seti(s->t4, IPPROTO_TCP, TCP_KEEPINTVL, 11);
	seti(s->t4, IPPROTO_TCP, TCP_KEEPCNT, 5);
	seti(s->t4, IPPROTO_TCP, TCP_CORK, 1);
	if (setsockopt(s->t4, SOL_SOCKET, SO_RCVTIMEO, &rt, sizeof(rt)) ||
	    setsockopt(s->t4, SOL_SOCKET, SO_SNDTIMEO, &st, sizeof(st)))
		die("timeouts");
	{
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

		socklen_t l = sizeof(rt);

		if (bind(s->t4, (struct sockaddr *)&a, sizeof(a)) || listen(s->t4, 7))
			die("listen v4");
		if (getsockopt(s->t4, SOL_SOCKET, SO_RCVTIMEO, &s->rcvtimeo, &l) ||
		    getsockopt(s->t4, SOL_SOCKET, SO_SNDTIMEO, &s->sndtimeo, &l))
			die("timeouts back");
	}
	s->t6 = socket(AF_INET6, SOCK_STREAM, 0);
	if (s->t6 < 0)
		die("socket v6");
	seti(s->t6, SOL_SOCKET, SO_REUSEPORT, 1);
	seti(s->t6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	{
		struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = in6addr_loopback };

		if (bind(s->t6, (struct sockaddr *)&a, sizeof(a)) || listen(s->t6, 16))
			die("listen v6");
	}
}

static void make_udp(struct sockets *s)
{
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int s6, s4;

	s->u4 = sock4(SOCK_DGRAM, 0);
	s->u4peer = sock4(SOCK_DGRAM, 0);
	s->u4port = port_of(s->u4);
	s->u4peerport = port_of(s->u4peer);
	peer.sin_port = htons(s->u4peerport);
	if (connect(s->u4, (struct sockaddr *)&peer, sizeof(peer)))
		die("connect udp");
	for (int i = 1; i <= 3; i++) {
		char m[32];

		snprintf(m, sizeof(m), "d4-%d", i);
		send_to4(s->u4peer, s->u4port, m);
	}
	s->u6 = sock6(SOCK_DGRAM, &in6addr_any, 0);
	s6 = sock6(SOCK_DGRAM, &in6addr_loopback, 1);
	s4 = sock4(SOCK_DGRAM, 0);
	s->s6port = port_of(s6);
	s->s4port = port_of(s4);
	send_to6(s6, &in6addr_loopback, port_of(s->u6), "from-v6");
	send_to4(s4, port_of(s->u6), "from-v4");
	send_to6(s6, &in6addr_loopback, port_of(s->u6), "from-v6-again");
	close(s6);
	close(s4);
}

static void make_netlink(struct sockets *s)
{
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK };
	socklen_t l = sizeof(a);

	s->nl = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	if (s->nl < 0 || bind(s->nl, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(s->nl, (struct sockaddr *)&a, &l))
		die("netlink route");
	s->nlport = a.nl_pid;
	s->ng = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_GENERIC);
	if (s->ng < 0)
		die("netlink generic");
}

static void expect_dgram(int fd, const char *msg, int family, uint16_t port, const char *what)
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	char buf[256];
	ssize_t n = recvfrom(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT, (struct sockaddr *)&ss, &l);
	uint16_t p;
	int fam;

	if (n < 0) {
		failf("%s: no datagram %s: %s", what, msg, strerror(errno));
		return;
	}
	buf[n] = 0;
	fam = ss.ss_family;
	p = ntohs(fam == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
				 : ((struct sockaddr_in6 *)&ss)->sin6_port);
	if (fam == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&ss)->sin6_addr))
		fam = AF_INET;
	if (strcmp(buf, msg) || p != port || fam != family)
		failf("%s: got \"%s\" from family %d port %u, want \"%s\" from %d port %u", what, buf,
		      fam, p, msg, family, port);
}

static void check_netlink(const struct sockets *s)
{
	struct {
		struct nlmsghdr h;
		struct rtgenmsg g;
	} req = { { sizeof(req), RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, 1, 0 }, { AF_UNSPEC } };
	struct sockaddr_nl a;
	socklen_t l = sizeof(a);
	uint32_t groups = 0;
	char buf[16384];
	ssize_t n;

	if (getsockname(s->nl, (struct sockaddr *)&a, &l))
		failf("netlink getsockname: %s", strerror(errno));
	want("netlink port id", a.nl_pid, s->nlport);
	l = sizeof(groups);
	if (getsockopt(s->nl, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, &groups, &l))
		failf("NETLINK_LIST_MEMBERSHIPS: %s", strerror(errno));
	want("netlink groups", groups, RTMGRP_LINK);
	want("netlink protocol", geti(s->nl, SOL_SOCKET, SO_PROTOCOL), NETLINK_ROUTE);
	want("generic netlink protocol", geti(s->ng, SOL_SOCKET, SO_PROTOCOL), NETLINK_GENERIC);
	if (send(s->nl, &req, sizeof(req), 0) != sizeof(req)) {
		failf("netlink send: %s", strerror(errno));
		return;
	}
	n = recv(s->nl, buf, sizeof(buf), 0);
	if (n < (ssize_t)sizeof(struct nlmsghdr) || ((struct nlmsghdr *)buf)->nlmsg_type != RTM_NEWLINK)
		failf("RTM_GETLINK: no RTM_NEWLINK answer (%zd bytes)", n);
}

static void check_options(const struct sockets *s)
{
	struct timeval tv;
	socklen_t l = sizeof(tv);

	want("t4 SO_REUSEADDR", geti(s->t4, SOL_SOCKET, SO_REUSEADDR), 1);
	want("t4 SO_SNDBUF", geti(s->t4, SOL_SOCKET, SO_SNDBUF), 2 * 65536);
	want("t4 SO_RCVBUF", geti(s->t4, SOL_SOCKET, SO_RCVBUF), 2 * 98304);
	want("t4 TCP_NODELAY", geti(s->t4, IPPROTO_TCP, TCP_NODELAY), 1);
	want("t4 SO_KEEPALIVE", geti(s->t4, SOL_SOCKET, SO_KEEPALIVE), 1);
	want("t4 TCP_KEEPIDLE", geti(s->t4, IPPROTO_TCP, TCP_KEEPIDLE), 77);
	want("t4 TCP_KEEPINTVL", geti(s->t4, IPPROTO_TCP, TCP_KEEPINTVL), 11);
	want("t4 TCP_KEEPCNT", geti(s->t4, IPPROTO_TCP, TCP_KEEPCNT), 5);
	want("t4 TCP_CORK", geti(s->t4, IPPROTO_TCP, TCP_CORK), 1);
	want("t4 O_NONBLOCK", !!(fcntl(s->t4, F_GETFL) & O_NONBLOCK), 1);
	want("t4 SO_ACCEPTCONN", geti(s->t4, SOL_SOCKET, SO_ACCEPTCONN), 1);
	if (getsockopt(s->t4, SOL_SOCKET, SO_RCVTIMEO, &tv, &l) ||
	    tv.tv_sec != s->rcvtimeo.tv_sec || tv.tv_usec != s->rcvtimeo.tv_usec ||
	    tv.tv_sec != 3)
		failf("t4 SO_RCVTIMEO: %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
	l = sizeof(tv);
	if (getsockopt(s->t4, SOL_SOCKET, SO_SNDTIMEO, &tv, &l) ||
	    tv.tv_sec != s->sndtimeo.tv_sec || tv.tv_usec != s->sndtimeo.tv_usec ||
	    tv.tv_sec != 1)
		failf("t4 SO_SNDTIMEO: %ld.%06ld", (long)tv.tv_sec, (long)tv.tv_usec);
	want("t6 SO_REUSEPORT", geti(s->t6, SOL_SOCKET, SO_REUSEPORT), 1);
	want("t6 IPV6_V6ONLY", geti(s->t6, IPPROTO_IPV6, IPV6_V6ONLY), 1);
	want("t6 SO_REUSEADDR", geti(s->t6, SOL_SOCKET, SO_REUSEADDR), 0);
	want("t6 TCP_NODELAY", geti(s->t6, IPPROTO_TCP, TCP_NODELAY), 0);
	want("t6 O_NONBLOCK", !!(fcntl(s->t6, F_GETFL) & O_NONBLOCK), 0);
	want("u6 IPV6_V6ONLY", geti(s->u6, IPPROTO_IPV6, IPV6_V6ONLY), 0);
	want("u4 port", port_of(s->u4), s->u4port);
	want("u4peer port", port_of(s->u4peer), s->u4peerport);
}

static void serve_one(int lfd, const char *answer)
{
	struct pollfd p = { lfd, POLLIN, 0 };
	char buf[16] = "";
	int c;

	if (poll(&p, 1, 5000) != 1) {
		failf("%s: no connection to accept", answer);
		return;
	}
	c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (c < 0) {
		failf("%s: accept: %s", answer, strerror(errno));
		return;
	}
	if (recv(c, buf, 4, MSG_WAITALL) != 4 || memcmp(buf, "ping", 4))
		failf("%s: read \"%s\", want ping", answer, buf);
	else if (write_all(c, answer, strlen(answer)))
		failf("%s: write: %s", answer, strerror(errno));
	close(c);
}

static void check_sockets(const struct sockets *s, int nth)
{
	check_options(s);
	if (nth > 1)
		goto serve; /* the datagrams were read by the first check */
	for (int i = 1; i <= 3; i++) {
		char m[32];

		snprintf(m, sizeof(m), "d4-%d", i);
		expect_dgram(s->u4, m, AF_INET, s->u4peerport, "u4");
	}
	expect_dgram(s->u6, "from-v6", AF_INET6, s->s6port, "u6");
	expect_dgram(s->u6, "from-v4", AF_INET, s->s4port, "u6");
	expect_dgram(s->u6, "from-v6-again", AF_INET6, s->s6port, "u6");
	send_to4(s->u4peer, s->u4port, "after");
	if (send(s->u4, "back", 4, 0) != 4)
		failf("u4 send: %s", strerror(errno));
	poll(NULL, 0, 50);
	expect_dgram(s->u4, "after", AF_INET, s->u4peerport, "u4 after restore");
	expect_dgram(s->u4peer, "back", AF_INET, s->u4port, "u4peer after restore");
	check_netlink(s);
serve:
	serve_one(s->t4, "pong4");
	serve_one(s->t6, "pong6");
}

/* --- pair: an established connection with data queued both ways --- */

struct pair {
	int l, a, b; /* listener, accepted end, connecting end */
};

static void make_pair(struct pair *p)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	p->l = sock4(SOCK_STREAM, 0);
	if (listen(p->l, 4))
		die("listen");
	a.sin_port = htons(port_of(p->l));
	p->b = socket(AF_INET, SOCK_STREAM, 0);
	if (p->b < 0 || connect(p->b, (struct sockaddr *)&a, sizeof(a)))
		die("connect");
	p->a = accept4(p->l, NULL, NULL, 0);
	if (p->a < 0)
		die("accept");
	if (write_all(p->b, "hello from b", 12) || write_all(p->a, "hello from a!", 13))
		die("write");
	poll(NULL, 0, 50); /* let loopback deliver: queued in the receivers */
}

static void expect_read(int fd, const char *msg, const char *what)
{
	char buf[64] = "";
	size_t n = strlen(msg);
	struct timeval tv = { 5, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (recv(fd, buf, n, MSG_WAITALL) != (ssize_t)n || memcmp(buf, msg, n))
		failf("%s: read \"%s\", want \"%s\" (%s)", what, buf, msg, strerror(errno));
}

static void check_pair(const struct pair *p)
{
	expect_read(p->a, "hello from b", "a (queued)");
	expect_read(p->b, "hello from a!", "b (queued)");
	if (write_all(p->b, "more from b", 11) || write_all(p->a, "more from a", 11))
		failf("write after restore: %s", strerror(errno));
	expect_read(p->a, "more from b", "a (new)");
	expect_read(p->b, "more from a", "b (new)");
}

/* --- serve: answer "N" with "N+1" on one connection --- */

static int serve_lines(int c, char *buf, size_t *len)
{
	ssize_t n = recv(c, buf + *len, 255 - *len, MSG_DONTWAIT);
	char *nl;

	if (n == 0)
		return -1;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	*len += (size_t)n;
	buf[*len] = 0;
	while ((nl = strchr(buf, '\n'))) {
		char out[32];

		*nl = 0;
		snprintf(out, sizeof(out), "%ld\n", atol(buf) + 1);
		if (write_all(c, out, strlen(out)))
			return -1;
		*len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, *len + 1);
	}
	return 0;
}

static void publish_result(void)
{
	char text[2200];

	snprintf(text, sizeof(text), "%s pid=%d%s%s\n", fail[0] ? "FAIL" : "PASS", getpid(),
		 fail[0] ? ": " : "", fail);
	wl_publish(dir, "result", text);
	fail[0] = 0;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	const char *mode = "sockets";
	struct sockets s = { 0 };
	struct pair p = { -1, -1, -1 };
	char ready[128], buf[256];
	size_t blen = 0;
	int c = -1, lst = -1, checks = 0, accepted = 0, packet = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--mode"))
			mode = argv[i + 1];
		else if (!strcmp(argv[i], "--packet"))
			packet = !strcmp(argv[i + 1], "1");
	}
	if (!dir)
		die("usage: lzinet --dir DIR --mode sockets|pair|serve|packet");
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (!strcmp(mode, "sockets")) {
		make_listeners(&s);
		make_udp(&s);
		make_netlink(&s);
		snprintf(ready, sizeof(ready), "pid=%d tcp4=%u tcp6=%u\n", getpid(), port_of(s.t4),
			 port_of(s.t6));
	} else if (!strcmp(mode, "pair")) {
		make_pair(&p);
		snprintf(ready, sizeof(ready), "pid=%d\n", getpid());
	} else if (!strcmp(mode, "serve")) {
		lst = sock4(SOCK_STREAM, 0);
		if (listen(lst, 4))
			die("listen");
		snprintf(ready, sizeof(ready), "pid=%d port=%u\n", getpid(), port_of(lst));
	} else if (!strcmp(mode, "packet")) {
		if (socket(AF_PACKET, SOCK_DGRAM, 0) < 0)
			die("packet socket");
		snprintf(ready, sizeof(ready), "pid=%d\n", getpid());
	} else {
		die("unknown mode %s", mode);
	}
	/* After the mode's sockets: dump refuses it once those are dumped. */
	if (packet && socket(AF_PACKET, SOCK_DGRAM, 0) < 0)
		die("packet socket");
	wl_publish(dir, "ready", ready);
	while (!term_requested) {
		if (lst >= 0) {
			struct pollfd pf = { c >= 0 ? c : lst, POLLIN, 0 };

			if (poll(&pf, 1, 100) == 1) {
				if (c < 0) {
					c = accept4(lst, NULL, NULL, SOCK_CLOEXEC);
					accepted += c >= 0;
				}
				else if (serve_lines(c, buf, &blen)) {
					close(c);
					c = -1;
					blen = 0;
				}
			}
		} else {
			poll(NULL, 0, 100);
		}
		if (!check_requested)
			continue;
		check_requested = 0;
		if (!strcmp(mode, "sockets"))
			check_sockets(&s, ++checks);
		else if (!strcmp(mode, "pair"))
			check_pair(&p);
		else if (!strcmp(mode, "serve") && !accepted)
			failf("no connection accepted");
		publish_result();
	}
	return 0;
}
