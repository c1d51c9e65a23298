/*
 * fd-desc.c - the parts of an open file description that are not its
 * kind's: the O_ASYNC owner and signal, and file locks.
 *
 * Owner: /proc/PID/fdinfo does not show it; fcntl(F_GETOWN_EX) and
 * F_GETSIG on a pidfd_getfd copy do (the same description). Restore sets
 * it in the process once its fds are in place (the owner must exist by
 * then: dump refuses an owner outside the tree, dump.c), then O_ASYNC,
 * which open() ignores. The owner's credentials the kernel records are the
 * restoring process's at that point (root's before the blob sets the
 * dumped ones): SIGIO is then always allowed to reach the owner, which the
 * dumped process had chosen itself.
 *
 * Locks: the "lock:" lines of /proc/PID/fdinfo/N list the locks whose file
 * is this description and whose owner is this description (flock, OFD) or
 * this process's fd table (POSIX):
 *   lock:	1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF
 *   lock:	2: POSIX  ADVISORY  READ 1234 08:01:5678 100 199
 *   lock:	3: OFDLCK ADVISORY  WRITE -1 08:01:5678 0 EOF
 * flock and OFD locks belong to the description: restore takes them on the
 * store's fd in lazarus, before the tree exists. POSIX locks belong to the
 * process, and a close of ANY fd of the file in it drops them all: the
 * restored process checks them (F_GETLK) once its fds are at their numbers
 * and the store is closed, and the restorer blob takes them (F_SETLK) after
 * it closed the service fds, among which are the files the process maps
 * (sqlite's WAL mode maps its -shm file and locks it, and locks the db it
 * also maps with PRAGMA mmap_size). A conflicting lock taken by someone else
 * since the dump fails the restore (in the blob only if it came in between).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "fd-desc.h"

const char *fd_lock_kind_name(FileLockKind k)
{
	switch (k) {
	case FILE_LOCK_KIND__LOCK_FLOCK:
		return "FLOCK";
	case FILE_LOCK_KIND__LOCK_POSIX:
		return "POSIX";
	case FILE_LOCK_KIND__LOCK_OFD:
		return "OFD";
	default:
		return "unknown";
	}
}

static int dump_owner(struct fd_probe *p, FileEntry *e)
{
	struct f_owner_ex ow = { 0 };
	FileOwner *o;
	int fd, sig;

	if (p->flags & O_PATH)
		return 0; /* opens nothing: fcntl(F_GETOWN_EX) fails with EBADF */
	fd = fd_probe_getfd(p);
	if (fd < 0)
		return fd;
	if (fcntl(fd, F_GETOWN_EX, &ow) < 0 || (sig = fcntl(fd, F_GETSIG)) < 0) {
		pr_perror("process %d fd %d: F_GETOWN_EX/F_GETSIG", p->pid, p->fd);
		return -errno;
	}
	if (!ow.pid && !sig)
		return 0;
	o = malloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	file_owner__init(o);
	o->pid_type = (uint32_t)ow.type;
	o->pid = ow.pid;
	o->signum = (uint32_t)sig;
	e->fown = o;
	return 0;
}

/* Words of one "lock:" line: id, kind, mode, type, pid, dev:ino, start, end. */
static int split_lock(char *line, char *w[8])
{
	char *save = NULL, *t = strtok_r(line + 5, " \t\n", &save);
	int n = 0;

	while (t && n < 8) {
		w[n++] = t;
		t = strtok_r(NULL, " \t\n", &save);
	}
	return n;
}

static bool same_lock(const FileLock *a, const FileLock *b)
{
	return a->kind == b->kind && a->write == b->write && a->pid == b->pid &&
	       a->start == b->start && a->len == b->len;
}

static int add_lock(FileEntry *e, const FileLock *l)
{
	FileLock **v, *n;

	for (size_t i = 0; i < e->n_locks; i++)
		if (same_lock(e->locks[i], l))
			return 0;
	v = realloc(e->locks, (e->n_locks + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	e->locks = v;
	n = malloc(sizeof(*n));
	if (!n)
		return -ENOMEM;
	*n = *l;
	e->locks[e->n_locks++] = n;
	return 0;
}

static int parse_lock(struct fd_probe *p, char *line, FileLock *l)
{
	char *w[8], *end;
	uint64_t last;
	int n;

	file_lock__init(l);
	n = split_lock(line, w);
	if (n < 4 || (strcmp(w[1], "FLOCK") && strcmp(w[1], "POSIX") && strcmp(w[1], "OFDLCK"))) {
		/* leases, delegations, ACCESS: what dump-checks.c names */
		pr_err("process %d fd %d holds a file %s (%s %s %s): not supported yet", p->pid,
		       p->fd, n > 1 && !strcmp(w[1], "LEASE") ? "lease" : "lock", n > 1 ? w[1] : "?",
		       n > 2 ? w[2] : "?", n > 3 ? w[3] : "?");
		return -EOPNOTSUPP;
	}
	l->write = !strcmp(w[3], "WRITE");
	if (!l->write && strcmp(w[3], "READ"))
		goto bad;
	if (!strcmp(w[1], "FLOCK")) {
		l->kind = FILE_LOCK_KIND__LOCK_FLOCK;
		return 0;
	}
	l->kind = strcmp(w[1], "POSIX") ? FILE_LOCK_KIND__LOCK_OFD : FILE_LOCK_KIND__LOCK_POSIX;
	if (n < 8)
		goto bad;
	l->has_start = l->has_len = true;
	l->start = strtoull(w[6], &end, 10);
	if (*end)
		goto bad;
	if (strcmp(w[7], "EOF")) {
		last = strtoull(w[7], &end, 10);
		if (*end || last < l->start)
			goto bad;
		l->len = last - l->start + 1;
	}
	if (l->kind == FILE_LOCK_KIND__LOCK_POSIX) {
		l->has_pid = true;
		l->pid = (uint32_t)p->pid;
	}
	return 0;
bad:
	pr_err("process %d fd %d: cannot parse its fdinfo lock line", p->pid, p->fd);
	return -EINVAL;
}

int fd_desc_dump(struct fd_probe *p, FileEntry *e, bool first)
{
	char *text, *line;
	int ret = first ? dump_owner(p, e) : 0;

	if (ret)
		return ret;
	text = strdup(p->fdinfo);
	if (!text)
		return -ENOMEM;
	for (line = text; !ret && line && *line;) {
		char *next = strchr(line, '\n');
		FileLock l;

		if (next)
			*next++ = '\0';
		if (!strncmp(line, "lock:", 5)) {
			ret = parse_lock(p, line, &l);
			if (!ret)
				ret = add_lock(e, &l);
		}
		line = next;
	}
	free(text);
	return ret;
}

static void lock_flock(const FileLock *l, struct flock *fl)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = l->write ? F_WRLCK : F_RDLCK;
	fl->l_whence = SEEK_SET;
	fl->l_start = (off_t)l->start;
	fl->l_len = (off_t)l->len;
}

static int lock_fail(const FileEntry *e, const FileLock *l, int err, char *why, size_t len)
{
	if (err == EAGAIN || err == EWOULDBLOCK || err == EACCES)
		snprintf(why, len, "file %u: its %s %s lock (from %" PRIu64 ", %" PRIu64
			 " bytes) is held by someone else now", e->id, fd_lock_kind_name(l->kind),
			 l->write ? "write" : "read", l->start, l->len);
	else
		snprintf(why, len, "file %u: taking its %s lock: %s", e->id,
			 fd_lock_kind_name(l->kind), strerror(err));
	return -err;
}

int rst_desc_open(const FileEntry *e, int fd, char *why, size_t len)
{
	for (size_t i = 0; i < e->n_locks; i++) {
		const FileLock *l = e->locks[i];
		struct flock fl;
		int r;

		if (l->kind == FILE_LOCK_KIND__LOCK_FLOCK) {
			r = flock(fd, (l->write ? LOCK_EX : LOCK_SH) | LOCK_NB);
		} else if (l->kind == FILE_LOCK_KIND__LOCK_OFD) {
			lock_flock(l, &fl);
			r = fcntl(fd, F_OFD_SETLK, &fl);
		} else {
			continue;
		}
		if (r)
			return lock_fail(e, l, errno, why, len);
	}
	return 0;
}

int rst_desc_install(const FileEntry *e, pid_t pid, int fd, bool first,
		     struct lz_blob_lock *locks, unsigned *nr_locks, char *why, size_t len)
{
	for (size_t i = 0; i < e->n_locks; i++) {
		const FileLock *l = e->locks[i];
		struct flock fl;

		if (l->kind != FILE_LOCK_KIND__LOCK_POSIX || l->pid != (uint32_t)pid || !first)
			continue;
		/* Who holds it now: a clear refusal here rather than one from the blob. */
		lock_flock(l, &fl);
		if (fcntl(fd, F_GETLK, &fl))
			return lock_fail(e, l, errno, why, len);
		if (fl.l_type != F_UNLCK)
			return lock_fail(e, l, EAGAIN, why, len);
		locks[(*nr_locks)++] = (struct lz_blob_lock){
			.fd = fd, .type = l->write ? F_WRLCK : F_RDLCK, .start = l->start,
			.len = l->len };
	}
	if (!first)
		return 0;
	if (e->fown) {
		struct f_owner_ex ow = { .type = (int)e->fown->pid_type, .pid = e->fown->pid };

		if ((ow.pid && fcntl(fd, F_SETOWN_EX, &ow)) ||
		    (e->fown->signum && fcntl(fd, F_SETSIG, (int)e->fown->signum))) {
			snprintf(why, len, "fd %d: setting its owner %d and signal %u: %s", fd,
				 e->fown->pid, e->fown->signum, strerror(errno));
			return -errno;
		}
	}
	if ((e->flags & O_ASYNC) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC)) {
		snprintf(why, len, "fd %d: setting O_ASYNC: %s", fd, strerror(errno));
		return -errno;
	}
	return 0;
}
