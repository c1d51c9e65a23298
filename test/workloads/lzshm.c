/*
 * lzshm.c - two processes sharing memory every way Linux has, each able to
 * prove after a restore that what it shares is still ONE object with the
 * other.
 *
 *   lzshm --dir DIR [--mib N] [--key K]
 *
 * The parent (DIR/) maps, before it forks the child (DIR/child/):
 *   anon   MAP_SHARED|MAP_ANONYMOUS, N MiB (default 4)
 *   mfd    a memfd "lzshm-map" of 2 MiB, MAP_SHARED, its fd kept open,
 *          and a MAP_PRIVATE mapping of the same memfd whose first 8 pages
 *          the parent overwrote (copy on write: the memfd keeps its data)
 *   sealed a memfd "lzshm-sealed" of 40000 bytes held only as an fd (both
 *          have it: one open file description) at offset 12345, sealed
 *          F_SEAL_SHRINK|F_SEAL_GROW|F_SEAL_WRITE
 *   sysv   a SysV segment of 1 MiB with key K (default 0x4c5a0000 + pid),
 *          attached in both; the child makes pages 4-7 of its attachment
 *          read-only, which splits it into three VMAs
 *   rmseg  a SysV segment of 256 KiB, IPC_PRIVATE, marked for deletion
 *          (IPC_RMID) while both still have it attached
 * Page 0 of each shared object holds a counter per process (parent at
 * offset 0, child at offset 64), bumped every millisecond; every other
 * page holds a pattern of its object and page number (every 16th page
 * left zero, never written). DIR/ready: "pid=P child=C key=K shmid=I
 * rmid=J"; DIR/child/ready: "pid=C".
 *
 * SIGUSR1 makes a process check itself into DIR[/child]/result:
 *   "PASS seq=S pid=P ..." or "FAIL seq=S pid=P ...: reasons"
 * every pattern and the private copy, the sealed memfd (name, size,
 * seals, offset, content), that a pwrite through the parent's memfd fd
 * shows in its mapping of it (the fd and the mapping are one object), the
 * SysV ids and key (IPC_STAT on
 * the id it was given at creation: same id, same key, same size, and the
 * removed segment still marked SHM_DEST), and that within 3 s the OTHER
 * process's counter moves in every shared object: a write made by the
 * other after the restore, seen here, proves one object, not two copies.
 * The child writes to DIR/child/out (its own open files: a description
 * shared across processes is not dumped yet). SIGTERM exits 0 (the parent first stops and reaps the child; the
 * parent removes its segment).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzshm"
#include "wl.h"

#define PAGE 4096UL
#define MFD_SIZE (2UL << 20)
#define SYSV_SIZE (1UL << 20)
#define RM_SIZE (256UL << 10)
#define PRIV_PAGES 8
#define WAIT_MS 3000

enum obj { O_ANON, O_MFD, O_SYSV, O_RM, O_NR };
static const char *const names[O_NR] = { "anon", "mfd", "sysv", "rmseg" };

struct shm {
	char dir[4096];
	int child;	    /* 1 in the child */
	pid_t other;	    /* the parent: the child's pid */
	uint8_t *mem[O_NR];
	size_t size[O_NR];
	uint8_t *priv;	    /* MAP_PRIVATE of the memfd */
	int mfd_fd;	    /* the memfd of O_MFD, still open */
	int sealed_fd;	    /* "lzshm-sealed" */
	key_t key;
	int shmid, rmid;
	uint64_t seq;
};


static uint64_t pattern(int o, uint64_t page, uint64_t word)
{
	uint64_t x = (page * 512 + word + 11) * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)o << 56);

	x ^= x >> 29;
	return x | 1;
}

static void fill(int o, uint8_t *m, size_t size)
{
	for (uint64_t p = 1; p < size / PAGE; p++) {
		uint64_t *w = (uint64_t *)(m + p * PAGE);

		if (p % 16 == 0)
			continue;
		for (uint64_t i = 0; i < PAGE / 8; i++)
			w[i] = pattern(o, p, i);
	}
}

/* First page from FIRST of object O (at M) not as fill() wrote it; -1 if none. */
static long bad_page(int o, const uint8_t *m, size_t size, uint64_t first)
{
	for (uint64_t p = first; p < size / PAGE; p++) {
		const uint64_t *w = (const uint64_t *)(m + p * PAGE);

		for (uint64_t i = 0; i < PAGE / 8; i++)
			if (w[i] != (p % 16 ? pattern(o, p, i) : 0))
				return (long)p;
	}
	return -1;
}

static volatile uint64_t *counter(struct shm *s, int o, int who)
{
	return (volatile uint64_t *)(s->mem[o] + who * 64);
}

static void addf(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void bump(struct shm *s)
{
	for (int o = 0; o < O_NR; o++)
		(*counter(s, o, s->child))++;
}

static void check_sysv(struct shm *s, char *fails, size_t len)
{
	struct shmid_ds ds;

	if (shmctl(s->shmid, IPC_STAT, &ds) < 0)
		addf(fails, len, " sysv id %d: %s;", s->shmid, strerror(errno));
	else if (ds.shm_perm.__key != s->key || ds.shm_segsz != SYSV_SIZE ||
		 (ds.shm_perm.mode & 0777) != 0640)
		addf(fails, len, " sysv id %d: key %#x size %zu mode %o;", s->shmid,
		     (unsigned)ds.shm_perm.__key, (size_t)ds.shm_segsz, ds.shm_perm.mode & 0777);
	if (shmctl(s->rmid, IPC_STAT, &ds) < 0)
		addf(fails, len, " rmseg id %d: %s;", s->rmid, strerror(errno));
	else if (!(ds.shm_perm.mode & SHM_DEST) || ds.shm_segsz != RM_SIZE)
		addf(fails, len, " rmseg id %d: mode %o size %zu, not removed;", s->rmid,
		     ds.shm_perm.mode, (size_t)ds.shm_segsz);
}

/* The other process's counter moves in every object within WAIT_MS. */
static void check_other(struct shm *s, char *fails, size_t len)
{
	uint64_t seen[O_NR], start = now_ms();
	int moved = 0;

	for (int o = 0; o < O_NR; o++)
		seen[o] = *counter(s, o, !s->child);
	while (moved != (1 << O_NR) - 1 && now_ms() - start < WAIT_MS) {
		bump(s);
		usleep(1000);
		for (int o = 0; o < O_NR; o++)
			if (*counter(s, o, !s->child) != seen[o])
				moved |= 1 << o;
	}
	for (int o = 0; o < O_NR; o++)
		if (!(moved & (1 << o)))
			addf(fails, len, " %s: the other process's counter stuck at %" PRIu64 ";",
			     names[o], seen[o]);
}

#define SEALED_SIZE 40000
#define SEALED_POS 12345
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE)

static uint8_t sealed_byte(uint64_t i)
{
	return (uint8_t)(i * 7 + (i >> 8) + 3);
}

static void check_memfds(struct shm *s, char *fails, size_t len)
{
	char link[64], name[256];
	uint8_t buf[SEALED_SIZE];
	uint64_t token = ((uint64_t)getpid() << 32) | (uint32_t)++s->seq;
	struct stat st;
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", s->sealed_fd);
	n = readlink(link, name, sizeof(name) - 1);
	name[n > 0 ? n : 0] = '\0';
	if (strcmp(name, "/memfd:lzshm-sealed (deleted)"))
		addf(fails, len, " sealed memfd: fd %d is %s;", s->sealed_fd, name);
	if (fstat(s->sealed_fd, &st) < 0 || st.st_size != SEALED_SIZE)
		addf(fails, len, " sealed memfd: size %lld;", (long long)st.st_size);
	if (fcntl(s->sealed_fd, F_GET_SEALS) != SEALS)
		addf(fails, len, " sealed memfd: seals %#x;", fcntl(s->sealed_fd, F_GET_SEALS));
	if (lseek(s->sealed_fd, 0, SEEK_CUR) != SEALED_POS)
		addf(fails, len, " sealed memfd: offset %lld;",
		     (long long)lseek(s->sealed_fd, 0, SEEK_CUR));
	if (pread(s->sealed_fd, buf, sizeof(buf), 0) != (ssize_t)sizeof(buf))
		addf(fails, len, " sealed memfd: short read;");
	for (uint64_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != sealed_byte(i)) {
			addf(fails, len, " sealed memfd: byte %" PRIu64 " is wrong;", i);
			break;
		}
	if (pwrite(s->sealed_fd, buf, 1, 0) != -1 || errno != EPERM)
		addf(fails, len, " sealed memfd: a write was not refused;");
	if (s->child)
		return;
	/* Through the fd, seen in the mapping: one object (page 0, after the counters). */
	if (pwrite(s->mfd_fd, &token, sizeof(token), 128) != sizeof(token) ||
	    *(volatile uint64_t *)(s->mem[O_MFD] + 128) != token)
		addf(fails, len, " mfd: a write through the memfd fd is not in its mapping;");
}

static void check(struct shm *s)
{
	char fails[2048] = "", text[2300];
	long p;

	for (int o = 0; o < O_NR; o++) {
		p = bad_page(o, s->mem[o], s->size[o], 1);
		if (p >= 0)
			addf(fails, sizeof(fails), " %s: page %ld is wrong;", names[o], p);
	}
	if (!s->child) {
		for (uint64_t i = 0; i < PRIV_PAGES * PAGE; i++)
			if (s->priv[i] != (uint8_t)(0xa5 ^ i)) {
				addf(fails, sizeof(fails), " private memfd copy: byte %" PRIu64
					 " is wrong;", i);
				break;
			}
		p = bad_page(O_MFD, s->priv, MFD_SIZE, PRIV_PAGES); /* the rest is the memfd's */
		if (p >= 0)
			addf(fails, sizeof(fails), " private memfd mapping: page %ld is wrong;", p);
	}
	check_memfds(s, fails, sizeof(fails));
	check_sysv(s, fails, sizeof(fails));
	check_other(s, fails, sizeof(fails));
	snprintf(text, sizeof(text), "%s seq=%" PRIu64 " pid=%d%s%s\n", fails[0] ? "FAIL" : "PASS",
		 ++s->seq, getpid(), fails[0] ? ":" : "", fails);
	wl_publish(s->dir, "result", text);
}

static void *map_shared(size_t size, int fd, int flags)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, fd, 0);

	if (p == MAP_FAILED)
		die("mmap %zu bytes", size);
	return p;
}

static void setup(struct shm *s, size_t anon_size)
{
	int fd;

	s->size[O_ANON] = anon_size;
	s->mem[O_ANON] = map_shared(anon_size, -1, MAP_SHARED | MAP_ANONYMOUS);
	fd = (int)syscall(SYS_memfd_create, "lzshm-map", 0);
	if (fd < 0 || ftruncate(fd, MFD_SIZE) < 0)
		die("memfd");
	s->size[O_MFD] = MFD_SIZE;
	s->mem[O_MFD] = map_shared(MFD_SIZE, fd, MAP_SHARED);
	fill(O_MFD, s->mem[O_MFD], MFD_SIZE);
	s->priv = map_shared(MFD_SIZE, fd, MAP_PRIVATE);
	for (uint64_t i = 0; i < PRIV_PAGES * PAGE; i++)
		s->priv[i] = (uint8_t)(0xa5 ^ i);
	s->mfd_fd = fd;
	s->sealed_fd = (int)syscall(SYS_memfd_create, "lzshm-sealed", MFD_ALLOW_SEALING);
	if (s->sealed_fd < 0 || ftruncate(s->sealed_fd, SEALED_SIZE) < 0)
		die("sealed memfd");
	for (uint64_t i = 0; i < SEALED_SIZE; i++) {
		uint8_t b = sealed_byte(i);

		if (pwrite(s->sealed_fd, &b, 1, (off_t)i) != 1)
			die("sealed memfd: pwrite");
	}
	if (fcntl(s->sealed_fd, F_ADD_SEALS, SEALS) < 0 ||
	    lseek(s->sealed_fd, SEALED_POS, SEEK_SET) != SEALED_POS)
		die("sealed memfd: seals");
	s->shmid = shmget(s->key, SYSV_SIZE, IPC_CREAT | IPC_EXCL | 0640);
	s->rmid = shmget(IPC_PRIVATE, RM_SIZE, IPC_CREAT | 0600);
	if (s->shmid < 0 || s->rmid < 0)
		die("shmget");
	s->size[O_SYSV] = SYSV_SIZE;
	s->size[O_RM] = RM_SIZE;
	s->mem[O_SYSV] = shmat(s->shmid, NULL, 0);
	s->mem[O_RM] = shmat(s->rmid, NULL, 0);
	if (s->mem[O_SYSV] == (void *)-1 || s->mem[O_RM] == (void *)-1)
		die("shmat");
	if (shmctl(s->rmid, IPC_RMID, NULL) < 0)
		die("IPC_RMID");
	fill(O_ANON, s->mem[O_ANON], anon_size);
	fill(O_SYSV, s->mem[O_SYSV], SYSV_SIZE);
	fill(O_RM, s->mem[O_RM], RM_SIZE);
}

/* Files of its own: open file descriptions shared across processes are another test's. */
static void own_stdio(const char *dir)
{
	char path[4200];
	int in = open("/dev/null", O_RDONLY), out;

	snprintf(path, sizeof(path), "%s/out", dir);
	out = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		die("stdio of the child");
	close(in);
	close(out);
}

static void loop(struct shm *s)
{
	while (!term_requested) {
		if (check_requested) {
			check_requested = 0;
			check(s);
		}
		bump(s);
		usleep(1000);
	}
}

int main(int argc, char **argv)
{
	struct shm s = { 0 };
	size_t mib = 4;
	char text[256];
	pid_t child;
	int st;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			snprintf(s.dir, sizeof(s.dir), "%s", argv[i + 1]);
		else if (!strcmp(argv[i], "--mib"))
			mib = strtoul(argv[i + 1], NULL, 0);
		else if (!strcmp(argv[i], "--key"))
			s.key = (key_t)strtoul(argv[i + 1], NULL, 0);
	}
	if (!s.dir[0] || !mib)
		die("usage: lzshm --dir DIR [--mib N] [--key K]");
	if (!s.key)
		s.key = (key_t)(0x4c5a0000 + (getpid() & 0xffff));
	signal(SIGUSR1, wl_on_usr1);
	signal(SIGTERM, wl_on_term);
	setup(&s, mib << 20);
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		s.child = 1;
		strncat(s.dir, "/child", sizeof(s.dir) - strlen(s.dir) - 1);
		mkdir(s.dir, 0755);
		own_stdio(s.dir);
		if (mprotect(s.mem[O_SYSV] + 4 * PAGE, 4 * PAGE, PROT_READ) < 0)
			die("mprotect");
		snprintf(text, sizeof(text), "pid=%d\n", getpid());
		wl_publish(s.dir, "ready", text);
		loop(&s);
		return 0;
	}
	snprintf(text, sizeof(text), "pid=%d child=%d key=%d shmid=%d rmid=%d\n", getpid(), child,
		 (int)s.key, s.shmid, s.rmid);
	/* The child's ready first: the test then finds both. */
	for (int i = 0; i < 5000; i++) {
		char path[4200];
		struct stat sb;

		snprintf(path, sizeof(path), "%s/child/ready", s.dir);
		if (stat(path, &sb) == 0)
			break;
		usleep(1000);
	}
	wl_publish(s.dir, "ready", text);
	loop(&s);
	kill(child, SIGTERM);
	waitpid(child, &st, 0);
	shmctl(s.shmid, IPC_RMID, NULL);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
