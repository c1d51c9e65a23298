/*
 * test_timers.c - the /proc/PID/timers parser of the dump (dump-timers.c),
 * on the kernel's format (6.x, every notification kind, CPU clocks), on
 * damaged text, and on this process's own timers.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "unit.h"
#include "dump-timers.h"
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

static const struct unit_case cases[] = {
	UNIT(test_parse),
	UNIT(test_damaged),
	UNIT(test_self),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
