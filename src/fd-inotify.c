/*
 * fd-inotify.c - inotify instances and their watches (issue 7, item 6).
 *
 * /proc/PID/fdinfo lists each watch: its number (wd), the watched inode
 * with its filesystem and a file handle for it (name_to_handle_at's), and
 * the mask. Restore finds the inode again with open_by_handle_at (needs
 * CAP_DAC_READ_SEARCH, which restore has as root) through a mount of that
 * filesystem, so a watch comes back on the very inode it was on, wherever
 * it has been renamed to; a watched file that no longer exists (a stale
 * handle) is refused by name before anything runs.
 *
 * Programs map wd numbers to what they watch, so each watch must get its
 * old number. The kernel hands them out in increasing order (cyclic idr),
 * so watches are added in wd order, and a gap is skipped by adding the
 * watch and removing it again until the number it gets is the dumped one.
 * Each removal queues an IN_IGNORED event: the queue is emptied before the
 * instance is handed over.
 *
 * Events queued in the instance at dump time are lost: the kernel has no
 * way to read them without consuming them, nor to queue them again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "fd-event.h"
#include "fd-fdinfo.h"
#include "restore-images.h"

/* How far a watch number may be from the previous one: each step is an add and a remove. */
#define WD_MAX_GAP (1U << 20)
#define INOTIFY_USER_MASK (IN_ALL_EVENTS | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_ONESHOT)

static bool inotify_match(const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:inotify");
}

static InotifyWdEntry *wd_entry(const struct fdi_inotify_wd *w)
{
	InotifyWdEntry *we = malloc(sizeof(*we));

	if (!we)
		return NULL;
	inotify_wd_entry__init(we);
	we->wd = w->wd;
	we->ino = w->ino;
	we->dev = fdi_sdev_to_dev(w->sdev);
	we->mask = w->mask;
	we->handle_type = w->handle_type;
	we->handle.len = w->handle_bytes;
	we->handle.data = malloc(w->handle_bytes);
	if (!we->handle.data) {
		free(we);
		return NULL;
	}
	memcpy(we->handle.data, w->handle, w->handle_bytes);
	return we;
}

static int inotify_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	struct fdi_inotify_wd *w;
	InotifyEntry *ie = NULL;
	size_t nr;
	int ret;

	(void)imgs;
	ret = fdi_parse_inotify(p->fdinfo, &w, &nr);
	if (ret) {
		pr_err("process %d fd %d: inotify: /proc/%d/fdinfo/%d: %s", p->pid, p->fd, p->pid,
		       p->fd, ret == -ENOENT ? "a watch on a filesystem without file handles: "
		       "not supported" : ret == -ENOMEM ? "out of memory" : "cannot parse it");
		return ret == -ENOMEM ? ret : -EOPNOTSUPP;
	}
	ret = -ENOMEM;
	ie = malloc(sizeof(*ie));
	if (!ie)
		goto out_free;
	inotify_entry__init(ie);
	ie->wds = calloc(nr + 1, sizeof(*ie->wds));
	if (!ie->wds)
		goto out_free;
	for (size_t i = 0; i < nr; i++) {
		if (!(ie->wds[i] = wd_entry(&w[i])))
			goto out_free;
		ie->n_wds++;
	}
	e->inotify = ie;
	ie = NULL;
	ret = 0;
	pr_debug("process %d fd %d: inotify with %zu watches", p->pid, p->fd, nr);
out_free:
	if (ie)
		inotify_entry__free_unpacked(ie, NULL);
	free(w);
	return ret;
}

static int inotify_verify(const FileEntry *e, char *why, size_t len)
{
	const InotifyEntry *ie = e->inotify;

	if (!ie) {
		snprintf(why, len, "an inotify without its inotify entry");
		return -EBADMSG;
	}
	for (size_t i = 0; i < ie->n_wds; i++) {
		const InotifyWdEntry *w = ie->wds[i];

		if (!w->wd || w->wd > INT32_MAX || !w->handle.len ||
		    w->handle.len > FDI_HANDLE_MAX || (w->mask & ~(uint32_t)INOTIFY_USER_MASK)) {
			snprintf(why, len, "inotify watch %u: bad wd, mask %#x or file "
				 "handle", w->wd, w->mask);
			return -EBADMSG;
		}
		for (size_t j = 0; j < i; j++)
			if (ie->wds[j]->wd == w->wd) {
				snprintf(why, len, "inotify watch %u listed twice", w->wd);
				return -EBADMSG;
			}
	}
	return 0;
}

/* Undo the octal escapes (\040 ...) of a mountinfo field, in place. */
static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = 0;
}

/* An fd of a mount of the filesystem DEV, for open_by_handle_at; -errno. */
static int mount_of_dev(uint64_t dev)
{
	char line[4096], mnt[4096];
	unsigned maj, min;
	int fd = -ENOENT;
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return -errno;
	while (fd < 0 && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%*d %*d %u:%u %*s %4095s", &maj, &min, mnt) != 3 ||
		    makedev(maj, min) != dev)
			continue;
		unescape(mnt);
		fd = open(mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* not O_PATH: EBADF */
		if (fd < 0)
			fd = -errno;
	}
	fclose(f);
	return fd;
}

/* The watched inode, O_PATH; WHY names the problem. */
static int wd_inode(const InotifyWdEntry *w, char *why, size_t len)
{
	struct file_handle *fh = malloc(sizeof(*fh) + w->handle.len);
	struct stat st;
	int mfd, fd;

	if (!fh) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	fh->handle_bytes = (unsigned)w->handle.len;
	fh->handle_type = w->handle_type;
	memcpy(fh->f_handle, w->handle.data, w->handle.len);
	mfd = mount_of_dev(w->dev);
	if (mfd < 0) {
		snprintf(why, len, "no mount of its filesystem %u:%u here (%s)", major(w->dev),
			 minor(w->dev), strerror(-mfd));
		free(fh);
		return mfd;
	}
	fd = open_by_handle_at(mfd, fh, O_PATH | O_CLOEXEC);
	if (fd < 0)
		snprintf(why, len, "its file is gone (open_by_handle_at: %s)", strerror(errno));
	else if (fstat(fd, &st) < 0 || st.st_ino != w->ino || st.st_dev != w->dev) {
		snprintf(why, len, "its file handle leads to another inode");
		close(fd);
		fd = -ESTALE;
		errno = ESTALE;
	}
	close(mfd);
	free(fh);
	return fd < 0 ? -errno : fd;
}

/* Add watch W to FD with its own wd number (see the top). */
static int wd_add(int fd, const InotifyWdEntry *w, char *why, size_t len)
{
	char path[64];
	int ino_fd, ret = 0;

	ino_fd = wd_inode(w, why, len);
	if (ino_fd < 0)
		return ino_fd;
	/* The magic link leads to the inode itself, wherever (whether) it has a name. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", ino_fd);
	for (uint32_t tries = 0;; tries++) {
		int got = inotify_add_watch(fd, path, w->mask & ~(uint32_t)IN_DONT_FOLLOW);

		if (got < 0 || (uint32_t)got == w->wd) {
			ret = got < 0 ? -errno : 0;
			if (ret)
				snprintf(why, len, "inotify_add_watch: %s", strerror(errno));
			break;
		}
		if ((uint32_t)got > w->wd || tries > WD_MAX_GAP) {
			snprintf(why, len, "got watch number %d, cannot reach %u", got, w->wd);
			ret = -EBUSY;
			break;
		}
		inotify_rm_watch(fd, got);
	}
	close(ino_fd);
	return ret;
}

static int cmp_wd(const void *a, const void *b)
{
	uint32_t x = (*(const InotifyWdEntry *const *)a)->wd;
	uint32_t y = (*(const InotifyWdEntry *const *)b)->wd;

	return x < y ? -1 : x > y;
}

/* The IN_IGNORED events of the removals of wd_add. */
static void drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

static int inotify_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
			char *why, size_t len)
{
	const InotifyEntry *ie = e->inotify;
	const InotifyWdEntry **order;
	char what[200] = "";
	int fd, ret = 0;

	(void)im;
	order = malloc((ie->n_wds + 1) * sizeof(*order));
	if (!order) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	if (ie->n_wds) { /* wds is NULL without watches */
		memcpy(order, ie->wds, ie->n_wds * sizeof(*order));
		qsort(order, ie->n_wds, sizeof(*order), cmp_wd);
	}
	fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (fd < 0) {
		snprintf(why, len, "file %u: inotify_init1: %s", e->id, strerror(errno));
		ret = -errno;
		goto out_free;
	}
	for (size_t i = 0; !ret && i < ie->n_wds; i++) {
		ret = wd_add(fd, order[i], what, sizeof(what));
		if (ret)
			snprintf(why, len, "file %u: inotify watch %u on inode %" PRIu64 " of %u:%u: %s",
				 e->id, order[i]->wd, order[i]->ino, major(order[i]->dev),
				 minor(order[i]->dev), what);
	}
	if (ret) {
		close(fd);
		goto out_free;
	}
	drain(fd);
	if (fcntl(fd, F_SETFL, (int)e->flags & O_NONBLOCK) < 0) {
		ret = -errno;
		snprintf(why, len, "file %u: inotify: F_SETFL: %s", e->id, strerror(errno));
		close(fd);
		goto out_free;
	}
	ret = rst_fstore_put(st, e->id, fd, why, len);
out_free:
	free(order);
	return ret;
}

const struct fd_kind fd_kind_inotify = {
	.kind = FILE_KIND__FD_INOTIFY,
	.name = "inotify",
	.match = inotify_match,
	.dump = inotify_dump,
	.verify = inotify_verify,
	.open = inotify_open,
};
