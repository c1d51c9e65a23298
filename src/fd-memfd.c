/*
 * fd-memfd.c - memfds held as file descriptors.
 *
 * A memfd is a shared memory object (dump-shmem.c): its name, size, mode,
 * seals and content are dumped once in shmem.img, together with mappings
 * of the same memfd by any process of the tree, and the fd's entry only
 * names that object (memfd_file_entry.shmem_id, set by dump-shmem.c once
 * every process's fds and VMAs are known) and its offset. Restore makes the
 * object before the store (restore-shmem.c) and opens a description of its
 * own on it here through /proc/self/fd, with the dumped access mode,
 * status flags and offset: so the fd and every mapping of the same memfd
 * stay one object, in one process or across the tree.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "log.h"
#include "fd-kind.h"
#include "restore-shmem.h"

static bool memfd_match(const struct fd_probe *p)
{
	size_t n = strlen(p->link), m = strlen(" (deleted)");

	return S_ISREG(p->st.st_mode) && !(p->flags & O_PATH) && !strncmp(p->link, "/memfd:", 7) &&
	       n > m && !strcmp(p->link + n - m, " (deleted)");
}

static int memfd_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	MemfdFileEntry *m = malloc(sizeof(*m));

	(void)imgs;
	if (!m)
		return -ENOMEM;
	memfd_file_entry__init(m);
	e->memfd = m;
	m->pos = p->pos;
	m->shmem_id = 0; /* dump-shmem.c, shmem_link_files() */
	return 0;
}

static int memfd_verify(const FileEntry *e, char *why, size_t len)
{
	if (!e->memfd || !e->memfd->shmem_id) {
		snprintf(why, len, "memfd without its shared memory object");
		return -EBADMSG;
	}
	return 0;
}

static int memfd_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		      char *why, size_t len)
{
	int flags = (int)(e->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_NOCTTY));
	int k = rst_shmem_index(im, e->memfd->shmem_id), fd;
	char link[64];

	if (k < 0 || !im->shm || im->shm[k].fd < 0 ||
	    im->shmem[k]->kind != SHMEM_KIND__SHMEM_MEMFD) {
		snprintf(why, len, "memfd: shared memory object %u is not a memfd of shmem.img",
			 e->memfd->shmem_id);
		return -EBADMSG;
	}
	/* A description of its own: the object's fd is lazarus's, for the mappings. */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", im->shm[k].fd);
	fd = open(link, flags | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "memfd %s: reopening: %s", im->shmem[k]->name, strerror(errno));
		return -errno;
	}
	if (lseek(fd, (off_t)e->memfd->pos, SEEK_SET) < 0) {
		snprintf(why, len, "memfd %s: seek to %" PRIu64 ": %s", im->shmem[k]->name,
			 e->memfd->pos, strerror(errno));
		close(fd);
		return -errno;
	}
	pr_debug("file %u: memfd %s flags %#o pos %" PRIu64, e->id, im->shmem[k]->name, e->flags,
		 e->memfd->pos);
	return rst_fstore_put(st, e->id, fd, why, len);
}

const struct fd_kind fd_kind_memfd = {
	.kind = FILE_KIND__FD_MEMFD,
	.name = "memfd",
	.match = memfd_match,
	.dump = memfd_dump,
	.verify = memfd_verify,
	.open = memfd_open,
};
