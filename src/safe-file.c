/*
 * safe-file.c - the directory and file rules of safe-file.h: checked
 * directories, O_EXCL temporaries renamed into place, logs that are ours.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safe-file.h"

#define TMP_TRIES 8
#define TMP_HEX 16

static int fail(char *why, int err, const char *phrase)
{
	if (why)
		snprintf(why, SF_WHY_MAX, "%s", phrase ? phrase : strerror(-err));
	return err;
}

int sf_dir_check(int dirfd, unsigned flags, char why[SF_WHY_MAX])
{
	uid_t me = geteuid();
	struct stat st;

	if (fstat(dirfd, &st) < 0)
		return fail(why, -errno, NULL);
	if (!S_ISDIR(st.st_mode))
		return fail(why, -ENOTDIR, "not a directory");
	if (st.st_uid != me && st.st_uid != 0) {
		if (why)
			snprintf(why, SF_WHY_MAX, "owned by another user (uid %u)",
				 (unsigned)st.st_uid);
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		if ((flags & SF_DIR_STICKY_OK) && (st.st_mode & S_ISVTX))
			return 0;
		if (why)
			snprintf(why, SF_WHY_MAX, "writable by %s (mode %04o)",
				 (st.st_mode & S_IWOTH) ? "others" : "its group",
				 (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int sf_dir_open_checked(int atfd, const char *path, unsigned flags, char why[SF_WHY_MAX])
{
	char buf[4096];
	size_t n = strlen(path);
	int fd, ret;

	if (n == 0)
		return fail(why, -ENOENT, NULL);
	if (n >= sizeof(buf))
		return fail(why, -ENAMETOOLONG, NULL);
	/* "link/" would make the kernel follow the link despite O_NOFOLLOW. */
	memcpy(buf, path, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	fd = openat(atfd, buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		if (ret == -ELOOP)
			return fail(why, ret, "is a symbolic link");
		if (ret == -ENOTDIR) {
			struct stat st;

			if (!fstatat(atfd, buf, &st, AT_SYMLINK_NOFOLLOW) && S_ISLNK(st.st_mode))
				return fail(why, -ELOOP, "is a symbolic link");
			return fail(why, ret, "not a directory");
		}
		return fail(why, ret, NULL);
	}
	ret = sf_dir_check(fd, flags, why);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

int sf_create_excl(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0)
		return -errno;
	/* The umask may have taken bits away, never added: 0600 exactly. */
	if (fchmod(fd, 0600) < 0) {
		int ret = -errno;

		close(fd);
		unlinkat(dirfd, name, 0);
		return ret;
	}
	return fd;
}

static int random_hex(char *out, size_t nhex)
{
	uint8_t b[TMP_HEX / 2];
	size_t got = 0;

	while (got < nhex / 2) {
		ssize_t n = getrandom(b + got, nhex / 2 - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < nhex / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	return 0;
}

int sf_create_tmp(int dirfd, const char *name, struct sf_tmp *t)
{
	char hex[TMP_HEX + 1];
	int ret = -EEXIST;

	t->fd = -1;
	t->no_dir_sync = false;
	t->no_sync = false;
	t->tmp[0] = '\0';
	if (!name[0] || strchr(name, '/') ||
	    snprintf(t->name, sizeof(t->name), "%s", name) >= (int)sizeof(t->name) ||
	    strlen(name) + TMP_HEX + 7 > SF_NAME_MAX)
		return -EINVAL;
	/*
	 * A name that exists is someone's file: never write into it, never
	 * unlink it here (sf_remove_stale_tmps cleans ours up): draw again.
	 */
	for (int i = 0; i < TMP_TRIES && ret == -EEXIST; i++) {
		ret = random_hex(hex, TMP_HEX);
		if (ret)
			break;
		snprintf(t->tmp, sizeof(t->tmp), ".%s.%s.tmp", name, hex);
		ret = sf_create_excl(dirfd, t->tmp);
	}
	if (ret < 0) {
		t->tmp[0] = '\0';
		return ret;
	}
	t->fd = ret;
	return 0;
}

int sf_fsync_dir(int dirfd)
{
	return fsync(dirfd) < 0 ? -errno : 0;
}

int sf_commit(int dirfd, struct sf_tmp *t)
{
	int ret = 0;

	if (!t->no_sync && fsync(t->fd) < 0)
		ret = -errno;
	if (close(t->fd) < 0 && !ret)
		ret = -errno;
	t->fd = -1;
	if (!ret && renameat(dirfd, t->tmp, dirfd, t->name) < 0)
		ret = -errno;
	if (ret) {
		sf_abort(dirfd, t);
		return ret;
	}
	t->tmp[0] = '\0';
	return t->no_dir_sync || t->no_sync ? 0 : sf_fsync_dir(dirfd);
}

void sf_abort(int dirfd, struct sf_tmp *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (t->tmp[0])
		unlinkat(dirfd, t->tmp, 0);
	t->tmp[0] = '\0';
}

/* ".NAME.<16 lower-case hex>.tmp" exactly. */
static bool is_tmp_of(const char *ent, const char *name)
{
	size_t n = strlen(name);

	if (ent[0] != '.' || strncmp(ent + 1, name, n) || ent[1 + n] != '.')
		return false;
	ent += 2 + n;
	for (int i = 0; i < TMP_HEX; i++)
		if (!((ent[i] >= '0' && ent[i] <= '9') || (ent[i] >= 'a' && ent[i] <= 'f')))
			return false;
	return !strcmp(ent + TMP_HEX, ".tmp");
}

int sf_remove_stale_tmps(int dirfd, const char *name)
{
	struct dirent *de;
	int fd, nr = 0;
	DIR *d;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (!is_tmp_of(de->d_name, name))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			continue;
		if (!unlinkat(dirfd, de->d_name, 0))
			nr++;
	}
	closedir(d);
	return nr;
}

int sf_open_log(int dirfd, const char *name, char why[SF_WHY_MAX])
{
	struct stat st;
	int fd, ret;

	fd = openat(dirfd, name,
		    O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		ret = -errno;
		return fail(why, ret, ret == -ELOOP ? "is a symbolic link" : NULL);
	}
	if (fstat(fd, &st) < 0) {
		ret = fail(why, -errno, NULL);
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = fail(why, -EINVAL, "not a regular file");
		goto out_close;
	}
	if (st.st_uid != geteuid()) {
		if (why)
			snprintf(why, SF_WHY_MAX, "owned by another user (uid %u)",
				 (unsigned)st.st_uid);
		ret = -EPERM;
		goto out_close;
	}
	if (st.st_nlink != 1) {
		ret = fail(why, -EPERM, "has more than one link");
		goto out_close;
	}
	if ((st.st_mode & 07777) != 0600 && fchmod(fd, 0600) < 0) {
		ret = fail(why, -errno, NULL);
		goto out_close;
	}
	/* Blocking writes from here on: a regular file never blocks anyway. */
	if (fcntl(fd, F_SETFL, O_APPEND) < 0) {
		ret = fail(why, -errno, NULL);
		goto out_close;
	}
	return fd;

out_close:
	close(fd);
	return ret;
}

const char *sf_split(const char *path, char *dir, unsigned dirlen)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (!slash) {
		if (dirlen < 2)
			return NULL;
		snprintf(dir, dirlen, ".");
		return path[0] ? path : NULL;
	}
	if (!slash[1])
		return NULL;
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= dirlen)
		return NULL;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return slash + 1;
}
