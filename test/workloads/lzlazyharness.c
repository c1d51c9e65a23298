/*
 * lzlazyharness.c - end-to-end test of the lazy-pages daemon, with no dump
 * and no restore: it writes an image set itself (pagemap-4242.img +
 * pages-4242.img, runs of lazy data, lazy zero, eager data and holes in two
 * 32 MiB VMAs), starts `lazarus lazy-pages`, and forks a workload that maps
 * the two regions at fixed addresses, creates and registers its own uffd,
 * hands it over with the client API (lazy-client.h), then touches every
 * page from several threads in random order and checks every byte.
 *
 *   lzlazyharness [--lazarus PATH] [--keep] [SCENARIO...]   one PASS/FAIL line each
 *   lzlazyharness --list
 *   lzlazyharness --measure [--mib N]                        fault-around table
 *
 * Exit status: 0 when every scenario passed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image.h"
#include "lazy-client.h"
#include "lazy-proto.h"
#include "inventory.pb-c.h"
#include "pagemap.pb-c.h"
#include "uffd.h"

#define IMG_ID 4242
/* The dump id of the images this harness writes: fixed, it is one dump. */
static const struct lz_dump_id harness_dump_id = { { 0x4c, 0x5a, 0x48, 0x41, 0x52, 0x4e, 0x45, 0x53,
						     0x53, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01 } };
#define PG 4096UL
#define BLOCK_PAGES 16
#define BASE_A 0x5a0000000000UL
#define GAP (16 * PG) /* keeps the regions two VMAs */
#define NEWB 0x5b0000000000UL
#define GROW (8UL << 20)
#define NTHREADS 4

/* Workload exit codes. */
enum { WL_OK = 0, WL_BAD = 3, WL_REFUSED = 4, WL_SETUP = 10 };

enum {
	S_FORK = 1 << 0,
	S_MREMAP = 1 << 1,
	S_MUNMAP = 1 << 2,
	S_DONTNEED = 1 << 3,
	S_KILL_RESUME = 1 << 4,
	S_KILL_NORESUME = 1 << 5,
	S_TRUNCATE = 1 << 6,
	S_CORRUPT = 1 << 7,
	S_GARBAGE = 1 << 8,
	S_SECOND = 1 << 9,
	S_SPAWN = 1 << 10,
	S_SLOW_FILL = 1 << 11, /* fill slowly, so things happen while pages are outstanding */
	S_LATE_FINISH = 1 << 12, /* measure: no fill until every page was touched */
	S_SEQUENTIAL = 1 << 13,
	S_FILL_FIRST = 1 << 14, /* touch nothing until the fill has placed everything */
	S_CRASH_FORK = 1 << 15, /* the daemon dies on reading the fork */
	S_BLOCKING = 1 << 16,	/* the uffd handed over has O_NONBLOCK cleared */
};

static const struct scenario {
	const char *name;
	unsigned flags;
	const char *what;
} scenarios[] = {
	{ "basic", 0, "4 threads fault in random order; fill runs behind" },
	{ "faults-only", S_LATE_FINISH, "every page arrives by fault (no fill until the end)" },
	{ "fill-only", S_FILL_FIRST, "every page arrives by the background fill" },
	{ "fork", S_FORK | S_SLOW_FILL, "fork with pages outstanding: parent and child verify" },
	{ "mremap", S_MREMAP | S_SLOW_FILL, "move+grow a half-served region" },
	{ "munmap", S_MUNMAP | S_SLOW_FILL, "unmap parts, map fresh memory there" },
	{ "dontneed", S_DONTNEED | S_SLOW_FILL, "MADV_DONTNEED part: it reads zeros" },
	{ "kill-resume", S_KILL_RESUME | S_SLOW_FILL, "daemon SIGKILLed mid-fill, --resume" },
	{ "kill-noresume", S_KILL_NORESUME | S_SLOW_FILL, "daemon SIGKILLed, nobody resumes" },
	{ "kill-at-fork", S_FORK | S_CRASH_FORK | S_KILL_NORESUME | S_SLOW_FILL,
	  "daemon dies reading a fork: the tree is killed at once" },
	{ "truncated", S_TRUNCATE, "pages file truncated: refused, process killed" },
	{ "corrupt", S_CORRUPT, "a flipped byte in the pages file: process killed" },
	{ "garbage", S_GARBAGE | S_SLOW_FILL, "garbage peers are refused, nothing else hurt" },
	{ "second-daemon", S_SECOND | S_SLOW_FILL, "a second daemon on the socket is refused" },
	{ "spawn", S_SPAWN, "no daemon listens: the client starts one" },
	{ "blocking-uffd", S_BLOCKING | S_FILL_FIRST,
	  "a uffd without O_NONBLOCK: the daemon still completes the fill and exits" },
};

struct run {
	uint64_t vaddr, npages;
	uint32_t flags;
	uint64_t data_page;
};

/* A range the workload checks: cur_start holds what the image had at orig. */
struct check {
	uint64_t cur, len, orig;
	bool zero; /* must read zero whatever the image says */
};

struct ctx {
	const struct scenario *s;
	const char *lazarus;
	char dir[64];
	uint64_t region;		/* bytes per region */
	struct run *runs;
	size_t nr_runs;
	uint64_t nr_data;
	struct check checks[8];
	int nr_checks;
	unsigned fault_around_kib;	/* 0: daemon default */
	int notify[2];			/* workload -> harness: 'H' after handover */
	double touch_s;			/* measured by the workload (measure mode) */
	int timing[2];
};

static char *path_in(const struct ctx *c, const char *name, char *buf, size_t len);

static uint64_t base_b(const struct ctx *c)
{
	return BASE_A + c->region + GAP;
}

/* ------------------------------------------------------------ image */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	return x ^ (x >> 33);
}

static void fill_page(uint64_t vaddr, uint64_t *w)
{
	for (unsigned i = 0; i < PG / 8; i++)
		w[i] = mix(vaddr + i * 8) | 1; /* never zero: tells data from zero */
}

static uint64_t rng_state = 0x1234567;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void add_run(struct ctx *c, uint64_t vaddr, uint64_t n, uint32_t flags)
{
	struct run *r;

	c->runs = realloc(c->runs, (c->nr_runs + 1) * sizeof(*c->runs));
	r = &c->runs[c->nr_runs++];
	r->vaddr = vaddr;
	r->npages = n;
	r->flags = flags;
	r->data_page = 0;
	if (flags & LZ_PE_PRESENT) {
		r->data_page = c->nr_data;
		c->nr_data += n;
	}
}

/* Runs of 1..256 pages: 60 % lazy data, 10 % lazy zero, 10 % eager data,
 * 20 % holes; region A starts with 4 eager pages (the stack page, say). */
static void make_layout(struct ctx *c)
{
	uint64_t bases[2] = { BASE_A, base_b(c) };

	rng_state = 0x1234567;
	for (int r = 0; r < 2; r++) {
		uint64_t p = 0, np = c->region / PG;

		if (r == 0) {
			add_run(c, bases[r], 4, LZ_PE_PRESENT);
			p = 4;
		}
		while (p < np) {
			uint64_t x = rnd(), n = MIN(1 + x % 256, np - p);
			unsigned kind = (unsigned)((x >> 20) % 10);

			if (kind < 6)
				add_run(c, bases[r] + p * PG, n, LZ_PE_LAZY | LZ_PE_PRESENT);
			else if (kind == 6)
				add_run(c, bases[r] + p * PG, n, LZ_PE_LAZY | LZ_PE_ZERO);
			else if (kind == 7)
				add_run(c, bases[r] + p * PG, n, LZ_PE_PRESENT);
			p += n;
		}
	}
}

static const struct run *find_run(const struct ctx *c, uint64_t vaddr)
{
	size_t lo = 0, hi = c->nr_runs;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (c->runs[mid].vaddr + c->runs[mid].npages * PG <= vaddr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < c->nr_runs && c->runs[lo].vaddr <= vaddr ? &c->runs[lo] : NULL;
}

static bool page_has_data(const struct ctx *c, uint64_t vaddr)
{
	const struct run *r = find_run(c, vaddr);

	return r && (r->flags & LZ_PE_PRESENT);
}

static int write_pagemap(struct ctx *c, int dfd, uint32_t *crc, size_t nblocks)
{
	PagemapHead h = PAGEMAP_HEAD__INIT;
	struct img_writer w;
	char name[64];
	int ret;

	snprintf(name, sizeof(name), "pagemap-%d.img", IMG_ID);
	h.pid = IMG_ID;
	h.nr_data_pages = c->nr_data;
	h.block_pages = BLOCK_PAGES;
	h.n_block_crc = nblocks;
	h.block_crc = crc;
	ret = img_writer_open(&w, dfd, name, LZ_IMG_PAGEMAP, &harness_dump_id);
	if (!ret)
		ret = img_writer_put(&w, &h.base);
	for (size_t i = 0; !ret && i < c->nr_runs; i++) {
		PagemapEntry e = PAGEMAP_ENTRY__INIT;

		e.vaddr = c->runs[i].vaddr;
		e.nr_pages = c->runs[i].npages;
		e.flags = c->runs[i].flags;
		e.has_data_page = !!(e.flags & LZ_PE_PRESENT);
		e.data_page = c->runs[i].data_page;
		ret = img_writer_put(&w, &e.base);
	}
	if (ret) {
		img_writer_abort(&w, dfd);
		return ret;
	}
	return img_writer_close(&w, dfd);
}

/* inventory.img: the daemon serves the dump whose id is in its header. */
static int write_inventory(int dfd)
{
	InventoryEntry e = INVENTORY_ENTRY__INIT;
	struct img_writer w;
	int ret;

	e.format_version = LZ_IMG_FORMAT_VERSION;
	e.tool_version = (char *)"lzlazyharness";
	e.root_pid = IMG_ID;
	e.kernel_release = (char *)"";
	e.arch = (char *)"x86_64";
	e.page_size = PG;
	ret = img_writer_open(&w, dfd, "inventory.img", LZ_IMG_INVENTORY, &harness_dump_id);
	if (!ret)
		ret = img_writer_put(&w, &e.base);
	if (ret) {
		img_writer_abort(&w, dfd);
		return ret;
	}
	return img_writer_close(&w, dfd);
}

static int write_images(struct ctx *c)
{
	size_t nblocks = (c->nr_data + BLOCK_PAGES - 1) / BLOCK_PAGES;
	uint32_t *crc = calloc(nblocks + 1, sizeof(*crc));
	uint64_t *page = aligned_alloc(PG, PG * BLOCK_PAGES);
	struct lz_pages_hdr hdr;
	char path[128];
	uint64_t dp = 0;
	int fd, dfd, ret;

	snprintf(path, sizeof(path), "%s/pages-%d.img", c->dir, IMG_ID);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || !crc || !page)
		return -1;
	memset(page, 0, PG);
	pages_hdr_init(&hdr, IMG_ID, c->nr_data, &harness_dump_id);
	memcpy(page, &hdr, sizeof(hdr));
	if (write(fd, page, PG) != (ssize_t)PG)
		return -1;
	/* Data pages in pagemap order, BLOCK_PAGES at a time for the crcs. */
	for (size_t i = 0; i < c->nr_runs; i++) {
		if (!(c->runs[i].flags & LZ_PE_PRESENT))
			continue;
		for (uint64_t k = 0; k < c->runs[i].npages; k++, dp++) {
			uint64_t *pg = page + (dp % BLOCK_PAGES) * (PG / 8);

			fill_page(c->runs[i].vaddr + k * PG, pg);
			if (dp % BLOCK_PAGES == BLOCK_PAGES - 1 || dp == c->nr_data - 1) {
				size_t n = dp % BLOCK_PAGES + 1;

				crc[dp / BLOCK_PAGES] = lz_crc32c(0, page, n * PG);
				if (write(fd, page, n * PG) != (ssize_t)(n * PG))
					return -1;
			}
		}
	}
	close(fd);
	free(page);
	dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ret = write_pagemap(c, dfd, crc, nblocks);
	if (!ret)
		ret = write_inventory(dfd);
	close(dfd);
	free(crc);
	return ret;
}

/* ------------------------------------------------------------ workload */

struct verify {
	const struct ctx *c;
	uint64_t *order; /* page addresses (cur) */
	size_t n;
	unsigned t, nt;
	uint64_t bad_addr, bad_got, bad_want;
	bool bad;
};

static void expected(const struct ctx *c, uint64_t cur, uint64_t *want)
{
	for (int i = 0; i < c->nr_checks; i++) {
		const struct check *k = &c->checks[i];

		if (cur < k->cur || cur >= k->cur + k->len)
			continue;
		if (!k->zero && page_has_data(c, k->orig + (cur - k->cur)))
			fill_page(k->orig + (cur - k->cur), want);
		else
			memset(want, 0, PG);
		return;
	}
	memset(want, 0, PG);
}

static void *verify_thread(void *arg)
{
	struct verify *v = arg;
	uint64_t want[PG / 8];

	for (size_t i = v->t; i < v->n; i += v->nt) {
		const volatile uint64_t *p = (const uint64_t *)v->order[i];

		expected(v->c, v->order[i], want);
		for (unsigned w = 0; w < PG / 8; w++) {
			uint64_t got = p[w];

			if (got == want[w])
				continue;
			v->bad = true;
			v->bad_addr = v->order[i] + w * 8;
			v->bad_got = got;
			v->bad_want = want[w];
			return NULL;
		}
	}
	return NULL;
}

/* Touch every checked page, nt threads, in random (or address) order. */
static int verify_all(const struct ctx *c, unsigned nt, bool sequential, uint64_t seed)
{
	struct verify v[NTHREADS];
	pthread_t th[NTHREADS];
	uint64_t *order;
	size_t n = 0;
	int ret = WL_OK;

	for (int i = 0; i < c->nr_checks; i++)
		n += c->checks[i].len / PG;
	order = malloc(n * sizeof(*order));
	n = 0;
	for (int i = 0; i < c->nr_checks; i++)
		for (uint64_t off = 0; off < c->checks[i].len; off += PG)
			order[n++] = c->checks[i].cur + off;
	rng_state = seed | 1;
	for (size_t i = n - 1; !sequential && i > 0; i--) {
		size_t j = rnd() % (i + 1);
		uint64_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned t = 0; t < nt; t++) {
		v[t] = (struct verify){ .c = c, .order = order, .n = n, .t = t, .nt = nt };
		pthread_create(&th[t], NULL, verify_thread, &v[t]);
	}
	for (unsigned t = 0; t < nt; t++) {
		pthread_join(th[t], NULL);
		if (v[t].bad && ret == WL_OK) {
			fprintf(stderr, "workload %d: WRONG MEMORY at 0x%" PRIx64 ": got 0x%016" PRIx64
				", want 0x%016" PRIx64 "\n", getpid(), v[t].bad_addr, v[t].bad_got,
				v[t].bad_want);
			ret = WL_BAD;
		}
	}
	free(order);
	return ret;
}

static int map_regions(struct ctx *c)
{
	uint64_t bases[2] = { BASE_A, base_b(c) };

	for (int r = 0; r < 2; r++) {
		void *p = mmap((void *)bases[r], c->region, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

		if (p != (void *)bases[r]) {
			perror("workload: mmap");
			return -1;
		}
	}
	/* Eager pages go in before registration, as restore would do. */
	for (size_t i = 0; i < c->nr_runs; i++)
		if (c->runs[i].flags == LZ_PE_PRESENT)
			for (uint64_t k = 0; k < c->runs[i].npages; k++)
				fill_page(c->runs[i].vaddr + k * PG,
					  (uint64_t *)(c->runs[i].vaddr + k * PG));
	return 0;
}

/* Hand the workload over. With S_LATE_FINISH the connection is kept in
 * *keep, to say FINISHED only after every page was touched. */
static int handover(struct ctx *c, struct lazy_client **keep)
{
	struct lz_lazy_range ranges[2] = { { BASE_A, c->region }, { base_b(c), c->region } };
	struct lazy_client_opts o = { .images_dir = c->dir, .spawn = c->s->flags & S_SPAWN,
				      .dump_id = &harness_dump_id };
	struct lazy_client_proc p = { .pid = getpid(), .img_id = IMG_ID, .pidfd = -1,
				      .ranges = ranges, .nr_ranges = 2 };
	struct lazy_client *cl;
	struct uffd_kinfo ki;
	uint64_t ioctls;
	int ret;

	/* Connect first: a spawn forks, and a fork of a process with a
	 * registered EVENT_FORK uffd waits until a daemon reads the event. */
	ret = lazy_client_connect(&o, &cl);
	if (ret) {
		fprintf(stderr, "workload: %s\n", cl ? lazy_client_error(cl) : strerror(-ret));
		return WL_SETUP;
	}
	uffd_probe(&ki);
	p.uffd = uffd_open(&ki, UFFD_LAZY_WANTED, UFFD_LAZY_REQUIRED, &p.features);
	if (p.uffd < 0) {
		fprintf(stderr, "workload: uffd_open: %s\n", strerror(-p.uffd));
		return WL_SETUP;
	}
	for (int i = 0; i < 2; i++)
		if (uffd_register_missing(p.uffd, ranges[i].start, ranges[i].len,
					  UFFD_LAZY_RANGE_IOCTLS, &ioctls)) {
			fprintf(stderr, "workload: UFFDIO_REGISTER failed\n");
			return WL_SETUP;
		}
	p.ioctls = ioctls;
	/* A client may hand over a uffd in blocking mode: the daemon's loop
	 * must not wait in read(2) on it (at completion nothing is pending). */
	if ((c->s->flags & S_BLOCKING) &&
	    fcntl(p.uffd, F_SETFL, fcntl(p.uffd, F_GETFL) & ~O_NONBLOCK)) {
		fprintf(stderr, "workload: fcntl: %s\n", strerror(errno));
		return WL_SETUP;
	}
	ret = lazy_client_add(cl, &p);
	if (ret) {
		fprintf(stderr, "workload: %s\n", cl ? lazy_client_error(cl) : strerror(-ret));
		if (c->s->flags & (S_TRUNCATE | S_CORRUPT)) {
			sleep(10); /* the daemon kills us; surviving is a failure */
			return WL_REFUSED;
		}
		return WL_SETUP + 1;
	}
	close(p.uffd); /* the daemon and its guardian hold it now */
	if (c->s->flags & S_LATE_FINISH) {
		*keep = cl;
		return WL_OK;
	}
	if (lazy_client_finish(cl)) {
		fprintf(stderr, "workload: %s\n", lazy_client_error(cl));
		return WL_SETUP + 2;
	}
	lazy_client_close(cl);
	return WL_OK;
}

static void add_check(struct ctx *c, uint64_t cur, uint64_t len, uint64_t orig, bool zero)
{
	c->checks[c->nr_checks++] = (struct check){ cur, len, orig, zero };
}

/* What the scenario does to its memory while pages are outstanding. */
static int prepare(struct ctx *c)
{
	uint64_t a = BASE_A, b = base_b(c), r = c->region;

	c->nr_checks = 0;
	if (c->s->flags & S_MREMAP) {
		for (uint64_t off = 0; off < (1 << 20); off += PG) /* half-served */
			(void)*(volatile char *)(b + off);
		if (mremap((void *)b, r, r + GROW, MREMAP_MAYMOVE | MREMAP_FIXED,
			   (void *)NEWB) != (void *)NEWB)
			return WL_SETUP + 3;
		add_check(c, a, r, a, false);
		add_check(c, NEWB, r, b, false);
		add_check(c, NEWB + r, GROW, 0, true);
		return WL_OK;
	}
	if (c->s->flags & S_MUNMAP) {
		if (munmap((void *)(a + (8 << 20)), 1 << 20) || munmap((void *)b, 1 << 20))
			return WL_SETUP + 3;
		add_check(c, a, 8 << 20, a, false);
		add_check(c, a + (9 << 20), r - (9 << 20), a + (9 << 20), false);
		add_check(c, b + (1 << 20), r - (1 << 20), b + (1 << 20), false);
		if (mmap((void *)(a + (8 << 20)), 1 << 20, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != (void *)(a + (8 << 20)))
			return WL_SETUP + 3;
		add_check(c, a + (8 << 20), 1 << 20, 0, true);
		return WL_OK;
	}
	if (c->s->flags & S_DONTNEED) {
		for (uint64_t off = 0; off < (2 << 20); off += PG)
			(void)*(volatile char *)(a + off);
		if (madvise((void *)(a + (1 << 20)), 2 << 20, MADV_DONTNEED))
			return WL_SETUP + 3;
		add_check(c, a, 1 << 20, a, false);
		add_check(c, a + (1 << 20), 2 << 20, 0, true);
		add_check(c, a + (3 << 20), r - (3 << 20), a + (3 << 20), false);
		add_check(c, b, r, b, false);
		return WL_OK;
	}
	add_check(c, a, r, a, false);
	add_check(c, b, r, b, false);
	return WL_OK;
}

static int workload_fork(struct ctx *c)
{
	pid_t child = fork();
	int st, ret, cret = WL_SETUP + 4;

	if (child < 0)
		return WL_SETUP + 4;
	ret = verify_all(c, 2, false, child ? 7 : 11);
	if (!child) {
		/* The child's writes must not reach the parent. */
		memset((void *)BASE_A, 0x5a, 1 << 20);
		_exit(ret);
	}
	if (waitpid(child, &st, 0) == child && WIFEXITED(st))
		cret = WEXITSTATUS(st);
	if (cret)
		fprintf(stderr, "workload: forked child exited %d\n", cret);
	if (!ret)
		ret = verify_all(c, 2, false, 13); /* again, after the child wrote */
	return ret ? ret : cret;
}

static struct timespec ts_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t;
}

static double ts_diff(struct timespec a, struct timespec b)
{
	return (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
}

static void workload_main(struct ctx *c)
{
	struct lazy_client *cl = NULL;
	struct timespec t0;
	int ret;

	close(c->notify[0]);
	close(c->timing[0]);
	if (map_regions(c))
		_exit(WL_SETUP);
	ret = handover(c, &cl);
	if (ret)
		_exit(ret);
	if (write(c->notify[1], "H", 1) != 1)
		_exit(WL_SETUP + 5);
	ret = prepare(c);
	if (ret)
		_exit(ret);
	t0 = ts_now();
	if (c->s->flags & S_FILL_FIRST) {
		char stats[128];

		/* The daemon writes its stats when every page is in place. */
		path_in(c, LZ_LAZY_STATS_NAME, stats, sizeof(stats));
		for (int i = 0; i < 6000 && access(stats, F_OK); i++)
			usleep(10000);
		/* A daemon stuck in read(2) on our blocking uffd never gets there. */
		if ((c->s->flags & S_BLOCKING) && access(stats, F_OK)) {
			fprintf(stderr, "workload: the daemon did not finish within 60 s\n");
			_exit(WL_BAD);
		}
	}
	if (c->s->flags & S_FORK)
		ret = workload_fork(c);
	else
		ret = verify_all(c, (c->s->flags & S_SEQUENTIAL) ? 1 : NTHREADS,
				 c->s->flags & S_SEQUENTIAL, 5);
	if (c->timing[1] >= 0) {
		double s = ts_diff(t0, ts_now());

		if (write(c->timing[1], &s, sizeof(s)) != sizeof(s))
			ret = WL_SETUP + 6;
	}
	if (cl && lazy_client_finish(cl)) {
		fprintf(stderr, "workload: %s\n", lazy_client_error(cl));
		ret = ret ? ret : WL_SETUP + 2;
	}
	lazy_client_close(cl);
	_exit(ret);
}

/* ------------------------------------------------------------ harness */

static pid_t spawn(char *const argv[], const char *out, int keep_fd, const char *env)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0644);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (keep_fd >= 0)
			fcntl(keep_fd, F_SETFD, 0);
		if (env)
			putenv((char *)env);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Start `lazarus lazy-pages`; wait for its ready byte. */
static pid_t start_daemon(struct ctx *c, bool resume, const char *out)
{
	char fdbuf[16], fa[16], dir[80];
	char *argv[20];
	int n = 0, pfd[2];
	struct pollfd p;
	pid_t pid;
	char b;

	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	snprintf(fdbuf, sizeof(fdbuf), "%d", pfd[1]);
	snprintf(dir, sizeof(dir), "%s", c->dir);
	argv[n++] = (char *)c->lazarus;
	argv[n++] = "lazy-pages";
	argv[n++] = "-D";
	argv[n++] = dir;
	argv[n++] = "--status-fd";
	argv[n++] = fdbuf;
	argv[n++] = "-o";
	argv[n++] = "daemon.log";
	argv[n++] = "-v4";
	if (resume)
		argv[n++] = "--resume";
	if (c->s->flags & S_KILL_NORESUME) {
		argv[n++] = "--guardian-timeout";
		argv[n++] = "2";
	}
	if (c->s->flags & S_SLOW_FILL) {
		argv[n++] = "--fill-chunk";
		argv[n++] = "64";
	}
	if (c->fault_around_kib) {
		snprintf(fa, sizeof(fa), "%u", c->fault_around_kib);
		argv[n++] = "--fault-around";
		argv[n++] = fa;
	}
	argv[n] = NULL;
	if (c->s->flags & S_CRASH_FORK && !resume)
		putenv("LAZARUS_LAZY_TEST_CRASH=fork");
	pid = spawn(argv, out, pfd[1],
		    (c->s->flags & S_SLOW_FILL) ? "LAZARUS_LAZY_FILL_DELAY_US=1500" : NULL);
	unsetenv("LAZARUS_LAZY_TEST_CRASH");
	close(pfd[1]);
	p = (struct pollfd){ .fd = pfd[0], .events = POLLIN };
	if (poll(&p, 1, 10000) != 1 || read(pfd[0], &b, 1) != 1) {
		close(pfd[0]);
		return -1;
	}
	close(pfd[0]);
	return pid;
}

/* Wait for pid up to ms; its wait status, or -1 on timeout. */
static int wait_for(pid_t pid, int ms)
{
	int st;

	for (int t = 0; t < ms; t += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		if (r < 0)
			return -2;
		usleep(10000);
	}
	return -1;
}

static bool file_has(const char *path, const char *needle)
{
	char *buf;
	bool found;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st)) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	buf = calloc(1, (size_t)st.st_size + 1);
	found = buf && read(fd, buf, (size_t)st.st_size) == st.st_size && strstr(buf, needle);
	free(buf);
	close(fd);
	return found;
}

static char *path_in(const struct ctx *c, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", c->dir, name);
	return buf;
}

/* Reap or kill every process left below us (we are a subreaper). */
static int kill_leftovers(bool kill_them)
{
	pid_t kids[256];
	int n = 0;
	char path[64], buf[4096];
	DIR *d = opendir("/proc/self/task");
	struct dirent *de;

	while (d && (de = readdir(d))) {
		int fd;
		ssize_t len;
		char *p, *end;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%.16s/children", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		len = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[len > 0 ? len : 0] = '\0';
		for (p = buf; n < 256; p = end) {
			long v = strtol(p, &end, 10);

			if (end == p)
				break;
			kids[n++] = (pid_t)v;
		}
	}
	if (d)
		closedir(d);
	for (int i = 0; i < n; i++) {
		if (kill_them)
			kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, kill_them ? 0 : WNOHANG);
	}
	return n;
}

static const char *describe(int st)
{
	static char buf[64];

	if (st == -1)
		return "still running (timeout)";
	if (st < 0)
		return "not found";
	if (WIFEXITED(st))
		snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG(st));
	return buf;
}

static int fail(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -1;
}

/* --- garbage peers --- */

static int peer_connect(const struct ctx *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	struct timeval tv = { .tv_sec = 5 };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", c->dir, LZ_LAZY_SOCK_NAME);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* The daemon must answer with an error reply (or just hang up). */
static bool peer_refused(int fd)
{
	struct {
		struct lz_lazy_hdr h;
		struct lz_lazy_reply r;
	} m;
	ssize_t n = recv(fd, &m, sizeof(m), 0);

	close(fd);
	return n == 0 || (n == (ssize_t)sizeof(m) && m.h.type == LZ_LAZY_REPLY && m.r.status < 0);
}

static int garbage_peers(const struct ctx *c, pid_t victim, char *why, size_t len)
{
	char junk[100];
	int fd;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)rnd();
	fd = peer_connect(c);
	if (fd < 0 || send(fd, junk, sizeof(junk), 0) != sizeof(junk) || !peer_refused(fd))
		return fail(why, len, "random bytes were not refused");

	/* A well-framed PROCESS naming the workload, with a pipe for a uffd. */
	struct lz_lazy_hello hello = { .role = LZ_LAZY_ROLE_RESTORE };
	memcpy(hello.dump_id, &harness_dump_id, sizeof(hello.dump_id));
	struct {
		struct lz_lazy_hdr h;
		struct lz_lazy_process p;
	} pm = { { LZ_LAZY_MAGIC, LZ_LAZY_VERSION, LZ_LAZY_PROCESS, sizeof(pm.p), 2 },
		 { .pid = victim, .img_id = IMG_ID } };
	struct {
		struct lz_lazy_hdr h;
		struct lz_lazy_hello b;
	} hm = { { LZ_LAZY_MAGIC, LZ_LAZY_VERSION, LZ_LAZY_HELLO, sizeof(hello), 1 }, hello };
	struct {
		struct lz_lazy_hdr h;
		struct lz_lazy_reply r;
	} rep;
	int pipefd[2];
	union {
		struct cmsghdr a;
		char b[CMSG_SPACE(sizeof(int))];
	} cb = { 0 };
	struct iovec v = { &pm, sizeof(pm) };
	struct msghdr mh = { .msg_iov = &v, .msg_iovlen = 1, .msg_control = cb.b,
			     .msg_controllen = sizeof(cb.b) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

	fd = peer_connect(c);
	if (fd < 0 || pipe(pipefd) || send(fd, &hm, sizeof(hm), 0) != sizeof(hm) ||
	    recv(fd, &rep, sizeof(rep), 0) != sizeof(rep) || rep.r.status != 0)
		return fail(why, len, "a valid HELLO was not answered");
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pipefd[0], sizeof(int));
	if (sendmsg(fd, &mh, 0) != sizeof(pm) || recv(fd, &rep, sizeof(rep), 0) != sizeof(rep) ||
	    rep.r.status >= 0)
		return fail(why, len, "a pipe passed off as a userfaultfd was accepted");
	close(fd);
	close(pipefd[0]);
	close(pipefd[1]);

	/* A HELLO for another dump (of the same pid): refused before anything. */
	hm.b.dump_id[15] ^= 0xff;
	fd = peer_connect(c);
	if (fd < 0 || send(fd, &hm, sizeof(hm), 0) != sizeof(hm) ||
	    recv(fd, &rep, sizeof(rep), 0) != sizeof(rep) || rep.r.status != -ESTALE ||
	    !strstr(rep.r.msg, "inventory.img: this daemon serves dump ")) {
		if (fd >= 0)
			close(fd);
		return fail(why, len, "a HELLO of another dump was not refused by name");
	}
	close(fd);
	hm.b.dump_id[15] ^= 0xff;

	/* A header from the past (version 1) and from the future. */
	hm.h.version = 1;
	fd = peer_connect(c);
	if (fd < 0 || send(fd, &hm, sizeof(hm), 0) != sizeof(hm) || !peer_refused(fd))
		return fail(why, len, "protocol version 1 was not refused");
	hm.h.version = 99;
	fd = peer_connect(c);
	if (fd < 0 || send(fd, &hm, sizeof(hm), 0) != sizeof(hm) || !peer_refused(fd))
		return fail(why, len, "a wrong protocol version was not refused");
	return 0;
}

static int second_daemon(struct ctx *c, char *why, size_t len)
{
	char *argv[] = { (char *)c->lazarus, "lazy-pages", "-D", c->dir, NULL };
	char out[128];
	pid_t pid = spawn(argv, path_in(c, "second.out", out, sizeof(out)), -1, NULL);
	int st = wait_for(pid, 5000);

	if (st == -1) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return fail(why, len, "the second daemon kept running");
	}
	if (!WIFEXITED(st) || WEXITSTATUS(st) == 0)
		return fail(why, len, "the second daemon: %s, want a non-zero exit", describe(st));
	if (!file_has(out, "another lazy-pages daemon"))
		return fail(why, len, "the second daemon did not say why it refused");
	return 0;
}

/* The stats file of a finished run. */
static int check_stats(struct ctx *c, bool resumed, char *why, size_t len)
{
	char p[128];

	path_in(c, LZ_LAZY_STATS_NAME, p, sizeof(p));
	if (c->s->flags & S_KILL_NORESUME)
		return 0; /* the daemon died: nobody wrote them */
	if (!file_has(p, "\"pages_fault\"") || !file_has(p, "\"fault_latency_ns_log2\""))
		return fail(why, len, "no usable %s", LZ_LAZY_STATS_NAME);
	if (resumed && !file_has(p, "\"resumes\": 1"))
		return fail(why, len, "stats do not count the resume");
	if (!(c->s->flags & (S_CORRUPT | S_KILL_NORESUME)) && !file_has(p, "\"state\": \"done\""))
		return fail(why, len, "stats show no process completed");
	return 0;
}

/* Kill the daemon mid-fill; resume it, or let the guardian act. */
static int kill_daemon(struct ctx *c, pid_t *daemon, char *why, size_t len)
{
	char out[128];

	/* Mid-fill: the 4 threads fault their way through every page in about
	 * 300 ms here once faults get their own page first; 100 ms leaves most
	 * of them outstanding. */
	usleep(100000);
	kill(*daemon, SIGKILL);
	waitpid(*daemon, NULL, 0);
	*daemon = 0;
	if (c->s->flags & S_KILL_NORESUME)
		return 0;
	usleep(200000);
	*daemon = start_daemon(c, true, path_in(c, "daemon2.out", out, sizeof(out)));
	if (*daemon <= 0)
		return fail(why, len, "lazy-pages --resume did not get ready");
	return 0;
}

static int expect_killed(int wst, const struct ctx *c, const char *needle1, const char *needle2,
			 char *why, size_t len)
{
	char log[128];

	path_in(c, "daemon.log", log, sizeof(log));
	if (wst >= 0 && WIFEXITED(wst) && WEXITSTATUS(wst) == WL_BAD)
		return fail(why, len, "the workload ran on WRONG memory");
	if (wst < 0 || !WIFSIGNALED(wst) ||
	    (WTERMSIG(wst) != SIGKILL && WTERMSIG(wst) != SIGBUS))
		return fail(why, len, "workload %s, want killed", describe(wst));
	if (!file_has(log, needle1) || (needle2 && !file_has(log, needle2)))
		return fail(why, len, "daemon.log lacks \"%s\"", needle2 && file_has(log, needle1) ?
			    needle2 : needle1);
	return 0;
}

static void image_damage(struct ctx *c)
{
	char p[128];
	struct stat st;
	int fd;

	snprintf(p, sizeof(p), "%s/pages-%d.img", c->dir, IMG_ID);
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st))
		return;
	if (c->s->flags & S_TRUNCATE) {
		if (ftruncate(fd, st.st_size - (1 << 20)))
			perror("ftruncate");
	} else {
		char b;
		off_t at = LZ_PAGES_HDR_SIZE + (off_t)(c->nr_data / 2) * (off_t)PG + 123;

		if (pread(fd, &b, 1, at) == 1) {
			b ^= 0x40;
			if (pwrite(fd, &b, 1, at) != 1)
				perror("pwrite");
		}
	}
	close(fd);
}

/* One scenario from images to verdict. 0: PASS. */
static int run_scenario(struct ctx *c, char *why, size_t len)
{
	unsigned f = c->s->flags;
	pid_t daemon = 0, work;
	int wst, dst = 0, ret = 0;
	char out[128], b;

	make_layout(c);
	if (write_images(c))
		return fail(why, len, "cannot write the images");
	if (f & (S_TRUNCATE | S_CORRUPT))
		image_damage(c);
	if (!(f & S_SPAWN)) {
		daemon = start_daemon(c, false, path_in(c, "daemon.out", out, sizeof(out)));
		if (daemon <= 0)
			return fail(why, len, "lazy-pages did not get ready");
	}
	if (pipe2(c->notify, O_CLOEXEC) || pipe2(c->timing, O_CLOEXEC))
		return fail(why, len, "pipe");
	work = fork();
	if (work == 0)
		workload_main(c);
	close(c->notify[1]);
	close(c->timing[1]);
	c->timing[1] = -1;
	/* Things to do while the workload's pages are outstanding. */
	if (read(c->notify[0], &b, 1) == 1) {
		if (f & (S_KILL_RESUME | S_KILL_NORESUME) && !(f & S_CRASH_FORK))
			ret = kill_daemon(c, &daemon, why, len);
		if (!ret && (f & S_GARBAGE))
			ret = garbage_peers(c, work, why, len);
		if (!ret && (f & S_SECOND))
			ret = second_daemon(c, why, len);
	}
	close(c->notify[0]);
	wst = wait_for(work, 120000);
	if (read(c->timing[0], &c->touch_s, sizeof(c->touch_s)) != sizeof(c->touch_s))
		c->touch_s = -1;
	close(c->timing[0]);
	if (daemon > 0)
		dst = wait_for(daemon, 60000);
	if (ret)
		goto out;
	if (f & S_TRUNCATE)
		ret = expect_killed(wst, c, "pages-4242.img: truncated", NULL, why, len);
	else if (f & S_CORRUPT)
		ret = expect_killed(wst, c, "pages-4242.img: block", "checksum mismatch", why, len);
	else if (f & S_CRASH_FORK)
		ret = expect_killed(wst, c, "forked as the daemon died", NULL, why, len);
	else if (f & S_KILL_NORESUME)
		ret = expect_killed(wst, c, "nobody resumed", NULL, why, len);
	else if (wst < 0 || !WIFEXITED(wst) || WEXITSTATUS(wst) != WL_OK)
		ret = fail(why, len, "workload %s", describe(wst));
	if (!ret && (f & S_CRASH_FORK) && (dst < 0 || !WIFSIGNALED(dst)))
		ret = fail(why, len, "daemon %s, want it dead by its crash hook", describe(dst));
	/* A daemon that had to kill a process says so in its exit status. */
	if (!ret && daemon > 0 && !(f & S_CRASH_FORK) &&
	    (dst < 0 || !WIFEXITED(dst) || WEXITSTATUS(dst) != ((f & (S_TRUNCATE | S_CORRUPT)) ? 1 : 0)))
		ret = fail(why, len, "daemon %s, want exit %d", describe(dst),
			   (f & (S_TRUNCATE | S_CORRUPT)) ? 1 : 0);
	if (!ret && f & S_SPAWN) {
		for (int i = 0; i < 500 && kill_leftovers(false); i++)
			usleep(20000);
	}
	if (!ret && !(f & S_TRUNCATE))
		ret = check_stats(c, f & S_KILL_RESUME, why, len);
	if (!ret && (f & S_GARBAGE) && !file_has(path_in(c, "daemon.log", out, sizeof(out)),
						 "connection refused"))
		ret = fail(why, len, "daemon.log does not record the refusals");
out:
	if (daemon > 0 && dst == -1)
		kill(daemon, SIGKILL);
	/* The guardian must be gone on its own by now (after it acted). */
	for (int i = 0; i < 300 && kill_leftovers(false); i++)
		usleep(20000);
	if (kill_leftovers(true) && !ret)
		ret = fail(why, len, "processes (the guardian?) were left behind");
	return ret;
}

/* Median fault service time from the stats file: the log2 bucket. */
static int median_bucket(const struct ctx *c)
{
	char p[128], buf[8192], *h;
	uint64_t cnt[64] = { 0 }, total = 0, acc = 0;
	int fd, n;

	path_in(c, LZ_LAZY_STATS_NAME, p, sizeof(p));
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	h = strstr(buf, "\"fault_latency_ns_log2\": {");
	if (!h)
		return -1;
	h = strchr(h, '{') + 1;
	while (*h && *h != '}') {
		unsigned b;
		unsigned long long v;

		if (sscanf(h, " \"%u\": %llu", &b, &v) != 2 || b >= 64)
			break;
		cnt[b] = v;
		total += v;
		h = strchr(h, ',');
		if (!h)
			break;
		h++;
	}
	for (int b = 0; b < 64; b++) {
		acc += cnt[b];
		if (total && acc * 2 >= total)
			return b;
	}
	return -1;
}

static void cleanup_dir(const struct ctx *c)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", c->dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", c->dir);
}

static int one(const struct scenario *s, const char *lazarus, bool keep, unsigned fa_kib,
	       uint64_t mib, double *touch_s, int *median)
{
	struct ctx c = { .s = s, .lazarus = lazarus, .region = (mib << 20) / 2,
			 .fault_around_kib = fa_kib };
	char why[256] = "";
	int ret;

	snprintf(c.dir, sizeof(c.dir), "/tmp/lzlazy-%s-XXXXXX", s->name);
	if (!mkdtemp(c.dir)) {
		perror("mkdtemp");
		return 1;
	}
	ret = run_scenario(&c, why, sizeof(why));
	if (touch_s)
		*touch_s = c.touch_s;
	if (median)
		*median = median_bucket(&c);
	if (!touch_s)
		printf("%s %s: %s%s%s\n", ret ? "FAIL" : "PASS", s->name, s->what,
		       ret ? ": " : "", ret ? why : "");
	fflush(stdout);
	if (ret) {
		char cmd[200];

		snprintf(cmd, sizeof(cmd), "tail -n 15 %s/daemon.log >&2", c.dir);
		if (system(cmd))
			(void)0;
	}
	if (!keep && !ret)
		cleanup_dir(&c);
	else if (ret)
		fprintf(stderr, "  (images and logs kept in %s)\n", c.dir);
	free(c.runs);
	return ret ? 1 : 0;
}

static int measure(const char *lazarus, uint64_t mib)
{
	static const struct scenario seq = { "measure-seq", S_LATE_FINISH | S_SEQUENTIAL, "" };
	static const struct scenario rnd_ = { "measure-rand", S_LATE_FINISH, "" };
	const unsigned fa[] = { 4, 16, 32, 64, 128, 256 };

	printf("fault-around  sequential, 1 thread          random, 4 threads         (%" PRIu64
	       " MiB, faults only, best of 3;\n"
	       "              time   rate      median fault   time   rate      median fault)\n",
	       mib);
	for (size_t i = 0; i < sizeof(fa) / sizeof(fa[0]); i++) {
		double best[2] = { 1e9, 1e9 };
		int med[2] = { -1, -1 };

		for (int rep = 0; rep < 3; rep++) {
			const struct scenario *sc[2] = { &seq, &rnd_ };

			for (int k = 0; k < 2; k++) {
				double t;
				int m;

				if (one(sc[k], lazarus, false, fa[i], mib, &t, &m) == 0 && t > 0 &&
				    t < best[k]) {
					best[k] = t;
					med[k] = m;
				}
			}
		}
		printf("%4u KiB  %7.0f ms %5.0f MB/s  %6.0f us   %7.0f ms %5.0f MB/s  %6.0f us\n",
		       fa[i], best[0] * 1e3, (double)(mib << 20) / best[0] / 1e6,
		       med[0] < 0 ? 0.0 : 1.5 * (double)(1ULL << med[0]) / 1e3, best[1] * 1e3,
		       (double)(mib << 20) / best[1] / 1e6,
		       med[1] < 0 ? 0.0 : 1.5 * (double)(1ULL << med[1]) / 1e3);
		fflush(stdout);
	}
	return 0;
}

static const char *default_lazarus(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 16);
	char *slash;

	if (n <= 0)
		return "build/lazarus";
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		strcpy(slash, "/lazarus");
	return buf;
}

int main(int argc, char **argv)
{
	char buf[4096];
	const char *lazarus = default_lazarus(buf, sizeof(buf));
	bool keep = false, do_measure = false, any = false;
	uint64_t mib = 64;
	int failed = 0, i;

	setvbuf(stdout, NULL, _IOLBF, 0);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGPIPE, SIG_IGN);
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--lazarus") && i + 1 < argc)
			lazarus = argv[++i];
		else if (!strcmp(argv[i], "--keep"))
			keep = true;
		else if (!strcmp(argv[i], "--measure"))
			do_measure = true;
		else if (!strcmp(argv[i], "--mib") && i + 1 < argc)
			mib = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--list")) {
			for (size_t k = 0; k < sizeof(scenarios) / sizeof(scenarios[0]); k++)
				printf("%s\n", scenarios[k].name);
			return 0;
		} else {
			fprintf(stderr, "usage: %s [--lazarus PATH] [--keep] [--mib N] "
				"[--measure | --list | SCENARIO...]\n", argv[0]);
			return 2;
		}
	}
	if (do_measure)
		return measure(lazarus, mib);
	for (size_t k = 0; k < sizeof(scenarios) / sizeof(scenarios[0]); k++) {
		bool want = i == argc;

		for (int j = i; j < argc; j++)
			want |= !strcmp(argv[j], scenarios[k].name);
		if (!want)
			continue;
		any = true;
		failed += one(&scenarios[k], lazarus, keep, 0, mib, NULL, NULL);
	}
	if (!any) {
		fprintf(stderr, "no such scenario; see --list\n");
		return 2;
	}
	return failed ? 1 : 0;
}
