/*
 * test_lazy_ranges.c - the lazy-pages daemon's range bookkeeping: building a
 * layout from lazy runs and registered ranges, cutting (munmap, DONTNEED),
 * moving (mremap), and choosing fault-around and fill chunks. Table-driven;
 * addresses are written in pages from BASE.
 */
#include <errno.h>
#include <stdint.h>

#include "unit.h"
#include "lazy-ranges.h"

#define BASE 0x7f0000000000ULL
#define A(p) (BASE + (uint64_t)(p) * 4096)
#define MAXR 8

struct run3 {
	uint64_t start, npages, idx; /* start in pages from BASE */
};

static void load(struct lr_set *s, const struct run3 *r, int n)
{
	lr_init(s);
	for (int i = 0; i < n; i++)
		lr_append(s, A(r[i].start), r[i].npages, r[i].idx, false);
}

static int same(const struct lr_set *s, const struct run3 *want, int n)
{
	if ((int)s->nr != n) {
		fprintf(stderr, "  got %u runs, want %d\n", s->nr, n);
		for (uint32_t i = 0; i < s->nr; i++)
			fprintf(stderr, "    {%llu, %llu, %llu}\n",
				(unsigned long long)((s->v[i].start - BASE) / 4096),
				(unsigned long long)s->v[i].npages, (unsigned long long)s->v[i].idx);
		return 0;
	}
	for (int i = 0; i < n; i++)
		if (s->v[i].start != A(want[i].start) || s->v[i].npages != want[i].npages ||
		    s->v[i].idx != want[i].idx) {
			fprintf(stderr, "  run %d: got {%llu, %llu, %llu} want {%llu, %llu, %llu}\n", i,
				(unsigned long long)((s->v[i].start - BASE) / 4096),
				(unsigned long long)s->v[i].npages, (unsigned long long)s->v[i].idx,
				(unsigned long long)want[i].start, (unsigned long long)want[i].npages,
				(unsigned long long)want[i].idx);
			return 0;
		}
	return 1;
}

/* ------------------------------------------------------------ lr_build */

static const struct {
	const char *name;
	struct run3 lazy[MAXR];
	int nr_lazy;
	uint64_t ranges[MAXR][2]; /* [start, end) in pages */
	int nr_ranges;
	struct run3 want[MAXR];
	int nr_want;
} build_cases[] = {
	{ "one run inside one range", { { 10, 5, 0 } }, 1, { { 0, 100 } }, 1, { { 10, 5, 0 } }, 1 },
	{ "adjacent runs join inside a range",
	  { { 10, 5, 0 }, { 15, 3, 5 } }, 2, { { 0, 100 } }, 1, { { 10, 8, 0 } }, 1 },
	{ "a run is split where a range ends (two VMAs)",
	  { { 10, 10, 0 } }, 1, { { 0, 15 }, { 15, 30 } }, 2, { { 10, 5, 0 }, { 15, 5, 5 } }, 2 },
	{ "runs with a hole stay apart",
	  { { 10, 2, 0 }, { 13, 2, 2 } }, 2, { { 0, 100 } }, 1, { { 10, 2, 0 }, { 13, 2, 2 } }, 2 },
	{ "pages outside every range are dropped",
	  { { 0, 10, 0 }, { 20, 10, 10 } }, 2, { { 5, 25 } }, 1, { { 5, 5, 5 }, { 20, 5, 10 } }, 2 },
	{ "a range gap inside a run",
	  { { 0, 30, 0 } }, 1, { { 0, 10 }, { 20, 40 } }, 2, { { 0, 10, 0 }, { 20, 10, 20 } }, 2 },
	{ "no ranges, no layout", { { 0, 30, 0 } }, 1, { { 0 } }, 0, { { 0 } }, 0 },
	{ "one range over several runs",
	  { { 0, 4, 0 }, { 4, 4, 4 }, { 9, 1, 8 } }, 3, { { 2, 9 } }, 1,
	  { { 2, 6, 2 }, { 9, 0, 0 } }, 1 },
};

static int test_build(void)
{
	for (size_t c = 0; c < ARRAY_SIZE(build_cases); c++) {
		struct lr_run lazy[MAXR];
		struct lr_range ranges[MAXR];
		struct lr_set s;

		for (int i = 0; i < build_cases[c].nr_lazy; i++)
			lazy[i] = (struct lr_run){ A(build_cases[c].lazy[i].start),
						   build_cases[c].lazy[i].npages,
						   build_cases[c].lazy[i].idx };
		for (int i = 0; i < build_cases[c].nr_ranges; i++)
			ranges[i] = (struct lr_range){ A(build_cases[c].ranges[i][0]),
						       A(build_cases[c].ranges[i][1]) };
		CHECK(lr_build(&s, lazy, (size_t)build_cases[c].nr_lazy, ranges,
			       (size_t)build_cases[c].nr_ranges) == 0);
		if (!same(&s, build_cases[c].want, build_cases[c].nr_want)) {
			fprintf(stderr, "  case: %s\n", build_cases[c].name);
			return 1;
		}
		lr_fini(&s);
	}
	return 0;
}

/* --------------------------------------------------------- lr_cut/remap */

enum op { CUT, REMAP };

static const struct {
	const char *name;
	struct run3 init[MAXR];
	int nr_init;
	enum op op;
	uint64_t a, b, len; /* CUT [a, b); REMAP from a to b, len pages */
	struct run3 want[MAXR];
	int nr_want;
	uint64_t removed_pages; /* pages cut (CUT) or dropped at the destination (REMAP) */
} edit_cases[] = {
	{ "cut the middle of a run", { { 0, 10, 0 } }, 1, CUT, 3, 5, 0,
	  { { 0, 3, 0 }, { 5, 5, 5 } }, 2, 2 },
	{ "cut the head", { { 0, 10, 0 } }, 1, CUT, 0, 4, 0, { { 4, 6, 4 } }, 1, 4 },
	{ "cut the tail", { { 0, 10, 0 } }, 1, CUT, 8, 20, 0, { { 0, 8, 0 } }, 1, 2 },
	{ "cut across two runs", { { 0, 4, 0 }, { 6, 4, 10 } }, 2, CUT, 2, 8, 0,
	  { { 0, 2, 0 }, { 8, 2, 12 } }, 2, 4 },
	{ "cut a hole: nothing changes", { { 0, 4, 0 }, { 6, 4, 10 } }, 2, CUT, 4, 6, 0,
	  { { 0, 4, 0 }, { 6, 4, 10 } }, 2, 0 },
	{ "cut everything", { { 0, 4, 0 }, { 6, 4, 10 } }, 2, CUT, 0, 100, 0, { { 0 } }, 0, 8 },
	{ "remap a whole run up", { { 0, 4, 0 }, { 10, 4, 4 } }, 2, REMAP, 0, 50, 4,
	  { { 10, 4, 4 }, { 50, 4, 0 } }, 2, 0 },
	{ "remap part of a run keeps indices", { { 0, 10, 0 } }, 1, REMAP, 2, 100, 3,
	  { { 0, 2, 0 }, { 5, 5, 5 }, { 100, 3, 2 } }, 3, 0 },
	{ "remap down, below every run", { { 100, 4, 7 } }, 1, REMAP, 100, 1, 8,
	  { { 1, 4, 7 } }, 1, 0 },
	{ "remap grows: the destination's old runs are dropped",
	  { { 0, 4, 0 }, { 20, 4, 4 } }, 2, REMAP, 0, 18, 8, { { 18, 4, 0 } }, 1, 4 },
	{ "remap of a hole changes nothing", { { 0, 4, 0 } }, 1, REMAP, 10, 30, 4,
	  { { 0, 4, 0 } }, 1, 0 },
	{ "remap between two runs", { { 0, 2, 0 }, { 10, 2, 2 }, { 20, 2, 4 } }, 3, REMAP,
	  10, 15, 2, { { 0, 2, 0 }, { 15, 2, 2 }, { 20, 2, 4 } }, 3, 0 },
};

static int test_edit(void)
{
	for (size_t c = 0; c < ARRAY_SIZE(edit_cases); c++) {
		struct lr_set s, removed;
		uint64_t pages = 0;

		load(&s, edit_cases[c].init, edit_cases[c].nr_init);
		lr_init(&removed);
		if (edit_cases[c].op == CUT)
			CHECK(lr_cut(&s, A(edit_cases[c].a), A(edit_cases[c].b), &removed) == 0);
		else
			CHECK(lr_remap(&s, A(edit_cases[c].a), A(edit_cases[c].b),
				       edit_cases[c].len * 4096, &removed) == 0);
		for (uint32_t i = 0; i < removed.nr; i++)
			pages += removed.v[i].npages;
		if (!same(&s, edit_cases[c].want, edit_cases[c].nr_want) ||
		    pages != edit_cases[c].removed_pages) {
			fprintf(stderr, "  case: %s (removed %llu pages)\n", edit_cases[c].name,
				(unsigned long long)pages);
			return 1;
		}
		lr_fini(&s);
		lr_fini(&removed);
	}
	return 0;
}

/* The identity of pages survives any sequence of moves: page idx k is at the
 * address its run says, and no page is lost or duplicated. */
static int test_remap_roundtrip(void)
{
	struct run3 init[] = { { 0, 64, 0 }, { 100, 64, 64 } };
	struct lr_set s;

	load(&s, init, 2);
	CHECK(lr_remap(&s, A(10), A(1000), 20 * 4096, NULL) == 0);
	CHECK(lr_remap(&s, A(1000), A(500), 20 * 4096, NULL) == 0);
	CHECK(lr_remap(&s, A(500), A(10), 20 * 4096, NULL) == 0);
	struct run3 want[] = { { 0, 10, 0 }, { 10, 20, 10 }, { 30, 34, 30 }, { 100, 64, 64 } };
	CHECK(same(&s, want, 4));
	lr_fini(&s);
	return 0;
}

/* -------------------------------------------------------- chunks */

static const struct {
	const char *name;
	struct run3 runs[MAXR];
	int nr_runs;
	uint64_t done[MAXR][2]; /* [idx, n) marked done */
	int nr_done;
	uint64_t addr, win;	/* fault page, window pages */
	int ret;
	struct run3 want;
} fault_cases[] = {
	{ "window inside a run", { { 0, 64, 0 } }, 1, { { 0 } }, 0, 21, 16, 0, { 16, 16, 16 } },
	{ "window clipped at the run start", { { 20, 64, 0 } }, 1, { { 0 } }, 0, 21, 16, 0,
	  { 20, 12, 0 } },
	{ "window clipped at the run end (VMA end)", { { 0, 20, 0 } }, 1, { { 0 } }, 0, 17, 16, 0,
	  { 16, 4, 16 } },
	{ "done pages bound the chunk", { { 0, 64, 0 } }, 1, { { 18, 1 }, { 25, 2 } }, 2, 21, 16, 0,
	  { 19, 6, 19 } },
	{ "fault on a done page", { { 0, 64, 0 } }, 1, { { 21, 1 } }, 1, 21, 16, -ENOENT, { 0 } },
	{ "fault outside any run", { { 0, 8, 0 } }, 1, { { 0 } }, 0, 9, 16, -ENOENT, { 0 } },
	{ "single-page window", { { 0, 64, 0 } }, 1, { { 0 } }, 0, 5, 1, 0, { 5, 1, 5 } },
	{ "indices follow a moved run", { { 100, 8, 40 } }, 1, { { 41, 1 } }, 1, 103, 4, 0,
	  { 102, 2, 42 } },
};

static int test_fault_chunk(void)
{
	for (size_t c = 0; c < ARRAY_SIZE(fault_cases); c++) {
		uint64_t done[4] = { 0 };
		struct lr_set s;
		struct lr_run ch = { 0 };
		int ret;

		load(&s, fault_cases[c].runs, fault_cases[c].nr_runs);
		for (int i = 0; i < fault_cases[c].nr_done; i++)
			lr_mark(done, fault_cases[c].done[i][0], fault_cases[c].done[i][1]);
		ret = lr_fault_chunk(&s, done, A(fault_cases[c].addr) + 123, fault_cases[c].win, &ch);
		if (ret != fault_cases[c].ret ||
		    (!ret && (ch.start != A(fault_cases[c].want.start) ||
			      ch.npages != fault_cases[c].want.npages ||
			      ch.idx != fault_cases[c].want.idx))) {
			fprintf(stderr, "  case %s: ret %d chunk {%llu, %llu, %llu}\n",
				fault_cases[c].name, ret,
				(unsigned long long)((ch.start - BASE) / 4096),
				(unsigned long long)ch.npages, (unsigned long long)ch.idx);
			return 1;
		}
		lr_fini(&s);
	}
	return 0;
}

static const struct {
	const char *name;
	struct run3 runs[MAXR];
	int nr_runs;
	uint64_t done[MAXR][2];
	int nr_done;
	uint64_t cursor, max;
	int ret;
	struct run3 want;
} fill_cases[] = {
	{ "from the bottom", { { 0, 64, 0 } }, 1, { { 0 } }, 0, 0, 16, 0, { 0, 16, 0 } },
	{ "from the cursor", { { 0, 64, 0 } }, 1, { { 0 } }, 0, 40, 16, 0, { 40, 16, 40 } },
	{ "stops at the run end", { { 0, 20, 0 }, { 20, 20, 20 } }, 2, { { 0 } }, 0, 12, 16, 0,
	  { 12, 8, 12 } },
	{ "skips done pages", { { 0, 64, 0 } }, 1, { { 0, 10 }, { 12, 1 } }, 2, 0, 16, 0,
	  { 10, 2, 10 } },
	{ "goes on to the next run", { { 0, 8, 0 }, { 50, 8, 8 } }, 2, { { 0, 8 } }, 1, 0, 16, 0,
	  { 50, 8, 8 } },
	{ "wraps round below the cursor", { { 0, 8, 0 }, { 50, 8, 8 } }, 2, { { 8, 8 } }, 1, 55,
	  16, 0, { 0, 8, 0 } },
	{ "wraps into the cursor's own run", { { 0, 64, 0 } }, 1, { { 30, 34 } }, 1, 40, 16, 0,
	  { 0, 16, 0 } },
	{ "cursor above every run", { { 0, 8, 0 } }, 1, { { 0 } }, 0, 1000, 16, 0, { 0, 8, 0 } },
	{ "nothing outstanding", { { 0, 8, 0 } }, 1, { { 0, 8 } }, 1, 0, 16, -ENOENT, { 0 } },
};

static int test_next_chunk(void)
{
	for (size_t c = 0; c < ARRAY_SIZE(fill_cases); c++) {
		uint64_t done[4] = { 0 };
		struct lr_set s;
		struct lr_run ch = { 0 };
		int ret;

		load(&s, fill_cases[c].runs, fill_cases[c].nr_runs);
		for (int i = 0; i < fill_cases[c].nr_done; i++)
			lr_mark(done, fill_cases[c].done[i][0], fill_cases[c].done[i][1]);
		ret = lr_next_chunk(&s, done, A(fill_cases[c].cursor), fill_cases[c].max, &ch);
		if (ret != fill_cases[c].ret ||
		    (!ret && (ch.start != A(fill_cases[c].want.start) ||
			      ch.npages != fill_cases[c].want.npages ||
			      ch.idx != fill_cases[c].want.idx))) {
			fprintf(stderr, "  case %s: ret %d chunk {%llu, %llu, %llu}\n",
				fill_cases[c].name, ret,
				(unsigned long long)((ch.start - BASE) / 4096),
				(unsigned long long)ch.npages, (unsigned long long)ch.idx);
			return 1;
		}
		lr_fini(&s);
	}
	return 0;
}

/* Filling chunk after chunk places every outstanding page exactly once. */
static int test_fill_covers_all(void)
{
	struct run3 runs[] = { { 0, 100, 0 }, { 200, 3, 100 }, { 300, 700, 103 } };
	uint64_t done[16] = { 0 }, placed = 0, cursor = A(250);
	struct lr_set s;
	struct lr_run ch;

	load(&s, runs, 3);
	lr_mark(done, 5, 7);
	lr_mark(done, 500, 1);
	CHECK(lr_outstanding(&s, done) == 803 - 8);
	while (lr_next_chunk(&s, done, cursor, 64, &ch) == 0) {
		CHECK(lr_count_clear(done, ch.idx, ch.npages) == ch.npages);
		lr_mark(done, ch.idx, ch.npages);
		placed += ch.npages;
		cursor = lr_end(&ch);
	}
	CHECK(placed == 803 - 8);
	CHECK(lr_outstanding(&s, done) == 0);
	lr_fini(&s);
	return 0;
}

static int test_bitmap(void)
{
	uint64_t bm[4] = { 0 };

	lr_mark(bm, 3, 130);
	CHECK(!lr_done(bm, 2) && lr_done(bm, 3) && lr_done(bm, 132) && !lr_done(bm, 133));
	CHECK(lr_count_clear(bm, 0, 256) == 256 - 130);
	CHECK(lr_count_clear(bm, 60, 10) == 0);
	CHECK(lr_count_clear(bm, 130, 10) == 7);
	return 0;
}

static int test_ranges_sort(void)
{
	struct lr_range ok[] = { { A(10), A(20) }, { A(0), A(10) }, { A(30), A(31) } };
	struct lr_range overlap[] = { { A(0), A(10) }, { A(5), A(20) } };
	struct lr_range empty[] = { { A(5), A(5) } };
	struct lr_range unaligned[] = { { A(0) + 1, A(5) } };

	CHECK(lr_ranges_sort(ok, 3) == 0);
	CHECK(ok[0].start == A(0) && ok[1].start == A(10) && ok[2].start == A(30));
	CHECK(lr_ranges_sort(overlap, 2) == -EINVAL);
	CHECK(lr_ranges_sort(empty, 1) == -EINVAL);
	CHECK(lr_ranges_sort(unaligned, 1) == -EINVAL);
	return 0;
}

static int test_gap(void)
{
	struct run3 runs[] = { { 10, 5, 0 }, { 20, 5, 5 } };
	uint64_t lo, hi;
	struct lr_set s;

	load(&s, runs, 2);
	lr_gap(&s, A(17), &lo, &hi);
	CHECK(lo == A(15) && hi == A(20));
	lr_gap(&s, A(3), &lo, &hi);
	CHECK(lo == 0 && hi == A(10));
	lr_gap(&s, A(30), &lo, &hi);
	CHECK(lo == A(25) && hi == UINT64_MAX);
	lr_fini(&s);
	return 0;
}

static int test_append_rejects_overlap(void)
{
	struct lr_set s;

	lr_init(&s);
	CHECK(lr_append(&s, A(10), 4, 0, true) == 0);
	CHECK(lr_append(&s, A(12), 4, 4, true) == -EINVAL);
	CHECK(lr_append(&s, A(14), 4, 4, true) == 0 && s.nr == 1 && s.v[0].npages == 8);
	CHECK(lr_append(&s, A(18), 4, 9, true) == 0 && s.nr == 2);
	CHECK(lr_find(&s, A(13)) == 0 && lr_find(&s, A(18)) == 1 && lr_find(&s, A(22)) == -1);
	lr_fini(&s);
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_build),
	UNIT(test_edit),
	UNIT(test_remap_roundtrip),
	UNIT(test_fault_chunk),
	UNIT(test_next_chunk),
	UNIT(test_fill_covers_all),
	UNIT(test_bitmap),
	UNIT(test_ranges_sort),
	UNIT(test_gap),
	UNIT(test_append_rejects_overlap),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
