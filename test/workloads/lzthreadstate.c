/*
 * lzthreadstate.c - threads whose kernel state differs from each other's:
 * what a restore must give back per thread, not per process.
 *
 *   lzthreadstate --dir DIR
 *
 * The main thread (run as root) starts three workers, each of which changes
 * only its own state with raw syscalls (glibc's wrappers would change every
 * thread) and then counts in 5 ms sleeps:
 *   1 "w-nobody"  setresuid(65534, 65534, 65534), nice 5
 *   2 "w-batch"   setresgid(100, 100, 100), SCHED_BATCH
 *   3 "w-cpu0"    CPU affinity {0}, timer slack 200 us
 * DIR/ready: "pid=P tids=T0,T1,T2,T3" (tmp + rename), once every worker
 * has its state. SIGUSR1 (taken by the main thread only): every worker's
 * counter must have moved since the previous check, and each still reads
 * back its own ids, nice, policy, affinity and slack; DIR/result:
 * "PASS seq=S pid=P ctr=C1,C2,C3" or "FAIL seq=S pid=P: reasons".
 * SIGTERM exits 0.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzthreadstate"
#include "wl.h"

#define NR_WORKERS 3

struct worker {
	int idx;
	pthread_t pt;
	atomic_int tid;
	atomic_int ready;
	atomic_ulong ctr;
	unsigned long ctr_at_check;
	atomic_uint ask, answered; /* check generation asked / answered */
	char why[160];		   /* its reasons for the last check, "" if none */
};

static struct worker w[NR_WORKERS + 1];
static const char *dir;

static int own_state_ok(int idx, char *why, size_t len)
{
	uid_t r, e, s;
	gid_t gr, ge, gs;
	cpu_set_t set;

	if (syscall(SYS_getresuid, &r, &e, &s) || syscall(SYS_getresgid, &gr, &ge, &gs))
		return snprintf(why, len, "getres*id: %s", strerror(errno)), 0;
	switch (idx) {
	case 1:
		if (r != 65534 || e != 65534 || s != 65534 || gr != 0)
			return snprintf(why, len, "ids %u/%u/%u gid %u", r, e, s, gr), 0;
		errno = 0;
		if (getpriority(PRIO_PROCESS, 0) != 5)
			return snprintf(why, len, "nice %d", getpriority(PRIO_PROCESS, 0)), 0;
		break;
	case 2:
		if (r != 0 || gr != 100 || ge != 100 || gs != 100)
			return snprintf(why, len, "uid %u gids %u/%u/%u", r, gr, ge, gs), 0;
		if (sched_getscheduler(0) != SCHED_BATCH)
			return snprintf(why, len, "policy %d", sched_getscheduler(0)), 0;
		break;
	case 3:
		if (r != 0 || gr != 0)
			return snprintf(why, len, "uid %u gid %u", r, gr), 0;
		if (sched_getaffinity(0, sizeof(set), &set) || CPU_COUNT(&set) != 1 ||
		    !CPU_ISSET(0, &set))
			return snprintf(why, len, "affinity of %d CPUs", CPU_COUNT(&set)), 0;
		if (prctl(PR_GET_TIMERSLACK) != 200000)
			return snprintf(why, len, "timer slack %d", prctl(PR_GET_TIMERSLACK)), 0;
		break;
	}
	return 1;
}

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	const struct timespec ms5 = { 0, 5000000 };
	struct sched_param sp = { 0 };
	cpu_set_t set;

	me->tid = (int)gettid();
	switch (me->idx) {
	case 1:
		prctl(PR_SET_NAME, "w-nobody");
		if (setpriority(PRIO_PROCESS, 0, 5) || syscall(SYS_setresuid, 65534, 65534, 65534))
			die("worker 1 set-up");
		break;
	case 2:
		prctl(PR_SET_NAME, "w-batch");
		if (syscall(SYS_setresgid, 100, 100, 100) || sched_setscheduler(0, SCHED_BATCH, &sp))
			die("worker 2 set-up");
		break;
	case 3:
		prctl(PR_SET_NAME, "w-cpu0");
		CPU_ZERO(&set);
		CPU_SET(0, &set);
		if (sched_setaffinity(0, sizeof(set), &set) || prctl(PR_SET_TIMERSLACK, 200000UL))
			die("worker 3 set-up");
		break;
	}
	me->ready = 1;
	for (;;) {
		unsigned ask = me->ask;

		me->ctr++;
		if (ask != me->answered) {
			me->why[0] = '\0';
			own_state_ok(me->idx, me->why, sizeof(me->why));
			me->answered = ask;
		}
		nanosleep(&ms5, NULL);
	}
	return NULL;
}

/* Each worker reads its own state back (asked through w[i].ask), then its counter and comm. */
static void check(unsigned seq)
{
	char why[1024] = "", text[1200];
	size_t n = 0;

	for (int i = 1; i <= NR_WORKERS; i++)
		w[i].ask = seq;
	for (int i = 1, ms = 0; i <= NR_WORKERS; i++) {
		while (w[i].answered != seq && ms++ < 10000)
			usleep(1000);
		if (w[i].answered != seq)
			n += (size_t)snprintf(why + n, sizeof(why) - n, " worker %d: no answer;", i);
		else if (w[i].why[0])
			n += (size_t)snprintf(why + n, sizeof(why) - n, " worker %d: %s;", i, w[i].why);
	}

	for (int i = 1; i <= NR_WORKERS; i++) {
		unsigned long c = w[i].ctr;

		if (c <= w[i].ctr_at_check)
			n += (size_t)snprintf(why + n, sizeof(why) - n, " worker %d stuck at %lu;", i, c);
		w[i].ctr_at_check = c;
	}
	/* Each worker's own state, read by the main thread from /proc (the worker is busy). */
	for (int i = 1; i <= NR_WORKERS && n < sizeof(why) - 1; i++) {
		char path[64], buf[64];
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%d/comm", (int)w[i].tid);
		f = fopen(path, "r");
		if (!f || !fgets(buf, sizeof(buf), f))
			n += (size_t)snprintf(why + n, sizeof(why) - n, " worker %d: no comm;", i);
		else if (strcmp(buf, i == 1 ? "w-nobody\n" : i == 2 ? "w-batch\n" : "w-cpu0\n"))
			n += (size_t)snprintf(why + n, sizeof(why) - n, " worker %d: comm %s;", i, buf);
		if (f)
			fclose(f);
	}
	if (n)
		snprintf(text, sizeof(text), "FAIL seq=%u pid=%d:%s\n", seq, (int)getpid(), why);
	else
		snprintf(text, sizeof(text), "PASS seq=%u pid=%d ctr=%lu,%lu,%lu\n", seq,
			 (int)getpid(), w[1].ctr_at_check, w[2].ctr_at_check, w[3].ctr_at_check);
	wl_publish(dir, "result", text);
}

int main(int argc, char **argv)
{
	char text[256];
	sigset_t set;
	unsigned seq = 0;
	int sig;

	if (argc != 3 || strcmp(argv[1], "--dir"))
		die("usage: lzthreadstate --dir DIR");
	dir = argv[2];
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* the workers inherit it: main takes them */
	for (int i = 1; i <= NR_WORKERS; i++) {
		w[i].idx = i;
		if (pthread_create(&w[i].pt, NULL, worker_main, &w[i]))
			die("pthread_create");
	}
	for (int i = 1; i <= NR_WORKERS; i++)
		while (!w[i].ready)
			usleep(1000);
	snprintf(text, sizeof(text), "pid=%d tids=%d,%d,%d,%d", (int)getpid(), (int)getpid(),
		 (int)w[1].tid, (int)w[2].tid, (int)w[3].tid);
	wl_publish(dir, "ready", text);
	for (;;) {
		if (sigwait(&set, &sig))
			continue;
		if (sig == SIGTERM)
			return 0;
		check(++seq);
	}
}
