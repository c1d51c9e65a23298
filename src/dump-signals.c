/*
 * dump-signals.c - a dump asked to stop (see dump-signals.h).
 *
 * Why block and poll rather than catch: a handler would run in the middle
 * of whatever we do, cut a waitpid or a write short (EINTR) and leave us to
 * unwind from an arbitrary point, possibly with a syscall injected in the
 * target. Blocked, a stop signal waits until the dump reaches a point where
 * stopping is simple (between phases, between batches of memory, while
 * waiting for the freeze) and is taken there with a zero-timeout
 * sigtimedwait.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-signals.h"
#include "ptrace.h"

#define PAUSE_TICK_MS 100

static const int stop_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

/* The phases LAZARUS_TEST_PAUSE can name, in the order a dump reaches them. */
static const char *const pause_phases[] = { "seized", "inject", "memory", "images", "inventory" };

static const char *sig_name(int sig)
{
	switch (sig) {
	case SIGINT:
		return "SIGINT";
	case SIGTERM:
		return "SIGTERM";
	case SIGHUP:
		return "SIGHUP";
	case SIGQUIT:
		return "SIGQUIT";
	}
	return "a stop signal";
}

static bool disposition_is(const struct sigaction *sa, void (*h)(int))
{
	return !(sa->sa_flags & SA_SIGINFO) && sa->sa_handler == h;
}

static void read_test_hooks(struct dump_sig *s)
{
	const char *pause = getenv("LAZARUS_TEST_PAUSE");
	const char *fault = getenv("LAZARUS_FAULT_DUMP");

	if (pause && *pause) {
		for (size_t i = 0; i < sizeof(pause_phases) / sizeof(pause_phases[0]); i++)
			if (!strcmp(pause, pause_phases[i]))
				s->pause = pause_phases[i];
		if (!s->pause)
			pr_warn("LAZARUS_TEST_PAUSE=%s: no such phase, ignored", pause);
	}
	if (fault && *fault) {
		if (!strcmp(fault, "regs"))
			s->fault = TRACEE_FAULT_REGS;
		else if (!strcmp(fault, "sigmask"))
			s->fault = TRACEE_FAULT_SIGMASK;
		else
			pr_warn("LAZARUS_FAULT_DUMP=%s: no such fault, ignored", fault);
	}
}

void dsig_begin(struct dump_sig *s)
{
	struct sigaction sa;

	memset(s, 0, sizeof(*s));
	sigemptyset(&s->stop);
	/* A caller that ignores one (nohup, a background job) does not mean it as a stop. */
	for (size_t i = 0; i < sizeof(stop_signals) / sizeof(stop_signals[0]); i++)
		if (sigaction(stop_signals[i], NULL, &sa) || !disposition_is(&sa, SIG_IGN))
			sigaddset(&s->stop, stop_signals[i]);
	pthread_sigmask(SIG_BLOCK, &s->stop, &s->saved_mask);
	/* Not blocked but ignored: a SIGPIPE is then discarded as it is sent. */
	if (!sigaction(SIGPIPE, NULL, &s->saved_pipe) && disposition_is(&s->saved_pipe, SIG_DFL)) {
		struct sigaction ign = { .sa_handler = SIG_IGN };

		sigemptyset(&ign.sa_mask);
		s->pipe_ignored = !sigaction(SIGPIPE, &ign, NULL);
	}
	read_test_hooks(s);
}

void dsig_end(struct dump_sig *s)
{
	if (s->pipe_ignored)
		sigaction(SIGPIPE, &s->saved_pipe, NULL);
	s->pipe_ignored = false;
	pthread_sigmask(SIG_SETMASK, &s->saved_mask, NULL);
	/* Ours was only to stop the dump: the caller gets it too, now. */
	if (s->signo)
		raise(s->signo);
}

static void take(struct dump_sig *s, int sig, const siginfo_t *si)
{
	s->signo = sig;
	pr_info("%s from process %d: stopping the dump", sig_name(sig), (int)si->si_pid);
}

int dsig_poll(struct dump_sig *s)
{
	static const struct timespec zero;
	siginfo_t si;
	int sig;

	if (!s->signo) {
		sig = sigtimedwait(&s->stop, &si, &zero);
		if (sig > 0)
			take(s, sig, &si);
	}
	return s->signo ? -EINTR : 0;
}

void dsig_pause(struct dump_sig *s, const char *phase)
{
	static const struct timespec tick = { 0, PAUSE_TICK_MS * 1000000L };
	siginfo_t si;

	if (!s->pause || strcmp(s->pause, phase) || s->signo)
		return;
	s->pause = NULL; /* once */
	fprintf(stderr, "lazarus: test-pause: %s\n", phase);
	for (unsigned ms = 0; ms < DSIG_PAUSE_MAX_MS && !s->signo; ms += PAUSE_TICK_MS) {
		int sig = sigtimedwait(&s->stop, &si, &tick);

		if (sig > 0)
			take(s, sig, &si);
	}
}

int dsig_point(struct dump_sig *s, const char *phase)
{
	dsig_pause(s, phase);
	return dsig_poll(s);
}

int dsig_tracee_stop(void *arg)
{
	return dsig_poll(arg);
}

void dsig_report(const struct dump_sig *s, pid_t pid, int ret, int undo, bool leave_running)
{
	const char *name = sig_name(s->signo);

	if (!s->signo)
		return;
	/* A signal taken before the inventory always ends the dump with -EINTR. */
	if (ret == -EINTR && !undo)
		pr_err("interrupted by %s; process %d left running", name, pid);
	else if (ret == -EINTR)
		pr_warn("interrupted by %s", name); /* the line about the process came first */
	else if (!ret)
		pr_warn("%s arrived after the dump was complete: finished it, process %d %s", name,
			pid, leave_running ? "left running" : "killed");
	else
		pr_warn("%s arrived after the dump was complete", name); /* then finishing failed */
}
