/*
 * lzdelmap - mappings of deleted files (test_delmap.py).
 *
 *   lzdelmap --dir DIR
 *
 * Sets up, in DIR/files, three files of NPAGES pages each with its own pattern,
 * then unlinks all three:
 *   shared   open O_RDWR (the fd kept) and mapped MAP_SHARED: one file
 *            seen through the fd and the mapping;
 *   twice    mapped MAP_SHARED twice at two addresses, its fd closed: the
 *            two mappings are one file;
 *   private  mapped MAP_PRIVATE read-write, its fd closed, every 3rd page
 *            written (copied on write: the file keeps its pattern there).
 * Then writes DIR/ready (pid, the addresses) and waits. Every check
 * (SIGUSR1) first verifies the state the previous check left (generation
 * G in word 0 of each page of shared and twice, and in private's written
 * pages; the other private pages still the file's pattern), then writes
 * G + 1 through one side and reads it back through the other (fd ->
 * mapping and mapping -> fd for shared; first -> second mapping for twice;
 * the private mapping's own pages), and that each file is still deleted
 * (st_nlink 0 on the fd, "(deleted)" in /proc/self/maps). The verdict goes
 * to DIR/result: "PASS pid=P gen=G before=B" or "FAIL pid=P ...: why".
 * SIGTERM exits 0.
 */

#define WL_NAME "lzdelmap"
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "wl.h"

#define NPAGES 48
#define PAGE 4096UL
#define LEN (NPAGES * PAGE)

struct st {
	const char *dir;
	int shared_fd;
	uint64_t *shared, *twice1, *twice2, *priv;
	uint64_t gen; /* what the last check wrote */
	char why[512];
};

/* Word w of page p of file f (1 shared, 2 twice, 3 private). */
static uint64_t pat(int f, size_t p, size_t w)
{
	uint64_t x = ((uint64_t)f << 56) ^ (p * 0x9e3779b97f4a7c15ULL) ^ (w * 0xbf58476d1ce4e5b9ULL);

	return x ^ (x >> 29);
}

static void fill_file(const char *path, int f, int *fdp)
{
	uint64_t *buf = malloc(LEN);
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);

	if (!buf || fd < 0)
		die("create %s", path);
	for (size_t p = 0; p < NPAGES; p++)
		for (size_t w = 0; w < PAGE / 8; w++)
			buf[p * PAGE / 8 + w] = pat(f, p, w);
	if (write_all(fd, buf, LEN))
		die("write %s", path);
	free(buf);
	*fdp = fd;
}

static uint64_t *map(int fd, int flags)
{
	void *m = mmap(NULL, LEN, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (m == MAP_FAILED)
		die("mmap");
	return m;
}

static void setup(struct st *s)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/files", s->dir);
	if (mkdir(path, 0750) && errno != EEXIST)
		die("mkdir %s", path);
	snprintf(path, sizeof(path), "%s/files/shared", s->dir);
	fill_file(path, 1, &s->shared_fd);
	s->shared = map(s->shared_fd, MAP_SHARED);
	unlink(path);

	snprintf(path, sizeof(path), "%s/files/twice", s->dir);
	fill_file(path, 2, &fd);
	s->twice1 = map(fd, MAP_SHARED);
	s->twice2 = map(fd, MAP_SHARED);
	close(fd);
	unlink(path);

	snprintf(path, sizeof(path), "%s/files/private", s->dir);
	fill_file(path, 3, &fd);
	s->priv = map(fd, MAP_PRIVATE);
	close(fd);
	unlink(path);
	for (size_t p = 0; p < NPAGES; p += 3)
		s->priv[p * PAGE / 8] = 0; /* copied on write; gen 0 */
	for (size_t p = 0; p < NPAGES; p++) {
		s->shared[p * PAGE / 8] = 0;
		s->twice1[p * PAGE / 8] = 0;
	}
}

static bool fail(struct st *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return false;
}

/* Page p of a mapping of file f: word 0 is G, the rest the file's pattern. */
static bool page_ok(struct st *s, const char *what, const uint64_t *m, int f, size_t p, uint64_t g)
{
	const uint64_t *pg = m + p * PAGE / 8;

	if (pg[0] != g)
		return fail(s, "%s page %zu: generation %" PRIu64 ", want %" PRIu64, what, p, pg[0], g);
	for (size_t w = 1; w < PAGE / 8; w++)
		if (pg[w] != pat(f, p, w))
			return fail(s, "%s page %zu word %zu: %#" PRIx64 ", want %#" PRIx64, what, p, w,
				    pg[w], pat(f, p, w));
	return true;
}

static bool verify(struct st *s, uint64_t g)
{
	for (size_t p = 0; p < NPAGES; p++) {
		if (!page_ok(s, "shared", s->shared, 1, p, g) ||
		    !page_ok(s, "twice (first)", s->twice1, 2, p, g) ||
		    !page_ok(s, "twice (second)", s->twice2, 2, p, g) ||
		    !page_ok(s, "private", s->priv, 3, p, p % 3 ? pat(3, p, 0) : g))
			return false;
	}
	return true;
}

static bool deleted_everywhere(struct st *s)
{
	char line[4400];
	struct stat st;
	int n = 0;
	FILE *f;

	if (fstat(s->shared_fd, &st) || st.st_nlink)
		return fail(s, "the shared fd's file has %ju links", (uintmax_t)st.st_nlink);
	f = fopen("/proc/self/maps", "re");
	if (!f)
		return fail(s, "open /proc/self/maps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		uint64_t a;

		if (sscanf(line, "%" SCNx64, &a) != 1)
			continue;
		if ((a == (uintptr_t)s->shared || a == (uintptr_t)s->twice1 ||
		     a == (uintptr_t)s->twice2 || a == (uintptr_t)s->priv) &&
		    strstr(line, " (deleted)\n"))
			n++;
	}
	fclose(f);
	return n == 4 ? true : fail(s, "%d of the 4 mappings show a deleted file", n);
}

/* Write G+1 through one side, read it through the other. */
static bool write_next(struct st *s)
{
	uint64_t g = s->gen + 1, got;

	for (size_t p = 0; p < NPAGES; p++) {
		off_t off = (off_t)(p * PAGE);

		if (p % 2) {
			if (pwrite(s->shared_fd, &g, 8, off) != 8)
				return fail(s, "pwrite shared page %zu: %s", p, strerror(errno));
		} else {
			s->shared[p * PAGE / 8] = g;
		}
		s->twice1[p * PAGE / 8] = g;
		if (!(p % 3))
			s->priv[p * PAGE / 8] = g;
	}
	for (size_t p = 0; p < NPAGES; p++) {
		if (pread(s->shared_fd, &got, 8, (off_t)(p * PAGE)) != 8 || got != g)
			return fail(s, "shared page %zu: the fd reads %" PRIu64 " after writing %" PRIu64
				    " through %s", p, got, g, p % 2 ? "it" : "the mapping");
	}
	if (!verify(s, g))
		return false;
	s->gen = g;
	return true;
}

static void check(struct st *s)
{
	char out[800];
	uint64_t before = s->gen;
	bool ok;

	s->why[0] = '\0';
	ok = verify(s, s->gen) && deleted_everywhere(s) && write_next(s);
	snprintf(out, sizeof(out), "%s pid=%d gen=%" PRIu64 " before=%" PRIu64 "%s%s\n",
		 ok ? "PASS" : "FAIL", getpid(), s->gen, before, ok ? "" : ": ", s->why);
	wl_publish(s->dir, "result", out);
}

int main(int argc, char **argv)
{
	struct st s = { 0 };
	char ready[512];

	for (int i = 1; i + 1 < argc; i += 2)
		if (!strcmp(argv[i], "--dir"))
			s.dir = argv[i + 1];
	if (!s.dir) {
		fprintf(stderr, "usage: lzdelmap --dir DIR\n");
		return 2;
	}
	setup(&s);
	signal(SIGUSR1, wl_on_usr1);
	signal(SIGTERM, wl_on_term);
	snprintf(ready, sizeof(ready), "pid=%d shared=%p twice1=%p twice2=%p private=%p fd=%d\n",
		 getpid(), (void *)s.shared, (void *)s.twice1, (void *)s.twice2, (void *)s.priv,
		 s.shared_fd);
	wl_publish(s.dir, "ready", ready);
	while (!term_requested) {
		if (check_requested) {
			check_requested = 0;
			check(&s);
		}
		usleep(10000);
	}
	return 0;
}
