/*
 * fd-inet.c - TCP and UDP sockets over IPv4 and IPv6.
 *
 * Dump reads a socket through a copy of the target's fd: its addresses
 * (getsockname, getpeername), its TCP state (TCP_INFO), the options that
 * change what the program sees, and a UDP socket's queued datagrams, peeked
 * with MSG_PEEK and SO_PEEK_OFF so that nothing is taken from the queue.
 * Restore creates the socket again: bound (with SO_REUSEADDR while binding,
 * so that TIME_WAIT leftovers of the old one do not stand in the way),
 * listening or connected, its options set, its datagrams sent to it again
 * from their original source addresses through a raw socket.
 *
 * Refused, each by name: other protocols (raw, SCTP, UDP-Lite), TCP in any
 * state but closed, listening or (with --tcp-established) established,
 * half-closed or closing (tcp-repair.c), and listeners with connections
 * waiting in their backlog: those connections are established already, a
 * new listener cannot take them over, and taking them out of the queue
 * (accept) cannot be undone if the dump fails or the tree is left running.
 * An IPv6 link-local address keeps its scope id (an interface index);
 * restore refuses it if that index names another interface there.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <net/if.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/xattr.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "as-owner.h"
#include "fd-kind.h"
#include "sk-net.h"

#define INET_MAX_DATAGRAMS 65536 /* a queue is bounded by SO_RCVBUF far below this */

union sockaddr_inet {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

int sk_family(int sk)
{
	int v;
	socklen_t l = sizeof(v);

	if (getsockopt(sk, SOL_SOCKET, SO_DOMAIN, &v, &l))
		return -errno;
	return v;
}

void inet_addr_fmt(const InetAddr *a, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->addr.len == 4)
		inet_ntop(AF_INET, a->addr.data, ip, sizeof(ip));
	else if (a->addr.len == 16)
		inet_ntop(AF_INET6, a->addr.data, ip, sizeof(ip));
	if (a->addr.len == 16 && a->scope_id)
		snprintf(buf, len, "[%s%%%u]:%u", ip, a->scope_id, a->port);
	else
		snprintf(buf, len, a->addr.len == 16 ? "[%s]:%u" : "%s:%u", ip, a->port);
}

/* The name of interface IFINDEX in SK's network namespace (not ours: dev_ioctl is per socket). */
static int ifname_of(int sk, uint32_t ifindex, char name[IFNAMSIZ])
{
	struct ifreq ifr = { .ifr_ifindex = (int)ifindex };

	if (ioctl(sk, SIOCGIFNAME, &ifr))
		return -errno;
	memcpy(name, ifr.ifr_name, IFNAMSIZ);
	name[IFNAMSIZ - 1] = 0;
	return 0;
}

/* Dump: the name behind A's scope id, as the socket's namespace knows it. */
static int addr_scope_name(int sk, InetAddr *a)
{
	char name[IFNAMSIZ];

	if (!a->scope_id)
		return 0;
	if (ifname_of(sk, a->scope_id, name))
		return 0; /* gone already: restore will find no interface of that name */
	a->scope_ifname = strdup(name);
	return a->scope_ifname ? 0 : -ENOMEM;
}

int inet_addr_scope_check(int sk, const InetAddr *a, char *why, size_t len)
{
	char name[IFNAMSIZ] = "", as[INET_ADDR_STRLEN];
	int ret;

	if (!a || !a->has_scope_id || !a->scope_id)
		return 0;
	ret = ifname_of(sk, a->scope_id, name);
	if (!ret && a->scope_ifname && !strcmp(name, a->scope_ifname))
		return 0;
	inet_addr_fmt(a, as, sizeof(as));
	snprintf(why, len, "IPv6 address %s: its interface index %u was %s at dump, %s%s here: "
		 "not restored on another interface", as, a->scope_id,
		 a->scope_ifname ? a->scope_ifname : "unnamed", ret ? "no interface" : "is ",
		 ret ? "" : name);
	return -EOPNOTSUPP;
}

static const char *proto_name(uint32_t protocol)
{
	return protocol == IPPROTO_TCP ? "TCP" : "UDP";
}

/* --- addresses --- */

static InetAddr *addr_new(const union sockaddr_inet *sa)
{
	InetAddr *a = malloc(sizeof(*a));
	size_t n = sa->sa.sa_family == AF_INET ? 4 : 16;

	if (!a)
		return NULL;
	inet_addr__init(a);
	a->addr.data = malloc(n);
	if (!a->addr.data) {
		free(a);
		return NULL;
	}
	a->addr.len = n;
	if (n == 4) {
		memcpy(a->addr.data, &sa->in.sin_addr, 4);
		a->port = ntohs(sa->in.sin_port);
	} else {
		memcpy(a->addr.data, &sa->in6.sin6_addr, 16);
		a->port = ntohs(sa->in6.sin6_port);
		a->has_scope_id = sa->in6.sin6_scope_id != 0;
		a->scope_id = sa->in6.sin6_scope_id;
	}
	return a;
}

static socklen_t addr_to_sa(const InetAddr *a, union sockaddr_inet *sa)
{
	memset(sa, 0, sizeof(*sa));
	if (a->addr.len == 4) {
		sa->in.sin_family = AF_INET;
		sa->in.sin_port = htons((uint16_t)a->port);
		memcpy(&sa->in.sin_addr, a->addr.data, 4);
		return sizeof(sa->in);
	}
	sa->in6.sin6_family = AF_INET6;
	sa->in6.sin6_port = htons((uint16_t)a->port);
	sa->in6.sin6_scope_id = a->scope_id;
	memcpy(&sa->in6.sin6_addr, a->addr.data, 16);
	return sizeof(sa->in6);
}

static bool addr_is_any(const InetAddr *a)
{
	static const uint8_t zero[16];

	return !memcmp(a->addr.data, zero, a->addr.len);
}

/*
 * Where queued datagrams may be sent again: a local unicast address (or a
 * wildcard: loopback). A multicast or broadcast one would put packets with
 * somebody else's source address on the wire.
 */
static bool addr_may_inject(const InetAddr *a)
{
	const uint8_t *b = a->addr.data;

	if (a->addr.len == 16 && b[0] == 0xff)
		return false; /* IPv6 multicast */
	if (a->addr.len == 16 && !memcmp(b, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12))
		b += 12; /* IPv4-mapped */
	else if (a->addr.len == 16)
		return true;
	return (b[0] & 0xf0) != 0xe0 && !(b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255);
}

/* --- options --- */

static int get_int(int sk, int level, int name, int *v)
{
	socklen_t l = sizeof(*v);

	return getsockopt(sk, level, name, v, &l) ? -errno : 0;
}

static int set_int(int sk, int level, int name, int v)
{
	return setsockopt(sk, level, name, &v, sizeof(v)) ? -errno : 0;
}

static int get_timeo(int sk, int name, uint64_t *us)
{
	struct timeval tv;
	socklen_t l = sizeof(tv);

	if (getsockopt(sk, SOL_SOCKET, name, &tv, &l))
		return -errno;
	*us = (uint64_t)tv.tv_sec * 1000000 + (uint64_t)tv.tv_usec;
	return 0;
}

/* The buffer sizes of a fresh socket of the same kind: what "not set" looks like. */
static void default_bufs(int family, int type, int protocol, int *snd, int *rcv)
{
	int s = socket(family, type | SOCK_CLOEXEC, protocol);

	*snd = *rcv = -1;
	if (s < 0)
		return;
	get_int(s, SOL_SOCKET, SO_SNDBUF, snd);
	get_int(s, SOL_SOCKET, SO_RCVBUF, rcv);
	close(s);
}

static int dump_opts(int sk, const InetSkEntry *e, InetSkOpts *o)
{
	int v, snd, rcv, ret;
	char dev[IFNAMSIZ + 1] = "";
	socklen_t l = IFNAMSIZ;

#define GET(level, name, field)                                 \
	do {                                                    \
		ret = get_int(sk, level, name, &v);             \
		if (ret)                                        \
			return ret;                             \
		o->has_##field = true;                          \
		o->field = v;                                   \
	} while (0)
	GET(SOL_SOCKET, SO_REUSEADDR, reuseaddr);
	GET(SOL_SOCKET, SO_REUSEPORT, reuseport);
	GET(SOL_SOCKET, SO_KEEPALIVE, keepalive);
	default_bufs((int)e->family, (int)e->type, (int)e->protocol, &snd, &rcv);
	ret = get_int(sk, SOL_SOCKET, SO_SNDBUF, &v);
	if (ret)
		return ret;
	if (v != snd) {
		o->has_sndbuf = true;
		o->sndbuf = (uint32_t)v;
	}
	ret = get_int(sk, SOL_SOCKET, SO_RCVBUF, &v);
	if (ret)
		return ret;
	if (v != rcv) {
		o->has_rcvbuf = true;
		o->rcvbuf = (uint32_t)v;
	}
	o->has_rcvtimeo_us = o->has_sndtimeo_us = true;
	ret = get_timeo(sk, SO_RCVTIMEO, &o->rcvtimeo_us);
	if (!ret)
		ret = get_timeo(sk, SO_SNDTIMEO, &o->sndtimeo_us);
	if (ret)
		return ret;
	if (e->family == AF_INET6)
		GET(IPPROTO_IPV6, IPV6_V6ONLY, v6only);
	if (getsockopt(sk, SOL_SOCKET, SO_BINDTODEVICE, dev, &l) == 0 && dev[0]) {
		o->bindtodevice = strdup(dev);
		if (!o->bindtodevice)
			return -ENOMEM;
	}
	if (e->protocol == IPPROTO_TCP) {
		GET(IPPROTO_TCP, TCP_NODELAY, nodelay);
		GET(IPPROTO_TCP, TCP_CORK, cork);
		GET(IPPROTO_TCP, TCP_KEEPIDLE, keepidle);
		GET(IPPROTO_TCP, TCP_KEEPINTVL, keepintvl);
		GET(IPPROTO_TCP, TCP_KEEPCNT, keepcnt);
	}
#undef GET
	return 0;
}

static int set_timeo(int sk, int name, uint64_t us)
{
	struct timeval tv = { .tv_sec = (time_t)(us / 1000000), .tv_usec = (suseconds_t)(us % 1000000) };

	return setsockopt(sk, SOL_SOCKET, name, &tv, sizeof(tv)) ? -errno : 0;
}

/* Before bind: what decides which address the socket may take. */
static int restore_opts_bind(int sk, const InetSkEntry *e, char *why, size_t len)
{
	const InetSkOpts *o = e->opts;
	int ret = 0;

	if (o->has_v6only)
		ret = set_int(sk, IPPROTO_IPV6, IPV6_V6ONLY, o->v6only);
	if (!ret && o->has_reuseport)
		ret = set_int(sk, SOL_SOCKET, SO_REUSEPORT, o->reuseport);
	if (!ret)
		ret = set_int(sk, SOL_SOCKET, SO_REUSEADDR, 1);
	if (!ret && o->bindtodevice &&
	    setsockopt(sk, SOL_SOCKET, SO_BINDTODEVICE, o->bindtodevice,
		       (socklen_t)strlen(o->bindtodevice)))
		ret = -errno;
	/* The kernel doubles what it is given and reports the double. */
	if (!ret && o->has_sndbuf)
		ret = set_int(sk, SOL_SOCKET, SO_SNDBUF, (int)(o->sndbuf / 2));
	if (!ret && o->has_rcvbuf)
		ret = set_int(sk, SOL_SOCKET, SO_RCVBUF, (int)(o->rcvbuf / 2));
	if (ret)
		snprintf(why, len, "setting its options: %s", strerror(-ret));
	return ret;
}

static int restore_opts_rest(int sk, const InetSkEntry *e, char *why, size_t len)
{
	const InetSkOpts *o = e->opts;
	int ret = 0;

	if (o->has_reuseaddr)
		ret = set_int(sk, SOL_SOCKET, SO_REUSEADDR, o->reuseaddr);
	if (!ret && o->has_keepalive)
		ret = set_int(sk, SOL_SOCKET, SO_KEEPALIVE, o->keepalive);
	if (!ret && o->has_rcvtimeo_us)
		ret = set_timeo(sk, SO_RCVTIMEO, o->rcvtimeo_us);
	if (!ret && o->has_sndtimeo_us)
		ret = set_timeo(sk, SO_SNDTIMEO, o->sndtimeo_us);
	if (!ret && o->has_nodelay)
		ret = set_int(sk, IPPROTO_TCP, TCP_NODELAY, o->nodelay);
	if (!ret && o->has_keepidle)
		ret = set_int(sk, IPPROTO_TCP, TCP_KEEPIDLE, (int)o->keepidle);
	if (!ret && o->has_keepintvl)
		ret = set_int(sk, IPPROTO_TCP, TCP_KEEPINTVL, (int)o->keepintvl);
	if (!ret && o->has_keepcnt)
		ret = set_int(sk, IPPROTO_TCP, TCP_KEEPCNT, (int)o->keepcnt);
	/* Last: corking an established connection holds back what follows. */
	if (!ret && o->has_cork)
		ret = set_int(sk, IPPROTO_TCP, TCP_CORK, o->cork);
	if (ret)
		snprintf(why, len, "setting its options: %s", strerror(-ret));
	return ret;
}

/* --- the receive queue of a UDP socket --- */

struct peeked {
	uint8_t *buf;
	size_t len;
	union sockaddr_inet from;
};

/*
 * Peek every queued datagram in order. SO_PEEK_OFF makes each MSG_PEEK
 * start after the previous one; the offset is the socket's (the target's
 * too), so it is put back as it was. The target is frozen meanwhile, but
 * datagrams may still arrive: those land after the ones seen, and are lost
 * with the dump like anything sent to a process that is no more.
 */
static int udp_peek_all(int sk, int (*fn)(void *arg, const struct peeked *p), void *arg)
{
	size_t cap = 65536;
	uint8_t *buf = malloc(cap);
	int old = -1, ret = 0, n = 0;

	if (!buf)
		return -ENOMEM;
	get_int(sk, SOL_SOCKET, SO_PEEK_OFF, &old);
	ret = set_int(sk, SOL_SOCKET, SO_PEEK_OFF, 0);
	while (!ret) {
		struct peeked p = { .buf = buf };
		struct iovec iov = { buf, cap };
		struct msghdr mh = { .msg_name = &p.from, .msg_namelen = sizeof(p.from),
				     .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t r = recvmsg(sk, &mh, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);

		if (r < 0) {
			ret = errno == EAGAIN ? 0 : -errno;
			break;
		}
		if ((size_t)r > cap || ++n > INET_MAX_DATAGRAMS) {
			ret = -EMSGSIZE;
			break;
		}
		if (r == 0) {
			ret = -ENODATA; /* an empty datagram: the offset cannot step over it */
			break;
		}
		p.len = (size_t)r;
		ret = fn(arg, &p);
	}
	set_int(sk, SOL_SOCKET, SO_PEEK_OFF, old);
	free(buf);
	return ret;
}

static int queue_add(void *arg, const struct peeked *p)
{
	InetSkEntry *e = arg;
	InetDatagram *d, **q;

	q = realloc(e->queue, (e->n_queue + 1) * sizeof(*q));
	if (!q)
		return -ENOMEM;
	e->queue = q;
	d = malloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	inet_datagram__init(d);
	d->data.data = malloc(p->len);
	d->from = addr_new(&p->from);
	if (!d->data.data || !d->from) {
		protobuf_c_message_free_unpacked(&d->base, NULL);
		return -ENOMEM;
	}
	memcpy(d->data.data, p->buf, p->len);
	d->data.len = p->len;
	e->queue[e->n_queue++] = d;
	return 0;
}

static int count_one(void *arg, const struct peeked *p)
{
	(void)p;
	++*(size_t *)arg;
	return 0;
}

/*
 * One datagram from FROM to TO, sent through a raw socket that writes its
 * own IP header: the source address and port are the original sender's,
 * which may be bound by someone else right now (a UDP socket could not
 * take them). Over IPv4 the UDP checksum may be left out; IPv6 needs it.
 */
static int inject_one(const InetAddr *from, const union sockaddr_inet *to, const ProtobufCBinaryData *data)
{
	size_t hl = from->addr.len == 4 ? sizeof(struct ip) : sizeof(struct ip6_hdr);
	size_t tot = hl + sizeof(struct udphdr) + data->len;
	uint8_t *pkt = calloc(1, tot);
	struct udphdr *uh = (struct udphdr *)(pkt + hl);
	union sockaddr_inet dst = *to;
	int raw, ret = 0;

	if (!pkt)
		return -ENOMEM;
	uh->source = htons((uint16_t)from->port);
	uh->dest = from->addr.len == 4 ? to->in.sin_port : to->in6.sin6_port;
	uh->len = htons((uint16_t)(sizeof(*uh) + data->len));
	memcpy(uh + 1, data->data, data->len);
	if (from->addr.len == 4) {
		struct ip *ih = (struct ip *)pkt;

		ih->ip_v = 4;
		ih->ip_hl = 5;
		ih->ip_ttl = 64;
		ih->ip_p = IPPROTO_UDP;
		ih->ip_len = htons((uint16_t)tot);
		memcpy(&ih->ip_src, from->addr.data, 4);
		ih->ip_dst = to->in.sin_addr;
		dst.in.sin_port = 0;
	} else {
		struct ip6_hdr *ih = (struct ip6_hdr *)pkt;
		uint32_t sum = 0;
		uint8_t ph[8] = { 0 };

		ih->ip6_flow = htonl(6u << 28);
		ih->ip6_plen = uh->len;
		ih->ip6_nxt = IPPROTO_UDP;
		ih->ip6_hlim = 64;
		memcpy(&ih->ip6_src, from->addr.data, 16);
		ih->ip6_dst = to->in6.sin6_addr;
		uint32_t ulen = (uint32_t)(sizeof(*uh) + data->len);
		ph[0] = (uint8_t)(ulen >> 24);
		ph[1] = (uint8_t)(ulen >> 16);
		ph[2] = (uint8_t)(ulen >> 8);
		ph[3] = (uint8_t)ulen;
		ph[7] = IPPROTO_UDP;
		sum = inet_csum_add(sum, &ih->ip6_src, 32);
		sum = inet_csum_add(sum, ph, sizeof(ph));
		sum = inet_csum_add(sum, uh, ulen);
		uh->check = htons(inet_csum_fold(sum));
		if (!uh->check)
			uh->check = 0xffff;
		dst.in6.sin6_port = 0;
	}
	raw = socket(from->addr.len == 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
	if (raw < 0 || sendto(raw, pkt, tot, 0, &dst.sa,
			      from->addr.len == 4 ? sizeof(dst.in) : sizeof(dst.in6)) != (ssize_t)tot)
		ret = -errno;
	if (raw >= 0)
		close(raw);
	free(pkt);
	return ret;
}

/*
 * Where the datagrams go: the socket's own address, loopback for a
 * wildcard. An IPv4 sender of a dual-stack IPv6 socket sends over IPv4.
 */
static void inject_dst(const union sockaddr_inet *local, bool v4, union sockaddr_inet *to)
{
	memset(to, 0, sizeof(*to));
	if (v4) {
		to->in.sin_family = AF_INET;
		if (local->sa.sa_family == AF_INET) {
			*to = *local;
		} else {
			to->in.sin_port = local->in6.sin6_port;
			if (IN6_IS_ADDR_V4MAPPED(&local->in6.sin6_addr))
				memcpy(&to->in.sin_addr, &local->in6.sin6_addr.s6_addr[12], 4);
		}
		if (to->in.sin_addr.s_addr == htonl(INADDR_ANY))
			to->in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return;
	}
	*to = *local;
	if (IN6_IS_ADDR_UNSPECIFIED(&to->in6.sin6_addr))
		to->in6.sin6_addr = in6addr_loopback;
}

static const InetAddr *v4_of_mapped(const InetAddr *a, InetAddr *tmp, uint8_t *b4)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (a->addr.len != 16 || memcmp(a->addr.data, mapped, 12))
		return a;
	memcpy(b4, a->addr.data + 12, 4);
	inet_addr__init(tmp);
	tmp->addr.data = b4;
	tmp->addr.len = 4;
	tmp->port = a->port;
	return tmp;
}

static int udp_inject(int sk, const InetSkEntry *e, char *why, size_t len)
{
	union sockaddr_inet local, to;
	socklen_t l = sizeof(local);
	size_t seen = 0;
	int ret;

	if (getsockname(sk, &local.sa, &l)) {
		snprintf(why, len, "getsockname: %s", strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < e->n_queue; i++) {
		InetAddr tmp;
		uint8_t b4[4];
		const InetAddr *from = v4_of_mapped(e->queue[i]->from, &tmp, b4);

		inject_dst(&local, from->addr.len == 4, &to);
		ret = inject_one(from, &to, &e->queue[i]->data);
		if (ret) {
			snprintf(why, len, "queueing datagram %zu of %zu again: %s", i + 1, e->n_queue,
				 strerror(-ret));
			return ret;
		}
	}
	/* Loopback delivers in the sender's softirq, but make sure before going on. */
	for (int tries = 0; tries < 200; tries++) {
		seen = 0;
		ret = udp_peek_all(sk, count_one, &seen);
		if (ret || seen >= e->n_queue)
			break;
		poll(NULL, 0, 5);
	}
	if (!ret && seen != e->n_queue)
		ret = -EIO;
	if (ret)
		snprintf(why, len, "%zu of %zu queued datagrams arrived again%s%s", seen, e->n_queue,
			 ret == -EIO ? "" : ": ", ret == -EIO ? "" : strerror(-ret));
	return ret;
}

/* --- dump --- */

static const char *tcp_state_name(unsigned st)
{
	static const char *const names[] = {
		[TCP_ESTABLISHED] = "established", [TCP_SYN_SENT] = "connecting (SYN sent)",
		[TCP_SYN_RECV] = "SYN received",   [TCP_FIN_WAIT1] = "closing (FIN_WAIT1)",
		[TCP_FIN_WAIT2] = "half-closed (FIN_WAIT2)", [TCP_TIME_WAIT] = "TIME_WAIT",
		[TCP_CLOSE] = "closed", [TCP_CLOSE_WAIT] = "half-closed by its peer (CLOSE_WAIT)",
		[TCP_LAST_ACK] = "closing (LAST_ACK)", [TCP_LISTEN] = "listening",
		[TCP_CLOSING] = "closing (CLOSING)",
	};

	return st < sizeof(names) / sizeof(names[0]) && names[st] ? names[st] : "in an unknown state";
}

static int tcp_dump_state(int sk, InetSkEntry *e, const struct sk_dump_opts *o, char *why,
			  size_t len)
{
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	char la[INET_ADDR_STRLEN], pa[INET_ADDR_STRLEN] = "";

	if (getsockopt(sk, IPPROTO_TCP, TCP_INFO, &ti, &l)) {
		snprintf(why, len, "TCP_INFO: %s", strerror(errno));
		return -errno;
	}
	inet_addr_fmt(e->local, la, sizeof(la));
	if (e->peer)
		inet_addr_fmt(e->peer, pa, sizeof(pa));
	switch (ti.tcpi_state) {
	case TCP_CLOSE:
		e->state = INET_SK_STATE__INET_SK_CLOSED;
		return 0;
	case TCP_LISTEN:
		/* For a listener, TCP_INFO reports its backlog queue in these two. */
		if (ti.tcpi_unacked) {
			snprintf(why, len, "TCP listener %s has %u connection(s) waiting in its "
				 "backlog (not accepted yet): not supported (accepting them to dump "
				 "them cannot be undone if the dump fails or -R leaves the tree "
				 "running)", la, ti.tcpi_unacked);
			return -EOPNOTSUPP;
		}
		e->state = INET_SK_STATE__INET_SK_LISTEN;
		e->has_backlog = true;
		e->backlog = ti.tcpi_sacked;
		return 0;
	case TCP_ESTABLISHED:
	case TCP_CLOSE_WAIT:
	case TCP_FIN_WAIT1:
	case TCP_FIN_WAIT2:
	case TCP_LAST_ACK:
	case TCP_CLOSING:
		if (!o->tcp_established && ti.tcpi_state == TCP_ESTABLISHED) {
			snprintf(why, len, "established TCP connection %s -> %s: dump with "
				 "--tcp-established to keep it", la, pa);
			return -EOPNOTSUPP;
		}
		if (!o->tcp_established) {
			snprintf(why, len, "TCP connection %s -> %s is %s: dump with "
				 "--tcp-established to keep it", la, pa, tcp_state_name(ti.tcpi_state));
			return -EOPNOTSUPP;
		}
		e->state = INET_SK_STATE__INET_SK_ESTABLISHED;
		/* The lock first: what is read below must not change under us. */
		if (o->lock) {
			int ret = netlock_add(o->lock, e, sk, why, len);

			if (ret)
				return ret;
			e->lock_table = strdup(netlock_table(o->lock));
			if (!e->lock_table)
				return -ENOMEM;
		}
		return tcp_repair_dump(sk, &e->tcp, why, len);
	default: /* SYN_SENT has no peer name yet */
		if (pa[0])
			snprintf(why, len, "TCP connection %s -> %s is %s: not supported", la, pa,
				 tcp_state_name(ti.tcpi_state));
		else
			snprintf(why, len, "TCP socket %s is %s: not supported", la,
				 tcp_state_name(ti.tcpi_state));
		return -EOPNOTSUPP;
	}
}

static int dump_addrs(int sk, InetSkEntry *e, char *why, size_t len)
{
	union sockaddr_inet sa;
	socklen_t l = sizeof(sa);

	if (getsockname(sk, &sa.sa, &l)) {
		snprintf(why, len, "getsockname: %s", strerror(errno));
		return -errno;
	}
	e->local = addr_new(&sa);
	if (!e->local || addr_scope_name(sk, e->local))
		return -ENOMEM;
	l = sizeof(sa);
	if (getpeername(sk, &sa.sa, &l) == 0) {
		e->peer = addr_new(&sa);
		if (!e->peer || addr_scope_name(sk, e->peer))
			return -ENOMEM;
	} else if (errno != ENOTCONN) {
		snprintf(why, len, "getpeername: %s", strerror(errno));
		return -errno;
	}
	return 0;
}

static int dump_kind(int sk, InetSkEntry *e, char *why, size_t len)
{
	int v;

	if (get_int(sk, SOL_SOCKET, SO_DOMAIN, &v))
		goto out_err;
	e->family = (uint32_t)v;
	if (get_int(sk, SOL_SOCKET, SO_TYPE, &v))
		goto out_err;
	e->type = (uint32_t)v;
	if (get_int(sk, SOL_SOCKET, SO_PROTOCOL, &v))
		goto out_err;
	e->protocol = (uint32_t)v;
	if ((e->type == SOCK_STREAM && e->protocol == IPPROTO_TCP) ||
	    (e->type == SOCK_DGRAM && e->protocol == IPPROTO_UDP))
		return 0;
	snprintf(why, len, "%s socket of type %u, protocol %u (%s): not supported",
		 e->family == AF_INET ? "IPv4" : "IPv6", e->type, e->protocol,
		 e->type == SOCK_RAW ? "raw" : e->protocol == IPPROTO_SCTP ? "SCTP" :
		 e->protocol == IPPROTO_UDPLITE ? "UDP-Lite" : "other");
	return -EOPNOTSUPP;
out_err:
	snprintf(why, len, "getsockopt: %s", strerror(errno));
	return -errno;
}

int inet_sk_dump(int sk, const struct sk_dump_opts *o, InetSkEntry **out, char *why, size_t len)
{
	char la[INET_ADDR_STRLEN];
	InetSkEntry *e = malloc(sizeof(*e));
	int ret;

	*out = NULL;
	if (!e)
		return -ENOMEM;
	inet_sk_entry__init(e);
	e->opts = malloc(sizeof(*e->opts));
	if (!e->opts) {
		free(e);
		return -ENOMEM;
	}
	inet_sk_opts__init(e->opts);
	ret = dump_kind(sk, e, why, len);
	if (!ret)
		ret = dump_addrs(sk, e, why, len);
	if (!ret && e->protocol == IPPROTO_TCP) {
		ret = tcp_dump_state(sk, e, o, why, len);
	} else if (!ret) {
		e->state = e->peer ? INET_SK_STATE__INET_SK_CONNECTED : INET_SK_STATE__INET_SK_CLOSED;
		ret = udp_peek_all(sk, queue_add, e);
		if (ret == -EMSGSIZE || ret == -ENODATA) {
			snprintf(why, len, "UDP socket: %s in its receive queue: not supported",
				 ret == -ENODATA ? "an empty datagram" : "too many datagrams");
			ret = -EOPNOTSUPP;
		} else if (ret) {
			snprintf(why, len, "peeking at its queued datagrams: %s", strerror(-ret));
		} else if (e->n_queue && (!e->local->port || !addr_may_inject(e->local))) {
			inet_addr_fmt(e->local, la, sizeof(la));
			snprintf(why, len, "UDP socket %s (multicast or broadcast) with datagrams "
				 "queued: not supported", la);
			ret = -EOPNOTSUPP;
		}
	}
	if (!ret)
		ret = dump_opts(sk, e, e->opts);
	if (ret == -ENOMEM)
		snprintf(why, len, "out of memory");
	else if (ret && !why[0])
		snprintf(why, len, "reading its options: %s", strerror(-ret));
	if (ret) {
		if (e->tcp)
			tcp_repair_leave(sk);
		protobuf_c_message_free_unpacked(&e->base, NULL);
		return ret;
	}
	*out = e;
	return 0;
}

/* --- restore --- */

static bool addr_ok(const InetAddr *a, uint32_t family)
{
	return a && a->port <= 65535 &&
	       (a->addr.len == 16 || (a->addr.len == 4 && family == AF_INET));
}

int inet_sk_verify(const InetSkEntry *e, char *why, size_t len)
{
	bool tcp = e->type == SOCK_STREAM && e->protocol == IPPROTO_TCP;
	bool udp = e->type == SOCK_DGRAM && e->protocol == IPPROTO_UDP;

	if ((e->family != AF_INET && e->family != AF_INET6) || (!tcp && !udp)) {
		snprintf(why, len, "socket family %u type %u protocol %u is not TCP or UDP",
			 e->family, e->type, e->protocol);
		return -EBADMSG;
	}
	if (!addr_ok(e->local, e->family) || (e->local->addr.len == 16) != (e->family == AF_INET6) ||
	    (e->peer && (!addr_ok(e->peer, e->family) ||
			 e->peer->addr.len != e->local->addr.len))) {
		snprintf(why, len, "socket address of the wrong size or port");
		return -EBADMSG;
	}
	if (e->n_queue && (!e->local->port || !addr_may_inject(e->local))) {
		snprintf(why, len, "datagrams queued for a socket without a unicast address");
		return -EBADMSG;
	}
	for (size_t i = 0; i < e->n_queue; i++)
		if (!udp || !addr_ok(e->queue[i]->from, AF_INET) ||
		    e->queue[i]->data.len > 65507 || !e->queue[i]->data.len) {
			snprintf(why, len, "queued datagram %zu is malformed", i + 1);
			return -EBADMSG;
		}
	switch (e->state) {
	case INET_SK_STATE__INET_SK_CLOSED:
		return 0;
	case INET_SK_STATE__INET_SK_LISTEN:
		if (tcp && e->has_backlog)
			return 0;
		break;
	case INET_SK_STATE__INET_SK_CONNECTED:
		if (udp && e->peer)
			return 0;
		break;
	case INET_SK_STATE__INET_SK_ESTABLISHED:
		if (tcp && e->peer && e->tcp && tcp_repair_entry_ok(e->tcp))
			return 0;
		break;
	default:
		break;
	}
	snprintf(why, len, "%s socket in state %d without what that state needs",
		 proto_name(e->protocol), e->state);
	return -EBADMSG;
}

static int sk_bind_listen(int sk, const InetSkEntry *e, char *why, size_t len)
{
	union sockaddr_inet sa;
	socklen_t l = addr_to_sa(e->local, &sa);
	char la[INET_ADDR_STRLEN];

	inet_addr_fmt(e->local, la, sizeof(la));
	if ((e->local->port || !addr_is_any(e->local)) && bind(sk, &sa.sa, l)) {
		int err = errno;

		snprintf(why, len, "%s socket %s: bind: %s%s", proto_name(e->protocol), la,
			 strerror(err), err == EADDRINUSE ? " (is the dumped process still "
			 "running, or another one on that port?)" : "");
		return -err;
	}
	if (e->state == INET_SK_STATE__INET_SK_LISTEN && listen(sk, (int)e->backlog)) {
		snprintf(why, len, "TCP listener %s: listen: %s", la, strerror(errno));
		return -errno;
	}
	if (e->state == INET_SK_STATE__INET_SK_CONNECTED) {
		char pa[INET_ADDR_STRLEN];

		l = addr_to_sa(e->peer, &sa);
		if (connect(sk, &sa.sa, l)) {
			inet_addr_fmt(e->peer, pa, sizeof(pa));
			snprintf(why, len, "UDP socket %s: connect to %s: %s", la, pa, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

int inet_sk_open(const InetSkEntry *e, uint32_t flags, const struct rst_task *owner, char *why,
		 size_t len)
{
	int sk, ret;

	sk = as_owner_socket(owner, (int)e->family, (int)e->type | SOCK_CLOEXEC, (int)e->protocol,
			     why, len);
	if (sk < 0)
		return sk;
	ret = inet_addr_scope_check(sk, e->local, why, len);
	if (!ret)
		ret = inet_addr_scope_check(sk, e->peer, why, len);
	if (!ret)
		ret = restore_opts_bind(sk, e, why, len);
	if (!ret && e->state == INET_SK_STATE__INET_SK_ESTABLISHED)
		ret = tcp_repair_restore(sk, e, why, len);
	else if (!ret)
		ret = sk_bind_listen(sk, e, why, len);
	if (!ret && e->n_queue)
		ret = udp_inject(sk, e, why, len);
	if (!ret)
		ret = restore_opts_rest(sk, e, why, len);
	if (!ret && e->state == INET_SK_STATE__INET_SK_ESTABLISHED &&
	    (e->tcp->unsent || e->tcp->fin_unsent))
		ret = tcp_repair_send_unsent(sk, e, why, len);
	if (!ret && (flags & O_NONBLOCK) && fcntl(sk, F_SETFL, O_NONBLOCK)) {
		ret = -errno;
		snprintf(why, len, "O_NONBLOCK: %s", strerror(errno));
	}
	if (ret) {
		close(sk);
		return ret;
	}
	return sk;
}

void sk_describe(int sk, char *buf, size_t len)
{
	static const char *const fams[] = { [AF_UNIX] = "unix", [AF_INET] = "IPv4",
					    [AF_INET6] = "IPv6", [AF_NETLINK] = "netlink",
					    [AF_PACKET] = "packet", [AF_KEY] = "PF_KEY",
					    [AF_BLUETOOTH] = "bluetooth", [AF_VSOCK] = "vsock",
					    [AF_ALG] = "AF_ALG", [AF_XDP] = "XDP" };
	static const char *const types[] = { [SOCK_STREAM] = "SOCK_STREAM",
					     [SOCK_DGRAM] = "SOCK_DGRAM", [SOCK_RAW] = "SOCK_RAW",
					     [SOCK_SEQPACKET] = "SOCK_SEQPACKET",
					     [SOCK_RDM] = "SOCK_RDM" };
	int fam = sk_family(sk), type = -1, proto = -1;
	const char *fn = fam >= 0 && (size_t)fam < sizeof(fams) / sizeof(fams[0]) ? fams[fam] : NULL;
	const char *tn;

	get_int(sk, SOL_SOCKET, SO_TYPE, &type);
	get_int(sk, SOL_SOCKET, SO_PROTOCOL, &proto);
	tn = type >= 0 && (size_t)type < sizeof(types) / sizeof(types[0]) ? types[type] : NULL;
	if (fn)
		snprintf(buf, len, "%s socket (%s, protocol %d)", fn, tn ? tn : "?", proto);
	else
		snprintf(buf, len, "socket of family %d (type %d, protocol %d)", fam, type, proto);
}

/* --- the fd kinds (fd-kind.h): TCP/UDP, and every other socket refused --- */

/* sockfs names the protocol of the socket behind the magic link. */
static bool sk_protoname(const struct fd_probe *p, char *buf, size_t len)
{
	char path[64];
	ssize_t n;

	if (!S_ISSOCK(p->st.st_mode))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->pid, p->fd);
	n = getxattr(path, "system.sockprotoname", buf, len - 1);
	if (n <= 0)
		return false;
	buf[n] = 0;
	return true;
}

static bool inet_match(const struct fd_probe *p)
{
	char proto[32];

	return sk_protoname(p, proto, sizeof(proto)) &&
	       (!strcmp(proto, "TCP") || !strcmp(proto, "TCPv6") || !strcmp(proto, "UDP") ||
		!strcmp(proto, "UDPv6"));
}

static int inet_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	static const struct sk_dump_opts none = { 0 };
	char why[320] = "";
	int sk = fd_probe_getfd(p), ret;

	(void)imgs;
	if (sk < 0)
		return sk;
	ret = inet_sk_dump(sk, p->ctx && p->ctx->net ? p->ctx->net : &none, &e->inet_sk, why,
			   sizeof(why));
	if (ret == -ENOMEM)
		pr_err("process %d fd %d: out of memory", p->pid, p->fd);
	else if (ret)
		pr_err("process %d fd %d: %s", p->pid, p->fd, why);
	return ret;
}

static int inet_verify(const FileEntry *e, char *why, size_t len)
{
	if (!e->inet_sk || !e->inet_sk->local || !e->inet_sk->opts) {
		snprintf(why, len, "socket without its inet_sk entry");
		return -EBADMSG;
	}
	if (e->inet_sk->lock_table && !netlock_table_valid(e->inet_sk->lock_table)) {
		snprintf(why, len, "network lock table %s is not one of ours", e->inet_sk->lock_table);
		return -EBADMSG;
	}
	return inet_sk_verify(e->inet_sk, why, len);
}

static int inet_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		     char *why, size_t len)
{
	int sk = inet_sk_open(e->inet_sk, e->flags, as_owner_of_file(im, e->id), why, len);

	if (sk < 0)
		return sk;
	return rst_fstore_put(st, e->id, sk, why, len);
}

const struct fd_kind fd_kind_inet = {
	.kind = FILE_KIND__FD_INET_SK,
	.name = "TCP/UDP socket",
	.match = inet_match,
	.dump = inet_dump,
	.verify = inet_verify,
	.open = inet_open,
};

/* Every socket no kind before this one took, but unix ones: refused by name. */
static bool other_match(const struct fd_probe *p)
{
	char proto[32];

	return sk_protoname(p, proto, sizeof(proto)) && strncmp(proto, "UNIX", 4);
}

static int other_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	char what[128];
	int sk = fd_probe_getfd(p);

	(void)e;
	(void)imgs;
	if (sk < 0)
		return sk;
	sk_describe(sk, what, sizeof(what));
	pr_err("process %d fd %d: %s: not supported", p->pid, p->fd, what);
	return -EOPNOTSUPP;
}

static int other_verify(const FileEntry *e, char *why, size_t len)
{
	(void)e;
	snprintf(why, len, "a packet socket is never dumped");
	return -EBADMSG;
}

static int other_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		      char *why, size_t len)
{
	(void)e;
	(void)im;
	(void)st;
	snprintf(why, len, "a packet socket is never dumped");
	return -EBADMSG;
}

const struct fd_kind fd_kind_sk_other = {
	.kind = FILE_KIND__FD_PACKET_SK,
	.name = "socket",
	.match = other_match,
	.dump = other_dump,
	.verify = other_verify,
	.open = other_open,
};
