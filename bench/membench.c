/*
 * membench.c - the memory baselines `make bench` compares Lazarus with:
 *
 *   memcpy        one memcpy() of a large buffer into another, both already
 *                 populated (GB/s): what copying costs once no page has to be
 *                 allocated;
 *   first_touch   one store to each 4 KiB page of a fresh private anonymous
 *                 mapping with THP off (ns per page): allocating, zeroing and
 *                 mapping a page, plus the page-fault exception;
 *   populate      MADV_POPULATE_WRITE of a fresh mapping, THP off (ns per
 *                 page): the same allocation without one exception per page,
 *                 how an eager restore can fill memory. The difference from
 *                 first_touch is the cost of a user-mode page fault here;
 *   read_after_populate   then one read of each of those pages (ns per
 *                 page): the first user access to a PTE the kernel
 *                 installed, which every restored page gets;
 *   read_present  a second read pass: touching a present page.
 *
 *   membench [--mib N] [--touch-mib T] [--reps R] [--floor]
 *
 * memcpy copies N MiB (default 256), the page tests map T MiB (default 64:
 * a first touch costs ~10 us per page on this VM); R repetitions (default 7).
 * --floor: memcpy and populate alone (no first_touch), what bench.py's
 * eager-restore floor is made of, measured right before and right after
 * each eager restore it judges.
 *
 * Output: one JSON object (bench.h).
 */
#include <getopt.h>
#include <stdbool.h>
#include <sys/mman.h>

#include "bench.h"

#define PROG "membench"

struct opts {
	size_t len;	/* bytes per memcpy buffer */
	size_t touch_len; /* bytes per mapping of the page tests */
	int reps;
	bool floor_only; /* memcpy and populate alone */
};

static void parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "touch-mib", required_argument, NULL, 't' },
		{ "reps", required_argument, NULL, 'r' },
		{ "floor", no_argument, NULL, 'f' },
		{ 0 },
	};
	int c;

	o->len = 256UL << 20;
	o->touch_len = 64UL << 20;
	o->reps = 7;
	o->floor_only = false;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		if (c == 'm')
			o->len = (size_t)parse_long(PROG, "--mib", optarg, 1, 65536) << 20;
		else if (c == 't')
			o->touch_len = (size_t)parse_long(PROG, "--touch-mib", optarg, 1, 65536) << 20;
		else if (c == 'r')
			o->reps = (int)parse_long(PROG, "--reps", optarg, 1, 1000);
		else if (c == 'f')
			o->floor_only = true;
		else
			exit(2);
	}
}

static void *map_anon(size_t len, const char *what)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die(PROG, "mmap %zu MiB for %s", len >> 20, what);
	return p;
}

/* GB/s of one memcpy of o->len bytes, per repetition. */
static void bench_memcpy(const struct opts *o, double *gbps)
{
	char *src = map_anon(o->len, "memcpy source");
	char *dst = map_anon(o->len, "memcpy destination");

	/* Populate both: the figure is the copy, not page allocation. */
	memset(src, 0x5a, o->len);
	memset(dst, 0, o->len);
	for (int r = -1; r < o->reps; r++) {
		uint64_t t0, t1;

		src[(size_t)(r + 1) * 4096 % o->len] = (char)r;
		t0 = now_ns();
		memcpy(dst, src, o->len);
		t1 = now_ns();
		/* The copy is used, so it cannot be dropped. */
		if (*(volatile char *)&dst[(size_t)(r + 1) * 4096 % o->len] != (char)r)
			bench_die(PROG, "memcpy: destination does not match the source");
		if (r >= 0)
			gbps[r] = (double)o->len / (double)(t1 - t0);
	}
	munmap(src, o->len);
	munmap(dst, o->len);
}

/* ns per page of writing one byte into each page of a fresh mapping. */
static void bench_first_touch(const struct opts *o, double *ns_per_page)
{
	size_t pages = o->touch_len / PAGE_SIZE_4K;

	for (int r = -1; r < o->reps; r++) {
		volatile char *p = map_anon(o->touch_len, "first touch");
		uint64_t t0, t1;

		/* THP would place 512 pages per fault; restores work in 4 KiB pages. */
		if (madvise((void *)p, o->touch_len, MADV_NOHUGEPAGE))
			bench_die(PROG, "madvise(MADV_NOHUGEPAGE)");
		t0 = now_ns();
		for (size_t i = 0; i < pages; i++)
			p[i * PAGE_SIZE_4K] = 1;
		t1 = now_ns();
		munmap((void *)p, o->touch_len);
		if (r >= 0)
			ns_per_page[r] = (double)(t1 - t0) / (double)pages;
	}
}

/* Per repetition, in ns per page: what bench_populate measures. */
struct populate_times {
	double *populate;	/* MADV_POPULATE_WRITE of a fresh mapping */
	double *first_read;	/* then the first user read of each page */
	double *second_read;	/* and the second */
};

static uint64_t read_pass(volatile const char *p, size_t pages)
{
	uint64_t t0 = now_ns();

	for (size_t i = 0; i < pages; i++)
		(void)p[i * PAGE_SIZE_4K];
	return now_ns() - t0;
}

/*
 * MADV_POPULATE_WRITE of a fresh mapping, then two read passes. The first
 * read of a page whose PTE the kernel installed (populate, a restore's
 * pread, UFFDIO_COPY, mremap) is not free on every hypervisor: on a PVM
 * guest (shadow paging) it costs microseconds, so a restored process pays
 * it once per page after any restore. The second pass is the plain cost of
 * touching a present page.
 */
static void bench_populate(const struct opts *o, const struct populate_times *t)
{
	size_t pages = o->touch_len / PAGE_SIZE_4K;

	for (int r = -1; r < o->reps; r++) {
		void *p = map_anon(o->touch_len, "populate");
		uint64_t t0, t1, first, second;

		if (madvise(p, o->touch_len, MADV_NOHUGEPAGE))
			bench_die(PROG, "madvise(MADV_NOHUGEPAGE)");
		t0 = now_ns();
		if (madvise(p, o->touch_len, MADV_POPULATE_WRITE))
			bench_die(PROG, "madvise(MADV_POPULATE_WRITE)");
		t1 = now_ns();
		first = read_pass(p, pages);
		second = read_pass(p, pages);
		munmap(p, o->touch_len);
		if (r < 0)
			continue;
		t->populate[r] = (double)(t1 - t0) / (double)pages;
		t->first_read[r] = (double)first / (double)pages;
		t->second_read[r] = (double)second / (double)pages;
	}
}

static void print_page_test(int *first, const char *name, const double *s, const struct opts *o)
{
	json_test_begin(first, name, "ns/page", s, o->reps);
	printf(", \"pages\": %zu, \"thp\": false", o->touch_len / PAGE_SIZE_4K);
	json_test_end();
}

int main(int argc, char **argv)
{
	struct populate_times pt;
	struct opts o;
	double *s;
	int first = 1;

	parse_opts(&o, argc, argv);
	s = calloc((size_t)o.reps, sizeof(*s));
	pt.populate = calloc((size_t)o.reps, sizeof(double));
	pt.first_read = calloc((size_t)o.reps, sizeof(double));
	pt.second_read = calloc((size_t)o.reps, sizeof(double));
	if (!s || !pt.populate || !pt.first_read || !pt.second_read)
		bench_die(PROG, "calloc");

	bench_memcpy(&o, s);
	json_test_begin(&first, "memcpy", "GB/s", s, o.reps);
	printf(", \"bytes\": %zu", o.len);
	json_test_end();

	if (!o.floor_only) {
		bench_first_touch(&o, s);
		print_page_test(&first, "first_touch", s, &o);
	}

	bench_populate(&o, &pt);
	print_page_test(&first, "populate", pt.populate, &o);
	print_page_test(&first, "read_after_populate", pt.first_read, &o);
	print_page_test(&first, "read_present", pt.second_read, &o);

	json_end(first);
	free(s);
	free(pt.populate);
	free(pt.first_read);
	free(pt.second_read);
	return 0;
}
