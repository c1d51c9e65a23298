/*
 * tcp-inject.c - one TCP segment "from the peer" to a socket being
 * rebuilt in repair mode: the FIN a half-closed connection had received
 * (CLOSE_WAIT, LAST_ACK, CLOSING), or the ACK of our own FIN (FIN_WAIT2).
 *
 * The kernel has no repair option for a FIN: the receive queue is filled
 * with data only, and a FIN in the send queue is made by shutdown(). The
 * peer's FIN has to arrive as a packet, so it is written whole (IP header
 * too) to a raw socket, from the peer's address and port to the socket's
 * own: a local address, delivered through loopback whether the peer is on
 * this host or not. No options (no timestamp: Linux checks PAWS only on
 * segments that carry one); the window is the one the peer had announced.
 * The packet carries NETLOCK_MARK, which the network lock lets through.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sk-net.h"

struct seg4 {
	struct ip ip;
	struct tcphdr tcp;
};
_Static_assert(sizeof(struct seg4) == 40, "IPv4 header and TCP header without options");

struct seg6 {
	struct ip6_hdr ip;
	struct tcphdr tcp;
};
_Static_assert(sizeof(struct seg6) == 60, "IPv6 header and TCP header without options");

uint32_t inet_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

uint16_t inet_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* The 4 address bytes of an IPv4 or IPv4-mapped address, or NULL. */
static const uint8_t *v4_bytes(const InetAddr *a)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (a->addr.len == 4)
		return a->addr.data;
	return memcmp(a->addr.data, mapped, 12) ? NULL : a->addr.data + 12;
}

static void tcp_fill(struct tcphdr *th, const struct tcp_seg *s, const InetAddr *from,
		     const InetAddr *to)
{
	memset(th, 0, sizeof(*th));
	th->source = htons((uint16_t)from->port);
	th->dest = htons((uint16_t)to->port);
	th->seq = htonl(s->seq);
	th->ack_seq = htonl(s->ack);
	th->doff = sizeof(*th) / 4;
	th->ack = 1;
	th->fin = s->fin;
	th->window = htons(s->window);
}

static int send_raw(int family, const void *pkt, size_t len, const struct sockaddr *to,
		    socklen_t tolen)
{
	int raw = socket(family, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW), ret = 0;
	int mark = NETLOCK_MARK;

	if (raw < 0)
		return -errno;
	if (setsockopt(raw, SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) ||
	    sendto(raw, pkt, len, 0, to, tolen) != (ssize_t)len)
		ret = -errno;
	close(raw);
	return ret;
}

int tcp_inject(const InetAddr *from, const InetAddr *to, const struct tcp_seg *s)
{
	const uint8_t *f4 = v4_bytes(from), *t4 = v4_bytes(to);

	if (f4 && t4) {
		struct sockaddr_in dst = { .sin_family = AF_INET };
		struct seg4 p;
		uint8_t ph[4] = { 0, IPPROTO_TCP, 0, sizeof(p.tcp) };
		uint32_t sum;

		memset(&p, 0, sizeof(p));
		p.ip.ip_v = 4;
		p.ip.ip_hl = 5;
		p.ip.ip_ttl = 64;
		p.ip.ip_p = IPPROTO_TCP;
		p.ip.ip_len = htons(sizeof(p)); /* the kernel sums the IP header */
		memcpy(&p.ip.ip_src, f4, 4);
		memcpy(&p.ip.ip_dst, t4, 4);
		tcp_fill(&p.tcp, s, from, to);
		sum = inet_csum_add(inet_csum_add(inet_csum_add(0, &p.ip.ip_src, 8), ph, sizeof(ph)), &p.tcp,
				    sizeof(p.tcp));
		p.tcp.check = htons(inet_csum_fold(sum));
		memcpy(&dst.sin_addr, t4, 4);
		return send_raw(AF_INET, &p, sizeof(p), (struct sockaddr *)&dst, sizeof(dst));
	}
	if (from->addr.len != 16 || to->addr.len != 16)
		return -EINVAL;

	struct sockaddr_in6 dst = { .sin6_family = AF_INET6, .sin6_scope_id = to->scope_id };
	struct seg6 p;
	uint8_t ph[8] = { 0, 0, 0, sizeof(p.tcp), 0, 0, 0, IPPROTO_TCP };
	uint32_t sum;

	memset(&p, 0, sizeof(p));
	p.ip.ip6_flow = htonl(6u << 28);
	p.ip.ip6_plen = htons(sizeof(p.tcp));
	p.ip.ip6_nxt = IPPROTO_TCP;
	p.ip.ip6_hlim = 64;
	memcpy(&p.ip.ip6_src, from->addr.data, 16);
	memcpy(&p.ip.ip6_dst, to->addr.data, 16);
	tcp_fill(&p.tcp, s, from, to);
	sum = inet_csum_add(inet_csum_add(inet_csum_add(0, &p.ip.ip6_src, 32), ph, sizeof(ph)), &p.tcp,
			    sizeof(p.tcp));
	p.tcp.check = htons(inet_csum_fold(sum));
	memcpy(&dst.sin6_addr, to->addr.data, 16);
	return send_raw(AF_INET6, &p, sizeof(p), (struct sockaddr *)&dst, sizeof(dst));
}
