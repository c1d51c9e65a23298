/*
 * netlock.c - the network lock of --tcp-established: between dump and
 * restore, no packet of a dumped connection reaches a socket, so its peer
 * never meets a RST.
 *
 * Why nftables: the lock must hold for connections whose peer is outside
 * the tree on the same host (a network namespace around the tree alone
 * would not cover the peer's side of loopback), must be per connection
 * (the rest of the host's traffic goes on), and must outlive lazarus (dump
 * exits; restore may come minutes later). A table of our own, inet
 * lazarus_<tag>, with input and output chains at raw priority, holds one
 * drop rule per direction and connection; the peer's kernel retransmits
 * into it and resumes once restore deletes the table. Packets marked
 * NETLOCK_MARK pass: the segments restore itself sends a socket it rebuilds
 * (tcp-inject.c: the FIN of a half-closed connection). nft(8) is run as a
 * program (the Debian package nftables), given the rules on its stdin.
 *
 * Sockets stay in repair mode while the lock holds (tcp-repair.c); the
 * lock keeps a dup of each, to take them out again if the dump fails or the
 * tree is left running.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <arpa/inet.h>

#define LOG_PREFIX "netlock: "
#include "log.h"
#include "sk-net.h"

#define NETLOCK_TABLE_MAX 48

struct netlock {
	char table[NETLOCK_TABLE_MAX];
	bool created; /* the table exists */
	int *fds;     /* dups of the sockets in repair mode */
	size_t nr_fds;
};

extern char **environ;

bool netlock_table_valid(const char *table)
{
	size_t n = strlen(table);

	if (n <= strlen("lazarus_") || n >= NETLOCK_TABLE_MAX || strncmp(table, "lazarus_", 8))
		return false;
	return strspn(table, "abcdefghijklmnopqrstuvwxyz0123456789_") == n;
}

/* Run nft -f - with SCRIPT on its stdin; 0 or -EIO (its stderr says why). */
static int nft_run(const char *script, char *why, size_t len)
{
	char *argv[] = { "nft", "-f", "-", NULL };
	posix_spawn_file_actions_t fa;
	int mfd, status, ret;
	pid_t pid;

	mfd = memfd_create("lazarus-nft", MFD_CLOEXEC);
	if (mfd < 0 || write(mfd, script, strlen(script)) != (ssize_t)strlen(script) ||
	    lseek(mfd, 0, SEEK_SET)) {
		ret = -errno;
		snprintf(why, len, "nft script: %s", strerror(errno));
		goto out_close;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, mfd, 0);
	ret = -posix_spawnp(&pid, "nft", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret) {
		snprintf(why, len, "running nft (package nftables): %s", strerror(-ret));
		goto out_close;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		snprintf(why, len, "nft failed (exit status %d)",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		ret = -EIO;
	}
out_close:
	if (mfd >= 0)
		close(mfd);
	return ret;
}

int netlock_open(struct netlock **out, const char *tag)
{
	struct netlock *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	snprintf(l->table, sizeof(l->table), "lazarus_%s", tag);
	if (!netlock_table_valid(l->table)) {
		free(l);
		return -EINVAL;
	}
	*out = l;
	return 0;
}

const char *netlock_table(const struct netlock *l)
{
	return l->table;
}

/* "ip saddr 1.2.3.4 tcp sport 80", IPv4-mapped IPv6 addresses as IPv4 ones. */
static void match_fmt(const InetAddr *a, const char *dir, char *buf, size_t len)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
	char ip[INET6_ADDRSTRLEN] = "";
	bool v4 = a->addr.len == 4 || !memcmp(a->addr.data, mapped, 12);

	inet_ntop(v4 ? AF_INET : AF_INET6, a->addr.data + (a->addr.len == 16 && v4 ? 12 : 0), ip,
		  sizeof(ip));
	snprintf(buf, len, "%s %saddr %s tcp %sport %u", v4 ? "ip" : "ip6", dir, ip, dir, a->port);
}

int netlock_add(struct netlock *l, const InetSkEntry *e, int sk, char *why, size_t len)
{
	char ls[96], ld[96], ps[96], pd[96], script[2048];
	int *fds, n = 0, ret;

	fds = realloc(l->fds, (l->nr_fds + 1) * sizeof(int));
	if (!fds)
		return -ENOMEM;
	l->fds = fds;
	match_fmt(e->local, "s", ls, sizeof(ls));
	match_fmt(e->local, "d", ld, sizeof(ld));
	match_fmt(e->peer, "s", ps, sizeof(ps));
	match_fmt(e->peer, "d", pd, sizeof(pd));
	if (!l->created)
		n = snprintf(script, sizeof(script),
			     "add table inet %s\n"
			     "add chain inet %s in { type filter hook input priority -300; }\n"
			     "add chain inet %s out { type filter hook output priority -300; }\n"
			     "add rule inet %s in meta mark %#x accept\n"
			     "add rule inet %s out meta mark %#x accept\n",
			     l->table, l->table, l->table, l->table, NETLOCK_MARK, l->table,
			     NETLOCK_MARK);
	for (int c = 0; c < 2; c++)
		n += snprintf(script + n, sizeof(script) - (size_t)n,
			      "add rule inet %s %s %s %s drop\nadd rule inet %s %s %s %s drop\n",
			      l->table, c ? "out" : "in", ls, pd, l->table, c ? "out" : "in", ps, ld);
	ret = nft_run(script, why, len);
	if (ret)
		return ret;
	l->created = true;
	l->fds[l->nr_fds] = fcntl(sk, F_DUPFD_CLOEXEC, 0);
	if (l->fds[l->nr_fds] < 0) {
		snprintf(why, len, "dup: %s", strerror(errno));
		return -errno;
	}
	l->nr_fds++;
	pr_debug("connection %s -> %s locked in table %s", ls, pd, l->table);
	return 0;
}

int netlock_release_table(const char *table, char *why, size_t len)
{
	char script[128];

	if (!netlock_table_valid(table)) {
		snprintf(why, len, "not a network lock table: %s", table);
		return -EINVAL;
	}
	snprintf(script, sizeof(script), "delete table inet %s\n", table);
	return nft_run(script, why, len);
}

void netlock_finish(struct netlock *l, bool keep)
{
	char why[256];

	if (!l)
		return;
	for (size_t i = 0; i < l->nr_fds; i++) {
		if (!keep)
			tcp_repair_leave(l->fds[i]);
		close(l->fds[i]);
	}
	if (!keep && l->created && netlock_release_table(l->table, why, sizeof(why)))
		pr_warn("releasing the network lock (nft table inet %s): %s", l->table, why);
	free(l->fds);
	free(l);
}
