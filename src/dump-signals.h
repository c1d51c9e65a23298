/*
 * dump-signals.h - a dump asked to stop: signals to lazarus, and the
 * test-only hooks that place a signal or a fault at a chosen moment.
 *
 * From dsig_begin() to dsig_end() the stop signals (SIGINT, SIGTERM, SIGHUP,
 * SIGQUIT; not those the caller ignores) are blocked in the calling thread,
 * so none cuts one of our system calls short and none kills lazarus while
 * the target is frozen or has a syscall injected. The dump asks dsig_poll()
 * at safe points; a pending stop signal is taken there and makes it, and
 * every later poll, -EINTR: the dump then undoes its step, puts the target
 * back, resumes it and removes what it wrote. SIGPIPE is ignored meanwhile
 * when its disposition was the default, so a closed stderr cannot kill a
 * dump either. dsig_end() restores the caller's mask and SIGPIPE disposition
 * and raises the signal it took again, so the caller sees it as if it had
 * arrived just after the dump.
 *
 * Test hooks, read once by dsig_begin() (Documentation/testing.md):
 *  LAZARUS_TEST_PAUSE=<phase>  at that phase print "lazarus: test-pause: <phase>"
 *                              on stderr and wait (up to DSIG_PAUSE_MAX_MS)
 *                              for a stop signal;
 *  LAZARUS_FAULT_DUMP=regs|sigmask  putting back the target's registers or
 *                              signal mask after injection fails.
 */
#ifndef LZ_DUMP_SIGNALS_H
#define LZ_DUMP_SIGNALS_H

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#define DSIG_PAUSE_MAX_MS 60000 /* a test pause nobody signals ends by itself */

struct dump_sig {
	sigset_t stop;		     /* the stop signals we answer */
	sigset_t saved_mask;	     /* the caller's, put back by dsig_end */
	struct sigaction saved_pipe; /* SIGPIPE's disposition, if we changed it */
	bool pipe_ignored;	     /* we set SIGPIPE to SIG_IGN */
	int signo;		     /* the stop signal taken, 0 if none */
	const char *pause;	     /* LAZARUS_TEST_PAUSE, or NULL */
	unsigned fault;		     /* LAZARUS_FAULT_DUMP as TRACEE_FAULT_* bits */
};

void dsig_begin(struct dump_sig *s);
void dsig_end(struct dump_sig *s);

/* -EINTR (not logged) once a stop signal was taken, else 0. */
int dsig_poll(struct dump_sig *s);
/* The test pause of PHASE, if it is the one asked for: a signal taken
 * meanwhile is only noted (for the phase after the dump is complete). */
void dsig_pause(struct dump_sig *s, const char *phase);
/* dsig_pause() then dsig_poll(): a safe point of the dump. */
int dsig_point(struct dump_sig *s, const char *phase);
/* dsig_poll() for struct tracee_hooks (ARG is the struct dump_sig). */
int dsig_tracee_stop(void *arg);

/*
 * The one line about a signal, at the end of the dump: RET is the dump's
 * result, UNDO that of putting the target back after a failure.
 */
void dsig_report(const struct dump_sig *s, pid_t pid, int ret, int undo, bool leave_running);

#endif
