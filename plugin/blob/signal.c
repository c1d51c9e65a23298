/*
 * signal.c - put back the signals that were pending at dump time, each with
 * its siginfo as the kernel reported it, in the queue it was in.
 *
 * We send them to ourselves: the kernel lets a process queue any si_code
 * (including the ones of kill() and of the kernel itself) only to itself,
 * and the blob has every signal blocked, so they stay queued, in order,
 * until rt_sigreturn installs the target's mask. A signal that cannot be
 * queued (RLIMIT_SIGPENDING of the user) fails the restore: dropping it
 * silently would be worse.
 */
#include "blob.h"
#include "sys.h"

static int32_t siginfo_signo(const struct lz_blob_siginfo *si)
{
	int32_t signo;

	memcpy(&signo, si->raw, sizeof(signo));
	return signo;
}

void blob_queue_signals(struct blob *b)
{
	const struct lz_blob_args *a = b->a;
	uint32_t n = a->nr_pending + a->nr_shared_pending;
	int pid = (int)sys_getpid(), tid = (int)sys_gettid();

	for (uint32_t i = 0; i < n && i < LZ_BLOB_MAX_SIGINFO; i++) {
		const struct lz_blob_siginfo *si = &a->pending[i];
		int sig = siginfo_signo(si);
		long r;

		if (i < a->nr_pending)
			r = sys_rt_tgsigqueueinfo(pid, tid, sig, si->raw);
		else
			r = sys_rt_sigqueueinfo(pid, sig, si->raw);
		if (r)
			blob_fail(b, LZ_STEP_SIGQUEUE, r, i, (uint64_t)sig);
	}
}
