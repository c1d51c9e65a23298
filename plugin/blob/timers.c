/*
 * timers.c - the process's POSIX timers: created with their dumped ids once
 * every thread exists (a SIGEV_THREAD_ID timer needs its thread), armed
 * with their dumped remaining times after the pending signals are queued
 * again (an expiry then queues behind the signals that were older).
 *
 * Ids: with PR_TIMER_CREATE_RESTORE_IDS (Linux 6.16) timer_create takes the
 * id it must give from its timer_t pointer. Before it, a fresh process gets
 * ids counting up from 0: timers are created in id order and the ids in
 * between are taken by placeholders deleted again (CRIU's way), at most
 * LINEAR_MAX_GAP of them. Either way the id the kernel gave is checked:
 * another one fails the restore, never a process with a timer renamed.
 *
 * Every signal is blocked in every thread of the blob, so what expires
 * before rt_sigreturn stays queued for the target's own mask.
 */
#include <linux/prctl.h>

#include "blob.h"
#include "sys.h"

#ifndef PR_TIMER_CREATE_RESTORE_IDS /* include/uapi/linux/prctl.h has the origin */
#define PR_TIMER_CREATE_RESTORE_IDS 77
#define PR_TIMER_CREATE_RESTORE_IDS_OFF 0
#define PR_TIMER_CREATE_RESTORE_IDS_ON 1
#endif

#define EINVAL_ 22
#define E2BIG_ 7
#define LINEAR_MAX_GAP 65536U

/* struct sigevent of x86_64 as timer_create reads it. */
struct k_sigevent {
	uint64_t value;
	int32_t signo;
	int32_t notify;
	int32_t tid; /* SIGEV_THREAD_ID */
	int32_t pad[11];
};
_Static_assert(sizeof(struct k_sigevent) == 64, "kernel ABI: sigevent is 64 bytes");

static long create_one(const struct lz_blob_timer *t, int32_t *id)
{
	struct k_sigevent sev;

	memset(&sev, 0, sizeof(sev));
	sev.value = t->value;
	sev.signo = t->signo;
	sev.notify = t->notify;
	sev.tid = t->tid;
	return sys3(__NR_timer_create, t->clock, &sev, id);
}

static struct lz_blob_timer *timers(struct blob *b)
{
	return (struct lz_blob_timer *)(uintptr_t)b->a->timers;
}

static void check_id(struct blob *b, const struct lz_blob_timer *t, int32_t got)
{
	if ((uint32_t)got != t->id)
		blob_fail(b, LZ_STEP_TIMER, -EINVAL_, LZ_TIMER_ID,
			  t->id | (uint64_t)(uint32_t)got << 32);
}

static void create_chosen(struct blob *b)
{
	for (uint32_t i = 0; i < b->a->nr_timers; i++) {
		const struct lz_blob_timer *t = &timers(b)[i];
		int32_t id = (int32_t)t->id; /* read by the kernel in this mode */
		long r = create_one(t, &id);

		if (r)
			blob_fail(b, LZ_STEP_TIMER, r, LZ_TIMER_CREATE, t->id);
		check_id(b, t, id);
	}
}

static void create_linear(struct blob *b)
{
	uint32_t gaps = 0;

	for (uint32_t i = 0; i < b->a->nr_timers; i++) {
		const struct lz_blob_timer *t = &timers(b)[i];
		int32_t id = -1;
		long r;

		for (;;) {
			r = create_one(t, &id);
			if (r)
				blob_fail(b, LZ_STEP_TIMER, r, LZ_TIMER_CREATE, t->id);
			if ((uint32_t)id >= t->id)
				break;
			if (++gaps > LINEAR_MAX_GAP)
				blob_fail(b, LZ_STEP_TIMER, -E2BIG_, LZ_TIMER_GAPS, t->id);
			sys1(__NR_timer_delete, id);
		}
		check_id(b, t, id);
	}
}

void blob_create_timers(struct blob *b)
{
	long r;

	if (!b->a->nr_timers)
		return;
	if (b->a->timer_flags & LZ_BTIMER_LINEAR) {
		create_linear(b);
		return;
	}
	r = sys_prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_ON, 0, 0, 0);
	if (r == -EINVAL_) {
		create_linear(b);
		return;
	}
	if (r)
		blob_fail(b, LZ_STEP_TIMER, r, LZ_TIMER_PRCTL, 0);
	create_chosen(b);
	r = sys_prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_OFF, 0, 0, 0);
	if (r)
		blob_fail(b, LZ_STEP_TIMER, r, LZ_TIMER_PRCTL, 0);
}

/* Relative, from now: the time the process spent dumped does not count. */
void blob_arm_timers(struct blob *b)
{
	for (uint32_t i = 0; i < b->a->nr_timers; i++) {
		const struct lz_blob_timer *t = &timers(b)[i];
		long r;

		if (!t->value_sec && !t->value_nsec)
			continue; /* disarmed */
		r = sys4(__NR_timer_settime, (int32_t)t->id, 0, &t->interval_sec, 0);
		if (r)
			blob_fail(b, LZ_STEP_TIMER, r, LZ_TIMER_SETTIME, t->id);
	}
}
