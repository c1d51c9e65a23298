/*
 * bench_uffd.h - the userfaultfd opener the `make bench` microbenchmarks
 * share (uffdbench.c, shmbench.c). Include after bench.h and the vendored
 * "uapi/linux/userfaultfd.h".
 */
#ifndef LZ_BENCH_UFFD_H
#define LZ_BENCH_UFFD_H

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"

#define BENCH_UFFD_DEV "/dev/userfaultfd"

/*
 * A non-blocking userfaultfd with the API handshake done for `features`,
 * or bench_die naming prog. userfaultfd(2) without UFFD_USER_MODE_ONLY
 * needs CAP_SYS_PTRACE; root has it here, else /dev/userfaultfd may be
 * open to us.
 */
static inline int bench_uffd_open(const char *prog, unsigned long long features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd, dev;

	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == EPERM) {
		dev = open(BENCH_UFFD_DEV, O_RDWR | O_CLOEXEC);
		if (dev < 0)
			bench_die(prog, "userfaultfd: EPERM, and open %s", BENCH_UFFD_DEV);
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
	}
	if (fd < 0)
		bench_die(prog, "userfaultfd");
	if (ioctl(fd, UFFDIO_API, &api))
		bench_die(prog, "UFFDIO_API (features %#llx)", features);
	return fd;
}

#endif /* LZ_BENCH_UFFD_H */
