/*
 * thread.c - the threads of the restored process: the leader creates every
 * other one with its dumped tid, each restores the state only it can set,
 * and all wait for each other before any of them becomes the target.
 *
 * A created thread starts on its own stack in the bootstrap area
 * (lz_blob_thread.stack_top) and shares everything the blob needs (mm,
 * fds, signal handlers, every signal blocked as in the leader). The
 * barrier is a counter in the argument block used as a futex: a thread
 * counts itself once its own state is in place; the leader waits (bounded)
 * until all have, so the per-process steps after it (dumpable, the process's
 * signals, the release) and "OK" see every thread complete. The created
 * threads then wait on `go`, which the leader sets once the lazarus parent
 * traces every thread (restore-finish.c), and leave through rt_sigreturn
 * from their own frames. A failure in any thread is reported with its tid
 * and ends the whole process (exit_group): nothing runs half-restored.
 */
#include <linux/prctl.h>

#include "blob.h"
#include "sys.h"

#define CLONE_VM_ 0x00000100ULL
#define CLONE_FS_ 0x00000200ULL
#define CLONE_FILES_ 0x00000400ULL
#define CLONE_SIGHAND_ 0x00000800ULL
#define CLONE_THREAD_ 0x00010000ULL
#define CLONE_SYSVSEM_ 0x00040000ULL
#define FUTEX_WAIT_ 0
#define FUTEX_WAKE_ 1
#define EINVAL_ 22
#define ETIMEDOUT_ 110
#define BARRIER_NS (10ULL * 1000000000ULL) /* every thread restored itself by then */

/* struct clone_args of <linux/sched.h>, up to set_tid_size (CLONE_ARGS_SIZE_VER1). */
struct clone_args_v1 {
	uint64_t flags;
	uint64_t pidfd;
	uint64_t child_tid;
	uint64_t parent_tid;
	uint64_t exit_signal;
	uint64_t stack;
	uint64_t stack_size;
	uint64_t tls;
	uint64_t set_tid;
	uint64_t set_tid_size;
};
_Static_assert(sizeof(struct clone_args_v1) == 80, "clone_args v1 is 80 bytes");

__attribute__((visibility("hidden"), noreturn)) void blob_thread_main(struct lz_blob_args *a,
								      struct lz_blob_thread *t);

/*
 * long blob_clone3_thread(args, size, a, t): clone3 that starts the new
 * thread in blob_thread_main(a, t) on the stack the args give it. The
 * parent gets the new tid or -errno. r12/r13 carry a and t into the child
 * (clone3 copies the registers); they are callee-saved, hence the pushes.
 */
__asm__(".pushsection .text, \"ax\", @progbits\n"
	".globl blob_clone3_thread\n"
	".hidden blob_clone3_thread\n"
	".type blob_clone3_thread, @function\n"
	"blob_clone3_thread:\n"
	"	push %r12\n"
	"	push %r13\n"
	"	mov %rdx, %r12\n"
	"	mov %rcx, %r13\n"
	"	mov $435, %eax\n" /* clone3 */
	"	syscall\n"
	"	test %rax, %rax\n"
	"	jnz 1f\n"
	"	xor %ebp, %ebp\n" /* the new thread: a fresh stack, no frame to return to */
	"	mov %r12, %rdi\n"
	"	mov %r13, %rsi\n"
	"	call blob_thread_main\n"
	"	ud2\n"
	"1:	pop %r13\n"
	"	pop %r12\n"
	"	ret\n"
	".size blob_clone3_thread, . - blob_clone3_thread\n"
	".popsection\n");

long blob_clone3_thread(struct clone_args_v1 *ca, unsigned long size, struct lz_blob_args *a,
			struct lz_blob_thread *t);

static struct lz_blob_thread *thread_at(struct lz_blob_args *a, uint32_t i)
{
	return (struct lz_blob_thread *)(uintptr_t)a->threads + i;
}

/*
 * Each with its dumped tid (set_tid: CAP_CHECKPOINT_RESTORE, which we still
 * hold). The fault hook fails once the first created thread exists (or at
 * once for a process of one thread): exit_group must take them along.
 */
void blob_clone_threads(struct blob *b)
{
	struct lz_blob_args *a = b->a;

	for (uint32_t i = 1; i < a->nr_threads; i++) {
		struct lz_blob_thread *t = thread_at(a, i);
		int32_t tid = (int32_t)t->tid; /* pid_t set_tid[1] */
		struct clone_args_v1 ca = {
			.flags = CLONE_VM_ | CLONE_FS_ | CLONE_FILES_ | CLONE_SIGHAND_ |
				 CLONE_THREAD_ | CLONE_SYSVSEM_,
			.stack = t->stack_top - LZ_BLOB_THREAD_STACK,
			.stack_size = LZ_BLOB_THREAD_STACK,
			.set_tid = (uint64_t)(uintptr_t)&tid,
			.set_tid_size = 1,
		};
		long r = blob_clone3_thread(&ca, sizeof(ca), a, t);

		if (r < 0)
			blob_fail(b, LZ_STEP_CLONE, r, i, t->tid);
		if (r != (long)t->tid)
			blob_fail(b, LZ_STEP_CLONE, -EINVAL_, i, (uint64_t)r);
		if (i == 1)
			blob_fault_point(b, LZ_STEP_CLONE);
	}
	if (a->nr_threads == 1)
		blob_fault_point(b, LZ_STEP_CLONE);
}

/* A step of the calling thread; the fault hook hits one thread (fault_thread). */
static void tstep(struct blob *b, int id, void (*fn)(struct blob *))
{
	if (b->t->index == b->a->fault_thread)
		blob_fault_point(b, id);
	fn(b);
}

static void sched_fail(struct blob *b, enum lz_sched_op op, long err, uint64_t detail)
{
	blob_fail(b, LZ_STEP_SCHED, err, (uint32_t)op, detail);
}

/* The kernel ignores CPUs it lacks: read the mask back. */
static void sched_affinity(struct blob *b, const struct lz_blob_thread *t)
{
	const uint64_t *want = (const uint64_t *)(uintptr_t)t->affinity;
	uint64_t got[LZ_BLOB_MAX_CPU_WORDS];
	long r;

	r = sys_sched_setaffinity(0, t->nr_affinity * sizeof(uint64_t), want);
	if (r)
		sched_fail(b, LZ_SCHED_AFFINITY, r, 0);
	memset(got, 0, sizeof(got));
	r = sys_sched_getaffinity(0, sizeof(got), got);
	if (r < 0)
		sched_fail(b, LZ_SCHED_AFFINITY, r, 0);
	for (uint32_t i = 0; i < LZ_BLOB_MAX_CPU_WORDS; i++)
		if (got[i] != (i < t->nr_affinity ? want[i] : 0))
			sched_fail(b, LZ_SCHED_AFFINITY, -EINVAL_, i);
}

/*
 * A created thread starts with the leader's scheduling state (set by the
 * lazarus child, restore-task.c); it sets its own in the same order:
 * affinity, nice, policy (which for the real-time ones zeroes the timer
 * slack), a non-zero slack, MCE policy, TSC mode.
 */
static void blob_restore_sched(struct blob *b)
{
	const struct lz_blob_thread *t = b->t;
	long r;

	if (t->sched & LZ_BSCHED_AFFINITY)
		sched_affinity(b, t);
	if (t->sched & LZ_BSCHED_NICE) {
		r = sys_setpriority(0 /* PRIO_PROCESS */, 0, t->nice);
		if (r)
			sched_fail(b, LZ_SCHED_NICE, r, (uint64_t)(int64_t)t->nice);
	}
	if (t->sched & LZ_BSCHED_POLICY) {
		int prio = (int)t->sched_priority;

		r = sys_sched_setscheduler(0, (int)t->sched_policy, &prio);
		if (r)
			sched_fail(b, LZ_SCHED_POLICY, r, t->sched_policy);
	}
	if ((t->sched & LZ_BSCHED_SLACK) && t->timerslack_ns) {
		r = sys_prctl(PR_SET_TIMERSLACK, t->timerslack_ns, 0, 0, 0);
		if (r)
			sched_fail(b, LZ_SCHED_SLACK, r, t->timerslack_ns);
	}
	if (t->sched & LZ_BSCHED_MCE) {
		r = t->mce_kill == PR_MCE_KILL_DEFAULT
			    ? sys_prctl(PR_MCE_KILL, PR_MCE_KILL_CLEAR, 0, 0, 0)
			    : sys_prctl(PR_MCE_KILL, PR_MCE_KILL_SET, (unsigned long)t->mce_kill, 0, 0);
		if (r)
			sched_fail(b, LZ_SCHED_MCE, r, (uint64_t)(int64_t)t->mce_kill);
	}
	if ((t->sched & LZ_BSCHED_TSC) && t->tsc_mode) {
		r = sys_prctl(PR_SET_TSC, t->tsc_mode, 0, 0, 0);
		if (r)
			sched_fail(b, LZ_SCHED_TSC, r, t->tsc_mode);
	}
}

/* Count ourselves in; the leader waits for everybody, bounded. */
static void barrier(struct blob *b)
{
	struct lz_blob_args *a = b->a;
	uint64_t deadline;
	uint32_t n;

	__atomic_add_fetch(&a->nr_ready, 1, __ATOMIC_SEQ_CST);
	if (b->t->index) {
		sys_futex(&a->nr_ready, FUTEX_WAKE_, 1, 0);
		return;
	}
	blob_fault_point(b, LZ_STEP_BARRIER);
	deadline = blob_now_ns() + BARRIER_NS;
	while ((n = __atomic_load_n(&a->nr_ready, __ATOMIC_SEQ_CST)) < a->nr_threads) {
		const struct {
			int64_t sec, nsec;
		} step = { 0, 100000000 };

		if (blob_now_ns() > deadline)
			blob_fail(b, LZ_STEP_BARRIER, -ETIMEDOUT_, n, 0);
		sys_futex(&a->nr_ready, FUTEX_WAIT_, n, &step);
	}
}

/*
 * The calling thread's own state, credentials last, then its own pending
 * signals (charged to its restored user), then the barrier.
 */
void blob_thread_restore(struct blob *b)
{
	tstep(b, LZ_STEP_ROBUST, blob_restore_thread);
	tstep(b, LZ_STEP_SCHED, blob_restore_sched); /* nothing to do for the leader */
	tstep(b, LZ_STEP_CREDS, blob_restore_creds);
	tstep(b, LZ_STEP_SIGQUEUE, blob_queue_own_signals);
	barrier(b);
}

/* The leader, traced by the lazarus parent now: every thread may leave. */
void blob_let_threads_go(struct blob *b)
{
	__atomic_store_n(&b->a->go, 1, __ATOMIC_SEQ_CST);
	if (b->a->nr_threads > 1)
		sys_futex(&b->a->go, FUTEX_WAKE_, b->a->nr_threads, 0);
}

/*
 * A created thread after the barrier: it must not fail any more (the
 * status pipe may be closed); the leader's exit_group ends it if the
 * restore fails meanwhile.
 */
__attribute__((noreturn)) void blob_sigreturn_when_go(struct blob *b)
{
	while (!__atomic_load_n(&b->a->go, __ATOMIC_SEQ_CST))
		sys_futex(&b->a->go, FUTEX_WAIT_, 0, 0);
	blob_restore_seccomp(b->t); /* last: traced with its filters suspended */
	lz_blob_finish(b->t->sigframe);
}

void blob_thread_main(struct lz_blob_args *a, struct lz_blob_thread *t)
{
	struct blob b = {
		.a = a,
		.t = t,
		.vmas = (struct lz_blob_vma *)(uintptr_t)a->vmas,
		.runs = (struct lz_blob_run *)(uintptr_t)a->runs,
	};

	blob_thread_restore(&b);
	blob_sigreturn_when_go(&b);
}
