/*
 * lazy-ranges.c - the outstanding-page bookkeeping of the lazy-pages daemon:
 * building a layout from the pagemap and the registered ranges, cutting and
 * moving it as the process unmaps and remaps, and picking what to copy next.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lazy-ranges.h"

#define PG LZ_PAGE_SIZE

void lr_init(struct lr_set *s)
{
	memset(s, 0, sizeof(*s));
}

void lr_fini(struct lr_set *s)
{
	free(s->v);
	lr_init(s);
}

static int lr_reserve(struct lr_set *s, uint32_t more)
{
	uint32_t cap = s->cap ? s->cap : 16;
	struct lr_run *v;

	if (s->nr + more <= s->cap)
		return 0;
	while (cap < s->nr + more)
		cap *= 2;
	v = realloc(s->v, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->v = v;
	s->cap = cap;
	return 0;
}

int lr_copy(struct lr_set *dst, const struct lr_set *src)
{
	lr_init(dst);
	if (lr_reserve(dst, src->nr))
		return -ENOMEM;
	if (src->nr)
		memcpy(dst->v, src->v, src->nr * sizeof(*src->v));
	dst->nr = src->nr;
	return 0;
}

int lr_append(struct lr_set *s, uint64_t start, uint64_t npages, uint64_t idx, bool join)
{
	struct lr_run *last = s->nr ? &s->v[s->nr - 1] : NULL;

	if (!npages)
		return 0;
	if (last && start < lr_end(last))
		return -EINVAL;
	if (join && last && lr_end(last) == start && last->idx + last->npages == idx) {
		last->npages += npages;
		return 0;
	}
	if (lr_reserve(s, 1))
		return -ENOMEM;
	s->v[s->nr++] = (struct lr_run){ .start = start, .npages = npages, .idx = idx };
	return 0;
}

/* First run that ends above addr (s->nr if none). */
static uint32_t lr_lower_bound(const struct lr_set *s, uint64_t addr)
{
	uint32_t lo = 0, hi = s->nr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (lr_end(&s->v[mid]) <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int lr_find(const struct lr_set *s, uint64_t addr)
{
	uint32_t i = lr_lower_bound(s, addr);

	if (i < s->nr && s->v[i].start <= addr)
		return (int)i;
	return -1;
}

void lr_gap(const struct lr_set *s, uint64_t addr, uint64_t *lo, uint64_t *hi)
{
	uint32_t i = lr_lower_bound(s, addr);

	*lo = i ? lr_end(&s->v[i - 1]) : 0;
	*hi = i < s->nr ? s->v[i].start : UINT64_MAX;
}

static int range_cmp(const void *a, const void *b)
{
	const struct lr_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

int lr_ranges_sort(struct lr_range *r, size_t nr)
{
	qsort(r, nr, sizeof(*r), range_cmp);
	for (size_t i = 0; i < nr; i++) {
		if ((r[i].start | r[i].end) & (PG - 1) || r[i].end <= r[i].start)
			return -EINVAL;
		if (i && r[i].start < r[i - 1].end)
			return -EINVAL;
	}
	return 0;
}

int lr_build(struct lr_set *s, const struct lr_run *lazy, size_t nr_lazy,
	     const struct lr_range *ranges, size_t nr_ranges)
{
	size_t ri = 0, last_ri = SIZE_MAX;
	int ret;

	lr_init(s);
	for (size_t li = 0; li < nr_lazy; li++) {
		uint64_t ls = lazy[li].start, le = lr_end(&lazy[li]);

		while (ri < nr_ranges && ranges[ri].end <= ls)
			ri++;
		for (size_t k = ri; k < nr_ranges && ranges[k].start < le; k++) {
			uint64_t ps = MAX(ls, ranges[k].start), pe = MIN(le, ranges[k].end);

			if (ps >= pe)
				continue;
			ret = lr_append(s, ps, (pe - ps) / PG, lazy[li].idx + (ps - ls) / PG,
					k == last_ri);
			if (ret) {
				lr_fini(s);
				return ret;
			}
			last_ri = k;
		}
	}
	return 0;
}

/* Split the runs of `in` at [start, end): pieces inside go to `in_cut`. */
static int lr_split(const struct lr_set *in, uint64_t start, uint64_t end, struct lr_set *keep,
		    struct lr_set *in_cut)
{
	int ret = 0;

	lr_init(keep);
	for (uint32_t i = 0; i < in->nr && !ret; i++) {
		const struct lr_run *r = &in->v[i];
		uint64_t rs = r->start, re = lr_end(r);
		uint64_t cs = MAX(rs, start), ce = MIN(re, end);

		if (cs >= ce) {
			ret = lr_append(keep, rs, r->npages, r->idx, false);
			continue;
		}
		if (rs < cs)
			ret = lr_append(keep, rs, (cs - rs) / PG, r->idx, false);
		if (!ret && in_cut)
			ret = lr_append(in_cut, cs, (ce - cs) / PG, r->idx + (cs - rs) / PG, false);
		if (!ret && ce < re)
			ret = lr_append(keep, ce, (re - ce) / PG, r->idx + (ce - rs) / PG, false);
	}
	if (ret)
		lr_fini(keep);
	return ret;
}

int lr_cut(struct lr_set *s, uint64_t start, uint64_t end, struct lr_set *cut)
{
	struct lr_set keep;
	int ret;

	start = ALIGN_DOWN(start, PG);
	end = ALIGN_UP(end, PG);
	if (start >= end)
		return 0;
	ret = lr_split(s, start, end, &keep, cut);
	if (ret)
		return ret;
	lr_fini(s);
	*s = keep;
	return 0;
}

/* Merge the sorted, disjoint sets a and b into out. */
static int lr_merge(const struct lr_set *a, const struct lr_set *b, struct lr_set *out)
{
	uint32_t i = 0, j = 0;
	int ret = 0;

	lr_init(out);
	while (!ret && (i < a->nr || j < b->nr)) {
		const struct lr_run *r;

		if (j >= b->nr || (i < a->nr && a->v[i].start < b->v[j].start))
			r = &a->v[i++];
		else
			r = &b->v[j++];
		ret = lr_append(out, r->start, r->npages, r->idx, false);
	}
	if (ret)
		lr_fini(out);
	return ret;
}

int lr_remap(struct lr_set *s, uint64_t from, uint64_t to, uint64_t len, struct lr_set *dropped)
{
	struct lr_set moved, merged;
	int ret;

	if ((from | to | len) & (PG - 1))
		return -EINVAL;
	lr_init(&moved);
	ret = lr_cut(s, from, from + len, &moved);
	if (!ret)
		ret = lr_cut(s, to, to + len, dropped);
	if (ret)
		goto out;
	for (uint32_t i = 0; i < moved.nr; i++)
		moved.v[i].start = moved.v[i].start - from + to;
	ret = lr_merge(s, &moved, &merged);
	if (ret)
		goto out;
	lr_fini(s);
	*s = merged;
out:
	lr_fini(&moved);
	return ret;
}

void lr_mark(uint64_t *bm, uint64_t i, uint64_t n)
{
	for (; n && (i & 63); i++, n--)
		bm[i >> 6] |= (uint64_t)1 << (i & 63);
	for (; n >= 64; i += 64, n -= 64)
		bm[i >> 6] = ~(uint64_t)0;
	for (; n; i++, n--)
		bm[i >> 6] |= (uint64_t)1 << (i & 63);
}

uint64_t lr_count_clear(const uint64_t *bm, uint64_t i, uint64_t n)
{
	uint64_t clear = 0;

	for (; n && (i & 63); i++, n--)
		clear += !lr_done(bm, i);
	for (; n >= 64; i += 64, n -= 64)
		clear += 64 - (uint64_t)__builtin_popcountll(bm[i >> 6]);
	for (; n; i++, n--)
		clear += !lr_done(bm, i);
	return clear;
}

uint64_t lr_outstanding(const struct lr_set *s, const uint64_t *done)
{
	uint64_t n = 0;

	for (uint32_t i = 0; i < s->nr; i++)
		n += lr_count_clear(done, s->v[i].idx, s->v[i].npages);
	return n;
}

/* First clear bit in [i, end), or end. */
static uint64_t find_clear(const uint64_t *bm, uint64_t i, uint64_t end)
{
	while (i < end) {
		uint64_t w = ~bm[i >> 6] >> (i & 63);

		if (w) {
			i += (uint64_t)__builtin_ctzll(w);
			return MIN(i, end);
		}
		i = ALIGN_DOWN(i, 64) + 64;
	}
	return end;
}

int lr_fault_chunk(const struct lr_set *s, const uint64_t *done, uint64_t addr, uint64_t win,
		   struct lr_run *chunk)
{
	int ri = lr_find(s, addr);
	const struct lr_run *r;
	uint64_t page, first, last, wlo, whi;

	if (ri < 0 || !win || (win & (win - 1)))
		return -ENOENT;
	r = &s->v[ri];
	page = (addr - r->start) / PG; /* page within the run */
	if (lr_done(done, r->idx + page))
		return -ENOENT;
	/* The aligned window, clipped to the run, in run-relative pages. */
	wlo = ALIGN_DOWN(addr / PG, win);
	whi = wlo + win;
	wlo = MAX(wlo, r->start / PG) - r->start / PG;
	whi = MIN(whi, r->start / PG + r->npages) - r->start / PG;
	first = page;
	while (first > wlo && !lr_done(done, r->idx + first - 1))
		first--;
	last = page + 1;
	while (last < whi && !lr_done(done, r->idx + last))
		last++;
	chunk->start = r->start + first * PG;
	chunk->npages = last - first;
	chunk->idx = r->idx + first;
	return 0;
}

/* Outstanding chunk in run r at or above addr, or -ENOENT. */
static int run_chunk_from(const struct lr_run *r, const uint64_t *done, uint64_t addr,
			  uint64_t max, struct lr_run *chunk)
{
	uint64_t from = addr > r->start ? (addr - r->start) / PG : 0;
	uint64_t first = find_clear(done, r->idx + from, r->idx + r->npages);
	uint64_t last;

	if (first == r->idx + r->npages)
		return -ENOENT;
	last = first + 1;
	while (last < r->idx + r->npages && last - first < max && !lr_done(done, last))
		last++;
	chunk->start = r->start + (first - r->idx) * PG;
	chunk->npages = last - first;
	chunk->idx = first;
	return 0;
}

int lr_next_chunk(const struct lr_set *s, const uint64_t *done, uint64_t cursor, uint64_t max,
		  struct lr_run *chunk)
{
	uint32_t first = lr_lower_bound(s, cursor);

	if (!max)
		return -EINVAL;
	for (uint32_t n = 0; n < s->nr; n++) {
		uint32_t i = (first + n) % s->nr;
		/* The run holding the cursor is scanned from the cursor on; the
		 * part below it comes last, when the scan has gone round. */
		uint64_t from = (n == 0 && first < s->nr) ? cursor : 0;

		if (!run_chunk_from(&s->v[i], done, from, max, chunk))
			return 0;
	}
	if (first < s->nr && s->v[first].start < cursor)
		return run_chunk_from(&s->v[first], done, 0, max, chunk);
	return -ENOENT;
}
