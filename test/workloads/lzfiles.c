/*
 * lzfiles.c - open file descriptions a restore must give back as they were.
 *
 *   lzfiles --dir DIR
 *
 * In DIR it sets up, at fixed fd numbers, and forks one child that keeps
 * them all:
 *   10  shared.log, O_WRONLY|O_APPEND; 11 a dup of it. Parent and child
 *       append lines to it: one description, so no line is lost.
 *   12  data.bin (4096 pattern bytes), O_RDWR|O_NOATIME|O_NONBLOCK, offset
 *       1000. The child reads 10 bytes from it per check: the parent sees
 *       the shared offset move.
 *   13  deleted.bin, O_RDWR, unlinked after writing DELETED_SIZE known
 *       bytes, offset 123.
 *   14  DIR/sub, O_RDONLY|O_DIRECTORY (openat of sub/inside.txt);
 *   15  sub/inside.txt, O_PATH.
 *   16  flock.lck, flock(LOCK_EX) (the description's: both hold it);
 *   17  posix.lck, a POSIX write lock on bytes 10..19 (the parent's);
 *   18  ofd.lck, an OFD write lock on bytes 0..EOF (the description's).
 *   19  /dev/urandom, O_RDONLY|O_ASYNC, owner the parent (F_SETOWN_EX),
 *       signal SIGRTMIN+1 (F_SETSIG).
 *   20  direct.bin, O_RDWR|O_DIRECT (when DIR's file system takes it:
 *       ready says direct=1).
 * DIR/ready: "pid=P child=C direct=0|1". On SIGUSR1 the parent appends
 * "P<seq>" to fd 10 or 11, asks the child (SIGUSR1) to append "C<seq>" and
 * read 10 bytes from fd 12, waits for DIR/child-<seq>, checks all of the
 * above and writes DIR/result: "PASS seq=S pid=P" or "FAIL ...: what".
 * SIGTERM ends both.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzfiles"
#include "wl.h"

#define FD_LOG 10
#define FD_LOG2 11
#define FD_DATA 12
#define FD_DEL 13
#define FD_DIR 14
#define FD_OPATH 15
#define FD_FLOCK 16
#define FD_POSIX 17
#define FD_OFD 18
#define FD_ASYNC 19
#define FD_DIRECT 20

#define DATA_POS 1000
#define DEL_POS 123
#define DELETED_SIZE 70000 /* more than one page, not a multiple of it */
#define KCMP_FILE 0

static volatile sig_atomic_t check_requested, term_requested;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		check_requested = 1;
	else
		term_requested = 1;
}

static uint8_t data_byte(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static uint8_t del_byte(size_t i)
{
	return (uint8_t)((i * 13) ^ (i >> 8));
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void put_at(int fd, int want)
{
	if (fd != want) {
		if (dup2(fd, want) < 0)
			die("dup2 %d", want);
		close(fd);
	}
}

static int open_at(const char *path, int flags, int want)
{
	int fd = open(path, flags, 0644);

	if (fd < 0)
		die("open %s", path);
	put_at(fd, want);
	return want;
}

static void fill(int fd, size_t n, uint8_t (*byte)(size_t))
{
	uint8_t buf[4096];

	for (size_t off = 0; off < n;) {
		size_t k = n - off < sizeof(buf) ? n - off : sizeof(buf);

		for (size_t i = 0; i < k; i++)
			buf[i] = byte(off + i);
		if (write_all(fd, buf, k))
			die("write");
		off += k;
	}
}

static int setup(const char *dir)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct f_owner_ex ow = { F_OWNER_PID, getpid() };
	int direct = 1, fd;

	if (chdir(dir))
		die("chdir %s", dir);
	open_at("shared.log", O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, FD_LOG);
	if (dup2(FD_LOG, FD_LOG2) < 0)
		die("dup2");
	open_at("data.bin", O_RDWR | O_CREAT | O_TRUNC, FD_DATA);
	fill(FD_DATA, 4096, data_byte);
	if (lseek(FD_DATA, DATA_POS, SEEK_SET) != DATA_POS ||
	    fcntl(FD_DATA, F_SETFL, O_NOATIME | O_NONBLOCK))
		die("data.bin");
	open_at("deleted.bin", O_RDWR | O_CREAT | O_TRUNC, FD_DEL);
	fill(FD_DEL, DELETED_SIZE, del_byte);
	if (unlink("deleted.bin") || lseek(FD_DEL, DEL_POS, SEEK_SET) != DEL_POS)
		die("deleted.bin");
	if (mkdir("sub", 0755) && errno != EEXIST)
		die("mkdir sub");
	fd = open("sub/inside.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write_all(fd, "inside\n", 7) || close(fd))
		die("sub/inside.txt");
	open_at("sub", O_RDONLY | O_DIRECTORY, FD_DIR);
	open_at("sub/inside.txt", O_PATH, FD_OPATH);
	open_at("flock.lck", O_RDWR | O_CREAT, FD_FLOCK);
	if (flock(FD_FLOCK, LOCK_EX | LOCK_NB))
		die("flock");
	open_at("posix.lck", O_RDWR | O_CREAT, FD_POSIX);
	fl.l_start = 10;
	fl.l_len = 10;
	if (fcntl(FD_POSIX, F_SETLK, &fl))
		die("F_SETLK");
	open_at("ofd.lck", O_RDWR | O_CREAT, FD_OFD);
	fl.l_start = fl.l_len = 0;
	if (fcntl(FD_OFD, F_OFD_SETLK, &fl))
		die("F_OFD_SETLK");
	/* A file with ->fasync: a regular file's O_ASYNC would not stick. */
	open_at("/dev/urandom", O_RDONLY, FD_ASYNC);
	if (fcntl(FD_ASYNC, F_SETOWN_EX, &ow) || fcntl(FD_ASYNC, F_SETSIG, SIGRTMIN + 1) ||
	    fcntl(FD_ASYNC, F_SETFL, O_ASYNC))
		die("O_ASYNC on /dev/urandom");
	fd = open("direct.bin", O_RDWR | O_CREAT | O_DIRECT, 0644);
	if (fd < 0 && errno != EINVAL)
		die("direct.bin");
	if (fd < 0)
		direct = 0; /* the file system does not take O_DIRECT */
	else
		put_at(fd, FD_DIRECT);
	return direct;
}

/* ------------------------------------------------------------ the child */

static void child_loop(const char *dir, pid_t parent)
{
	char name[4200], line[64], buf[10];
	uint64_t seq = 0;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(1);
	while (!term_requested) {
		if (!check_requested) {
			nap_ms(10);
			continue;
		}
		check_requested = 0;
		seq++;
		snprintf(line, sizeof(line), "C%llu\n", (unsigned long long)seq);
		if (write_all(FD_LOG, line, strlen(line)) || read(FD_DATA, buf, sizeof(buf)) != 10)
			_exit(3);
		snprintf(name, sizeof(name), "child-%llu", (unsigned long long)seq);
		wl_publish(dir, name, "done\n");
	}
	_exit(0);
}

/* ------------------------------------------------------------ the checks */

struct files {
	const char *dir;
	pid_t child;
	int direct;
	uint64_t seq;
	char *expect; /* what shared.log must hold */
	size_t expect_len;
	char why[1024];
	size_t wlen;
};

static void fail(struct files *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct files *f, const char *fmt, ...)
{
	va_list ap;

	if (f->wlen >= sizeof(f->why) - 2)
		return;
	if (f->wlen)
		f->why[f->wlen++] = ';';
	va_start(ap, fmt);
	f->wlen += (size_t)vsnprintf(f->why + f->wlen, sizeof(f->why) - f->wlen, fmt, ap);
	va_end(ap);
	if (f->wlen > sizeof(f->why) - 1)
		f->wlen = sizeof(f->why) - 1;
}

static void expect_add(struct files *f, const char *s)
{
	size_t n = strlen(s);
	char *e = realloc(f->expect, f->expect_len + n + 1);

	if (!e)
		die("realloc");
	memcpy(e + f->expect_len, s, n + 1);
	f->expect = e;
	f->expect_len += n;
}

static bool wait_child(struct files *f)
{
	char name[4200];

	snprintf(name, sizeof(name), "%s/child-%llu", f->dir, (unsigned long long)f->seq);
	for (int i = 0; i < 1000; i++) {
		if (!access(name, F_OK))
			return true;
		nap_ms(10);
	}
	return false;
}

static void check_log(struct files *f)
{
	char line[64], *got = malloc(f->expect_len + 2);
	int fd = open("shared.log", O_RDONLY);
	ssize_t n;

	snprintf(line, sizeof(line), "P%llu\n", (unsigned long long)f->seq);
	/* Alternate between the two fds: a dup shares the description. */
	if (write_all(f->seq % 2 ? FD_LOG : FD_LOG2, line, strlen(line)))
		fail(f, "append to fd %d: %s", f->seq % 2 ? FD_LOG : FD_LOG2, strerror(errno));
	expect_add(f, line);
	if (kill(f->child, SIGUSR1) || !wait_child(f)) {
		fail(f, "child %d did not answer check %llu", f->child, (unsigned long long)f->seq);
		free(got);
		if (fd >= 0)
			close(fd);
		return;
	}
	snprintf(line, sizeof(line), "C%llu\n", (unsigned long long)f->seq);
	expect_add(f, line);
	n = fd < 0 ? -1 : read(fd, got, f->expect_len + 1);
	if (n != (ssize_t)f->expect_len || memcmp(got, f->expect, f->expect_len))
		fail(f, "shared.log holds %zd bytes, not the %zu written by both", n, f->expect_len);
	if (fd >= 0)
		close(fd);
	free(got);
}

static void check_flags(struct files *f)
{
	static const struct {
		int fd, want, mask;
	} w[] = {
		{ FD_LOG, O_WRONLY | O_APPEND, O_ACCMODE | O_APPEND | O_NONBLOCK },
		{ FD_DATA, O_RDWR | O_NOATIME | O_NONBLOCK, O_ACCMODE | O_NOATIME | O_NONBLOCK },
		{ FD_OPATH, O_PATH, O_PATH },
		{ FD_ASYNC, O_RDONLY | O_ASYNC, O_ACCMODE | O_ASYNC },
		{ FD_DIRECT, O_RDWR | O_DIRECT, O_ACCMODE | O_DIRECT },
	};
	pid_t me = getpid();

	for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		int fl = fcntl(w[i].fd, F_GETFL);

		if (w[i].fd == FD_DIRECT && !f->direct)
			continue;
		if (fl < 0 || (fl & w[i].mask) != w[i].want)
			fail(f, "fd %d: flags %#o, want %#o", w[i].fd, fl, w[i].want);
	}
	if (syscall(SYS_kcmp, me, me, KCMP_FILE, FD_LOG, FD_LOG2) != 0)
		fail(f, "fds %d and %d are no longer one description", FD_LOG, FD_LOG2);
	for (int fd = FD_LOG; fd <= FD_ASYNC; fd++)
		if (syscall(SYS_kcmp, me, f->child, KCMP_FILE, fd, fd) != 0)
			fail(f, "fd %d: not the child's description any more", fd);
	if ((fcntl(FD_LOG, F_GETFD) & FD_CLOEXEC) || !(fcntl(FD_DEL, F_GETFD) & FD_CLOEXEC))
		fail(f, "close-on-exec flags changed");
}

static void check_data(struct files *f)
{
	off_t want = DATA_POS + (off_t)(10 * f->seq), pos = lseek(FD_DATA, 0, SEEK_CUR);
	uint8_t b;

	if (pos != want)
		fail(f, "data.bin offset %lld, want %lld (shared with the child)", (long long)pos,
		     (long long)want);
	if (pread(FD_DATA, &b, 1, 4095) != 1 || b != data_byte(4095))
		fail(f, "data.bin content");
}

static void check_deleted(struct files *f)
{
	static uint8_t buf[DELETED_SIZE + 1];
	char link[4200], path[64];
	struct stat st;
	ssize_t n;

	if (lseek(FD_DEL, 0, SEEK_CUR) != DEL_POS)
		fail(f, "deleted.bin offset %lld, want %d", (long long)lseek(FD_DEL, 0, SEEK_CUR),
		     DEL_POS);
	n = pread(FD_DEL, buf, sizeof(buf), 0);
	if (n != DELETED_SIZE) {
		fail(f, "deleted.bin: %zd bytes, want %d", n, DELETED_SIZE);
	} else {
		for (size_t i = 0; i < DELETED_SIZE; i++)
			if (buf[i] != del_byte(i)) {
				fail(f, "deleted.bin: byte %zu differs", i);
				break;
			}
	}
	snprintf(path, sizeof(path), "/proc/self/fd/%d", FD_DEL);
	n = readlink(path, link, sizeof(link) - 1);
	link[n > 0 ? n : 0] = '\0';
	if (fstat(FD_DEL, &st) || st.st_nlink != 0 || !strstr(link, " (deleted)"))
		fail(f, "deleted.bin is not an unlinked file (%s)", link);
	if ((st.st_mode & 07777) != 0644)
		fail(f, "deleted.bin mode %o", st.st_mode & 07777);
}

static void check_dirs(struct files *f)
{
	struct stat a, b;
	char buf[16];
	int fd = openat(FD_DIR, "inside.txt", O_RDONLY);

	if (fd < 0 || read(fd, buf, sizeof(buf)) != 7 || memcmp(buf, "inside\n", 7))
		fail(f, "openat(dir fd, inside.txt): %s", fd < 0 ? strerror(errno) : "content");
	if (fd >= 0)
		close(fd);
	if (fstatat(FD_OPATH, "", &a, AT_EMPTY_PATH) || stat("sub/inside.txt", &b) ||
	    a.st_ino != b.st_ino)
		fail(f, "the O_PATH fd is not sub/inside.txt");
}

static void check_async(struct files *f)
{
	struct f_owner_ex ow = { 0 };

	if (fcntl(FD_ASYNC, F_GETOWN_EX, &ow) || ow.type != F_OWNER_PID || ow.pid != getpid())
		fail(f, "O_ASYNC owner %d/%d, want %d/%d", ow.type, ow.pid, F_OWNER_PID,
		     getpid());
	if (fcntl(FD_ASYNC, F_GETSIG) != SIGRTMIN + 1)
		fail(f, "O_ASYNC signal %d, want %d", fcntl(FD_ASYNC, F_GETSIG), SIGRTMIN + 1);
}

static void check(struct files *f)
{
	char text[1200];

	f->seq++;
	f->wlen = 0;
	f->why[0] = '\0';
	check_log(f);
	check_flags(f);
	check_data(f);
	check_deleted(f);
	check_dirs(f);
	check_async(f);
	if (f->wlen)
		snprintf(text, sizeof(text), "FAIL seq=%llu pid=%d: %s\n",
			 (unsigned long long)f->seq, getpid(), f->why);
	else
		snprintf(text, sizeof(text), "PASS seq=%llu pid=%d\n", (unsigned long long)f->seq,
			 getpid());
	wl_publish(f->dir, "result", text);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct files f = { 0 };
	char ready[128];
	pid_t parent;

	if (argc != 3 || strcmp(argv[1], "--dir"))
		die("usage: lzfiles --dir DIR");
	f.dir = argv[2];
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
		die("sigaction");
	signal(SIGRTMIN + 1, SIG_IGN);
	f.direct = setup(f.dir);
	fcntl(FD_DEL, F_SETFD, FD_CLOEXEC);
	parent = getpid();
	f.child = fork();
	if (f.child < 0)
		die("fork");
	if (f.child == 0)
		child_loop(f.dir, parent);
	snprintf(ready, sizeof(ready), "pid=%d child=%d direct=%d\n", getpid(), f.child, f.direct);
	wl_publish(f.dir, "ready", ready);
	while (!term_requested) {
		if (check_requested) {
			check_requested = 0;
			check(&f);
		}
		nap_ms(10);
	}
	kill(f.child, SIGTERM);
	waitpid(f.child, NULL, 0);
	return 0;
}
