/*
 * test_safe_file.c - the directory and file rules of safe-file.h: which
 * directories are refused and why, temporaries that never reuse or follow
 * what is there, commits that replace a planted symlink instead of
 * writing through it, logs that must be ours, and the stale-temporary sweep
 * that removes exactly our pattern. Needs root (chown to another uid).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "unit.h"
#include "safe-file.h"

#define NOBODY 65534

static char top[] = "/tmp/lz-unit-sf-XXXXXX"; /* removed by main() */

/* A fresh directory of the case's own under top, opened. */
static int setup(void)
{
	char base[64];

	umask(0);
	snprintf(base, sizeof(base), "%s/cXXXXXX", top);
	return mkdtemp(base) ? open(base, O_RDONLY | O_DIRECTORY) : -1;
}

static int mode_of(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) ? -1 : (int)(st.st_mode & 07777);
}

static const struct {
	mode_t mode;
	uid_t uid;
	unsigned flags;
	int ret;
	const char *why; /* start of the reason */
} dir_cases[] = {
	{ 0700, 0, 0, 0, NULL },
	{ 0755, 0, 0, 0, NULL },
	{ 0700, NOBODY, 0, -EPERM, "owned by another user (uid 65534)" },
	{ 0775, 0, 0, -EPERM, "writable by its group (mode 0775)" },
	{ 0757, 0, 0, -EPERM, "writable by others (mode 0757)" },
	{ 0777, 0, 0, -EPERM, "writable by others (mode 0777)" },
	{ 01777, 0, 0, -EPERM, "writable by others (mode 1777)" },
	{ 01777, 0, SF_DIR_STICKY_OK, 0, NULL },
	{ 0777, 0, SF_DIR_STICKY_OK, -EPERM, "writable by others (mode 0777)" },
};

static int test_dir_rule(void)
{
	char why[SF_WHY_MAX], name[32];
	int dfd = setup();

	CHECK(dfd >= 0);
	for (size_t i = 0; i < sizeof(dir_cases) / sizeof(dir_cases[0]); i++) {
		int fd;

		snprintf(name, sizeof(name), "d%zu", i);
		CHECK(!mkdirat(dfd, name, dir_cases[i].mode));
		CHECK(!fchmodat(dfd, name, dir_cases[i].mode, 0));
		CHECK(!fchownat(dfd, name, dir_cases[i].uid, 0, 0));
		why[0] = '\0';
		fd = sf_dir_open_checked(dfd, name, dir_cases[i].flags, why);
		if (dir_cases[i].ret) {
			CHECK(fd == dir_cases[i].ret);
			CHECK(!strcmp(why, dir_cases[i].why));
		} else {
			CHECK(fd >= 0);
			close(fd);
		}
	}
	return 0;
}

/* The last component a symlink: refused, also written "link/"; a file is not a directory. */
static int test_dir_symlink_refused(void)
{
	char why[SF_WHY_MAX];
	int dfd = setup();

	CHECK(dfd >= 0);
	CHECK(!mkdirat(dfd, "real", 0700));
	CHECK(!symlinkat("real", dfd, "link"));
	CHECK(sf_dir_open_checked(dfd, "link", 0, why) == -ELOOP);
	CHECK(!strcmp(why, "is a symbolic link"));
	CHECK(sf_dir_open_checked(dfd, "link/", 0, why) == -ELOOP);
	CHECK(sf_dir_open_checked(dfd, "link//", 0, why) == -ELOOP);
	CHECK(close(openat(dfd, "file", O_CREAT | O_WRONLY, 0600)) == 0);
	CHECK(sf_dir_open_checked(dfd, "file", 0, why) == -ENOTDIR);
	CHECK(sf_dir_open_checked(dfd, "missing", 0, why) == -ENOENT);
	/* A symlink in the middle of the path is the caller's: resolved. */
	CHECK(!mkdirat(dfd, "real/sub", 0700));
	int fd = sf_dir_open_checked(dfd, "link/sub", 0, why);
	CHECK(fd >= 0);
	close(fd);
	return 0;
}

/*
 * A temporary is new and 0600 even with umask 0; the commit replaces a
 * symlink planted at NAME, leaving its target alone.
 */
static int test_tmp_commit_replaces_symlink(void)
{
	struct sf_tmp t;
	char buf[16] = { 0 };
	int dfd = setup(), fd;

	CHECK(dfd >= 0);
	fd = openat(dfd, "victim", O_CREAT | O_WRONLY, 0644);
	CHECK(fd >= 0 && write(fd, "victim", 6) == 6 && !close(fd));
	CHECK(!symlinkat("victim", dfd, "stats.json"));
	CHECK(!sf_create_tmp(dfd, "stats.json", &t));
	CHECK(strlen(t.tmp) == strlen(".stats.json..tmp") + 16);
	CHECK(!strncmp(t.tmp, ".stats.json.", 12));
	CHECK(mode_of(dfd, t.tmp) == 0600);
	CHECK(write(t.fd, "new", 3) == 3);
	CHECK(!sf_commit(dfd, &t));
	CHECK(t.fd == -1 && !t.tmp[0]);
	CHECK(mode_of(dfd, "stats.json") == 0600);
	fd = openat(dfd, "victim", O_RDONLY);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 6 && !strcmp(buf, "victim"));
	close(fd);
	sf_abort(dfd, &t); /* a no-op after a commit */
	CHECK(mode_of(dfd, "stats.json") == 0600);
	/* A no-sync commit (figures) replaces it the same way. */
	CHECK(!sf_create_tmp(dfd, "stats.json", &t) && !t.no_sync);
	t.no_sync = true;
	CHECK(write(t.fd, "newer", 5) == 5);
	CHECK(!sf_commit(dfd, &t));
	CHECK(t.fd == -1 && !t.tmp[0]);
	memset(buf, 0, sizeof(buf));
	fd = openat(dfd, "stats.json", O_RDONLY | O_NOFOLLOW);
	CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 5 && !strcmp(buf, "newer"));
	close(fd);
	return 0;
}

static int test_tmp_abort_removes(void)
{
	struct sf_tmp t;
	char tmp[SF_NAME_MAX + 1];
	int dfd = setup();

	CHECK(dfd >= 0);
	CHECK(!sf_create_tmp(dfd, "x.img", &t));
	snprintf(tmp, sizeof(tmp), "%s", t.tmp);
	sf_abort(dfd, &t);
	CHECK(mode_of(dfd, tmp) == -1 && errno == ENOENT);
	CHECK(mode_of(dfd, "x.img") == -1);
	CHECK(sf_create_tmp(dfd, "a/b", &t) == -EINVAL);
	CHECK(sf_create_tmp(dfd, "", &t) == -EINVAL);
	return 0;
}

static int test_create_excl(void)
{
	int dfd = setup(), fd;

	CHECK(dfd >= 0);
	CHECK(!symlinkat("/etc/passwd", dfd, "link"));
	CHECK(sf_create_excl(dfd, "link") == -EEXIST);
	fd = sf_create_excl(dfd, "new");
	CHECK(fd >= 0);
	close(fd);
	CHECK(mode_of(dfd, "new") == 0600);
	CHECK(sf_create_excl(dfd, "new") == -EEXIST);
	return 0;
}

/* Exactly ".NAME.<16 hex>.tmp", not directories, symlinks removed themselves. */
static int test_remove_stale_tmps(void)
{
	static const char *const gone[] = {
		".s.json.0123456789abcdef.tmp",
		".s.json.ffffffffffffffff.tmp",
	};
	static const char *const kept[] = {
		".s.json.tmp", ".s.json.0123456789ABCDEF.tmp", ".s.json.0123456789abcde.tmp",
		".s.json.0123456789abcdef.tmpx", ".t.json.0123456789abcdef.tmp", "s.json",
	};
	int dfd = setup();

	CHECK(dfd >= 0);
	CHECK(close(openat(dfd, "victim", O_CREAT | O_WRONLY, 0600)) == 0);
	CHECK(close(openat(dfd, gone[0], O_CREAT | O_WRONLY, 0600)) == 0);
	CHECK(!symlinkat("victim", dfd, gone[1]));
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		CHECK(close(openat(dfd, kept[i], O_CREAT | O_WRONLY, 0600)) == 0);
	CHECK(!mkdirat(dfd, ".s.json.aaaaaaaaaaaaaaaa.tmp", 0700));
	CHECK(sf_remove_stale_tmps(dfd, "s.json") == 2);
	for (size_t i = 0; i < 2; i++)
		CHECK(mode_of(dfd, gone[i]) == -1);
	for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		CHECK(mode_of(dfd, kept[i]) == 0600);
	CHECK(mode_of(dfd, ".s.json.aaaaaaaaaaaaaaaa.tmp") == 0700);
	CHECK(mode_of(dfd, "victim") == 0600);
	return 0;
}

static int test_open_log(void)
{
	char why[SF_WHY_MAX];
	int dfd = setup(), fd;

	CHECK(dfd >= 0);
	fd = sf_open_log(dfd, "new.log", why);
	CHECK(fd >= 0);
	close(fd);
	CHECK(mode_of(dfd, "new.log") == 0600);
	/* Ours but 0644: appended to and made 0600. */
	CHECK(close(openat(dfd, "old.log", O_CREAT | O_WRONLY, 0644)) == 0);
	fd = sf_open_log(dfd, "old.log", why);
	CHECK(fd >= 0 && (fcntl(fd, F_GETFL) & O_APPEND));
	close(fd);
	CHECK(mode_of(dfd, "old.log") == 0600);
	CHECK(!symlinkat("old.log", dfd, "link.log"));
	CHECK(sf_open_log(dfd, "link.log", why) == -ELOOP && !strcmp(why, "is a symbolic link"));
	CHECK(!linkat(dfd, "old.log", dfd, "hard.log", 0));
	CHECK(sf_open_log(dfd, "hard.log", why) == -EPERM &&
	      !strcmp(why, "has more than one link"));
	CHECK(close(openat(dfd, "theirs.log", O_CREAT | O_WRONLY, 0666)) == 0);
	CHECK(!fchownat(dfd, "theirs.log", NOBODY, NOBODY, 0));
	CHECK(sf_open_log(dfd, "theirs.log", why) == -EPERM &&
	      !strcmp(why, "owned by another user (uid 65534)"));
	CHECK(mode_of(dfd, "theirs.log") == 0666);
	/* A FIFO: refused at once, no reader awaited. */
	CHECK(!mkfifoat(dfd, "fifo.log", 0600));
	CHECK(sf_open_log(dfd, "fifo.log", why) < 0);
	CHECK(!mkdirat(dfd, "dir.log", 0700));
	CHECK(sf_open_log(dfd, "dir.log", why) < 0);
	return 0;
}

static const struct {
	const char *path, *dir, *base; /* base NULL: refused */
} split_cases[] = {
	{ "x.log", ".", "x.log" },
	{ "/x.log", "/", "x.log" },
	{ "/a/b/x.log", "/a/b", "x.log" },
	{ "a/x.log", "a", "x.log" },
	{ "a/", NULL, NULL },
	{ "", NULL, NULL },
};

static int test_split(void)
{
	char dir[64];

	for (size_t i = 0; i < sizeof(split_cases) / sizeof(split_cases[0]); i++) {
		const char *b = sf_split(split_cases[i].path, dir, sizeof(dir));

		if (!split_cases[i].base) {
			CHECK(!b);
			continue;
		}
		CHECK(b && !strcmp(b, split_cases[i].base));
		CHECK(!strcmp(dir, split_cases[i].dir));
	}
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_dir_rule),
	UNIT(test_dir_symlink_refused),
	UNIT(test_tmp_commit_replaces_symlink),
	UNIT(test_tmp_abort_removes),
	UNIT(test_create_excl),
	UNIT(test_remove_stale_tmps),
	UNIT(test_open_log),
	UNIT(test_split),
	{ 0 },
};

int main(int argc, char **argv)
{
	char cmd[64];
	int ret;

	if (!mkdtemp(top)) {
		perror(top);
		return 1;
	}
	ret = unit_main(argc, argv, cases);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	if (system(cmd))
		ret = 1;
	return ret;
}
