/*
 * lazy-files.h - the files of the lazy-pages work directory, created and
 * checked so that another user cannot redirect or read them: the directory
 * must be owned by the caller (or root) and writable by nobody else, every
 * file is opened relative to the directory's fd with O_NOFOLLOW and
 * O_NONBLOCK, checked with fstat (a regular file owned by us, one link),
 * mode 0600; temporaries are O_EXCL and committed by rename.
 *
 * These are the lazy-pages daemon's own copies of what src/safe-file.h
 * (branch dumpdir) offers for DIR; they are meant to be replaced by it.
 *
 * Every function returns 0 (or an fd) or -errno; on a refusal why (when
 * not NULL) holds one line, naming the file without its directory.
 */
#ifndef LZ_LAZY_FILES_H
#define LZ_LAZY_FILES_H

#include <stddef.h>
#include <sys/types.h>

/*
 * dirfd may hold files only uid (or root) can change: owned by uid or root,
 * no write bit for group or others. -EPERM otherwise, with why saying what
 * is wrong (without the directory's name: "owned by uid N, not root or
 * uid M", "writable by group or others (mode 0777)").
 */
int lzf_check_dir(int dirfd, uid_t uid, char *why, size_t len);

/* A file we own that others must not have planted: regular, owned by
 * geteuid(), one link; its mode becomes 0600. -EPERM with why otherwise. */
int lzf_check_own(int fd, const char *name, char *why, size_t len);

/* Open or create dirfd/name (O_NOFOLLOW, 0600), checked as above; flags
 * adds O_RDWR/O_WRONLY/O_APPEND. Returns the fd. */
int lzf_open(int dirfd, const char *name, int flags, char *why, size_t len);

/* Create dirfd/tmp for writing, O_EXCL (a stale one is removed first:
 * only we can write dirfd). Returns the fd. */
int lzf_create_tmp(int dirfd, const char *tmp, char *why, size_t len);

/* rename tmp to name in dirfd (a symlink at name is replaced, never
 * followed) and fsync the directory. */
int lzf_commit(int dirfd, const char *tmp, const char *name);

/*
 * The log file PATH (relative: to dir), opened for appending as lzf_open
 * does, relative to an fd of its directory. Returns the fd.
 */
int lzf_open_log(const char *dir, const char *path, char *why, size_t len);

#endif
