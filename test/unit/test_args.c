/*
 * test_args.c - the restorer's argument block takes auxv, rlimits and
 * itimers into fixed arrays: what does not fit is refused with a reason,
 * never cut (plugin/args.c).
 */
#include <errno.h>
#include <stdlib.h>

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

static const struct unit_case cases[] = {
	UNIT(test_fits),
	UNIT(test_auxv_too_long),
	UNIT(test_too_many_rlimits),
	UNIT(test_too_many_itimers),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
