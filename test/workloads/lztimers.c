/*
 * lztimers.c - a process with POSIX timers of every kind Lazarus restores,
 * and a second thread one of them is aimed at.
 *
 *   lztimers --dir DIR
 *
 * Timers, with ids made sparse by placeholders created and deleted between
 * them (restore must give each its own id back, not the next free one):
 *   tick    CLOCK_MONOTONIC, SIGEV_SIGNAL SIGRTMIN+2, value 0xa11ce, every 20 ms;
 *           the handler counts (process-directed: any thread may take it)
 *   thread  CLOCK_MONOTONIC, SIGEV_THREAD_ID at the worker, SIGRTMIN+3,
 *           value 0xb0b, every 25 ms; the handler counts hits in the worker
 *           and anywhere else
 *   far     CLOCK_MONOTONIC one-shot in 3600 s, SIGRTMIN+4 (must not fire)
 *   off     CLOCK_BOOTTIME, SIGRTMIN+5, never armed
 *   none    CLOCK_REALTIME, SIGEV_NONE, one-shot in 1800 s, polled
 *   cpu     CLOCK_PROCESS_CPUTIME_ID one-shot after 1000 s of CPU, SIGRTMIN+6
 *   pend    CLOCK_MONOTONIC one-shot after 1 ms, SIGRTMIN+7, value 0x9e4d,
 *           blocked in every thread: its expiry stays pending
 *   glibc   SIGEV_THREAD every 30 ms: glibc's helper thread gets the kernel
 *           timer's signal (SIGEV_THREAD_ID) and runs the callback, which
 *           counts, in a thread of its own
 * DIR/ready says "pid=P tid=WORKER" once "pend" expired. On SIGUSR1 it
 * checks itself and writes DIR/result:
 *   "PASS|FAIL pid=P ticks=N hits=N gticks=N wrong=N fired=N far_ms=N none_ms=N
 *    cpu_ms=N pending=0|1 taken=CODE:TIMERID:VALUE mono_ms=N boot_ms=N
 *    ids=A,B,...: why"
 * where taken is what sigtimedwait() took of SIGRTMIN+7 if a SIGUSR2
 * asked for it since the last check (else "-"), and mono_ms and boot_ms
 * what CLOCK_MONOTONIC and CLOCK_BOOTTIME read.
 * Checks: every saved timer_t works with timer_gettime and
 * timer_getoverrun; /proc/self/timers lists exactly these ids (and glibc's
 * one), each with its clock, signal, value, notification and (thread)
 * target; "off" is
 * disarmed; "far", "none" and "cpu" are armed, not beyond their first
 * value; the one-shots never fired; no thread-directed tick reached
 * another thread. SIGTERM exits 0.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lztimers"
#include "wl.h"

enum { T_TICK, T_THREAD, T_FAR, T_OFF, T_NONE, T_CPU, T_PEND, NR_T };

static const struct spec {
	const char *name;
	clockid_t clock;
	int kclock; /* as /proc/self/timers shows it */
	int notify;
	int sig; /* offset from SIGRTMIN */
	uintptr_t value;
	time_t first_s;
	long every_ms;
} specs[NR_T] = {
	[T_TICK] = { "tick", CLOCK_MONOTONIC, 1, SIGEV_SIGNAL, 2, 0xa11ce, 0, 20 },
	[T_THREAD] = { "thread", CLOCK_MONOTONIC, 1, SIGEV_THREAD_ID, 3, 0xb0b, 0, 25 },
	[T_FAR] = { "far", CLOCK_MONOTONIC, 1, SIGEV_SIGNAL, 4, 0xfa5, 3600, 0 },
	[T_OFF] = { "off", CLOCK_BOOTTIME, 7, SIGEV_SIGNAL, 5, 0x0ff, 0, 0 },
	[T_NONE] = { "none", CLOCK_REALTIME, 0, SIGEV_NONE, 2, 0x404e, 1800, 0 },
	[T_CPU] = { "cpu", CLOCK_PROCESS_CPUTIME_ID, -6, SIGEV_SIGNAL, 6, 0xc9, 1000, 0 },
	[T_PEND] = { "pend", CLOCK_MONOTONIC, 1, SIGEV_SIGNAL, 7, 0x9e4d, 0, 0 },
};

static timer_t timers[NR_T];
static volatile sig_atomic_t check_requested, term_requested, take_requested;
static volatile pid_t worker_tid;
static _Atomic long ticks, hits, wrong, fired, gticks;
static timer_t glibc_timer;

static void on_glibc_tick(union sigval v)
{
	if (v.sival_int == 0x61)
		gticks++;
}

/* A SIGEV_THREAD timer: glibc's own helper thread and kernel timer. */
static void create_glibc(void)
{
	struct sigevent se;
	struct itimerspec its = { { 0, 30000000 }, { 0, 30000000 } };

	memset(&se, 0, sizeof(se));
	se.sigev_notify = SIGEV_THREAD;
	se.sigev_notify_function = on_glibc_tick;
	se.sigev_value.sival_int = 0x61;
	if (timer_create(CLOCK_MONOTONIC, &se, &glibc_timer) ||
	    timer_settime(glibc_timer, 0, &its, NULL))
		die("SIGEV_THREAD timer");
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
	(void)uc;
	if (sig == SIGUSR1)
		check_requested = 1;
	else if (sig == SIGUSR2)
		take_requested = 1;
	else if (sig == SIGTERM)
		term_requested = 1;
	else if (sig == SIGRTMIN + 2 && si->si_value.sival_ptr == (void *)specs[T_TICK].value)
		ticks++;
	else if (sig == SIGRTMIN + 3 && (pid_t)syscall(SYS_gettid) == worker_tid)
		hits++;
	else if (sig == SIGRTMIN + 3)
		wrong++;
	else
		fired++;
}

static void *worker(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "lzt-worker");
	worker_tid = (pid_t)syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

static void create(int i)
{
	const struct spec *s = &specs[i];
	struct sigevent se;
	struct itimerspec its = { { s->every_ms / 1000, (s->every_ms % 1000) * 1000000 },
				  { s->first_s, 0 } };

	memset(&se, 0, sizeof(se));
	se.sigev_notify = s->notify;
	se.sigev_signo = SIGRTMIN + s->sig;
	se.sigev_value.sival_ptr = (void *)s->value;
	if (s->notify == SIGEV_THREAD_ID)
		se._sigev_un._tid = worker_tid;
	if (timer_create(s->clock, &se, &timers[i]))
		die("timer_create %s", s->name);
	if (s->every_ms)
		its.it_value = its.it_interval;
	if (i == T_PEND)
		its.it_value.tv_nsec = 1000000;
	if ((s->first_s || s->every_ms || i == T_PEND) && timer_settime(timers[i], 0, &its, NULL))
		die("timer_settime %s", s->name);
}

/* A placeholder timer, deleted again: the next id is one further. */
static void skip_id(void)
{
	timer_t t;

	if (timer_create(CLOCK_MONOTONIC, NULL, &t) || timer_delete(t))
		die("placeholder timer");
}

static long id_of(int i)
{
	return (long)(intptr_t)timers[i];
}

static long left_ms(int i, char *why, size_t len)
{
	struct itimerspec its;

	if (timer_gettime(timers[i], &its)) {
		snprintf(why, len, "timer_gettime(%s, id %ld): %s", specs[i].name, id_of(i),
			 strerror(errno));
		return -1;
	}
	return (long)its.it_value.tv_sec * 1000 + its.it_value.tv_nsec / 1000000;
}

/*
 * Our pid and the worker's tid as /proc shows them: in the pid namespace
 * of the /proc mount, which is not ours after a restore --pidns.
 */
static void proc_ids(int *pid, int *tid)
{
	char link[64];
	ssize_t n = readlink("/proc/self", link, sizeof(link) - 1);
	struct dirent *e;
	DIR *d;

	if (n <= 0)
		die("readlink /proc/self");
	link[n] = '\0';
	*pid = atoi(link);
	*tid = -1;
	d = opendir("/proc/self/task");
	if (!d)
		die("opendir /proc/self/task");
	while ((e = readdir(d))) { /* the worker is the thread named "lzt-worker" */
		char path[300], comm[32] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (f && fgets(comm, sizeof(comm), f) && !strcmp(comm, "lzt-worker\n"))
			*tid = atoi(e->d_name);
		if (f)
			fclose(f);
	}
	closedir(d);
}

/* The block of /proc/self/timers for id, as the kernel prints it. */
static void expected_block(int i, char *buf, size_t len)
{
	const struct spec *s = &specs[i];
	const char *kind = s->notify == SIGEV_NONE ? "none" : "signal";
	const char *who = s->notify == SIGEV_THREAD_ID ? "tid" : "pid";
	int pid, tid, target;

	proc_ids(&pid, &tid);
	target = s->notify == SIGEV_THREAD_ID ? tid : pid;

	snprintf(buf, len, "ID: %ld\nsignal: %d/%016lx\nnotify: %s/%s.%d\nClockID: %d\n",
		 id_of(i), SIGRTMIN + s->sig, (unsigned long)s->value, kind, who, target,
		 s->kclock);
}

static void check_proc_timers(char *why, size_t len)
{
	char text[8192], block[256];
	size_t n = 0, blocks = 0;
	FILE *f = fopen("/proc/self/timers", "r");

	if (!f) {
		snprintf(why, len, "open /proc/self/timers: %s", strerror(errno));
		return;
	}
	n = fread(text, 1, sizeof(text) - 1, f);
	fclose(f);
	text[n] = '\0';
	for (const char *p = text; (p = strstr(p, "ID: ")); p++)
		blocks += p == text || p[-1] == '\n'; /* not "ClockID: " */
	if (blocks != NR_T + 1) {
		snprintf(why, len, "/proc/self/timers lists %zu timers, not %d", blocks, NR_T + 1);
		return;
	}
	for (int i = 0; i < NR_T && !why[0]; i++) {
		expected_block(i, block, sizeof(block));
		if (!strstr(text, block))
			snprintf(why, len, "timer %s: no block \"%.*s\" in /proc/self/timers",
				 specs[i].name, (int)strcspn(block, "\n") + 30, block);
	}
}

/* SIGRTMIN+7 pending? And, if asked, take it: "CODE:TIMERID:VALUE". */
static int pending_timer_signal(char *taken, size_t len)
{
	const struct timespec zero = { 0, 0 };
	sigset_t set, one;
	siginfo_t si;

	snprintf(taken, len, "-");
	if (sigpending(&set))
		die("sigpending");
	if (!take_requested)
		return sigismember(&set, SIGRTMIN + 7);
	take_requested = 0;
	sigemptyset(&one);
	sigaddset(&one, SIGRTMIN + 7);
	if (sigtimedwait(&one, &si, &zero) == SIGRTMIN + 7)
		snprintf(taken, len, "%d:%d:%lx", si.si_code, si.si_timerid,
			 (unsigned long)si.si_value.sival_ptr);
	return sigismember(&set, SIGRTMIN + 7);
}

static void check(const char *dir)
{
	char why[512] = "", text[1024], ids[128], taken[64];
	int pending = pending_timer_signal(taken, sizeof(taken));
	long far = 0, none = 0, cpu = 0, off = 0;
	struct timespec mono, boot;
	size_t o = 0;

	for (int i = 0; i < NR_T; i++)
		o += (size_t)snprintf(ids + o, sizeof(ids) - o, "%s%ld", i ? "," : "", id_of(i));
	if (timer_getoverrun(glibc_timer) < 0)
		snprintf(why, sizeof(why), "timer_getoverrun(glibc): %s", strerror(errno));
	for (int i = 0; i < NR_T && !why[0]; i++) {
		if (timer_getoverrun(timers[i]) < 0)
			snprintf(why, sizeof(why), "timer_getoverrun(%s): %s", specs[i].name,
				 strerror(errno));
	}
	if (!why[0]) {
		far = left_ms(T_FAR, why, sizeof(why));
		none = left_ms(T_NONE, why, sizeof(why));
		cpu = left_ms(T_CPU, why, sizeof(why));
		off = left_ms(T_OFF, why, sizeof(why));
	}
	if (!why[0])
		check_proc_timers(why, sizeof(why));
	if (why[0])
		;
	else if (off != 0)
		snprintf(why, sizeof(why), "the disarmed timer has %ld ms left", off);
	else if (far <= 0 || far > 3600 * 1000L)
		snprintf(why, sizeof(why), "far has %ld ms left, not in (0, 3600 s]", far);
	else if (none <= 0 || none > 1800 * 1000L)
		snprintf(why, sizeof(why), "none has %ld ms left, not in (0, 1800 s]", none);
	else if (cpu <= 0 || cpu > 1000 * 1000L)
		snprintf(why, sizeof(why), "cpu has %ld ms left, not in (0, 1000 s]", cpu);
	else if (wrong)
		snprintf(why, sizeof(why), "%ld thread-directed ticks reached another thread",
			 (long)wrong);
	else if (fired)
		snprintf(why, sizeof(why), "%ld signals of timers that must not fire", (long)fired);
	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	snprintf(text, sizeof(text),
		 "%s pid=%d ticks=%ld hits=%ld gticks=%ld wrong=%ld fired=%ld far_ms=%ld none_ms=%ld "
		 "cpu_ms=%ld pending=%d taken=%s mono_ms=%lld boot_ms=%lld ids=%s: %s\n",
		 why[0] ? "FAIL" : "PASS", getpid(), (long)ticks, (long)hits, (long)gticks,
		 (long)wrong,
		 (long)fired, far, none, cpu, pending, taken,
		 (long long)mono.tv_sec * 1000 + mono.tv_nsec / 1000000,
		 (long long)boot.tv_sec * 1000 + boot.tv_nsec / 1000000, ids, why[0] ? why : "ok");
	wl_publish(dir, "result", text);
}

int main(int argc, char **argv)
{
	const char *dir = argc == 3 && !strcmp(argv[1], "--dir") ? argv[2] : NULL;
	char ready[256];
	struct sigaction sa;
	pthread_t th;
	int sigs[] = { SIGUSR1, SIGUSR2, SIGTERM, SIGRTMIN + 2, SIGRTMIN + 3,
		       SIGRTMIN + 4, SIGRTMIN + 5, SIGRTMIN + 6, SIGRTMIN + 7 };
	sigset_t pend;

	if (!dir) {
		fprintf(stderr, "usage: lztimers --dir DIR\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_signal;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		if (sigaction(sigs[i], &sa, NULL))
			die("sigaction %d", sigs[i]);
	/* Blocked before the worker exists, so that it inherits the mask. */
	sigemptyset(&pend);
	sigaddset(&pend, SIGRTMIN + 7);
	if (sigprocmask(SIG_BLOCK, &pend, NULL))
		die("sigprocmask");
	if ((errno = pthread_create(&th, NULL, worker, NULL)))
		die("pthread_create");
	while (!worker_tid)
		usleep(1000);
	for (int i = 0; i < NR_T; i++) {
		create(i);
		if (i == T_TICK || i == T_FAR)
			for (int k = 0; k < 3; k++)
				skip_id();
	}
	create_glibc();
	for (;;) { /* "pend" expired: its signal is queued */
		sigset_t set;

		if (sigpending(&set))
			die("sigpending");
		if (sigismember(&set, SIGRTMIN + 7))
			break;
		usleep(1000);
	}
	snprintf(ready, sizeof(ready), "pid=%d tid=%d\n", getpid(), (int)worker_tid);
	wl_publish(dir, "ready", ready);
	/* Polled, not pause(): a SIGUSR1 between the test and pause() would be lost. */
	while (!term_requested) {
		const struct timespec nap = { 0, 10 * 1000 * 1000 };

		nanosleep(&nap, NULL);
		if (check_requested) {
			check_requested = 0;
			check(dir);
		}
	}
	return 0;
}
