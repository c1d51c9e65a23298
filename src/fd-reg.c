/*
 * fd-reg.c - regular files, directories and O_PATH fds, reopened by path.
 *
 * The path is the one /proc/PID/fd/N names at dump time; restore opens it
 * again with the dumped status flags (minus the ones that only act at
 * creation) and seeks to the dumped offset. A FIFO or device put in the
 * file's place is refused before it is opened (check), and opening is done
 * with O_NONBLOCK so that nothing can block on a peer anyway. An O_PATH fd
 * opens nothing: any file type is taken, it is only checked to be the same.
 *
 * A deleted regular file (unlinked, still open) has its content saved in
 * fddata-<id>.img; restore creates an unlinked file again (O_TMPFILE in the
 * same directory) with that content, owner and mode, and opens it with the
 * dumped flags through /proc/self/fd. Several descriptions of one deleted
 * file stay one file. Deleted directories and O_PATH fds of deleted files
 * are refused ("deleted file"), and so are memfds ("memfd": their kind).
 *
 * A file that changed between dump and restore (check):
 *  - missing, or another file type: refused;
 *  - a regular file of another size, open for reading: refused, the
 *    content the process saw is gone (put the file back as it was);
 *  - another size, open write-only: a warning (a log or stdout that grew
 *    since, with a later run restored from the same images), unless it
 *    is now shorter than the offset a non-O_APPEND writer goes on from
 *    (refused: it would write after a hole);
 *  - the same size but another inode (replaced) or another mtime
 *    (written in place): a warning, the restore goes on.
 *
 * A file of the holder's own /proc/<pid>/ (or /proc/<pid>/task/<pid>/:
 * /proc/self and /proc/thread-self come as numbers) is kept relative to it
 * (proc_self, proc_rest) and opened by the restored process itself under
 * its pid, not by the dumped path: that names another process, or none,
 * once pids differ (--pidns, a pid taken). A descendant that inherited the
 * fd opens its own description under that ancestor's restored pid. Another
 * process's or thread's /proc file is refused at dump (reg_dump_proc,
 * dump-files.c).
 *
 * Privilege (as-owner.h): a file is opened as the process that owns the
 * description, with no symlink anywhere in its path (check refuses one
 * before anything is opened); refused to the owner, it is opened as
 * lazarus only if it is the dumped inode. A deleted file is made again as
 * the owner in its directory; refused to the owner (it made it as root in
 * a directory it cannot write to any more), as lazarus with O_EXCL (never
 * to be linked anywhere) on the dumped file system only.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

/* Dump and restore both: each message says which. */
#include "log.h"
#include "as-owner.h"
#include "fd-kind.h"
#include "restore-fds.h"
#include "restore-verify.h"
#include "proc.h"

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

#define DELETED " (deleted)"

/* Unlinked: the link says so and no name is left (a file may be called "x (deleted)"). */
static bool is_deleted(const struct fd_probe *p)
{
	return ends_with(p->link, DELETED) && p->st.st_nlink == 0;
}

static bool reg_match(const struct fd_probe *p)
{
	if (p->link[0] != '/' || !strncmp(p->link, "/memfd:", 7))
		return false;
	if (is_deleted(p))
		return S_ISREG(p->st.st_mode) && !(p->flags & O_PATH);
	if (p->flags & O_PATH)
		return true;
	return S_ISREG(p->st.st_mode) || S_ISDIR(p->st.st_mode);
}

/* The content of a deleted file into fddata-<id>.img; owner and mode with it. */
static int reg_dump_deleted(struct fd_probe *p, FileEntry *e, RegFileEntry *r,
			    struct dump_imgs *imgs)
{
	int fd, ret;

	r->path[strlen(r->path) - strlen(DELETED)] = '\0';
	r->has_deleted = r->deleted = true;
	r->has_uid = r->has_gid = true;
	r->uid = p->st.st_uid;
	r->gid = p->st.st_gid;
	if (r->size > FD_DATA_MAX) {
		pr_err("dump: process %d fd %d: deleted file %s of %" PRIu64 " bytes: more than the "
		       "images keep (%llu MiB): not supported", p->pid, p->fd, r->path, r->size,
		       FD_DATA_MAX >> 20);
		return -EOPNOTSUPP;
	}
	fd = fd_probe_getfd(p);
	if (fd < 0)
		return fd;
	ret = fd_data_dump(imgs, e->id, fd, r->size);
	if (ret)
		pr_err("dump: process %d fd %d: saving the content of deleted file %s: %s", p->pid,
		       p->fd, r->path, strerror(-ret));
	return ret;
}

/* Is N one of PID's numbers (the NSpid line: host pid to innermost)? */
static bool is_own_pid(pid_t pid, unsigned long n)
{
	char *status, *l;
	bool own = false;

	if (n == (unsigned long)pid)
		return true;
	if (proc_read(pid, "status", &status, NULL))
		return false;
	l = strstr(status, "\nNSpid:");
	for (char *q = l ? l + 7 : NULL; q && *q && *q != '\n';) {
		char *end;
		unsigned long v = strtoul(q, &end, 10);

		if (end == q)
			break;
		own |= v == n;
		q = end;
	}
	free(status);
	return own;
}

/*
 * An fd on a procfs file under /proc/<N>/: what it describes is process N,
 * and the path names another process (or none) when the tree comes back
 * with other pids, or the outside pids of --pidns. Kept relative to the
 * holder when N is the holder itself (or N/task/N, its main thread); any
 * other process or thread is refused by name (a descendant that inherited
 * the description: dump-files.c, fine). The kernel gives /proc/self
 * and /proc/thread-self paths as numbers already.
 */
static int reg_dump_proc(struct fd_probe *p, RegFileEntry *r)
{
	const char *s = p->link + 6, *rest;
	char proc[64], *end;
	unsigned long n, tid;
	struct statfs sfs;

	if (strncmp(p->link, "/proc/", 6) || *s < '1' || *s > '9')
		return 0;
	n = strtoul(s, &end, 10);
	if (*end != '/' && *end != '\0')
		return 0;
	snprintf(proc, sizeof(proc), "/proc/%d/fd/%d", p->pid, p->fd);
	if (statfs(proc, &sfs) || sfs.f_type != PROC_SUPER_MAGIC)
		return 0;
	rest = *end ? end + 1 : end;
	if (!is_own_pid(p->pid, n)) {
		pr_err("dump: process %d fd %d: %s: a /proc file of process %lu, not its own: "
		       "cannot be restored faithfully: refused", p->pid, p->fd, p->link, n);
		return -EOPNOTSUPP;
	}
	if (!strncmp(rest, "task/", 5) && rest[5] >= '1' && rest[5] <= '9') {
		tid = strtoul(rest + 5, &end, 10);
		if (*end != '/' && *end != '\0')
			return 0;
		if (tid != n) {
			pr_err("dump: process %d fd %d: %s: a /proc file of its thread %lu, not its "
			       "main thread: not supported yet", p->pid, p->fd, p->link, tid);
			return -EOPNOTSUPP;
		}
		r->has_proc_task = r->proc_task = true;
		rest = *end ? end + 1 : end;
	}
	r->has_proc_self = r->proc_self = true;
	r->proc_rest = strdup(rest);
	return r->proc_rest ? 0 : -ENOMEM;
}

static int reg_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	RegFileEntry *r = malloc(sizeof(*r));
	char proc[64];

	if (!r)
		return -ENOMEM;
	reg_file_entry__init(r);
	e->reg = r;
	r->path = strdup(p->link);
	if (!r->path)
		return -ENOMEM;
	r->pos = p->pos;
	r->mode = p->st.st_mode;
	if (S_ISREG(p->st.st_mode)) {
		r->has_size = r->has_mtime_ns = true;
		r->size = (uint64_t)p->st.st_size;
		r->mtime_ns = (uint64_t)p->st.st_mtim.tv_sec * 1000000000ULL +
			      (uint64_t)p->st.st_mtim.tv_nsec;
	}
	r->has_dev = r->has_ino = true;
	r->dev = (uint64_t)p->st.st_dev;
	r->ino = (uint64_t)p->st.st_ino;
	/* Restore tells a reused inode number from the file by it (as-owner.h). */
	snprintf(proc, sizeof(proc), "/proc/%d/fd/%d", p->pid, p->fd);
	r->has_btime_ns = as_owner_btime(AT_FDCWD, proc, &r->btime_ns);
	if (is_deleted(p))
		return reg_dump_deleted(p, e, r, imgs);
	return reg_dump_proc(p, r);
}

static int reg_verify(const FileEntry *e, char *why, size_t len)
{
	const RegFileEntry *r = e->reg;

	if (!r) {
		snprintf(why, len, "regular file without its reg entry");
		return -EBADMSG;
	}
	if (!r->path || r->path[0] != '/') {
		snprintf(why, len, "has no absolute path");
		return -EBADMSG;
	}
	if (r->deleted && (!S_ISREG(r->mode) || !r->has_size || (e->flags & O_PATH) ||
			   !r->has_uid || !r->has_gid || r->size > FD_DATA_MAX)) {
		snprintf(why, len, "deleted file %s without a regular file's fields", r->path);
		return -EBADMSG;
	}
	if (r->proc_self && (!r->proc_rest || r->proc_rest[0] == '/' || r->deleted ||
			     !strncmp(r->proc_rest, "..", 2) || strstr(r->proc_rest, "/.."))) {
		snprintf(why, len, "%s: a /proc file without a plain path in /proc/<pid>", r->path);
		return -EBADMSG;
	}
	if (!(e->flags & O_PATH) && !S_ISREG(r->mode) && !S_ISDIR(r->mode)) {
		snprintf(why, len, "%s is a %s, not a regular file or directory", r->path,
			 rst_file_type_name((mode_t)r->mode));
		return -EBADMSG;
	}
	return 0;
}

/* The rule of the header comment. */
static int reg_changed(const FileEntry *e, const struct stat *st, char *why, size_t len)
{
	const RegFileEntry *r = e->reg;
	uint64_t size = (uint64_t)st->st_size, mtime = (uint64_t)st->st_mtim.tv_sec * 1000000000ULL +
						  (uint64_t)st->st_mtim.tv_nsec;
	bool wronly = (e->flags & O_ACCMODE) == O_WRONLY, append = e->flags & O_APPEND;

	if (!S_ISREG(r->mode) || (e->flags & O_PATH) || !r->has_size) {
		rst_warn_changed(r->path, st, r->has_ino, r->ino, false, 0);
		return 0;
	}
	if (r->size != size && (!wronly || (!append && size < r->pos))) {
		snprintf(why, len, "%s: changed size since the dump (%" PRIu64 " bytes, now %" PRIu64
			 "): put it back as it was", r->path, r->size, size);
		return -ESTALE;
	}
	if (r->size != size) {
		pr_warn("restore: %s changed size since the dump (%" PRIu64 " bytes, now %" PRIu64
			"); the process only writes it, %s", r->path, r->size, size,
			append ? "at its end" : "from where it was");
		return 0;
	}
	rst_warn_changed(r->path, st, r->has_ino, r->ino, false, 0);
	if ((!r->has_ino || r->ino == (uint64_t)st->st_ino) && r->has_mtime_ns && r->mtime_ns != mtime)
		pr_warn("restore: %s was written since the dump (same size, another mtime)", r->path);
	return 0;
}

/* The file is still there, of the dumped type, not changed (reg_changed). */
static int reg_check(const FileEntry *e, char *why, size_t len)
{
	const RegFileEntry *r = e->reg;
	struct stat st;
	int fd, ret;

	if (r->deleted || r->proc_self)
		return 0; /* comes from the images; opened by its process (reg_open_proc_self) */
	/*
	 * No symlink in the path: the dumped one (from /proc/PID/fd) had none.
	 * O_PATH|O_NOFOLLOW: a symlink as last component is looked at itself,
	 * the file type check below refuses it unless it was dumped as one.
	 */
	fd = as_owner_open_nolinks(r->path, O_PATH | O_NOFOLLOW);
	if (fd < 0) {
		snprintf(why, len, "%s: %s", r->path,
			 fd == -ELOOP ? "a symbolic link in its path (the dumped path had none): refused"
				      : strerror(-fd));
		return fd;
	}
	ret = fstat(fd, &st) ? -errno : 0;
	close(fd);
	if (ret) {
		snprintf(why, len, "%s: %s", r->path, strerror(-ret));
		return ret;
	}
	if ((st.st_mode & S_IFMT) != (r->mode & S_IFMT)) {
		snprintf(why, len, "%s: a %s, dumped as a %s", r->path,
			 rst_file_type_name(st.st_mode), rst_file_type_name((mode_t)r->mode));
		return -EINVAL;
	}
	return reg_changed(e, &st, why, len);
}

/* An earlier description of the same deleted file, already in the store: -1 if none. */
static int deleted_twin(const FileEntry *e, const struct rst_images *im,
			const struct rst_fstore *st)
{
	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *o = im->files[i];
		int fd;

		if (o == e || o->kind != e->kind || !o->reg || !o->reg->deleted ||
		    o->reg->dev != e->reg->dev || o->reg->ino != e->reg->ino)
			continue;
		fd = rst_fstore_get(st, o->id);
		if (fd >= 0)
			return fd;
	}
	return -1;
}

/* dirname of PATH into BUF. */
static void dir_of(const char *path, char *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash && slash != path ? (size_t)(slash - path) : 1;

	snprintf(buf, len, "%.*s", (int)n, path);
}

/*
 * The unlinked file a deleted one is made again as: created as OWNER in
 * its directory; refused to the owner, as lazarus with O_EXCL and only on
 * the file system it was on (as-owner.h, the header comment).
 */
static int make_tmpfile(const RegFileEntry *r, const struct rst_task *owner, char *why,
			size_t len)
{
	struct as_owner ao;
	char dir[PATH_MAX];
	struct stat st;
	int tmp, ret;

	dir_of(r->path, dir, sizeof(dir));
	ret = as_owner_enter(&ao, owner, why, len);
	if (ret)
		return ret;
	tmp = as_owner_tmpfile(dir, (mode_t)(r->mode & 07777), false);
	ret = as_owner_leave(&ao, 0, why, len);
	if (ret) {
		if (tmp >= 0)
			close(tmp);
		return ret;
	}
	if (tmp == -EACCES || tmp == -EPERM) {
		tmp = as_owner_tmpfile(dir, (mode_t)(r->mode & 07777), true);
		if (tmp >= 0 && (fstat(tmp, &st) || (uint64_t)st.st_dev != r->dev)) {
			close(tmp);
			snprintf(why, len, "deleted file %s: process %u may not create a file in %s, "
				 "and it is another file system than at dump: refused", r->path,
				 owner ? owner->pid : 0, dir);
			return -EACCES;
		}
	}
	if (tmp < 0)
		snprintf(why, len, "deleted file %s: cannot create it again in %s: %s", r->path,
			 dir, tmp == -ELOOP ? "a symbolic link in its path" : strerror(-tmp));
	return tmp;
}

/*
 * A deleted file again: an unlinked file in its directory (make_tmpfile)
 * with its content, owner and mode (or the one already made for an earlier
 * description of it), opened with FLAGS through /proc/self/fd: our own
 * new file, so lazarus sets owner and mode and reopens it.
 */
static int reg_open_deleted(const FileEntry *e, const struct rst_images *im,
			    const struct rst_fstore *st, int flags, char *why, size_t len)
{
	const RegFileEntry *r = e->reg;
	char self[64];
	int tmp = deleted_twin(e, im, st), fd, ret = 0;
	bool own = tmp < 0;

	if (own) {
		tmp = make_tmpfile(r, as_owner_of_file(im, e->id), why, len);
		if (tmp < 0)
			return tmp;
		ret = rst_fd_data_restore(im, e->id, tmp, r->size, why, len);
		if (!ret && (fchown(tmp, r->uid, r->gid) || fchmod(tmp, (mode_t)(r->mode & 07777)))) {
			ret = -errno;
			snprintf(why, len, "deleted file %s: owner and mode: %s", r->path,
				 strerror(errno));
		}
		if (ret) {
			close(tmp);
			return ret;
		}
	}
	snprintf(self, sizeof(self), "/proc/self/fd/%d", tmp);
	fd = open(self, flags | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, len, "deleted file %s: reopen: %s", r->path, strerror(errno));
	}
	if (own)
		close(tmp);
	return fd < 0 ? ret : fd;
}

/*
 * Status flags as at dump time, minus what only makes sense at creation.
 * O_NOCTTY: a terminal must not become our controlling tty by accident.
 */
static int reg_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		    char *why, size_t len)
{
	const RegFileEntry *r = e->reg;
	int flags = (int)(e->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_ASYNC)) | O_NOCTTY;
	const struct as_owner_file was = { .has_ino = r->has_ino && r->has_dev, .dev = r->dev,
					   .ino = r->ino, .has_btime = r->has_btime_ns,
					   .btime_ns = r->btime_ns };
	const struct rst_task *owner;
	char what[PATH_MAX + 160];
	int fd;

	if (r->proc_self)
		return 0; /* its pid does not exist yet: reg_open_proc_self */
	if (r->deleted) {
		fd = reg_open_deleted(e, im, st, flags, why, len);
		if (fd < 0)
			return fd;
		goto seek;
	}
	owner = as_owner_of_file(im, e->id);
	if (flags & O_PATH) /* opens nothing: cannot block */
		fd = as_owner_open(owner, r->path, flags, &was, what, sizeof(what));
	else
		fd = as_owner_open_typed(owner, r->path, flags, (mode_t)r->mode, &was, what,
					 sizeof(what));
	if (fd < 0) {
		snprintf(why, len, "open %s", what);
		return fd;
	}
seek:
	if (!(flags & O_PATH) && S_ISREG(r->mode) && lseek(fd, (off_t)r->pos, SEEK_SET) < 0) {
		snprintf(why, len, "seek %s to %" PRIu64 ": %s", r->path, r->pos, strerror(errno));
		close(fd);
		return -errno;
	}
	if (!(flags & O_PATH) && S_ISDIR(r->mode) && r->pos)
		lseek(fd, (off_t)r->pos, SEEK_SET); /* a readdir cookie: best effort */
	pr_debug("restore: file %u: %s flags %#o pos %" PRIu64, e->id, r->path, e->flags, r->pos);
	return rst_fstore_put(st, e->id, fd, why, len);
}

/*
 * The number of the process DEPTH generations above us (0: ourselves) in
 * the /proc we see: /proc/self read (not followed), then PPid of status,
 * which that /proc gives in its own numbering. Into BUF.
 */
static int proc_number_up(unsigned depth, char *buf, size_t len)
{
	char path[64], text[4096], *l;
	ssize_t n = readlink("/proc/self", buf, len - 1);
	int fd;

	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	for (; depth; depth--) {
		snprintf(path, sizeof(path), "/proc/%s/status", buf);
		fd = as_owner_open_nolinks(path, O_RDONLY);
		if (fd < 0)
			return fd;
		n = read(fd, text, sizeof(text) - 1);
		close(fd);
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		text[n] = '\0';
		l = strstr(text, "\nPPid:\t");
		if (!l || atoi(l + 7) <= 0)
			return -ESRCH;
		snprintf(buf, len, "%d", atoi(l + 7));
	}
	return 0;
}

/*
 * In the restored process T, before its fds are installed: a /proc file
 * of its own, or of the ancestor it inherited it from (the file's owner,
 * as-owner.h), under that process's pid as the /proc it sees numbers it
 * (the dumped pid, or the outside one of --pidns), opened as T with no
 * symbolic link followed. A description of T's own: one per process. Into ST.
 */
int reg_open_proc_self(const FileEntry *e, const struct rst_images *im,
		       const struct rst_task *t, struct rst_fstore *st, char *why, size_t len)
{
	const RegFileEntry *r = e->reg;
	int flags = (int)(e->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_ASYNC)) | O_NOCTTY;
	const struct rst_task *o = as_owner_of_file(im, e->id);
	char num[32], path[PATH_MAX], what[PATH_MAX + 160];
	unsigned depth = 0;
	int fd, i;

	for (i = (int)(t - im->tasks); i >= 0 && &im->tasks[i] != o; i = im->tasks[i].parent)
		depth++;
	if (i < 0) { /* restore-verify.c refused it */
		snprintf(why, len, "%s: not a /proc file of an ancestor", r->path);
		return -EINVAL;
	}
	fd = proc_number_up(depth, num, sizeof(num));
	if (fd < 0) {
		snprintf(why, len, "%s: the pid of process %u in /proc: %s", r->path, o->pid,
			 strerror(-fd));
		return fd;
	}
	if (r->proc_task)
		snprintf(path, sizeof(path), "/proc/%s/task/%s%s%s", num, num,
			 r->proc_rest[0] ? "/" : "", r->proc_rest);
	else
		snprintf(path, sizeof(path), "/proc/%s%s%s", num, r->proc_rest[0] ? "/" : "",
			 r->proc_rest);
	fd = as_owner_open(t, path, flags, NULL, what, sizeof(what));
	if (fd < 0) {
		snprintf(why, len, "open %s (dumped as %s)", what, r->path);
		return fd;
	}
	if ((flags & O_ACCMODE) != O_WRONLY && !(flags & O_PATH) && r->pos &&
	    lseek(fd, (off_t)r->pos, SEEK_SET) < 0)
		pr_debug("%s: offset %" PRIu64 " not restored: %s", path, r->pos, strerror(errno));
	pr_debug("restore: file %u: %s as %s", e->id, r->path, path);
	return rst_fstore_put(st, e->id, fd, why, len);
}

const struct fd_kind fd_kind_reg = {
	.kind = FILE_KIND__FD_REG,
	.name = "regular file",
	.match = reg_match,
	.dump = reg_dump,
	.verify = reg_verify,
	.check = reg_check,
	.open = reg_open,
};
