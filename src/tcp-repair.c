/*
 * tcp-repair.c - an established, half-closed or closing TCP connection,
 * through TCP_REPAIR.
 *
 * Dump switches the socket into repair mode (it stays there: closing a
 * socket in repair mode sends neither FIN nor RST, so killing the dumped
 * process leaves the peer none the wiser) and reads the sequence numbers,
 * both queues (the send queue holds data sent but not acknowledged, then
 * data never sent), the negotiated options and the window.
 *
 * Restore builds the socket in repair mode: sequence numbers first (only a
 * closed socket takes them), bind and connect (no SYN in repair mode: the
 * socket is established at once), options, queues, window; the part of the
 * send queue that was never sent goes out after repair mode is left and
 * the socket's options are set (TCP_CORK), as ordinary data. The network
 * lock (netlock.c) keeps the peer's packets away meanwhile, so it never
 * meets a RST.
 *
 * FINs. Each takes one sequence number, which the image leaves out: the
 * connection is rebuilt as established, up to the end of the data, and its
 * FINs are made again in the order the state implies. Ours by shutdown():
 * in repair mode, with the send queue selected, if it had been sent (the
 * kernel counts it sent without sending it; the retransmission timer does
 * if need be), after the unsent data otherwise. The peer's as a packet
 * (tcp-inject.c): the receive queue then ends with it and the reader gets
 * EOF after the data. An acknowledged FIN of ours (FIN_WAIT2) is
 * acknowledged again the same way.
 *
 *   FIN_WAIT1   shutdown
 *   FIN_WAIT2   shutdown, the peer's ACK of it
 *   CLOSE_WAIT  the peer's FIN
 *   CLOSING     shutdown, the peer's FIN
 *   LAST_ACK    the peer's FIN, shutdown
 *
 * A FIN of ours never sent is made after the unsent data, when repair mode
 * is over; a socket in CLOSING with such a FIN comes back in LAST_ACK (the
 * peer's FIN first): the same to the program and to the peer.
 */
#include <errno.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sk-net.h"


struct repair_window { /* struct tcp_repair_window, linux/tcp.h */
	uint32_t snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup;
};
_Static_assert(sizeof(struct repair_window) == 20, "tcp_repair_window is 5 u32");

static int setint(int sk, int level, int name, int v)
{
	return setsockopt(sk, level, name, &v, sizeof(v)) ? -errno : 0;
}

static int getu32(int sk, int name, uint32_t *v)
{
	socklen_t l = sizeof(*v);

	return getsockopt(sk, IPPROTO_TCP, name, v, &l) ? -errno : 0;
}

#define TCPF(st) (1u << (st))
#define FIN_SENT (TCPF(TCP_FIN_WAIT1) | TCPF(TCP_FIN_WAIT2) | TCPF(TCP_CLOSING) | TCPF(TCP_LAST_ACK))
#define FIN_RECEIVED (TCPF(TCP_CLOSE_WAIT) | TCPF(TCP_CLOSING) | TCPF(TCP_LAST_ACK))

bool tcp_repair_state_ok(unsigned st)
{
	return st < 32 && (TCPF(st) & (TCPF(TCP_ESTABLISHED) | FIN_SENT | FIN_RECEIVED));
}

static unsigned state_of(const TcpRepairEntry *t)
{
	return t->has_tcp_state ? t->tcp_state : TCP_ESTABLISHED;
}

bool tcp_repair_entry_ok(const TcpRepairEntry *t)
{
	unsigned st = state_of(t);

	if (!tcp_repair_state_ok(st) || t->unsent > t->send_queue.len)
		return false;
	/* An acked FIN: all was acked. An unsent FIN: one of ours, not acked. */
	if (st == TCP_FIN_WAIT2 && (t->send_queue.len || t->fin_unsent))
		return false;
	return !t->fin_unsent || (TCPF(st) & FIN_SENT);
}

void tcp_repair_leave(int sk)
{
	setint(sk, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF_NO_WP);
}

/* Peek LEN bytes of queue Q (TCP_SEND_QUEUE or TCP_RECV_QUEUE) into OUT. */
static int peek_queue(int sk, int q, size_t len, ProtobufCBinaryData *out)
{
	ssize_t n;

	out->len = 0;
	out->data = malloc(len ? len : 1);
	if (!out->data)
		return -ENOMEM;
	if (!len)
		return 0;
	if (setint(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, q))
		return -errno;
	n = recv(sk, out->data, len, MSG_PEEK | MSG_DONTWAIT);
	if (n < 0)
		return -errno;
	if ((size_t)n != len)
		return -EAGAIN;
	out->len = len;
	return 0;
}

static int seq_of(int sk, int q, uint32_t *seq)
{
	if (setint(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, q))
		return -errno;
	return getu32(sk, TCP_QUEUE_SEQ, seq);
}

static int dump_fields(int sk, TcpRepairEntry *t, char *why, size_t len)
{
	struct repair_window w;
	struct tcp_info ti;
	socklen_t l = sizeof(ti);
	int outq, unsent, inq, ret;
	bool fin_sent, fin_rcvd;

	if (getsockopt(sk, IPPROTO_TCP, TCP_INFO, &ti, &l) || ioctl(sk, SIOCOUTQ, &outq) ||
	    ioctl(sk, SIOCOUTQNSD, &unsent) || ioctl(sk, SIOCINQ, &inq)) {
		snprintf(why, len, "reading its queues: %s", strerror(errno));
		return -errno;
	}
	if (!tcp_repair_state_ok(ti.tcpi_state)) {
		snprintf(why, len, "TCP connection changed state (to %u) during the dump",
			 ti.tcpi_state);
		return -EOPNOTSUPP;
	}
	fin_sent = TCPF(ti.tcpi_state) & FIN_SENT;
	fin_rcvd = TCPF(ti.tcpi_state) & FIN_RECEIVED;
	/*
	 * SIOCOUTQ (write_seq - snd_una) counts our FIN until it is acked,
	 * SIOCOUTQNSD (write_seq - snd_nxt) until it is sent; it is the last
	 * thing in the queue. SIOCINQ already leaves a received FIN out.
	 */
	if (fin_sent && ti.tcpi_state != TCP_FIN_WAIT2 && outq > 0)
		outq--;
	if (fin_sent && unsent > 0) {
		unsent--;
		t->has_fin_unsent = t->fin_unsent = true;
	}
	t->has_tcp_state = ti.tcpi_state != TCP_ESTABLISHED;
	t->tcp_state = ti.tcpi_state;
	t->opts = ti.tcpi_options;
	t->snd_wscale = ti.tcpi_snd_wscale;
	t->rcv_wscale = ti.tcpi_rcv_wscale;
	t->unsent = (uint32_t)unsent;
	ret = peek_queue(sk, TCP_SEND_QUEUE, (size_t)outq, &t->send_queue);
	if (!ret)
		ret = peek_queue(sk, TCP_RECV_QUEUE, (size_t)inq, &t->recv_queue);
	if (!ret)
		ret = seq_of(sk, TCP_SEND_QUEUE, &t->snd_seq);
	if (!ret)
		ret = seq_of(sk, TCP_RECV_QUEUE, &t->rcv_seq);
	if (!ret)
		ret = getu32(sk, TCP_MAXSEG, &t->mss);
	if (!ret)
		ret = getu32(sk, TCP_TIMESTAMP, &t->timestamp);
	l = sizeof(w);
	if (!ret && getsockopt(sk, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, &l))
		ret = -errno;
	setint(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
	if (ret) {
		snprintf(why, len, "reading its repair state: %s", strerror(-ret));
		return ret;
	}
	t->snd_seq -= fin_sent;
	t->rcv_seq -= fin_rcvd;
	t->snd_wl1 = w.snd_wl1;
	t->snd_wnd = w.snd_wnd;
	t->max_window = w.max_window;
	t->rcv_wnd = w.rcv_wnd;
	t->rcv_wup = w.rcv_wup;
	return 0;
}

int tcp_repair_dump(int sk, TcpRepairEntry **out, char *why, size_t len)
{
	TcpRepairEntry *t = malloc(sizeof(*t));
	int ret;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	tcp_repair_entry__init(t);
	if (setint(sk, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON)) {
		ret = -errno;
		snprintf(why, len, "TCP_REPAIR: %s", strerror(errno));
		free(t);
		return ret;
	}
	ret = dump_fields(sk, t, why, len);
	if (ret) {
		tcp_repair_leave(sk);
		protobuf_c_message_free_unpacked(&t->base, NULL);
		return ret;
	}
	*out = t;
	return 0;
}

/* Write BUF into repair queue Q; the kernel may take less at a time. */
static int fill_queue(int sk, int q, const uint8_t *buf, size_t len)
{
	if (len && setint(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, q))
		return -errno;
	while (len) {
		ssize_t n = send(sk, buf, len < 65536 ? len : 65536, MSG_DONTWAIT);

		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int set_options(int sk, const TcpRepairEntry *t)
{
	struct tcp_repair_opt o[4];
	unsigned n = 0;

	o[n].opt_code = TCPOPT_MAXSEG;
	o[n++].opt_val = t->mss;
	if (t->opts & TCPI_OPT_WSCALE) {
		o[n].opt_code = TCPOPT_WINDOW;
		o[n++].opt_val = t->snd_wscale | t->rcv_wscale << 16;
	}
	if (t->opts & TCPI_OPT_SACK) {
		o[n].opt_code = TCPOPT_SACK_PERMITTED;
		o[n++].opt_val = 0;
	}
	if (t->opts & TCPI_OPT_TIMESTAMPS) {
		o[n].opt_code = TCPOPT_TIMESTAMP;
		o[n++].opt_val = 0;
	}
	if (setsockopt(sk, IPPROTO_TCP, TCP_REPAIR_OPTIONS, o, n * sizeof(o[0])))
		return -errno;
	if ((t->opts & TCPI_OPT_TIMESTAMPS) && setint(sk, IPPROTO_TCP, TCP_TIMESTAMP, (int)t->timestamp))
		return -errno;
	return 0;
}

static int sa_of(const InetAddr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->addr.len == 4) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;

		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)a->port);
		memcpy(&in->sin_addr, a->addr.data, 4);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	in6->sin6_family = AF_INET6;
	in6->sin6_port = htons((uint16_t)a->port);
	in6->sin6_scope_id = a->scope_id;
	memcpy(&in6->sin6_addr, a->addr.data, 16);
	return sizeof(*in6);
}

/* Our FIN, in repair mode: counted as sent (with the send queue selected), not sent. */
static int shutdown_sent(int sk)
{
	if (setint(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE) || shutdown(sk, SHUT_WR))
		return -errno;
	return setint(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
}

/*
 * A segment from the peer, then wait for the state it leads to: loopback
 * delivers it in the sender's softirq, but it is not worth trusting that.
 */
static int from_peer(int sk, const InetSkEntry *e, bool fin, uint32_t ack, unsigned want)
{
	const TcpRepairEntry *t = e->tcp;
	struct tcp_seg seg = {
		.seq = t->rcv_seq, .ack = ack, .fin = fin,
		.window = (uint16_t)((t->opts & TCPI_OPT_WSCALE) ? t->snd_wnd >> t->snd_wscale :
								       t->snd_wnd),
	};
	struct tcp_info ti;
	int ret = tcp_inject(e->peer, e->local, &seg);

	for (int tries = 0; !ret && tries < 400; tries++) {
		socklen_t l = sizeof(ti);

		if (getsockopt(sk, IPPROTO_TCP, TCP_INFO, &ti, &l))
			return -errno;
		if (ti.tcpi_state == want)
			return 0;
		usleep(5000);
	}
	return ret ? ret : -ETIMEDOUT;
}

/* The FINs (see the top of the file), in repair mode; the unsent one comes later. */
static int make_fins(int sk, const InetSkEntry *e, const char **step)
{
	const TcpRepairEntry *t = e->tcp;
	unsigned st = state_of(t);
	bool ours = (TCPF(st) & FIN_SENT) && !t->fin_unsent;
	uint32_t una = t->snd_seq - t->send_queue.len;
	int ret = 0;

	*step = "shutdown (our FIN)";
	if (ours && st != TCP_LAST_ACK)
		ret = shutdown_sent(sk);
	*step = "the peer's FIN";
	if (!ret && (TCPF(st) & FIN_RECEIVED))
		ret = from_peer(sk, e, true, una, ours && st == TCP_CLOSING ? TCP_CLOSING :
							     TCP_CLOSE_WAIT);
	*step = "shutdown (our FIN)";
	if (!ret && ours && st == TCP_LAST_ACK)
		ret = shutdown_sent(sk);
	*step = "the peer's ACK of our FIN";
	if (!ret && st == TCP_FIN_WAIT2)
		ret = from_peer(sk, e, false, t->snd_seq + 1, TCP_FIN_WAIT2);
	return ret;
}

static int repair_steps(int sk, const InetSkEntry *e, const char **step)
{
	const TcpRepairEntry *t = e->tcp;
	size_t sent = t->send_queue.len - t->unsent;
	struct repair_window w = { t->snd_wl1, t->snd_wnd, t->max_window, t->rcv_wnd, t->rcv_wup };
	struct sockaddr_storage ss;
	int ret;

	*step = "TCP_REPAIR";
	if (setint(sk, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_ON))
		return -errno;
	/*
	 * The queues' data is added below and advances these again: all of
	 * the send queue, the unsent part too (sent after repair mode).
	 */
	*step = "sequence numbers";
	if (setint(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE) ||
	    setint(sk, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)(t->snd_seq - t->send_queue.len)) ||
	    setint(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE) ||
	    setint(sk, IPPROTO_TCP, TCP_QUEUE_SEQ, (int)(t->rcv_seq - t->recv_queue.len)))
		return -errno;
	*step = "bind";
	if (bind(sk, (struct sockaddr *)&ss, (socklen_t)sa_of(e->local, &ss)))
		return -errno;
	*step = "connect";
	if (connect(sk, (struct sockaddr *)&ss, (socklen_t)sa_of(e->peer, &ss)))
		return -errno;
	*step = "TCP_REPAIR_OPTIONS";
	ret = set_options(sk, t);
	if (ret)
		return ret;
	*step = "receive queue";
	ret = fill_queue(sk, TCP_RECV_QUEUE, t->recv_queue.data, t->recv_queue.len);
	if (ret)
		return ret;
	*step = "send queue";
	ret = fill_queue(sk, TCP_SEND_QUEUE, t->send_queue.data, sent);
	if (ret)
		return ret;
	/*
	 * The window was read with the peer's FIN counted in: the kernel takes
	 * no rcv_wup beyond rcv_nxt, which the FIN will advance again.
	 */
	if ((TCPF(state_of(t)) & FIN_RECEIVED) && (int32_t)(w.rcv_wup - t->rcv_seq) > 0) {
		w.rcv_wnd += w.rcv_wup - t->rcv_seq;
		w.rcv_wup = t->rcv_seq;
	}
	*step = "TCP_REPAIR_WINDOW";
	if (setsockopt(sk, IPPROTO_TCP, TCP_REPAIR_WINDOW, &w, sizeof(w)))
		return -errno;
	ret = make_fins(sk, e, step);
	if (ret)
		return ret;
	*step = "leaving repair mode";
	setint(sk, IPPROTO_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
	if (setint(sk, IPPROTO_TCP, TCP_REPAIR, TCP_REPAIR_OFF))
		return -errno;
	return 0;
}

/*
 * The restored send queue may take more memory than the original's did
 * (the kernel lets a queue grow past SO_SNDBUF by the last write, and
 * lays it out in its own skbs): the unsent data would not fit, and waiting
 * for room means waiting for a peer that may not run yet. So the buffer
 * is raised (SO_SNDBUFFORCE) for as long as that takes, then set back to
 * what the program had set; one it never set stays at the raised size
 * (fixed now, where the kernel would have grown it by itself).
 */
static int send_unsent(int sk, const InetSkEntry *e)
{
	const TcpRepairEntry *t = e->tcp;
	const uint8_t *buf = t->send_queue.data + (t->send_queue.len - t->unsent);
	size_t len = t->unsent;
	bool grown = false;

	while (len) {
		ssize_t n = send(sk, buf, len < 65536 ? len : 65536, MSG_DONTWAIT);
		int cur = 0;
		socklen_t l = sizeof(cur);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n == 0 || errno != EAGAIN || grown)
			return n < 0 ? -errno : -EIO;
		if (getsockopt(sk, SOL_SOCKET, SO_SNDBUF, &cur, &l) ||
		    setint(sk, SOL_SOCKET, SO_SNDBUFFORCE, (int)(cur + 4 * len + 65536)))
			return -errno;
		grown = true;
	}
	if (grown && e->opts && e->opts->has_sndbuf &&
	    setint(sk, SOL_SOCKET, SO_SNDBUF, (int)(e->opts->sndbuf / 2)))
		return -errno;
	return 0;
}

/*
 * After the options: a corked socket holds this back again as it did. Then
 * a FIN of ours that had not been sent either.
 */
int tcp_repair_send_unsent(int sk, const InetSkEntry *e, char *why, size_t len)
{
	const TcpRepairEntry *t = e->tcp;
	int ret = send_unsent(sk, e);

	if (ret) {
		snprintf(why, len, "TCP connection: sending %u unsent bytes: %s", t->unsent,
			 strerror(-ret));
		return ret;
	}
	if (t->fin_unsent && shutdown(sk, SHUT_WR)) {
		snprintf(why, len, "TCP connection: shutdown (our unsent FIN): %s", strerror(errno));
		return -errno;
	}
	return 0;
}

int tcp_repair_restore(int sk, const InetSkEntry *e, char *why, size_t len)
{
	char la[INET_ADDR_STRLEN], pa[INET_ADDR_STRLEN];
	const char *step = "";
	int ret = repair_steps(sk, e, &step);

	if (ret) {
		inet_addr_fmt(e->local, la, sizeof(la));
		inet_addr_fmt(e->peer, pa, sizeof(pa));
		snprintf(why, len, "TCP connection %s -> %s: %s: %s", la, pa, step, strerror(-ret));
	}
	return ret;
}
