/*
 * ptrace.c - freeze one task and run syscalls inside it without touching
 * its memory.
 *
 * Freezing: PTRACE_SEIZE + PTRACE_INTERRUPT leaves the task in an interrupt
 * stop inside get_signal(), on its way back to user mode. If it was in a
 * syscall, regs hold -ERESTART* and the kernel decides about the restart
 * when the task leaves that stop.
 *
 * Injection: point rip at a `syscall` instruction already mapped in the
 * task (the vDSO has one), load rax and the argument registers, set
 * orig_rax = -1 so the kernel applies no restart logic to our registers,
 * and step with PTRACE_SYSCALL to the entry and the exit stop. All signals
 * are blocked with PTRACE_SETSIGMASK meanwhile, so none is delivered into
 * the injected context.
 *
 * Batches (tracee_syscalls): each injected syscall costs two stops, and each
 * stop two context switches, expensive in a VM. For many syscalls at once
 * the scratch mapping holds, after the scratch page, a table of calls and a
 * page of code (made read+exec, never write+exec) that runs the table and
 * ends with int3: one PTRACE_CONT and one SIGTRAP stop for the lot. A
 * SIGTRAP forced while blocked or ignored would reset its handler to SIG_DFL
 * (force_sig_info_to_task), so the batch runs with SIGTRAP unblocked, and
 * only if the task neither ignores SIGTRAP nor has one pending (it would be
 * dequeued); else, or if the code page cannot be made executable (PR_SET_MDWE),
 * the calls run one at a time.
 *
 * Ending injection: the task sits in a syscall-exit stop, where the kernel
 * would not run the restart logic for the original registers. So we put
 * them back, interrupt again and let the task run into a fresh interrupt
 * stop: from there a detach behaves exactly as if we had never injected
 * (restarts, restart_block, signals arriving meanwhile).
 *
 * Should that fail, the task must not run on: it would execute from the
 * `syscall` instruction with our registers and every signal blocked. A
 * detach then leaves it in a group stop instead (leave_stopped).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX "ptrace: " /* used by dump and restore */
#include "log.h"
#include "proc.h"
#include "ptrace.h"

#define SYSCALL_STOP (SIGTRAP | 0x80) /* PTRACE_O_TRACESYSGOOD */
#ifndef PTRACE_O_SUSPEND_SECCOMP
#define PTRACE_O_SUSPEND_SECCOMP (1 << 21)
#endif
#define MAX_SIGNAL_STOPS 64	      /* signal-delivery stops tolerated while freezing */

/* The injected mapping: scratch page, batch table, batch code. */
#define BATCH_TABLE_OFF TRACEE_SCRATCH_SIZE
#define BATCH_CODE_OFF (TRACEE_SCRATCH_SIZE + 4096UL)
#define INJECT_MAP_SIZE (TRACEE_SCRATCH_SIZE + 2 * 4096UL)
_Static_assert(TRACEE_MAX_CALLS * sizeof(struct tracee_call) <= 4096, "the table is one page");

/*
 * The batch code: rbx = the table, r12 = the number of calls.
 *   loop: test %r12,%r12; jz done
 *         mov (%rbx),%rax; mov 8..48(%rbx),%rdi,%rsi,%rdx,%r10,%r8,%r9
 *         syscall; mov %rax,56(%rbx); add $64,%rbx; dec %r12; jmp loop
 *   done: int3
 */
static const uint8_t batch_code[] = {
	0x4d, 0x85, 0xe4, 0x74, 0x2a, 0x48, 0x8b, 0x03, 0x48, 0x8b, 0x7b, 0x08,
	0x48, 0x8b, 0x73, 0x10, 0x48, 0x8b, 0x53, 0x18, 0x4c, 0x8b, 0x53, 0x20,
	0x4c, 0x8b, 0x43, 0x28, 0x4c, 0x8b, 0x4b, 0x30, 0x0f, 0x05, 0x48, 0x89,
	0x43, 0x38, 0x48, 0x83, 0xc3, 0x40, 0x49, 0xff, 0xcc, 0xeb, 0xd1, 0xcc,
};
#define BATCH_TRAP_END sizeof(batch_code) /* rip after the int3 */

static char proc_state_of(pid_t pid)
{
	char path[64], buf[512], *s;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (proc_read_small(path, buf, sizeof(buf)) <= 0)
		return '?';
	s = strrchr(buf, ')');
	return s && s[1] == ' ' ? s[2] : '?';
}

/*
 * The first stop after PTRACE_INTERRUPT, within the freeze timeout. A task
 * in uninterruptible sleep (state D: a stuck NFS read, a vfork parent) does
 * not stop until it wakes; rather than hang, give up, also when the tracer
 * asks to stop meanwhile (t->hooks.stop). Nothing is harmed: the pending
 * interrupt goes with the ptrace link when we exit.
 */
static int wait_first_stop(struct tracee *t, int *status)
{
	uint64_t waited_us = 0, limit = (uint64_t)t->freeze_timeout_ms * 1000;

	for (;;) {
		pid_t r = waitpid(t->pid, status, __WALL | WNOHANG);
		unsigned step = waited_us < 100000 ? 100 : 5000;

		if (r == t->pid)
			return 0;
		if (r < 0 && errno != EINTR) {
			pr_perror("process %d: waitpid", t->pid);
			return -errno;
		}
		if (t->hooks.stop) {
			int stop = t->hooks.stop(t->hooks.arg);

			if (stop) {
				pr_info("process %d: no longer waiting for it to stop: asked to stop",
					t->pid);
				return stop;
			}
		}
		if (waited_us >= limit) {
			pr_err("process %d did not stop within %u ms (state %c): is it in an "
			       "uninterruptible sleep?",
			       t->pid, t->freeze_timeout_ms, proc_state_of(t->pid));
			return -ETIMEDOUT;
		}
		usleep(step);
		waited_us += step;
	}
}

static int wait_tracee(struct tracee *t, int *status)
{
	if (t->freeze_timeout_ms) {
		int ret = wait_first_stop(t, status);

		t->freeze_timeout_ms = 0; /* later stops come at once */
		if (ret)
			return ret;
		goto got;
	}
	for (;;) {
		pid_t r = waitpid(t->pid, status, __WALL);

		if (r == t->pid)
			break;
		if (r < 0 && errno == EINTR)
			continue;
		pr_perror("process %d: waitpid", t->pid);
		return -errno;
	}
got:
	if (WIFEXITED(*status) || WIFSIGNALED(*status)) {
		/* The ptrace link ends with the task. */
		t->seized = false;
		if (t->hooks.may_vanish && !t->frozen)
			return -ESRCH; /* exited before it stopped: it was never ours */
		pr_err("process %d exited while being traced (%s %d)", t->pid,
		       WIFEXITED(*status) ? "exit code" : "signal",
		       WIFEXITED(*status) ? WEXITSTATUS(*status) : WTERMSIG(*status));
		return -ESRCH;
	}
	return 0;
}

/*
 * Wait for the interrupt stop (PTRACE_EVENT_STOP with SIGTRAP). A signal
 * dequeued before the interrupt shows up first as a signal-delivery stop: let
 * the kernel deliver it (set up the handler frame, or act by default) and wait
 * again, as if we had come a moment later, so the dump holds its effect.
 */
static int wait_interrupt_stop(struct tracee *t)
{
	for (int i = 0; i < MAX_SIGNAL_STOPS; i++) {
		int status, ret, sig, event;

		ret = wait_tracee(t, &status);
		if (ret)
			return ret;
		sig = WSTOPSIG(status);
		event = status >> 16;
		if (event == PTRACE_EVENT_STOP && sig == SIGTRAP)
			return 0;
		if (event == PTRACE_EVENT_STOP && t->hooks.accept_group_stop) {
			t->group_stop_sig = sig; /* a group stop: the task stays stopped after us */
			return 0;
		}
		if (event == PTRACE_EVENT_STOP) {
			pr_err("process %d is stopped (by signal %d): stopped processes are not "
			       "supported yet",
			       t->pid, sig);
			return -EBUSY;
		}
		if (event || sig == SYSCALL_STOP) {
			pr_err("process %d: unexpected ptrace stop 0x%x while freezing", t->pid,
			       status);
			return -EIO;
		}
		pr_info("process %d: letting signal %d be delivered before the dump", t->pid, sig);
		if (ptrace(PTRACE_CONT, t->pid, NULL, (void *)(long)sig) < 0) {
			pr_perror("process %d: PTRACE_CONT", t->pid);
			return -errno;
		}
	}
	pr_err("process %d: more than %d signals arrived while freezing", t->pid,
	       MAX_SIGNAL_STOPS);
	return -EAGAIN;
}

static int get_regs(struct tracee *t, struct user_regs_struct *r)
{
	if (ptrace(PTRACE_GETREGS, t->pid, NULL, r) < 0) {
		pr_perror("process %d: PTRACE_GETREGS", t->pid);
		return -errno;
	}
	return 0;
}

static int set_regs(struct tracee *t, const struct user_regs_struct *r)
{
	if (ptrace(PTRACE_SETREGS, t->pid, NULL, r) < 0) {
		pr_perror("process %d: PTRACE_SETREGS", t->pid);
		return -errno;
	}
	return 0;
}

static int set_sigmask(struct tracee *t, uint64_t mask)
{
	if (ptrace(PTRACE_SETSIGMASK, t->pid, (void *)sizeof(mask), &mask) < 0) {
		pr_perror("process %d: PTRACE_SETSIGMASK", t->pid);
		return -errno;
	}
	return 0;
}

/* Putting back what injection changed; TRACEE_FAULT_* make it fail (tests). */
static int put_back_regs(struct tracee *t)
{
	if (t->hooks.fault & TRACEE_FAULT_REGS) {
		pr_err("process %d: PTRACE_SETREGS: %s (injected by LAZARUS_FAULT_DUMP=regs)",
		       t->pid, strerror(EIO));
		return -EIO;
	}
	return set_regs(t, &t->resume);
}

static int put_back_sigmask(struct tracee *t)
{
	if (t->hooks.fault & TRACEE_FAULT_SIGMASK) {
		pr_err("process %d: PTRACE_SETSIGMASK: %s (injected by LAZARUS_FAULT_DUMP=sigmask)",
		       t->pid, strerror(EIO));
		return -EIO;
	}
	return set_sigmask(t, t->sigmask);
}

/*
 * PTRACE_O_EXITKILL while a syscall is injected (t->hooks.exitkill_injected):
 * if the tracer dies then (SIGKILL cannot be blocked), the kernel kills the
 * task rather than let it run on from our `syscall` instruction.
 */
static int set_options(struct tracee *t, bool exitkill)
{
	long opts = PTRACE_O_TRACESYSGOOD | (exitkill ? PTRACE_O_EXITKILL : 0) |
		    (t->seccomp_suspended ? PTRACE_O_SUSPEND_SECCOMP : 0);

	if (ptrace(PTRACE_SETOPTIONS, t->pid, NULL, (void *)opts) < 0) {
		pr_perror("process %d: PTRACE_SETOPTIONS", t->pid);
		return -errno;
	}
	return 0;
}

static void report_seize_error(pid_t pid, int err)
{
	uint64_t tracer = 0;
	char *status;

	if (err == -EPERM && !proc_read(pid, "status", &status, NULL)) {
		proc_parse_status_num(status, "TracerPid", 10, &tracer);
		free(status);
	}
	if (tracer)
		pr_err("process %d: cannot trace it: it is traced by process %" PRIu64, pid,
		       tracer);
	else if (err == -ESRCH)
		pr_err("process %d: %s", pid, strerror(-err));
	else
		pr_err("process %d: cannot trace it: %s", pid, strerror(-err));
}

int tracee_seize(struct tracee *t, pid_t pid, unsigned freeze_timeout_ms)
{
	return tracee_seize_hooked(t, pid, freeze_timeout_ms, NULL);
}

int tracee_seize_hooked(struct tracee *t, pid_t pid, unsigned freeze_timeout_ms,
			const struct tracee_hooks *hooks)
{
	int ret;

	memset(t, 0, sizeof(*t));
	if (hooks)
		t->hooks = *hooks;
	t->pid = pid;
	t->freeze_timeout_ms = freeze_timeout_ms;
	/*
	 * TRACESYSGOOD only marks syscall stops (SIGTRAP|0x80) for injection.
	 * SUSPEND_SECCOMP (CAP_SYS_ADMIN, CONFIG_CHECKPOINT_RESTORE): a seccomp
	 * filter or strict mode must not deny or kill our injected syscalls;
	 * without it a task using seccomp is refused (dump.c).
	 */
	if (ptrace(PTRACE_SEIZE, pid, NULL,
		   (void *)(PTRACE_O_TRACESYSGOOD | PTRACE_O_SUSPEND_SECCOMP)) == 0)
		t->seccomp_suspended = true;
	else if ((errno == EPERM || errno == EINVAL) &&
		 ptrace(PTRACE_SEIZE, pid, NULL, (void *)PTRACE_O_TRACESYSGOOD) == 0)
		t->seccomp_suspended = false;
	else {
		ret = -errno;
		if (t->hooks.may_vanish && strchr("XZ?", proc_state_of(pid)))
			return -ESRCH; /* exiting (a zombie cannot be seized) or gone */
		report_seize_error(pid, ret);
		return ret;
	}
	t->seized = true;
	if (ptrace(PTRACE_INTERRUPT, pid, NULL, NULL) < 0) {
		ret = -errno;
		pr_perror("process %d: PTRACE_INTERRUPT", pid);
		goto out_detach;
	}
	ret = wait_interrupt_stop(t);
	if (ret)
		goto out_detach;
	ret = get_regs(t, &t->regs);
	if (ret)
		goto out_detach;
	t->resume = t->regs;
	if (ptrace(PTRACE_GETSIGMASK, pid, (void *)sizeof(t->sigmask), &t->sigmask) < 0) {
		ret = -errno;
		pr_perror("process %d: PTRACE_GETSIGMASK", pid);
		goto out_detach;
	}
	t->frozen = true;
	return 0;

out_detach:
	tracee_detach(t);
	return ret;
}

/* Queue again the signals that arrived while injection had them blocked. */
static void resend_pending(struct tracee *t)
{
	for (int sig = 1; sig <= 64; sig++) {
		if (!(t->pending_sigs & (1ULL << (sig - 1))))
			continue;
		if (syscall(SYS_tgkill, t->pid, t->pid, sig) < 0)
			pr_warn_perror("process %d: re-sending signal %d", t->pid, sig);
	}
	t->pending_sigs = 0;
}

/*
 * Registers or signal mask could not be put back after injection: running
 * on, the task would execute from our `syscall` instruction with our
 * registers. Queue a SIGSTOP, which no mask blocks, and detach: on its way
 * back to user mode the task dequeues it before executing one instruction
 * and enters a group stop, untraced (also if the detach fails: the kernel
 * detaches when we exit). Whoever finds it stopped can look and kill it; if
 * even SIGSTOP cannot be sent, kill it here rather than let it run.
 */
static int leave_stopped(struct tracee *t)
{
	bool regs = t->put_back_failed & TRACEE_FAULT_REGS;
	const char *what = regs ? "registers" : "signal mask";
	const char *harm = regs ? "on wrong registers" : "with every signal blocked";

	if (syscall(SYS_tgkill, t->pid, t->pid, SIGSTOP) < 0) {
		if (errno == ESRCH)
			return -ESRCH;
		pr_err("process %d: could not put back its %s after syscall injection, nor stop it "
		       "(%s): killed it rather than let it run %s",
		       t->pid, what, strerror(errno), harm);
		tracee_kill(t);
		return -EIO;
	}
	if (ptrace(PTRACE_DETACH, t->pid, NULL, (void *)(long)SIGSTOP) < 0 && errno != ESRCH)
		pr_warn_perror("process %d: PTRACE_DETACH", t->pid);
	t->seized = false;
	pr_err("process %d: could not put back its %s after syscall injection: left it stopped "
	       "(SIGSTOP), untraced, rather than let it run %s",
	       t->pid, what, harm);
	return -EIO;
}

int tracee_detach(struct tracee *t)
{
	int ret = 0;

	if (!t->seized)
		return 0;
	if (t->injected && !t->put_back_failed)
		ret = tracee_inject_end(t);
	if (!t->seized)
		return ret;
	resend_pending(t);
	if (t->injected)
		return leave_stopped(t);
	if (ptrace(PTRACE_DETACH, t->pid, NULL, NULL) < 0 && errno != ESRCH) {
		pr_perror("process %d: PTRACE_DETACH", t->pid);
		if (!ret)
			ret = -errno;
	}
	t->seized = false;
	return ret;
}

int tracee_kill(struct tracee *t)
{
	if (kill(t->pid, SIGKILL) < 0) {
		pr_perror("process %d: kill", t->pid);
		return -errno;
	}
	tracee_reap(t);
	return 0;
}

void tracee_reap(struct tracee *t)
{
	int status;

	/* Reap our ptrace link so the real parent sees the death at once. */
	while (t->seized) {
		pid_t r = waitpid(t->pid, &status, __WALL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || WIFEXITED(status) || WIFSIGNALED(status))
			t->seized = false;
	}
}

/* struct ptrace_peeksiginfo_args of <linux/ptrace.h> */
struct peeksiginfo_args {
	uint64_t off;	/* index of the first signal in the queue */
	uint32_t flags; /* PEEKSIGINFO_SHARED: the process-wide queue */
	int32_t nr;	/* how many at most */
};
_Static_assert(sizeof(struct peeksiginfo_args) == 16, "kernel ABI: 16 bytes");
#define PEEKSIGINFO_SHARED 1U
#define PEEK_CHUNK 32

int tracee_peek_pending(struct tracee *t, bool shared, uint8_t *buf, unsigned max, unsigned *nr)
{
	uint8_t chunk[PEEK_CHUNK * TRACEE_SIGINFO_SIZE];
	unsigned n = 0;

	for (;;) {
		struct peeksiginfo_args a = { .off = n, .flags = shared ? PEEKSIGINFO_SHARED : 0,
					      .nr = PEEK_CHUNK };
		long got = ptrace(PTRACE_PEEKSIGINFO, t->pid, &a, chunk);

		if (got < 0) {
			pr_perror("process %d: PTRACE_PEEKSIGINFO%s", t->pid,
				  shared ? " (shared queue)" : "");
			return -errno;
		}
		if (!got)
			break;
		if (got > PEEK_CHUNK || (unsigned long)got > max - n)
			return -E2BIG;
		memcpy(buf + (size_t)n * TRACEE_SIGINFO_SIZE, chunk,
		       (size_t)got * TRACEE_SIGINFO_SIZE);
		n += (unsigned)got;
	}
	*nr = n;
	return 0;
}

int tracee_read(struct tracee *t, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	char path[64];
	ssize_t n;
	int fd;

	n = process_vm_readv(t->pid, &local, 1, &remote, 1, 0);
	if (n == (ssize_t)len)
		return 0;
	/* Not readable (PROT_NONE, exec-only): /proc/PID/mem reads with FOLL_FORCE. */
	snprintf(path, sizeof(path), "/proc/%d/mem", t->pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, len, (off_t)addr);
	close(fd);
	if (n < 0)
		return -errno;
	return n == (ssize_t)len ? 0 : -EIO;
}

/* ------------------------------------------------------------ injection */

static int find_insn_in(struct tracee *t, uint64_t start, uint64_t end, uint64_t *ip)
{
	uint8_t buf[4096 + 1];

	end = start + MIN(end - start, 1UL << 20); /* a `syscall` shows up early in any code */
	for (uint64_t a = start; a < end; a += 4096) {
		size_t n = MIN(sizeof(buf), end - a);

		if (tracee_read(t, a, buf, n))
			return -EIO;
		for (size_t i = 0; i + 1 < n; i++) {
			if (buf[i] == 0x0f && buf[i + 1] == 0x05) {
				*ip = a + i;
				return 0;
			}
		}
	}
	return -ENOENT;
}

/* The [vdso] always holds a `syscall` (its fallbacks); else any code mapping. */
static int find_syscall_insn(struct tracee *t, const char *maps_text)
{
	struct proc_vmas vmas;
	int ret = -ENOENT;

	if (proc_parse_maps(maps_text, &vmas)) {
		pr_err("process %d: cannot parse /proc/%d/maps", t->pid, t->pid);
		return -EINVAL;
	}
	for (int pass = 0; pass < 2 && ret; pass++) {
		for (size_t i = 0; i < vmas.nr && ret; i++) {
			const struct proc_vma *v = &vmas.v[i];
			bool vdso = !strcmp(v->path, "[vdso]");

			if (!(v->prot & PROT_EXEC) || !strcmp(v->path, "[vsyscall]"))
				continue;
			if ((pass == 0) == vdso)
				ret = find_insn_in(t, v->start, v->end, &t->syscall_ip);
		}
	}
	proc_vmas_free(&vmas);
	if (ret)
		pr_err("process %d: no syscall instruction found in its code", t->pid);
	else
		pr_debug("process %d: injecting syscalls at %#" PRIx64, t->pid, t->syscall_ip);
	return ret;
}

/* Resume to the next syscall stop, noting signals that show up on the way. */
static int step_to_syscall_stop(struct tracee *t)
{
	for (int i = 0; i < MAX_SIGNAL_STOPS; i++) {
		int status, ret, sig;

		if (ptrace(PTRACE_SYSCALL, t->pid, NULL, NULL) < 0) {
			pr_perror("process %d: PTRACE_SYSCALL", t->pid);
			return -errno;
		}
		ret = wait_tracee(t, &status);
		if (ret)
			return ret;
		sig = WSTOPSIG(status);
		if (sig == SYSCALL_STOP && !(status >> 16))
			return 0;
		/*
		 * Only SIGKILL/SIGSTOP get past the full mask (or a group stop).
		 * Keep the signal for detach; it is not part of the dump.
		 */
		if (sig > 0 && sig <= 64 && sig != SIGTRAP)
			t->pending_sigs |= 1ULL << (sig - 1);
		pr_debug("process %d: stop 0x%x during injection, signal %d kept", t->pid, status,
			 sig);
	}
	pr_err("process %d: too many signals during syscall injection", t->pid);
	return -EAGAIN;
}

int tracee_syscall(struct tracee *t, long nr, const uint64_t args[6], int64_t *ret)
{
	struct user_regs_struct r = t->regs;
	int err;

	r.rip = t->syscall_ip;
	r.rax = (uint64_t)nr;
	r.orig_rax = (uint64_t)-1;
	r.rdi = args[0];
	r.rsi = args[1];
	r.rdx = args[2];
	r.r10 = args[3];
	r.r8 = args[4];
	r.r9 = args[5];
	err = set_regs(t, &r);
	if (!err)
		err = step_to_syscall_stop(t);
	if (!err)
		err = get_regs(t, &r);
	if (err)
		return err;
	if ((long)r.orig_rax != nr || r.rip != t->syscall_ip + 2) {
		pr_err("process %d: injected syscall %ld entered as %ld at %#llx", t->pid, nr,
		       (long)r.orig_rax, r.rip);
		return -EIO;
	}
	err = step_to_syscall_stop(t);
	if (!err)
		err = get_regs(t, &r);
	if (err)
		return err;
	*ret = (int64_t)r.rax;
	return 0;
}

int tracee_syscall_out(struct tracee *t, long nr, const uint64_t args[6], int64_t *ret,
		       void *out, size_t out_len)
{
	int err = tracee_syscall(t, nr, args, ret);

	if (err || *ret < 0)
		return err;
	err = tracee_read(t, t->scratch, out, out_len);
	if (err)
		pr_err("process %d: reading the scratch page: %s", t->pid, strerror(-err));
	return err;
}

/* ------------------------------------------------------------ batches */

/* Bit SIG of a /proc/PID/status mask line "NAME:\t<hex>"; -1 if not found. */
static int status_mask_has(const char *text, const char *name, int sig)
{
	const char *p = strstr(text, name);
	unsigned long long m;

	if (!p || sscanf(p + strlen(name), " %llx", &m) != 1)
		return -1;
	return !!(m & (1ULL << (sig - 1)));
}

/* Whether an int3 in this task can end a batch harmlessly (see the top). */
static bool sigtrap_free(struct tracee *t)
{
	char *text;
	bool ok;

	if (proc_read(t->pid, "status", &text, NULL))
		return false;
	ok = status_mask_has(text, "\nSigPnd:", SIGTRAP) == 0 &&
	     status_mask_has(text, "\nShdPnd:", SIGTRAP) == 0 &&
	     status_mask_has(text, "\nSigIgn:", SIGTRAP) == 0;
	free(text);
	return ok;
}

/* Write the batch code and make its page read+exec; t->batch says if it worked. */
static int batch_setup(struct tracee *t)
{
	uint64_t code = t->scratch + BATCH_CODE_OFF;
	uint64_t args[6] = { code, 4096, PROT_READ | PROT_EXEC };
	struct iovec local = { (void *)batch_code, sizeof(batch_code) };
	struct iovec remote = { (void *)code, sizeof(batch_code) };
	int64_t r;
	int ret;

	t->batch = -1;
	if (!t->scratch || !sigtrap_free(t))
		return 0;
	if (process_vm_writev(t->pid, &local, 1, &remote, 1, 0) != (ssize_t)sizeof(batch_code))
		return 0;
	ret = tracee_syscall(t, SYS_mprotect, args, &r);
	if (ret)
		return ret;
	if (r == 0)
		t->batch = 1;
	else
		pr_debug("process %d: no batched syscalls (mprotect: %s)", t->pid,
			 strerror((int)-r));
	return 0;
}

/* Run the table of N calls already written; from a syscall-exit or signal stop. */
static int batch_run(struct tracee *t, size_t n)
{
	struct user_regs_struct r = t->regs;
	uint64_t code = t->scratch + BATCH_CODE_OFF;
	int ret, err;

	r.rip = code;
	r.rbx = t->scratch + BATCH_TABLE_OFF;
	r.r12 = n;
	r.orig_rax = (uint64_t)-1;
	ret = set_regs(t, &r);
	if (!ret)
		ret = set_sigmask(t, ~(1ULL << (SIGTRAP - 1)));
	for (int i = 0; !ret; i++) {
		int status, sig;
		siginfo_t si;

		if (i == MAX_SIGNAL_STOPS) {
			pr_err("process %d: too many signals during syscall injection", t->pid);
			ret = -EAGAIN;
			break;
		}
		if (ptrace(PTRACE_CONT, t->pid, NULL, NULL) < 0) {
			pr_perror("process %d: PTRACE_CONT", t->pid);
			ret = -errno;
			break;
		}
		ret = wait_tracee(t, &status);
		if (ret)
			break;
		sig = WSTOPSIG(status);
		if (sig == SIGTRAP && !(status >> 16) &&
		    !ptrace(PTRACE_GETSIGINFO, t->pid, NULL, &si) && si.si_code == SI_KERNEL) {
			ret = get_regs(t, &r);
			if (!ret && r.rip == code + BATCH_TRAP_END && r.r12 == 0)
				break;
			if (!ret) {
				pr_err("process %d: injected syscalls stopped at %#llx", t->pid,
				       r.rip);
				ret = -EIO;
			}
			break;
		}
		/*
		 * As in step_to_syscall_stop: kept for detach, not part of the dump.
		 * SIGTRAP is unblocked here, so a SIGTRAP someone sent meanwhile
		 * stops us too (not ours: not SI_KERNEL at our int3): keep it as
		 * well, or PTRACE_CONT would discard it.
		 */
		if (sig > 0 && sig <= 64 && (sig != SIGTRAP || !(status >> 16)))
			t->pending_sigs |= 1ULL << (sig - 1);
		pr_debug("process %d: stop 0x%x during injection, signal %d kept", t->pid, status,
			 sig);
	}
	/* Every signal blocked again, whatever happened: the task still holds our regs. */
	err = set_sigmask(t, ~0ULL);
	return ret ? ret : err;
}

int tracee_syscalls(struct tracee *t, struct tracee_call *calls, size_t n)
{
	int ret = 0;

	if (!t->batch && n > 2)
		ret = batch_setup(t);
	while (!ret && n) {
		size_t k = MIN(n, (size_t)TRACEE_MAX_CALLS);
		struct iovec local = { calls, k * sizeof(*calls) };
		struct iovec remote = { (void *)(t->scratch + BATCH_TABLE_OFF), k * sizeof(*calls) };

		if (t->batch != 1) {
			for (size_t i = 0; !ret && i < n; i++)
				ret = tracee_syscall(t, (long)calls[i].nr, calls[i].args,
						     &calls[i].ret);
			return ret;
		}
		if (process_vm_writev(t->pid, &local, 1, &remote, 1, 0) != (ssize_t)local.iov_len) {
			pr_err("process %d: writing the injected syscall table failed", t->pid);
			return -EIO;
		}
		ret = batch_run(t, k);
		if (!ret)
			ret = tracee_read(t, (uint64_t)(uintptr_t)remote.iov_base, calls,
					  local.iov_len);
		if (ret)
			pr_err("process %d: injected syscalls: %s", t->pid, strerror(-ret));
		calls += k;
		n -= k;
	}
	return ret;
}

int tracee_inject_begin(struct tracee *t, const char *maps_text)
{
	uint64_t args[6] = { 0, INJECT_MAP_SIZE, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, (uint64_t)-1, 0 };
	int64_t addr;
	int ret;

	ret = find_syscall_insn(t, maps_text);
	if (!ret && t->hooks.exitkill_injected)
		ret = set_options(t, true);
	if (ret)
		return ret;
	t->injected = true; /* from here on regs and mask must be put back */
	ret = set_sigmask(t, ~0ULL);
	if (ret || t->no_scratch)
		return ret;
	ret = tracee_syscall(t, SYS_mmap, args, &addr);
	if (ret)
		return ret;
	if (addr < 0 && addr > -4096) {
		pr_err("process %d: injected mmap of a scratch page: %s", t->pid,
		       strerror((int)-addr));
		return (int)addr;
	}
	t->scratch = (uint64_t)addr;
	return 0;
}

/* Run from the syscall-exit stop into a new interrupt stop (see the top). */
static int back_to_interrupt_stop(struct tracee *t)
{
	struct user_regs_struct r;
	int status, ret;

	if (ptrace(PTRACE_INTERRUPT, t->pid, NULL, NULL) < 0) {
		pr_perror("process %d: PTRACE_INTERRUPT", t->pid);
		return -errno;
	}
	/* PTRACE_SYSCALL, not CONT: should the trap be missed, stop at the next syscall. */
	if (ptrace(PTRACE_SYSCALL, t->pid, NULL, NULL) < 0) {
		pr_perror("process %d: PTRACE_SYSCALL", t->pid);
		return -errno;
	}
	ret = wait_tracee(t, &status);
	if (ret)
		return ret;
	if (status >> 16 != PTRACE_EVENT_STOP) {
		pr_err("process %d: unexpected stop 0x%x after injection", t->pid, status);
		return -EIO;
	}
	ret = get_regs(t, &r);
	if (ret)
		return ret;
	if (r.rip != t->resume.rip || r.rax != t->resume.rax || r.rsp != t->resume.rsp) {
		pr_err("process %d: registers changed on the way out of injection", t->pid);
		return -EIO;
	}
	return 0;
}

int tracee_inject_end(struct tracee *t)
{
	int64_t r = 0;
	int ret = 0, err;

	if (!t->injected)
		return 0;
	if (t->scratch) {
		uint64_t args[6] = { t->scratch, INJECT_MAP_SIZE };

		t->batch = 0;
		ret = tracee_syscall(t, SYS_munmap, args, &r);
		if (!ret && r) {
			pr_err("process %d: injected munmap of the scratch page: %s", t->pid,
			       strerror((int)-r));
			ret = (int)r;
		}
		if (t->seized)
			t->scratch = 0;
	}
	if (!t->seized)
		return ret;
	err = put_back_regs(t);
	if (!err)
		err = back_to_interrupt_stop(t);
	if (err) {
		t->put_back_failed = t->seized ? TRACEE_FAULT_REGS : 0;
		return ret ? ret : err;
	}
	err = put_back_sigmask(t);
	if (err) {
		t->put_back_failed = t->seized ? TRACEE_FAULT_SIGMASK : 0;
		return ret ? ret : err;
	}
	t->injected = false;
	/* Put back: should we die now, the kernel lets it run on unharmed. */
	if (t->hooks.exitkill_injected)
		err = set_options(t, false);
	return ret ? ret : err;
}
