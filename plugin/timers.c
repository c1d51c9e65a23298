/*
 * timers.c - the POSIX timers of a task image: checked before anything is
 * created (restore-verify.c), then laid out for the restorer blob, which
 * creates them with their ids and arms them (blob/timers.c).
 *
 * Only what restore can create faithfully passes: the clocks the dump
 * lets through (dump-timers.c), a signal for every notification but
 * SIGEV_NONE, a SIGEV_THREAD_ID target among the process's threads,
 * nanoseconds below a second.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include "plugin.h"

#define NSEC_PER_SEC 1000000000U

static bool is_tid(uint32_t tid, const uint32_t *tids, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (tids[i] == tid)
			return true;
	return false;
}

/*
 * The clock ids dump-timers.c lets through. A CPU clock (negative: ~pid <<
 * 3 | perthread << 2 | kind) names "this process" or "this thread" (pid 0),
 * the process itself (tids[0]) or one of its threads.
 */
static bool clock_ok(int32_t c, const uint32_t *tids, size_t nr)
{
	uint32_t pid;

	if (c == 0 || c == 1 || c == 2 || c == 7 || c == 11)
		return true;
	if (c == 3)
		return nr == 1;
	if (c >= 0 || (c & 3) == 3)
		return false;
	pid = (uint32_t) ~(c >> 3);
	if (!(c & 4)) /* the process's CPU time */
		return pid == 0 || pid == tids[0];
	return pid == 0 ? nr == 1 : is_tid(pid, tids, nr);
}

static const char *timer_why(const PosixTimerEntry *p, const uint32_t *tids, size_t nr)
{
	if (p->id > INT_MAX)
		return "id beyond INT_MAX";
	if (!nr || !clock_ok(p->clock, tids, nr))
		return "a clock restore cannot create it on";
	switch (p->notify) {
	case 1: /* SIGEV_NONE: the signal is never sent */
		break;
	case 0: /* SIGEV_SIGNAL */
	case 2: /* SIGEV_THREAD, as the kernel takes it: like SIGEV_SIGNAL */
		if (p->has_tid)
			return "a thread without SIGEV_THREAD_ID";
		/* fall through */
	case 4: /* SIGEV_THREAD_ID | SIGEV_SIGNAL */
		if (p->signo < 1 || p->signo > 64)
			return "an invalid signal";
		break;
	default:
		return "an unknown notification";
	}
	if (p->notify == 4 && (!p->has_tid || !is_tid(p->tid, tids, nr)))
		return "SIGEV_THREAD_ID without a thread of this process";
	if (p->value_nsec >= NSEC_PER_SEC || p->interval_nsec >= NSEC_PER_SEC ||
	    p->value_sec > INT64_MAX || p->interval_sec > INT64_MAX)
		return "an invalid time";
	return NULL;
}

int plg_check_timers(const TaskEntry *t, const uint32_t *tids, size_t nr_tids, char *why,
		     size_t len)
{
	if (t->n_posix_timers > LZ_BLOB_MAX_TIMERS) {
		snprintf(why, len, "%zu POSIX timers, at most %d can be restored",
			 t->n_posix_timers, LZ_BLOB_MAX_TIMERS);
		return -E2BIG;
	}
	for (size_t i = 0; i < t->n_posix_timers; i++) {
		const PosixTimerEntry *p = t->posix_timers[i];
		const char *w = timer_why(p, tids, nr_tids);

		if (!w && i && p->id <= t->posix_timers[i - 1]->id)
			w = "out of id order";
		if (w) {
			snprintf(why, len, "POSIX timer %u (clock %d, signal %u): %s", p->id,
				 p->clock, p->signo, w);
			return -EBADMSG;
		}
	}
	return 0;
}

int plg_build_timers(struct lz_blob_args *a, struct lz_blob_timer *timers,
		     const struct plg_images *im, char *why, size_t len)
{
	const TaskEntry *t = im->task;
	uint32_t tids[LZ_BLOB_MAX_THREADS];
	int ret;

	for (size_t i = 0; i < im->nr_threads && i < LZ_BLOB_MAX_THREADS; i++)
		tids[i] = im->cores[i]->tid;
	ret = plg_check_timers(t, tids, im->nr_threads, why, len);
	if (ret)
		return ret;
	for (size_t i = 0; i < t->n_posix_timers; i++) {
		const PosixTimerEntry *p = t->posix_timers[i];

		timers[i] = (struct lz_blob_timer){
			.id = p->id,
			.clock = p->clock,
			.notify = (int32_t)p->notify,
			.signo = (int32_t)p->signo,
			.tid = (int32_t)p->tid,
			.value = p->sigev_value,
			.interval_sec = (int64_t)p->interval_sec,
			.interval_nsec = p->interval_nsec,
			.value_sec = (int64_t)p->value_sec,
			.value_nsec = p->value_nsec,
		};
	}
	a->nr_timers = (uint32_t)t->n_posix_timers;
	a->timers = (uint64_t)(uintptr_t)timers;
	return 0;
}
