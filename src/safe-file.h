/*
 * safe-file.h - create files only in directories nobody else can write to.
 *
 * Every file Lazarus writes (images, temporaries, stats, logs, the daemon's
 * socket and lock) goes through here, so the rules live in one place:
 *
 *  DIRECTORY RULE (sf_dir_open_checked, sf_dir_check). A directory we write
 *  in is acceptable when
 *   - its last path component is not a symbolic link (opened with
 *     O_DIRECTORY|O_NOFOLLOW; trailing slashes are stripped first so that
 *     "link/" is refused too; earlier components are resolved as given);
 *   - it is owned by the caller's effective uid or by root (uid 0);
 *   - it is not writable by group or others. The sticky bit does not make
 *     such a directory acceptable (so /tmp itself is refused), except with
 *     SF_DIR_STICKY_OK, used only for the directory of a log file named by
 *     an absolute -o path: there a file is opened without O_EXCL and then
 *     checked (see sf_open_log), which a sticky directory cannot subvert.
 *  Once checked, the directory is only used through the returned fd: a
 *  rename or swap of the path afterwards changes nothing.
 *
 *  FILE RULE. Files are created relative to a checked directory fd, with
 *  O_NOFOLLOW, O_CLOEXEC and mode 0600 (stats and logs too: they hold
 *  addresses). A file that replaces another is written under a fresh random
 *  temporary name created with O_EXCL (".NAME.<16 hex>.tmp") and renamed
 *  over NAME once complete and fsynced: a planted symlink or file at NAME
 *  or at a temporary name is never written through, at most replaced.
 *
 * Functions return 0 (or an fd) or -errno and do not log. Those taking WHY
 * fill it with a short phrase for the caller's one-line error
 * ("<what> <path>: <why>"), also for plain errno failures.
 */
#ifndef LZ_SAFE_FILE_H
#define LZ_SAFE_FILE_H

#include <stdbool.h>

#define SF_WHY_MAX 128
#define SF_NAME_MAX 255

#define SF_DIR_STICKY_OK 0x1U /* accept a sticky, world-writable directory (log dirs only) */

/*
 * Open directory PATH (relative to ATFD, AT_FDCWD for the cwd) and check it
 * against the directory rule. Returns an O_DIRECTORY|O_CLOEXEC fd or -errno:
 * -ELOOP for a symlink, -ENOTDIR, -EPERM when the rule refuses it.
 */
int sf_dir_open_checked(int atfd, const char *path, unsigned flags, char why[SF_WHY_MAX]);
/* The directory rule on an fd already open. */
int sf_dir_check(int dirfd, unsigned flags, char why[SF_WHY_MAX]);

/* Create DIRFD/NAME new: O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600. */
int sf_create_excl(int dirfd, const char *name);

/* A file being written under a temporary name, to replace NAME when done. */
struct sf_tmp {
	int fd;			    /* open for writing; -1 when closed */
	bool no_dir_sync;	    /* set before sf_commit when the caller fsyncs the
				       directory itself, once for many files */
	bool no_sync;		    /* set before sf_commit for figures, not data: no
				       fsync at all (after a crash NAME may be the old
				       file, none, or empty; never another file) */
	char name[SF_NAME_MAX + 1]; /* the final name */
	char tmp[SF_NAME_MAX + 1];  /* ".NAME.<16 hex>.tmp", created with O_EXCL */
};

/*
 * Create a fresh temporary file for NAME in DIRFD. A name that exists is
 * never reused (someone else's file, or a stale one): another random name
 * is drawn, a few times.
 */
int sf_create_tmp(int dirfd, const char *name, struct sf_tmp *t);
/*
 * fsync the temporary (unless t->no_sync), close it, rename it over NAME
 * and (unless t->no_dir_sync or t->no_sync) fsync the directory. On failure the temporary is removed
 * (as by sf_abort).
 */
int sf_commit(int dirfd, struct sf_tmp *t);
/* Close and remove the temporary; safe on a closed or never-opened one. */
void sf_abort(int dirfd, struct sf_tmp *t);
/*
 * Remove leftovers ".NAME.<16 hex>.tmp" of an earlier, crashed run in
 * DIRFD: only entries of exactly that pattern, owned by us, not
 * directories (a symlink is removed, never followed). Returns how many.
 */
int sf_remove_stale_tmps(int dirfd, const char *name);

/*
 * Open DIRFD/NAME for appending (a log): created 0600 if missing; an
 * existing one must be a regular file owned by us with one link, and is
 * chmod'ed to 0600. Never follows a symlink. Returns an fd or -errno.
 */
int sf_open_log(int dirfd, const char *name, char why[SF_WHY_MAX]);

/* fsync a directory (after creating, renaming or removing entries in it). */
int sf_fsync_dir(int dirfd);

/*
 * Split PATH into its directory (into DIR, "." when there is none) and its
 * last component (returned, pointing into PATH). NULL for a PATH that ends
 * in '/' or is too long.
 */
const char *sf_split(const char *path, char *dir, unsigned dirlen);

#endif
