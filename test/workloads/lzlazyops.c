/*
 * lzlazyops.c - a workload for lazy restore: right after it is restored it
 * forks, moves, unmaps, drops and touches memory from several threads while
 * most of its pages are still outstanding, and checks every result itself.
 *
 *   lzlazyops --dir DIR [--mib N] [--side-mib M] [--threads T] [--tail-offset K]
 *
 * Set-up: one span reserved PROT_NONE holds four read-write regions, each
 * between PROT_NONE guard pages (so each is a VMA of its own):
 *   A  N MiB (default 64)  read by T threads (default 4) after the restore
 *   B  M MiB (default 8)   moved and grown with mremap
 *   C  M MiB               its middle half unmapped
 *   D  M MiB               a part dropped with MADV_DONTNEED
 *   E  2M MiB, PROT_NONE   where B moves to; placed so that it ends K pages
 *                         (default 0) past a 2 MiB boundary, so whether a
 *                         fault-around window of the grown tail crosses the
 *                         end of the VMA is decided, not left to chance
 * Every 64-bit word holds a non-zero function of (region, word index),
 * except pages p % 61 == 5 (never touched) and p % 61 == 30 (written, then
 * zeroed), which read as zeros. DIR/ready ("pid=P a=... b=...") is written
 * (tmp + rename), then the process waits: every ~2 ms it checks whether
 * DIR/go exists.
 *
 * The harness dumps it while it waits, creates DIR/go and restores it
 * lazily. The restored process sees go at once and runs the operations, in
 * this order, each on memory the daemon most likely still has outstanding:
 *   fork      the child verifies every region and exits 0 (1, with its
 *             reasons in a pipe); the parent goes on, and waits for it last
 *   remap     B (two windows read first) moves into E and grows to 2M: its
 *             contents at the new address, the grown tail zeros, the old
 *             range unmapped
 *   munmap    the middle half of C (one window of it read first): the rest
 *             intact, the middle unmapped
 *   dontneed  MADV_DONTNEED on D's pages [M/4, 5M/8) (one window of it read
 *             first): zeros there, the pattern around
 *   threads   T threads, released together, each reads the pages
 *             p % T == t of A in its own random order and verifies them
 * then the parent verifies every region in its new state, reaps the child
 * and writes DIR/result (tmp + rename):
 *   "PASS seq=S pid=P ops=1 ... missing_fork=K ... tids=a,b,c,d child=0"
 *   "FAIL seq=S pid=P ops=1 ...: <op>: <details>; ..."
 * missing_<op> counts the pages of what the op works on that were not
 * present (/proc/self/pagemap) just before it: the evidence that it ran on
 * outstanding memory. tids are the threads' ids (as the daemon's
 * faults_per_thread names them).
 *
 * SIGUSR1 asks for a check of everything in its current state (before or
 * after the operations), answered the same way with ops=0 and missing=K
 * (pages of the live regions not present just before the check). SIGUSR2
 * reads one word at each address listed in DIR/touch (hex, one a line) and
 * then writes DIR/touched ("touched=N pid=P"): a test faults in the pages it
 * chooses. SIGTERM exits 0. Every syscall that a dump may interrupt is EINTR-safe. After the
 * restore nothing is allocated from the heap (a grown heap would be memory
 * of its own kind for the daemon): what the threads need is mmapped.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzlazyops"
#include "wl.h"

#define PAGE 4096UL
#define WPP (PAGE / sizeof(uint64_t)) /* words per page */
#define MIB (1UL << 20)
#define MAX_THREADS 16
#define NAP_NS 2000000L		      /* the go poll interval */
#define TAIL_ALIGN (2 * MIB)	      /* the largest fault-around window */
#define WINDOW (64 * 1024UL)	      /* the daemon's default fault-around window */

enum { R_A, R_B, R_C, R_D, NR_REGIONS };
static const char *const region_name[NR_REGIONS] = { "A", "B", "C", "D" };

/* Page p of a region reads as zero: never touched, or written then zeroed. */
static bool page_untouched(uint64_t p) { return p % 61 == 5; }
static bool page_zeroed(uint64_t p) { return p % 61 == 30; }
static bool page_zero(uint64_t p) { return page_untouched(p) || page_zeroed(p); }

static volatile sig_atomic_t check_requested, touch_requested, term_requested;

/* What a check has found: reasons, appended. One per thread. */
struct verdict {
	char buf[2048];
	size_t len;
	int fails;
};

struct ops {
	const char *dir;
	uint64_t mib, side_mib;
	uint64_t tail_offset;	/* E ends this many pages past a TAIL_ALIGN boundary */
	int nthreads;
	uint8_t *span;		/* the whole reservation */
	size_t span_len;
	uint8_t *reg[NR_REGIONS]; /* where each region is now (B moves) */
	uint64_t pages[NR_REGIONS]; /* pages each region was created with */
	uint8_t *e;		/* mremap destination */
	uint8_t *old_b;		/* B before it moved */
	bool ops_done;
	uint64_t seq;
};

/* One worker of the threads op. */
struct worker {
	const struct ops *o;
	pthread_barrier_t *go;
	uint64_t *order;	/* its pages of A, shuffled (mmapped) */
	size_t order_len;
	uint64_t n;
	pid_t tid;
	struct verdict v;
};

static uint64_t pattern(unsigned r, uint64_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)(r + 1) << 56);

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 29;
	return x ? x : 1;
}

static void fail(struct verdict *v, const char *fmt, ...)
{
	va_list ap;
	int n;

	v->fails++;
	if (v->len >= sizeof(v->buf) - 1)
		return;
	va_start(ap, fmt);
	n = vsnprintf(v->buf + v->len, sizeof(v->buf) - v->len, fmt, ap);
	va_end(ap);
	v->len = n < 0 ? v->len : v->len + (size_t)n;
	if (v->len < sizeof(v->buf) - 2) {
		v->buf[v->len++] = ';';
		v->buf[v->len++] = ' ';
		v->buf[v->len] = '\0';
	} else {
		v->len = sizeof(v->buf) - 1;
	}
}

static void merge(struct verdict *into, const struct verdict *from)
{
	size_t n = sizeof(into->buf) - 1 - into->len;

	into->fails += from->fails;
	n = from->len < n ? from->len : n;
	memcpy(into->buf + into->len, from->buf, n);
	into->len += n;
	into->buf[into->len] = '\0';
}

static void nap(void)
{
	struct timespec ts = { 0, NAP_NS };

	nanosleep(&ts, NULL); /* EINTR only shortens it */
}

/* --- checking memory --- */

/*
 * Page p of region r (p counts from the region's start as created), now at
 * addr. zero: the page must read as zeros whatever it held. 0 or -1 (one
 * failure reported).
 */
static int check_page(struct verdict *v, const char *what, unsigned r, const uint8_t *addr,
		      uint64_t p, bool zero)
{
	const volatile uint64_t *w = (const volatile uint64_t *)addr;

	zero = zero || page_zero(p);
	for (uint64_t k = 0; k < WPP; k++) {
		uint64_t got = w[k], want = zero ? 0 : pattern(r, p * WPP + k);

		if (got != want) {
			fail(v, "%s: region %s page %" PRIu64 " word %" PRIu64 " at %p is %#" PRIx64
			     ", want %#" PRIx64, what, region_name[r], p, k, (const void *)(w + k), got,
			     want);
			return -1;
		}
	}
	return 0;
}

/* Pages [first, first + n) of region r, whose page 0 is now at base. */
static void check_range(struct verdict *v, const char *what, unsigned r, const uint8_t *base,
			uint64_t first, uint64_t n, bool zero)
{
	int bad = 0;

	for (uint64_t p = first; p < first + n && bad < 3; p++)
		bad += check_page(v, what, r, base + p * PAGE, p, zero) ? 1 : 0;
}

/* Every page of [addr, addr + len) must be unmapped (mincore says ENOMEM). */
static void check_unmapped(struct verdict *v, const char *what, const uint8_t *addr, size_t len)
{
	unsigned char vec;

	for (size_t off = 0; off < len; off += PAGE) {
		if (mincore((void *)(addr + off), PAGE, &vec) == 0) {
			fail(v, "%s: %p is still mapped", what, (const void *)(addr + off));
			return;
		}
		if (errno != ENOMEM) {
			fail(v, "%s: mincore %p: %s", what, (const void *)(addr + off),
			     strerror(errno));
			return;
		}
	}
}

/* Pages of [addr, addr + len) not present in memory (nor swapped); -1 when
 * /proc/self/pagemap cannot be read. Reading it never faults. */
static int64_t count_missing(const void *addr, size_t len)
{
	uint64_t buf[512], first = (uintptr_t)addr / PAGE, n = len / PAGE;
	int64_t missing = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (uint64_t i = 0; i < n;) {
		uint64_t k = n - i < 512 ? n - i : 512;
		ssize_t got = pread(fd, buf, k * 8, (off_t)((first + i) * 8));

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0 || got % 8) {
			missing = -1;
			break;
		}
		for (uint64_t j = 0; j < (uint64_t)got / 8; j++)
			missing += !(buf[j] >> 62 & 3); /* bit 63 present, bit 62 swapped */
		i += (uint64_t)got / 8;
	}
	close(fd);
	return missing;
}

/* The layout after the operations, in pages of M MiB: C keeps [0, q) and
 * [3q, 4q); D reads zeros in [dn0, dn1). */
static uint64_t quarter(const struct ops *o) { return o->pages[R_C] / 4; }
static uint64_t dn0(const struct ops *o) { return o->pages[R_D] / 4; }
static uint64_t dn1(const struct ops *o) { return o->pages[R_D] / 2 + o->pages[R_D] / 8; }

/* Everything as it was set up. */
static void check_initial(const struct ops *o, struct verdict *v, const char *what)
{
	for (unsigned r = 0; r < NR_REGIONS; r++)
		check_range(v, what, r, o->reg[r], 0, o->pages[r], false);
}

/* Everything as the operations left it. */
static void check_after(const struct ops *o, struct verdict *v, const char *what)
{
	uint64_t sb = o->pages[R_B], q = quarter(o), pd = o->pages[R_D];

	check_range(v, what, R_A, o->reg[R_A], 0, o->pages[R_A], false);
	check_range(v, what, R_B, o->reg[R_B], 0, sb, false);
	check_range(v, what, R_B, o->reg[R_B], sb, sb, true);
	check_range(v, what, R_C, o->reg[R_C], 0, q, false);
	check_range(v, what, R_C, o->reg[R_C], 3 * q, o->pages[R_C] - 3 * q, false);
	check_range(v, what, R_D, o->reg[R_D], 0, dn0(o), false);
	check_range(v, what, R_D, o->reg[R_D], dn0(o), dn1(o) - dn0(o), true);
	check_range(v, what, R_D, o->reg[R_D], dn1(o), pd - dn1(o), false);
}

/* Pages of the regions as they are now that are not present. */
static int64_t missing_now(const struct ops *o)
{
	int64_t n[5];

	if (!o->ops_done) {
		n[0] = count_missing(o->reg[R_A], o->pages[R_A] * PAGE);
		n[1] = count_missing(o->reg[R_B], o->pages[R_B] * PAGE);
		n[2] = count_missing(o->reg[R_C], o->pages[R_C] * PAGE);
		n[3] = count_missing(o->reg[R_D], o->pages[R_D] * PAGE);
		n[4] = 0;
	} else {
		n[0] = count_missing(o->reg[R_A], o->pages[R_A] * PAGE);
		n[1] = count_missing(o->reg[R_B], 2 * o->pages[R_B] * PAGE);
		n[2] = count_missing(o->reg[R_C], quarter(o) * PAGE);
		n[3] = count_missing(o->reg[R_C] + 3 * quarter(o) * PAGE,
				     (o->pages[R_C] - 3 * quarter(o)) * PAGE);
		n[4] = count_missing(o->reg[R_D], o->pages[R_D] * PAGE);
	}
	for (int i = 0; i < 5; i++)
		if (n[i] < 0)
			return -1;
	return n[0] + n[1] + n[2] + n[3] + n[4];
}

/* --- results --- */

static void report(struct ops *o, const struct verdict *v, const char *extra)
{
	char text[4096];

	o->seq++;
	snprintf(text, sizeof(text), "%s seq=%" PRIu64 " pid=%d mib=%" PRIu64 " side=%" PRIu64
		 " threads=%d %s%s%s\n", v->fails ? "FAIL" : "PASS", o->seq, (int)getpid(), o->mib,
		 o->side_mib, o->nthreads, extra, v->fails ? ": " : "", v->fails ? v->buf : "");
	wl_publish(o->dir, "result", text);
	write_all(STDOUT_FILENO, text, strlen(text));
}

/* SIGUSR1: everything, in whatever state it is. */
static void self_check(struct ops *o)
{
	struct verdict v = { .len = 0 };
	char extra[128];
	int64_t missing = missing_now(o);

	if (o->ops_done)
		check_after(o, &v, "check");
	else
		check_initial(o, &v, "check");
	snprintf(extra, sizeof(extra), "ops=0 done=%d missing=%" PRId64, o->ops_done, missing);
	report(o, &v, extra);
}

/* SIGUSR2: read the addresses DIR/touch lists. */
static void touch_listed(const struct ops *o)
{
	char path[4200], buf[4096], done[64], *p, *end;
	ssize_t n, len = 0;
	unsigned touched = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/touch", o->dir);
	do
		fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		die("open %s", path);
	while (len < (ssize_t)sizeof(buf) - 1 &&
	       ((n = read(fd, buf + len, sizeof(buf) - 1 - (size_t)len)) > 0 || (n < 0 && errno == EINTR)))
		len += n > 0 ? n : 0;
	close(fd);
	buf[len] = '\0';
	for (p = buf;; p = end) {
		uintptr_t addr = (uintptr_t)strtoull(p, &end, 16);

		if (end == p)
			break;
		(void)*(const volatile uint64_t *)addr;
		touched++;
	}
	snprintf(done, sizeof(done), "touched=%u pid=%d\n", touched, (int)getpid());
	wl_publish(o->dir, "touched", done);
}

/* --- the operations --- */

/*
 * Read one page of region r in [first, first + n) before an operation, so
 * that the operation meets pages already in place next to outstanding ones.
 * The page is picked so that its whole fault-around window (64 KiB aligned,
 * the daemon's default) is patterned memory of the range: the daemon then
 * places it with one UFFDIO_COPY. A window of several runs (zero pages in
 * it) takes several ioctls, and the first one already wakes us: we would
 * start the operation while the daemon still places the window, and the
 * daemon would serve our fault again after the layout changed.
 */
static void touch_clean(struct verdict *v, const char *what, unsigned r, const uint8_t *base,
			uint64_t first, uint64_t n)
{
	const uint64_t wp = WINDOW / PAGE;
	uint64_t p = first;

	/* The first page of the range that starts a window... */
	while (p < first + n && ((uintptr_t)(base + p * PAGE) & (WINDOW - 1)))
		p++;
	/* ...whose window holds no zero page and stays in the range. */
	for (; p + wp <= first + n; p += wp) {
		uint64_t k = 0;

		while (k < wp && !page_zero(p + k))
			k++;
		if (k == wp) {
			check_range(v, what, r, base, p + wp / 2, 1, false);
			return;
		}
	}
	fail(v, "%s: no 64 KiB window without zero pages in pages %" PRIu64 "-%" PRIu64, what,
	     first, first + n - 1);
}

/* The child's side of the fork: every region, as set up. Never returns. */
static void fork_child(const struct ops *o, int wfd)
{
	struct verdict v = { .len = 0 };

	check_initial(o, &v, "fork child");
	if (v.fails)
		write_all(wfd, v.buf, v.len);
	_exit(v.fails ? 1 : 0);
}

static pid_t op_fork(const struct ops *o, struct verdict *v, int *rfd)
{
	int pfd[2];
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC)) {
		fail(v, "fork: pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fail(v, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		close(pfd[0]);
		fork_child(o, pfd[1]);
	}
	close(pfd[1]);
	*rfd = pfd[0];
	return pid;
}

/* Reap the child; its verdict becomes ours. */
static int fork_reap(struct verdict *v, pid_t pid, int rfd)
{
	char msg[1024];
	ssize_t n;
	int st;

	if (pid < 0)
		return -1;
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			fail(v, "fork: waitpid %d: %s", (int)pid, strerror(errno));
			close(rfd);
			return -1;
		}
	}
	do
		n = read(rfd, msg, sizeof(msg) - 1);
	while (n < 0 && errno == EINTR);
	close(rfd);
	msg[n > 0 ? n : 0] = '\0';
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	if (WIFEXITED(st))
		fail(v, "fork: child %d exited %d: %s", (int)pid, WEXITSTATUS(st), msg);
	else
		fail(v, "fork: child %d killed by signal %d", (int)pid, WTERMSIG(st));
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* B moves into E and grows to twice its size. */
static void op_remap(struct ops *o, struct verdict *v)
{
	uint64_t sb = o->pages[R_B];
	uint8_t *b = o->reg[R_B], *nb;

	/* Some pages in place before the move, most still outstanding. */
	touch_clean(v, "remap (before)", R_B, b, 0, sb / 4);
	touch_clean(v, "remap (before)", R_B, b, sb / 2, sb / 4);
	nb = mremap(b, sb * PAGE, 2 * sb * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, o->e);
	if (nb == MAP_FAILED) {
		fail(v, "remap: mremap %p -> %p: %s", (void *)b, (void *)o->e, strerror(errno));
		return;
	}
	if (nb != o->e)
		fail(v, "remap: mremap moved B to %p, asked for %p", (void *)nb, (void *)o->e);
	o->old_b = b;
	o->reg[R_B] = nb;
	check_range(v, "remap", R_B, nb, 0, sb, false);
	check_range(v, "remap (grown tail)", R_B, nb, sb, sb, true);
	check_unmapped(v, "remap (old range)", b, sb * PAGE);
}

/* The middle half of C goes. */
static void op_munmap(struct ops *o, struct verdict *v)
{
	uint64_t q = quarter(o);
	uint8_t *c = o->reg[R_C];

	touch_clean(v, "munmap (before)", R_C, c, 2 * q, q);
	if (munmap(c + q * PAGE, 2 * q * PAGE)) {
		fail(v, "munmap: %s", strerror(errno));
		return;
	}
	check_range(v, "munmap", R_C, c, 0, q, false);
	check_range(v, "munmap", R_C, c, 3 * q, o->pages[R_C] - 3 * q, false);
	check_unmapped(v, "munmap (middle)", c + q * PAGE, 2 * q * PAGE);
}

/* Part of D is dropped: it must read zeros, not what the images hold. */
static void op_dontneed(struct ops *o, struct verdict *v)
{
	uint8_t *d = o->reg[R_D];

	touch_clean(v, "dontneed (before)", R_D, d, dn0(o), (dn1(o) - dn0(o)) / 2);
	if (madvise(d + dn0(o) * PAGE, (dn1(o) - dn0(o)) * PAGE, MADV_DONTNEED)) {
		fail(v, "dontneed: madvise: %s", strerror(errno));
		return;
	}
	check_range(v, "dontneed", R_D, d, 0, dn0(o), false);
	check_range(v, "dontneed (dropped)", R_D, d, dn0(o), dn1(o) - dn0(o), true);
	check_range(v, "dontneed", R_D, d, dn1(o), o->pages[R_D] - dn1(o), false);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const uint8_t *a = w->o->reg[R_A];
	int bad = 0;

	w->tid = (pid_t)syscall(SYS_gettid);
	pthread_barrier_wait(w->go);
	for (uint64_t i = 0; i < w->n && bad < 3; i++)
		bad += check_page(&w->v, "threads", R_A, a + w->order[i] * PAGE, w->order[i],
				  false) ? 1 : 0;
	return NULL;
}

/* xorshift64*: each worker's own shuffle. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* Worker t gets the pages p % T == t of A, in a random order. */
static int workers_prepare(struct ops *o, struct worker *w, pthread_barrier_t *go)
{
	uint64_t pa = o->pages[R_A];

	for (int t = 0; t < o->nthreads; t++) {
		uint64_t seed = 0x5eed0000ULL + (uint64_t)t;

		memset(&w[t], 0, sizeof(w[t]));
		w[t].o = o;
		w[t].go = go;
		w[t].order_len = (pa / (uint64_t)o->nthreads + 1) * sizeof(uint64_t);
		w[t].order = mmap(NULL, w[t].order_len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (w[t].order == MAP_FAILED)
			return -1;
		for (uint64_t p = (uint64_t)t; p < pa; p += (uint64_t)o->nthreads)
			w[t].order[w[t].n++] = p;
		for (uint64_t i = w[t].n; i > 1; i--) {
			uint64_t j = rnd(&seed) % i, x = w[t].order[i - 1];

			w[t].order[i - 1] = w[t].order[j];
			w[t].order[j] = x;
		}
	}
	return 0;
}

static void op_threads(struct ops *o, struct verdict *v, char *tids, size_t tlen)
{
	struct worker w[MAX_THREADS];
	pthread_barrier_t go;
	pthread_t th[MAX_THREADS];
	int n = 0, err;
	size_t len = 0;

	tids[0] = '\0';
	if (pthread_barrier_init(&go, NULL, (unsigned)o->nthreads + 1)) {
		fail(v, "threads: pthread_barrier_init failed");
		return;
	}
	if (workers_prepare(o, w, &go)) {
		fail(v, "threads: out of memory");
		return;
	}
	for (; n < o->nthreads; n++) {
		err = pthread_create(&th[n], NULL, worker_main, &w[n]);
		if (err) {
			/* The barrier would never open: nothing sensible to do. */
			errno = err;
			die("pthread_create");
		}
	}
	pthread_barrier_wait(&go);
	for (int t = 0; t < n; t++) {
		pthread_join(th[t], NULL);
		merge(v, &w[t].v);
		len += (size_t)snprintf(tids + len, len < tlen ? tlen - len : 0, "%s%d", t ? "," : "",
					(int)w[t].tid);
		munmap(w[t].order, w[t].order_len);
	}
	pthread_barrier_destroy(&go);
}

/* Right after the restore: every operation, then everything once more. */
static void run_ops(struct ops *o)
{
	struct verdict v = { .len = 0 };
	int64_t m_fork, m_remap, m_munmap, m_dontneed, m_threads;
	char tids[MAX_THREADS * 12], extra[512];
	int rfd = -1, child;
	pid_t pid;

	m_fork = missing_now(o);
	pid = op_fork(o, &v, &rfd);
	m_remap = count_missing(o->reg[R_B], o->pages[R_B] * PAGE);
	op_remap(o, &v);
	m_munmap = count_missing(o->reg[R_C], o->pages[R_C] * PAGE);
	op_munmap(o, &v);
	m_dontneed = count_missing(o->reg[R_D], o->pages[R_D] * PAGE);
	op_dontneed(o, &v);
	m_threads = count_missing(o->reg[R_A], o->pages[R_A] * PAGE);
	op_threads(o, &v, tids, sizeof(tids));
	o->ops_done = true;
	check_after(o, &v, "after");
	child = fork_reap(&v, pid, rfd);

	snprintf(extra, sizeof(extra),
		 "ops=1 missing_fork=%" PRId64 " missing_remap=%" PRId64 " missing_munmap=%" PRId64
		 " missing_dontneed=%" PRId64 " missing_threads=%" PRId64 " tids=%s child=%d",
		 m_fork, m_remap, m_munmap, m_dontneed, m_threads, tids[0] ? tids : "none", child);
	report(o, &v, extra);
}

/* --- set-up --- */

static void fill_region(unsigned r, uint8_t *base, uint64_t pages)
{
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t *w = (uint64_t *)(base + p * PAGE);

		if (page_untouched(p))
			continue;
		for (uint64_t k = 0; k < WPP; k++)
			w[k] = pattern(r, p * WPP + k);
		if (page_zeroed(p))
			memset(w, 0, PAGE);
	}
}

/* span: guard A guard B guard C guard D guard [slack] E [slack] guard, all
 * PROT_NONE but the four regions; the slack places E's end. */
static void setup_memory(struct ops *o)
{
	size_t off = PAGE, e_len;
	uintptr_t e_end;

	o->pages[R_A] = o->mib * MIB / PAGE;
	for (unsigned r = R_B; r < NR_REGIONS; r++)
		o->pages[r] = o->side_mib * MIB / PAGE;
	e_len = 2 * o->pages[R_B] * PAGE;
	o->span_len = (o->pages[R_A] + 3 * o->pages[R_B] + 6 + o->tail_offset) * PAGE + e_len +
		      TAIL_ALIGN;
	o->span = mmap(NULL, o->span_len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		       -1, 0);
	if (o->span == MAP_FAILED)
		die("mmap %zu bytes", o->span_len);
	for (unsigned r = 0; r < NR_REGIONS; r++) {
		size_t len = o->pages[r] * PAGE;

		o->reg[r] = mmap(o->span + off, len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
		if (o->reg[r] == MAP_FAILED)
			die("mmap region %s", region_name[r]);
		fill_region(r, o->reg[r], o->pages[r]);
		off += len + PAGE;
	}
	e_end = ((uintptr_t)o->span + off + e_len + TAIL_ALIGN - 1) & ~(TAIL_ALIGN - 1);
	o->e = (uint8_t *)(e_end + o->tail_offset * PAGE - e_len);
}

static void on_usr1(int sig)
{
	(void)sig;
	check_requested = 1;
}

static void on_usr2(int sig)
{
	(void)sig;
	touch_requested = 1;
}

static void on_term(int sig)
{
	(void)sig;
	term_requested = 1;
}

static void setup_signals(void)
{
	struct sigaction sa = { 0 };

	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_usr1;
	if (sigaction(SIGUSR1, &sa, NULL))
		die("sigaction SIGUSR1");
	sa.sa_handler = on_usr2;
	if (sigaction(SIGUSR2, &sa, NULL))
		die("sigaction SIGUSR2");
	sa.sa_handler = on_term;
	if (sigaction(SIGTERM, &sa, NULL))
		die("sigaction SIGTERM");
}

static void parse_args(struct ops *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "mib", required_argument, NULL, 'm' },
		{ "side-mib", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "tail-offset", required_argument, NULL, 'o' },
		{ 0 },
	};
	int c;

	o->mib = 64;
	o->side_mib = 8;
	o->nthreads = 4;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'd')
			o->dir = optarg;
		else if (c == 'm')
			o->mib = strtoull(optarg, NULL, 0);
		else if (c == 's')
			o->side_mib = strtoull(optarg, NULL, 0);
		else if (c == 't')
			o->nthreads = atoi(optarg);
		else if (c == 'o')
			o->tail_offset = strtoull(optarg, NULL, 0);
		else
			exit(2);
	}
	if (!o->dir || !o->mib || !o->side_mib || o->nthreads < 1 || o->nthreads > MAX_THREADS ||
	    o->tail_offset >= TAIL_ALIGN / PAGE) {
		fprintf(stderr, "usage: lzlazyops --dir DIR [--mib N] [--side-mib M] "
				"[--threads 1-%d] [--tail-offset 0-%lu]\n", MAX_THREADS,
			TAIL_ALIGN / PAGE - 1);
		exit(2);
	}
}

static bool go_exists(const struct ops *o)
{
	char path[4200];
	struct stat st;

	snprintf(path, sizeof(path), "%s/go", o->dir);
	return stat(path, &st) == 0;
}

int main(int argc, char **argv)
{
	static struct ops o;
	char ready[512];

	parse_args(&o, argc, argv);
	setup_memory(&o);
	setup_signals();
	snprintf(ready, sizeof(ready),
		 "pid=%d a=%#lx b=%#lx c=%#lx d=%#lx e=%#lx mib=%" PRIu64 " side=%" PRIu64 "\n",
		 (int)getpid(), (unsigned long)o.reg[R_A], (unsigned long)o.reg[R_B],
		 (unsigned long)o.reg[R_C], (unsigned long)o.reg[R_D], (unsigned long)o.e, o.mib,
		 o.side_mib);
	wl_publish(o.dir, "ready", ready);

	for (;;) {
		if (term_requested)
			return 0;
		if (check_requested) {
			check_requested = 0;
			self_check(&o);
		}
		if (touch_requested) {
			touch_requested = 0;
			touch_listed(&o);
		}
		if (!o.ops_done && go_exists(&o))
			run_ops(&o);
		else
			nap();
	}
}
