/*
 * test_args.c - the restorer's argument block takes auxv, rlimits and
 * itimers into fixed arrays: what does not fit is refused with a reason,
 * never cut (plugin/args.c); each thread gets its own lz_blob_thread.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "plugin.h"
#include "restorer.h"

struct fixture {
	MmEntry mm;
	CoreEntry core;
	X8664Regs regs;
	CredsEntry creds;
	TaskEntry task;
	RlimitEntry rl[LZ_BLOB_MAX_RLIMITS + 1], *rlp[LZ_BLOB_MAX_RLIMITS + 1];
	ItimerEntry it[LZ_BLOB_MAX_ITIMERS + 1], *itp[LZ_BLOB_MAX_ITIMERS + 1];
	uint64_t auxv[LZ_BLOB_AUXV_MAX + 8];
	const CoreEntry *cores[1];
	struct plg_images im;
	struct plg_fds fds;
};

/* A process with no VMA, `auxv_words` words of auxv (AT_NULL included), 16 rlimits, 3 itimers. */
static void fixture_init(struct fixture *f, size_t auxv_words)
{
	memset(f, 0, sizeof(*f));
	mm_entry__init(&f->mm);
	core_entry__init(&f->core);
	x86_64_regs__init(&f->regs);
	task_entry__init(&f->task);
	f->core.regs = &f->regs;
	creds_entry__init(&f->creds);
	f->core.creds = &f->creds;
	for (size_t i = 0; i + 2 < auxv_words; i += 2) {
		f->auxv[i] = 6 + i; /* any type but AT_NULL */
		f->auxv[i + 1] = i;
	}
	f->mm.auxv = f->auxv;
	f->mm.n_auxv = auxv_words;
	for (int i = 0; i <= LZ_BLOB_MAX_RLIMITS; i++) {
		rlimit_entry__init(&f->rl[i]);
		f->rl[i].resource = (uint32_t)i;
		f->rlp[i] = &f->rl[i];
	}
	for (int i = 0; i <= LZ_BLOB_MAX_ITIMERS; i++) {
		itimer_entry__init(&f->it[i]);
		f->itp[i] = &f->it[i];
	}
	f->task.rlimits = f->rlp;
	f->task.n_rlimits = LZ_BLOB_MAX_RLIMITS;
	f->task.itimers = f->itp;
	f->task.n_itimers = LZ_BLOB_MAX_ITIMERS;
	f->im.mm = &f->mm;
	f->im.core = &f->core;
	f->cores[0] = &f->core;
	f->im.cores = f->cores;
	f->im.nr_threads = 1;
	f->im.task = &f->task;
	f->fds.uffd = -1;
}

static int build(struct fixture *f, char *why, size_t len)
{
	static struct lz_blob_args a;
	static uint8_t extra[4096];

	memset(&a, 0, sizeof(a));
	return plg_build_args(&a, extra, sizeof(extra), &f->im, &f->fds, &(uint64_t){ 0 }, why,
			      len);
}

static int test_fits(void)
{
	struct fixture f;
	char why[200] = "";

	fixture_init(&f, LZ_BLOB_AUXV_MAX);
	CHECK(build(&f, why, sizeof(why)) == 0);
	return 0;
}

static int test_auxv_too_long(void)
{
	struct fixture f;
	char why[200] = "";

	fixture_init(&f, LZ_BLOB_AUXV_MAX + 2);
	CHECK(build(&f, why, sizeof(why)) == -E2BIG);
	CHECK(!strcmp(why, "mm image: auxv of 66 words, at most 64 can be restored"));
	return 0;
}

static int test_too_many_rlimits(void)
{
	struct fixture f;
	char why[200] = "";

	fixture_init(&f, 8);
	f.task.n_rlimits = LZ_BLOB_MAX_RLIMITS + 1;
	CHECK(build(&f, why, sizeof(why)) == -E2BIG);
	CHECK(!strcmp(why, "task image: 17 rlimits and 3 itimers, at most 16 and 3"));
	return 0;
}

static int test_too_many_itimers(void)
{
	struct fixture f;
	char why[200] = "";

	fixture_init(&f, 8);
	f.task.n_itimers = LZ_BLOB_MAX_ITIMERS + 1;
	CHECK(build(&f, why, sizeof(why)) == -E2BIG);
	return 0;
}

/*
 * Three threads: each its own lz_blob_thread in the extra area, the leader
 * first, its own pending range and affinity words; scheduling state only
 * for the created threads (the leader's is set before the jump).
 */
static int test_threads(void)
{
	static struct lz_blob_args a;
	static uint8_t extra[8192];
	struct fixture f;
	CoreEntry core[3];
	X8664Regs regs[3];
	CredsEntry creds[3];
	const CoreEntry *cores[3];
	uint8_t si[2][LZ_BLOB_SIGINFO_SIZE] = { { 0 } };
	ProtobufCBinaryData pend[2];
	uint64_t aff[2] = { 0x5, 0x1 };
	const struct lz_blob_thread *t;
	char why[200] = "";
	int32_t sig;

	fixture_init(&f, 8);
	for (int i = 0; i < 3; i++) {
		core_entry__init(&core[i]);
		x86_64_regs__init(&regs[i]);
		creds_entry__init(&creds[i]);
		core[i].regs = &regs[i];
		core[i].creds = &creds[i];
		core[i].tid = 100 + (uint32_t)i;
		regs[i].fs_base = 0x1000 * (uint64_t)(i + 1);
		creds[i].uid = creds[i].euid = creds[i].suid = creds[i].fsuid = (uint32_t)i;
		cores[i] = &core[i];
	}
	for (int i = 0; i < 2; i++) {
		sig = 40 + i;
		memcpy(si[i], &sig, sizeof(sig));
		pend[i] = (ProtobufCBinaryData){ .len = LZ_BLOB_SIGINFO_SIZE, .data = si[i] };
	}
	core[2].pending_siginfo = pend;
	core[2].n_pending_siginfo = 2;
	core[0].has_nice = core[1].has_nice = true;
	core[1].nice = 7;
	core[1].cpu_affinity = aff;
	core[1].n_cpu_affinity = 2;
	f.im.core = &core[0];
	f.im.cores = cores;
	f.im.nr_threads = 3;
	CHECK(plg_args_extra(&f.im, &f.fds) <= sizeof(extra));
	memset(&a, 0, sizeof(a));
	CHECK(plg_build_args(&a, extra, sizeof(extra), &f.im, &f.fds, &(uint64_t){ 0 }, why,
			     sizeof(why)) == 0);
	CHECK(a.nr_threads == 3);
	t = plg_args_threads(&a);
	CHECK((const uint8_t *)t >= extra && (const uint8_t *)(t + 3) <= extra + sizeof(extra));
	for (uint32_t i = 0; i < 3; i++) {
		CHECK(t[i].tid == 100 + i && t[i].index == i);
		CHECK(t[i].fs_base == 0x1000 * (i + 1) && t[i].creds.uid == i);
	}
	CHECK(t[0].sched == 0); /* the leader's is the lazarus child's */
	CHECK(t[1].sched == (LZ_BSCHED_NICE | LZ_BSCHED_AFFINITY) && t[1].nice == 7);
	CHECK(t[1].nr_affinity == 2 && ((const uint64_t *)(uintptr_t)t[1].affinity)[0] == 0x5);
	CHECK(t[2].sched == 0);
	CHECK(a.nr_pending == 2 && a.nr_shared_pending == 0);
	CHECK(t[0].nr_pending == 0 && t[1].nr_pending == 0);
	CHECK(t[2].pending_first == 0 && t[2].nr_pending == 2);
	memcpy(&sig, a.pending[1].raw, sizeof(sig));
	CHECK(sig == 41);
	return 0;
}

/* No thread, or more than the blob takes: refused, never cut. */
static int test_thread_count(void)
{
	struct fixture f;
	char why[200] = "";

	fixture_init(&f, 8);
	f.im.nr_threads = 0;
	CHECK(build(&f, why, sizeof(why)) == -E2BIG);
	CHECK(!strcmp(why, "0 threads, at most 1024 can be restored"));
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_fits),
	UNIT(test_auxv_too_long),
	UNIT(test_too_many_rlimits),
	UNIT(test_too_many_itimers),
	UNIT(test_threads),
	UNIT(test_thread_count),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
