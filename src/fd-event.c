/*
 * fd-event.c - eventfd, timerfd and signalfd (issue 7, item 6).
 *
 * All three are anonymous inodes whose whole state /proc/PID/fdinfo shows
 * (fd-fdinfo.c parses it), so dump reads it there and restore creates a
 * new one with that state, in lazarus, before the tree is cloned:
 *
 *  eventfd   the counter (written back: eventfd() takes only 32 bits) and
 *            semaphore mode.
 *  timerfd   the clock, the period, the time left to the next expiration
 *            and the expirations not yet read (TFD_IOC_SET_TICKS). Time
 *            stands still between dump and restore: the time left at dump
 *            is the time left after restore. A periodic timer that expired
 *            and was not read shows no time left (the kernel restarts it on
 *            read): it is armed again one period ahead.
 *  signalfd  the mask; pending signals are the process's, restored with it.
 *
 * The status flags (O_NONBLOCK) are set as dumped; the fd store's
 * descriptions are created O_CLOEXEC, the fd flags are the fd table's.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "fd-event.h"
#include "fd-fdinfo.h"
#include "restore-images.h"

#define NSEC_PER_SEC 1000000000ULL

#ifndef TFD_IOC_SET_TICKS /* include/uapi/linux/timerfd.h */
#define TFD_IOC_SET_TICKS _IOW('T', 0, uint64_t)
#endif

static bool anon_is(const struct fd_probe *p, const char *name)
{
	return !strncmp(p->link, "anon_inode:", 11) && !strcmp(p->link + 11, name);
}

static int fdinfo_bad(const struct fd_probe *p, const char *what, int ret)
{
	pr_err("process %d fd %d: %s: /proc/%d/fdinfo/%d: %s", p->pid, p->fd, what, p->pid, p->fd,
	       ret == -ENOENT ? "a line this kernel should print is missing" : "cannot parse it");
	return ret == -ENOMEM ? ret : -EOPNOTSUPP;
}

static int set_status(int fd, uint32_t flags)
{
	return fcntl(fd, F_SETFL, (int)flags & O_NONBLOCK) < 0 ? -errno : 0;
}

/* Status flags, then into the store (which owns FD from here, or closed). */
static int finish_open(const FileEntry *e, int fd, struct rst_fstore *st, const char *what,
		       char *why, size_t len)
{
	int ret = set_status(fd, e->flags);

	if (ret) {
		close(fd);
		snprintf(why, len, "file %u: %s: F_SETFL: %s", e->id, what, strerror(-ret));
		return ret;
	}
	return rst_fstore_put(st, e->id, fd, why, len);
}

/* ------------------------------------------------------------ eventfd */

static bool eventfd_match(const struct fd_probe *p)
{
	return anon_is(p, "[eventfd]");
}

static int eventfd_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	struct fdi_eventfd fi;
	EventfdEntry *ee;
	int ret;

	(void)imgs;
	ret = fdi_parse_eventfd(p->fdinfo, &fi);
	if (ret)
		return fdinfo_bad(p, "eventfd", ret);
	ee = malloc(sizeof(*ee));
	if (!ee)
		return -ENOMEM;
	eventfd_entry__init(ee);
	ee->count = fi.count;
	ee->semaphore = fi.semaphore;
	e->eventfd = ee;
	return 0;
}

static int eventfd_verify(const FileEntry *e, char *why, size_t len)
{
	if (!e->eventfd) {
		snprintf(why, len, "an eventfd without its eventfd entry");
		return -EBADMSG;
	}
	if (e->eventfd->count == UINT64_MAX) { /* the kernel's counter stops one short */
		snprintf(why, len, "eventfd counter %#" PRIx64 " is out of range",
			 e->eventfd->count);
		return -EBADMSG;
	}
	return 0;
}

static int eventfd_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
			char *why, size_t len)
{
	const EventfdEntry *ee = e->eventfd;
	int fd;

	(void)im;
	fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK | (ee->semaphore ? EFD_SEMAPHORE : 0));
	if (fd < 0) {
		snprintf(why, len, "file %u: eventfd: %s", e->id, strerror(errno));
		return -errno;
	}
	if (ee->count && write(fd, &ee->count, sizeof(ee->count)) != sizeof(ee->count)) {
		snprintf(why, len, "file %u: eventfd: writing its counter back: %s", e->id,
			 strerror(errno));
		close(fd);
		return -EIO;
	}
	return finish_open(e, fd, st, "eventfd", why, len);
}

const struct fd_kind fd_kind_eventfd = {
	.kind = FILE_KIND__FD_EVENTFD,
	.name = "eventfd",
	.match = eventfd_match,
	.dump = eventfd_dump,
	.verify = eventfd_verify,
	.open = eventfd_open,
};

/* ------------------------------------------------------------ timerfd */

static bool timerfd_match(const struct fd_probe *p)
{
	return anon_is(p, "[timerfd]");
}

static int timerfd_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	struct fdi_timerfd fi;
	TimerfdEntry *te;
	int ret;

	(void)imgs;
	ret = fdi_parse_timerfd(p->fdinfo, &fi);
	if (ret)
		return fdinfo_bad(p, "timerfd", ret);
	te = malloc(sizeof(*te));
	if (!te)
		return -ENOMEM;
	timerfd_entry__init(te);
	te->clockid = fi.clockid;
	te->ticks = fi.ticks;
	te->settime_flags = fi.settime_flags;
	te->value_sec = fi.value_sec;
	te->value_nsec = (uint32_t)fi.value_nsec;
	te->interval_sec = fi.interval_sec;
	te->interval_nsec = (uint32_t)fi.interval_nsec;
	e->timerfd = te;
	pr_debug("process %d fd %d: timerfd clock %d, %" PRIu64 " expirations unread, next in "
		 "%" PRIu64 ".%09u s, period %" PRIu64 ".%09u s", p->pid, p->fd, te->clockid,
		 te->ticks, te->value_sec, te->value_nsec, te->interval_sec, te->interval_nsec);
	return 0;
}

static bool clock_ok(int32_t c)
{
	return c == CLOCK_REALTIME || c == CLOCK_MONOTONIC || c == CLOCK_BOOTTIME ||
	       c == CLOCK_REALTIME_ALARM || c == CLOCK_BOOTTIME_ALARM;
}

static int timerfd_verify(const FileEntry *e, char *why, size_t len)
{
	const TimerfdEntry *te = e->timerfd;

	if (!te) {
		snprintf(why, len, "a timerfd without its timerfd entry");
		return -EBADMSG;
	}
	if (!clock_ok(te->clockid) || te->value_nsec >= NSEC_PER_SEC ||
	    te->interval_nsec >= NSEC_PER_SEC || te->value_sec > INT64_MAX / 2 ||
	    te->interval_sec > INT64_MAX / 2 ||
	    (te->settime_flags & ~(uint32_t)(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET))) {
		snprintf(why, len, "timerfd clock %d, flags %#x, times out of range", te->clockid,
			 te->settime_flags);
		return -EBADMSG;
	}
	return 0;
}

/* Arm FD as dumped: the time left (or one period, see the top), relative or absolute. */
static int timerfd_arm(int fd, const TimerfdEntry *te)
{
	struct itimerspec its = {
		.it_value = { (time_t)te->value_sec, te->value_nsec },
		.it_interval = { (time_t)te->interval_sec, te->interval_nsec },
	};
	int flags = 0;

	if (!its.it_value.tv_sec && !its.it_value.tv_nsec) {
		if (!te->ticks || (!its.it_interval.tv_sec && !its.it_interval.tv_nsec))
			return 0; /* disarmed */
		its.it_value = its.it_interval;
	}
	if (te->settime_flags & TFD_TIMER_ABSTIME) {
		struct timespec now;

		if (clock_gettime(te->clockid, &now) < 0)
			return -errno;
		its.it_value.tv_sec += now.tv_sec;
		its.it_value.tv_nsec += now.tv_nsec;
		if (its.it_value.tv_nsec >= (long)NSEC_PER_SEC) {
			its.it_value.tv_nsec -= (long)NSEC_PER_SEC;
			its.it_value.tv_sec++;
		}
		flags = (int)te->settime_flags;
	}
	return timerfd_settime(fd, flags, &its, NULL) < 0 ? -errno : 0;
}

static int timerfd_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
			char *why, size_t len)
{
	const TimerfdEntry *te = e->timerfd;
	uint64_t ticks = te->ticks;
	int fd, ret;

	(void)im;
	fd = timerfd_create(te->clockid, TFD_CLOEXEC | TFD_NONBLOCK);
	if (fd < 0) {
		snprintf(why, len, "file %u: timerfd_create(clock %d): %s", e->id, te->clockid,
			 strerror(errno));
		return -errno;
	}
	ret = timerfd_arm(fd, te);
	if (ret) {
		snprintf(why, len, "file %u: timerfd_settime: %s", e->id, strerror(-ret));
		goto out_close;
	}
	/* After settime, which clears them. Needs CONFIG_CHECKPOINT_RESTORE. */
	if (ticks && ioctl(fd, TFD_IOC_SET_TICKS, &ticks) < 0) {
		ret = -errno;
		snprintf(why, len, "file %u: timerfd with %" PRIu64 " expirations unread: "
			 "TFD_IOC_SET_TICKS: %s", e->id, ticks, strerror(errno));
		goto out_close;
	}
	return finish_open(e, fd, st, "timerfd", why, len);
out_close:
	close(fd);
	return ret;
}

const struct fd_kind fd_kind_timerfd = {
	.kind = FILE_KIND__FD_TIMERFD,
	.name = "timerfd",
	.match = timerfd_match,
	.dump = timerfd_dump,
	.verify = timerfd_verify,
	.open = timerfd_open,
};

/* ------------------------------------------------------------ signalfd */

static bool signalfd_match(const struct fd_probe *p)
{
	return anon_is(p, "[signalfd]");
}

static int signalfd_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	SignalfdEntry *se;
	uint64_t mask;
	int ret;

	(void)imgs;
	ret = fdi_parse_signalfd(p->fdinfo, &mask);
	if (ret)
		return fdinfo_bad(p, "signalfd", ret);
	se = malloc(sizeof(*se));
	if (!se)
		return -ENOMEM;
	signalfd_entry__init(se);
	se->sigmask = mask;
	e->signalfd = se;
	return 0;
}

static int signalfd_verify(const FileEntry *e, char *why, size_t len)
{
	if (!e->signalfd) {
		snprintf(why, len, "a signalfd without its signalfd entry");
		return -EBADMSG;
	}
	return 0;
}

static int signalfd_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
			 char *why, size_t len)
{
	sigset_t set;
	int fd;

	(void)im;
	/*
	 * The kernel's sigset is the first 64 bits of glibc's; sigaddset would
	 * refuse glibc's own signals 32 and 33. SIGKILL and SIGSTOP the kernel
	 * drops, as it did the first time.
	 */
	memset(&set, 0, sizeof(set));
	memcpy(&set, &e->signalfd->sigmask, sizeof(e->signalfd->sigmask));
	fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fd < 0) {
		snprintf(why, len, "file %u: signalfd: %s", e->id, strerror(errno));
		return -errno;
	}
	return finish_open(e, fd, st, "signalfd", why, len);
}

const struct fd_kind fd_kind_signalfd = {
	.kind = FILE_KIND__FD_SIGNALFD,
	.name = "signalfd",
	.match = signalfd_match,
	.dump = signalfd_dump,
	.verify = signalfd_verify,
	.open = signalfd_open,
};
