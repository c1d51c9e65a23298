/*
 * test_sk_net.c - network sockets through dump, the image encoding and
 * restore, in one process: each case runs in a network namespace of its
 * own (ports, nftables tables and loopback all private), creates sockets,
 * dumps them (sk-net.h), packs and unpacks the entries, closes the
 * originals and checks what restore made of them. Needs root.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "unit.h"
#include "sk-net.h"

static char why[512];

#define CHECK_VOID(cond)                                                                 \
	do {                                                                             \
		if (!(cond))                                                             \
			fprintf(stderr, "  %s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
	} while (0)

/* A private network namespace with loopback up. */
static int netns(void)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	int s;

	if (unshare(CLONE_NEWNET))
		return -1;
	s = socket(AF_INET, SOCK_DGRAM, 0);
	if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr))
		return -1;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr))
		return -1;
	close(s);
	return 0;
}

static int geti(int fd, int level, int name)
{
	int v = -1;
	socklen_t l = sizeof(v);

	getsockopt(fd, level, name, &v, &l);
	return v;
}

static void seti(int fd, int level, int name, int v)
{
	setsockopt(fd, level, name, &v, sizeof(v));
}

static uint16_t port_of(int fd)
{
	struct sockaddr_in6 a;
	socklen_t l = sizeof(a);

	getsockname(fd, (struct sockaddr *)&a, &l);
	return ntohs(a.sin6_port); /* same offset in sockaddr_in */
}

struct packed {
	uint8_t buf[1 << 17];
	size_t n;
	int flags;
};

/* Dump SK into P (packed as in an image). */
static int dump_packed(int sk, const struct sk_dump_opts *o, struct packed *p)
{
	InetSkEntry *e = NULL;
	int r;

	why[0] = 0;
	p->flags = fcntl(sk, F_GETFL);
	r = inet_sk_dump(sk, o, &e, why, sizeof(why));
	if (r) {
		fprintf(stderr, "  dump: %s (%d)\n", why, r);
		return r;
	}
	p->n = inet_sk_entry__pack(e, p->buf);
	protobuf_c_message_free_unpacked(&e->base, NULL);
	return 0;
}

/* Restore from P, unpacked and verified as restore does. */
static int open_packed(const struct packed *p)
{
	InetSkEntry *u = inet_sk_entry__unpack(NULL, p->n, p->buf);
	int r;

	if (!u)
		return -EBADMSG;
	r = inet_sk_verify(u, why, sizeof(why));
	if (!r)
		r = inet_sk_open(u, (uint32_t)p->flags, NULL, why, sizeof(why));
	if (r < 0)
		fprintf(stderr, "  open: %s\n", why);
	inet_sk_entry__free_unpacked(u, NULL);
	return r;
}

/* Dump SK, close it, restore it. */
static int roundtrip(int sk, const struct sk_dump_opts *o)
{
	static struct packed p;
	int r = dump_packed(sk, o, &p);

	if (r)
		return r;
	close(sk);
	return open_packed(&p);
}

static const struct sk_dump_opts plain = { 0 };

static int test_listeners(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = in6addr_loopback };
	int l4, l6, c, port4, port6;

	CHECK(netns() == 0);
	l4 = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	seti(l4, SOL_SOCKET, SO_SNDBUF, 50000);
	seti(l4, IPPROTO_TCP, TCP_NODELAY, 1);
	seti(l4, IPPROTO_TCP, TCP_KEEPIDLE, 99);
	CHECK(bind(l4, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l4, 3) == 0);
	port4 = port_of(l4);
	l6 = socket(AF_INET6, SOCK_STREAM, 0);
	seti(l6, IPPROTO_IPV6, IPV6_V6ONLY, 1);
	seti(l6, SOL_SOCKET, SO_REUSEADDR, 1);
	CHECK(bind(l6, (struct sockaddr *)&a6, sizeof(a6)) == 0 && listen(l6, 3) == 0);
	port6 = port_of(l6);
	l4 = roundtrip(l4, &plain);
	l6 = roundtrip(l6, &plain);
	CHECK(l4 >= 0 && l6 >= 0);
	CHECK(port_of(l4) == port4 && port_of(l6) == port6);
	CHECK(geti(l4, SOL_SOCKET, SO_ACCEPTCONN) == 1);
	CHECK(geti(l4, SOL_SOCKET, SO_SNDBUF) == 100000);
	CHECK(geti(l4, IPPROTO_TCP, TCP_NODELAY) == 1);
	CHECK(geti(l4, IPPROTO_TCP, TCP_KEEPIDLE) == 99);
	CHECK(geti(l4, SOL_SOCKET, SO_REUSEADDR) == 0);
	CHECK(fcntl(l4, F_GETFL) & O_NONBLOCK);
	CHECK(geti(l6, IPPROTO_IPV6, IPV6_V6ONLY) == 1);
	CHECK(geti(l6, SOL_SOCKET, SO_REUSEADDR) == 1);
	CHECK(!(fcntl(l6, F_GETFL) & O_NONBLOCK));
	a.sin_port = htons((uint16_t)port4);
	c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0);
	poll(NULL, 0, 20);
	CHECK(accept(l4, NULL, NULL) >= 0);
	a6.sin6_port = htons((uint16_t)port6);
	c = socket(AF_INET6, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&a6, sizeof(a6)) == 0);
	CHECK(accept(l6, NULL, NULL) >= 0);
	return 0;
}

static int test_backlog_refused(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	InetSkEntry *e;
	int l, c;

	CHECK(netns() == 0);
	l = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 3) == 0);
	a.sin_port = htons(port_of(l));
	c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0);
	poll(NULL, 0, 20);
	CHECK(inet_sk_dump(l, &plain, &e, why, sizeof(why)) == -EOPNOTSUPP);
	CHECK(strstr(why, "1 connection(s) waiting in its backlog"));
	CHECK(inet_sk_dump(c, &plain, &e, why, sizeof(why)) == -EOPNOTSUPP);
	CHECK(strstr(why, "established TCP connection 127.0.0.1:") && strstr(why, "--tcp-established"));
	return 0;
}

static int send4(int from, uint16_t port, const char *m)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	return sendto(from, m, strlen(m), 0, (struct sockaddr *)&a, sizeof(a)) < 0 ? -1 : 0;
}

static int got(int fd, const char *m, uint16_t from_port)
{
	struct sockaddr_in6 sa;
	socklen_t l = sizeof(sa);
	char buf[128] = "";
	ssize_t n = recvfrom(fd, buf, sizeof(buf), MSG_DONTWAIT, (struct sockaddr *)&sa, &l);

	return n == (ssize_t)strlen(m) && !memcmp(buf, m, (size_t)n) && ntohs(sa.sin6_port) == from_port;
}

static int test_udp_queue(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = in6addr_loopback };
	int u, p, u6, s6;
	uint16_t up, pp, u6p, s6p;

	CHECK(netns() == 0);
	u = socket(AF_INET, SOCK_DGRAM, 0);
	p = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(bind(u, (struct sockaddr *)&a, sizeof(a)) == 0 && bind(p, (struct sockaddr *)&a, sizeof(a)) == 0);
	up = port_of(u);
	pp = port_of(p);
	a.sin_port = htons(pp);
	CHECK(connect(u, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(send4(p, up, "one") == 0 && send4(p, up, "two") == 0);
	u6 = socket(AF_INET6, SOCK_DGRAM, 0);
	a6.sin6_addr = in6addr_any;
	CHECK(bind(u6, (struct sockaddr *)&a6, sizeof(a6)) == 0);
	u6p = port_of(u6);
	s6 = socket(AF_INET6, SOCK_DGRAM, 0);
	a6.sin6_addr = in6addr_loopback;
	CHECK(bind(s6, (struct sockaddr *)&a6, sizeof(a6)) == 0);
	s6p = port_of(s6);
	a6.sin6_port = htons(u6p);
	CHECK(sendto(s6, "six", 3, 0, (struct sockaddr *)&a6, sizeof(a6)) == 3);
	CHECK(send4(p, u6p, "four") == 0);
	u = roundtrip(u, &plain);
	u6 = roundtrip(u6, &plain);
	CHECK(u >= 0 && u6 >= 0);
	CHECK(port_of(u) == up && port_of(u6) == u6p);
	CHECK(got(u, "one", pp) && got(u, "two", pp));
	CHECK(got(u6, "six", s6p) && got(u6, "four", pp));
	CHECK(!got(u, "", 0));
	CHECK(geti(u, SOL_SOCKET, SO_PEEK_OFF) == -1);
	CHECK(send4(p, up, "three") == 0 && got(u, "three", pp));
	return 0;
}

static int test_tcp_repair(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	static struct packed pl, pc, ps;
	struct netlock *lock;
	struct sk_dump_opts o = { .tcp_established = true };
	char buf[64] = "";
	int l, c, s;

	CHECK(netns() == 0);
	CHECK(netlock_open(&lock, "unit") == 0);
	o.lock = lock;
	l = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 3) == 0);
	a.sin_port = htons(port_of(l));
	c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0);
	s = accept(l, NULL, NULL);
	CHECK(s >= 0);
	CHECK(write(c, "queued-c", 8) == 8 && write(s, "queued-s!", 9) == 9);
	poll(NULL, 0, 20);
	CHECK(dump_packed(l, &o, &pl) == 0 && dump_packed(c, &o, &pc) == 0 &&
	      dump_packed(s, &o, &ps) == 0);
	/* As after the dump: the lock holds, the tree is gone. */
	netlock_finish(lock, true);
	close(l);
	close(c);
	close(s);
	CHECK(system("nft list table inet lazarus_unit >/dev/null") == 0);
	l = open_packed(&pl);
	c = open_packed(&pc);
	s = open_packed(&ps);
	CHECK(l >= 0 && c >= 0 && s >= 0);
	CHECK(netlock_release_table("lazarus_unit", why, sizeof(why)) == 0);
	CHECK(system("nft list table inet lazarus_unit >/dev/null 2>&1") != 0);
	CHECK(recv(s, buf, 8, MSG_WAITALL) == 8 && !memcmp(buf, "queued-c", 8));
	CHECK(recv(c, buf, 9, MSG_WAITALL) == 9 && !memcmp(buf, "queued-s!", 9));
	CHECK(write(c, "after", 5) == 5 && recv(s, buf, 5, MSG_WAITALL) == 5 && !memcmp(buf, "after", 5));
	CHECK(write(s, "back", 4) == 4 && recv(c, buf, 4, MSG_WAITALL) == 4 && !memcmp(buf, "back", 4));
	return 0;
}

/* IPv6 both ends, with data sent but not yet read and unsent data corked. */
static int test_tcp_repair_v6(void)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_addr = in6addr_loopback };
	static struct packed pc, ps;
	struct netlock *lock;
	struct sk_dump_opts o = { .tcp_established = true };
	char buf[64] = "";
	int l, c, s;

	CHECK(netns() == 0);
	CHECK(netlock_open(&lock, "unit6") == 0);
	o.lock = lock;
	l = socket(AF_INET6, SOCK_STREAM, 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 3) == 0);
	a.sin6_port = htons(port_of(l));
	c = socket(AF_INET6, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0);
	s = accept(l, NULL, NULL);
	close(l);
	CHECK(s >= 0);
	CHECK(write(c, "v6-queued", 9) == 9);
	seti(s, IPPROTO_TCP, TCP_CORK, 1);
	CHECK(write(s, "cork", 4) == 4); /* less than a segment, corked: unsent */
	poll(NULL, 0, 20);
	CHECK(dump_packed(c, &o, &pc) == 0 && dump_packed(s, &o, &ps) == 0);
	netlock_finish(lock, true);
	close(c);
	close(s);
	c = open_packed(&pc);
	s = open_packed(&ps);
	CHECK(c >= 0 && s >= 0);
	CHECK(netlock_release_table("lazarus_unit6", why, sizeof(why)) == 0);
	CHECK(geti(s, IPPROTO_TCP, TCP_CORK) == 1);
	seti(s, IPPROTO_TCP, TCP_CORK, 0);
	CHECK(recv(s, buf, 9, MSG_WAITALL) == 9 && !memcmp(buf, "v6-queued", 9));
	CHECK(recv(c, buf, 4, MSG_WAITALL) == 4 && !memcmp(buf, "cork", 4));
	return 0;
}

/* Without --tcp-established, half-closed connections are refused naming state and flag. */
static int test_half_closed_refused(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	InetSkEntry *e;
	int l, c, s;

	CHECK(netns() == 0);
	l = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 3) == 0);
	a.sin_port = htons(port_of(l));
	c = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0);
	s = accept(l, NULL, NULL);
	CHECK(s >= 0 && shutdown(c, SHUT_WR) == 0);
	poll(NULL, 0, 20);
	CHECK(inet_sk_dump(s, &plain, &e, why, sizeof(why)) == -EOPNOTSUPP);
	CHECK(strstr(why, "is half-closed by its peer (CLOSE_WAIT): dump with --tcp-established"));
	CHECK(inet_sk_dump(c, &plain, &e, why, sizeof(why)) == -EOPNOTSUPP);
	CHECK(strstr(why, "is half-closed (FIN_WAIT2): dump with --tcp-established"));
	return 0;
}

/* A connect() in progress (its SYN lost): refused by name, even with the flag. */
static int test_syn_sent_refused(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sk_dump_opts o = { .tcp_established = true };
	char cmd[256];
	InetSkEntry *e;
	int l, c;

	CHECK(netns() == 0);
	l = socket(AF_INET, SOCK_STREAM, 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 3) == 0);
	a.sin_port = htons(port_of(l));
	snprintf(cmd, sizeof(cmd), "nft 'add table inet syn; add chain inet syn i { type filter "
		 "hook input priority 0; }; add rule inet syn i tcp dport %u drop'", port_of(l));
	CHECK(system(cmd) == 0);
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == -1 && errno == EINPROGRESS);
	CHECK(inet_sk_dump(c, &o, &e, why, sizeof(why)) == -EOPNOTSUPP);
	CHECK(strstr(why, "TCP socket 127.0.0.1:") &&
	      strstr(why, " is connecting (SYN sent): not supported"));
	return 0;
}

/* --- half-closed and closing connections, rebuilt (tcp-repair.c, tcp-inject.c) --- */

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) ? -1 : ti.tcpi_state;
}

/* Wait up to 5 s for FD to reach STATE. */
static int wait_state(int fd, int state)
{
	for (int i = 0; i < 500 && tcp_state(fd) != state; i++)
		poll(NULL, 0, 10);
	return tcp_state(fd) == state;
}

/* Read exactly M (NULL: EOF) within 5 s, or fail. */
static int expect(int fd, const char *m)
{
	char buf[256];
	size_t want = m ? strlen(m) : 0, got = 0;

	while (got < want || !m) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 5000) != 1)
			return 0;
		n = recv(fd, buf + got, m ? want - got : sizeof(buf), 0);
		if (n < 0)
			return 0;
		if (!m)
			return n == 0;
		if (n == 0)
			return 0;
		got += (size_t)n;
	}
	return !memcmp(buf, m, want);
}

static int sk_error(int fd)
{
	return geti(fd, SOL_SOCKET, SO_ERROR);
}

/* C connected to S over IPv4 loopback (S accepted; no listener left). */
static int pair(int *c, int *s, int c_rcvbuf)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int l = socket(AF_INET, SOCK_STREAM, 0);

	if (bind(l, (struct sockaddr *)&a, sizeof(a)) || listen(l, 3))
		return -1;
	a.sin_port = htons(port_of(l));
	*c = socket(AF_INET, SOCK_STREAM, 0);
	if (c_rcvbuf)
		seti(*c, SOL_SOCKET, SO_RCVBUF, c_rcvbuf);
	if (connect(*c, (struct sockaddr *)&a, sizeof(a)))
		return -1;
	*s = accept(l, NULL, NULL);
	close(l);
	return *s < 0 ? -1 : 0;
}

/* Packets from these local ports are lost from now on (a table of the test's own), or no more. */
static void lose_from(uint16_t p1, uint16_t p2)
{
	char cmd[256];

	if (!p1) {
		CHECK_VOID(system("nft delete table inet lossy") == 0);
		return;
	}
	/* At input: a packet dropped at output would count as never sent. */
	snprintf(cmd, sizeof(cmd), "nft 'add table inet lossy; add chain inet lossy i "
		 "{ type filter hook input priority 0; }; flush chain inet lossy i; "
		 "add rule inet lossy i tcp sport "
		 "{ %u, %u } drop'", p1, p2 ? p2 : p1);
	CHECK_VOID(system(cmd) == 0);
}

/*
 * Dump SK under the network lock, take away what the test used to make its
 * state (the lock holds now), close it as the kill would, restore it, lift
 * the lock. The new socket, or -1.
 */
static int rebuild(int sk, int want_state)
{
	static struct packed p;
	struct sk_dump_opts o = { .tcp_established = true };
	struct netlock *lock;
	int r;

	if (netlock_open(&lock, "half") || tcp_state(sk) != want_state)
		return -1;
	o.lock = lock;
	r = dump_packed(sk, &o, &p);
	netlock_finish(lock, r == 0);
	if (r)
		return -1;
	system("nft delete table inet lossy 2>/dev/null");
	close(sk);
	sk = open_packed(&p);
	if (sk < 0 || tcp_state(sk) != want_state) {
		fprintf(stderr, "  restored in state %d, not %d\n", sk < 0 ? -1 : tcp_state(sk),
			want_state);
		return -1;
	}
	if (netlock_release_table("lazarus_half", why, sizeof(why)))
		return -1;
	return sk;
}

/* The peer closed its side, data still unread: the reader gets it, then EOF. */
static int test_close_wait(void)
{
	int c, s;

	CHECK(netns() == 0 && pair(&c, &s, 0) == 0);
	CHECK(write(c, "unread-then-eof", 15) == 15 && shutdown(c, SHUT_WR) == 0);
	CHECK(wait_state(s, TCP_CLOSE_WAIT) && wait_state(c, TCP_FIN_WAIT2));
	s = rebuild(s, TCP_CLOSE_WAIT);
	CHECK(s >= 0);
	CHECK(expect(s, "unread-then-eof") && expect(s, NULL));
	CHECK(tcp_state(c) == TCP_FIN_WAIT2);
	CHECK(write(s, "answer", 6) == 6 && expect(c, "answer"));
	CHECK(shutdown(s, SHUT_WR) == 0 && expect(c, NULL));
	CHECK(wait_state(s, TCP_CLOSE) && sk_error(s) == 0 && sk_error(c) == 0);
	return 0;
}

/* We shut our side down and the peer acked it; the peer still writes. */
static int test_fin_wait2(void)
{
	int c, s;

	signal(SIGPIPE, SIG_IGN);
	CHECK(netns() == 0 && pair(&c, &s, 0) == 0);
	CHECK(write(c, "to-s", 4) == 4 && write(s, "to-c", 4) == 4 && shutdown(s, SHUT_WR) == 0);
	CHECK(wait_state(s, TCP_FIN_WAIT2) && wait_state(c, TCP_CLOSE_WAIT));
	s = rebuild(s, TCP_FIN_WAIT2);
	CHECK(s >= 0);
	CHECK(expect(s, "to-s") && expect(c, "to-c") && expect(c, NULL));
	CHECK(write(c, "more", 4) == 4 && expect(s, "more"));
	CHECK(write(s, "x", 1) < 0 && errno == EPIPE);
	CHECK(shutdown(c, SHUT_WR) == 0 && expect(s, NULL));
	CHECK(wait_state(c, TCP_CLOSE) && sk_error(s) == 0 && sk_error(c) == 0);
	return 0;
}

/* Our FIN (and data) sent, never acked: the peer's ACKs were lost. */
static int test_fin_wait1(void)
{
	int c, s;

	signal(SIGPIPE, SIG_IGN);
	CHECK(netns() == 0 && pair(&c, &s, 0) == 0);
	lose_from(port_of(c), 0);
	CHECK(write(s, "bye", 3) == 3 && shutdown(s, SHUT_WR) == 0);
	CHECK(wait_state(c, TCP_CLOSE_WAIT));
	s = rebuild(s, TCP_FIN_WAIT1);
	CHECK(s >= 0);
	CHECK(expect(c, "bye") && expect(c, NULL));
	CHECK(wait_state(s, TCP_FIN_WAIT2)); /* the FIN, sent again, acked at last */
	CHECK(write(c, "still", 5) == 5 && expect(s, "still"));
	CHECK(shutdown(c, SHUT_WR) == 0 && expect(s, NULL));
	CHECK(sk_error(s) == 0 && sk_error(c) == 0);
	return 0;
}

/* Our FIN behind data the peer's full window held back: never sent. */
static int test_fin_wait1_unsent(void)
{
	static char chunk[4096], all[1 << 20];
	size_t total = 0, got = 0;
	int c, s, unsent = 0;

	CHECK(netns() == 0 && pair(&c, &s, 2048) == 0);
	seti(s, SOL_SOCKET, SO_SNDBUF, 16384);
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (char)('a' + i % 26);
	for (;;) {
		ssize_t n = send(s, chunk, sizeof(chunk), MSG_DONTWAIT);

		if (n <= 0)
			break;
		total += (size_t)n;
		CHECK(total < sizeof(all));
	}
	CHECK(shutdown(s, SHUT_WR) == 0);
	poll(NULL, 0, 50);
	CHECK(ioctl(s, SIOCOUTQNSD, &unsent) == 0 && unsent > 0);
	s = rebuild(s, TCP_FIN_WAIT1);
	CHECK(s >= 0);
	while (got < total) {
		struct pollfd p = { .fd = c, .events = POLLIN };
		ssize_t n;

		CHECK(poll(&p, 1, 5000) == 1);
		n = recv(c, all + got, sizeof(all) - got, 0);
		CHECK(n > 0);
		got += (size_t)n;
	}
	for (size_t i = 0; i < total; i++)
		CHECK(all[i] == (char)('a' + (i % sizeof(chunk)) % 26));
	CHECK(expect(c, NULL) && wait_state(s, TCP_FIN_WAIT2));
	CHECK(sk_error(s) == 0 && sk_error(c) == 0);
	return 0;
}

/* Both FINs; ours sent after the peer's, never acked. */
static int test_last_ack(void)
{
	int c, s;

	CHECK(netns() == 0 && pair(&c, &s, 0) == 0);
	CHECK(write(c, "unread", 6) == 6 && shutdown(c, SHUT_WR) == 0);
	CHECK(wait_state(s, TCP_CLOSE_WAIT));
	lose_from(port_of(c), 0);
	CHECK(write(s, "last", 4) == 4 && shutdown(s, SHUT_WR) == 0);
	CHECK(expect(c, "last") && expect(c, NULL));
	s = rebuild(s, TCP_LAST_ACK);
	CHECK(s >= 0);
	CHECK(expect(s, "unread") && expect(s, NULL));
	CHECK(wait_state(s, TCP_CLOSE) && sk_error(s) == 0 && sk_error(c) == 0);
	return 0;
}

/* Both sides closed at once, each FIN crossing the other: CLOSING. */
static int test_closing(void)
{
	int c, s;

	CHECK(netns() == 0 && pair(&c, &s, 0) == 0);
	lose_from(port_of(c), port_of(s));
	CHECK(write(s, "s-data", 6) == 6 && shutdown(s, SHUT_WR) == 0 && shutdown(c, SHUT_WR) == 0);
	CHECK(tcp_state(c) == TCP_FIN_WAIT1 && tcp_state(s) == TCP_FIN_WAIT1);
	lose_from(port_of(c), 0); /* S's FIN gets through (retransmitted), not C's ACK */
	CHECK(wait_state(c, TCP_CLOSING));
	c = rebuild(c, TCP_CLOSING);
	CHECK(c >= 0);
	CHECK(expect(c, "s-data") && expect(c, NULL) && expect(s, NULL));
	CHECK(wait_state(c, TCP_CLOSE) && wait_state(s, TCP_CLOSE));
	CHECK(sk_error(s) == 0 && sk_error(c) == 0);
	return 0;
}

/* --- IPv6 link-local addresses: the scope id --- */

/* A veth pair NAME/NAME-peer with address fe80::N (and fe80::N+1) on NAME: its index. */
static unsigned veth_link(const char *name, int n)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "ip link add %s type veth peer name %sp && ip link set %s up && "
		 "ip link set %sp up && ip addr add fe80::%d/64 dev %s nodad && "
		 "ip addr add fe80::%d/64 dev %s nodad", name, name, name, name, n, name, n + 1, name);
	if (system(cmd))
		return 0;
	return if_nametoindex(name);
}

static int test_scope_id(void)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
	static struct packed pc, ps;
	struct sk_dump_opts o = { .tcp_established = true };
	struct netlock *lock;
	socklen_t sl = sizeof(a);
	unsigned idx;
	int l, c, s;

	CHECK(netns() == 0);
	idx = veth_link("lzv", 1);
	CHECK(idx > 1);
	inet_pton(AF_INET6, "fe80::1", &a.sin6_addr);
	a.sin6_scope_id = idx;
	l = socket(AF_INET6, SOCK_STREAM, 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 3) == 0);
	a.sin6_port = htons(port_of(l));
	c = socket(AF_INET6, SOCK_STREAM, 0);
	CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0);
	s = accept(l, NULL, NULL);
	CHECK(s >= 0 && write(c, "scoped", 6) == 6 && shutdown(c, SHUT_WR) == 0);
	/* CLOSE_WAIT delays its ACK (pingpong mode): wait for it to reach c too. */
	CHECK(wait_state(s, TCP_CLOSE_WAIT) && wait_state(c, TCP_FIN_WAIT2));
	CHECK(netlock_open(&lock, "scope") == 0);
	o.lock = lock;
	CHECK(dump_packed(c, &o, &pc) == 0 && dump_packed(s, &o, &ps) == 0);
	netlock_finish(lock, true);
	close(c);
	close(s);
	c = open_packed(&pc);
	s = open_packed(&ps);
	CHECK(c >= 0 && s >= 0);
	CHECK(netlock_release_table("lazarus_scope", why, sizeof(why)) == 0);
	CHECK(getsockname(s, (struct sockaddr *)&a, &sl) == 0 && a.sin6_scope_id == idx);
	CHECK(tcp_state(s) == TCP_CLOSE_WAIT && tcp_state(c) == TCP_FIN_WAIT2);
	CHECK(expect(s, "scoped") && expect(s, NULL));
	CHECK(write(s, "back", 4) == 4 && expect(c, "back"));
	/*
	 * A listener on another link: back with its scope id; then refused when
	 * the index names another interface, or none. (No connection on this
	 * link: its sockets would hold the link, and deleting it would wait.)
	 */
	idx = veth_link("lzw", 5);
	CHECK(idx > 1);
	memset(&a, 0, sizeof(a));
	a.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "fe80::5", &a.sin6_addr);
	a.sin6_scope_id = idx;
	l = socket(AF_INET6, SOCK_STREAM, 0);
	CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 3) == 0);
	l = roundtrip(l, &plain);
	sl = sizeof(a);
	CHECK(l >= 0 && getsockname(l, (struct sockaddr *)&a, &sl) == 0 && a.sin6_scope_id == idx);
	CHECK(dump_packed(l, &plain, &ps) == 0);
	close(l);
	CHECK(system("ip link set lzw down && ip link set lzw name lzw9") == 0);
	CHECK(open_packed(&ps) == -EOPNOTSUPP);
	CHECK(strstr(why, "was lzw at dump, is lzw9 here"));
	CHECK(system("ip link del lzw9") == 0);
	CHECK(open_packed(&ps) == -EOPNOTSUPP && strstr(why, "was lzw at dump, no interface here"));
	return 0;
}

static int test_netlink(void)
{
	struct sockaddr_nl a = { .nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE };
	socklen_t l = sizeof(a);
	NetlinkSkEntry *e;
	uint32_t port;
	int s;

	CHECK(netns() == 0);
	s = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
	CHECK(bind(s, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(getsockname(s, (struct sockaddr *)&a, &l) == 0);
	port = a.nl_pid;
	CHECK(netlink_sk_dump(s, getpid(), &e, why, sizeof(why)) == 0);
	close(s);
	CHECK(netlink_sk_verify(e, why, sizeof(why)) == 0);
	s = netlink_sk_open(e, 0, NULL, why, sizeof(why));
	CHECK(s >= 0);
	l = sizeof(a);
	CHECK(getsockname(s, (struct sockaddr *)&a, &l) == 0);
	CHECK(a.nl_pid == port && a.nl_groups == (RTMGRP_LINK | RTMGRP_IPV4_ROUTE));
	CHECK(geti(s, SOL_SOCKET, SO_PROTOCOL) == NETLINK_ROUTE);
	return 0;
}

static int test_verify(void)
{
	InetAddr la = INET_ADDR__INIT;
	InetSkOpts op = INET_SK_OPTS__INIT;
	InetSkEntry e = INET_SK_ENTRY__INIT;
	uint8_t addr[16] = { 0 };

	la.addr.data = addr;
	la.addr.len = 4;
	e.family = AF_INET;
	e.type = SOCK_STREAM;
	e.protocol = IPPROTO_TCP;
	e.state = INET_SK_STATE__INET_SK_CLOSED;
	e.local = &la;
	e.opts = &op;
	CHECK(inet_sk_verify(&e, why, sizeof(why)) == 0);
	la.addr.len = 5;
	CHECK(inet_sk_verify(&e, why, sizeof(why)) == -EBADMSG);
	la.addr.len = 4;
	e.state = INET_SK_STATE__INET_SK_ESTABLISHED; /* without its repair state */
	CHECK(inet_sk_verify(&e, why, sizeof(why)) == -EBADMSG);
	{
		/* Repair states an image may claim: only those restore rebuilds, consistent. */
		TcpRepairEntry t = TCP_REPAIR_ENTRY__INIT;
		uint8_t q[4] = "abcd";

		e.peer = &la;
		e.tcp = &t;
		CHECK(inet_sk_verify(&e, why, sizeof(why)) == 0);
		t.has_tcp_state = true;
		for (unsigned st = 0; st < 16; st++) {
			bool ok = st == TCP_ESTABLISHED || st == TCP_CLOSE_WAIT || st == TCP_FIN_WAIT1 ||
				  st == TCP_FIN_WAIT2 || st == TCP_LAST_ACK || st == TCP_CLOSING;

			t.tcp_state = st; /* LISTEN, TIME_WAIT, SYN_*, CLOSE: refused */
			CHECK((inet_sk_verify(&e, why, sizeof(why)) == 0) == ok);
		}
		t.tcp_state = TCP_FIN_WAIT2; /* our FIN acked, yet data unacked: refused */
		t.send_queue.data = q;
		t.send_queue.len = sizeof(q);
		CHECK(inet_sk_verify(&e, why, sizeof(why)) == -EBADMSG);
		t.tcp_state = TCP_FIN_WAIT1;
		t.has_fin_unsent = t.fin_unsent = true;
		CHECK(inet_sk_verify(&e, why, sizeof(why)) == 0);
		t.tcp_state = TCP_CLOSE_WAIT; /* an unsent FIN of ours, in a state without one */
		CHECK(inet_sk_verify(&e, why, sizeof(why)) == -EBADMSG);
		t.unsent = 5; /* more unsent than queued */
		t.tcp_state = TCP_FIN_WAIT1;
		CHECK(inet_sk_verify(&e, why, sizeof(why)) == -EBADMSG);
		e.peer = NULL;
		e.tcp = NULL;
	}
	e.state = INET_SK_STATE__INET_SK_CLOSED;
	e.protocol = IPPROTO_SCTP;
	CHECK(inet_sk_verify(&e, why, sizeof(why)) == -EBADMSG);
	{
		InetDatagram d = INET_DATAGRAM__INIT, *q[1] = { &d };
		uint8_t data[4] = "data";

		e.type = SOCK_DGRAM;
		e.protocol = IPPROTO_UDP;
		la.port = 5353;
		d.from = &la;
		d.data.data = data;
		d.data.len = sizeof(data);
		e.queue = q;
		e.n_queue = 1;
		addr[0] = 127;
		CHECK(inet_sk_verify(&e, why, sizeof(why)) == 0);
		addr[0] = 224; /* multicast: datagrams would go out with a forged source */
		CHECK(inet_sk_verify(&e, why, sizeof(why)) == -EBADMSG);
		memset(addr, 255, 4);
		CHECK(inet_sk_verify(&e, why, sizeof(why)) == -EBADMSG);
	}
	CHECK(!netlock_table_valid("filter"));
	CHECK(!netlock_table_valid("lazarus_"));
	CHECK(!netlock_table_valid("lazarus_x; flush ruleset"));
	CHECK(netlock_table_valid("lazarus_123_ab"));
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_listeners),        UNIT(test_backlog_refused), UNIT(test_udp_queue),
	UNIT(test_tcp_repair),       UNIT(test_tcp_repair_v6),   UNIT(test_half_closed_refused),
	UNIT(test_syn_sent_refused), UNIT(test_close_wait),      UNIT(test_fin_wait2),
	UNIT(test_fin_wait1),        UNIT(test_fin_wait1_unsent), UNIT(test_last_ack),
	UNIT(test_closing),          UNIT(test_scope_id),        UNIT(test_netlink),
	UNIT(test_verify),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
