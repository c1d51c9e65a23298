/*
 * uapi/linux/userfaultfd.h - the userfaultfd ABI that the 6.1 system headers
 * lack. Include this instead of <linux/userfaultfd.h>.
 *
 * Origin: the Linux kernel's userspace ABI for userfaultfd
 * (include/uapi/linux/userfaultfd.h, GPL-2.0 WITH Linux-syscall-note),
 * additions of Linux 6.3 (UFFDIO_CONTINUE_MODE_WP), 6.4 (WP_UNPOPULATED),
 * 6.6 (POISON), 6.7 (WP_ASYNC) and 6.8 (MOVE). The values were typed from the
 * documented ABI, not copied, and checked on the 6.18 kernel of these
 * machines: UFFDIO_API reports features 0x1ffff, UFFDIO_REGISTER on private
 * anonymous memory returns ioctls 0x13c (WAKE, COPY, ZEROPAGE, MOVE, POISON),
 * and UFFDIO_POISON works with the number below. Everything the system header
 * has is taken from it; each addition is guarded so a newer header wins.
 */
#ifndef LZ_UAPI_LINUX_USERFAULTFD_H
#define LZ_UAPI_LINUX_USERFAULTFD_H

#include <linux/ioctl.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>

#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13) /* 6.4: WP marks unpopulated ptes too */
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)	/* 6.6: UFFDIO_POISON */
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15) /* 6.7: WP faults resolved by the kernel */
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)	/* 6.8: UFFDIO_MOVE */
#endif

#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
#endif
#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
#endif

#ifndef UFFDIO_CONTINUE_MODE_WP
#define UFFDIO_CONTINUE_MODE_WP ((__u64)1 << 1) /* 6.3 */
#endif

#ifndef UFFDIO_MOVE
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode; /* UFFDIO_MOVE_MODE_* */
	__s64 move; /* out: bytes moved, or -errno */
};
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;	/* UFFDIO_POISON_MODE_* */
	__s64 updated;	/* out: bytes poisoned, or -errno */
};
#define UFFDIO_POISON_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_POISON _IOWR(UFFDIO, _UFFDIO_POISON, struct uffdio_poison)
#endif

_Static_assert(sizeof(struct uffd_msg) == 32, "uffd_msg is 32 bytes");
_Static_assert(sizeof(struct uffdio_move) == 40, "uffdio_move is 40 bytes");
_Static_assert(sizeof(struct uffdio_poison) == 32, "uffdio_poison is 32 bytes");

#endif
