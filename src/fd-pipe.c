/*
 * fd-pipe.c - pipes and FIFOs, with the data queued in them (issue 7, item 4).
 *
 * Every end of a pipe is one open file description, so one FileEntry; the
 * ends of one pipe share its inode number (pipe_ino). Dump takes a copy of
 * the end (pidfd_getfd: the very same description, in lazarus) and reads
 * the queued bytes without consuming them: tee(2) duplicates the pipe's
 * buffers into a pipe of our own, sized to the same capacity so that one
 * call takes them all, and we read that. The bytes go on every read end's
 * entry (inline: at most the capacity, 1 MiB here, and covered by the crc
 * of files.img); write ends carry none.
 *
 * Restore creates the pipe once, when the first of its ends is opened into
 * the fd store: F_SETPIPE_SZ to the dumped capacity, the data written back
 * in one write (it fits: the pipe is empty and as large as it was), then
 * every end of it goes into the store. A second description of the same end
 * (a FIFO opened twice, /proc/PID/fd/N reopened) is a reopen of
 * /proc/self/fd/N, which is a new description of the same pipe. An end no
 * FileEntry wants is closed: a reader whose writers were all gone at dump
 * reads the data, then EOF, as it would have.
 *
 * FIFOs are found again by path and must still be FIFOs (they are not
 * created: a FIFO missing at restore is refused by name). Lazarus opens
 * the FIFO O_RDWR, which neither blocks nor lets the pipe die while the
 * ends are reopened from it, and refuses a FIFO that already holds data
 * (another process, outside the dump, uses it).
 *
 * What is not kept: the split of the data into pipe buffers (a pipe full
 * of 1-byte writes made by splice holds more after restore); packet mode
 * (O_DIRECT) pipes are refused. A pipe whose other end is open outside the
 * dumped tree is refused (fd_pipe_dump_check, and again at restore).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "as-owner.h"
#include "fd-kind.h"
#include "dump-files.h"
#include "fd-pipe.h"
#include "restore-fds.h"
#include "restore-images.h"

#define PIPE_MIN_CAP 4096U
#define PIPE_MAX_CAP (1U << 30) /* far above any pipe-max-size we could set */

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/* ------------------------------------------------------------ dump */

static bool pipe_match(const struct fd_probe *p)
{
	return S_ISFIFO(p->st.st_mode) && starts_with(p->link, "pipe:");
}

static bool fifo_match(const struct fd_probe *p)
{
	return S_ISFIFO(p->st.st_mode) && p->link[0] == '/';
}

/*
 * The queued bytes of the read end LOCAL, left in place: tee() into a pipe
 * of our own with as many buffers, then read from ours. A pipe queues at
 * most its capacity, so *DATA (malloc'ed) holds at most CAP bytes.
 */
static int pipe_peek(int local, uint32_t cap, uint8_t **data, size_t *len, char *why,
		     size_t wlen)
{
	int queued = 0, tmp[2], ret = 0;
	ssize_t n;

	*data = NULL;
	*len = 0;
	if (ioctl(local, FIONREAD, &queued) < 0) {
		snprintf(why, wlen, "FIONREAD: %s", strerror(errno));
		return -errno;
	}
	if (queued <= 0)
		return 0;
	if ((uint32_t)queued > cap) {
		snprintf(why, wlen, "%d bytes queued in a pipe of %u", queued, cap);
		return -EIO;
	}
	if (pipe2(tmp, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(why, wlen, "pipe2: %s", strerror(errno));
		return -errno;
	}
	/* Without CAP_SYS_RESOURCE this stops at fs.pipe-max-size, as restore would. */
	if (fcntl(tmp[1], F_SETPIPE_SZ, cap) < 0) {
		snprintf(why, wlen, "capacity %u bytes cannot be set again here (F_SETPIPE_SZ: %s)",
			 cap, strerror(errno));
		ret = -errno;
		goto out_close;
	}
	*data = malloc((size_t)queued);
	if (!*data) {
		ret = -ENOMEM;
		snprintf(why, wlen, "out of memory");
		goto out_close;
	}
	n = tee(local, tmp[1], (size_t)queued, SPLICE_F_NONBLOCK);
	if (n == queued)
		n = read(tmp[0], *data, (size_t)queued);
	if (n != queued) {
		ret = n < 0 ? -errno : -EIO;
		snprintf(why, wlen, "copying the %d queued bytes: %s", queued,
			 n < 0 ? strerror(errno) : "short copy");
		free(*data);
		*data = NULL;
		goto out_close;
	}
	*len = (size_t)queued;
out_close:
	close(tmp[0]);
	close(tmp[1]);
	return ret;
}

/*
 * Whether the other end is open anywhere (our copy of this end aside): a
 * read end sees POLLHUP once no writer is left, a write end POLLERR once
 * no reader is. A description open for both (a FIFO opened O_RDWR) is its
 * own peer: false.
 */
static bool peer_is_open(int local, uint32_t acc)
{
	struct pollfd pfd = { .fd = local, .events = acc == O_RDONLY ? POLLIN : POLLOUT };

	if (acc == O_RDWR || poll(&pfd, 1, 0) < 0)
		return false;
	return acc == O_RDONLY ? !(pfd.revents & POLLHUP) : !(pfd.revents & POLLERR);
}

/* fd N of PID (a /proc/PID/fd entry) is FIFO DEV:INO opened for writing. */
static bool fd_writes_fifo(int pid, int fd, dev_t dev, ino_t ino)
{
	char path[96], text[256];
	const char *fl;
	struct stat st;
	ssize_t n;
	int f;

	snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fd);
	if (stat(path, &st) || !S_ISFIFO(st.st_mode) || st.st_dev != dev || st.st_ino != ino)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/fdinfo/%d", pid, fd);
	f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0)
		return false;
	n = read(f, text, sizeof(text) - 1);
	close(f);
	if (n <= 0)
		return false;
	text[n] = 0;
	fl = strstr(text, "flags:");
	return fl && (strtoul(fl + 6, NULL, 8) & O_ACCMODE) != O_RDONLY;
}

/*
 * A FIFO reader that opened O_NONBLOCK before any writer came sees no
 * POLLHUP until one has come and gone (fifo_open suppresses it), so poll
 * cannot tell it whether a writer exists: look through every process's
 * fds for one (lazarus's own copies aside). A control FIFO nobody writes
 * to yet is the common case, and must not be taken for an outside peer.
 */
static bool fifo_has_writer(dev_t dev, ino_t ino)
{
	struct dirent *pe, *fe;
	bool found = false;
	DIR *proc = opendir("/proc");

	if (!proc)
		return true; /* cannot tell: assume the worst */
	while (!found && (pe = readdir(proc))) {
		int pid = atoi(pe->d_name);
		char path[64];
		DIR *fds;

		if (pid <= 0 || pid == getpid())
			continue;
		snprintf(path, sizeof(path), "/proc/%d/fd", pid);
		fds = opendir(path);
		if (!fds)
			continue; /* gone, or a kernel thread */
		while (!found && (fe = readdir(fds)))
			found = fe->d_name[0] != '.' &&
				fd_writes_fifo(pid, atoi(fe->d_name), dev, ino);
		closedir(fds);
	}
	closedir(proc);
	return found;
}

static int pipe_dump_common(struct fd_probe *p, PipeEntry **out, const char *what, bool fifo)
{
	uint32_t acc = p->flags & O_ACCMODE;
	char why[160] = "";
	PipeEntry *pe;
	uint8_t *data;
	size_t len;
	int local, cap, ret;

	if (p->flags & O_DIRECT) {
		pr_err("process %d fd %d: %s in packet mode (O_DIRECT, %s): not supported yet",
		       p->pid, p->fd, what, p->link);
		return -EOPNOTSUPP;
	}
	local = fd_probe_getfd(p);
	if (local < 0) {
		pr_err("process %d fd %d: %s %s: pidfd_getfd: %s", p->pid, p->fd, what, p->link,
		       strerror(-local));
		return local;
	}
	cap = fcntl(local, F_GETPIPE_SZ);
	if (cap < 0) {
		pr_err("process %d fd %d: %s %s: F_GETPIPE_SZ: %s", p->pid, p->fd, what, p->link,
		       strerror(errno));
		return -errno;
	}
	data = NULL;
	len = 0;
	if (acc != O_WRONLY) {
		ret = pipe_peek(local, (uint32_t)cap, &data, &len, why, sizeof(why));
		if (ret) {
			pr_err("process %d fd %d: %s %s: %s", p->pid, p->fd, what, p->link, why);
			return ret == -EPERM ? -EOPNOTSUPP : ret;
		}
	}
	pe = malloc(sizeof(*pe));
	if (!pe) {
		free(data);
		return -ENOMEM;
	}
	pipe_entry__init(pe);
	pe->pipe_ino = p->st.st_ino;
	pe->capacity = (uint32_t)cap;
	pe->peer_open = peer_is_open(local, acc);
	if (fifo && acc == O_RDONLY && pe->peer_open)
		pe->peer_open = fifo_has_writer(p->st.st_dev, p->st.st_ino);
	if (fifo && !(pe->path = strdup(p->link))) {
		free(data);
		free(pe);
		return -ENOMEM;
	}
	if (acc != O_WRONLY) {
		pe->has_data = true;
		pe->data.data = data;
		pe->data.len = len;
	}
	*out = pe;
	pr_debug("process %d fd %d: %s %s: capacity %d, %zu bytes queued, other end %s", p->pid,
		 p->fd, what, p->link, cap, len, pe->peer_open ? "open" : "closed");
	return 0;
}

static int pipe_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	(void)imgs;
	return pipe_dump_common(p, &e->pipe, "pipe", false);
}

static int fifo_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	int ret;

	(void)imgs;
	if (ends_with(p->link, " (deleted)")) {
		pr_err("process %d fd %d: deleted FIFO (%s): not supported yet", p->pid, p->fd,
		       p->link);
		return -EOPNOTSUPP;
	}
	ret = pipe_dump_common(p, &e->fifo, "FIFO", true);
	if (!ret) {
		e->fifo->has_dev = true;
		e->fifo->dev = (uint64_t)p->st.st_dev;
	}
	return ret;
}

/* ------------------------------------------------------------ both */

static const PipeEntry *pipe_of(const FileEntry *e)
{
	return e->kind == FILE_KIND__FD_PIPE ? e->pipe : e->kind == FILE_KIND__FD_FIFO ? e->fifo
										      : NULL;
}

static const char *kind_word(const FileEntry *e)
{
	return e->kind == FILE_KIND__FD_PIPE ? "pipe" : "FIFO";
}

/* Another end of the pipe of E (a FIFO: the same path too). */
static bool same_pipe(const FileEntry *e, const FileEntry *x)
{
	const PipeEntry *a = pipe_of(e), *b = pipe_of(x);

	if (x->kind != e->kind || !a || !b || b->pipe_ino != a->pipe_ino)
		return false;
	return e->kind == FILE_KIND__FD_PIPE || (a->path && b->path && !strcmp(a->path, b->path));
}

/* E says its other end was open, and no other entry of FILES is that end. */
static int peer_missing(const FileEntry *e, FileEntry *const *files, size_t n, char *why,
			size_t len)
{
	uint32_t acc = e->flags & O_ACCMODE;
	const PipeEntry *pe = pipe_of(e);

	if (!pe->peer_open)
		return 0;
	for (size_t j = 0; j < n; j++)
		if (files[j] != e && same_pipe(e, files[j]) && (files[j]->flags & O_ACCMODE) != acc)
			return 0;
	snprintf(why, len, "the %s end of %s %s is open outside the dumped tree: not supported",
		 acc == O_RDONLY ? "write" : "read", kind_word(e),
		 pe->path ? pe->path : "(anonymous)");
	return -EOPNOTSUPP;
}

int fd_pipe_dump_check(const struct files_table *tab)
{
	FileEntry **files = malloc((tab->nr + 1) * sizeof(*files));
	char why[PATH_MAX + 128];
	int ret = 0;

	if (!files)
		return -ENOMEM;
	for (size_t i = 0; i < tab->nr; i++)
		files[i] = tab->files[i].e;
	for (size_t i = 0; !ret && i < tab->nr; i++) {
		if (!pipe_of(files[i]))
			continue;
		ret = peer_missing(files[i], files, tab->nr, why, sizeof(why));
		if (ret)
			pr_err("process %d fd %d: %s", tab->files[i].pid, tab->files[i].fd, why);
	}
	free(files);
	return ret;
}

/* ------------------------------------------------------------ verify, check */

static int pipe_verify(const FileEntry *e, char *why, size_t len)
{
	const PipeEntry *pe = pipe_of(e);
	uint32_t acc = e->flags & O_ACCMODE;

	if (!pe) {
		snprintf(why, len, "a %s without its pipe entry", kind_word(e));
		return -EBADMSG;
	}
	if (pe->capacity < PIPE_MIN_CAP || pe->capacity > PIPE_MAX_CAP ||
	    (pe->capacity & (pe->capacity - 1))) {
		snprintf(why, len, "pipe capacity %u is no power of two from %u to %u",
			 pe->capacity, PIPE_MIN_CAP, PIPE_MAX_CAP);
		return -EBADMSG;
	}
	if (acc > O_RDWR || pe->has_data != (acc != O_WRONLY) ||
	    (pe->has_data && pe->data.len > pe->capacity)) {
		snprintf(why, len, "%zu queued bytes on a %s end (access mode %u) of a pipe of %u",
			 pe->has_data ? pe->data.len : 0, acc == O_WRONLY ? "write" : "read", acc,
			 pe->capacity);
		return -EBADMSG;
	}
	if ((e->kind == FILE_KIND__FD_FIFO) != (pe->path && pe->path[0] == '/')) {
		snprintf(why, len, e->kind == FILE_KIND__FD_FIFO ? "a FIFO without an absolute path"
								  : "an anonymous pipe with a path");
		return -EBADMSG;
	}
	return 0;
}

/* A FIFO is found by path: it must still be one (it is not created). */
static int fifo_check(const FileEntry *e, char *why, size_t len)
{
	const char *path = e->fifo->path;
	struct stat st;
	int fd = as_owner_open_nolinks(path, O_PATH | O_NOFOLLOW), ret;

	if (fd == -ELOOP) {
		snprintf(why, len, "%s: a symbolic link in its path (the dumped path had none): refused",
			 path);
		return fd;
	}
	ret = fd < 0 ? fd : fstat(fd, &st) ? -errno : 0;
	if (fd >= 0)
		close(fd);
	if (ret) {
		snprintf(why, len, "%s: %s (a FIFO is not created again)", path, strerror(-ret));
		return ret;
	}
	if (!S_ISFIFO(st.st_mode)) {
		snprintf(why, len, "%s: a %s, dumped as a FIFO", path, rst_file_type_name(st.st_mode));
		return -EINVAL;
	}
	return 0;
}

/*
 * Before a pipe is created: every end of it says the same capacity, every
 * read end the same bytes, and no end misses its peer (files.img could
 * hold anything its crc covers, which is not what dump wrote).
 */
static int pipe_consistent(const FileEntry *e, const struct rst_images *im, char *why,
			   size_t len)
{
	const PipeEntry *pe = pipe_of(e);

	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *x = im->files[i];
		const PipeEntry *xe = pipe_of(x);
		int ret;

		if (!same_pipe(e, x))
			continue;
		if (xe->capacity != pe->capacity ||
		    (pe->has_data && xe->has_data &&
		     (xe->data.len != pe->data.len ||
		      (pe->data.len && memcmp(xe->data.data, pe->data.data, pe->data.len))))) {
			snprintf(why, len, "files.img: files %u and %u: two ends of one %s that "
				 "disagree on its %s", e->id, x->id, kind_word(e),
				 xe->capacity != pe->capacity ? "capacity" : "data");
			return -EBADMSG;
		}
		ret = peer_missing(x, im->files, im->nr_files, why, len);
		if (ret)
			return ret;
	}
	return 0;
}

/* ------------------------------------------------------------ restore */

/* Set the status flags F_SETFL can set (the access mode is the open's). */
static int set_status(int fd, uint32_t flags)
{
	int keep = O_APPEND | O_NONBLOCK | O_NOATIME;

	return fcntl(fd, F_SETFL, (int)flags & keep) < 0 ? -errno : 0;
}

/* A new description of the pipe end BASE (of ACC access), through /proc. */
static int reopen_end(int base, uint32_t acc)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", base);
	fd = open(path, (int)acc | O_NONBLOCK | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/*
 * Put every end of E's pipe into the store, each a new description of the
 * pipe reopened through /proc from END[access mode] (END[O_RDWR] only for
 * a FIFO), so that the ones we hold can be closed afterwards.
 */
static int pipe_store_ends(const FileEntry *e, const struct rst_images *im, const int end[3],
			   struct rst_fstore *st, char *why, size_t len)
{
	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *x = im->files[i];
		uint32_t acc = x->flags & O_ACCMODE;
		int fd, ret;

		if (!same_pipe(e, x))
			continue;
		if (acc > O_RDWR || end[acc] < 0) {
			snprintf(why, len, "file %u: a pipe end opened with access mode %u", x->id,
				 acc);
			return -EBADMSG;
		}
		fd = reopen_end(end[acc], acc);
		if (fd < 0) {
			snprintf(why, len, "file %u: reopening a pipe end: %s", x->id,
				 strerror(-fd));
			return fd;
		}
		ret = set_status(fd, x->flags);
		if (ret) {
			close(fd);
			snprintf(why, len, "file %u: pipe end: F_SETFL: %s", x->id, strerror(-ret));
			return ret;
		}
		ret = rst_fstore_put(st, x->id, fd, why, len);
		if (ret)
			return ret;
	}
	return 0;
}

/* The bytes to refill: any read end's (pipe_consistent made them all the same). */
static const PipeEntry *pipe_data_of(const FileEntry *e, const struct rst_images *im)
{
	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *x = im->files[i];

		if (same_pipe(e, x) && pipe_of(x)->has_data)
			return pipe_of(x);
	}
	return NULL;
}

static int pipe_fill(int wr, const FileEntry *e, const struct rst_images *im, char *why,
		     size_t len)
{
	const PipeEntry *pe = pipe_of(e), *d = pipe_data_of(e, im);
	int cur = fcntl(wr, F_GETPIPE_SZ);
	ssize_t n;

	if (cur < 0 || ((uint32_t)cur != pe->capacity &&
			fcntl(wr, F_SETPIPE_SZ, pe->capacity) < (int)pe->capacity)) {
		snprintf(why, len, "file %u: pipe capacity %u: F_SETPIPE_SZ: %s", e->id,
			 pe->capacity, strerror(errno));
		return -errno ? -errno : -EIO;
	}
	if (!d || !d->data.len)
		return 0;
	n = write(wr, d->data.data, d->data.len);
	if (n != (ssize_t)d->data.len) {
		snprintf(why, len, "file %u: refilling %zu bytes into the pipe: %s", e->id,
			 d->data.len, n < 0 ? strerror(errno) : "short write");
		return n < 0 ? -errno : -EIO;
	}
	return 0;
}

static int pipe_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		     char *why, size_t len)
{
	int ends[2], ret;

	ret = pipe_consistent(e, im, why, len);
	if (ret)
		return ret;
	if (pipe2(ends, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(why, len, "file %u: pipe2: %s", e->id, strerror(errno));
		return -errno;
	}
	ret = pipe_fill(ends[1], e, im, why, len);
	if (!ret)
		ret = pipe_store_ends(e, im, (const int[3]){ ends[0], ends[1], -1 }, st, why, len);
	close(ends[0]);
	close(ends[1]);
	return ret;
}

/*
 * Each end of the FIFO as its owner may open it (as-owner.h: the owner's
 * own right, or the very FIFO it had open), and the same FIFO as RDWR,
 * which lazarus opened (no symlink in its path) and reopens every end from.
 */
static int fifo_owners_may(const FileEntry *e, const struct rst_images *im, int rdwr,
			   char *why, size_t len)
{
	const PipeEntry *pe = e->fifo;
	struct stat ours, theirs;
	char what[PATH_MAX + 160];

	if (fstat(rdwr, &ours))
		return -errno;
	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *x = im->files[i];
		const struct rst_task *owner;
		int fd, ret;

		if (!same_pipe(e, x))
			continue;
		owner = as_owner_of_file(im, x->id);
		fd = as_owner_open(owner, pe->path, (int)(x->flags & O_ACCMODE) | O_NONBLOCK | O_NOCTTY,
				   &(struct as_owner_file){ .has_ino = pe->has_dev, .dev = pe->dev,
							    .ino = pe->pipe_ino },
				   what, sizeof(what));
		if (fd < 0) {
			snprintf(why, len, "FIFO %s (file %u): process %u: %s", pe->path, x->id,
				 owner ? owner->pid : 0, what);
			return fd;
		}
		ret = fstat(fd, &theirs) ? -errno : 0;
		close(fd);
		if (!ret && (theirs.st_dev != ours.st_dev || theirs.st_ino != ours.st_ino))
			ret = -ESTALE;
		if (ret) {
			snprintf(why, len, "FIFO %s (file %u): %s", pe->path, x->id,
				 ret == -ESTALE ? "replaced while it was opened" : strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static int fifo_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		     char *why, size_t len)
{
	int rdwr, queued = 0, ret;
	struct stat s;

	ret = pipe_consistent(e, im, why, len);
	if (ret)
		return ret;
	/* O_RDWR: no wait for a peer; O_NONBLOCK anyway, and the type checked on the open file. */
	rdwr = as_owner_open_nolinks(e->fifo->path, O_RDWR | O_NONBLOCK | O_NOCTTY);
	if (rdwr < 0) {
		snprintf(why, len, "FIFO %s (file %u): %s", e->fifo->path, e->id,
			 rdwr == -ELOOP ? "a symbolic link in its path (the dumped path had none): "
					  "refused" : strerror(-rdwr));
		return rdwr;
	}
	ret = fstat(rdwr, &s) < 0 ? -errno : !S_ISFIFO(s.st_mode) ? -EINVAL : 0;
	if (!ret && (ioctl(rdwr, FIONREAD, &queued) < 0 || queued)) {
		ret = -EBUSY;
	}
	if (!ret && S_ISFIFO(s.st_mode)) {
		ret = fifo_owners_may(e, im, rdwr, why, len);
		if (ret) {
			close(rdwr);
			return ret;
		}
	}
	if (ret) {
		snprintf(why, len, "FIFO %s (file %u): %s", e->fifo->path, e->id,
			 ret == -EINVAL ? "is no FIFO any more"
			 : ret == -EBUSY ? "holds data already: another process uses it"
					 : strerror(-ret));
		close(rdwr);
		return ret;
	}
	ret = pipe_fill(rdwr, e, im, why, len);
	if (!ret)
		ret = pipe_store_ends(e, im, (const int[3]){ rdwr, rdwr, rdwr }, st, why, len);
	close(rdwr);
	return ret;
}

const struct fd_kind fd_kind_pipe = {
	.kind = FILE_KIND__FD_PIPE,
	.name = "pipe",
	.match = pipe_match,
	.dump = pipe_dump,
	.verify = pipe_verify,
	.open = pipe_open,
};

const struct fd_kind fd_kind_fifo = {
	.kind = FILE_KIND__FD_FIFO,
	.name = "FIFO",
	.match = fifo_match,
	.dump = fifo_dump,
	.verify = pipe_verify,
	.check = fifo_check,
	.open = fifo_open,
};
