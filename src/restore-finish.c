/*
 * restore-finish.c - take the restorer out of the restored process, from
 * the lazarus parent, once every thread of it has left it.
 *
 * The blob cannot unmap the code that issues rt_sigreturn nor the signal
 * frames rt_sigreturn reads: without help the process would keep an extra
 * executable VMA the original never had, and a second dump would carry it
 * along. As CRIU does from its main process, we do it from outside:
 *
 *   1. After "OK" the leader blocks reading its go pipe and every other
 *      thread waits for the leader's word (a futex in the area). We seize
 *      every thread and interrupt it (an interrupt stop wherever it is),
 *      with PTRACE_O_EXITKILL: should lazarus die from here on, the process
 *      dies too instead of running on half-finished.
 *   2. One byte on the go pipe, then PTRACE_SYSCALL from stop to stop, one
 *      thread after the other, the leader first (it lets the others go
 *      before its own rt_sigreturn). Only the blob's last syscalls are
 *      traced (the read, closing the pipe, the futex calls, rt_sigreturn):
 *      not the hundreds of the restore before "OK".
 *   3. At the syscall-exit stop of the rt_sigreturn issued from the area,
 *      a thread holds the target's registers, signal mask and FPU state and
 *      has not run one instruction of the target's; it stays stopped there.
 *      rt_sigreturn set orig_ax to -1: no syscall-restart logic applies to
 *      these registers (the dump already rewound an interrupted syscall).
 *      We check them against the thread's core image.
 *   4. Once every thread is there, none is inside the area: inject munmap
 *      of the whole area into the leader (ptrace.c: at a `syscall` of the
 *      [vdso], never one inside the area; every signal blocked meanwhile;
 *      registers and mask put back through a fresh interrupt stop, so a
 *      detach is as if we had never been there), check registers and masks
 *      once more, PTRACE_DETACH every thread. Signals that arrived
 *      meanwhile stay pending and are delivered by the kernel under the
 *      targets' own masks.
 *
 * Any failure kills the process through the ptrace link, and every thread
 * is reaped from it. ptrace.c logs its own failures; the others are logged
 * here, once.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "log.h"
#include "proc.h"
#include "ptrace.h"
#include "restore-finish.h"

#define SYSCALL_STOP (SIGTRAP | 0x80) /* PTRACE_O_TRACESYSGOOD */
#ifndef PTRACE_O_SUSPEND_SECCOMP
#define PTRACE_O_SUSPEND_SECCOMP (1 << 21)
#endif
#define MAX_STOPS 32		      /* per thread: the blob makes ~4 syscalls after "OK" */
/* eflags bits rt_sigreturn takes from the frame (the kernel's FIX_EFLAGS). */
#define SIGRETURN_EFLAGS 0x50dd5ULL
#define UNBLOCKABLE ((1ULL << (SIGKILL - 1)) | (1ULL << (SIGSTOP - 1)))

struct thread {
	struct tracee t;
	const CoreEntry *core;
	pid_t tid;	  /* as seen here (the dumped one unless in a child pid namespace) */
	unsigned nr_stops;
	char who[48]; /* "process PID" or "process PID thread TID" */
};

struct finish {
	struct rst_finish *in;
	struct thread *th; /* [in->nr_threads], the leader first */
};

static int thread_seize(struct thread *th)
{
	pid_t tid = th->tid;
	int ret = tracee_seize(&th->t, tid, 0);

	if (ret)
		return ret;
	/* SUSPEND_SECCOMP kept: the threads install their filters now (blob/seccomp.c). */
	if (ptrace(PTRACE_SETOPTIONS, tid, NULL,
		   (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL |
				  (th->t.seccomp_suspended ? PTRACE_O_SUSPEND_SECCOMP : 0))) < 0) {
		pr_perror("%s: PTRACE_SETOPTIONS", th->who);
		return -errno;
	}
	return 0;
}

/* Every thread, before any may leave the blob. */
static int finish_seize(struct finish *f)
{
	for (size_t i = 0; i < f->in->nr_threads; i++) {
		int ret = thread_seize(&f->th[i]);

		if (ret)
			return ret;
	}
	return 0;
}

static int finish_release(struct finish *f)
{
	while (write(f->in->go_wr, "f", 1) < 0) {
		if (errno == EINTR)
			continue;
		pr_perror("process %d: writing its go pipe", f->in->pid);
		return -errno;
	}
	return 0;
}

/* Resume to the next stop; the thread dying on the way is a failure. */
static int next_stop(struct finish *f, struct thread *th, int *status)
{
	pid_t tid = th->t.pid;

	if (ptrace(PTRACE_SYSCALL, tid, NULL, NULL) < 0) {
		pr_perror("%s: PTRACE_SYSCALL", th->who);
		return -errno;
	}
	while (waitpid(tid, status, __WALL) != tid) {
		if (errno == EINTR)
			continue;
		pr_perror("%s: waitpid", th->who);
		return -errno;
	}
	th->nr_stops++;
	f->in->nr_stops++;
	if (WIFEXITED(*status) || WIFSIGNALED(*status)) {
		th->t.seized = false; /* the ptrace link ended with it */
		pr_err("%s %s %d before it left the restorer", th->who,
		       WIFEXITED(*status) ? "exited with code" : "was killed by signal",
		       WIFEXITED(*status) ? WEXITSTATUS(*status) : WTERMSIG(*status));
		return -ESRCH;
	}
	return 0;
}

/*
 * A stop that is not a syscall stop. The blob blocks every signal, so only
 * SIGSTOP gets here by being sent: it is kept for the target (ptrace.c
 * sends it again before the detach). Anything else is the blob faulting.
 */
static int other_stop(struct thread *th, int status)
{
	int sig = WSTOPSIG(status);

	if (!(status >> 16) && sig == SIGSTOP) {
		th->t.pending_sigs |= 1ULL << (SIGSTOP - 1);
		return 0;
	}
	if (status >> 16)
		pr_err("%s: unexpected ptrace stop %#x in the restorer", th->who, status);
	else
		pr_err("%s: signal %d (%s) in the restorer", th->who, sig, strsignal(sig));
	return -EIO;
}

static bool in_area(const struct rst_finish *in, uint64_t addr)
{
	return addr >= in->area && addr - in->area < in->area_len;
}

/* Follow a thread from stop to stop until its rt_sigreturn has returned. */
static int run_to_sigreturn(struct finish *f, struct thread *th)
{
	struct __ptrace_syscall_info si;
	pid_t tid = th->t.pid;
	bool sigreturn = false;
	int status, ret;

	while (th->nr_stops < MAX_STOPS) {
		ret = next_stop(f, th, &status);
		if (ret)
			return ret;
		if (WSTOPSIG(status) != SYSCALL_STOP || (status >> 16)) {
			ret = other_stop(th, status);
			if (ret)
				return ret;
			continue;
		}
		if (ptrace(PTRACE_GET_SYSCALL_INFO, tid, (void *)sizeof(si), &si) <= 0) {
			pr_perror("%s: PTRACE_GET_SYSCALL_INFO", th->who);
			return errno ? -errno : -EIO;
		}
		if (si.op == PTRACE_SYSCALL_INFO_EXIT && sigreturn)
			return 0;
		if (si.op != PTRACE_SYSCALL_INFO_ENTRY)
			continue;
		sigreturn = si.entry.nr == SYS_rt_sigreturn;
		if (sigreturn && !in_area(f->in, si.instruction_pointer)) {
			pr_err("%s: rt_sigreturn at %#" PRIx64 ", outside the restorer", th->who,
			       (uint64_t)si.instruction_pointer);
			return -EIO;
		}
	}
	pr_err("%s: no rt_sigreturn from the restorer in %d ptrace stops", th->who, MAX_STOPS);
	return -ETIMEDOUT;
}

static int get_state(struct thread *th, struct user_regs_struct *r, uint64_t *mask)
{
	pid_t tid = th->t.pid;

	if (ptrace(PTRACE_GETREGS, tid, NULL, r) < 0) {
		pr_perror("%s: PTRACE_GETREGS", th->who);
		return -errno;
	}
	if (ptrace(PTRACE_GETSIGMASK, tid, (void *)sizeof(*mask), mask) < 0) {
		pr_perror("%s: PTRACE_GETSIGMASK", th->who);
		return -errno;
	}
	return 0;
}

/*
 * The registers rt_sigreturn takes from the frame, and the blocked mask,
 * must be the dumped ones; orig_rax -1 means no syscall restart applies.
 */
static int check_as_dumped(const struct thread *th, const struct user_regs_struct *r,
			   uint64_t mask, const char *when)
{
	const X8664Regs *d = th->core->regs;
	const struct {
		const char *name;
		uint64_t now, want;
	} v[] = {
		{ "rip", r->rip, d->ip },	  { "rsp", r->rsp, d->sp },
		{ "rax", r->rax, d->ax },	  { "rbx", r->rbx, d->bx },
		{ "rcx", r->rcx, d->cx },	  { "rdx", r->rdx, d->dx },
		{ "rsi", r->rsi, d->si },	  { "rdi", r->rdi, d->di },
		{ "rbp", r->rbp, d->bp },	  { "r8", r->r8, d->r8 },
		{ "r9", r->r9, d->r9 },		  { "r10", r->r10, d->r10 },
		{ "r11", r->r11, d->r11 },	  { "r12", r->r12, d->r12 },
		{ "r13", r->r13, d->r13 },	  { "r14", r->r14, d->r14 },
		{ "r15", r->r15, d->r15 },	  { "cs", r->cs, d->cs },
		{ "ss", r->ss, d->ss },		  { "fs_base", r->fs_base, d->fs_base },
		{ "gs_base", r->gs_base, d->gs_base },
		{ "eflags", r->eflags & SIGRETURN_EFLAGS, d->flags & SIGRETURN_EFLAGS },
		{ "orig_rax", r->orig_rax, UINT64_MAX },
		{ "the blocked signal mask", mask, th->core->blocked_sigset & ~UNBLOCKABLE },
	};

	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		if (v[i].now == v[i].want)
			continue;
		pr_err("%s: %s is %#" PRIx64 " %s, dumped %#" PRIx64, th->who, v[i].name,
		       v[i].now, when, v[i].want);
		return -EIO;
	}
	return 0;
}

/* The tracee now holds the target's state: keep it to put back (ptrace.c). */
static int capture_target(struct thread *th)
{
	int ret = get_state(th, &th->t.regs, &th->t.sigmask);

	if (ret)
		return ret;
	th->t.resume = th->t.regs;
	return check_as_dumped(th, &th->t.regs, th->t.sigmask, "after rt_sigreturn");
}

/*
 * The leader first: it reads the go byte and lets the others go before
 * its own rt_sigreturn. Each stays stopped at the exit of its rt_sigreturn,
 * so that afterwards no thread is inside the area.
 */
static int run_all_out(struct finish *f)
{
	int ret = 0;

	for (size_t i = 0; !ret && i < f->in->nr_threads; i++) {
		ret = run_to_sigreturn(f, &f->th[i]);
		if (!ret)
			ret = capture_target(&f->th[i]);
	}
	return ret;
}

/*
 * Where ptrace.c may find a `syscall` to inject at: the [vdso] the blob
 * mapped at its dumped address, given as a one-line maps text (cheaper than
 * reading /proc/PID/maps). Without a vdso, the process's maps minus the
 * area: a `syscall` inside the area would vanish under our munmap.
 */
static int syscall_site(struct finish *f, char **out)
{
	const struct rst_finish *in = f->in;
	char *text, *src, *dst;
	int ret;

	if (in->vdso_end > in->vdso_start) {
		if (asprintf(out, "%" PRIx64 "-%" PRIx64 " r-xp 00000000 00:00 0 [vdso]\n",
			     in->vdso_start, in->vdso_end) < 0) {
			pr_err("process %d: out of memory", in->pid);
			return -ENOMEM;
		}
		return 0;
	}
	ret = proc_read(in->pid, "maps", &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/maps: %s", in->pid, in->pid, strerror(-ret));
		return ret;
	}
	for (src = dst = text; *src;) {
		size_t n = strcspn(src, "\n");
		uint64_t s, e;

		n += src[n] ? 1 : 0;
		if (sscanf(src, "%" SCNx64 "-%" SCNx64, &s, &e) != 2 || e <= in->area ||
		    s >= in->area + in->area_len) {
			memmove(dst, src, n);
			dst += n;
		}
		src += n;
	}
	*dst = '\0';
	*out = text;
	return 0;
}

/* One injected munmap; no scratch page (nothing to read back). */
static int unmap_area(struct finish *f)
{
	struct tracee *t = &f->th[0].t;
	uint64_t args[6] = { f->in->area, f->in->area_len };
	int64_t r;
	char *maps;
	int ret = syscall_site(f, &maps);

	if (ret)
		return ret;
	if (f->in->fault)
		args[1] = 0; /* EINVAL */
	t->no_scratch = true;
	ret = tracee_inject_begin(t, maps);
	free(maps);
	if (!ret)
		ret = tracee_syscall(t, SYS_munmap, args, &r);
	if (ret)
		return ret;
	if (r) {
		pr_err("process %d: munmap of the restorer area %#" PRIx64 "-%#" PRIx64 ": %s%s",
		       f->in->pid, f->in->area, f->in->area + f->in->area_len, strerror((int)-r),
		       f->in->fault ? " (injected by LAZARUS_FAULT_BLOB=finish)" : "");
		return (int)r;
	}
	return tracee_inject_end(t);
}

/* After the unmap: every thread still exactly as dumped. */
static int check_all(struct finish *f)
{
	struct user_regs_struct r;
	uint64_t mask;
	int ret = 0;

	for (size_t i = 0; !ret && i < f->in->nr_threads; i++) {
		ret = get_state(&f->th[i], &r, &mask);
		if (!ret)
			ret = check_as_dumped(&f->th[i], &r, mask, "after the unmap");
	}
	return ret;
}

static int detach_all(struct finish *f)
{
	int ret = 0;

	for (size_t i = 0; i < f->in->nr_threads; i++) {
		int r = tracee_detach(&f->th[i].t);

		if (!ret)
			ret = r;
	}
	return ret;
}

/*
 * SIGKILL the process and reap the ptrace link of every thread we hold,
 * the leader last: it is not reapable before the others are gone.
 */
static void kill_all(struct finish *f)
{
	int status;

	if (kill(f->in->pid, SIGKILL) < 0 && errno != ESRCH)
		pr_perror("process %d: kill", f->in->pid);
	for (size_t i = f->in->nr_threads; i-- > 0;) {
		struct tracee *t = &f->th[i].t;

		while (t->seized) {
			pid_t r = waitpid(t->pid, &status, __WALL);

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0 || WIFEXITED(status) || WIFSIGNALED(status))
				t->seized = false;
		}
	}
}

static int finish_run(struct finish *f)
{
	int ret;

	ret = finish_seize(f);
	if (!ret)
		ret = finish_release(f);
	if (!ret)
		ret = run_all_out(f);
	if (!ret)
		ret = unmap_area(f);
	if (!ret)
		ret = check_all(f);
	if (!ret)
		ret = detach_all(f);
	return ret;
}

int rst_finish_process(struct rst_finish *in)
{
	struct finish f = { .in = in };
	int ret;

	in->nr_stops = 0;
	if (!in->area_len || (in->area | in->area_len) & 4095) {
		pr_err("process %d: restorer area %#" PRIx64 " (%" PRIu64 " bytes) in its OK record "
		       "is not page aligned",
		       in->pid, in->area, in->area_len);
		return -EPROTO;
	}
	if (!in->nr_threads ||
	    (in->tids ? in->tids[0] : (pid_t)in->cores[0]->tid) != in->pid) {
		pr_err("process %d: no thread list starting with it", in->pid);
		return -EINVAL;
	}
	f.th = calloc(in->nr_threads, sizeof(*f.th));
	if (!f.th) {
		pr_err("process %d: out of memory", in->pid);
		return -ENOMEM;
	}
	for (size_t i = 0; i < in->nr_threads; i++) {
		f.th[i].core = in->cores[i];
		f.th[i].tid = in->tids ? in->tids[i] : (pid_t)in->cores[i]->tid;
		if (i)
			snprintf(f.th[i].who, sizeof(f.th[i].who), "process %d thread %u", in->pid,
				 in->cores[i]->tid);
		else
			snprintf(f.th[i].who, sizeof(f.th[i].who), "process %d", in->pid);
	}
	ret = finish_run(&f);
	if (ret)
		kill_all(&f);
	else
		pr_info("process %d: restorer area %#" PRIx64 "-%#" PRIx64
			" unmapped after rt_sigreturn of %zu thread%s (%u ptrace stops); detached",
			in->pid, in->area, in->area + in->area_len, in->nr_threads,
			in->nr_threads == 1 ? "" : "s", in->nr_stops);
	free(f.th);
	return ret;
}
