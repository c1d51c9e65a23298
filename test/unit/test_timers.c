/*
 * test_timers.c - the /proc/PID/timers parser of the dump (dump-timers.c),
 * on the kernel's format (6.x, every notification kind, CPU clocks), on
 * damaged text, and on this process's own timers; restore's check of a
 * task image's timers (plugin/timers.c), table-driven.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "unit.h"
#include "dump-timers.h"
#include "plugin.h"
#include "proc.h"

static const char timers_text[] =
	"ID: 11\nsignal: 40/00000000000000c9\nnotify: signal/pid.21988\nClockID: -6\n"
	"ID: 10\nsignal: 36/000000000000404e\nnotify: none/pid.21988\nClockID: 0\n"
	"ID: 4\nsignal: 37/0000000000000b0b\nnotify: signal/tid.21990\nClockID: 1\n"
	"ID: 2\nsignal: 14/ffffffffffffffff\nnotify: thread/pid.21988\nClockID: 7\n"
	"ID: 0\nsignal: 14/0000000000000000\nnotify: signal/pid.21988\nClockID: 1\n";

static int test_parse(void)
{
	struct proc_timer *t;
	size_t n;

	CHECK(timers_parse(timers_text, &t, &n) == 0);
	CHECK(n == 5);
	/* sorted by id */
	CHECK(t[0].id == 0 && t[1].id == 2 && t[2].id == 4 && t[3].id == 10 && t[4].id == 11);
	CHECK(t[0].signo == 14 && t[0].sigev_value == 0 && t[0].notify == 0 && t[0].clock == 1);
	CHECK(t[1].notify == 2 && t[1].sigev_value == ~0ULL && t[1].clock == 7);
	CHECK(t[2].notify == 4 && t[2].target == 21990 && t[2].sigev_value == 0xb0b);
	CHECK(t[3].notify == 1 && t[3].clock == 0 && t[3].target == 21988);
	CHECK(t[4].clock == -6 && t[4].signo == 40);
	free(t);
	CHECK(timers_parse("", &t, &n) == 0 && n == 0 && t == NULL);
	return 0;
}

static int test_damaged(void)
{
	static const char *const bad[] = {
		"ID: 1\n",							/* cut */
		"ID: 1\nsignal: 14/0\nnotify: signal/pid.5\n",			/* no clock */
		"ID: x\nsignal: 14/0\nnotify: signal/pid.5\nClockID: 0\n",
		"ID: -1\nsignal: 14/0\nnotify: signal/pid.5\nClockID: 0\n",
		"ID: 1\nsignal: 14/zz\nnotify: signal/pid.5\nClockID: 0\n",
		"ID: 1\nsignal: 14/0\nnotify: thread/tid.5\nClockID: 0\n",	/* no such kind */
		"ID: 1\nsignal: 14/0\nnotify: other/pid.5\nClockID: 0\n",
		"ID: 1\nsignal: 14/0\nnotify: signal/pid.5\nClockID: 0",	/* no newline */
		"ID: 1\nsignal: 14/0\nnotify: signal/pid.5\nClockID: 99999999999\n",
		"ID: 1\nsignal: 14/0\nnotify: signal/pid.5\nClockID: 0\n"
		"ID: 1\nsignal: 14/0\nnotify: signal/pid.5\nClockID: 0\n",	/* twice */
		"garbage\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct proc_timer *t = (struct proc_timer *)1;
		size_t n = 1;

		if (timers_parse(bad[i], &t, &n) != -EINVAL || t || n) {
			fprintf(stderr, "case %zu accepted: %s\n", i, bad[i]);
			return 1;
		}
	}
	return 0;
}

/* Our own timer as the kernel shows it. */
static int test_self(void)
{
	struct sigevent se = { .sigev_notify = SIGEV_SIGNAL, .sigev_signo = SIGRTMIN + 1,
			       .sigev_value.sival_ptr = (void *)0x1234 };
	struct proc_timer *t;
	timer_t id;
	char *text;
	size_t n;

	CHECK(timer_create(CLOCK_BOOTTIME, &se, &id) == 0);
	CHECK(proc_read(getpid(), "timers", &text, NULL) == 0);
	CHECK(timers_parse(text, &t, &n) == 0);
	free(text);
	CHECK(n == 1 && t[0].id == (int32_t)(intptr_t)id && t[0].clock == CLOCK_BOOTTIME);
	CHECK(t[0].signo == SIGRTMIN + 1 && t[0].sigev_value == 0x1234);
	CHECK(t[0].notify == SIGEV_SIGNAL && t[0].target == getpid());
	free(t);
	CHECK(timer_delete(id) == 0);
	return 0;
}

/* A CPU clock id as glibc makes them: ~pid << 3 | perthread << 2 | kind (SCHED 2). */
#define CPUCLOCK(pid, thread, kind) ((int32_t)(((uint32_t) ~(pid) << 3) | (thread) << 2 | (kind)))

/* One timer entry of a process with threads 100 and 101: accepted or not. */
static const struct {
	const char *what;
	int32_t clock;
	uint32_t notify, signo, tid, nsec;
	bool ok;
} check_cases[] = {
	{ "monotonic signal", 1, 0, 10, 0, 0, true },
	{ "none without signal", 0, 1, 0, 0, 0, true },
	{ "thread id to a thread", 7, 4, 34, 101, 0, true },
	{ "process cpu time (this)", -6, 0, 10, 0, 0, true },
	{ "process cpu time (own pid)", CPUCLOCK(100, 0, 2), 0, 10, 0, 0, true },
	{ "thread cpu time of thread 101", CPUCLOCK(101, 1, 2), 0, 10, 0, 0, true },
	{ "tai", 11, 0, 64, 0, 999999999, true },
	{ "unknown clock", 99, 0, 10, 0, 0, false },
	{ "alarm clock", 8, 0, 10, 0, 0, false },
	{ "this thread's cpu time, two threads", -2, 0, 10, 0, 0, false },
	{ "CLOCK_THREAD_CPUTIME_ID, two threads", 3, 0, 10, 0, 0, false },
	{ "another process's cpu time", CPUCLOCK(555, 0, 2), 0, 10, 0, 0, false },
	{ "cpu clock kind 3", CPUCLOCK(0, 0, 3), 0, 10, 0, 0, false },
	{ "signal 0", 1, 0, 0, 0, 0, false },
	{ "signal 65", 1, 2, 65, 0, 0, false },
	{ "unknown notify", 1, 3, 10, 0, 0, false },
	{ "thread id to a stranger", 1, 4, 10, 555, 0, false },
	{ "a second", 1, 0, 10, 0, 1000000000, false },
};

static int test_check(void)
{
	const uint32_t tids[] = { 100, 101 };
	char why[200];

	for (size_t i = 0; i < sizeof(check_cases) / sizeof(check_cases[0]); i++) {
		PosixTimerEntry e = POSIX_TIMER_ENTRY__INIT, *ep = &e;
		TaskEntry t = TASK_ENTRY__INIT;
		int ret;

		e.id = 3;
		e.clock = check_cases[i].clock;
		e.notify = check_cases[i].notify;
		e.signo = check_cases[i].signo;
		e.has_tid = check_cases[i].tid != 0;
		e.tid = check_cases[i].tid;
		e.value_nsec = check_cases[i].nsec;
		t.n_posix_timers = 1;
		t.posix_timers = &ep;
		ret = plg_check_timers(&t, tids, 2, why, sizeof(why));
		if ((ret == 0) != check_cases[i].ok) {
			fprintf(stderr, "%s: %d (%s)\n", check_cases[i].what, ret, ret ? why : "");
			return 1;
		}
	}
	return 0;
}

/* Ids must ascend: the restorer creates them in this order. */
static int test_check_order(void)
{
	PosixTimerEntry a = POSIX_TIMER_ENTRY__INIT, b = POSIX_TIMER_ENTRY__INIT;
	PosixTimerEntry *list[] = { &a, &b };
	TaskEntry t = TASK_ENTRY__INIT;
	const uint32_t tids[] = { 100 };
	char why[200];

	a.notify = b.notify = 1;
	a.id = 5;
	b.id = 5;
	t.n_posix_timers = 2;
	t.posix_timers = list;
	CHECK(plg_check_timers(&t, tids, 1, why, sizeof(why)) == -EBADMSG);
	CHECK(strstr(why, "out of id order") != NULL);
	b.id = 6;
	CHECK(plg_check_timers(&t, tids, 1, why, sizeof(why)) == 0);
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_parse),
	UNIT(test_damaged),
	UNIT(test_self),
	UNIT(test_check),
	UNIT(test_check_order),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
