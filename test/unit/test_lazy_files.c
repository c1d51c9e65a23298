/*
 * test_lazy_files.c - the lazy-pages work directory's file rules
 * (src/lazy-files.h): which directories are refused, which planted files
 * are refused, and that what is created is 0600 and never a followed link.
 * Each case works in a fresh directory under /tmp.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "unit.h"
#include "lazy-files.h"

static int tmpdir(char *path, size_t len, int *fd)
{
	snprintf(path, len, "/tmp/lzunit-files-XXXXXX");
	if (!mkdtemp(path))
		return -1;
	*fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return *fd < 0 ? -1 : 0;
}

static void rmtree(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "  cannot remove %s\n", dir);
}

static bool is_reg(int dirfd, const char *name)
{
	struct stat st;

	return !fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) && S_ISREG(st.st_mode);
}

static mode_t mode_of(int dirfd, const char *name)
{
	struct stat st;

	return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) ? (mode_t)-1 : st.st_mode & 07777;
}

static int test_check_dir(void)
{
	static const struct {
		mode_t mode;
		int want;
	} modes[] = {
		{ 0700, 0 }, { 0755, 0 }, { 0711, 0 }, { 0775, -EPERM }, { 0757, -EPERM },
		{ 0777, -EPERM }, { 01777, -EPERM }, { 0720, -EPERM }, { 0702, -EPERM },
	};
	char dir[64], why[128];
	int fd;

	CHECK(tmpdir(dir, sizeof(dir), &fd) == 0);
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		CHECK(fchmod(fd, modes[i].mode) == 0);
		why[0] = '\0';
		CHECK(lzf_check_dir(fd, geteuid(), why, sizeof(why)) == modes[i].want);
		CHECK(!modes[i].want || strstr(why, "writable by group or others"));
	}
	CHECK(fchmod(fd, 0700) == 0);
	/* Owned by another uid (root can make it so): refused, naming both. */
	CHECK(fchown(fd, 65534, 65534) == 0);
	CHECK(lzf_check_dir(fd, 1000, why, sizeof(why)) == -EPERM);
	CHECK(strstr(why, "owned by uid 65534, not root or uid 1000"));
	/* Owned by root: always fine. */
	CHECK(fchown(fd, 0, 0) == 0);
	CHECK(lzf_check_dir(fd, 1000, why, sizeof(why)) == 0);
	rmtree(dir);
	return 0;
}

static int test_open_refuses_planted(void)
{
	char dir[64], why[128];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, f, s;

	CHECK(tmpdir(dir, sizeof(dir), &fd) == 0);
	/* A symlink: not followed, the target not created. */
	CHECK(symlinkat("target", fd, "link") == 0);
	CHECK(lzf_open(fd, "link", O_WRONLY, why, sizeof(why)) == -ELOOP);
	CHECK(!strcmp(why, "link: is a symlink"));
	CHECK(mode_of(fd, "target") == (mode_t)-1);
	/* A FIFO: refused without blocking (O_NONBLOCK), not a regular file. */
	CHECK(mkfifoat(fd, "fifo", 0600) == 0);
	f = lzf_open(fd, "fifo", O_RDWR, why, sizeof(why));
	CHECK(f == -EPERM && !strcmp(why, "fifo: not a regular file"));
	/* A socket. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", dir);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(s >= 0 && bind(s, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(lzf_open(fd, "sock", O_WRONLY, why, sizeof(why)) == -ENXIO ||
	      !strcmp(why, "sock: not a regular file"));
	/* A hard link to a file elsewhere. */
	f = openat(fd, "one", O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(f >= 0 && linkat(fd, "one", fd, "two", 0) == 0);
	close(f);
	CHECK(lzf_open(fd, "two", O_WRONLY, why, sizeof(why)) == -EPERM);
	CHECK(!strcmp(why, "two: has 2 hard links, want 1"));
	/* Another uid's file. */
	f = openat(fd, "theirs", O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK(f >= 0 && fchown(f, 65534, 65534) == 0);
	close(f);
	if (geteuid() != 65534) {
		CHECK(lzf_open(fd, "theirs", O_WRONLY, why, sizeof(why)) == -EPERM);
		CHECK(strstr(why, "theirs: owned by uid 65534"));
	}
	close(s);
	rmtree(dir);
	return 0;
}

static int test_open_creates_0600(void)
{
	char dir[64], why[128];
	mode_t old = umask(0);
	int fd, f;

	CHECK(tmpdir(dir, sizeof(dir), &fd) == 0);
	f = lzf_open(fd, "new.log", O_WRONLY | O_APPEND, why, sizeof(why));
	CHECK(f >= 0 && mode_of(fd, "new.log") == 0600);
	close(f);
	/* An existing file of ours with a wider mode is narrowed. */
	CHECK(fchmodat(fd, "new.log", 0644, 0) == 0);
	f = lzf_open(fd, "new.log", O_WRONLY | O_APPEND, why, sizeof(why));
	CHECK(f >= 0 && mode_of(fd, "new.log") == 0600);
	close(f);
	umask(old);
	rmtree(dir);
	return 0;
}

static int test_tmp_and_commit(void)
{
	char dir[64], why[128], buf[16] = "";
	int fd, f, t;

	CHECK(tmpdir(dir, sizeof(dir), &fd) == 0);
	/* A stale temporary (even a symlink) is removed, then created O_EXCL. */
	CHECK(symlinkat("/etc/passwd", fd, ".x.tmp") == 0);
	f = lzf_create_tmp(fd, ".x.tmp", why, sizeof(why));
	CHECK(f >= 0 && mode_of(fd, ".x.tmp") == 0600);
	CHECK(write(f, "new\n", 4) == 4);
	close(f);
	/* A symlink at the final name is replaced, its target untouched. */
	t = openat(fd, "target", O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(t >= 0 && write(t, "old\n", 4) == 4);
	close(t);
	CHECK(symlinkat("target", fd, "x") == 0);
	CHECK(lzf_commit(fd, ".x.tmp", "x") == 0);
	CHECK(is_reg(fd, "x") && mode_of(fd, "x") == 0600);
	t = openat(fd, "target", O_RDONLY);
	CHECK(t >= 0 && read(t, buf, sizeof(buf)) == 4 && !strcmp(buf, "old\n"));
	close(t);
	CHECK(mode_of(fd, ".x.tmp") == (mode_t)-1);
	rmtree(dir);
	return 0;
}

static int test_open_log(void)
{
	char dir[64], why[256], path[128];
	int fd, f;

	CHECK(tmpdir(dir, sizeof(dir), &fd) == 0);
	f = lzf_open_log(dir, "lazy-pages.log", why, sizeof(why));
	CHECK(f >= 0 && mode_of(fd, "lazy-pages.log") == 0600);
	close(f);
	snprintf(path, sizeof(path), "%s/abs.log", dir);
	f = lzf_open_log("/nonexistent", path, why, sizeof(why));
	CHECK(f >= 0 && mode_of(fd, "abs.log") == 0600);
	close(f);
	CHECK(symlinkat("abs.log", fd, "link.log") == 0);
	CHECK(lzf_open_log(dir, "link.log", why, sizeof(why)) == -ELOOP);
	CHECK(!strcmp(why, "link.log: is a symlink"));
	rmtree(dir);
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_check_dir),
	UNIT(test_open_refuses_planted),
	UNIT(test_open_creates_0600),
	UNIT(test_tmp_and_commit),
	UNIT(test_open_log),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
