/*
 * uffd.c - userfaultfd creation, feature negotiation and range ioctls.
 * See uffd.h for the contract; man 2 userfaultfd and ioctl_userfaultfd for
 * the kernel side.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compiler.h"
#include "uffd.h"

#define UFFD_DEV "/dev/userfaultfd"

/*
 * userfaultfd(2) needs CAP_SYS_PTRACE (or vm.unprivileged_userfaultfd=1)
 * for a uffd that also handles kernel-mode faults. /dev/userfaultfd (6.1+)
 * hands out the same object to whoever may open the node, so try it when
 * the syscall says EPERM. Flags are the same for both.
 */
static int uffd_new(bool via_dev)
{
	const int flags = O_CLOEXEC | O_NONBLOCK;
	int dev, fd;

	if (!via_dev) {
		fd = (int)syscall(SYS_userfaultfd, flags);
		return fd < 0 ? -errno : fd;
	}
	dev = open(UFFD_DEV, O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -errno;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, flags);
	if (fd < 0)
		fd = -errno;
	close(dev);
	return fd;
}

static int uffd_api(int fd, uint64_t features, struct uffdio_api *api)
{
	memset(api, 0, sizeof(*api));
	api->api = UFFD_API;
	api->features = features;
	return ioctl(fd, UFFDIO_API, api) ? -errno : 0;
}

void uffd_probe(struct uffd_kinfo *ki)
{
	struct uffdio_api api;
	int fd;

	memset(ki, 0, sizeof(*ki));
	fd = uffd_new(false);
	if (fd == -EPERM) {
		fd = uffd_new(true);
		ki->via_dev = fd >= 0;
	}
	if (fd < 0) {
		ki->err = fd;
		return;
	}
	ki->err = uffd_api(fd, 0, &api);
	close(fd);
	if (ki->err)
		return;
	ki->usable = true;
	ki->features = api.features;
	ki->ioctls = api.ioctls;
}

int uffd_open(const struct uffd_kinfo *ki, uint64_t wanted, uint64_t required,
	      uint64_t *enabled)
{
	uint64_t ask = wanted & ki->features;
	struct uffdio_api api;
	int fd, ret;

	if (!ki->usable)
		return ki->err ? ki->err : -ENOSYS;
	if ((required & ki->features) != required)
		return -EOPNOTSUPP;
	fd = uffd_new(ki->via_dev);
	if (fd < 0)
		return fd;
	ret = uffd_api(fd, ask | required, &api);
	if (ret) {
		close(fd);
		return ret;
	}
	if (enabled)
		*enabled = ask | required;
	return fd;
}

int uffd_register_missing(int fd, uint64_t start, uint64_t len, uint64_t need,
			  uint64_t *ioctls)
{
	struct uffdio_register reg = {
		.range = { .start = start, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &reg))
		return -errno;
	if (ioctls)
		*ioctls = reg.ioctls;
	if ((reg.ioctls & need) != need) {
		uffd_unregister(fd, start, len);
		return -EOPNOTSUPP;
	}
	return 0;
}

int uffd_unregister(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(fd, UFFDIO_UNREGISTER, &r) ? -errno : 0;
}

/*
 * The resolving ioctls report progress in an output field: the bytes placed,
 * or a negated errno when nothing was placed. A partial success fails the
 * ioctl with EAGAIN; the field then holds the positive count. The field is
 * preset to 0 because some early failures (EINVAL, EFAULT) never write it.
 */
static int resolve_result(int rc, int64_t field, uint64_t *done)
{
	*done = 0;
	if (rc == 0)
		return 0;
	if (field > 0) {
		*done = (uint64_t)field;
		return -EAGAIN;
	}
	if (field < 0)
		return (int)field;
	return -errno;
}

int uffd_copy(int fd, uint64_t dst, const void *src, uint64_t len, uint64_t *done)
{
	struct uffdio_copy c = {
		.dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len, .copy = 0,
	};
	int rc = ioctl(fd, UFFDIO_COPY, &c);

	return resolve_result(rc, c.copy, done);
}

int uffd_zero(int fd, uint64_t dst, uint64_t len, uint64_t *done)
{
	struct uffdio_zeropage z = { .range = { .start = dst, .len = len }, .zeropage = 0 };
	int rc = ioctl(fd, UFFDIO_ZEROPAGE, &z);

	return resolve_result(rc, z.zeropage, done);
}

int uffd_poison(int fd, uint64_t dst, uint64_t len, uint64_t *done)
{
	struct uffdio_poison p = { .range = { .start = dst, .len = len }, .updated = 0 };
	int rc = ioctl(fd, UFFDIO_POISON, &p);

	return resolve_result(rc, p.updated, done);
}

int uffd_wake(int fd, uint64_t start, uint64_t len)
{
	struct uffdio_range r = { .start = start, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r) ? -errno : 0;
}

/*
 * UFFDIO_WAKE only checks that the range is page aligned and inside the
 * user address space; it then wakes every waiter whose address falls in it.
 * The lowest address a process can map is vm.mmap_min_addr (64 KiB here,
 * never more than that by default), the top is the 47-bit user limit.
 */
int uffd_wake_all(int fd)
{
	const uint64_t lo = 0x10000, hi = 0x7ffffffff000ULL;

	return uffd_wake(fd, lo, hi - lo);
}

int uffd_fdinfo(int fd, uint64_t *features)
{
	char path[64], buf[1024];
	uint64_t api, feat;
	ssize_t n;
	char *p;
	int f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return -errno;
	n = read(f, buf, sizeof(buf) - 1);
	close(f);
	if (n < 0)
		return -EIO;
	buf[n] = '\0';
	/* A userfaultfd shows "API:\t<api>:<features>:<ioctls>" (hex). */
	p = strstr(buf, "\nAPI:\t");
	if (!p || sscanf(p + 6, "%" SCNx64 ":%" SCNx64, &api, &feat) != 2)
		return -EINVAL;
	if (api != UFFD_API)
		return -EINVAL;
	/* Bit 31 is the kernel's internal "API done" flag, not a feature. */
	*features = feat & ~((uint64_t)1 << 31);
	return 0;
}

static const char *const feature_names[] = {
	"PAGEFAULT_FLAG_WP", "EVENT_FORK",	"EVENT_REMAP",	   "EVENT_REMOVE",
	"MISSING_HUGETLBFS", "MISSING_SHMEM",	"EVENT_UNMAP",	   "SIGBUS",
	"THREAD_ID",	     "MINOR_HUGETLBFS", "MINOR_SHMEM",	   "EXACT_ADDRESS",
	"WP_HUGETLBFS_SHMEM", "WP_UNPOPULATED", "POISON",	   "WP_ASYNC",
	"MOVE",
};

void uffd_features_str(uint64_t features, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned bit = 0; bit < 64 && off < len; bit++) {
		if (!(features & ((uint64_t)1 << bit)))
			continue;
		if (bit < ARRAY_SIZE(feature_names))
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "|" : "",
						feature_names[bit]);
		else
			off += (size_t)snprintf(buf + off, len - off, "%sbit%u", off ? "|" : "",
						bit);
	}
	if (!off)
		snprintf(buf, len, "none");
}
