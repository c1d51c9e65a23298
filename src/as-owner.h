/*
 * as-owner.h - act as a process of the tree while restore opens or creates
 * something for it.
 *
 * Restore runs as root, but what it opens and creates for a process must
 * be what that process could open and create itself: no file it could not
 * open (a symlink planted in the dumped path, a root-only file put in its
 * place), no socket that tells its peer "uid 0" (SO_PEERCRED) or that
 * policy routing takes for root's (sk_uid), no SysV segment of creator
 * root. So the open or the creation runs in a credential context equal to
 * the owner's dumped credentials (core-<pid>.img creds_entry, the leader
 * thread's):
 *
 *   supplementary groups, egid, fsgid, euid, fsuid as dumped; the real
 *   and saved uid and gid stay lazarus's (0), so that it can come back;
 *   the effective capability set is the owner's effective set (never more
 *   than lazarus's permitted set): an owner of uid 0 without
 *   CAP_DAC_OVERRIDE cannot open what it could not read either.
 *
 * Only the calling thread changes (raw syscalls, not glibc's set*id that
 * change every thread); lazarus is single-threaded where the store is
 * opened, and a restored process when it maps its files. Leaving puts
 * everything back (and the dumpable flag, which a uid change clears);
 * when it cannot, the restore fails (WHY says so). When the owner's
 * credentials are exactly the ones in force (a root owner with all of
 * lazarus's capabilities), nothing is switched: the open runs under the
 * same credentials either way (ao->in stays false).
 *
 * THE OWNER of an open file description shared by several processes is the
 * first process of the tree, in pstree order (parents before children),
 * that has an fd of it: the parent that opened it before a fork, not a
 * child that inherited it. A description no process holds an fd of (only
 * reachable through an epoll set, say) belongs to the root of the tree.
 * Zombies hold nothing.
 *
 * Files (as_owner_open): the files of fds, mapped files, the executable,
 * the working and root directory (restore-task.c: "DIR/." so that the
 * owner must be allowed to search DIR itself), and a process's own /proc
 * files (fd-reg.c, in the process, under its restored pid). Memfds are
 * created as the owner of their object (restore-shmem.c). Opened as the
 * owner, with no symlink anywhere in
 * the path (the dumped path comes from /proc/PID/fd and has none), except
 * the last component of an O_PATH|O_NOFOLLOW fd, which names a link
 * itself. When the owner is refused (EACCES/EPERM: a daemon that opened
 * its log as root and dropped privileges since), the file is opened as
 * lazarus, with the same no-symlink rule, and kept only if it is the
 * dumped inode (st_dev and st_ino): the process had exactly that file
 * open, nothing is gained. Anything else is refused.
 *
 * Functions return 0 (or an fd) or -errno and do not log; WHY gets one
 * phrase for the caller's line.
 */
#ifndef LZ_AS_OWNER_H
#define LZ_AS_OWNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "restore-images.h"

/* lazarus's own credentials while it acts as someone else. */
struct as_owner {
	bool in;		     /* entered, not left yet */
	uid_t ruid, euid, suid, fsuid;
	gid_t rgid, egid, sgid, fsgid;
	gid_t *groups;		     /* lazarus's supplementary groups (malloc'd) */
	int nr_groups;
	uint32_t cap_eff[2], cap_prm[2], cap_inh[2];
	int dumpable;		     /* PR_GET_DUMPABLE: a uid change clears it */
};

/* The owner of file description ID (rule above); NULL for an empty tree. */
const struct rst_task *as_owner_of_file(const struct rst_images *im, uint32_t id);

/* Act as T (its leader's dumped credentials). NULL T: nothing changes. */
int as_owner_enter(struct as_owner *ao, const struct rst_task *t, char *why, size_t len);
/* Act as a process of exactly these credentials (C): SysV creators, say. */
int as_owner_enter_creds(struct as_owner *ao, const CredsEntry *c, char *why, size_t len);
/*
 * Back to lazarus's credentials. Returns RET when that worked (WHY
 * untouched), else -errno with WHY saying so: the caller fails the restore.
 * A no-op when not entered.
 */
int as_owner_leave(struct as_owner *ao, int ret, char *why, size_t len);

/*
 * The file a process had open, as dumped: what a file opened as lazarus
 * must be. The birth time, where the file system keeps one, tells a new
 * file from the old one when the inode number was reused (ext4 does).
 */
struct as_owner_file {
	bool has_ino;	   /* false: nothing known, a refusal of the owner stands */
	uint64_t dev, ino; /* st_dev, st_ino */
	bool has_btime;
	uint64_t btime_ns; /* statx stx_btime */
};

/*
 * open(PATH, FLAGS | O_CLOEXEC) for T, by the rule above; WAS: the dumped
 * file. Returns the fd or -errno, WHY holds "PATH: why".
 */
int as_owner_open(const struct rst_task *t, const char *path, int flags,
		  const struct as_owner_file *was, char *why, size_t len);

/*
 * as_owner_open that cannot block on a FIFO or a device (O_NONBLOCK while
 * opening, then FLAGS' own), refusing a file not of type WANT (-EINVAL).
 */
int as_owner_open_typed(const struct rst_task *t, const char *path, int flags, mode_t want,
			const struct as_owner_file *was, char *why, size_t len);

/* The birth time of FD (statx): false when the file system keeps none. */
bool as_owner_btime(int dirfd, const char *path, uint64_t *ns);

/*
 * open of PATH with no symlink in it (the last component of an O_NOFOLLOW
 * open excepted), with lazarus's own credentials: -ELOOP for a symlink.
 */
int as_owner_open_nolinks(const char *path, int flags);

/*
 * An unlinked regular file of MODE in directory DIR (no symlink in its
 * path), with the credentials in force; EXCL: it can never be linked into
 * the file system (O_TMPFILE|O_EXCL). The fd, O_RDWR, or -errno.
 */
int as_owner_tmpfile(const char *dir, mode_t mode, bool excl);

/*
 * socket() as T: its inode (sk_uid, `ss -e`'s uid) is T's fsuid, its file
 * T's credentials. Refused to T (EPERM/EACCES: a kind that needs a
 * capability T dropped since it made one), as lazarus. The fd or -errno,
 * WHY "socket: why".
 */
int as_owner_socket(const struct rst_task *t, int family, int type, int protocol, char *why,
		    size_t len);

#endif
