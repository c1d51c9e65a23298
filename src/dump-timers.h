/*
 * dump-timers.h - the POSIX timers (timer_create) of a process: listed by
 * /proc/PID/timers in the checks phase (id, clock, notification, signal,
 * sigev_value), their armed value, interval and overrun by injected
 * timer_gettime/timer_getoverrun, written into task-<pid>.img.
 * Functions return 0 or -errno and log a failure once, naming the pid.
 */
#ifndef LZ_DUMP_TIMERS_H
#define LZ_DUMP_TIMERS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ptrace.h"

/* One "ID:" block of /proc/PID/timers, then what the injected calls said. */
struct proc_timer {
	int32_t id;
	int32_t clock;	      /* ClockID: CLOCK_*, or a CPU clock (negative) */
	int32_t notify;	      /* sigev_notify: SIGEV_SIGNAL, NONE, THREAD, THREAD_ID */
	int32_t signo;
	uint64_t sigev_value;
	int32_t target;	      /* the pid (SIGEV_THREAD_ID: tid) it signals; timers_collect()
				 renumbers it as the images do */
	uint32_t overrun;     /* timer_getoverrun */
	int64_t interval_sec; /* timer_gettime: struct itimerspec, interval first */
	int64_t interval_nsec;
	int64_t value_sec;
	int64_t value_nsec;
};

struct timers_dump {
	struct proc_timer *t; /* sorted by id */
	size_t nr;
};

/*
 * Parse the text of /proc/PID/timers into a malloc'ed array sorted by id
 * (*out NULL and *nr 0 for no timer). -EINVAL: not the kernel's format;
 * -ENOMEM. Pure: no logging (the fuzz target calls it on any text).
 */
int timers_parse(const char *text, struct proc_timer **out, size_t *nr);

/* The process's pid and its threads' tids, here and in the images. */
struct timers_ids {
	pid_t pid, vpid;     /* here (our /proc), in the images (its pid namespace) */
	const pid_t *tids;   /* here, the leader first */
	const pid_t *vtids;  /* in the images, same order */
	size_t nr;
};

/*
 * Checks phase: read and parse /proc/PID/timers; refuse (one line,
 * -EOPNOTSUPP) what restore cannot give back: a clock of another process,
 * an alarm clock, a thread CPU-time clock we cannot tie to its thread, a
 * SIGEV_THREAD_ID target that is none of its threads, more than
 * LZ_BLOB_MAX_TIMERS timers. /proc names the target thread by its tid
 * here, a CPU clock by the pid its creator saw (in its own namespace):
 * both are kept as the images number them.
 */
int timers_collect(struct timers_dump *td, const struct timers_ids *ids);
/* Injected into the leader: each timer's timer_gettime and timer_getoverrun. */
int timers_collect_injected(struct timers_dump *td, struct tracee *t);
/* Point E's posix_timers at freshly allocated entries; free them with timers_free_task(). */
struct TaskEntry;
int timers_to_task(const struct timers_dump *td, struct TaskEntry *e);
void timers_free_task(struct TaskEntry *e);
void timers_fini(struct timers_dump *td);

#endif
