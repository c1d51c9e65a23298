/*
 * dump-delmap.c - mappings of deleted files (issue 7 item 2).
 *
 * A file a process maps and then unlinks has no name to be reopened by at
 * restore. Its content is saved once, as a deleted regular file of
 * files.img (FD_REG with reg.deleted, content in fddata-<id>.img: fd-reg.c,
 * fd-data.c): the entry of an fd of the same inode when the tree holds one,
 * else a new entry no fd refers to, read through /proc/PID/map_files. Each
 * such VMA names that entry (vma_entry.deleted_file_id). Restore makes the
 * file once (an O_TMPFILE in its directory) and maps every VMA of it from
 * that one file (restore-fds.c), so a MAP_SHARED mapping and an fd of the
 * same deleted file stay one file: a write through either is seen in the
 * other. Copied-on-write pages of private mappings are in the pages image,
 * as for any private file mapping.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-delmap.h"

/* The deleted regular file of TAB with this inode: NULL if none. */
static const FileEntry *deleted_entry(const struct files_table *tab, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < tab->nr; i++) {
		const FileEntry *e = tab->files[i].e;

		if (e->kind == FILE_KIND__FD_REG && e->reg && e->reg->deleted &&
		    e->reg->dev == dev && e->reg->ino == ino)
			return e;
	}
	return NULL;
}

/* A new entry for the file V maps, with its content. */
static int add_entry(struct files_table *tab, pid_t pid, const struct dump_vma *v,
		     struct dump_imgs *imgs, const FileEntry **out)
{
	char link[96];
	struct dump_file *nf;
	struct stat st;
	FileEntry *e = NULL;
	RegFileEntry *r = NULL;
	int fd, ret;

	snprintf(link, sizeof(link), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, v->start,
		 v->end);
	fd = open(link, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 || fstat(fd, &st)) {
		ret = -errno;
		pr_perror("process %d: opening the deleted file %s it maps at %#" PRIx64, pid,
			  v->path, v->start);
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_dev != v->dev ||
	    (uint64_t)st.st_ino != v->ino || st.st_nlink) {
		pr_err("process %d: the deleted file %s mapped at %#" PRIx64 " changed while frozen",
		       pid, v->path, v->start);
		ret = -ESTALE;
		goto out_close;
	}
	if ((uint64_t)st.st_size > FD_DATA_MAX) {
		pr_err("process %d: deleted file %s mapped at %#" PRIx64 " has %jd bytes: more than "
		       "the images keep (%llu MiB): not supported", pid, v->path, v->start,
		       (intmax_t)st.st_size, FD_DATA_MAX >> 20);
		ret = -EOPNOTSUPP;
		goto out_close;
	}
	ret = -ENOMEM;
	nf = realloc(tab->files, (tab->nr + 1) * sizeof(*nf));
	if (!nf)
		goto out_close;
	tab->files = nf;
	e = malloc(sizeof(*e));
	r = malloc(sizeof(*r));
	if (!e || !r)
		goto out_free;
	file_entry__init(e);
	reg_file_entry__init(r);
	e->id = (uint32_t)tab->nr + 1;
	e->kind = FILE_KIND__FD_REG;
	e->flags = O_RDWR; /* how restore makes it; each mapping opens it its own way */
	e->reg = r;
	r->path = strdup(v->path);
	if (!r->path)
		goto out_free;
	r->mode = st.st_mode;
	r->has_size = r->has_mtime_ns = r->has_dev = r->has_ino = true;
	r->size = (uint64_t)st.st_size;
	r->mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000ULL + (uint64_t)st.st_mtim.tv_nsec;
	r->dev = v->dev;
	r->ino = v->ino;
	r->has_deleted = r->deleted = true;
	r->has_uid = r->has_gid = true;
	r->uid = st.st_uid;
	r->gid = st.st_gid;
	ret = fd_data_dump(imgs, e->id, fd, r->size);
	if (ret) {
		pr_err("process %d: saving the content of deleted file %s mapped at %#" PRIx64 ": %s",
		       pid, v->path, v->start, strerror(-ret));
		goto out_free;
	}
	tab->files[tab->nr] = (struct dump_file){ .e = e, .pid = pid, .fd = -1, .dev = v->dev,
						  .ino = v->ino };
	tab->nr++;
	*out = e;
	close(fd);
	return 0;
out_free:
	if (e)
		protobuf_c_message_free_unpacked(&e->base, NULL);
	else
		free(r);
out_close:
	if (fd >= 0)
		close(fd);
	return ret;
}

int delmap_collect(struct mm_dump *const *mms, size_t nr, struct files_table *tab,
		   struct dump_imgs *imgs)
{
	for (size_t i = 0; i < nr; i++) {
		for (size_t j = 0; j < mms[i]->nr_vmas; j++) {
			struct dump_vma *v = &mms[i]->vmas[j];
			const FileEntry *e;
			int ret;

			if (!v->deleted)
				continue;
			e = deleted_entry(tab, v->dev, v->ino);
			if (!e) {
				ret = add_entry(tab, mms[i]->pid, v, imgs, &e);
				if (ret)
					return ret;
			}
			v->file_id = e->id;
			pr_debug("process %d: %#" PRIx64 "-%#" PRIx64 " maps deleted file %s: file %u",
				 mms[i]->pid, v->start, v->end, v->path, e->id);
		}
	}
	return 0;
}
