/*
 * sk-net.h - network sockets: TCP and UDP over IPv4/IPv6 (fd-inet.c), their
 * established connections (tcp-repair.c), the network lock that keeps
 * those connections alive between dump and restore (netlock.c), and
 * netlink sockets (fd-netlink.c).
 *
 * Dump works on a copy of the target's fd (pidfd_getfd: the same socket)
 * while the tree is frozen; restore creates the socket in lazarus, in the
 * network namespace the tree is restored into, before the tree is cloned.
 *
 * Functions return 0 or -errno; -EOPNOTSUPP is a refusal, with the reason
 * in WHY (one line without pid and fd, which the caller adds).
 */
#ifndef LZ_SK_NET_H
#define LZ_SK_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "sk-inet.pb-c.h"

struct netlock;

/* What dump was asked to do with network sockets. */
struct sk_dump_opts {
	bool tcp_established; /* --tcp-established: repair established TCP connections */
	struct netlock *lock; /* where their packets are dropped; NULL without the flag */
};

/* fd-inet.c */
int sk_family(int sk); /* SO_DOMAIN, or -errno */
int inet_sk_dump(int sk, const struct sk_dump_opts *o, InetSkEntry **out, char *why, size_t len);
int inet_sk_verify(const InetSkEntry *e, char *why, size_t len);
/*
 * A new socket (O_CLOEXEC) as E described, with FLAGS' O_NONBLOCK; or
 * -errno. socket() is made as OWNER (as-owner.h; NULL: lazarus), so that
 * its inode and sk_uid are OWNER's; bind, listen, connect and TCP repair
 * as lazarus (they need CAP_NET_ADMIN, or a port the owner bound as root
 * before it dropped privileges: it had that address).
 */
struct rst_task;
int inet_sk_open(const InetSkEntry *e, uint32_t flags, const struct rst_task *owner, char *why,
		 size_t len);
/*
 * tcp-inject.c: the Internet checksum (RFC 1071) of raw segments this file
 * and tcp-inject.c write: add DATA (big-endian 16-bit words) to SUM, then
 * fold it to the checksum in host order.
 */
uint32_t inet_csum_add(uint32_t sum, const void *data, size_t len);
uint16_t inet_csum_fold(uint32_t sum);
/* "127.0.0.1:80", "[::1]:80", "[fe80::1%2]:80" */
void inet_addr_fmt(const InetAddr *a, char *buf, size_t len);
/* A's scope id names, in SK's network namespace, the interface it named at dump. */
int inet_addr_scope_check(int sk, const InetAddr *a, char *why, size_t len);
#define INET_ADDR_STRLEN 56

/* tcp-repair.c: an established connection, both ways. */
int tcp_repair_dump(int sk, TcpRepairEntry **out, char *why, size_t len);
/* SK: created, not bound; binds and connects it in repair mode, fills the queues. */
int tcp_repair_restore(int sk, const InetSkEntry *e, char *why, size_t len);
/* Then, once its options are set: the data that was never sent. */
int tcp_repair_send_unsent(int sk, const InetSkEntry *e, char *why, size_t len);
/* Leave repair mode on a dumped socket (dump failed, or -R). */
void tcp_repair_leave(int sk);
/* The TCP states tcp_repair_dump takes: established, half-closed, closing. */
bool tcp_repair_state_ok(unsigned state);
/* What restore checks of an image's entry: a state it rebuilds, consistent queues. */
bool tcp_repair_entry_ok(const TcpRepairEntry *t);

/* tcp-inject.c: one segment from FROM to the local socket TO (an ACK, maybe a FIN). */
#define NETLOCK_MARK 0x4c5a0001 /* SO_MARK of the packets the network lock lets through */
struct tcp_seg {
	uint32_t seq, ack;
	uint16_t window; /* as on the wire: scaled down */
	bool fin;
};
int tcp_inject(const InetAddr *from, const InetAddr *to, const struct tcp_seg *s);

/*
 * netlock.c: nftables rules dropping the packets of dumped connections, in
 * a table of their own (inet lazarus_<tag>) that restore deletes.
 */
int netlock_open(struct netlock **out, const char *tag);
const char *netlock_table(const struct netlock *l);
/* Drop E's packets from now on; SK (kept, dup'ed) is left in repair mode. */
int netlock_add(struct netlock *l, const InetSkEntry *e, int sk, char *why, size_t len);
/*
 * The end of the dump. KEEP (the tree was killed): the rules stay for
 * restore. Otherwise (a failed dump, -R): the sockets leave repair mode
 * and the table goes. Frees L.
 */
void netlock_finish(struct netlock *l, bool keep);
/* A table name restore may delete: lazarus_ and [0-9a-z_]. */
bool netlock_table_valid(const char *table);
int netlock_release_table(const char *table, char *why, size_t len);

/* fd-netlink.c */
int netlink_sk_dump(int sk, pid_t pid, NetlinkSkEntry **out, char *why, size_t len);
int netlink_sk_verify(const NetlinkSkEntry *e, char *why, size_t len);
/* socket() as OWNER (as inet_sk_open), the rest (port id, groups) as lazarus: it had them. */
int netlink_sk_open(const NetlinkSkEntry *e, uint32_t flags, const struct rst_task *owner,
		    char *why, size_t len);

/* Any other socket, in words: "packet socket (SOCK_RAW)". */
void sk_describe(int sk, char *buf, size_t len);

#endif
