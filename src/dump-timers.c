/*
 * dump-timers.c - the POSIX timers of a process (timer_create).
 *
 * /proc/PID/timers (fs/proc/base.c, show_timer) prints one block a timer:
 *   ID: 3
 *   signal: 14/0000000000000000        signo / sigev_value (%px)
 *   notify: signal/pid.8772            none, signal or thread / pid or tid
 *   ClockID: 0
 * "signal/tid.N" is SIGEV_THREAD_ID (the kernel takes it only with
 * SIGEV_SIGNAL). glibc turns CLOCK_PROCESS_CPUTIME_ID and
 * CLOCK_THREAD_CPUTIME_ID into the CPU clocks of "this process" and "this
 * thread" (-6 and -2: pid 0 in the clock id), which the kernel shows as
 * given. Only the task can ask timer_gettime and timer_getoverrun, so
 * those are injected into the leader after the checks.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-timers.h"
#include "proc.h"
#include "restorer.h"
#include "task.pb-c.h"
#include "uapi/linux/prctl.h"

#define SIGEV_SIGNAL_ 0
#define SIGEV_NONE_ 1
#define SIGEV_THREAD_ 2
#define SIGEV_THREAD_ID_ 4

/* CPU clock ids (include/linux/posix-timers_types.h): ~pid << 3 | thread << 2 | kind. */
#define CPUCLOCK_PID(c) ((pid_t) ~((c) >> 3))
#define CPUCLOCK_PERTHREAD(c) (((c) & 4) != 0)
#define CPUCLOCK_KIND(c) ((c) & 3) /* PROF 0, VIRT 1, SCHED 2; 3 is not a clock */

/* struct __kernel_itimerspec: the interval first. */
struct k_itimerspec {
	int64_t interval_sec, interval_nsec;
	int64_t value_sec, value_nsec;
};
_Static_assert(sizeof(struct k_itimerspec) == 32, "kernel ABI: itimerspec is 32 bytes");

/* "KEY: " at p, then return the rest of the line (NULL if another key). */
static const char *line_value(const char *p, const char *key)
{
	size_t n = strlen(key);

	return strncmp(p, key, n) ? NULL : p + n;
}

static int parse_int(const char **p, int base, long long min, long long max, long long *v)
{
	char *end;

	if (!**p || **p == ' ' || **p == '\n')
		return -EINVAL;
	errno = 0;
	*v = strtoll(*p, &end, base);
	if (errno || end == *p || *v < min || *v > max)
		return -EINVAL;
	*p = end;
	return 0;
}

static const char *next_line(const char *p)
{
	p = strchr(p, '\n');
	return p ? p + 1 : NULL;
}

/* One block, starting at its "ID:" line; *p moves past it. */
static int parse_block(const char **pp, struct proc_timer *t)
{
	const char *p = *pp, *v;
	long long n;
	char *end;

	memset(t, 0, sizeof(*t));
	if (!(v = line_value(p, "ID: ")) || parse_int(&v, 10, 0, INT_MAX, &n) || *v != '\n')
		return -EINVAL;
	t->id = (int32_t)n;
	if (!(p = next_line(p)) || !(v = line_value(p, "signal: ")) ||
	    parse_int(&v, 10, INT_MIN, INT_MAX, &n) || *v++ != '/')
		return -EINVAL;
	t->signo = (int32_t)n;
	if (!isxdigit((unsigned char)*v))
		return -EINVAL;
	errno = 0;
	t->sigev_value = strtoull(v, &end, 16);
	if (errno || *end != '\n')
		return -EINVAL;
	if (!(p = next_line(p)) || !(v = line_value(p, "notify: ")))
		return -EINVAL;
	if (!strncmp(v, "signal/", 7))
		t->notify = SIGEV_SIGNAL_, v += 7;
	else if (!strncmp(v, "none/", 5))
		t->notify = SIGEV_NONE_, v += 5;
	else if (!strncmp(v, "thread/", 7))
		t->notify = SIGEV_THREAD_, v += 7;
	else
		return -EINVAL;
	if (!strncmp(v, "tid.", 4) && t->notify == SIGEV_SIGNAL_)
		t->notify = SIGEV_THREAD_ID_;
	else if (strncmp(v, "pid.", 4))
		return -EINVAL;
	v += 4;
	if (parse_int(&v, 10, 0, INT_MAX, &n) || *v != '\n')
		return -EINVAL;
	t->target = (int32_t)n;
	if (!(p = next_line(p)) || !(v = line_value(p, "ClockID: ")) ||
	    parse_int(&v, 10, INT_MIN, INT_MAX, &n) || *v != '\n')
		return -EINVAL;
	t->clock = (int32_t)n;
	*pp = v + 1;
	return 0;
}

static int by_id(const void *a, const void *b)
{
	const struct proc_timer *x = a, *y = b;

	return (x->id > y->id) - (x->id < y->id);
}

int timers_parse(const char *text, struct proc_timer **out, size_t *nr)
{
	struct proc_timer *t = NULL;
	size_t n = 0, cap = 0;
	const char *p = text;

	*out = NULL;
	*nr = 0;
	while (*p) {
		if (n == cap) {
			struct proc_timer *bigger;

			cap = cap ? 2 * cap : 16;
			bigger = realloc(t, cap * sizeof(*t));
			if (!bigger) {
				free(t);
				return -ENOMEM;
			}
			t = bigger;
		}
		if (parse_block(&p, &t[n])) {
			free(t);
			return -EINVAL;
		}
		n++;
	}
	if (n)
		qsort(t, n, sizeof(*t), by_id);
	for (size_t i = 1; i < n; i++) {
		if (t[i].id == t[i - 1].id) {
			free(t);
			return -EINVAL;
		}
	}
	*out = t;
	*nr = n;
	return 0;
}

/* Index of TID in TIDS, or -1. */
static ssize_t tid_index(pid_t tid, const pid_t *tids, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		if (tids[i] == tid)
			return (ssize_t)i;
	return -1;
}

/*
 * Restore creates every timer from the leader, which also gives the
 * thread CPU clock of "this thread" (pid 0) to the leader: faithful only
 * when the leader is the only thread. A CPU clock naming a pid or tid (as
 * its creator saw it: in the images' numbering) is kept as it is, since
 * restore gives every thread its tid back.
 */
static const char *clock_why(const struct proc_timer *t, const struct timers_ids *ids)
{
	int32_t c = t->clock;

	switch (c) {
	case 0: /* CLOCK_REALTIME */
	case 1: /* CLOCK_MONOTONIC */
	case 2: /* CLOCK_PROCESS_CPUTIME_ID */
	case 7: /* CLOCK_BOOTTIME */
	case 11: /* CLOCK_TAI */
		return NULL;
	case 3: /* CLOCK_THREAD_CPUTIME_ID */
		return ids->nr == 1 ? NULL : "the CPU time of the thread that created it";
	case 8:
	case 9:
		return "an alarm clock (CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM)";
	}
	if (c >= 0 || CPUCLOCK_KIND(c) == 3)
		return "an unknown clock";
	if (!CPUCLOCK_PERTHREAD(c))
		return CPUCLOCK_PID(c) == 0 || CPUCLOCK_PID(c) == ids->vpid
			       ? NULL
			       : "the CPU time of another process";
	if (CPUCLOCK_PID(c) == 0)
		return ids->nr == 1 ? NULL : "the CPU time of the thread that created it";
	return tid_index(CPUCLOCK_PID(c), ids->vtids, ids->nr) >= 0
		       ? NULL
		       : "the CPU time of another process's thread";
}

/* Check T and number its target thread as the images do. */
static int check_one(struct proc_timer *t, const struct timers_ids *ids)
{
	const char *why = clock_why(t, ids);
	ssize_t i;

	if (why) {
		pr_err("process %d: POSIX timer %d counts %s (clock %d): not supported yet", ids->pid,
		       t->id, why, t->clock);
		return -EOPNOTSUPP;
	}
	if (t->notify == SIGEV_THREAD_ID_) {
		i = tid_index(t->target, ids->tids, ids->nr);
		if (i < 0) {
			pr_err("process %d: POSIX timer %d signals thread %d, which is none of its "
			       "threads: not supported yet",
			       ids->pid, t->id, t->target);
			return -EOPNOTSUPP;
		}
		t->target = ids->vtids[i];
	} else {
		t->target = ids->vpid;
	}
	if (t->notify != SIGEV_NONE_ && (t->signo < 1 || t->signo > 64)) {
		pr_err("process %d: POSIX timer %d has signal %d: not supported", ids->pid, t->id,
		       t->signo);
		return -EOPNOTSUPP;
	}
	return 0;
}

int timers_collect(struct timers_dump *td, const struct timers_ids *ids)
{
	pid_t pid = ids->pid;
	char *text;
	int ret;

	timers_fini(td);
	ret = proc_read(pid, "timers", &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/timers: %s", pid, pid, strerror(-ret));
		return ret;
	}
	ret = timers_parse(text, &td->t, &td->nr);
	free(text);
	if (ret) {
		pr_err("process %d: /proc/%d/timers: %s", pid, pid,
		       ret == -EINVAL ? "not in the expected format" : strerror(-ret));
		return ret;
	}
	if (td->nr > LZ_BLOB_MAX_TIMERS) {
		pr_err("process %d has %zu POSIX timers, at most %d can be restored", pid, td->nr,
		       LZ_BLOB_MAX_TIMERS);
		return -E2BIG;
	}
	for (size_t i = 0; i < td->nr; i++) {
		ret = check_one(&td->t[i], ids);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * PR_TIMER_CREATE_RESTORE_IDS left on would make the process's own next
 * timer_create read its id from memory: restore turns it off, so refuse.
 * EINVAL: a kernel without it (before 6.16), off. R: the prctl's result.
 */
static int check_restore_ids_mode(struct tracee *t, int64_t r)
{
	if (r <= 0)
		return 0;
	pr_err("process %d creates POSIX timers with chosen ids (PR_TIMER_CREATE_RESTORE_IDS): "
	       "not supported yet",
	       t->pid);
	return -EOPNOTSUPP;
}

/* The answers of timer_gettime (ITS, in the scratch page) and timer_getoverrun. */
static int take_timer(struct tracee *t, struct proc_timer *pt, const struct tracee_call *calls,
		      const struct k_itimerspec *its)
{
	if (calls[0].ret < 0) {
		pr_err("process %d: injected timer_gettime of POSIX timer %d: %s", t->pid, pt->id,
		       strerror((int)-calls[0].ret));
		return (int)calls[0].ret;
	}
	pt->interval_sec = its->interval_sec;
	pt->interval_nsec = its->interval_nsec;
	pt->value_sec = its->value_sec;
	pt->value_nsec = its->value_nsec;
	if (calls[1].ret < 0) {
		pr_err("process %d: injected timer_getoverrun of POSIX timer %d: %s", t->pid,
		       pt->id, strerror((int)-calls[1].ret));
		return (int)calls[1].ret;
	}
	pt->overrun = (uint32_t)calls[1].ret;
	return 0;
}

#define TIMERS_PER_BATCH ((TRACEE_MAX_CALLS - 1) / 2)

/*
 * The mode prctl and, per timer, timer_gettime and timer_getoverrun, in
 * batches of TIMERS_PER_BATCH timers (the prctl in the first).
 */
int timers_collect_injected(struct timers_dump *td, struct tracee *t)
{
	struct tracee_call calls[TRACEE_MAX_CALLS];
	struct k_itimerspec its[TIMERS_PER_BATCH];
	size_t done = 0;
	int ret = 0;

	_Static_assert(sizeof(its) <= TRACEE_SCRATCH_SIZE, "out-params fit the scratch page");
	do {
		size_t k = td->nr - done < TIMERS_PER_BATCH ? td->nr - done : TIMERS_PER_BATCH;
		size_t n = 0, first = done == 0;

		if (first)
			calls[n++] = (struct tracee_call){
				.nr = SYS_prctl,
				.args = { PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET }
			};
		for (size_t i = 0; i < k; i++) {
			uint64_t id = (uint64_t)td->t[done + i].id;

			calls[n++] = (struct tracee_call){ .nr = SYS_timer_gettime,
							   .args = { id, t->scratch + i * sizeof(its[0]) } };
			calls[n++] = (struct tracee_call){ .nr = SYS_timer_getoverrun, .args = { id } };
		}
		ret = tracee_syscalls(t, calls, n);
		if (!ret && k)
			ret = tracee_read(t, t->scratch, its, k * sizeof(its[0]));
		if (ret) {
			pr_err("process %d: reading the scratch page: %s", t->pid, strerror(-ret));
			return ret;
		}
		if (first)
			ret = check_restore_ids_mode(t, calls[0].ret);
		for (size_t i = 0; !ret && i < k; i++)
			ret = take_timer(t, &td->t[done + i], &calls[first + 2 * i], &its[i]);
		done += k;
	} while (!ret && done < td->nr);
	return ret;
}

int timers_to_task(const struct timers_dump *td, TaskEntry *e)
{
	PosixTimerEntry *pe, **pp;

	e->n_posix_timers = 0;
	e->posix_timers = NULL;
	if (!td->nr)
		return 0;
	pe = calloc(td->nr, sizeof(*pe));
	pp = calloc(td->nr, sizeof(*pp));
	if (!pe || !pp) {
		free(pe);
		free(pp);
		pr_err("process POSIX timers: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < td->nr; i++) {
		const struct proc_timer *t = &td->t[i];

		posix_timer_entry__init(&pe[i]);
		pe[i].id = (uint32_t)t->id;
		pe[i].clock = t->clock;
		pe[i].notify = (uint32_t)t->notify;
		pe[i].signo = (uint32_t)t->signo;
		pe[i].sigev_value = t->sigev_value;
		pe[i].has_tid = t->notify == SIGEV_THREAD_ID_; /* target: in the images' numbering */
		pe[i].tid = pe[i].has_tid ? (uint32_t)t->target : 0;
		pe[i].value_sec = (uint64_t)t->value_sec;
		pe[i].value_nsec = (uint32_t)t->value_nsec;
		pe[i].interval_sec = (uint64_t)t->interval_sec;
		pe[i].interval_nsec = (uint32_t)t->interval_nsec;
		pe[i].overrun = t->overrun;
		pp[i] = &pe[i];
	}
	e->n_posix_timers = td->nr;
	e->posix_timers = pp;
	return 0;
}

void timers_free_task(TaskEntry *e)
{
	if (e->posix_timers)
		free(e->posix_timers[0]);
	free(e->posix_timers);
	e->posix_timers = NULL;
	e->n_posix_timers = 0;
}

void timers_fini(struct timers_dump *td)
{
	free(td->t);
	td->t = NULL;
	td->nr = 0;
}
