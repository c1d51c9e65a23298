/*
 * uffdbench.c - the userfaultfd limits `make bench` compares the lazy-pages
 * daemon with, measured bare (no Lazarus code):
 *
 *   fault_rtt_*   one thread writes one byte into each page of a registered
 *                 region in address order; a handler thread answers each
 *                 fault with a 4 KiB UFFDIO_COPY. Latency of the faulting
 *                 store (ns), median per repetition. Three placements:
 *                 unpinned (the scheduler decides, as for the daemon),
 *                 both threads on one CPU, and on two different CPUs.
 *   fill_64k,     UFFDIO_COPY of a whole registered region in 64 KiB or
 *   fill_2m       2 MiB chunks, nothing faulting (GB/s): what a background
 *                 fill can reach. The daemon fills in 2 MiB chunks by default
 *                 and places 64 KiB around each fault.
 *   fill_2m_file  the same in 2 MiB chunks, but the source is a fresh
 *                 read-only MAP_SHARED mapping of a memfd (tmpfs) whose pages
 *                 are all in the page cache: how the daemon reads a pages
 *                 image that sits in a tmpfs, so the source side's page
 *                 faults are paid as they are by the daemon.
 *   fill_2m_file_populate   the same, each source chunk first mapped with
 *                 MADV_POPULATE_READ (no page fault per source page);
 *   fill_2m_pread the same memfd read with pread(2) into a 2 MiB buffer,
 *                 then copied from there (no source mapping at all).
 *   read_after_copy   one read of each page fill_2m placed (ns per page):
 *                 the first user access to a PTE UFFDIO_COPY installed.
 *
 *   uffdbench [--fault-pages N] [--fill-mib M] [--reps R] [--pread-only]
 *             (defaults: 4096 pages, 256 MiB, 7 repetitions)
 *
 * --pread-only: fill_2m_pread alone, the yardstick bench.py measures right
 * before and right after each lazy restore whose fill it judges.
 *
 * Every run checks the contents of every page it placed. Output: one JSON
 * object (bench.h).
 */
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "uapi/linux/userfaultfd.h"

#include "bench.h"
#include "bench_uffd.h"

#define PROG "uffdbench"
#define STAMP_OFF 8	/* the word each check compares; the toucher writes byte 0 */

struct opts {
	size_t fault_pages;
	size_t fill_len;
	int reps;
	bool pread_only; /* fill_2m_pread alone */
};

/* The CPUs this process may use: the first two pin the placements. */
struct cpus {
	int n;
	int id[2];
	cpu_set_t all;
};

static void parse_opts(struct opts *o, int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "fault-pages", required_argument, NULL, 'f' },
		{ "fill-mib", required_argument, NULL, 'm' },
		{ "reps", required_argument, NULL, 'r' },
		{ "pread-only", no_argument, NULL, 'p' },
		{ 0 },
	};
	int c;

	o->fault_pages = 4096;
	o->fill_len = 256UL << 20;
	o->reps = 7;
	o->pread_only = false;
	while ((c = getopt_long(argc, argv, "", lopts, NULL)) != -1) {
		if (c == 'f')
			o->fault_pages = (size_t)parse_long(PROG, "--fault-pages", optarg, 1, 1 << 24);
		else if (c == 'm')
			o->fill_len = (size_t)parse_long(PROG, "--fill-mib", optarg, 2, 65536) << 20;
		else if (c == 'r')
			o->reps = (int)parse_long(PROG, "--reps", optarg, 1, 1000);
		else if (c == 'p')
			o->pread_only = true;
		else
			exit(2);
	}
}

/* ------------------------------------------------------------ uffd set-up */

/* A fresh private anonymous region, THP off, registered in MISSING mode. */
static char *map_registered(int uffd, size_t len)
{
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die(PROG, "mmap %zu KiB", len >> 10);
	if (madvise(p, len, MADV_NOHUGEPAGE))
		bench_die(PROG, "madvise(MADV_NOHUGEPAGE)");
	reg.range.start = (uintptr_t)p;
	reg.range.len = len;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg))
		bench_die(PROG, "UFFDIO_REGISTER %zu KiB", len >> 10);
	if (!(reg.ioctls & (1ULL << _UFFDIO_COPY))) {
		errno = 0;
		bench_die(PROG, "UFFDIO_REGISTER: no UFFDIO_COPY on anonymous memory");
	}
	return p;
}

/* Populated source pages; word STAMP_OFF of page i holds a non-zero stamp of i. */
static char *make_source(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		bench_die(PROG, "mmap source %zu KiB", len >> 10);
	memset(p, 0x5a, len);
	for (size_t i = 0; i < len / PAGE_SIZE_4K; i++)
		*(uint64_t *)(p + i * PAGE_SIZE_4K + STAMP_OFF) = (i + 1) * 0x9e3779b97f4a7c15ULL | 1;
	return p;
}

/* Every page of dst carries the stamp of the same page of src. */
static void check_pages(const char *dst, const char *src, size_t pages, size_t src_pages,
			const char *what)
{
	for (size_t i = 0; i < pages; i++) {
		size_t off = i * PAGE_SIZE_4K + STAMP_OFF;
		size_t soff = (i % src_pages) * PAGE_SIZE_4K + STAMP_OFF;

		if (*(const uint64_t *)(dst + off) != *(const uint64_t *)(src + soff)) {
			errno = 0;
			bench_die(PROG, "%s: page %zu has the wrong contents", what, i);
		}
	}
}

static void pin_self(const cpu_set_t *set, const char *what)
{
	if (pthread_setaffinity_np(pthread_self(), sizeof(*set), set)) {
		errno = 0;
		bench_die(PROG, "pin %s: pthread_setaffinity_np failed", what);
	}
}

static void one_cpu(cpu_set_t *set, int cpu)
{
	CPU_ZERO(set);
	CPU_SET(cpu, set);
}

/* ------------------------------------------------------------ fault round trip */

struct handler {
	int uffd;
	int stopfd;		/* eventfd: written when the toucher is done */
	int cpu;		/* -1: unpinned */
	const char *src;	/* the page every fault gets */
	cpu_set_t all;
	size_t served;
	int err;		/* errno of a failed UFFDIO_COPY or read */
};

static int serve_one(struct handler *h)
{
	struct uffd_msg msg;
	struct uffdio_copy copy = { .src = (uintptr_t)h->src, .len = PAGE_SIZE_4K };
	ssize_t n = read(h->uffd, &msg, sizeof(msg));

	if (n < 0)
		return errno == EAGAIN ? 0 : -errno;
	if (n != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT)
		return -EPROTO;
	copy.dst = msg.arg.pagefault.address & ~(PAGE_SIZE_4K - 1);
	if (ioctl(h->uffd, UFFDIO_COPY, &copy) && errno != EEXIST)
		return -errno;
	h->served++;
	return 0;
}

static void *handler_main(void *arg)
{
	struct handler *h = arg;
	struct pollfd pfd[2] = { { h->uffd, POLLIN, 0 }, { h->stopfd, POLLIN, 0 } };
	cpu_set_t set;

	if (h->cpu >= 0) {
		one_cpu(&set, h->cpu);
		pin_self(&set, "handler");
	} else {
		pin_self(&h->all, "handler");
	}
	while (!h->err) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno != EINTR)
				h->err = errno;
			continue;
		}
		if (pfd[0].revents & POLLIN) {
			int ret = serve_one(h);

			if (ret)
				h->err = -ret;
		} else if (pfd[1].revents & POLLIN) {
			break;
		}
	}
	return NULL;
}

/* Median fault latency (ns) of one pass over pages; *p99 gets the 99th percentile. */
static double rtt_once(const struct opts *o, const struct cpus *c, int toucher_cpu,
		       int handler_cpu, const char *src, uint64_t *lat, double *p99)
{
	struct handler h = { .cpu = handler_cpu, .src = src, .all = c->all };
	size_t len = o->fault_pages * PAGE_SIZE_4K;
	uint64_t one = 1;
	pthread_t th;
	cpu_set_t set;
	char *dst;
	double med;

	h.uffd = bench_uffd_open(PROG, 0);
	h.stopfd = eventfd(0, EFD_CLOEXEC);
	if (h.stopfd < 0)
		bench_die(PROG, "eventfd");
	dst = map_registered(h.uffd, len);
	if (toucher_cpu >= 0) {
		one_cpu(&set, toucher_cpu);
		pin_self(&set, "toucher");
	}
	errno = pthread_create(&th, NULL, handler_main, &h);
	if (errno)
		bench_die(PROG, "pthread_create");
	for (size_t i = 0; i < o->fault_pages; i++) {
		uint64_t t0 = now_ns();

		*(volatile char *)(dst + i * PAGE_SIZE_4K) = 1;
		lat[i] = now_ns() - t0;
	}
	if (write(h.stopfd, &one, sizeof(one)) != sizeof(one))
		bench_die(PROG, "eventfd write");
	pthread_join(th, NULL);
	pin_self(&c->all, "toucher");
	if (h.err) {
		errno = h.err;
		bench_die(PROG, "fault handler");
	}
	if (h.served != o->fault_pages) {
		errno = 0;
		bench_die(PROG, "fault handler served %zu faults for %zu pages", h.served,
			  o->fault_pages);
	}
	check_pages(dst, src, o->fault_pages, 1, "fault round trip");
	munmap(dst, len);
	close(h.stopfd);
	close(h.uffd);
	*p99 = (double)quantile_u64(lat, o->fault_pages, 0.99);
	med = (double)quantile_u64(lat, o->fault_pages, 0.5);
	return med;
}

static void bench_rtt(const struct opts *o, const struct cpus *c, int *first, const char *name,
		      int toucher_cpu, int handler_cpu)
{
	uint64_t *lat = calloc(o->fault_pages, sizeof(*lat));
	double *med = calloc((size_t)o->reps, sizeof(*med));
	double *p99 = calloc((size_t)o->reps, sizeof(*p99));
	char *src = make_source(PAGE_SIZE_4K);
	double dummy;

	if (!lat || !med || !p99)
		bench_die(PROG, "calloc");
	rtt_once(o, c, toucher_cpu, handler_cpu, src, lat, &dummy); /* warm-up */
	for (int r = 0; r < o->reps; r++)
		med[r] = rtt_once(o, c, toucher_cpu, handler_cpu, src, lat, &p99[r]);
	json_test_begin(first, name, "ns", med, o->reps);
	printf(", \"p99\": [");
	for (int r = 0; r < o->reps; r++)
		printf("%s%.0f", r ? ", " : "", p99[r]);
	printf("], \"faults\": %zu, \"toucher_cpu\": %d, \"handler_cpu\": %d", o->fault_pages,
	       toucher_cpu, handler_cpu);
	json_test_end();
	munmap(src, PAGE_SIZE_4K);
	free(lat);
	free(med);
	free(p99);
}

/* ------------------------------------------------------------ fill rate */

/*
 * GB/s of filling a fresh registered region from src in chunks. With
 * populate, each source chunk is first mapped in with MADV_POPULATE_READ
 * (one call per chunk instead of one page fault per few pages).
 */
static double fill_once(int uffd, const char *src, size_t len, size_t chunk, bool populate,
			double *read_ns)
{
	char *dst = map_registered(uffd, len);
	uint64_t t0, t1;
	size_t off = 0;

	t0 = now_ns();
	while (off < len) {
		struct uffdio_copy copy = {
			.dst = (uintptr_t)dst + off,
			.src = (uintptr_t)src + off,
			.len = len - off < chunk ? len - off : chunk,
		};

		if (populate && madvise((void *)(src + off), copy.len, MADV_POPULATE_READ))
			bench_die(PROG, "madvise(MADV_POPULATE_READ) of the source");

		/* The kernel may copy less than asked (EAGAIN with a count). */
		if (ioctl(uffd, UFFDIO_COPY, &copy) == 0)
			off += copy.len;
		else if (errno == EAGAIN && copy.copy > 0)
			off += (size_t)copy.copy;
		else
			bench_die(PROG, "UFFDIO_COPY %llu KiB at offset %zu",
				  (unsigned long long)copy.len >> 10, off);
	}
	t1 = now_ns();
	/* The check is also the first user access to each copied page. */
	check_pages(dst, src, len / PAGE_SIZE_4K, len / PAGE_SIZE_4K, "fill");
	if (read_ns)
		*read_ns = (double)(now_ns() - t1) / (double)(len / PAGE_SIZE_4K);
	munmap(dst, len);
	return (double)len / (double)(t1 - t0);
}

/* read_name: also report the first read of the copied pages under that name. */
static void bench_fill(const struct opts *o, int *first, const char *name,
		       const char *read_name, size_t chunk, const char *src, int uffd)
{
	double *gbps = calloc((size_t)o->reps, sizeof(*gbps));
	double *read = calloc((size_t)o->reps, sizeof(*read));

	if (!gbps || !read)
		bench_die(PROG, "calloc");
	fill_once(uffd, src, o->fill_len, chunk, false, NULL); /* warm-up */
	for (int r = 0; r < o->reps; r++)
		gbps[r] = fill_once(uffd, src, o->fill_len, chunk, false, &read[r]);
	json_test_begin(first, name, "GB/s", gbps, o->reps);
	printf(", \"chunk\": %zu, \"bytes\": %zu", chunk, o->fill_len);
	json_test_end();
	if (read_name) {
		json_test_begin(first, read_name, "ns/page", read, o->reps);
		printf(", \"after\": \"%s\"", name);
		json_test_end();
	}
	free(gbps);
	free(read);
}

/*
 * A memfd holding a copy of src, its pages in the page cache. Each fill maps
 * it afresh, so every run pays the faults on the source mapping.
 */
static int make_file_source(const char *src, size_t len)
{
	int fd = memfd_create("uffdbench-src", MFD_CLOEXEC);
	size_t off = 0;

	if (fd < 0)
		bench_die(PROG, "memfd_create");
	while (off < len) {
		ssize_t n = write(fd, src + off, len - off);

		if (n <= 0)
			bench_die(PROG, "write memfd source");
		off += (size_t)n;
	}
	return fd;
}

static double fill_file_once(int uffd, int srcfd, size_t len, size_t chunk, bool populate)
{
	char *map = mmap(NULL, len, PROT_READ, MAP_SHARED, srcfd, 0);
	double gbps;

	if (map == MAP_FAILED)
		bench_die(PROG, "mmap memfd source");
	gbps = fill_once(uffd, map, len, chunk, populate, NULL);
	munmap(map, len);
	return gbps;
}

/* pread each chunk of the memfd into a bounce buffer, UFFDIO_COPY from there. */
static double fill_pread_once(int uffd, int srcfd, const char *src, size_t len, size_t chunk)
{
	char *dst = map_registered(uffd, len);
	char *bounce = malloc(chunk);
	uint64_t t0, t1;
	size_t off = 0;

	if (!bounce)
		bench_die(PROG, "malloc bounce buffer");
	t0 = now_ns();
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk, done = 0;

		if (pread(srcfd, bounce, n, (off_t)off) != (ssize_t)n)
			bench_die(PROG, "pread memfd source at %zu", off);
		while (done < n) {
			struct uffdio_copy copy = {
				.dst = (uintptr_t)dst + off + done,
				.src = (uintptr_t)bounce + done,
				.len = n - done,
			};

			if (ioctl(uffd, UFFDIO_COPY, &copy) == 0)
				done += copy.len;
			else if (errno == EAGAIN && copy.copy > 0)
				done += (size_t)copy.copy;
			else
				bench_die(PROG, "UFFDIO_COPY at offset %zu", off + done);
		}
		off += n;
	}
	t1 = now_ns();
	check_pages(dst, src, len / PAGE_SIZE_4K, len / PAGE_SIZE_4K, "fill from pread");
	munmap(dst, len);
	free(bounce);
	return (double)len / (double)(t1 - t0);
}

static void bench_fill_pread(const struct opts *o, int *first, const char *name, size_t chunk,
			     const char *src, int uffd)
{
	double *gbps = calloc((size_t)o->reps, sizeof(*gbps));
	int fd = make_file_source(src, o->fill_len);

	if (!gbps)
		bench_die(PROG, "calloc");
	fill_pread_once(uffd, fd, src, o->fill_len, chunk); /* warm-up */
	for (int r = 0; r < o->reps; r++)
		gbps[r] = fill_pread_once(uffd, fd, src, o->fill_len, chunk);
	json_test_begin(first, name, "GB/s", gbps, o->reps);
	printf(", \"chunk\": %zu, \"bytes\": %zu, \"source\": \"memfd pread into a buffer\"",
	       chunk, o->fill_len);
	json_test_end();
	close(fd);
	free(gbps);
}

static void bench_fill_file(const struct opts *o, int *first, const char *name, size_t chunk,
			    bool populate, const char *src, int uffd)
{
	double *gbps = calloc((size_t)o->reps, sizeof(*gbps));
	int fd = make_file_source(src, o->fill_len);

	if (!gbps)
		bench_die(PROG, "calloc");
	fill_file_once(uffd, fd, o->fill_len, chunk, populate); /* warm-up */
	for (int r = 0; r < o->reps; r++)
		gbps[r] = fill_file_once(uffd, fd, o->fill_len, chunk, populate);
	json_test_begin(first, name, "GB/s", gbps, o->reps);
	printf(", \"chunk\": %zu, \"bytes\": %zu, \"source\": \"memfd MAP_SHARED%s\"", chunk,
	       o->fill_len, populate ? ", MADV_POPULATE_READ per chunk" : "");
	json_test_end();
	close(fd);
	free(gbps);
}

/* ------------------------------------------------------------ main */

static void find_cpus(struct cpus *c)
{
	if (sched_getaffinity(0, sizeof(c->all), &c->all))
		bench_die(PROG, "sched_getaffinity");
	c->n = 0;
	for (int i = 0; i < CPU_SETSIZE && c->n < 2; i++)
		if (CPU_ISSET(i, &c->all))
			c->id[c->n++] = i;
}

int main(int argc, char **argv)
{
	struct opts o;
	struct cpus c;
	int first = 1, uffd;
	char *src;

	parse_opts(&o, argc, argv);
	find_cpus(&c);

	if (!o.pread_only) {
		bench_rtt(&o, &c, &first, "fault_rtt_unpinned", -1, -1);
		bench_rtt(&o, &c, &first, "fault_rtt_same_cpu", c.id[0], c.id[0]);
		if (c.n > 1)
			bench_rtt(&o, &c, &first, "fault_rtt_cross_cpu", c.id[0], c.id[1]);
	}

	/* Features 0: the copies measured do not depend on any. */
	uffd = bench_uffd_open(PROG, 0);
	src = make_source(o.fill_len);
	if (!o.pread_only) {
		bench_fill(&o, &first, "fill_64k", NULL, 64UL << 10, src, uffd);
		bench_fill(&o, &first, "fill_2m", "read_after_copy", 2UL << 20, src, uffd);
		bench_fill_file(&o, &first, "fill_2m_file", 2UL << 20, false, src, uffd);
		bench_fill_file(&o, &first, "fill_2m_file_populate", 2UL << 20, true, src, uffd);
	}
	bench_fill_pread(&o, &first, "fill_2m_pread", 2UL << 20, src, uffd);
	munmap(src, o.fill_len);
	close(uffd);

	json_end(first);
	return 0;
}
