/*
 * sk-diag.h - one sock_diag dump request, through libnl (NETLINK_SOCK_DIAG).
 *
 * Generic over the family: the caller builds the request (struct
 * unix_diag_req, struct inet_diag_req_v2, ...), and gets every answer
 * message, in the order the kernel sends them, through a callback. The
 * kernel answers for the network namespace of the caller only.
 */
#ifndef LZ_SK_DIAG_H
#define LZ_SK_DIAG_H

#include <stddef.h>
#include <linux/netlink.h>

struct nlattr;

/* Called for each answer; a non-zero return (-errno) stops the dump with it. */
typedef int (*sk_diag_cb)(const struct nlmsghdr *h, void *arg);

/*
 * Send REQ (LEN bytes, starting with the family byte of struct
 * sock_diag_req) as SOCK_DIAG_BY_FAMILY with NLM_F_DUMP and hand each
 * answer to CB. Returns 0, CB's error, or -errno of the netlink exchange
 * (the text of it in WHY, which may be NULL).
 */
int sk_diag_dump(const void *req, size_t len, sk_diag_cb cb, void *arg, char *why,
		 size_t whylen);

/*
 * The attributes after the family header (HDRLEN bytes) of answer H, into
 * TB[0..MAXTYPE]: TB[t] NULL when attribute t is absent. 0 or -EINVAL.
 */
int sk_diag_attrs(const struct nlmsghdr *h, size_t hdrlen, struct nlattr **tb, int maxtype);

#endif
