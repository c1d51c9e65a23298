/*
 * dump-mem.c - walk /proc/PID/pagemap and copy the private pages out.
 *
 * Which pages: in private VMAs (anonymous, private file and memfd mappings), every
 * page present or swapped that is not a file page: anonymous memory, and
 * pages of a private file mapping that were copied on write. Untouched
 * pages and file pages come back by themselves; pages mapped to the kernel's
 * zero page are skipped, pages that are all zero become LZ_PE_ZERO runs
 * without data.
 *
 * Pages are gathered into batches of up to 256 KiB, read with one
 * process_vm_readv (or /proc/PID/mem for mappings without PROT_READ, which
 * process_vm_readv cannot read), checked for zeros and appended to the pages
 * file with crc32c per 16-page block. Runs never cross a VMA.
 *
 * Past the first WRITER_AFTER bytes, if WRITER_MIN_LEFT or more is still to
 * scan then (else the thread costs more than it gives), the appending is a
 * writer thread's:
 * writing into fresh page-cache pages costs about as much as reading the
 * target's pages and checksumming them, so while one batch is being
 * written the next one is read and checked, on the other CPU. Two 1 MiB
 * batch buffers go back and forth; the writer only calls write() and
 * reports its first error, which the walk picks up at its next batch.
 *
 * A stop signal (dump-signals.h) is polled before each batch and each chunk
 * of pagemap, so a dump of many GiB stops within one batch's time.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "fdio.h"
#include "log.h"
#include "dump-mem.h"
#include "safe-file.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"

#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_FILE (1ULL << 61) /* file page or shared anonymous */
#define PM_PFN_MASK ((1ULL << 55) - 1)

#define BATCH_PAGES 256U   /* 1 MiB per read with the writer thread: handed over once */
#define INLINE_BATCH_PAGES 64U /* 256 KiB without: stays in cache for all three passes */
#define NR_SLOTS 2	   /* batch buffers: one read and checked, one written */
#define WRITER_AFTER (4U << 20)	     /* bytes written inline before the writer thread starts */
#define WRITER_MIN_LEFT (32ULL << 20) /* ... if at least this much is still to scan */
#define PM_CHUNK 16384U	   /* pagemap entries per read: 64 MiB of address space */
#define BATCH_IOV_MAX 1024 /* IOV_MAX of Linux */

struct batch_range {
	uint64_t addr;
	uint32_t nr;	/* pages */
	uint32_t vma;	/* index in mm->vmas */
	uint32_t flags; /* LZ_PE_LAZY or 0 */
};

/* One batch buffer and the stretches of its non-zero pages to append. */
struct write_slot {
	uint8_t *buf;
	struct {
		uint32_t first, nr; /* pages of buf */
	} ext[BATCH_PAGES / 2 + 1];
	size_t nr_ext;
};

/*
 * The writer thread: slots [tail, head) (mod NR_SLOTS) are handed over and
 * not yet written. Everything below lock is under it.
 */
struct writer {
	pthread_t thread;
	bool tried, running;
	int fd;
	struct write_slot slot[NR_SLOTS];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned head, tail;
	bool stop;  /* no more slots come; leave once the queued ones are written */
	bool abort; /* leave now */
	int err;    /* the first failed write, -errno */
};

struct mem_ctx {
	const struct mm_dump *mm;
	pid_t pid;
	pid_t img_pid; /* names pages- and pagemap-<pid>.img */
	uint64_t *sp_pages; /* each thread's stack pointer page, sorted: never lazy */
	size_t nr_sp;
	uint64_t args_lo, args_hi; /* pages of argv/envp: never lazy, see mem_ctx_init */
	uint64_t zero_pfn;  /* PFN of the kernel zero page, 0 if unknown */
	int pagemap_fd, mem_fd, pages_fd;
	struct mem_stats *st;
	struct dump_sig *sig;

	uint64_t *pm;	    /* PM_CHUNK pagemap entries */
	struct writer wr;
	uint8_t *buf;	    /* BATCH_PAGES pages: the slot being filled */
	bool zero[BATCH_PAGES];
	struct batch_range ranges[BATCH_PAGES];
	size_t nr_ranges, batch_pages, batch_max;
	struct iovec remote[BATCH_IOV_MAX];

	PagemapEntry *runs; /* the pagemap, in address order */
	size_t nr_runs, cap_runs;
	uint32_t last_vma;  /* VMA of runs[nr_runs - 1] */
	uint64_t data_pages;

	uint32_t *crc;	    /* one per MEM_BLOCK_PAGES data pages */
	size_t nr_crc, cap_crc;
	uint32_t cur_crc;
	unsigned cur_fill;

	bool progress;
	uint64_t total_pages;
	unsigned next_pct;
	char pages_name[DUMP_IMG_NAME_MAX];
};

/*
 * Private VMAs hold the pages we dump. One where smaps counted no anonymous
 * and no swapped page has none of them (the task is frozen, so this stays
 * true), and its pagemap need not be read: that skips most library
 * mappings and huge PROT_NONE reservations.
 */
static bool vma_dumpable(const struct dump_vma *v)
{
	bool private_shmem = v->kind == VMA_KIND__VMA_SHMEM && !(v->flags & MAP_SHARED);

	return (v->kind == VMA_KIND__VMA_ANON || v->kind == VMA_KIND__VMA_FILE_PRIVATE ||
		private_shmem) &&
	       !v->no_anon;
}

/*
 * The kernel zero page backs anonymous pages that were read but never
 * written. Learn its PFN from two pages of our own that we only read: they
 * must show the same PFN. Some kernels give each read fault a page of its
 * own (this machine's does), and PFNs read as 0 without CAP_SYS_ADMIN; then
 * 0 comes back and such pages are found by their content instead. A PFN of
 * an ordinary page must never be taken for it: the page is freed and may
 * hold the target's data the next moment.
 */
static uint64_t find_zero_pfn(void)
{
	uint64_t e[2] = { 0, 0 }, pfn = 0;
	volatile uint8_t *p;
	int fd;

	p = mmap(NULL, 2 * LZ_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 0;
	(void)p[0];
	(void)p[LZ_PAGE_SIZE];
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, e, sizeof(e), (off_t)((uintptr_t)p / LZ_PAGE_SIZE * 8)) == sizeof(e) &&
		    (e[0] & PM_PRESENT) && (e[1] & PM_PRESENT) &&
		    (e[0] & PM_PFN_MASK) == (e[1] & PM_PFN_MASK))
			pfn = e[0] & PM_PFN_MASK;
		close(fd);
	}
	munmap((void *)p, 2 * LZ_PAGE_SIZE);
	return pfn;
}

static bool page_is_zero(const uint8_t *p)
{
	/* memcmp against itself shifted by 8 uses libc's vectorised compare. */
	uint64_t first;

	memcpy(&first, p, sizeof(first));
	return first == 0 && !memcmp(p, p + 8, LZ_PAGE_SIZE - 8);
}

/* ------------------------------------------------------------ output */

static int append_run(struct mem_ctx *c, uint64_t addr, uint32_t vma, uint32_t flags)
{
	PagemapEntry *e;

	if (c->nr_runs) {
		e = &c->runs[c->nr_runs - 1];
		if (c->last_vma == vma && e->flags == flags &&
		    e->vaddr + e->nr_pages * LZ_PAGE_SIZE == addr) {
			e->nr_pages++;
			goto out;
		}
	}
	if (c->nr_runs == c->cap_runs) {
		size_t nc = c->cap_runs ? c->cap_runs * 2 : 256;
		PagemapEntry *nr = realloc(c->runs, nc * sizeof(*nr));

		if (!nr)
			return -ENOMEM;
		c->runs = nr;
		c->cap_runs = nc;
	}
	e = &c->runs[c->nr_runs++];
	pagemap_entry__init(e);
	e->vaddr = addr;
	e->nr_pages = 1;
	e->flags = flags;
	if (flags & LZ_PE_PRESENT) {
		e->has_data_page = true;
		e->data_page = c->data_pages;
	}
	c->last_vma = vma;
out:
	if (flags & LZ_PE_PRESENT)
		c->data_pages++;
	return 0;
}

static int crc_push(struct mem_ctx *c)
{
	if (c->nr_crc == c->cap_crc) {
		size_t nc = c->cap_crc ? c->cap_crc * 2 : 1024;
		uint32_t *n = realloc(c->crc, nc * sizeof(*n));

		if (!n)
			return -ENOMEM;
		c->crc = n;
		c->cap_crc = nc;
	}
	c->crc[c->nr_crc++] = c->cur_crc;
	c->cur_crc = 0;
	c->cur_fill = 0;
	return 0;
}

static int crc_add_page(struct mem_ctx *c, const uint8_t *page)
{
	c->cur_crc = lz_crc32c(c->cur_crc, page, LZ_PAGE_SIZE);
	return ++c->cur_fill == MEM_BLOCK_PAGES ? crc_push(c) : 0;
}

/* ------------------------------------------------------------ batches */

static int read_unreadable(struct mem_ctx *c, const struct batch_range *r, uint8_t *dst)
{
	int ret = fdio_pread_all(c->mem_fd, dst, r->nr * LZ_PAGE_SIZE, r->addr);

	if (ret)
		pr_err("process %d: reading memory at %#" PRIx64 " (%u pages) from /proc/%d/mem: %s",
		       c->pid, r->addr, r->nr, c->pid, strerror(-ret));
	return ret;
}

/* Ranges [i, j) are readable: one process_vm_readv into dst. */
static int read_readable(struct mem_ctx *c, size_t i, size_t j, uint8_t *dst, size_t total)
{
	struct iovec local = { dst, total };
	ssize_t n;

	for (size_t k = i; k < j; k++) {
		c->remote[k - i].iov_base = (void *)c->ranges[k].addr;
		c->remote[k - i].iov_len = c->ranges[k].nr * LZ_PAGE_SIZE;
	}
	n = process_vm_readv(c->pid, &local, 1, c->remote, j - i, 0);
	if (n == (ssize_t)total)
		return 0;
	/* A short read should not happen to a frozen task; fall back to /proc/PID/mem. */
	pr_debug("process %d: process_vm_readv read %zd of %zu bytes, using /proc/%d/mem", c->pid,
		 n, total, c->pid);
	for (size_t k = i; k < j; k++) {
		int ret = read_unreadable(c, &c->ranges[k], dst);

		if (ret)
			return ret;
		dst += c->ranges[k].nr * LZ_PAGE_SIZE;
	}
	return 0;
}

static bool range_readable(const struct mem_ctx *c, const struct batch_range *r)
{
	return c->mm->vmas[r->vma].prot & PROT_READ;
}

static int read_batch(struct mem_ctx *c)
{
	uint8_t *dst = c->buf;
	size_t i = 0;

	while (i < c->nr_ranges) {
		size_t j = i, total = 0;
		int ret;

		if (!range_readable(c, &c->ranges[i])) {
			ret = read_unreadable(c, &c->ranges[i], dst);
			if (ret)
				return ret;
			dst += c->ranges[i++].nr * LZ_PAGE_SIZE;
			continue;
		}
		while (j < c->nr_ranges && j - i < BATCH_IOV_MAX && range_readable(c, &c->ranges[j]))
			total += c->ranges[j++].nr * LZ_PAGE_SIZE;
		ret = read_readable(c, i, j, dst, total);
		if (ret)
			return ret;
		dst += total;
		i = j;
	}
	return 0;
}

/* Zero check, runs and checksums for every page of the batch, in order. */
static int account_batch(struct mem_ctx *c)
{
	size_t k = 0;

	for (size_t i = 0; i < c->nr_ranges; i++) {
		const struct batch_range *r = &c->ranges[i];

		for (uint32_t p = 0; p < r->nr; p++, k++) {
			const uint8_t *page = c->buf + k * LZ_PAGE_SIZE;
			uint32_t flags = r->flags;
			int ret;

			c->zero[k] = page_is_zero(page);
			flags |= c->zero[k] ? LZ_PE_ZERO : LZ_PE_PRESENT;
			ret = append_run(c, r->addr + p * LZ_PAGE_SIZE, r->vma, flags);
			if (!ret && !c->zero[k])
				ret = crc_add_page(c, page);
			if (ret)
				return ret;
			c->st->pages_zero += c->zero[k];
			c->st->pages_written += !c->zero[k];
			c->st->pages_lazy += !!(flags & LZ_PE_LAZY);
		}
	}
	return 0;
}

/* ------------------------------------------------------------ writer */

static int write_slot(int fd, const struct write_slot *ws)
{
	for (size_t i = 0; i < ws->nr_ext; i++) {
		int ret = fdio_write_all(fd, ws->buf + (size_t)ws->ext[i].first * LZ_PAGE_SIZE,
					 (size_t)ws->ext[i].nr * LZ_PAGE_SIZE);

		if (ret)
			return ret;
	}
	return 0;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct write_slot *ws;
		int ret;

		while (w->tail == w->head && !w->stop && !w->abort)
			pthread_cond_wait(&w->cond, &w->lock);
		if (w->abort || w->tail == w->head)
			break;
		ws = &w->slot[w->tail % NR_SLOTS];
		pthread_mutex_unlock(&w->lock);
		ret = write_slot(w->fd, ws);
		pthread_mutex_lock(&w->lock);
		w->tail++;
		pthread_cond_broadcast(&w->cond);
		if (ret) {
			w->err = ret;
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

/*
 * The walk's side. The writer runs with every signal blocked, so the ones
 * dump-signals.h waits for stay for the walk's dsig_poll(). Until it runs
 * (the first WRITER_AFTER bytes, and all of a dump with less than
 * WRITER_MIN_LEFT left to scan: a thread, a second buffer and the
 * handovers cost more than they give to a small dump), and without it (one
 * CPU, no memory, pthread_create failed), the walk writes its one slot
 * itself.
 */
static void *slot_buf_alloc(int populate)
{
	void *b = mmap(NULL, BATCH_PAGES * LZ_PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | populate, -1, 0);

	return b == MAP_FAILED ? NULL : b;
}

static void writer_start(struct writer *w)
{
	sigset_t all, old;
	cpu_set_t cpus;
	int ret;

	w->tried = true;
	/* On one CPU the two would only take turns, paying for the handovers. */
	if (sched_getaffinity(0, sizeof(cpus), &cpus) || CPU_COUNT(&cpus) < 2)
		return;
	for (size_t i = 1; i < NR_SLOTS; i++) {
		if (!w->slot[i].buf)
			w->slot[i].buf = slot_buf_alloc(MAP_POPULATE);
		if (!w->slot[i].buf)
			return;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&w->thread, NULL, writer_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		pr_debug("no writer thread (%s): writing pages inline", strerror(ret));
	w->running = !ret;
}

/* Wait until slot head is free to fill; the writer's error, if any. */
static int writer_next(struct writer *w)
{
	int ret;

	if (!w->running)
		return 0;
	pthread_mutex_lock(&w->lock);
	while (w->head - w->tail >= NR_SLOTS && !w->err)
		pthread_cond_wait(&w->cond, &w->lock);
	ret = w->err;
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static int writer_submit(struct writer *w)
{
	if (!w->running) {
		w->err = write_slot(w->fd, &w->slot[w->head % NR_SLOTS]);
		return w->err;
	}
	pthread_mutex_lock(&w->lock);
	w->head++;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

/* Everything handed over written (or, with ABORT, nothing more), the thread gone. */
static int writer_finish(struct writer *w, bool abort)
{
	if (w->running) {
		pthread_mutex_lock(&w->lock);
		w->stop = true;
		w->abort = abort;
		pthread_cond_broadcast(&w->cond);
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
		w->running = false;
	}
	return w->err;
}

/* Hand the batch's non-zero pages to the writer, one write per stretch of them. */
static int write_batch(struct mem_ctx *c)
{
	struct write_slot *ws = &c->wr.slot[c->wr.head % NR_SLOTS];
	size_t k = 0;

	ws->nr_ext = 0;
	while (k < c->batch_pages) {
		size_t j;

		if (c->zero[k]) {
			k++;
			continue;
		}
		for (j = k; j < c->batch_pages && !c->zero[j]; j++)
			;
		ws->ext[ws->nr_ext].first = (uint32_t)k;
		ws->ext[ws->nr_ext++].nr = (uint32_t)(j - k);
		c->st->bytes_written += (j - k) * LZ_PAGE_SIZE;
		k = j;
	}
	return writer_submit(&c->wr);
}

static int writer_error(struct mem_ctx *c, int ret)
{
	if (ret)
		pr_err("writing %s: %s", c->pages_name, strerror(-ret));
	return ret;
}

static int flush_batch(struct mem_ctx *c)
{
	int ret = 0;

	if (!c->batch_pages)
		return 0;
	ret = dsig_poll(c->sig);
	if (!c->wr.tried && c->st->bytes_written >= WRITER_AFTER &&
	    c->st->pages_scanned < c->total_pages &&
	    (c->total_pages - c->st->pages_scanned) * LZ_PAGE_SIZE >= WRITER_MIN_LEFT) {
		writer_start(&c->wr);
		c->batch_max = c->wr.running ? BATCH_PAGES : INLINE_BATCH_PAGES;
	}
	if (!ret)
		ret = writer_error(c, writer_next(&c->wr));
	c->buf = c->wr.slot[c->wr.head % NR_SLOTS].buf;
	if (!ret)
		ret = read_batch(c);
	if (!ret)
		ret = account_batch(c);
	if (!ret)
		ret = writer_error(c, write_batch(c));
	c->nr_ranges = 0;
	c->batch_pages = 0;
	return ret;
}

static int batch_add(struct mem_ctx *c, uint64_t addr, uint32_t vma, uint32_t flags)
{
	struct batch_range *r = c->nr_ranges ? &c->ranges[c->nr_ranges - 1] : NULL;

	if (r && r->vma == vma && r->flags == flags && r->addr + r->nr * LZ_PAGE_SIZE == addr) {
		r->nr++;
	} else {
		r = &c->ranges[c->nr_ranges++];
		r->addr = addr;
		r->nr = 1;
		r->vma = vma;
		r->flags = flags;
	}
	return ++c->batch_pages == c->batch_max ? flush_batch(c) : 0;
}

/* ------------------------------------------------------------ walk */

static void report_progress(struct mem_ctx *c)
{
	unsigned pct;

	if (!c->progress || !c->total_pages)
		return;
	pct = (unsigned)(c->st->pages_scanned * 100 / c->total_pages);
	if (pct < c->next_pct)
		return;
	fprintf(stderr, "dump: memory %3u%% (%" PRIu64 " of %" PRIu64 " MiB scanned, %" PRIu64
			" MiB written)\n",
		pct, c->st->pages_scanned >> 8, c->total_pages >> 8,
		c->st->pages_written >> 8);
	c->next_pct = pct / 5 * 5 + 5;
}

/* The page of a thread's stack pointer: the thread writes there first when it resumes. */
static bool is_sp_page(const struct mem_ctx *c, uint64_t addr)
{
	size_t lo = 0, hi = c->nr_sp;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (c->sp_pages[mid] == addr)
			return true;
		if (c->sp_pages[mid] < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static bool page_wanted(const struct mem_ctx *c, uint64_t e)
{
	if (!(e & (PM_PRESENT | PM_SWAP)) || (e & PM_FILE))
		return false;
	return !(e & PM_PRESENT) || !c->zero_pfn || (e & PM_PFN_MASK) != c->zero_pfn;
}

static int walk_vma(struct mem_ctx *c, uint32_t idx)
{
	const struct dump_vma *v = &c->mm->vmas[idx];
	bool lazy = v->kind == VMA_KIND__VMA_ANON && !(v->vmflags & PROC_VMF_LO);

	for (uint64_t addr = v->start; addr < v->end;) {
		size_t n = MIN(PM_CHUNK, (v->end - addr) / LZ_PAGE_SIZE);
		int ret = fdio_pread_all(c->pagemap_fd, (uint8_t *)c->pm, n * 8, addr / LZ_PAGE_SIZE * 8);

		if (ret) {
			pr_err("process %d: reading /proc/%d/pagemap at %#" PRIx64 ": %s", c->pid,
			       c->pid, addr, strerror(-ret));
			return ret;
		}
		for (size_t i = 0; i < n; i++, addr += LZ_PAGE_SIZE) {
			uint32_t flags = lazy && !is_sp_page(c, addr) &&
						 (addr < c->args_lo || addr >= c->args_hi)
						 ? LZ_PE_LAZY
						 : 0;

			if (!page_wanted(c, c->pm[i])) {
				if (c->pm[i] & PM_PRESENT && !(c->pm[i] & PM_FILE))
					c->st->pages_zero_pfn++;
				continue;
			}
			ret = batch_add(c, addr, idx, flags);
			if (ret)
				return ret;
		}
		c->st->pages_scanned += n;
		report_progress(c);
		if (c->st->pages_scanned * 2 >= c->total_pages)
			dsig_pause(c->sig, "memory"); /* the test hook: half way */
		ret = dsig_poll(c->sig);
		if (ret)
			return ret;
	}
	/* Runs must not cross VMAs; a batch ends with its VMA so none does. */
	return flush_batch(c);
}

/* ------------------------------------------------------------ files */

static int open_sources(struct mem_ctx *c)
{
	char path[64];

	snprintf(path, sizeof(path), "/proc/%d/pagemap", c->pid);
	c->pagemap_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (c->pagemap_fd < 0) {
		pr_perror("process %d: opening %s", c->pid, path);
		return -errno;
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", c->pid);
	c->mem_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (c->mem_fd < 0) {
		pr_perror("process %d: opening %s", c->pid, path);
		return -errno;
	}
	return 0;
}

static int open_pages(struct mem_ctx *c, struct dump_imgs *imgs)
{
	uint8_t hdr[LZ_PAGES_HDR_SIZE] = { 0 };
	int ret;

	/*
	 * Straight under its final name, new (O_EXCL, 0600, no symlink
	 * followed), in the dump's own fresh staging directory: it reaches
	 * the images directory only at the commit (dump-img.c).
	 */
	snprintf(c->pages_name, sizeof(c->pages_name), "pages-%d.img", c->img_pid);
	c->pages_fd = sf_create_excl(imgs->stagefd, c->pages_name);
	if (c->pages_fd < 0) {
		pr_err("creating %s: %s", c->pages_name, strerror(-c->pages_fd));
		return c->pages_fd;
	}
	/* The real header goes in at the end, when the page count is known. */
	ret = fdio_write_all(c->pages_fd, hdr, sizeof(hdr));
	if (ret)
		pr_err("writing %s: %s", c->pages_name, strerror(-ret));
	c->st->bytes_written = sizeof(hdr);
	return ret;
}

static int close_pages(struct mem_ctx *c, struct dump_imgs *imgs)
{
	struct lz_pages_hdr h;
	int ret;

	ret = writer_error(c, writer_finish(&c->wr, false));
	if (ret)
		return ret;
	pages_hdr_init(&h, (uint32_t)c->img_pid, c->data_pages, &imgs->id);
	if (pwrite(c->pages_fd, &h, sizeof(h), 0) != sizeof(h) || fsync(c->pages_fd) < 0) {
		pr_perror("writing %s", c->pages_name);
		return -errno;
	}
	ret = close(c->pages_fd) < 0 ? -errno : 0;
	c->pages_fd = -1;
	if (ret) {
		pr_err("writing %s: %s", c->pages_name, strerror(-ret));
		return ret;
	}
	ret = dump_imgs_add(imgs, c->pages_name, LZ_PAGES_HDR_SIZE + c->data_pages * LZ_PAGE_SIZE,
			    h.hdr_crc);
	if (ret)
		pr_err("writing %s: %s", c->pages_name, strerror(-ret));
	return ret;
}

static int write_pagemap(struct mem_ctx *c, struct dump_imgs *imgs)
{
	PagemapHead head = PAGEMAP_HEAD__INIT;
	const ProtobufCMessage **msgs;
	char name[DUMP_IMG_NAME_MAX];
	int ret;

	msgs = malloc((c->nr_runs + 1) * sizeof(*msgs));
	if (!msgs) {
		pr_err("writing pagemap-%d.img: %s", c->img_pid, strerror(ENOMEM));
		return -ENOMEM;
	}
	head.pid = (uint32_t)c->img_pid;
	head.nr_data_pages = c->data_pages;
	head.block_pages = MEM_BLOCK_PAGES;
	head.n_block_crc = c->nr_crc;
	head.block_crc = c->crc;
	msgs[0] = &head.base;
	for (size_t i = 0; i < c->nr_runs; i++)
		msgs[i + 1] = &c->runs[i].base;
	snprintf(name, sizeof(name), "pagemap-%d.img", c->img_pid);
	ret = dump_img_write(imgs, name, LZ_IMG_PAGEMAP, msgs, c->nr_runs + 1);
	free(msgs);
	return ret;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int mem_ctx_init(struct mem_ctx *c, const struct mm_dump *mm, const uint64_t *sp,
			size_t nr_sp, bool progress, struct mem_stats *st, struct dump_sig *sig)
{
	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->wr.lock, NULL);
	pthread_cond_init(&c->wr.cond, NULL);
	c->wr.fd = -1;
	c->mm = mm;
	c->pid = mm->pid;
	c->img_pid = mm->img_pid;
	c->sp_pages = malloc((nr_sp + 1) * sizeof(*c->sp_pages));
	if (!c->sp_pages)
		return -ENOMEM;
	for (size_t i = 0; i < nr_sp; i++)
		c->sp_pages[i] = ALIGN_DOWN(sp[i], LZ_PAGE_SIZE);
	qsort(c->sp_pages, nr_sp, sizeof(*c->sp_pages), cmp_u64);
	c->nr_sp = nr_sp;
	/*
	 * Other processes read argv and envp out of our memory
	 * (/proc/PID/cmdline, ps). Such remote reads cannot wait for a
	 * userfaultfd: on a missing lazy page they just see nothing, so
	 * these pages are restored eagerly.
	 */
	if (mm->stat.arg_start && mm->stat.env_end > mm->stat.arg_start) {
		c->args_lo = ALIGN_DOWN(MIN(mm->stat.arg_start, mm->stat.env_start), LZ_PAGE_SIZE);
		c->args_hi = ALIGN_UP(MAX(mm->stat.arg_end, mm->stat.env_end), LZ_PAGE_SIZE);
	}
	c->progress = progress;
	c->st = st;
	c->sig = sig;
	c->pagemap_fd = c->mem_fd = c->pages_fd = -1;
	c->zero_pfn = find_zero_pfn();
	c->pm = malloc(PM_CHUNK * sizeof(*c->pm));
	c->wr.slot[0].buf = slot_buf_alloc(0);
	c->batch_max = INLINE_BATCH_PAGES;
	if (!c->pm || !c->wr.slot[0].buf)
		return -ENOMEM;
	for (size_t i = 0; i < mm->nr_vmas; i++)
		if (vma_dumpable(&mm->vmas[i]))
			c->total_pages += (mm->vmas[i].end - mm->vmas[i].start) / LZ_PAGE_SIZE;
	pr_debug("process %d: %" PRIu64 " pages of private memory to scan, zero page pfn %#" PRIx64,
		 c->pid, c->total_pages, c->zero_pfn);
	return 0;
}

/* A pages file left unfinished stays in the staging directory, removed with it. */
static void mem_ctx_fini(struct mem_ctx *c)
{
	writer_finish(&c->wr, true);
	if (c->pages_fd >= 0)
		close(c->pages_fd);
	if (c->pagemap_fd >= 0)
		close(c->pagemap_fd);
	if (c->mem_fd >= 0)
		close(c->mem_fd);
	for (size_t i = 0; i < NR_SLOTS; i++)
		if (c->wr.slot[i].buf)
			munmap(c->wr.slot[i].buf, BATCH_PAGES * LZ_PAGE_SIZE);
	pthread_mutex_destroy(&c->wr.lock);
	pthread_cond_destroy(&c->wr.cond);
	free(c->pm);
	free(c->sp_pages);
	free(c->runs);
	free(c->crc);
}

int mem_dump(const struct mm_dump *mm, const uint64_t *sp, size_t nr_sp, bool progress,
	     struct dump_imgs *imgs, struct mem_stats *st, struct dump_sig *sig)
{
	struct mem_ctx *c = malloc(sizeof(*c)); /* ~70 KiB: not for the stack */
	int ret;

	if (!c)
		return -ENOMEM;
	memset(st, 0, sizeof(*st));
	ret = mem_ctx_init(c, mm, sp, nr_sp, progress, st, sig);
	if (!ret)
		ret = open_sources(c);
	if (!ret)
		ret = open_pages(c, imgs);
	c->wr.fd = c->pages_fd;
	for (uint32_t i = 0; !ret && i < mm->nr_vmas; i++)
		if (vma_dumpable(&mm->vmas[i]))
			ret = walk_vma(c, i);
	if (!ret && c->cur_fill)
		ret = crc_push(c); /* the last, partial block */
	if (ret == -ENOMEM)
		pr_err("process %d: out of memory while dumping its memory", mm->pid);
	if (!ret)
		ret = close_pages(c, imgs);
	if (!ret)
		ret = write_pagemap(c, imgs);
	st->nr_runs = c->nr_runs;
	mem_ctx_fini(c);
	free(c);
	return ret;
}
