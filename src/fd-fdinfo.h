/*
 * fd-fdinfo.h - what /proc/PID/fdinfo/FD says about event fds: eventfd,
 * timerfd, signalfd, the items of an epoll interest list and the watches
 * of an inotify instance (kernel 6.x formats: fs/eventfd.c, fs/timerfd.c,
 * fs/signalfd.c, fs/eventpoll.c and fs/notify/fdinfo.c show_fdinfo).
 *
 * The parsers take the file's text, so unit tests feed them fixed strings.
 * They return 0, -EINVAL for text they cannot parse, -ENOENT when a line
 * the kind always has is missing, or -ENOMEM; they do not log.
 */
#ifndef LZ_FD_FDINFO_H
#define LZ_FD_FDINFO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fdi_eventfd {
	uint64_t count;
	bool semaphore;
};

struct fdi_timerfd {
	int32_t clockid;
	uint64_t ticks;		/* expirations not yet read */
	uint32_t settime_flags; /* TFD_TIMER_* */
	uint64_t value_sec, value_nsec;	      /* time left */
	uint64_t interval_sec, interval_nsec; /* period */
};

/* "tfd: T events: E data: D  pos:P ino:I sdev:S" */
struct fdi_epoll_item {
	uint32_t tfd, events;
	uint64_t data, pos, ino;
	uint32_t sdev; /* kernel dev_t: major << 20 | minor */
};

#define FDI_HANDLE_MAX 128 /* MAX_HANDLE_SZ */

/* "inotify wd:W ino:I sdev:S mask:M ignored_mask:G fhandle-bytes:B fhandle-type:T f_handle:H" */
struct fdi_inotify_wd {
	uint32_t wd;
	uint64_t ino;
	uint32_t sdev; /* kernel dev_t */
	uint32_t mask, ignored_mask;
	uint32_t handle_bytes;
	int32_t handle_type;
	uint8_t handle[FDI_HANDLE_MAX];
};

int fdi_parse_eventfd(const char *text, struct fdi_eventfd *out);
int fdi_parse_timerfd(const char *text, struct fdi_timerfd *out);
/* sigmask: bit N-1 for signal N */
int fdi_parse_signalfd(const char *text, uint64_t *sigmask);
/* *ITEMS is malloc'ed (NULL when there are none); free() it. */
int fdi_parse_epoll(const char *text, struct fdi_epoll_item **items, size_t *nr);
/* *WDS is malloc'ed (NULL when there are none); free() it. */
int fdi_parse_inotify(const char *text, struct fdi_inotify_wd **wds, size_t *nr);

/* The kernel's internal dev_t (fdinfo "sdev") as userspace st_dev. */
uint64_t fdi_sdev_to_dev(uint32_t sdev);

#endif
