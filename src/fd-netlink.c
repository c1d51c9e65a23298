/*
 * fd-netlink.c - netlink sockets (route, generic, any protocol the kernel
 * offers): recreated with the same protocol, bound to the same port id,
 * subscribed to the same multicast groups, connected where they were.
 *
 * A netlink socket's state lives in the kernel (a dump in progress, the
 * families a generic netlink user resolved are only ids it keeps); what is
 * queued for the program is read from /proc/PID/net/netlink and must be
 * nothing: those messages (answers, notifications) cannot be put back.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "as-owner.h"
#include "fd-kind.h"
#include "proc.h"
#include "sk-net.h"

#define NL_MAX_GROUP_WORDS 64 /* 2048 groups: more than any family has */

/* Rmem and Dump of the socket with inode INO in /proc/PID/net/netlink. */
static int nl_proc_state(pid_t pid, unsigned long ino, unsigned long *rmem, int *dumping)
{
	char *text, *line, *save = NULL;
	int ret = proc_read(pid, "net/netlink", &text, NULL);

	if (ret)
		return ret;
	ret = -ENOENT;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned long sk, r, w, dump, locks, drops, i;
		unsigned proto, port, groups;

		/* sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode */
		if (sscanf(line, "%lx %u %u %x %lu %lu %lu %lu %lu %lu", &sk, &proto, &port, &groups,
			   &r, &w, &dump, &locks, &drops, &i) != 10 || i != ino)
			continue;
		*rmem = r;
		*dumping = dump != 0;
		ret = 0;
		break;
	}
	free(text);
	return ret;
}

static int nl_groups(int sk, NetlinkSkEntry *e)
{
	uint32_t words[NL_MAX_GROUP_WORDS];
	socklen_t l = sizeof(words);
	size_t n;

	if (getsockopt(sk, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, words, &l))
		return -errno;
	n = l / sizeof(uint32_t);
	if (n > NL_MAX_GROUP_WORDS)
		return -E2BIG;
	while (n && !words[n - 1])
		n--;
	if (!n)
		return 0;
	e->groups = malloc(n * sizeof(uint32_t));
	if (!e->groups)
		return -ENOMEM;
	memcpy(e->groups, words, n * sizeof(uint32_t));
	e->n_groups = n;
	return 0;
}

static int nl_dump_fields(int sk, pid_t pid, NetlinkSkEntry *e, char *why, size_t len)
{
	struct sockaddr_nl sa;
	socklen_t l = sizeof(sa);
	unsigned long rmem = 0;
	struct stat st;
	int v, dumping = 0, ret;

	l = sizeof(v);
	if (getsockopt(sk, SOL_SOCKET, SO_PROTOCOL, &v, &l))
		goto out_errno;
	e->protocol = (uint32_t)v;
	l = sizeof(v);
	if (getsockopt(sk, SOL_SOCKET, SO_TYPE, &v, &l))
		goto out_errno;
	e->type = (uint32_t)v;
	l = sizeof(sa);
	if (getsockname(sk, (struct sockaddr *)&sa, &l))
		goto out_errno;
	e->portid = sa.nl_pid;
	l = sizeof(sa);
	if (getpeername(sk, (struct sockaddr *)&sa, &l))
		goto out_errno;
	e->dst_portid = sa.nl_pid;
	e->dst_group = sa.nl_groups;
	ret = nl_groups(sk, e);
	if (ret) {
		snprintf(why, len, "NETLINK_LIST_MEMBERSHIPS: %s", strerror(-ret));
		return ret;
	}
	if (fstat(sk, &st))
		goto out_errno;
	ret = nl_proc_state(pid, st.st_ino, &rmem, &dumping);
	if (ret == -ENOENT && !e->portid)
		ret = 0; /* never bound: not in the table, and nothing can reach it */
	if (ret) {
		snprintf(why, len, "socket inode %lu not found in /proc/%d/net/netlink: %s",
			 (unsigned long)st.st_ino, pid, strerror(-ret));
		return ret;
	}
	if (rmem || dumping) {
		snprintf(why, len, "netlink socket (protocol %u, port id %u) %s: not supported",
			 e->protocol, e->portid,
			 dumping ? "is in the middle of a netlink dump" : "has messages queued");
		return -EOPNOTSUPP;
	}
	return 0;
out_errno:
	snprintf(why, len, "reading the netlink socket: %s", strerror(errno));
	return -errno;
}

int netlink_sk_dump(int sk, pid_t pid, NetlinkSkEntry **out, char *why, size_t len)
{
	NetlinkSkEntry *e = malloc(sizeof(*e));
	int v, ret, fresh;
	socklen_t l = sizeof(v);

	*out = NULL;
	if (!e)
		return -ENOMEM;
	netlink_sk_entry__init(e);
	ret = nl_dump_fields(sk, pid, e, why, len);
	/* Buffer sizes only when set: a fresh socket's are the sysctls' defaults. */
	fresh = ret ? -1 : socket(AF_NETLINK, (int)e->type | SOCK_CLOEXEC, (int)e->protocol);
	if (fresh >= 0) {
		int d;

		if (!getsockopt(sk, SOL_SOCKET, SO_SNDBUF, &v, &l) &&
		    !getsockopt(fresh, SOL_SOCKET, SO_SNDBUF, &d, &(socklen_t){ sizeof(d) }) && v != d) {
			e->has_sndbuf = true;
			e->sndbuf = (uint32_t)v;
		}
		l = sizeof(v);
		if (!getsockopt(sk, SOL_SOCKET, SO_RCVBUF, &v, &l) &&
		    !getsockopt(fresh, SOL_SOCKET, SO_RCVBUF, &d, &(socklen_t){ sizeof(d) }) && v != d) {
			e->has_rcvbuf = true;
			e->rcvbuf = (uint32_t)v;
		}
		close(fresh);
	}
	if (ret) {
		protobuf_c_message_free_unpacked(&e->base, NULL);
		return ret;
	}
	*out = e;
	return 0;
}

int netlink_sk_verify(const NetlinkSkEntry *e, char *why, size_t len)
{
	if ((e->type != SOCK_RAW && e->type != SOCK_DGRAM) || e->protocol >= MAX_LINKS ||
	    e->n_groups > NL_MAX_GROUP_WORDS) {
		snprintf(why, len, "netlink socket of type %u, protocol %u, %zu group words",
			 e->type, e->protocol, e->n_groups);
		return -EBADMSG;
	}
	return 0;
}

static int nl_subscribe(int sk, const NetlinkSkEntry *e)
{
	for (size_t w = 0; w < e->n_groups; w++)
		for (unsigned b = 0; b < 32; b++) {
			int g = (int)(w * 32 + b + 1);

			if (!(e->groups[w] & (1u << b)))
				continue;
			if (setsockopt(sk, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)))
				return -errno;
		}
	return 0;
}

int netlink_sk_open(const NetlinkSkEntry *e, uint32_t flags, const struct rst_task *owner,
		    char *why, size_t len)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	char what[160];
	int sk, ret = 0;

	sk = as_owner_socket(owner, AF_NETLINK, (int)e->type | SOCK_CLOEXEC, (int)e->protocol,
			     what, sizeof(what));
	if (sk < 0) {
		snprintf(why, len, "netlink socket protocol %u: %s", e->protocol, what);
		return sk;
	}
	if (e->has_sndbuf && setsockopt(sk, SOL_SOCKET, SO_SNDBUF, &(int){ (int)e->sndbuf / 2 }, sizeof(int)))
		ret = -errno;
	if (!ret && e->has_rcvbuf &&
	    setsockopt(sk, SOL_SOCKET, SO_RCVBUF, &(int){ (int)e->rcvbuf / 2 }, sizeof(int)))
		ret = -errno;
	if (ret) {
		snprintf(why, len, "netlink socket buffers: %s", strerror(-ret));
		goto out_close;
	}
	/* A port id of 0: never bound; the kernel picks one at the first send. */
	sa.nl_pid = e->portid;
	if (e->portid && bind(sk, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		snprintf(why, len, "netlink socket protocol %u: bind to port id %u: %s", e->protocol,
			 e->portid, strerror(errno));
		goto out_close;
	}
	ret = nl_subscribe(sk, e);
	if (ret) {
		snprintf(why, len, "netlink socket protocol %u: joining its groups: %s", e->protocol,
			 strerror(-ret));
		goto out_close;
	}
	sa.nl_pid = e->dst_portid;
	sa.nl_groups = e->dst_group;
	if ((e->dst_portid || e->dst_group) && connect(sk, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		snprintf(why, len, "netlink socket protocol %u: connect: %s", e->protocol,
			 strerror(errno));
		goto out_close;
	}
	if ((flags & O_NONBLOCK) && fcntl(sk, F_SETFL, O_NONBLOCK)) {
		ret = -errno;
		snprintf(why, len, "O_NONBLOCK: %s", strerror(errno));
		goto out_close;
	}
	return sk;
out_close:
	close(sk);
	return ret;
}

/* --- the fd kind (fd-kind.h) --- */

static bool nl_match(const struct fd_probe *p)
{
	char path[64], proto[32];
	ssize_t n;

	if (!S_ISSOCK(p->st.st_mode))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", p->pid, p->fd);
	n = getxattr(path, "system.sockprotoname", proto, sizeof(proto) - 1);
	if (n <= 0)
		return false;
	proto[n] = 0;
	return !strcmp(proto, "NETLINK");
}

static int nl_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	char why[256] = "";
	int sk = fd_probe_getfd(p), ret;

	(void)imgs;
	if (sk < 0)
		return sk;
	ret = netlink_sk_dump(sk, p->pid, &e->netlink_sk, why, sizeof(why));
	if (ret == -ENOMEM)
		pr_err("process %d fd %d: out of memory", p->pid, p->fd);
	else if (ret)
		pr_err("process %d fd %d: %s", p->pid, p->fd, why);
	return ret;
}

static int nl_verify(const FileEntry *e, char *why, size_t len)
{
	if (!e->netlink_sk) {
		snprintf(why, len, "socket without its netlink_sk entry");
		return -EBADMSG;
	}
	return netlink_sk_verify(e->netlink_sk, why, len);
}

static int nl_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		   char *why, size_t len)
{
	int sk = netlink_sk_open(e->netlink_sk, e->flags, as_owner_of_file(im, e->id), why, len);

	if (sk < 0)
		return sk;
	return rst_fstore_put(st, e->id, sk, why, len);
}

const struct fd_kind fd_kind_netlink = {
	.kind = FILE_KIND__FD_NETLINK_SK,
	.name = "netlink socket",
	.match = nl_match,
	.dump = nl_dump,
	.verify = nl_verify,
	.open = nl_open,
};
