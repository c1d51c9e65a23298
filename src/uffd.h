/*
 * uffd.h - userfaultfd by the book: probe the kernel's features once, open
 * a uffd asking only for what is offered, register ranges and check what
 * the kernel says it can do on them, and thin wrappers over the range
 * ioctls with one error convention.
 *
 * Every function returns 0 (or an fd) on success and -errno on failure; the
 * caller logs. The resolving calls (copy, zero, poison) also report in *done
 * how many bytes were placed before the error, since the kernel may place
 * part of a range and then stop (it then fails with EAGAIN).
 */
#ifndef LZ_UFFD_H
#define LZ_UFFD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "uapi/linux/userfaultfd.h"

/* What this kernel's userfaultfd offers, probed once with a throwaway fd. */
struct uffd_kinfo {
	bool usable;	   /* a uffd could be opened and UFFDIO_API answered */
	bool via_dev;	   /* userfaultfd(2) said EPERM, /dev/userfaultfd worked */
	int err;	   /* -errno of the failed open/API when !usable */
	uint64_t features; /* every feature bit UFFDIO_API reported */
	uint64_t ioctls;   /* API-level ioctls it reported */
};

/*
 * Events lazy restore cannot work without: without EVENT_FORK a child loses
 * the registration (its missing pages read as zeros), without EVENT_REMAP a
 * moved region does, and without REMOVE/UNMAP the daemon would copy old
 * data over memory the process has since dropped.
 */
#define UFFD_LAZY_REQUIRED                                                         \
	((uint64_t)(UFFD_FEATURE_EVENT_FORK | UFFD_FEATURE_EVENT_REMAP |           \
		    UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_UNMAP))
/* Asked for when offered: per-thread fault counts, and UFFDIO_POISON. */
#define UFFD_LAZY_WANTED \
	(UFFD_LAZY_REQUIRED | UFFD_FEATURE_THREAD_ID | UFFD_FEATURE_POISON)

/* Range ioctls the lazy-pages daemon relies on. */
#define UFFD_LAZY_RANGE_IOCTLS                                                      \
	(((uint64_t)1 << _UFFDIO_COPY) | ((uint64_t)1 << _UFFDIO_ZEROPAGE) |       \
	 ((uint64_t)1 << _UFFDIO_WAKE))

/*
 * Probe: open a uffd, UFFDIO_API with features 0, keep the answer, close.
 * UFFDIO_API works once per fd, so the fd that enables features must be a
 * new one (ioctl_userfaultfd(2), BUGS). Never fails: ki->usable says.
 */
void uffd_probe(struct uffd_kinfo *ki);

/*
 * Open a uffd bound to the calling process's mm, O_CLOEXEC|O_NONBLOCK,
 * never UFFD_USER_MODE_ONLY (the daemon must serve faults that syscalls
 * take on lazy memory). Asks for wanted & ki->features; -EOPNOTSUPP when a
 * bit of `required` is not offered. *enabled gets the features asked for.
 */
int uffd_open(const struct uffd_kinfo *ki, uint64_t wanted, uint64_t required,
	      uint64_t *enabled);

/*
 * Register [start, start+len) in MISSING mode. When the ioctls the kernel
 * returns lack a bit of `need`, the range is unregistered again and the call
 * fails with -EOPNOTSUPP. *ioctls (may be NULL) gets what was returned.
 */
int uffd_register_missing(int fd, uint64_t start, uint64_t len, uint64_t need,
			  uint64_t *ioctls);
int uffd_unregister(int fd, uint64_t start, uint64_t len);

/*
 * Resolve [dst, dst+len). 0 when all of it was placed (and waiters woken).
 * Otherwise -errno: -EEXIST (a page at dst + *done is already there),
 * -EAGAIN (the layout is changing: read events, then retry from dst + *done),
 * -ENOENT (no registered VMA covers the rest), -ESRCH (the process is gone).
 */
int uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len, uint64_t *done);
int uffd_zero(int fd, uint64_t dst, uint64_t len, uint64_t *done);
int uffd_poison(int fd, uint64_t dst, uint64_t len, uint64_t *done);
int uffd_wake(int fd, uint64_t start, uint64_t len);
/* Wake every thread waiting on this uffd, whatever address it waits on. */
int uffd_wake_all(int fd);

/*
 * Check that fd is a userfaultfd (with the API done) and read the features
 * it was enabled with from /proc/self/fdinfo. -EBADF/-EINVAL otherwise.
 */
int uffd_fdinfo(int fd, uint64_t *features);

/* "EVENT_FORK|EVENT_REMAP|..." for logs and `lazarus check`. */
void uffd_features_str(uint64_t features, char *buf, size_t len);

#endif
