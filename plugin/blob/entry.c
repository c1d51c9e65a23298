/*
 * entry.c - the restorer blob's entry point: the last steps of a restore,
 * run from the bootstrap area after the lazarus child has jumped here.
 *
 * From here on there is no libc and no old address space: the entry throws
 * away every mapping but the bootstrap area, builds the target's, puts back
 * the per-thread kernel state that only the thread itself can set, says "OK"
 * on the status pipe, waits until the lazarus parent traces it, and leaves
 * through rt_sigreturn into the target's code (the parent then unmaps the
 * bootstrap area, which this code cannot do for itself).
 * Any failure is reported on the pipe and ends the process (exit_group), so
 * the target never runs on half-restored memory.
 */
#include <time.h>

#include "blob.h"
#include "sys.h"

uint64_t blob_now_ns(void)
{
	struct {
		int64_t sec, nsec;
	} ts = { 0, 0 };

	/* A raw syscall: the vdso moves under our feet. */
	sys_clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.sec * 1000000000ULL + (uint64_t)ts.nsec;
}

void blob_report(struct blob *b, int type, int step, long err, uint32_t arg, uint64_t addr)
{
	struct lz_rst_msg m;

	memset(&m, 0, sizeof(m));
	m.magic = LZ_RST_MSG_MAGIC;
	m.type = (uint16_t)type;
	m.step = (uint16_t)step;
	m.err = (int32_t)err;
	m.arg = arg;
	m.addr = addr;
	m.tid = b->t ? b->t->tid : 0;
	if (type == LZ_MSG_OK) {
		m.t_ns[0] = b->a->t_child_ns;
		m.t_ns[1] = b->t_entry;
		m.t_ns[2] = b->t_mem;
		m.t_ns[3] = blob_now_ns();
		m.nr_pages = b->nr_pages;
	}
	sys_write(b->a->status_fd, &m, sizeof(m));
}

void blob_fail(struct blob *b, int step, long err, uint32_t arg, uint64_t addr)
{
	blob_report(b, LZ_MSG_FAIL, step, err, arg, addr);
	sys_exit_group(1);
}

static void blob_check_abi(struct blob *b)
{
	struct lz_blob_args *a = b->a;

	if (a->abi_version != LZ_BLOB_ABI_VERSION || a->size != sizeof(*a))
		blob_fail(b, LZ_STEP_ABI, -22 /* EINVAL */, a->abi_version, a->size);
	if (!a->nr_threads || a->nr_threads > LZ_BLOB_MAX_THREADS)
		blob_fail(b, LZ_STEP_ABI, -22 /* EINVAL */, a->nr_threads, 0);
}

/*
 * Every signal blocked, by the raw syscall: the lazarus child blocked them
 * through glibc, which keeps its own SIGCANCEL (32) and SIGSETXID (33)
 * open, and the threads created here inherit this mask. A 32 or 33 meant
 * for the target (glibc's SIGEV_THREAD timers signal their helper thread
 * with 32) must wait for the target's own mask like any other signal.
 */
static void blob_block_signals(struct blob *b)
{
	uint64_t all = ~0ULL;
	long r = sys4(__NR_rt_sigprocmask, 2 /* SIG_SETMASK */, &all, 0, sizeof(all));

	if (r)
		blob_fail(b, LZ_STEP_ABI, r, 0, 0);
}

void blob_fault_point(struct blob *b, int id)
{
	if (b->a->fault_step == (uint32_t)id)
		blob_fail(b, id, -5 /* EIO */, LZ_RST_ARG_FAULT, 0);
}

/* A step of the process as a whole (the leader's), unless the fault hook says it fails. */
static inline void step(struct blob *b, int id, void (*fn)(struct blob *))
{
	blob_fault_point(b, id);
	fn(b);
}

/*
 * The leader's path. The order matters: the old mappings go first (the
 * target's addresses may be taken by them), the vdso is placed before the
 * VMAs so nothing else can take its hint address, lazy VMAs are registered
 * with the userfaultfd only after the fill (a write into a registered
 * missing page would wait for the daemon), memory is complete before
 * PR_SET_MM_MAP checks the new layout, the other threads are created
 * (clone3 with their tids needs CAP_CHECKPOINT_RESTORE) once the process
 * has its final address space and before anything drops privilege; then
 * every thread, the leader too, restores its own state (thread.c: thread
 * pointers and rseq once their areas are mapped, scheduling, the
 * credentials after everything that needs privilege, which drops it for
 * good, creds.c; its dumped pending signals after them, charged to the
 * dumped user as they were) and waits at a barrier. Only once every
 * thread got there the leader goes on with the per-process rest: the
 * POSIX timers (a SIGEV_THREAD_ID one needs its thread; created with the
 * dumped user's credentials, which the kernel charges), dumpable
 * (a change of ids in any thread resets it), closing the service fds, then
 * the POSIX locks (closing a mapped file's service fd would drop them), the
 * process's pending signals (every signal is blocked in every thread
 * here, so they wait for the targets' own masks, which rt_sigreturn
 * installs), arming the POSIX timers (their expiries queue behind those
 * signals), and the release, which sets the parent-death signal that the
 * change of ids cleared. With -d the helper that cloned us is released
 * only after the last step of ours that can fail, so a failed restore is
 * reaped by it and leaves no zombie (only the parent's ptrace step comes
 * later; if that fails, the parent kills us and our new parent reaps us).
 * The status pipe is closed after "OK", the go pipe after the parent's
 * byte; then the leader lets the other threads go and every thread leaves
 * through rt_sigreturn from its own frame. A failure in any thread is
 * reported on the pipe and ends the whole process (exit_group).
 */
__attribute__((section(".text.entry"), used, visibility("default"))) void
lz_blob_entry(struct lz_blob_args *a)
{
	struct lz_blob_thread *t = (struct lz_blob_thread *)(uintptr_t)a->threads;
	struct blob b = {
		.a = a,
		.t = t,
		.vmas = (struct lz_blob_vma *)(uintptr_t)a->vmas,
		.runs = (struct lz_blob_run *)(uintptr_t)a->runs,
	};

	b.t_entry = blob_now_ns();
	blob_check_abi(&b);
	blob_block_signals(&b);
	step(&b, LZ_STEP_UNMAP, blob_unmap_old);
	step(&b, LZ_STEP_VDSO, blob_map_vdso);
	step(&b, LZ_STEP_MAP, blob_map_vmas);
	step(&b, LZ_STEP_FILL, blob_fill);
	step(&b, LZ_STEP_UFFD, blob_register_lazy);
	step(&b, LZ_STEP_PROTECT, blob_finish_vmas);
	b.t_mem = blob_now_ns();
	step(&b, LZ_STEP_MM, blob_restore_mm);
	step(&b, LZ_STEP_ITIMER, blob_restore_itimers);
	step(&b, LZ_STEP_RLIMIT, blob_restore_rlimits);
	blob_clone_threads(&b); /* its fault point is inside: after some threads exist */
	blob_thread_restore(&b);
	step(&b, LZ_STEP_TIMER, blob_create_timers);
	blob_restore_dumpable(&b);
	step(&b, LZ_STEP_CLOSE, blob_close_fds);
	step(&b, LZ_STEP_LOCK, blob_take_locks);
	blob_queue_signals(&b); /* the process's queue now (the leader's own is done) */
	blob_arm_timers(&b);
	step(&b, LZ_STEP_RELEASE, blob_release);
	blob_report(&b, LZ_MSG_OK, 0, 0, (uint32_t)((a->area_end - a->area_start) >> 12),
		    a->area_start);
	sys_close(a->status_fd);
	blob_wait_tracer(&b);
	blob_let_threads_go(&b);
	blob_restore_seccomp(t); /* last: traced with its filters suspended */
	lz_blob_finish(t->sigframe);
}
