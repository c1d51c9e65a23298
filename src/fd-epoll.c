/*
 * fd-epoll.c - epoll instances and their interest lists (issue 7, item 6).
 *
 * The kernel keys an epoll item on (fd number, file): /proc/PID/fdinfo of
 * the epoll fd lists each item's fd number (tfd), events and data. Dump
 * keeps them, after checking with kcmp(KCMP_EPOLL_TFD) that fd tfd of the
 * process holding the epoll fd is still the very file the item watches:
 * an item whose fd was closed (or moved by dup2) since, its file kept
 * alive elsewhere, cannot be added again by number, and is refused by name.
 * So is an epoll fd the tree does not hold at the number it was dumped at.
 *
 * Restore creates an empty epoll in lazarus (fd store) and fills its list
 * in each process that holds it, once all its fds are at their numbers
 * (post): EPOLL_CTL_ADD with the dumped events and data. A second process
 * sharing the epoll finds the items there (EEXIST) and goes on. Nested
 * epoll needs nothing more: an epoll fd is a file like any other.
 *
 * Readiness is recomputed by the kernel on EPOLL_CTL_ADD: a level-triggered
 * item that was ready is reported again; an edge-triggered one reports its
 * current state once more even if the process had already consumed that
 * edge; an EPOLLONESHOT item that had fired stays disabled (its events are
 * only the flag bits, as the kernel kept them).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-files.h"
#include "fd-event.h"
#include "fd-fdinfo.h"
#include "restore-images.h"

#define KCMP_EPOLL_TFD 7 /* include/uapi/linux/kcmp.h */

struct kcmp_epoll_slot { /* include/uapi/linux/kcmp.h */
	uint32_t efd, tfd, toff;
};
_Static_assert(sizeof(struct kcmp_epoll_slot) == 12, "kcmp_epoll_slot is the kernel's");

static bool epoll_match(const struct fd_probe *p)
{
	return !strcmp(p->link, "anon_inode:[eventpoll]");
}

/* The item on fd TFD of the epoll at fd EPFD of PID still watches fd TFD of PID. */
static int item_check(pid_t pid, int epfd, uint32_t tfd)
{
	struct kcmp_epoll_slot slot = { (uint32_t)epfd, tfd, 0 };
	long r = syscall(SYS_kcmp, pid, pid, KCMP_EPOLL_TFD, (unsigned long)tfd,
			 (unsigned long)&slot);

	if (r == 0)
		return 0;
	if (r < 0 && errno != EBADF && errno != ENOENT) {
		pr_err("process %d fd %d: epoll item fd %u: kcmp: %s", pid, epfd, tfd,
		       strerror(errno));
		return -errno;
	}
	pr_err("process %d fd %d: epoll watches a file as fd %u, which is not that file's fd in "
	       "the process (closed or replaced since, the file kept open elsewhere): not "
	       "supported", pid, epfd, tfd);
	return -EOPNOTSUPP;
}

static int epoll_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	struct fdi_epoll_item *it;
	EpollEntry *ee = NULL;
	size_t nr;
	int ret;

	(void)imgs;
	ret = fdi_parse_epoll(p->fdinfo, &it, &nr);
	if (ret) {
		pr_err("process %d fd %d: epoll: /proc/%d/fdinfo/%d: %s", p->pid, p->fd, p->pid,
		       p->fd, ret == -ENOMEM ? "out of memory" : "cannot parse it");
		return ret == -ENOMEM ? ret : -EOPNOTSUPP;
	}
	for (size_t i = 0; i < nr; i++) {
		uint32_t toff = 0;

		for (size_t j = 0; j < i; j++)
			toff += it[j].tfd == it[i].tfd;
		if (toff) {
			pr_err("process %d fd %d: epoll watches two files as fd %u: not supported",
			       p->pid, p->fd, it[i].tfd);
			ret = -EOPNOTSUPP;
			goto out_free;
		}
		ret = item_check(p->pid, p->fd, it[i].tfd);
		if (ret)
			goto out_free;
	}
	ret = -ENOMEM;
	ee = malloc(sizeof(*ee));
	if (!ee)
		goto out_free;
	epoll_entry__init(ee);
	ee->tfds = calloc(nr + 1, sizeof(*ee->tfds));
	if (!ee->tfds)
		goto out_free;
	for (size_t i = 0; i < nr; i++) {
		EpollTfdEntry *t = malloc(sizeof(*t));

		if (!t)
			goto out_free;
		epoll_tfd_entry__init(t);
		t->tfd = it[i].tfd;
		t->events = it[i].events;
		t->data = it[i].data;
		ee->tfds[ee->n_tfds++] = t;
	}
	e->epoll = ee;
	ee = NULL;
	ret = 0;
	pr_debug("process %d fd %d: epoll with %zu items", p->pid, p->fd, nr);
out_free:
	if (ee)
		epoll_entry__free_unpacked(ee, NULL);
	free(it);
	return ret;
}

/* The entry of file ID in TAB; NULL if none. */
static const FileEntry *entry_of(const struct files_table *tab, uint32_t id)
{
	if (id >= 1 && id <= tab->nr && tab->files[id - 1].e->id == id)
		return tab->files[id - 1].e;
	for (size_t i = 0; i < tab->nr; i++)
		if (tab->files[i].e->id == id)
			return tab->files[i].e;
	return NULL;
}

int fd_epoll_dump_check(const struct files_table *tab, struct files_dump *const *fs, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		for (size_t i = 0; i < fs[k]->nr_fds; i++) {
			const FileEntry *e = entry_of(tab, fs[k]->fds[i].file_id);

			if (!e || e->kind != FILE_KIND__FD_EPOLL || !e->epoll)
				continue;
			for (size_t j = 0; j < e->epoll->n_tfds; j++) {
				int ret = item_check(fs[k]->pid, fs[k]->fds[i].fd,
						     e->epoll->tfds[j]->tfd);

				if (ret)
					return ret;
			}
		}
	}
	return 0;
}

static int epoll_verify(const FileEntry *e, char *why, size_t len)
{
	const EpollEntry *ee = e->epoll;

	if (!ee) {
		snprintf(why, len, "an epoll without its epoll entry");
		return -EBADMSG;
	}
	for (size_t i = 0; i < ee->n_tfds; i++) {
		if (ee->tfds[i]->tfd > INT32_MAX) {
			snprintf(why, len, "epoll item on fd %u", ee->tfds[i]->tfd);
			return -EBADMSG;
		}
		for (size_t j = 0; j < i; j++)
			if (ee->tfds[j]->tfd == ee->tfds[i]->tfd) {
				snprintf(why, len, "two epoll items on fd %u", ee->tfds[i]->tfd);
				return -EBADMSG;
			}
	}
	return 0;
}

static int epoll_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		      char *why, size_t len)
{
	int fd;

	(void)im;
	fd = epoll_create1(EPOLL_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "file %u: epoll_create1: %s", e->id, strerror(errno));
		return -errno;
	}
	return rst_fstore_put(st, e->id, fd, why, len);
}

/* In the restored process, FD (the epoll) at its number and every fd at theirs. */
static int epoll_post(const FileEntry *e, const struct rst_task *t, int fd, char *why, size_t len)
{
	const EpollEntry *ee = e->epoll;

	for (size_t i = 0; i < ee->n_tfds; i++) {
		const EpollTfdEntry *it = ee->tfds[i];
		struct epoll_event ev = { .events = it->events, .data.u64 = it->data };

		if (!epoll_ctl(fd, EPOLL_CTL_ADD, (int)it->tfd, &ev) || errno == EEXIST)
			continue;
		snprintf(why, len, "process %u: epoll fd %d (file %u): adding fd %u (events %#x): %s",
			 t->pid, fd, e->id, it->tfd, it->events, strerror(errno));
		return -errno;
	}
	return 0;
}

const struct fd_kind fd_kind_epoll = {
	.kind = FILE_KIND__FD_EPOLL,
	.name = "epoll",
	.match = epoll_match,
	.dump = epoll_dump,
	.verify = epoll_verify,
	.open = epoll_open,
	.post = epoll_post,
};
