/*
 * timens.c - time namespaces (Linux 5.6): CLOCK_MONOTONIC and
 * CLOCK_BOOTTIME of a process read as the host's plus its namespace's
 * offsets (/proc/PID/timens_offsets, "monotonic SEC NSEC" and "boottime
 * SEC NSEC"; zeros in the initial namespace).
 *
 * A fresh namespace made by unshare(CLONE_NEWTIME) holds no process: the
 * caller stays where it was, its later children enter it. Its offsets can
 * be written (to the caller's /proc/self/timens_offsets, which then names
 * the namespace for children) only until a process entered it, and are
 * relative to the host's clocks, not to the caller's: hence our own
 * offsets are added back.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "timens.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define NSEC_PER_SEC 1000000000LL

struct offsets {
	int64_t monotonic_ns, boottime_ns;
};

static int read_offsets(pid_t pid, struct offsets *o)
{
	char *text, *line, *save = NULL;
	int ret, found = 0;

	memset(o, 0, sizeof(*o));
	ret = proc_read(pid, "timens_offsets", &text, NULL);
	if (ret == -ENOENT)
		return 0; /* a kernel without time namespaces: no offsets */
	if (ret)
		return ret;
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char name[16];
		long long sec, nsec;

		if (sscanf(line, "%15s %lld %lld", name, &sec, &nsec) != 3 || nsec < 0 ||
		    nsec >= NSEC_PER_SEC || sec > INT32_MAX || sec < -INT32_MAX) {
			ret = -EINVAL;
			break;
		}
		if (!strcmp(name, "monotonic"))
			o->monotonic_ns = sec * NSEC_PER_SEC + nsec, found |= 1;
		else if (!strcmp(name, "boottime"))
			o->boottime_ns = sec * NSEC_PER_SEC + nsec, found |= 2;
	}
	free(text);
	return ret ? ret : found == 3 ? 0 : -EINVAL;
}

static int64_t now_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (int64_t)ts.tv_sec * NSEC_PER_SEC + ts.tv_nsec;
}

int timens_read_clocks(pid_t pid, struct timens_clocks *out)
{
	struct offsets ours, theirs;
	int ret = read_offsets(getpid(), &ours);

	if (!ret)
		ret = read_offsets(pid, &theirs);
	if (ret)
		return ret;
	out->monotonic_ns =
		(uint64_t)(now_ns(CLOCK_MONOTONIC) - ours.monotonic_ns + theirs.monotonic_ns);
	out->boottime_ns =
		(uint64_t)(now_ns(CLOCK_BOOTTIME) - ours.boottime_ns + theirs.boottime_ns);
	return 0;
}

/* "CLOCKID SEC NSEC\n" with 0 <= NSEC < 1 s, as the kernel wants it. */
static int offset_line(char *buf, size_t len, int clock, int64_t off_ns)
{
	int64_t sec = off_ns / NSEC_PER_SEC, nsec = off_ns % NSEC_PER_SEC;

	if (nsec < 0) {
		nsec += NSEC_PER_SEC;
		sec--;
	}
	return snprintf(buf, len, "%d %" PRId64 " %" PRId64 "\n", clock, sec, nsec);
}

int timens_unshare_at(const struct timens_clocks *want, const char **what)
{
	struct offsets ours;
	char text[128];
	int fd, n, ret;

	if (access("/proc/self/ns/time", F_OK))
		return -EOPNOTSUPP; /* a kernel without time namespaces */
	*what = "/proc/self/timens_offsets";
	ret = read_offsets(getpid(), &ours);
	if (ret)
		return ret;
	*what = "unshare(CLONE_NEWTIME)";
	if (unshare(CLONE_NEWTIME))
		return -errno;
	*what = "/proc/self/timens_offsets";
	fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Host clock + offset = wanted: offset = wanted - (ours now - our offset). */
	n = offset_line(text, sizeof(text), CLOCK_MONOTONIC,
			(int64_t)want->monotonic_ns - now_ns(CLOCK_MONOTONIC) + ours.monotonic_ns);
	n += offset_line(text + n, sizeof(text) - (size_t)n, CLOCK_BOOTTIME,
			 (int64_t)want->boottime_ns - now_ns(CLOCK_BOOTTIME) + ours.boottime_ns);
	{
		ssize_t w = write(fd, text, (size_t)n);

		ret = w == n ? 0 : w < 0 ? -errno : -EIO;
	}
	close(fd);
	return ret;
}
