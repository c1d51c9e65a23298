/*
 * lzfaults.c - fault service latency as the faulting threads see it: THREADS
 * threads each touch random pages of a large anonymous heap, timing the
 * first access of each with CLOCK_MONOTONIC, and check every page touched
 * holds what was written before (a wrong page fails the run).
 *
 *   lzfaults --dir DIR [--mib N] [--threads T] [--touches K] [--seed S]
 *            [--window-kib W]
 *	fills the heap, publishes DIR/ready, waits. On SIGUSR1 (sent right
 *	after a lazy restore, so the daemon's background fill runs meanwhile)
 *	it runs the touches once and publishes DIR/result. SIGTERM: exit 0.
 *   lzfaults --bare [--bare-fill] [--serve-kib S] --dir DIR ...
 *	the yardstick, no Lazarus: the heap is registered with a userfaultfd
 *	whose server (a forked process, like the daemon) answers each fault
 *	with one UFFDIO_COPY of its aligned S KiB (default 4) from a buffer; with
 *	--bare-fill a second server thread also copies the heap in 2 MiB
 *	chunks in address order, as a background fill would. Runs the same
 *	touches at once, publishes DIR/result, exits.
 *
 * Touches: every thread gets K distinct W KiB windows (all threads' windows
 * distinct, chosen at random from the seed) and touches one random page in
 * each, so that no touch lands in memory another touch's fault-around
 * brought in. Whether the page was resident just before the touch
 * (mincore, outside the timed part) is recorded too: a page the fill got to
 * first is no fault. DIR/result: "PASS pid=P touches=N" then one line per
 * touch, "thread latency_ns resident".
 */
#define WL_NAME "lzfaults"
#include "wl.h"

#include <getopt.h>
#include <inttypes.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define PG 4096UL
#define WORDS (PG / 8)
#define FILL_CHUNK (2UL << 20)
#define MIN(a, b) ((a) < (b) ? (a) : (b))

struct opts {
	const char *dir;
	uint64_t mib, seed;
	unsigned threads, touches, window_kib, serve_kib;
	bool bare, bare_fill;
};

struct touch {
	uint64_t page;
	uint64_t lat_ns;
	bool resident;
};

struct thr {
	pthread_t t;
	unsigned id;
	struct touch *v;
	unsigned n;
	uint64_t bad_page; /* first page with wrong content + 1, or 0 */
	pthread_barrier_t *start;
	uint8_t *heap;
	uint64_t seed;
};

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/* The content of word w of page p: what the heap holds before the dump. */
static uint64_t word(uint64_t seed, uint64_t p, uint64_t w)
{
	return mix(seed ^ (p * WORDS + w));
}

static void fill_content(uint8_t *buf, uint64_t pages, uint64_t seed)
{
	for (uint64_t p = 0; p < pages; p++) {
		uint64_t *q = (uint64_t *)(buf + p * PG);

		for (uint64_t w = 0; w < WORDS; w++)
			q[w] = word(seed, p, w);
	}
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *toucher(void *arg)
{
	struct thr *t = arg;

	pthread_barrier_wait(t->start);
	for (unsigned i = 0; i < t->n && !t->bad_page; i++) {
		struct touch *c = &t->v[i];
		uint8_t *pg = t->heap + c->page * PG;
		const uint64_t *q = (const uint64_t *)pg;
		unsigned char inc = 0;
		uint64_t t0, t1, v;

		if (mincore(pg, PG, &inc))
			die("mincore");
		c->resident = inc & 1;
		t0 = now_ns();
		v = *(volatile const uint64_t *)pg;
		t1 = now_ns();
		c->lat_ns = t1 - t0;
		if (v != word(t->seed, c->page, 0))
			t->bad_page = c->page + 1;
		for (uint64_t w = 1; w < WORDS && !t->bad_page; w++)
			if (q[w] != word(t->seed, c->page, w))
				t->bad_page = c->page + 1;
	}
	return NULL;
}

/* Pick the touches: distinct windows at random, one random page in each. */
static struct thr *plan(const struct opts *o, uint8_t *heap)
{
	uint64_t wpages = o->window_kib * 1024 / PG, nwin = o->mib * (1 << 20) / PG / wpages;
	uint64_t need = (uint64_t)o->threads * o->touches, r = o->seed ^ 0x5eed;
	uint64_t *win = malloc(nwin * sizeof(*win));
	struct thr *t = calloc(o->threads, sizeof(*t));

	if (!win || !t)
		die("malloc");
	if (need > nwin) {
		errno = EINVAL;
		die("%" PRIu64 " touches need %" PRIu64 " windows, the heap has %" PRIu64, need,
		    need, nwin);
	}
	for (uint64_t i = 0; i < nwin; i++)
		win[i] = i;
	for (uint64_t i = 0; i < need; i++) { /* partial Fisher-Yates */
		uint64_t j = i + (r = mix(r)) % (nwin - i), x = win[i];

		win[i] = win[j];
		win[j] = x;
	}
	for (unsigned k = 0; k < o->threads; k++) {
		t[k].id = k;
		t[k].n = o->touches;
		t[k].heap = heap;
		t[k].seed = o->seed;
		t[k].v = calloc(o->touches, sizeof(*t[k].v));
		if (!t[k].v)
			die("malloc");
		for (unsigned i = 0; i < o->touches; i++)
			t[k].v[i].page = win[k * o->touches + i] * wpages + (r = mix(r)) % wpages;
	}
	free(win);
	return t;
}

static void run_touches(const struct opts *o, struct thr *t)
{
	pthread_barrier_t start;
	size_t cap = 64 + (size_t)o->threads * o->touches * 40, len = 0;
	char *out = malloc(cap);
	uint64_t bad = 0;

	if (!out || pthread_barrier_init(&start, NULL, o->threads))
		die("setup");
	for (unsigned k = 0; k < o->threads; k++) {
		t[k].start = &start;
		if (pthread_create(&t[k].t, NULL, toucher, &t[k]))
			die("pthread_create");
	}
	for (unsigned k = 0; k < o->threads; k++) {
		pthread_join(t[k].t, NULL);
		if (t[k].bad_page && !bad)
			bad = t[k].bad_page;
	}
	if (bad) {
		len = (size_t)snprintf(out, cap, "FAIL pid=%d page %" PRIu64 " does not hold what "
				       "was written before\n", (int)getpid(), bad - 1);
	} else {
		len = (size_t)snprintf(out, cap, "PASS pid=%d touches=%u\n", (int)getpid(),
				       o->threads * o->touches);
		for (unsigned k = 0; k < o->threads; k++)
			for (unsigned i = 0; i < t[k].n; i++)
				len += (size_t)snprintf(out + len, cap - len, "%u %" PRIu64 " %d\n", k,
							t[k].v[i].lat_ns, t[k].v[i].resident);
	}
	(void)len;
	wl_publish(o->dir, "result", out);
	free(out);
}

/* ------------------------------------------------------------ yardstick */

struct server {
	int uffd;
	uint8_t *heap;
	const uint8_t *src;
	uint64_t len, window;
};

/* UFFDIO_COPY [off, off+len) from the buffer; -errno, *done bytes copied. */
static int copy(const struct server *s, uint64_t off, uint64_t len, uint64_t *done)
{
	struct uffdio_copy c = { .dst = (uintptr_t)s->heap + off, .src = (uintptr_t)s->src + off,
				 .len = len };
	int ret = ioctl(s->uffd, UFFDIO_COPY, &c) ? -errno : 0;

	*done = c.copy > 0 ? (uint64_t)c.copy : 0;
	return ret;
}

/* Copy what is not there yet of [off, off+len), a page at a time after an
 * EEXIST. */
static void copy_missing(const struct server *s, uint64_t off, uint64_t len)
{
	while (len) {
		uint64_t done = 0;
		int ret = copy(s, off, len, &done);

		if (!ret)
			return;
		off += done, len -= done;
		if (ret == -EEXIST && len)
			off += PG, len -= PG;
		else if (ret != -EAGAIN && ret != -EEXIST)
			die("UFFDIO_COPY at +%#" PRIx64 " (%d)", off, ret);
	}
}

static void *bare_fill(void *arg)
{
	const struct server *s = arg;

	for (uint64_t off = 0; off < s->len; off += FILL_CHUNK)
		copy_missing(s, off, MIN(FILL_CHUNK, s->len - off));
	return NULL;
}

static void bare_serve(const struct server *s, int stopfd, bool fill)
{
	struct pollfd pf[2] = { { s->uffd, POLLIN, 0 }, { stopfd, POLLIN, 0 } };
	struct uffd_msg m[16];
	pthread_t ft;

	if (fill && pthread_create(&ft, NULL, bare_fill, (void *)s))
		die("pthread_create");
	for (;;) {
		ssize_t n;

		if (poll(pf, 2, -1) < 0 && errno != EINTR)
			die("poll");
		if (pf[1].revents)
			_exit(0);
		n = read(s->uffd, m, sizeof(m));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			die("read uffd");
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(m[0]); i++) {
			uint64_t off, len;

			if (m[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			off = m[i].arg.pagefault.address - (uintptr_t)s->heap;
			off -= off % s->window;
			len = MIN(s->window, s->len - off);
			copy_missing(s, off, len);
			/* Its own page may have been placed by the fill. */
			struct uffdio_range r = { (uintptr_t)s->heap + off, len };
			(void)ioctl(s->uffd, UFFDIO_WAKE, &r);
		}
	}
}

static void run_bare(const struct opts *o)
{
	uint64_t len = o->mib << 20;
	struct uffdio_api api = { .api = UFFD_API };
	struct server s = { .len = len, .window = o->serve_kib * 1024UL };
	uint8_t *src;
	int stop[2], st;
	pid_t pid;

	src = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	s.heap = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED || s.heap == MAP_FAILED)
		die("mmap");
	s.src = src;
	fill_content(src, len / PG, o->seed);
	s.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (s.uffd < 0 || ioctl(s.uffd, UFFDIO_API, &api))
		die("userfaultfd");
	struct uffdio_register reg = { .range = { (uintptr_t)s.heap, len },
				       .mode = UFFDIO_REGISTER_MODE_MISSING };
	if (ioctl(s.uffd, UFFDIO_REGISTER, &reg) || pipe(stop))
		die("UFFDIO_REGISTER");
	struct thr *t = plan(o, s.heap);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(stop[1]);
		bare_serve(&s, stop[0], o->bare_fill);
	}
	close(stop[0]);
	run_touches(o, t);
	close(stop[1]);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
		die("the yardstick's server failed (status %#x)", st);
}

/* ------------------------------------------------------------ main */

static void parse(struct opts *o, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "dir", required_argument, 0, 'd' },	  { "mib", required_argument, 0, 'm' },
		{ "threads", required_argument, 0, 't' }, { "touches", required_argument, 0, 'k' },
		{ "seed", required_argument, 0, 's' },	  { "window-kib", required_argument, 0, 'w' },
		{ "bare", no_argument, 0, 'b' },	  { "bare-fill", no_argument, 0, 'f' },
		{ "serve-kib", required_argument, 0, 'S' },
		{ 0, 0, 0, 0 }
	};
	int c;

	*o = (struct opts){ .mib = 512, .threads = 4, .touches = 400, .seed = 1, .window_kib = 64,
			    .serve_kib = 4 };
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (c == 'd')
			o->dir = optarg;
		else if (c == 'm')
			o->mib = strtoull(optarg, NULL, 0);
		else if (c == 't')
			o->threads = (unsigned)strtoul(optarg, NULL, 0);
		else if (c == 'k')
			o->touches = (unsigned)strtoul(optarg, NULL, 0);
		else if (c == 's')
			o->seed = strtoull(optarg, NULL, 0);
		else if (c == 'w')
			o->window_kib = (unsigned)strtoul(optarg, NULL, 0);
		else if (c == 'S')
			o->serve_kib = (unsigned)strtoul(optarg, NULL, 0);
		else if (c == 'b')
			o->bare = true;
		else if (c == 'f')
			o->bare = o->bare_fill = true;
		else
			exit(2);
	}
	if (!o->dir || !o->mib || !o->threads || !o->touches || !o->window_kib ||
	    o->window_kib % 4 || (o->mib << 20) % (o->window_kib * 1024UL) || !o->serve_kib ||
	    o->serve_kib % 4 || (o->mib << 20) % (o->serve_kib * 1024UL)) {
		fprintf(stderr, "usage: lzfaults --dir DIR [--mib N] [--threads T] [--touches K] "
				"[--seed S] [--window-kib W] [--bare [--bare-fill]] [--serve-kib S]\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	struct opts o;
	struct sigaction sa = { 0 };
	struct timespec nap = { 0, 1000000 };
	char ready[256];
	uint8_t *heap;
	struct thr *t;

	parse(&o, argc, argv);
	if (o.bare) {
		run_bare(&o);
		return 0;
	}
	heap = mmap(NULL, o.mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (heap == MAP_FAILED)
		die("mmap");
	fill_content(heap, (o.mib << 20) / PG, o.seed);
	t = plan(&o, heap);
	sa.sa_handler = wl_on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = wl_on_term;
	sigaction(SIGTERM, &sa, NULL);
	snprintf(ready, sizeof(ready), "pid=%d heap=%p mib=%" PRIu64 "\n", (int)getpid(),
		 (void *)heap, o.mib);
	wl_publish(o.dir, "ready", ready);
	for (;;) {
		if (term_requested)
			return 0;
		if (check_requested) {
			check_requested = 0;
			run_touches(&o, t);
		}
		/* EINTR (a signal, a dump) just ends the nap early. */
		nanosleep(&nap, NULL);
	}
}
