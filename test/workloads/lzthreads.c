/*
 * lzthreads.c - a process of 8 threads, each of which can check its own
 * state after a checkpoint and restore.
 *
 *   lzthreads --dir DIR
 *
 * The main thread (index 0) takes the checks; workers 1..7 each own 256 KiB
 * of memory filled with a pattern of their own, a counter, a sigaltstack of
 * their own (its own address and size) and a signal mask of their own
 * (SIGRTMIN+10+i blocked besides what all workers block), and wait in a
 * different way:
 *   1 spin       increments its counter in a tight loop
 *   2 futex      FUTEX_WAIT without a timeout, woken by the main thread
 *   3 nanosleep  10 ms sleeps
 *   4 poll       poll() of no fd with a 10 ms timeout
 *   5 sigwait    sigwaitinfo() of SIGRTMIN+3, sent (with data) by the main thread
 *   6 pending    10 ms sleeps, holding a thread-directed SIGRTMIN+4 with value
 *                PENDING_VALUE queued and blocked (sent to it at set-up)
 *   7 futex-to   FUTEX_WAIT with a 5 ms timeout
 * Every worker also checks that glibc's rseq registration is live (cpu_id set).
 *
 * DIR/ready: "pid=P tids=T0,..,T7 alt=A0:S0,..,A7:S7" (tmp + rename).
 * SIGUSR1 (taken by the main thread only) asks every thread to check
 * itself: the main thread raises the check generation, wakes the futex
 * waiter and sends the sigwait thread its signal, and waits (bounded) for
 * every worker to answer; each verifies its tid, memory, counter progress,
 * altstack, mask, rseq and (worker 6) that its signal is still pending with
 * its value (taken with sigtimedwait and queued to itself again). Then
 * DIR/result: "PASS seq=S pid=P ctr=C0,..,C7" or "FAIL seq=S pid=P ...: reasons".
 * SIGTERM exits 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <linux/futex.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzthreads"
#include "wl.h"

#define NR_THREADS 8
#define MEM_SIZE (256UL << 10)
#define ALT_BASE_SIZE (64UL << 10)
#define PENDING_VALUE 0x6666
#define SIGWAIT_VALUE 0x5555
#define CHECK_WAIT_MS 30000

enum role { R_MAIN, R_SPIN, R_FUTEX, R_NANOSLEEP, R_POLL, R_SIGWAIT, R_PENDING, R_FUTEX_TO };

struct thread {
	int idx;
	pthread_t pt;
	atomic_int tid;
	uint64_t *mem;			/* MEM_SIZE, pattern of its own */
	void *alt;			/* its sigaltstack */
	size_t alt_size;
	sigset_t mask;			/* its blocked set, as set up */
	atomic_uint_fast64_t ctr;
	atomic_uint_fast64_t ctr_at_check; /* counter when the previous check ran */
	atomic_uint answered;		/* the check generation it answered */
	char fail[512];			/* its reasons, empty if none */
};

static struct thread th[NR_THREADS];
static atomic_uint check_gen;	/* raised by the main thread for each check */
static atomic_uint futex_word;
static atomic_uint idle_word;	/* never changes: worker 7 only times out on it */
extern const unsigned int __rseq_size __attribute__((weak));
extern const ptrdiff_t __rseq_offset __attribute__((weak));

static uint64_t pattern(int idx, uint64_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)idx << 56);

	x ^= x >> 29;
	return x | 1;
}

static pid_t gettid_(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void addf(struct thread *t, const char *fmt, ...)
{
	size_t n = strlen(t->fail);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->fail + n, sizeof(t->fail) - n, fmt, ap);
	va_end(ap);
}

static int rseq_live(void)
{
	int32_t cpu_id;

	if (!&__rseq_size || !__rseq_size)
		return -1; /* glibc without rseq: nothing to check */
	cpu_id = *(volatile int32_t *)((char *)__builtin_thread_pointer() + __rseq_offset + 4);
	return cpu_id >= 0;
}

/* Worker 6's signal: pending with its value; taken and queued to itself again. */
static void check_pending(struct thread *t)
{
	struct timespec zero = { 0, 0 };
	sigset_t one;
	siginfo_t si;

	sigemptyset(&one);
	sigaddset(&one, SIGRTMIN + 4);
	if (sigtimedwait(&one, &si, &zero) != SIGRTMIN + 4) {
		addf(t, "its pending SIGRTMIN+4 is gone; ");
		return;
	}
	if (si.si_code != SI_QUEUE || si.si_value.sival_int != PENDING_VALUE)
		addf(t, "pending signal code %d value %#x; ", si.si_code, si.si_value.sival_int);
	si.si_code = SI_QUEUE;
	si.si_value.sival_int = PENDING_VALUE;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), gettid_(), SIGRTMIN + 4, &si))
		addf(t, "re-queueing its signal: %s; ", strerror(errno));
}

static void self_check(struct thread *t, unsigned gen)
{
	uint64_t now = atomic_load(&t->ctr);
	stack_t ss;
	sigset_t cur;

	t->fail[0] = '\0';
	if (gettid_() != atomic_load(&t->tid))
		addf(t, "tid %d, was %d; ", gettid_(), atomic_load(&t->tid));
	for (uint64_t i = 0; i < MEM_SIZE / 8; i++) {
		if (t->mem[i] != pattern(t->idx, i)) {
			addf(t, "memory word %" PRIu64 " wrong; ", i);
			break;
		}
	}
	if (now <= atomic_load(&t->ctr_at_check) && t->idx != R_SIGWAIT && t->idx != R_FUTEX)
		addf(t, "counter stuck at %" PRIu64 "; ", now);
	atomic_store(&t->ctr_at_check, now);
	if (sigaltstack(NULL, &ss) || ss.ss_sp != t->alt || ss.ss_size != t->alt_size ||
	    ss.ss_flags)
		addf(t, "altstack %p:%zu flags %d, want %p:%zu; ", ss.ss_sp, ss.ss_size,
		     ss.ss_flags, t->alt, t->alt_size);
	pthread_sigmask(SIG_BLOCK, NULL, &cur);
	for (int s = 1; s < SIGRTMAX; s++)
		if (sigismember(&cur, s) != sigismember(&t->mask, s))
			addf(t, "signal %d %sblocked; ", s, sigismember(&cur, s) ? "" : "not ");
	if (rseq_live() == 0)
		addf(t, "rseq not registered; ");
	if (t->idx == R_PENDING)
		check_pending(t);
	atomic_store(&t->answered, gen);
}

static void maybe_check(struct thread *t)
{
	unsigned gen = atomic_load(&check_gen);

	if (gen != atomic_load(&t->answered))
		self_check(t, gen);
}

static void wait_one(struct thread *t)
{
	struct timespec ten_ms = { 0, 10000000 }, five_ms = { 0, 5000000 };
	sigset_t one;
	siginfo_t si;
	unsigned w;

	switch (t->idx) {
	case R_SPIN:
		for (int i = 0; i < 1000000; i++)
			__asm__ volatile("" ::: "memory");
		break;
	case R_FUTEX:
		w = atomic_load(&futex_word);
		if (w == atomic_load(&check_gen))
			syscall(SYS_futex, &futex_word, FUTEX_WAIT_PRIVATE, w, NULL, NULL, 0);
		break;
	case R_NANOSLEEP:
	case R_PENDING:
		nanosleep(&ten_ms, NULL);
		break;
	case R_POLL:
		poll(NULL, 0, 10);
		break;
	case R_SIGWAIT:
		sigemptyset(&one);
		sigaddset(&one, SIGRTMIN + 3);
		if (sigwaitinfo(&one, &si) == SIGRTMIN + 3 &&
		    (si.si_code != SI_QUEUE || si.si_value.sival_int != SIGWAIT_VALUE))
			addf(t, "sigwaitinfo got code %d value %#x; ", si.si_code,
			     si.si_value.sival_int);
		break;
	case R_FUTEX_TO:
		syscall(SYS_futex, &idle_word, FUTEX_WAIT_PRIVATE, 0, &five_ms, NULL, 0);
		break;
	}
}

static void *worker(void *arg)
{
	struct thread *t = arg;
	stack_t ss = { .ss_sp = t->alt, .ss_size = t->alt_size };

	if (sigaltstack(&ss, NULL))
		die("sigaltstack");
	pthread_sigmask(SIG_SETMASK, &t->mask, NULL);
	atomic_store(&t->tid, gettid_());
	for (;;) {
		maybe_check(t);
		wait_one(t);
		atomic_fetch_add(&t->ctr, 1);
	}
	return NULL;
}

static void setup_thread(struct thread *t, int idx)
{
	t->idx = idx;
	t->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	t->alt_size = ALT_BASE_SIZE + (size_t)idx * 4096;
	t->alt = mmap(NULL, t->alt_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		      0);
	if (t->mem == MAP_FAILED || t->alt == MAP_FAILED)
		die("mmap");
	for (uint64_t i = 0; i < MEM_SIZE / 8; i++)
		t->mem[i] = pattern(idx, i);
	/* Workers: SIGUSR1 and SIGTERM go to the main thread; each its own RT signal. */
	sigemptyset(&t->mask);
	sigaddset(&t->mask, SIGUSR1);
	sigaddset(&t->mask, SIGTERM);
	sigaddset(&t->mask, SIGRTMIN + 3);
	sigaddset(&t->mask, SIGRTMIN + 4);
	sigaddset(&t->mask, SIGRTMIN + 10 + idx);
}

static void start_workers(void)
{
	for (int i = 1; i < NR_THREADS; i++) {
		setup_thread(&th[i], i);
		errno = pthread_create(&th[i].pt, NULL, worker, &th[i]);
		if (errno)
			die("pthread_create");
	}
	for (int i = 1; i < NR_THREADS; i++)
		while (!atomic_load(&th[i].tid))
			usleep(1000);
}

/* The thread-directed signal worker 6 holds pending. */
static void queue_pending(void)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	si.si_signo = SIGRTMIN + 4;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = PENDING_VALUE;
	if (syscall(SYS_rt_tgsigqueueinfo, getpid(), atomic_load(&th[R_PENDING].tid),
		    SIGRTMIN + 4, &si))
		die("rt_tgsigqueueinfo");
}

static void write_ready(const char *dir)
{
	char text[2048];
	int n;

	n = snprintf(text, sizeof(text), "pid=%d tids=", getpid());
	for (int i = 0; i < NR_THREADS; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s%d", i ? "," : "",
			      atomic_load(&th[i].tid));
	n += snprintf(text + n, sizeof(text) - (size_t)n, " alt=");
	for (int i = 0; i < NR_THREADS; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s%#lx:%zu", i ? "," : "",
			      (unsigned long)th[i].alt, th[i].alt_size);
	snprintf(text + n, sizeof(text) - (size_t)n, "\n");
	wl_publish(dir, "ready", text);
}

/* Ask every worker to check itself and wait for the answers. */
static void run_check(const char *dir, uint64_t seq)
{
	char text[8192], fails[6000] = "";
	unsigned gen = atomic_fetch_add(&check_gen, 1) + 1;
	siginfo_t si;
	int n;

	self_check(&th[0], gen);
	atomic_store(&futex_word, gen);
	syscall(SYS_futex, &futex_word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	memset(&si, 0, sizeof(si));
	si.si_signo = SIGRTMIN + 3;
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	si.si_uid = getuid();
	si.si_value.sival_int = SIGWAIT_VALUE;
	syscall(SYS_rt_tgsigqueueinfo, getpid(), atomic_load(&th[R_SIGWAIT].tid), SIGRTMIN + 3,
		&si);
	for (int i = 0; i < NR_THREADS; i++) {
		for (int ms = 0; atomic_load(&th[i].answered) != gen && ms < CHECK_WAIT_MS; ms++)
			usleep(1000);
		if (atomic_load(&th[i].answered) != gen)
			snprintf(fails + strlen(fails), sizeof(fails) - strlen(fails),
				 "thread %d did not answer; ", i);
		else if (th[i].fail[0])
			snprintf(fails + strlen(fails), sizeof(fails) - strlen(fails),
				 "thread %d (tid %d): %s", i, atomic_load(&th[i].tid), th[i].fail);
	}
	n = snprintf(text, sizeof(text), "%s seq=%" PRIu64 " pid=%d ctr=", fails[0] ? "FAIL" : "PASS",
		     seq, getpid());
	for (int i = 0; i < NR_THREADS; i++)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s%" PRIu64, i ? "," : "",
			      (uint64_t)atomic_load(&th[i].ctr));
	snprintf(text + n, sizeof(text) - (size_t)n, "%s%s\n", fails[0] ? ": " : "", fails);
	wl_publish(dir, "result", text);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { 0 };
	struct timespec ms = { 0, 1000000 };
	const char *dir = NULL;
	uint64_t seq = 0;

	for (int i = 1; i + 1 < argc; i += 2)
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
	if (!dir) {
		fprintf(stderr, "usage: lzthreads --dir DIR\n");
		return 2;
	}
	sa.sa_handler = wl_on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = wl_on_term;
	sigaction(SIGTERM, &sa, NULL);
	setup_thread(&th[0], 0);
	/* The main thread blocks the workers' RT signals; it takes SIGUSR1 and SIGTERM. */
	sigdelset(&th[0].mask, SIGUSR1);
	sigdelset(&th[0].mask, SIGTERM);
	pthread_sigmask(SIG_SETMASK, &th[0].mask, NULL);
	{
		stack_t ss = { .ss_sp = th[0].alt, .ss_size = th[0].alt_size };

		if (sigaltstack(&ss, NULL))
			die("sigaltstack");
	}
	atomic_store(&th[0].tid, gettid_());
	start_workers();
	queue_pending();
	write_ready(dir);
	while (!term_requested) {
		if (check_requested) {
			check_requested = 0;
			run_check(dir, ++seq);
		}
		nanosleep(&ms, NULL);
		atomic_fetch_add(&th[0].ctr, 1);
	}
	return 0;
}
