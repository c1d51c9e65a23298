/*
 * dump-core.c - the per-thread CPU and kernel state of a frozen task.
 *
 * Registers are dumped the way the task would see them on return to user
 * mode: a syscall interrupted with -ERESTARTSYS/-ERESTARTNOINTR/-ERESTARTNOHAND
 * is rewound to run again; one interrupted with -ERESTART_RESTARTBLOCK cannot
 * be, because its restart block lives in the kernel, so it returns -EINTR.
 * A task stopped inside an rseq critical section is moved to the section's
 * abort handler, as the kernel does when it preempts such a task.
 */
#include <elf.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "core.pb-c.h"
#include "dump-core.h"
#include "proc.h"

#ifndef NT_X86_XSTATE
#define NT_X86_XSTATE 0x202
#endif
#ifndef PR_GET_TID_ADDRESS
#define PR_GET_TID_ADDRESS 40
#endif

#define XSAVE_BUF_MAX (64U << 10) /* far above any xsave area (AMX: ~11 KiB) */

/* struct rseq_cs of include/uapi/linux/rseq.h */
struct rseq_cs_abi {
	uint32_t version;
	uint32_t flags;
	uint64_t start_ip;
	uint64_t post_commit_offset;
	uint64_t abort_ip;
};
_Static_assert(sizeof(struct rseq_cs_abi) == 32, "kernel ABI: 32 bytes");
#define RSEQ_CS_OFFSET 8 /* struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs */

static int get_xsave(struct core_dump *c)
{
	struct iovec iov;

	c->xsave = malloc(XSAVE_BUF_MAX);
	if (!c->xsave)
		return -ENOMEM;
	iov.iov_base = c->xsave;
	iov.iov_len = XSAVE_BUF_MAX;
	/* The kernel shrinks iov_len to the size of this CPU's xsave area. */
	if (ptrace(PTRACE_GETREGSET, c->tid, (void *)NT_X86_XSTATE, &iov) < 0) {
		pr_perror("process %d: PTRACE_GETREGSET NT_X86_XSTATE", c->tid);
		return -errno;
	}
	c->xsave_size = (uint32_t)iov.iov_len;
	return 0;
}

static int get_rseq(struct core_dump *c)
{
	struct ptrace_rseq_config cfg = { 0 };
	long n;

	n = ptrace(PTRACE_GET_RSEQ_CONFIGURATION, c->tid, (void *)sizeof(cfg), &cfg);
	if (n < 0) {
		pr_perror("process %d: PTRACE_GET_RSEQ_CONFIGURATION", c->tid);
		return -errno;
	}
	c->has_rseq = cfg.rseq_abi_pointer != 0;
	c->rseq = cfg;
	return 0;
}

/*
 * If the task sits inside a registered rseq critical section, the kernel
 * would abort the section when it resumes the task after preemption. Our
 * injected syscalls run at another ip, so the kernel drops rseq_cs meanwhile
 * and would not abort any more: do the abort ourselves, in the dump and in
 * the regs the task resumes with. Syscalls are not allowed inside a section,
 * so a task stopped in one is left alone.
 */
static int fixup_rseq_cs(struct core_dump *c, struct tracee *t)
{
	struct rseq_cs_abi cs;
	uint64_t cs_ptr;

	if (!c->has_rseq || (int64_t)t->regs.orig_rax >= 0)
		return 0;
	if (tracee_read(t, c->rseq.rseq_abi_pointer + RSEQ_CS_OFFSET, &cs_ptr, sizeof(cs_ptr))) {
		pr_err("process %d: cannot read its rseq area at %#" PRIx64, c->tid,
		       (uint64_t)c->rseq.rseq_abi_pointer);
		return -EFAULT;
	}
	if (!cs_ptr)
		return 0;
	if (tracee_read(t, cs_ptr, &cs, sizeof(cs))) {
		pr_err("process %d: cannot read its rseq_cs at %#" PRIx64, c->tid, cs_ptr);
		return -EFAULT;
	}
	if (t->regs.rip < cs.start_ip || t->regs.rip - cs.start_ip >= cs.post_commit_offset)
		return 0;
	pr_info("process %d: inside an rseq critical section; resumes at its abort handler "
		"%#" PRIx64,
		c->tid, cs.abort_ip);
	t->resume.rip = cs.abort_ip;
	return 0;
}

/* See the top of the file. */
static void fixup_syscall_restart(struct core_dump *c)
{
	struct user_regs_struct *r = &c->regs;

	c->interrupted_syscall = -1;
	if ((int64_t)r->orig_rax < 0)
		return;
	c->interrupted_syscall = (int64_t)r->orig_rax;
	switch ((int64_t)r->rax) {
	case -LZ_ERESTARTSYS:
	case -LZ_ERESTARTNOINTR:
	case -LZ_ERESTARTNOHAND:
		r->rax = r->orig_rax;
		r->rip -= 2;
		break;
	case -LZ_ERESTART_RESTARTBLOCK:
		pr_info("process %d: interrupted syscall %" PRId64 " has a restart block that "
			"cannot be restored; it will return EINTR after restore",
			c->tid, c->interrupted_syscall);
		r->rax = (uint64_t)-EINTR;
		break;
	}
}

static int get_comm(struct core_dump *c)
{
	char name[64], *text;
	int ret;

	snprintf(name, sizeof(name), "task/%d/comm", c->tid);
	ret = proc_read(c->tid, name, &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/%s: %s", c->tid, c->tid, name, strerror(-ret));
		return ret;
	}
	text[strcspn(text, "\n")] = '\0';
	snprintf(c->comm, sizeof(c->comm), "%s", text);
	free(text);
	return 0;
}

int core_collect_frozen(struct core_dump *c, struct tracee *t)
{
	long ret;

	memset(c, 0, sizeof(*c));
	c->tid = t->pid;
	c->sigmask = t->sigmask;
	/* First: it may refuse the dump, and nothing of the task is changed yet. */
	ret = task_collect_sched(&c->sched, t->pid, c->tid);
	if (!ret)
		ret = get_comm(c);
	if (!ret)
		ret = creds_collect(&c->creds, c->tid);
	if (!ret)
		ret = seccomp_collect(&c->seccomp, t);
	if (!ret)
		ret = get_xsave(c);
	if (!ret)
		ret = get_rseq(c);
	if (!ret)
		ret = fixup_rseq_cs(c, t);
	if (ret)
		return (int)ret;
	c->regs = t->resume;
	fixup_syscall_restart(c);
	ret = syscall(SYS_get_robust_list, c->tid, &c->robust_list, &c->robust_list_len);
	if (ret < 0) {
		pr_perror("process %d: get_robust_list", c->tid);
		return -errno;
	}
	return 0;
}

/* sigaltstack, the clear-child-tid address and the securebits, in one batch. */
int core_collect_injected(struct core_dump *c, struct tracee *t)
{
	struct {
		uint64_t sp;
		int32_t flags;
		int32_t pad;
		uint64_t size;
	} ss; /* x86_64 stack_t */
	struct tracee_call calls[3] = {
		{ .nr = SYS_sigaltstack, .args = { 0, t->scratch } },
		{ .nr = SYS_prctl, .args = { PR_GET_TID_ADDRESS, t->scratch + sizeof(ss) } },
		{ .nr = SYS_prctl, .args = { PR_GET_SECUREBITS } },
	};
	uint8_t out[sizeof(ss) + sizeof(c->clear_child_tid)];
	int ret;

	ret = tracee_syscalls(t, calls, 3);
	if (!ret)
		ret = tracee_read(t, t->scratch, out, sizeof(out));
	if (ret) {
		pr_err("process %d: reading the scratch page: %s", c->tid, strerror(-ret));
		return ret;
	}
	if (calls[0].ret < 0) {
		pr_err("process %d: injected sigaltstack: %s", c->tid, strerror((int)-calls[0].ret));
		return (int)calls[0].ret;
	}
	memcpy(&ss, out, sizeof(ss));
	c->ss_sp = ss.sp;
	c->ss_size = ss.size;
	c->ss_flags = (uint32_t)ss.flags;
	if (calls[1].ret < 0) {
		pr_err("process %d: injected prctl(PR_GET_TID_ADDRESS): %s", c->tid,
		       strerror((int)-calls[1].ret));
		return (int)calls[1].ret;
	}
	memcpy(&c->clear_child_tid, out + sizeof(ss), sizeof(c->clear_child_tid));
	return creds_take_securebits(&c->creds, c->tid, calls[2].ret);
}

int core_collect_pending(struct core_dump *c, struct tracee *t, unsigned max)
{
	int ret = tracee_peek_pending(t, false, &c->pending[0][0], max, &c->nr_pending);

	if (ret == -E2BIG)
		pr_err("process %d has more than %d pending signals: not supported yet", c->tid,
		       TRACEE_MAX_PENDING);
	return ret;
}

int core_write(const struct core_dump *c, struct dump_imgs *imgs)
{
	ProtobufCBinaryData pending[TRACEE_MAX_PENDING];
	const struct user_regs_struct *r = &c->regs;
	X8664Regs regs = X86_64_REGS__INIT;
	SigaltstackEntry sas = SIGALTSTACK_ENTRY__INIT;
	RseqEntry rseq = RSEQ_ENTRY__INIT;
	CredsEntry creds = CREDS_ENTRY__INIT;
	SeccompEntry sc;
	SeccompFilterEntry scf[SECCOMP_MAX_FILTERS], *scfp[SECCOMP_MAX_FILTERS];
	CoreEntry e = CORE_ENTRY__INIT;
	char name[DUMP_IMG_NAME_MAX];

	regs.r15 = r->r15;
	regs.r14 = r->r14;
	regs.r13 = r->r13;
	regs.r12 = r->r12;
	regs.bp = r->rbp;
	regs.bx = r->rbx;
	regs.r11 = r->r11;
	regs.r10 = r->r10;
	regs.r9 = r->r9;
	regs.r8 = r->r8;
	regs.ax = r->rax;
	regs.cx = r->rcx;
	regs.dx = r->rdx;
	regs.si = r->rsi;
	regs.di = r->rdi;
	regs.orig_ax = r->orig_rax;
	regs.ip = r->rip;
	regs.cs = r->cs;
	regs.flags = r->eflags;
	regs.sp = r->rsp;
	regs.ss = r->ss;
	regs.fs_base = r->fs_base;
	regs.gs_base = r->gs_base;
	regs.ds = r->ds;
	regs.es = r->es;
	regs.fs = r->fs;
	regs.gs = r->gs;

	sas.ss_sp = c->ss_sp;
	sas.ss_size = c->ss_size;
	sas.ss_flags = c->ss_flags;

	e.tid = (uint32_t)c->img_tid;
	e.comm = (char *)c->comm;
	e.regs = &regs;
	e.xsave.data = c->xsave;
	e.xsave.len = c->xsave_size;
	e.blocked_sigset = c->sigmask;
	e.sas = &sas;
	if (c->has_rseq) {
		rseq.abi_pointer = c->rseq.rseq_abi_pointer;
		rseq.abi_size = c->rseq.rseq_abi_size;
		rseq.signature = c->rseq.signature;
		rseq.flags = c->rseq.flags;
		e.rseq = &rseq;
	}
	e.robust_list = c->robust_list;
	e.robust_list_len = c->robust_list_len;
	e.clear_child_tid = c->clear_child_tid;
	task_sched_to_core(&c->sched, &e);
	e.has_interrupted_syscall = true;
	e.interrupted_syscall = c->interrupted_syscall;
	for (unsigned i = 0; i < c->nr_pending; i++)
		pending[i] = (ProtobufCBinaryData){ .len = TRACEE_SIGINFO_SIZE,
						    .data = (uint8_t *)c->pending[i] };
	e.n_pending_siginfo = c->nr_pending;
	e.pending_siginfo = pending;
	creds_to_entry(&c->creds, &creds);
	e.creds = &creds;
	seccomp_to_core(&c->seccomp, &e, &sc, scf, scfp);

	snprintf(name, sizeof(name), "core-%d.img", c->img_tid);
	return dump_img_write_one(imgs, name, LZ_IMG_CORE, &e.base);
}

void core_fini(struct core_dump *c)
{
	free(c->xsave);
	c->xsave = NULL;
	creds_fini(&c->creds);
	seccomp_fini(&c->seccomp);
}
