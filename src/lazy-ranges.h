/*
 * lazy-ranges.h - the outstanding pages of one process.
 *
 * The layout is a sorted set of runs: `npages` pages at the current address
 * `start`, whose image pages are numbered idx, idx+1, ... (the index is the
 * page's identity: it never changes when the mapping moves). A run never
 * crosses a registered range (a VMA), so one UFFDIO_COPY never does either.
 * Which pages are already in place is a bitmap indexed by page index, the
 * "done" bitmap. A page is outstanding when it is in the layout and its bit
 * is clear.
 *
 * Layout changes (remap, unmap, remove) are rare and build a new array;
 * marking pages done is a bit set. Pure logic, no syscalls: unit-tested in
 * test/unit/test_lazy_ranges.c. Functions return 0 or -errno.
 */
#ifndef LZ_LAZY_RANGES_H
#define LZ_LAZY_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "compiler.h"

struct lr_run {
	uint64_t start;	 /* current address, page aligned */
	uint64_t npages;
	uint64_t idx;	 /* page index of the first page */
};

struct lr_set {
	struct lr_run *v;
	uint32_t nr, cap;
};

struct lr_range {
	uint64_t start, end; /* [start, end), page aligned */
};

static inline uint64_t lr_end(const struct lr_run *r)
{
	return r->start + (r->npages << LZ_PAGE_SHIFT);
}

void lr_init(struct lr_set *s);
void lr_fini(struct lr_set *s);
int lr_copy(struct lr_set *dst, const struct lr_set *src);
/* Append a run above every run in s; joined with the last one when `join`
 * and it continues it in both address and index. */
int lr_append(struct lr_set *s, uint64_t start, uint64_t npages, uint64_t idx, bool join);
/* Index of the run that holds addr, or -1. */
int lr_find(const struct lr_set *s, uint64_t addr);

/*
 * Sort ranges by start and check them: page aligned, non-empty, not
 * overlapping (-EINVAL otherwise). Touching ranges stay separate: they are
 * separate VMAs.
 */
int lr_ranges_sort(struct lr_range *r, size_t nr);

/*
 * The layout of a freshly restored process: the lazy runs of its pagemap
 * (sorted by address, each {vaddr, npages, idx}) clipped to the registered
 * ranges, split where a range ends, joined where a run continues within a
 * range. Pages outside every range are not the daemon's.
 */
int lr_build(struct lr_set *s, const struct lr_run *lazy, size_t nr_lazy,
	     const struct lr_range *ranges, size_t nr_ranges);

/* The widest [*lo, *hi) around addr that holds no run (addr not in a run):
 * memory there was never dumped, or was dropped since. */
void lr_gap(const struct lr_set *s, uint64_t addr, uint64_t *lo, uint64_t *hi);

/* Remove [start, end) (munmap, MADV_DONTNEED); what was removed goes to cut
 * (may be NULL), in address order. */
int lr_cut(struct lr_set *s, uint64_t start, uint64_t end, struct lr_set *cut);

/*
 * mremap moved [from, from+len) to [to, to+len): the runs there move along
 * and keep their indices. Runs already at the destination are dropped into
 * `dropped` (may be NULL): the kernel unmapped whatever was there.
 */
int lr_remap(struct lr_set *s, uint64_t from, uint64_t to, uint64_t len, struct lr_set *dropped);

/* --- done bitmap --- */
static inline bool lr_done(const uint64_t *bm, uint64_t i)
{
	return bm[i >> 6] & ((uint64_t)1 << (i & 63));
}
void lr_mark(uint64_t *bm, uint64_t i, uint64_t n);
/* Pages in [i, i+n) whose bit is clear. */
uint64_t lr_count_clear(const uint64_t *bm, uint64_t i, uint64_t n);
/* Outstanding pages of the whole layout. */
uint64_t lr_outstanding(const struct lr_set *s, const uint64_t *done);

/*
 * What to resolve for a fault at addr: the outstanding pages next to addr
 * (contiguous, addr's page included) inside the `win`-page window aligned to
 * win that holds addr, and inside addr's run. -ENOENT when addr's page is
 * not outstanding. win must be a power of two.
 */
int lr_fault_chunk(const struct lr_set *s, const uint64_t *done, uint64_t addr, uint64_t win,
		   struct lr_run *chunk);

/*
 * Background fill: the first outstanding page at or above `cursor` (going
 * round to the lowest address once), plus the outstanding pages that follow
 * it in its run, at most max. -ENOENT when nothing is outstanding.
 */
int lr_next_chunk(const struct lr_set *s, const uint64_t *done, uint64_t cursor, uint64_t max,
		  struct lr_run *chunk);

#endif
