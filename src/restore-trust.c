/*
 * restore-trust.c - the ownership and mode checks of restore-trust.h, on
 * open directory and file descriptors (never on names that could be
 * swapped between the check and the use).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "restore-trust.h"

#define MAX_DEPTH 256 /* directories above the images directory */

void rst_trust_init(struct rst_trust *t, uid_t extra)
{
	t->nr = 0;
	t->uids[t->nr++] = 0;
	if (geteuid() != 0)
		t->uids[t->nr++] = geteuid();
	if (extra != 0 && extra != geteuid())
		t->uids[t->nr++] = extra;
}

static bool trusted(const struct rst_trust *t, uid_t uid)
{
	for (unsigned i = 0; i < t->nr; i++)
		if (t->uids[i] == uid)
			return true;
	return false;
}

static void trusted_list(const struct rst_trust *t, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < t->nr && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%u", i ? ", " : "",
					(unsigned)t->uids[i]);
}

static int owner_why(const struct rst_trust *t, const struct stat *st, const char *what,
		     char *why, size_t len)
{
	char list[64];

	if (trusted(t, st->st_uid))
		return 0;
	trusted_list(t, list, sizeof(list));
	snprintf(why, len, "%sowned by uid %u, whose images restore does not trust "
		 "(trusted uids: %s; see --trust-images-of)", what, (unsigned)st->st_uid, list);
	return -EPERM;
}

int rst_trust_file(const struct rst_trust *t, const struct stat *st, char *why, size_t len)
{
	int ret = owner_why(t, st, "", why, len);

	if (ret)
		return ret;
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, len, "writable by group or others (mode %04o): not trusted",
			 (unsigned)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

/* The path of an open directory, for messages only. */
static void fd_path(int fd, char *buf, size_t len)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, buf, len - 1);
	if (n < 0)
		snprintf(buf, len, "?");
	else
		buf[n] = '\0';
}

/*
 * Walk up from the images directory with openat("..") on the fds, so what
 * is checked is what restore opened, whatever the path said.
 */
static int check_ancestors(const struct rst_trust *t, int dirfd, const struct stat *dst,
			   char *why, size_t len)
{
	struct stat cur = *dst, up;
	int fd = dirfd, ret = -ELOOP;
	char path[512], what[600];

	snprintf(why, len, "the images directory is more than %d directories deep", MAX_DEPTH);
	for (int depth = 0; depth < MAX_DEPTH; depth++) {
		int pfd = openat(fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (pfd < 0 || fstat(pfd, &up) < 0) {
			ret = -errno;
			snprintf(why, len, "a directory above the images directory: %s",
				 strerror(errno));
			if (pfd >= 0)
				close(pfd);
			break;
		}
		if (fd != dirfd)
			close(fd);
		fd = pfd;
		if (up.st_dev == cur.st_dev && up.st_ino == cur.st_ino) {
			ret = 0; /* the root directory is its own parent */
			break;
		}
		if (trusted(t, up.st_uid) &&
		    (!(up.st_mode & (S_IWGRP | S_IWOTH)) || (up.st_mode & S_ISVTX))) {
			cur = up;
			continue;
		}
		fd_path(fd, path, sizeof(path));
		snprintf(what, sizeof(what), "%s (above the images directory): ", path);
		ret = owner_why(t, &up, what, why, len);
		if (!ret) {
			snprintf(why, len, "%swritable by group or others and not sticky (mode %04o): "
				 "another user could swap the images directory", what,
				 (unsigned)(up.st_mode & 07777));
			ret = -EPERM;
		}
		break;
	}
	if (fd != dirfd)
		close(fd);
	return ret;
}

int rst_trust_dir(const struct rst_trust *t, int dirfd, const char *dir, char *why, size_t len)
{
	char what[600];
	struct stat st;
	int ret;

	if (fstat(dirfd, &st) < 0) {
		ret = -errno;
		snprintf(why, len, "images directory %s: %s", dir, strerror(-ret));
		return ret;
	}
	snprintf(what, sizeof(what), "images directory %s: ", dir);
	ret = owner_why(t, &st, what, why, len);
	if (ret)
		return ret;
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, len, "images directory %s: writable by group or others (mode %04o): "
			 "another user could put or swap images in it", dir,
			 (unsigned)(st.st_mode & 07777));
		return -EPERM;
	}
	return check_ancestors(t, dirfd, &st, why, len);
}
