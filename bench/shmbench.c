/*
 * shmbench.c - lazy shared memory served two ways, measured bare (no
 * Lazarus code), same process, the modes alternated in every repetition:
 *
 *   missing   the mapping of an empty memfd registered MISSING; a fault is
 *             answered with UFFDIO_COPY from a buffer (the pages image):
 *             src/lazy-shmem.c today.
 *   minor     the mapping registered MISSING|MINOR; a fault is answered by
 *             pwrite(2) of the data into the memfd (the page cache) and
 *             UFFDIO_CONTINUE, which maps the page-cache page. MINOR alone
 *             cannot serve a lazy object: a page absent from the page cache
 *             takes no MINOR fault, the kernel hands the process a fresh
 *             zero page (checked below: minor_only_hole_*).
 *
 *   <mode>_fault_<4k|64k>_<seq|rand>[_p99|_per_page]
 *             one thread reads one byte of every page, in address order or
 *             in a random permutation; a handler thread answers each fault
 *             with the 4 KiB page or the aligned 64 KiB around it. Median
 *             (and 99th percentile) latency of the reads that faulted, ns;
 *             _per_page: the whole pass over the object / its pages.
 *   <mode>_fill_2m     the whole object placed in 2 MiB pieces, nothing
 *             faulting (GB/s): UFFDIO_COPY (missing), pwrite + UFFDIO_CONTINUE
 *             (minor); pwrite_fill_2m: pwrite alone on a MISSING-registered
 *             mapping (how src/lazy-shmem.c's background fill writes).
 *   <fill>_read        the first read of every page afterwards (ns/page);
 *             _read_kfaults: the page faults the kernel took during it.
 *   <fill>_second_read, _second_faults    a second mapping of the same
 *             object with its own uffd, registered in the same mode (what a
 *             second process mapping the object sees; PTEs are per mapping,
 *             the page cache is per object): ns per page of the first read
 *             of every page, and how many of those reads trapped to the
 *             handler (answered UFFDIO_CONTINUE of 4 KiB in minor mode);
 *             _second_kfaults: all page faults taken (traps included).
 *   minor_continue_2m  UFFDIO_CONTINUE alone over that second mapping in
 *             2 MiB pieces, the page cache already full (GB/s): what mapping
 *             a filled object into one more process costs in MINOR mode;
 *             minor_continue_2m_read: the first read of every page after it.
 *
 *   shmbench [--mib N] [--reps R]   (defaults: 128 MiB, 5 repetitions)
 *
 * Every pass checks every page of the object against the source with
 * memcmp. One unreported warm-up repetition first. Output: one JSON object
 * (bench.h).
 */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uapi/linux/userfaultfd.h"

#include "bench.h"
#include "bench_uffd.h"

#define PROG "shmbench"
#define PG PAGE_SIZE_4K
#define CHUNK (2UL << 20)

enum mode { M_MISSING, M_MINOR, M_PWRITE };

static const char *const mode_name[] = { "missing", "minor", "pwrite" };

/* ------------------------------------------------------------ set-up */

/* Features 0 for MISSING: the copies measured do not depend on any. */
static int uffd_create(enum mode m)
{
	return bench_uffd_open(PROG, m == M_MINOR ? UFFD_FEATURE_MINOR_SHMEM : 0);
}

static int make_object(size_t len)
{
	int fd = memfd_create("shmbench", MFD_CLOEXEC);

	if (fd < 0)
		bench_die(PROG, "memfd_create");
	if (ftruncate(fd, (off_t)len))
		bench_die(PROG, "ftruncate memfd %zu KiB", len >> 10);
	return fd;
}

/* A MAP_SHARED mapping of the object registered with uffd: MISSING, or
 * MISSING|MINOR (M_MINOR), or MINOR alone (minor_only). */
static char *map_registered(int uffd, int fd, size_t len, enum mode m, bool minor_only)
{
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	uint64_t want = 1ULL << _UFFDIO_COPY;

	if (p == MAP_FAILED)
		bench_die(PROG, "mmap memfd %zu KiB", len >> 10);
	if (m == M_MINOR) {
		reg.mode = minor_only ? UFFDIO_REGISTER_MODE_MINOR :
			   UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR;
		want = 1ULL << _UFFDIO_CONTINUE;
	}
	reg.range.start = (uintptr_t)p;
	reg.range.len = len;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		bench_die(PROG, "UFFDIO_REGISTER mode %#llx, %zu KiB of shmem",
			  (unsigned long long)reg.mode, len >> 10);
	if (!(reg.ioctls & want)) {
		errno = 0;
		bench_die(PROG, "UFFDIO_REGISTER: no %s on shmem",
			  m == M_MINOR ? "UFFDIO_CONTINUE" : "UFFDIO_COPY");
	}
	return p;
}

/* The pages image: every byte depends on its page, so a misplaced page shows. */
static char *make_source(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die(PROG, "mmap source %zu KiB", len >> 10);
	for (size_t i = 0; i < len / PG; i++) {
		uint64_t *w = (uint64_t *)(p + i * PG), s = (i + 1) * 0x9e3779b97f4a7c15ULL | 1;

		for (size_t k = 0; k < PG / sizeof(*w); k++)
			w[k] = s ^ k;
	}
	return p;
}

static void check_object(const char *dst, const char *src, size_t len, const char *what)
{
	if (!memcmp(dst, src, len))
		return;
	for (size_t i = 0; i < len / PG; i++)
		if (memcmp(dst + i * PG, src + i * PG, PG)) {
			errno = 0;
			bench_die(PROG, "%s: page %zu has the wrong contents", what, i);
		}
}

/* ------------------------------------------------------------ placing pages */

static void copy_range(int uffd, char *dst, const char *src, size_t len, const char *what)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_copy c = {
			.dst = (uintptr_t)dst + done, .src = (uintptr_t)src + done, .len = len - done,
		};

		if (ioctl(uffd, UFFDIO_COPY, &c) == 0)
			done += c.len;
		else if (errno == EAGAIN && c.copy > 0)
			done += (size_t)c.copy;
		else
			bench_die(PROG, "%s: UFFDIO_COPY %zu KiB", what, (len - done) >> 10);
	}
}

static void continue_range(int uffd, char *dst, size_t len, const char *what)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_continue c = {
			.range = { .start = (uintptr_t)dst + done, .len = len - done },
		};

		if (ioctl(uffd, UFFDIO_CONTINUE, &c) == 0)
			done += c.range.len;
		else if (errno == EAGAIN && c.mapped > 0)
			done += (size_t)c.mapped;
		else
			bench_die(PROG, "%s: UFFDIO_CONTINUE %zu KiB", what, (len - done) >> 10);
	}
}

static void pwrite_all(int fd, const char *src, size_t len, size_t off, const char *what)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(fd, src + done, len - done, (off_t)(off + done));

		if (n <= 0)
			bench_die(PROG, "%s: pwrite %zu KiB at %zu", what, (len - done) >> 10,
				  off + done);
		done += (size_t)n;
	}
}

/* ------------------------------------------------------------ fault handler */

struct handler {
	int uffd, stopfd, fd;	/* fd: the object (minor: pwrite) */
	enum mode mode;
	char *base;
	const char *src;	/* NULL: minor faults only, page cache full */
	size_t len, batch;
	uint8_t *faulted;	/* per page: a fault arrived for it */
	size_t faults, minor;
};

static void serve_one(struct handler *h)
{
	struct uffd_msg msg;
	ssize_t n = read(h->uffd, &msg, sizeof(msg));
	size_t off, boff, blen;

	if (n < 0 && errno == EAGAIN)
		return;
	if (n != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
		bench_die(PROG, "fault handler: read uffd (%zd bytes, event %u)", n, msg.event);
	off = (msg.arg.pagefault.address & ~(PG - 1)) - (uintptr_t)h->base;
	boff = off & ~(h->batch - 1);
	blen = h->len - boff < h->batch ? h->len - boff : h->batch;
	h->faulted[off / PG] = 1;
	h->faults++;
	if (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_MINOR) {
		h->minor++;
		continue_range(h->uffd, h->base + off, PG, "minor fault");
	} else if (h->mode == M_MINOR) {
		pwrite_all(h->fd, h->src + boff, blen, boff, "missing fault");
		continue_range(h->uffd, h->base + boff, blen, "missing fault");
	} else {
		copy_range(h->uffd, h->base + boff, h->src + boff, blen, "missing fault");
	}
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct pollfd pfd[2] = { { h->uffd, POLLIN, 0 }, { h->stopfd, POLLIN, 0 } };

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			bench_die(PROG, "poll");
		}
		if (pfd[0].revents & POLLIN)
			serve_one(h);
		else if (pfd[1].revents & POLLIN)
			break;
	}
	return NULL;
}

static void handler_start(struct handler *h, pthread_t *th)
{
	h->stopfd = eventfd(0, EFD_CLOEXEC);
	if (h->stopfd < 0)
		bench_die(PROG, "eventfd");
	h->faulted = calloc(h->len / PG, 1);
	if (!h->faulted)
		bench_die(PROG, "calloc");
	errno = pthread_create(th, NULL, handler_main, h);
	if (errno)
		bench_die(PROG, "pthread_create");
}

static void handler_stop(struct handler *h, pthread_t th)
{
	uint64_t one = 1;

	if (write(h->stopfd, &one, sizeof(one)) != sizeof(one))
		bench_die(PROG, "eventfd write");
	pthread_join(th, NULL);
	close(h->stopfd);
}

/* ------------------------------------------------------------ fault round trip */

struct rtt {
	double med, p99, per_page;
};

/* One pass of reads over a fresh object in `order`; every page checked. */
static struct rtt fault_once(enum mode m, const char *src, size_t len, size_t batch,
			     const uint32_t *order, uint64_t *lat)
{
	struct handler h = { .mode = m, .src = src, .len = len, .batch = batch };
	size_t pages = len / PG, nf = 0;
	struct rtt r;
	uint64_t t0;
	pthread_t th;

	h.uffd = uffd_create(m);
	h.fd = make_object(len);
	h.base = map_registered(h.uffd, h.fd, len, m, false);
	handler_start(&h, &th);
	t0 = now_ns();
	for (size_t i = 0; i < pages; i++) {
		uint64_t t = now_ns();

		(void)*(volatile char *)(h.base + (size_t)order[i] * PG);
		lat[i] = now_ns() - t;
	}
	r.per_page = (double)(now_ns() - t0) / (double)pages;
	handler_stop(&h, th);
	if (h.faults != (pages * PG + batch - 1) / batch || h.minor) {
		errno = 0;
		bench_die(PROG, "%s fault: %zu faults (%zu minor) for %zu pages in %zu KiB batches",
			  mode_name[m], h.faults, h.minor, pages, batch >> 10);
	}
	for (size_t i = 0; i < pages; i++)
		if (h.faulted[order[i]])
			lat[nf++] = lat[i];
	check_object(h.base, src, len, "fault pass");
	r.p99 = (double)quantile_u64(lat, nf, 0.99);
	r.med = (double)quantile_u64(lat, nf, 0.5);
	free(h.faulted);
	munmap(h.base, len);
	close(h.fd);
	close(h.uffd);
	return r;
}

/* ------------------------------------------------------------ fill */

struct fill {
	double gbps, read, read_kfaults, second_read, second_faults, second_kfaults;
	double cont_gbps, cont_read;
};

static long minflt(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_THREAD, &ru))
		bench_die(PROG, "getrusage");
	return ru.ru_minflt;
}

/* Reads one byte of every page; ns per page. *kfaults: the page faults the
 * kernel took for it (this thread's minor faults; a trap to the uffd
 * handler counts as one too). */
static double read_pass(const char *p, size_t len, double *kfaults)
{
	long f0 = minflt();
	uint64_t t0 = now_ns(), t1;

	for (size_t off = 0; off < len; off += PG)
		(void)*(const volatile char *)(p + off);
	t1 = now_ns();
	*kfaults = (double)(minflt() - f0);
	return (double)(t1 - t0) / (double)(len / PG);
}

/*
 * One more registered mapping of the filled object (own uffd, same mode),
 * every page read once: ns per page into *read, trapped reads into *faults.
 * cont: UFFDIO_CONTINUE the whole mapping first, GB/s into *cont_gbps.
 */
static void second_mapping(enum mode reg, int fd, const char *src, size_t len, bool cont,
			   double *read, double *faults, double *kfaults, double *cont_gbps)
{
	struct handler h = { .mode = reg, .fd = fd, .src = src, .len = len, .batch = PG };
	pthread_t th;
	uint64_t t0;

	h.uffd = uffd_create(reg);
	h.base = map_registered(h.uffd, fd, len, reg, false);
	handler_start(&h, &th);
	if (cont) {
		t0 = now_ns();
		for (size_t off = 0; off < len; off += CHUNK)
			continue_range(h.uffd, h.base + off, len - off < CHUNK ? len - off : CHUNK,
				       "second mapping");
		*cont_gbps = (double)len / (double)(now_ns() - t0);
	}
	*read = read_pass(h.base, len, kfaults);
	handler_stop(&h, th);
	*faults = (double)h.faults;
	if (h.faults != h.minor || (cont && h.faults)) {
		errno = 0;
		bench_die(PROG, "%s: a second mapping took %zu faults (%zu minor)%s",
			  mode_name[reg], h.faults, h.minor, cont ? " after CONTINUE" : "");
	}
	check_object(h.base, src, len, "second mapping");
	free(h.faulted);
	munmap(h.base, len);
	close(h.uffd);
}

/*
 * Fill a fresh object in 2 MiB pieces, read it, then map it a second time
 * and read that; minor: a third time, CONTINUEd whole before the read.
 */
static struct fill fill_once(enum mode m, const char *src, size_t len)
{
	enum mode reg = m == M_PWRITE ? M_MISSING : m;
	int uffd = uffd_create(reg), fd = make_object(len);
	char *p = map_registered(uffd, fd, len, reg, false);
	struct fill f = { 0 };
	double faults, kfaults;
	uint64_t t0, t1;

	t0 = now_ns();
	for (size_t off = 0; off < len; off += CHUNK) {
		size_t n = len - off < CHUNK ? len - off : CHUNK;

		if (m == M_MISSING) {
			copy_range(uffd, p + off, src + off, n, "fill");
		} else {
			pwrite_all(fd, src + off, n, off, "fill");
			if (m == M_MINOR)
				continue_range(uffd, p + off, n, "fill");
		}
	}
	t1 = now_ns();
	f.gbps = (double)len / (double)(t1 - t0);
	/* No handler on this uffd: a fault would hang; none comes (pwrite
	 * alone: the page cache has every page, and MISSING is all we ask). */
	f.read = read_pass(p, len, &f.read_kfaults);
	check_object(p, src, len, "fill");
	second_mapping(reg, fd, src, len, false, &f.second_read, &f.second_faults,
		       &f.second_kfaults, &f.cont_gbps);
	if (m == M_MINOR)
		second_mapping(reg, fd, src, len, true, &f.cont_read, &faults, &kfaults, &f.cont_gbps);
	munmap(p, len);
	close(fd);
	close(uffd);
	return f;
}

/*
 * MINOR alone on an empty object: does a read of a hole fault? The kernel
 * (shmem_get_folio_gfp) only raises MINOR for a page in the page cache, so
 * the read gets a fresh zero page and no fault. Handler mode minor: would
 * answer a fault, were there one, so this cannot hang.
 */
static void minor_only_hole(const char *src, size_t *faults, bool *zero)
{
	struct handler h = { .mode = M_MINOR, .src = src, .len = 16 * PG, .batch = PG };
	pthread_t th;

	h.uffd = uffd_create(M_MINOR);
	h.fd = make_object(h.len);
	h.base = map_registered(h.uffd, h.fd, h.len, M_MINOR, true);
	handler_start(&h, &th);
	*zero = *(volatile uint64_t *)(h.base + 3 * PG) == 0;
	handler_stop(&h, th);
	*faults = h.faults;
	free(h.faulted);
	munmap(h.base, h.len);
	close(h.fd);
	close(h.uffd);
}

/* ------------------------------------------------------------ main */

#define NFAULT 8	/* mode x batch x order */
#define NFILL 3		/* missing, minor, pwrite */

struct results {
	double *f_med[NFAULT], *f_p99[NFAULT], *f_pp[NFAULT];
	struct fill *fill[NFILL];
};

static void print_series(int *first, const char *name, const char *unit, const double *v,
			 int n, const char *params)
{
	json_test_begin(first, name, unit, v, n);
	printf("%s", params);
	json_test_end();
}

static double *col(const struct fill *f, int reps, size_t field_off)
{
	double *v = calloc((size_t)reps, sizeof(*v));

	if (!v)
		bench_die(PROG, "calloc");
	for (int r = 0; r < reps; r++)
		v[r] = *(const double *)((const char *)&f[r] + field_off);
	return v;
}

int main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "mib", required_argument, NULL, 'm' },
		{ "reps", required_argument, NULL, 'r' },
		{ 0 },
	};
	size_t len = 128UL << 20, pages;
	int reps = 5, c, first = 1;
	struct results res;
	uint32_t *seq, *rnd;
	uint64_t *lat, x = 0x2545f4914f6cdd1dULL;
	char *src, params[256];
	size_t hole_faults;
	bool hole_zero;

	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		if (c == 'm')
			len = (size_t)parse_long(PROG, "--mib", optarg, 2, 65536) << 20;
		else if (c == 'r')
			reps = (int)parse_long(PROG, "--reps", optarg, 1, 1000);
		else
			exit(2);
	}
	pages = len / PG;
	src = make_source(len);
	seq = calloc(pages, sizeof(*seq));
	rnd = calloc(pages, sizeof(*rnd));
	lat = calloc(pages, sizeof(*lat));
	if (!seq || !rnd || !lat)
		bench_die(PROG, "calloc");
	for (size_t i = 0; i < pages; i++)
		seq[i] = rnd[i] = (uint32_t)i;
	for (size_t i = pages - 1; i > 0; i--) {	/* Fisher-Yates, xorshift64 */
		size_t j;
		uint32_t t;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = (size_t)(x % (i + 1));
		t = rnd[i];
		rnd[i] = rnd[j];
		rnd[j] = t;
	}
	for (int t = 0; t < NFAULT; t++) {
		res.f_med[t] = calloc((size_t)reps, sizeof(double));
		res.f_p99[t] = calloc((size_t)reps, sizeof(double));
		res.f_pp[t] = calloc((size_t)reps, sizeof(double));
		if (!res.f_med[t] || !res.f_p99[t] || !res.f_pp[t])
			bench_die(PROG, "calloc");
	}
	for (int m = 0; m < NFILL; m++) {
		res.fill[m] = calloc((size_t)reps, sizeof(struct fill));
		if (!res.fill[m])
			bench_die(PROG, "calloc");
	}

	/* Repetition -1 is the warm-up. Modes alternate: missing first on even
	 * repetitions, minor first on odd ones (fill: rotated over three). */
	for (int r = -1; r < reps; r++) {
		for (int t = 0; t < NFAULT / 2; t++) {
			size_t batch = t & 1 ? 64UL << 10 : PG;
			const uint32_t *order = t & 2 ? rnd : seq;

			for (int k = 0; k < 2; k++) {
				enum mode m = (enum mode)((k + (r < 0 ? 0 : r)) & 1);
				struct rtt v = fault_once(m, src, len, batch, order, lat);
				int i = (int)m * NFAULT / 2 + t;

				if (r >= 0) {
					res.f_med[i][r] = v.med;
					res.f_p99[i][r] = v.p99;
					res.f_pp[i][r] = v.per_page;
				}
			}
		}
		for (int k = 0; k < NFILL; k++) {
			enum mode m = (enum mode)((k + (r < 0 ? 0 : r)) % NFILL);
			struct fill f = fill_once(m, src, len);

			if (r >= 0)
				res.fill[m][r] = f;
		}
	}
	minor_only_hole(src, &hole_faults, &hole_zero);

	for (int i = 0; i < NFAULT; i++) {
		int t = i % (NFAULT / 2);
		char name[64];

		snprintf(params, sizeof(params),
			 ", \"mode\": \"%s\", \"batch\": %lu, \"order\": \"%s\", \"bytes\": %zu",
			 mode_name[i / (NFAULT / 2)], t & 1 ? 64UL << 10 : PG,
			 t & 2 ? "random" : "address", len);
		snprintf(name, sizeof(name), "%s_fault_%s_%s", mode_name[i / (NFAULT / 2)],
			 t & 1 ? "64k" : "4k", t & 2 ? "rand" : "seq");
		print_series(&first, name, "ns", res.f_med[i], reps, params);
		strcat(name, "_p99");
		print_series(&first, name, "ns", res.f_p99[i], reps, params);
		name[strlen(name) - 4] = 0;
		strcat(name, "_per_page");
		print_series(&first, name, "ns/page", res.f_pp[i], reps, params);
	}
	for (int m = 0; m < NFILL; m++) {
		static const struct {
			const char *suffix, *unit;
			size_t off;
		} fig[] = {
			{ "", "GB/s", offsetof(struct fill, gbps) },
			{ "_read", "ns/page", offsetof(struct fill, read) },
			{ "_read_kfaults", "faults", offsetof(struct fill, read_kfaults) },
			{ "_second_read", "ns/page", offsetof(struct fill, second_read) },
			{ "_second_kfaults", "faults", offsetof(struct fill, second_kfaults) },
			{ "_second_faults", "faults", offsetof(struct fill, second_faults) },
		};

		snprintf(params, sizeof(params), ", \"mode\": \"%s\", \"chunk\": %lu, \"bytes\": %zu",
			 mode_name[m], CHUNK, len);
		for (size_t k = 0; k < sizeof(fig) / sizeof(fig[0]); k++) {
			char name[64];
			double *v = col(res.fill[m], reps, fig[k].off);

			snprintf(name, sizeof(name), "%s_fill_2m%s", mode_name[m], fig[k].suffix);
			print_series(&first, name, fig[k].unit, v, reps, params);
			free(v);
		}
	}
	{
		double *v = col(res.fill[M_MINOR], reps, offsetof(struct fill, cont_gbps));

		snprintf(params, sizeof(params), ", \"chunk\": %lu, \"bytes\": %zu", CHUNK, len);
		print_series(&first, "minor_continue_2m", "GB/s", v, reps, params);
		free(v);
		v = col(res.fill[M_MINOR], reps, offsetof(struct fill, cont_read));
		print_series(&first, "minor_continue_2m_read", "ns/page", v, reps, params);
		free(v);
	}
	{
		double v = (double)hole_faults;

		print_series(&first, "minor_only_hole_faults", "faults", &v, 1, "");
		v = hole_zero;
		print_series(&first, "minor_only_hole_zero", "bool", &v, 1, "");
	}
	json_end(first);
	for (int t = 0; t < NFAULT; t++) {
		free(res.f_med[t]);
		free(res.f_p99[t]);
		free(res.f_pp[t]);
	}
	for (int m = 0; m < NFILL; m++)
		free(res.fill[m]);
	free(seq);
	free(rnd);
	free(lat);
	munmap(src, len);
	return 0;
}
