/*
 * sk-diag.c - sock_diag dump requests through libnl.
 *
 * libnl does the netlink bookkeeping: sequence numbers, multipart answers,
 * NLMSG_DONE and NLMSG_ERROR. One netlink socket per request: dumps are
 * rare (once per dump of a tree and family) and a socket of our own keeps
 * this free of state between calls.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <linux/sock_diag.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "sk-diag.h"

struct sk_diag_call {
	sk_diag_cb cb;
	void *arg;
	int ret; /* the callback's error, if it stopped the dump */
};

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct sk_diag_call *c = arg;

	c->ret = c->cb(nlmsg_hdr(msg), c->arg);
	return c->ret ? NL_STOP : NL_OK;
}

/* libnl's NLE_* codes, as errno; its text goes to WHY. */
static int nl_errno(int nle)
{
	switch (-nle) {
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_PERM:
		return -EPERM;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_OPNOTSUPP:
	case NLE_PROTO_MISMATCH:
		return -EOPNOTSUPP;
	case NLE_INVAL:
		return -EINVAL;
	default:
		return -EIO;
	}
}

int sk_diag_dump(const void *req, size_t len, sk_diag_cb cb, void *arg, char *why,
		 size_t whylen)
{
	struct sk_diag_call c = { .cb = cb, .arg = arg };
	struct nl_sock *sk = nl_socket_alloc();
	int err;

	if (!sk) {
		if (why)
			snprintf(why, whylen, "allocating a netlink socket: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	err = nl_connect(sk, NETLINK_SOCK_DIAG);
	if (!err)
		err = nl_socket_modify_cb(sk, NL_CB_VALID, NL_CB_CUSTOM, on_valid, &c);
	if (!err) {
		err = nl_send_simple(sk, SOCK_DIAG_BY_FAMILY, NLM_F_DUMP, (void *)req, len);
		err = err < 0 ? err : 0;
	}
	if (!err)
		err = nl_recvmsgs_default(sk);
	nl_socket_free(sk);
	if (c.ret)
		return c.ret;
	if (err < 0) {
		if (why)
			snprintf(why, whylen, "sock_diag: %s", nl_geterror(err));
		return nl_errno(err);
	}
	return 0;
}

int sk_diag_attrs(const struct nlmsghdr *h, size_t hdrlen, struct nlattr **tb, int maxtype)
{
	if (nlmsg_parse((struct nlmsghdr *)h, (int)hdrlen, tb, maxtype, NULL) < 0)
		return -EINVAL;
	return 0;
}
