/*
 * lazy-files.c - safe creation of the lazy-pages work directory's files
 * (lock, statistics, log): see lazy-files.h for the rules.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compiler.h"
#include "lazy-files.h"

static int lzf_why(char *why, size_t len, int ret, const char *fmt, ...) __printf(4, 5);
static int lzf_why(char *why, size_t len, int ret, const char *fmt, ...)
{
	va_list ap;

	if (why) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return ret;
}

int lzf_check_dir(int dirfd, uid_t uid, char *why, size_t len)
{
	struct stat st;

	if (fstat(dirfd, &st))
		return lzf_why(why, len, -errno, "cannot stat it: %s", strerror(errno));
	if (st.st_uid != uid && st.st_uid != 0)
		return lzf_why(why, len, -EPERM, "owned by uid %u, not root or uid %u",
			       (unsigned)st.st_uid, (unsigned)uid);
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return lzf_why(why, len, -EPERM, "writable by group or others (mode %04o)",
			       (unsigned)(st.st_mode & 07777));
	return 0;
}

int lzf_check_own(int fd, const char *name, char *why, size_t len)
{
	struct stat st;

	if (fstat(fd, &st))
		return lzf_why(why, len, -errno, "%s: cannot stat it: %s", name, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return lzf_why(why, len, -EPERM, "%s: not a regular file", name);
	if (st.st_uid != geteuid())
		return lzf_why(why, len, -EPERM, "%s: owned by uid %u, not uid %u", name,
			       (unsigned)st.st_uid, (unsigned)geteuid());
	if (st.st_nlink != 1)
		return lzf_why(why, len, -EPERM, "%s: has %u hard links, want 1", name,
			       (unsigned)st.st_nlink);
	if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600))
		return lzf_why(why, len, -errno, "%s: cannot make it mode 0600: %s", name, strerror(errno));
	return 0;
}

int lzf_open(int dirfd, const char *name, int flags, char *why, size_t len)
{
	int fd = openat(dirfd, name, flags | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	int ret;

	if (fd < 0) {
		ret = -errno;
		return lzf_why(why, len, ret, "%s: %s", name,
			       ret == -ELOOP ? "is a symlink" : strerror(-ret));
	}
	ret = lzf_check_own(fd, name, why, len);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

int lzf_create_tmp(int dirfd, const char *tmp, char *why, size_t len)
{
	int fd;

	if (unlinkat(dirfd, tmp, 0) && errno != ENOENT)
		return lzf_why(why, len, -errno, "%s: cannot remove a stale one: %s", tmp, strerror(errno));
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return lzf_why(why, len, -errno, "%s: cannot create it: %s", tmp, strerror(errno));
	return fd;
}

int lzf_commit(int dirfd, const char *tmp, const char *name)
{
	if (renameat(dirfd, tmp, dirfd, name)) {
		int ret = -errno;

		unlinkat(dirfd, tmp, 0);
		return ret;
	}
	return fsync(dirfd) ? -errno : 0;
}

int lzf_open_log(const char *dir, const char *path, char *why, size_t len)
{
	char full[PATH_MAX], *slash;
	const char *base;
	int dirfd, fd;

	if (snprintf(full, sizeof(full), "%s%s%s", path[0] == '/' || !dir ? "" : dir,
		     path[0] == '/' || !dir ? "" : "/", path) >= (int)sizeof(full))
		return lzf_why(why, len, -ENAMETOOLONG, "%s: path too long", path);
	slash = strrchr(full, '/');
	if (slash) {
		*slash = '\0';
		base = slash + 1;
		dirfd = open(slash == full ? "/" : full, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	} else {
		base = full;
		dirfd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (dirfd < 0)
		return lzf_why(why, len, -errno, "%s: cannot open its directory: %s", path, strerror(errno));
	fd = lzf_open(dirfd, base, O_WRONLY | O_APPEND, why, len);
	close(dirfd);
	return fd;
}
