/*
 * ptrace.h - freezing one task with ptrace and running syscalls inside it.
 *
 * A tracee is seized and interrupted (tracee_seize), may run injected
 * syscalls between tracee_inject_begin() and tracee_inject_end(), and is
 * either resumed exactly as it was (tracee_detach) or killed (tracee_kill).
 * Injection changes no byte of the tracee's memory except a scratch mapping
 * it maps for out-parameters (and batches of syscalls) and unmaps again.
 * Functions return 0 or -errno and log their failure once, naming the pid.
 *
 * A tracee whose registers or signal mask could not be put back after
 * injection is never let run: tracee_detach() then leaves it in a group
 * stop (SIGSTOP), untraced, and says so in one loud error line.
 */
#ifndef LZ_PTRACE_H
#define LZ_PTRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/user.h>

/* Not in the 6.1 system headers (include/uapi/linux/ptrace.h of 5.13+). */
#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif

struct ptrace_rseq_config {
	uint64_t rseq_abi_pointer;
	uint32_t rseq_abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};
_Static_assert(sizeof(struct ptrace_rseq_config) == 24, "kernel ABI: 24 bytes");

#define TRACEE_SCRATCH_SIZE 4096UL
#define TRACEE_MAX_CALLS 64 /* syscalls one tracee_syscalls() batch runs at once */
#define TRACEE_SIGINFO_SIZE 128 /* siginfo_t of x86_64, as PTRACE_PEEKSIGINFO copies it */
#define TRACEE_MAX_PENDING 256	/* pending signals a dump keeps, both queues together */

/* Kernel-internal syscall restart codes (include/linux/errno.h). */
#define LZ_ERESTARTSYS 512
#define LZ_ERESTARTNOINTR 513
#define LZ_ERESTARTNOHAND 514
#define LZ_ERESTART_RESTARTBLOCK 516

/* Test-only faults (LAZARUS_FAULT_DUMP): putting back after injection fails. */
#define TRACEE_FAULT_REGS 1U	/* the PTRACE_SETREGS of the original registers */
#define TRACEE_FAULT_SIGMASK 2U /* the PTRACE_SETSIGMASK of the original mask */

/* What the tracer may ask while it waits; all optional. */
struct tracee_hooks {
	/*
	 * Polled while waiting for the first stop (the freeze): non-zero, a
	 * -errno, makes tracee_seize give up with it (not logged: the caller
	 * knows why it asked to stop).
	 */
	int (*stop)(void *arg);
	void *arg;
	unsigned fault;		/* TRACEE_FAULT_* */
	bool exitkill_injected; /* PTRACE_O_EXITKILL from tracee_inject_begin until the
				   put-back: should the tracer die meanwhile, the task
				   is killed instead of running on injected registers */
	bool may_vanish;	/* a task that exits before it is frozen is not an
				   error: -ESRCH, not logged, the caller looks again */
	bool accept_group_stop; /* a task in a group stop (state T) is frozen as it
				   is; t->group_stop_sig says by which signal */
};

struct tracee {
	pid_t pid;
	bool seized;
	bool frozen;			 /* tracee_seize succeeded */
	bool seccomp_suspended;		 /* seized with PTRACE_O_SUSPEND_SECCOMP: its
					    seccomp filters do not apply to the
					    syscalls injected into it */
	bool injected;			 /* regs/sigmask were changed: put back on detach */
	struct user_regs_struct regs;	 /* as frozen, before any fixup */
	struct user_regs_struct resume;	 /* regs to put back after injection: as
					    frozen, or moved to an rseq abort handler */
	uint64_t sigmask;		 /* blocked signals as frozen */
	uint64_t syscall_ip;		 /* address of a `syscall` instruction */
	uint64_t scratch;		 /* injected scratch page, 0 if none */
	bool no_scratch;		 /* set before tracee_inject_begin(): no out-params,
					    no scratch page (two injected syscalls fewer) */
	int batch;			 /* tracee_syscalls: 0 not tried yet, 1 its code is
					    mapped, <0 one at a time */
	uint64_t pending_sigs;		 /* signals (bit sig-1) caught while injecting */
	unsigned freeze_timeout_ms;	 /* set before tracee_seize(); 0: wait forever */
	struct tracee_hooks hooks;
	int group_stop_sig;		 /* stopped by this signal when seized (with
					    hooks.accept_group_stop), else 0 */
	unsigned put_back_failed;	 /* TRACEE_FAULT_REGS or _SIGMASK: what could not
					    be put back after injection; the task must
					    not run on (see tracee_detach) */
};

/* Seize and interrupt PID; on success it is stopped and t->regs is valid. */
int tracee_seize(struct tracee *t, pid_t pid, unsigned freeze_timeout_ms);
/* The same with HOOKS (may be NULL), kept in t->hooks for the tracee's life. */
int tracee_seize_hooked(struct tracee *t, pid_t pid, unsigned freeze_timeout_ms,
			const struct tracee_hooks *hooks);
/*
 * Put regs and sigmask back if injection changed them and let the task run
 * on. A no-op for a tracee that was never seized. If they cannot be put back
 * (now, or in an earlier tracee_inject_end), the task is left stopped by
 * SIGSTOP instead, untraced, with an error line naming it, and -EIO returned.
 */
int tracee_detach(struct tracee *t);
/* SIGKILL the frozen tracee and reap the ptrace link. */
int tracee_kill(struct tracee *t);
/*
 * Reap the ptrace link of a tracee whose thread group was killed (by one
 * kill() for the whole process, then tracee_reap() for each of its threads).
 */
void tracee_reap(struct tracee *t);

/* Read LEN bytes of tracee memory at ADDR (also from unreadable mappings). */
int tracee_read(struct tracee *t, uint64_t addr, void *buf, size_t len);

/*
 * Copy the siginfo of every signal queued for the stopped tracee, oldest
 * first: its own queue, or with SHARED the process-wide one. Up to MAX into
 * BUF (MAX * TRACEE_SIGINFO_SIZE bytes), *nr gets how many; -E2BIG (not
 * logged: the caller knows its limit) if more are queued.
 */
int tracee_peek_pending(struct tracee *t, bool shared, uint8_t *buf, unsigned max,
			unsigned *nr);

/*
 * Prepare injection: find a syscall instruction (MAPS_TEXT is the tracee's
 * /proc/PID/maps), block every signal, map the scratch page (unless
 * t->no_scratch).
 */
int tracee_inject_begin(struct tracee *t, const char *maps_text);
/*
 * Run syscall NR with up to six ARGS in the tracee; *ret gets the raw return
 * value (negative errno for a failed syscall). Returns 0 if the syscall ran.
 */
int tracee_syscall(struct tracee *t, long nr, const uint64_t args[6], int64_t *ret);
/*
 * Run NR like tracee_syscall; if it returned >= 0, copy OUT_LEN bytes from
 * the start of the scratch page into OUT (pass t->scratch as the out-param).
 */
int tracee_syscall_out(struct tracee *t, long nr, const uint64_t args[6], int64_t *ret,
		       void *out, size_t out_len);
/*
 * One syscall of a batch: nr and args in, ret out (the raw return value).
 * Laid out as the batch code in the tracee reads it.
 */
struct tracee_call {
	uint64_t nr;
	uint64_t args[6];
	int64_t ret;
};
_Static_assert(sizeof(struct tracee_call) == 64, "tracee ABI: the batch code's table");

/*
 * Run N syscalls in the tracee, in order, as N tracee_syscall() would, but
 * in one round trip where it can (see ptrace.c). Out-params point into the
 * scratch page; they do not overlap. Returns 0 if every syscall ran; each
 * call's ret says how it went.
 */
int tracee_syscalls(struct tracee *t, struct tracee_call *calls, size_t n);
/*
 * Unmap the scratch page and return the task, with t->resume as its regs and
 * its own signal mask, to an interrupt stop, from where the kernel applies
 * its usual syscall-restart logic when the task runs on. If the regs or the
 * mask cannot be put back, t->put_back_failed says which and t->injected stays:
 * the task must then be killed or detached (which leaves it stopped).
 */
int tracee_inject_end(struct tracee *t);

#endif
