/*
 * signal.c - put back the signals that were pending at dump time, each with
 * its siginfo as the kernel reported it, in the queue it was in: each
 * thread its own, the leader the process's.
 *
 * We send them to ourselves: the kernel lets a thread queue any si_code
 * (including the ones of kill() and of the kernel itself) only to itself,
 * and every thread of the blob has every signal blocked, so they stay queued, in order,
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

static void queue_one(struct blob *b, uint32_t i, int pid, int tid)
{
	const struct lz_blob_siginfo *si = &b->a->pending[i];
	int sig = siginfo_signo(si);
	long r = tid ? sys_rt_tgsigqueueinfo(pid, tid, sig, si->raw)
		     : sys_rt_sigqueueinfo(pid, sig, si->raw);

	if (r)
		blob_fail(b, LZ_STEP_SIGQUEUE, r, i, (uint64_t)sig);
}

/*
 * The calling thread's own queue: the kernel takes any si_code only from
 * the thread the signal is for (tgsigqueueinfo to our own tid).
 */
void blob_queue_own_signals(struct blob *b)
{
	const struct lz_blob_thread *t = b->t;
	int pid = (int)sys_getpid(), tid = (int)sys_gettid();

	for (uint32_t i = t->pending_first;
	     i - t->pending_first < t->nr_pending && i < b->a->nr_pending && i < LZ_BLOB_MAX_SIGINFO;
	     i++)
		queue_one(b, i, pid, tid);
}

/* The process's queue, by the leader (whose tid is the pid the kernel wants). */
void blob_queue_signals(struct blob *b)
{
	const struct lz_blob_args *a = b->a;
	uint32_t n = a->nr_pending + a->nr_shared_pending;
	int pid = (int)sys_getpid();

	for (uint32_t i = a->nr_pending; i < n && i < LZ_BLOB_MAX_SIGINFO; i++)
		queue_one(b, i, pid, 0);
}
