/*
 * task.c - per-process and per-thread kernel state that the blob restores
 * after memory: the mm fields (PR_SET_MM_MAP), thread pointers (clear tid,
 * robust list, rseq, fs/gs base), interval timers and rlimits, and finally
 * closing the service fds.
 */
#include <asm/prctl.h>
#include <linux/prctl.h>

#include "blob.h"
#include "sys.h"

#define EPERM_ 1

/*
 * Only the all-in-one PR_SET_MM_MAP works without CAP_SYS_RESOURCE. It also
 * swaps /proc/self/exe, which the kernel refuses while the old executable is
 * still mapped: that is why it comes after the memory steps.
 */
void blob_restore_mm(struct blob *b)
{
	long r = sys_prctl(PR_SET_MM, PR_SET_MM_MAP, (unsigned long)&b->a->mm,
			   sizeof(b->a->mm), 0);

	if (r)
		blob_fail(b, LZ_STEP_MM, r, 0, 0);
}

/*
 * rt_sigreturn restores neither fs_base nor gs_base: arch_prctl does. A
 * created thread starts with the leader's name: its own comes here.
 */
void blob_restore_thread(struct blob *b)
{
	struct lz_blob_thread *a = b->t;
	long r;

	if (a->comm[0]) {
		r = sys_prctl(PR_SET_NAME, (unsigned long)a->comm, 0, 0, 0);
		if (r)
			blob_fail(b, LZ_STEP_ROBUST, r, 2, 0);
	}
	sys_set_tid_address(a->clear_child_tid);
	if (a->robust_list) {
		r = sys_set_robust_list(a->robust_list, a->robust_list_len);
		if (r)
			blob_fail(b, LZ_STEP_ROBUST, r, 0, a->robust_list);
	}
	if (a->rseq_ptr) {
		r = sys_rseq(a->rseq_ptr, a->rseq_len, 0, a->rseq_sig);
		if (r)
			blob_fail(b, LZ_STEP_RSEQ, r, 0, a->rseq_ptr);
	}
	r = sys_arch_prctl(ARCH_SET_FS, a->fs_base);
	if (r)
		blob_fail(b, LZ_STEP_TLS, r, 0, a->fs_base);
	r = sys_arch_prctl(ARCH_SET_GS, a->gs_base);
	if (r)
		blob_fail(b, LZ_STEP_TLS, r, 1, a->gs_base);
}

/*
 * Armed timers fire into blocked signals until rt_sigreturn: nothing is lost.
 * An ITIMER_REAL that expired while its SIGALRM waits is not running: the
 * kernel arms it again only when that SIGALRM is taken, and getitimer shows
 * value 0 with the interval. setitimer with value 0 would drop the interval
 * for good; one microsecond brings back that very state (it expires at
 * once, its SIGALRM merges with the pending one re-queued later, and the
 * interval resumes when the target takes it).
 */
void blob_restore_itimers(struct blob *b)
{
	for (uint32_t i = 0; i < b->a->nr_itimers && i < LZ_BLOB_MAX_ITIMERS; i++) {
		struct lz_blob_itimer *t = &b->a->itimers[i];
		long r;

		if (t->which == 0 /* ITIMER_REAL */ && !t->value_sec && !t->value_usec &&
		    (t->interval_sec || t->interval_usec))
			t->value_usec = 1;
		r = sys_setitimer((int)t->which, &t->interval_sec);

		if (r)
			blob_fail(b, LZ_STEP_ITIMER, r, t->which, 0);
	}
}

/*
 * Without CAP_SYS_RESOURCE a hard limit cannot be raised. Then keep the hard
 * limit we have, set what fits under it, and warn: a restored process with a
 * lower hard limit is better than none.
 */
static void rlimit_set(struct blob *b, struct lz_blob_rlimit *rl)
{
	struct {
		uint64_t cur, max;
	} want = { rl->cur, rl->max }, old;
	long r = sys_prlimit64((int)rl->resource, &want, 0);

	if (!r)
		return;
	if (r != -EPERM_ || sys_prlimit64((int)rl->resource, 0, &old)) {
		blob_report(b, LZ_MSG_WARN, LZ_STEP_RLIMIT, r, rl->resource, rl->max);
		return;
	}
	want.max = old.max;
	if (want.cur > old.max)
		want.cur = old.max;
	blob_report(b, LZ_MSG_WARN, LZ_STEP_RLIMIT, r, rl->resource, rl->max);
	r = sys_prlimit64((int)rl->resource, &want, 0);
	if (r)
		blob_report(b, LZ_MSG_WARN, LZ_STEP_RLIMIT, r, rl->resource, want.max);
}

void blob_restore_rlimits(struct blob *b)
{
	for (uint32_t i = 0; i < b->a->nr_rlimits && i < LZ_BLOB_MAX_RLIMITS; i++)
		rlimit_set(b, &b->a->rlimits[i]);
}

/*
 * -d: one byte on the release pipe lets the helper exit; we are reparented
 * (to init or a subreaper) and only then can PR_SET_PDEATHSIG refer to the
 * parent we keep. Without -d our parent is lazarus and stays.
 */
void blob_release(struct blob *b)
{
	struct lz_blob_args *a = b->a;
	const struct {
		int64_t sec, nsec;
	} ms = { 0, 1000000 };
	const char go = 1;
	long r;

	if (a->release_fd >= 0) {
		/*
		 * A pidfd of the helper while it is still our parent (so the
		 * pid is its own): it turns readable when the helper exited,
		 * after the kernel reparented us; no 1 ms sleep to wait for it.
		 * The getppid() loop below still decides.
		 */
		struct {
			int32_t fd;
			int16_t events, revents;
		} pfd = { -1, 1 /* POLLIN */, 0 };

		if (a->helper_pid > 0 && sys_getppid() == a->helper_pid) {
			pfd.fd = (int32_t)sys2(__NR_pidfd_open, a->helper_pid, 0);
			if (pfd.fd >= 0 && sys_getppid() != a->helper_pid) {
				sys_close(pfd.fd);
				pfd.fd = -1;
			}
		}
		r = sys_write(a->release_fd, &go, 1);
		if (r != 1)
			blob_fail(b, LZ_STEP_RELEASE, r < 0 ? r : -5, 0, 0);
		sys_close(a->release_fd);
		if (pfd.fd >= 0) {
			sys3(__NR_poll, &pfd, 1, 5000);
			sys_close(pfd.fd);
		}
		for (int i = 0; sys_getppid() == a->helper_pid; i++) {
			if (i == 5000)
				blob_fail(b, LZ_STEP_RELEASE, -110 /* ETIMEDOUT */, 1, 0);
			sys_nanosleep(&ms);
		}
	}
	r = sys_prctl(PR_SET_PDEATHSIG, (unsigned long)a->pdeath_sig, 0, 0, 0);
	if (r)
		blob_fail(b, LZ_STEP_RELEASE, r, 2, 0);
}

/*
 * The status pipe stays (the caller writes "OK" on it and closes it), so
 * do the release pipe (blob_release() writes on it and closes it) and the
 * go pipe (blob_wait_tracer()).
 */
void blob_close_fds(struct blob *b)
{
	const int32_t *fds = (const int32_t *)(uintptr_t)b->a->close_fds;

	for (uint32_t i = 0; i < b->a->nr_close_fds; i++) {
		long r;

		if (fds[i] == b->a->status_fd || fds[i] == b->a->release_fd ||
		    fds[i] == b->a->go_fd)
			continue;
		r = sys_close(fds[i]);
		if (r)
			blob_fail(b, LZ_STEP_CLOSE, r, (uint32_t)fds[i], 0);
	}
}

/*
 * The process's POSIX locks, now that no service fd of their files is left
 * to close (a close of any fd of a file drops them all). struct flock of
 * x86_64: l_type, l_whence (shorts), l_start, l_len, l_pid.
 */
void blob_take_locks(struct blob *b)
{
	const struct lz_blob_lock *l = (const struct lz_blob_lock *)(uintptr_t)b->a->locks;

	for (uint32_t i = 0; i < b->a->nr_locks; i++) {
		struct {
			int16_t type, whence;
			int32_t pad0;
			int64_t start, len;
			int32_t pid, pad1;
		} fl = { .type = (int16_t)l[i].type, .start = (int64_t)l[i].start,
			 .len = (int64_t)l[i].len };
		long r = sys_fcntl(l[i].fd, 6 /* F_SETLK */, &fl);

		if (r)
			blob_fail(b, LZ_STEP_LOCK, r, (uint32_t)l[i].fd, l[i].start);
	}
}

/*
 * After "OK" the lazarus parent seizes us with ptrace, then writes one byte
 * here and follows us through rt_sigreturn to unmap the bootstrap area from
 * outside. Blocking here is what lets it catch us in time. EOF means the
 * parent gave up or died: nobody would take the area away, so fail.
 */
void blob_wait_tracer(struct blob *b)
{
	char go;
	long n;

	do
		n = sys_read(b->a->go_fd, &go, 1);
	while (n == -4 /* EINTR */);
	if (n != 1)
		blob_fail(b, LZ_STEP_TRACER, n < 0 ? n : -104 /* ECONNRESET */, 0, 0);
	sys_close(b->a->go_fd);
}
