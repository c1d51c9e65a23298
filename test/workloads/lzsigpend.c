/*
 * lzsigpend.c - a process with signals pending, blocked, in both queues.
 *
 *   lzsigpend --dir DIR [--extra N]
 *
 * Blocks SIGUSR2, SIGRTMIN+1 and SIGRTMIN+2 and queues to itself, in this
 * order: SIGUSR2 by raise() (its thread's queue, SI_TKILL), SIGRTMIN+2 with
 * value 201 by pthread_sigqueue() (thread queue, SI_QUEUE), SIGRTMIN+1 with
 * values 101, 102, 103 by sigqueue() (process queue, SI_QUEUE), then N more
 * SIGRTMIN+1 with values 1000, 1001, ... Then DIR/ready says "pid=P" and it
 * waits. On SIGUSR1 it takes every pending signal of the blocked set with
 * sigtimedwait() and writes DIR/result:
 *   "DONE pid=P n=K got=SIG:CODE:VALUE:SENDER,..."
 * in the order the kernel handed them out (thread queue first, lowest
 * signal first, queued order within one signal). SIGTERM exits 0.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzsigpend"
#include "wl.h"

static volatile sig_atomic_t check_requested, term_requested;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		check_requested = 1;
	else
		term_requested = 1;
}

static void blocked_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGUSR2);
	sigaddset(set, SIGRTMIN + 1);
	sigaddset(set, SIGRTMIN + 2);
}

static void queue_all(long extra)
{
	union sigval v;

	if (raise(SIGUSR2))
		die("raise(SIGUSR2)");
	v.sival_int = 201;
	errno = pthread_sigqueue(pthread_self(), SIGRTMIN + 2, v);
	if (errno)
		die("pthread_sigqueue");
	for (int i = 0; i < 3; i++) {
		v.sival_int = 101 + i;
		if (sigqueue(getpid(), SIGRTMIN + 1, v))
			die("sigqueue");
	}
	for (long i = 0; i < extra; i++) {
		v.sival_int = (int)(1000 + i);
		if (sigqueue(getpid(), SIGRTMIN + 1, v))
			die("sigqueue #%ld", i);
	}
}

static void take_all(const char *dir)
{
	static char list[1 << 16], text[(1 << 16) + 64];
	const struct timespec zero = { 0, 0 };
	size_t off = 0;
	sigset_t set;
	int n = 0;

	blocked_set(&set);
	list[0] = '\0';
	for (;;) {
		siginfo_t si;
		int sig = sigtimedwait(&set, &si, &zero);

		if (sig < 0 && errno == EINTR)
			continue;
		if (sig < 0 && errno == EAGAIN)
			break;
		if (sig < 0)
			die("sigtimedwait");
		if (off + 64 < sizeof(list))
			off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%d:%d:%d:%d",
						n ? "," : "", sig, si.si_code,
						si.si_code == SI_QUEUE ? si.si_value.sival_int : 0,
						(int)si.si_pid);
		n++;
	}
	snprintf(text, sizeof(text), "DONE pid=%d n=%d got=%s\n", getpid(), n, list);
	wl_publish(dir, "result", text);
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	long extra = 0;
	struct sigaction sa;
	sigset_t set;
	char ready[64];

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--extra"))
			extra = strtol(argv[i + 1], NULL, 10);
	}
	if (!dir) {
		fprintf(stderr, "usage: lzsigpend --dir DIR [--extra N]\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
		die("sigaction");
	blocked_set(&set);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die("sigprocmask");
	queue_all(extra);
	snprintf(ready, sizeof(ready), "pid=%d\n", getpid());
	wl_publish(dir, "ready", ready);
	/* Polled, not pause(): a SIGUSR1 between the test and pause() would be lost. */
	while (!term_requested) {
		const struct timespec nap = { 0, 10 * 1000 * 1000 };

		nanosleep(&nap, NULL);
		if (check_requested) {
			check_requested = 0;
			take_all(dir);
		}
	}
	return 0;
}
