/*
 * lzhalf.c - half-closed and closing TCP connections, for test_tcp_states.py.
 *
 *   lzhalf --dir DIR --state STATE (--peer PORT | --inside [--addr6 ADDR --ifname IF])
 *
 * A is this process's end of the connection, B the other end: the test on
 * 127.0.0.1:PORT (--peer), or a second socket of this process (--inside),
 * over 127.0.0.1 or the IPv6 link-local ADDR on interface IF (--addr6: the
 * check then also wants A's scope id to be IF's index still).
 * Once connected, A sends "w-data" (and B, inside, "p-data"), and A writes
 * DIR/conn "pid=P a=PORT b=PORT". Then it waits for DIR/go (the test has
 * made the packet loss the state needs, and done its own part), and does
 * its part of STATE:
 *   close_wait  nothing (B has sent its FIN; inside: B shuts down now)
 *   fin_wait1   A shuts down (B's ACKs are lost)
 *   fin_wait2   A shuts down
 *   last_ack    A waits for B's FIN, then shuts down (B's ACKs are lost)
 *   closing     A shuts down (inside: B too), writes DIR/acted; the test
 *               lets B's FIN through, not A's packets
 * and once A is in STATE (and B, inside, in FIN_WAIT2 for close_wait or
 * FIN_WAIT1 for closing), ready: "pid=P state=N" (TCP_* of linux/tcp.h).
 *
 * SIGUSR1 (after the restore): A reads up to EOF and must get "p-data"
 * (the test may send more before its FIN: DIR/expect then holds all of it);
 * in close_wait A then answers "w-answer" and shuts down. Inside, B reads
 * up to EOF too and must get what A sent; both must reach CLOSE. Any read
 * error (ECONNRESET: a RST) or SO_ERROR fails. DIR/result "PASS pid=P" or
 * "FAIL pid=P: what". SIGTERM: exit 0.
 */
#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define WL_NAME "lzhalf"
#include "wl.h"

static const char *dir;
static char fail[1024];

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
	va_list ap;

	if (fail[0])
		return; /* the first reason is the one that counts */
	va_start(ap, fmt);
	vsnprintf(fail, sizeof(fail), fmt, ap);
	va_end(ap);
}

static int tcp_state(int fd)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);

	return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &l) ? -1 : ti.tcpi_state;
}

static int wait_state(int fd, int want, int secs)
{
	for (int i = 0; i < secs * 100 && tcp_state(fd) != want; i++)
		poll(NULL, 0, 10);
	return tcp_state(fd) == want;
}

static uint16_t port_of(int fd, int peer)
{
	struct sockaddr_in6 a;
	socklen_t l = sizeof(a);

	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&a, &l))
		die("getsockname");
	return ntohs(a.sin6_port); /* where sockaddr_in has it too */
}

static const char *ifname;
static unsigned scope;

static void check_scope(int fd, const char *who)
{
	struct sockaddr_in6 a;
	socklen_t l = sizeof(a);
	char name[IF_NAMESIZE] = "";

	if (!ifname)
		return;
	if (getsockname(fd, (struct sockaddr *)&a, &l) || a.sin6_scope_id != scope ||
	    !if_indextoname(scope, name) || strcmp(name, ifname))
		failf("%s: scope id %u (%s), not %u (%s)", who, a.sin6_scope_id, name, scope, ifname);
}

static int exists(const char *name)
{
	char p[4200];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return stat(p, &st) == 0;
}

static void wait_file(const char *name)
{
	while (!exists(name)) {
		if (term_requested)
			exit(0);
		poll(NULL, 0, 10);
	}
}

/* Read FD up to EOF (20 s at most); it must be WANT. */
static void read_to_eof(int fd, const char *who, const char *want)
{
	char buf[4096];
	size_t got = 0;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 20000) != 1) {
			failf("%s: no EOF within 20 s (read %zu bytes)", who, got);
			return;
		}
		n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			failf("%s: read: %s", who, strerror(errno));
			return;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got >= sizeof(buf) - 1) {
			failf("%s: more than %zu bytes", who, got);
			return;
		}
	}
	buf[got] = 0;
	if (strcmp(buf, want))
		failf("%s: read \"%s\" before EOF, not \"%s\"", who, buf, want);
}

static void check_error(int fd, const char *who)
{
	int err = 0;
	socklen_t l = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) || err)
		failf("%s: SO_ERROR %s", who, strerror(err));
}

static int state_num(const char *s)
{
	static const struct { const char *name; int st; } t[] = {
		{ "close_wait", TCP_CLOSE_WAIT }, { "fin_wait1", TCP_FIN_WAIT1 },
		{ "fin_wait2", TCP_FIN_WAIT2 },   { "last_ack", TCP_LAST_ACK },
		{ "closing", TCP_CLOSING },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!strcmp(s, t[i].name))
			return t[i].st;
	fprintf(stderr, "lzhalf: unknown state %s\n", s);
	exit(2);
}

static void check(int a, int b, int state)
{
	char want[4096] = "p-data", line[1200];
	int fd;

	fail[0] = 0;
	snprintf(line, sizeof(line), "%s/expect", dir);
	fd = open(line, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, want, sizeof(want) - 1);

		want[n > 0 ? n : 0] = 0;
		close(fd);
	}
	read_to_eof(a, "A", want);
	if (state == TCP_CLOSE_WAIT && (write_all(a, "w-answer", 8) || shutdown(a, SHUT_WR)))
		failf("A: answering: %s", strerror(errno));
	if (b >= 0) {
		read_to_eof(b, "B", state == TCP_CLOSE_WAIT ? "w-dataw-answer" : "w-data");
		if (!wait_state(a, TCP_CLOSE, 20) || !wait_state(b, TCP_CLOSE, 20))
			failf("not closed in the end: A in state %d, B in %d", tcp_state(a),
			      tcp_state(b));
		check_error(b, "B");
	}
	check_error(a, "A");
	check_scope(a, "A");
	if (b >= 0)
		check_scope(b, "B");
	if (fail[0])
		snprintf(line, sizeof(line), "FAIL pid=%d: %s\n", getpid(), fail);
	else
		snprintf(line, sizeof(line), "PASS pid=%d\n", getpid());
	wl_publish(dir, "result", line);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa4 = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 sa6 = { .sin6_family = AF_INET6 };
	struct sockaddr *sa = (struct sockaddr *)&sa4;
	socklen_t sl = sizeof(sa4);
	const char *state_s = NULL, *addr6 = NULL;
	int a, b = -1, lsk = -1, state, peer = 0, inside = 0;
	char text[256];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--inside"))
			inside = 1;
		else if (i + 1 < argc && !strcmp(argv[i], "--dir"))
			dir = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--state"))
			state_s = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--peer"))
			peer = atoi(argv[++i]);
		else if (i + 1 < argc && !strcmp(argv[i], "--addr6"))
			addr6 = argv[++i];
		else if (i + 1 < argc && !strcmp(argv[i], "--ifname"))
			ifname = argv[++i];
	}
	if (addr6) {
		if (!ifname || inet_pton(AF_INET6, addr6, &sa6.sin6_addr) != 1 ||
		    !(scope = if_nametoindex(ifname)))
			die("--addr6 %s --ifname %s", addr6, ifname ? ifname : "(none)");
		sa6.sin6_scope_id = scope;
		sa = (struct sockaddr *)&sa6;
		sl = sizeof(sa6);
	}
	if (!dir || !state_s || !(peer || inside)) {
		fprintf(stderr, "usage: lzhalf --dir DIR --state STATE (--peer PORT | --inside)\n");
		return 2;
	}
	if (chdir(dir))
		die("chdir %s", dir);
	state = state_num(state_s);
	signal(SIGUSR1, wl_on_usr1);
	signal(SIGTERM, wl_on_term);
	signal(SIGPIPE, SIG_IGN);
	if (inside) {
		lsk = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (lsk < 0 || bind(lsk, sa, sl) || listen(lsk, 1))
			die("listener");
		peer = port_of(lsk, 0);
	}
	sa4.sin_port = sa6.sin6_port = htons((uint16_t)peer);
	a = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (a < 0 || connect(a, sa, sl))
		die("connect to port %d", peer);
	if (inside) {
		b = accept4(lsk, NULL, NULL, SOCK_CLOEXEC);
		if (b < 0 || write_all(b, "p-data", 6))
			die("accept");
		close(lsk);
	}
	if (write_all(a, "w-data", 6))
		die("write");
	snprintf(text, sizeof(text), "pid=%d a=%u b=%u\n", getpid(), port_of(a, 0), port_of(a, 1));
	wl_publish(dir, "conn", text);
	wait_file("go");
	if (inside && state == TCP_CLOSE_WAIT && shutdown(b, SHUT_WR))
		die("shutdown B");
	if (state == TCP_LAST_ACK && !wait_state(a, TCP_CLOSE_WAIT, 30))
		die("A never got B's FIN (state %d)", tcp_state(a));
	if (state != TCP_CLOSE_WAIT && shutdown(a, SHUT_WR))
		die("shutdown A");
	if (inside && state == TCP_CLOSING && shutdown(b, SHUT_WR))
		die("shutdown B");
	wl_publish(dir, "acted", "acted\n");
	if (!wait_state(a, state, 30))
		die("A did not reach state %d (it is in %d)", state, tcp_state(a));
	/* Inside, B too: FIN_WAIT2 once A's ACK of its FIN is in, FIN_WAIT1 (CLOSING). */
	if (inside && !wait_state(b, state == TCP_CLOSE_WAIT ? TCP_FIN_WAIT2 : TCP_FIN_WAIT1, 30))
		die("B did not reach its state (it is in %d)", tcp_state(b));
	snprintf(text, sizeof(text), "pid=%d state=%d\n", getpid(), state);
	wl_publish(dir, "ready", text);
	while (!term_requested) {
		if (check_requested) {
			check_requested = 0;
			check(a, b, state);
		}
		poll(NULL, 0, 20);
	}
	return 0;
}
