/*
 * restore-verify.c - the semantic checks of a loaded dump: the VMA list,
 * the pagemap against it, the pages file (header, exact size, every block
 * checksum), the fd table, this machine's vdso, the POSIX timers, and the
 * files the process maps or has open. Runs before restore creates anything.
 */
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "fdio.h"
#include "image.h"
#include "log.h"
#include "plugin.h"
#include "as-owner.h"
#include "fd-kind.h"
#include "restore-fds.h"
#include "restore-shmem.h"
#include "restore-verify.h"

#define MAX_FD (1U << 20)
#define CRC_CHUNK (1UL << 20)

int rst_verify_fail(const char *name, int ret, const char *fmt, ...)
{
	char why[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pr_err("%s: %s", name, why);
	return ret;
}

static bool vma_is_file(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_FILE_PRIVATE || v->kind == VMA_KIND__VMA_FILE_SHARED;
}

/* A mapping of a deleted file: its files.img entry is that deleted file (dump-delmap.c). */
static const char *vma_deleted_why(const struct rst_images *im, const VmaEntry *v)
{
	const FileEntry *e = rst_file_by_id(im, v->deleted_file_id);

	if (!vma_is_file(v))
		return "a deleted file's id on a mapping of no file";
	if (!e || e->kind != FILE_KIND__FD_REG || !e->reg || !e->reg->deleted ||
	    !v->has_dev || !v->has_ino || e->reg->dev != v->dev || e->reg->ino != v->ino)
		return "maps a deleted file that files.img does not have";
	return NULL;
}

static const char *vma_why(const struct rst_images *im, const VmaEntry *v, uint64_t prev_end)
{
	if (v->kind < VMA_KIND__VMA_ANON || v->kind > VMA_KIND__VMA_SHMEM)
		return "unknown kind";
	if (v->start >= v->end || (v->start | v->end | v->pgoff) & (LZ_PAGE_SIZE - 1))
		return "not a page-aligned range";
	if (v->start < prev_end)
		return "overlaps the previous VMA or is out of order";
	if (v->end > LZ_BLOB_TASK_SIZE && v->kind != VMA_KIND__VMA_VSYSCALL)
		return "beyond the 47-bit address space";
	if (vma_is_file(v) && (!v->path || v->path[0] != '/'))
		return "file mapping without an absolute path";
	if (v->has_deleted_file_id)
		return vma_deleted_why(im, v);
	if (v->kind == VMA_KIND__VMA_SHMEM)
		return rst_shmem_vma_why(im, v);
	return NULL;
}

static int verify_vmas(const struct rst_images *im, const struct rst_task *t, const char *name)
{
	const MmEntry *mm = t->mm;
	uint64_t prev_end = 0;
	char why[200];
	int ret;

	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];
		const char *w = vma_why(im, v, prev_end);

		if (w)
			return rst_verify_fail(name, -EBADMSG, "VMA %#" PRIx64 "-%#" PRIx64 ": %s", v->start,
				    v->end, w);
		prev_end = v->end;
	}
	if (!mm->exe_path || mm->exe_path[0] != '/')
		return rst_verify_fail(name, -EBADMSG, "no absolute executable path");
	ret = plg_check_vdso(mm, why, sizeof(why));
	if (ret)
		return rst_verify_fail(name, ret, "%s", why);
	return 0;
}

/* vaddr + nr_pages pages, refused when it does not fit in 64 bits. */
static int run_end(const PagemapEntry *e, uint64_t *end)
{
	uint64_t len;

	if (__builtin_mul_overflow(e->nr_pages, (uint64_t)LZ_PAGE_SIZE, &len) ||
	    __builtin_add_overflow(e->vaddr, len, end))
		return -EOVERFLOW;
	return 0;
}

static const char *pm_entry_why(const PagemapEntry *e, const VmaEntry *v, uint64_t nr_data,
				uint64_t prev_end)
{
	uint32_t kind = e->flags & (LZ_PE_PRESENT | LZ_PE_ZERO);
	uint64_t end;

	if (!e->nr_pages || e->nr_pages > (LZ_BLOB_TASK_SIZE >> LZ_PAGE_SHIFT) ||
	    (e->vaddr & (LZ_PAGE_SIZE - 1)))
		return "not a page-aligned range";
	if (run_end(e, &end))
		return "runs past the end of the address space";
	if (e->vaddr < prev_end)
		return "overlaps the previous run or is out of order";
	if (!v || e->vaddr < v->start || end > v->end)
		return "not inside one VMA";
	if (kind != LZ_PE_PRESENT && kind != LZ_PE_ZERO)
		return "must be either present or zero";
	if (kind == LZ_PE_PRESENT &&
	    (!e->has_data_page || e->data_page > nr_data || nr_data - e->data_page < e->nr_pages))
		return "data pages beyond the pages file";
	return NULL;
}

static int verify_pagemap(const struct rst_task *t)
{
	const PagemapHead *h = t->pm_head;
	const MmEntry *mm = t->mm;
	uint64_t prev_end = 0, nr_blocks;
	bool warned = false;
	char name[64];
	size_t j = 0;

	snprintf(name, sizeof(name), "pagemap-%u.img", t->pid);
	if (h->pid != t->pid)
		return rst_verify_fail(name, -EBADMSG, "belongs to pid %u, not %u", h->pid, t->pid);
	if (h->nr_data_pages && !h->block_pages)
		return rst_verify_fail(name, -EBADMSG, "checksum block size is 0");
	nr_blocks = h->block_pages ? h->nr_data_pages / h->block_pages +
					     !!(h->nr_data_pages % h->block_pages) : 0;
	if (h->n_block_crc != nr_blocks)
		return rst_verify_fail(name, -EBADMSG, "%zu block checksums for %" PRIu64 " blocks",
			    h->n_block_crc, nr_blocks);
	for (size_t i = 0; i < t->nr_pm; i++) {
		const PagemapEntry *e = t->pm[i];
		const VmaEntry *v;
		const char *w;

		while (j < mm->n_vmas && mm->vmas[j]->end <= e->vaddr)
			j++;
		v = j < mm->n_vmas ? mm->vmas[j] : NULL;
		w = pm_entry_why(e, v, h->nr_data_pages, prev_end);
		if (w)
			return rst_verify_fail(name, -EBADMSG, "run at %#" PRIx64 " (%" PRIu64 " pages): %s",
				    e->vaddr, e->nr_pages, w);
		if (v->kind == VMA_KIND__VMA_FILE_SHARED && (e->flags & LZ_PE_PRESENT) && !warned) {
			pr_warn("%s: pages of shared file mapping %s are not written back", name,
				v->path);
			warned = true;
		}
		run_end(e, &prev_end); /* checked by pm_entry_why */
	}
	return 0;
}

/*
 * Byte offset of page FIRST and length of NR pages in the pages file; both
 * are below its size (checked exactly in verify_pages), so cannot overflow
 * once that check passed; checked here all the same.
 */
static int pages_span(uint64_t first, uint64_t nr, uint64_t *off, uint64_t *len)
{
	if (__builtin_mul_overflow(first, (uint64_t)LZ_PAGE_SIZE, off) ||
	    __builtin_add_overflow(*off, (uint64_t)LZ_PAGES_HDR_SIZE, off) ||
	    __builtin_mul_overflow(nr, (uint64_t)LZ_PAGE_SIZE, len) || *off > INT64_MAX ||
	    *len > INT64_MAX - *off)
		return -EOVERFLOW;
	return 0;
}

static int pages_block_crc(int fd, uint64_t first, uint64_t nr, uint8_t *buf, size_t chunk,
			   uint32_t *crc)
{
	uint64_t off, left;

	if (pages_span(first, nr, &off, &left))
		return -EOVERFLOW;

	*crc = 0;
	while (left) {
		size_t n = MIN(left, chunk);
		int ret = fdio_pread_all(fd, buf, n, (off_t)off);

		if (ret)
			return ret;
		*crc = lz_crc32c(*crc, buf, n);
		off += n;
		left -= n;
	}
	return 0;
}

/*
 * Lazy restore: mark the blocks holding data the blob reads itself (runs
 * plg_run_is_lazy() leaves to the daemon are not read here). NULL: all.
 */
static uint8_t *eager_blocks(const struct rst_images *im, const struct rst_task *t)
{
	const PagemapHead *h = t->pm_head;
	uint8_t *want;
	size_t j = 0;

	if (!im->lazy || !h->n_block_crc)
		return NULL;
	want = calloc(h->n_block_crc, 1);
	if (!want)
		return NULL;
	for (size_t i = 0; i < t->nr_pm; i++) {
		const PagemapEntry *e = t->pm[i];

		while (j < t->mm->n_vmas && t->mm->vmas[j]->end <= e->vaddr)
			j++;
		if (!(e->flags & LZ_PE_PRESENT) || !e->nr_pages ||
		    (j < t->mm->n_vmas && plg_run_is_lazy(t->mm->vmas[j], e->flags)))
			continue;
		/* data_page + nr_pages <= nr_data_pages: checked by verify_pagemap */
		for (uint64_t b = e->data_page / h->block_pages;
		     b <= (e->data_page + e->nr_pages - 1) / h->block_pages && b < h->n_block_crc; b++)
			want[b] = 1;
	}
	return want;
}

static int verify_pages_data(const struct rst_pages_check *pc, const uint8_t *want)
{
	/* One block at a time: a buffer of a block (64 KiB) comes from the heap,
	 * not a fresh 1 MiB mapping faulted in and unmapped again. */
	size_t chunk = MIN(CRC_CHUNK, MAX((size_t)pc->block_pages, (size_t)1) * 4096);
	uint8_t *buf = malloc(chunk);
	int ret = 0;

	if (!buf)
		return rst_verify_fail(pc->name, -ENOMEM, "out of memory");
	if (!want)
		posix_fadvise(pc->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (size_t b = 0; b < pc->nr_crc; b++) {
		uint64_t first = (uint64_t)b * pc->block_pages;
		uint64_t nr = MIN((uint64_t)pc->block_pages, pc->nr_pages - first);
		uint32_t crc;

		if (want && !want[b])
			continue;

		ret = pages_block_crc(pc->fd, first, nr, buf, chunk, &crc);
		if (ret) {
			rst_verify_fail(pc->name, ret, "read: %s", strerror(-ret));
			break;
		}
		if (crc != pc->crc[b]) {
			ret = rst_verify_fail(pc->name, -EBADMSG,
				   "checksum mismatch in pages %" PRIu64 "-%" PRIu64 " (corrupted)",
				   first, first + nr - 1);
			break;
		}
	}
	free(buf);
	return ret;
}

int rst_verify_pages_file(const struct rst_images *im, const struct rst_pages_check *pc,
			  const uint8_t *want)
{
	const char *name = pc->name, *why = NULL;
	uint64_t nr = pc->nr_pages, size, len;
	struct lz_pages_hdr hdr;
	struct stat st;
	int ret;

	ret = fstat(pc->fd, &st) ? -errno : fdio_pread_all(pc->fd, &hdr, sizeof(hdr), 0);
	if (ret)
		return rst_verify_fail(name, ret == -ENODATA ? -EBADMSG : ret, "%s",
			    ret == -ENODATA ? "truncated (no pages header)" : strerror(-ret));
	ret = pages_hdr_check(&hdr, &im->id, &why);
	if (ret)
		return rst_verify_fail(name, ret, "%s", why);
	if (hdr.hdr_crc != rst_inv_file(im, name)->crc)
		return rst_verify_fail(name, -ESTALE, "does not match the header checksum inventory.img lists");
	if (hdr.pid != pc->owner || hdr.nr_pages != nr)
		return rst_verify_fail(name, -EBADMSG,
			    "header says %s %u, %" PRIu64 " pages; %s says %u, %" PRIu64, pc->owner_what,
			    hdr.pid, (uint64_t)hdr.nr_pages, pc->map_name, pc->owner, nr);
	if (pages_span(nr, 0, &size, &len))
		return rst_verify_fail(name, -EBADMSG, "%" PRIu64 " pages cannot be in one file", nr);
	if ((uint64_t)st.st_size != size)
		return rst_verify_fail(name, -EBADMSG, "size %" PRIu64 ", expected %" PRIu64 " (%s)",
			    (uint64_t)st.st_size, size,
			    (uint64_t)st.st_size < size ? "truncated" : "trailing data");
	return verify_pages_data(pc, want);
}

/*
 * The pages file, from the fd restore-images.c opened once: the blob reads
 * its pages from that same fd (the restored process inherits it), so what
 * is checked here is what is restored, whatever happens to the name.
 */
static int verify_pages(const struct rst_images *im, const struct rst_task *t)
{
	struct rst_pages_check pc = {
		.fd = t->pages_fd,
		.name = t->pages_name,
		.map_name = "pagemap",
		.owner_what = "pid",
		.owner = t->pid,
		.nr_pages = t->pm_head->nr_data_pages,
		.block_pages = t->pm_head->block_pages,
		.crc = t->pm_head->block_crc,
		.nr_crc = t->pm_head->n_block_crc,
	};
	uint8_t *want = eager_blocks(im, t);
	int ret;

	ret = rst_verify_pages_file(im, &pc, want);
	free(want);
	return ret;
}

/* Every entry of files.img: a kind this restore knows, its sub-message sound. */
static int verify_files(const struct rst_images *im)
{
	char why[256];

	for (size_t i = 0; i < im->nr_files; i++) {
		const FileEntry *f = im->files[i];
		const struct fd_kind *k = fd_kind_of(f->kind);
		int ret;

		if (!k)
			return rst_verify_fail("files.img", -EBADMSG, "file %u of unknown kind %d", f->id,
				    (int)f->kind);
		ret = k->verify(f, why, sizeof(why));
		for (size_t j = 0; !ret && j < f->n_locks; j++) {
			const FileLock *l = f->locks[j];

			if (l->kind != FILE_LOCK_KIND__LOCK_FLOCK &&
			    l->kind != FILE_LOCK_KIND__LOCK_POSIX &&
			    l->kind != FILE_LOCK_KIND__LOCK_OFD) {
				snprintf(why, sizeof(why), "a lock of unknown kind %d", (int)l->kind);
				ret = -EBADMSG;
			} else if (l->kind == FILE_LOCK_KIND__LOCK_POSIX && !l->has_pid) {
				snprintf(why, sizeof(why), "a POSIX lock without its process");
				ret = -EBADMSG;
			} else if (l->len > INT64_MAX || l->start > INT64_MAX) {
				snprintf(why, sizeof(why), "a lock out of range");
				ret = -EBADMSG;
			}
		}
		if (!ret && f->fown &&
		    (f->fown->pid_type > F_OWNER_PGRP || f->fown->pid < 0 || f->fown->signum > 64)) {
			snprintf(why, sizeof(why), "O_ASYNC owner %u/%d or signal %u out of range",
				 f->fown->pid_type, f->fown->pid, f->fown->signum);
			ret = -EBADMSG;
		}
		if (ret)
			return rst_verify_fail("files.img", ret, "file %u (%s): %s", f->id, k->name, why);
	}
	return 0;
}

/* Linear: a bitmap of the fds seen, files found by binary search. */
static int cmp_fd(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int rst_verify_fds(const struct rst_images *im, const struct rst_task *t)
{
	uint32_t *fds;
	char name[64];
	int ret;

	snprintf(name, sizeof(name), "fdinfo-%u.img", t->pid);
	ret = verify_files(im);
	if (ret)
		return ret;
	/* Sorted fd numbers find a twice-listed one: no bitmap of MAX_FD bits
	 * (128 KiB faulted in and unmapped again on every restore). */
	fds = malloc((t->nr_fdinfo ? t->nr_fdinfo : 1) * sizeof(*fds));
	if (!fds)
		return rst_verify_fail(name, -ENOMEM, "out of memory");
	for (size_t i = 0; i < t->nr_fdinfo; i++) {
		const FdinfoEntry *d = t->fdinfo[i];

		if (d->fd >= MAX_FD) {
			ret = rst_verify_fail(name, -EBADMSG, "fd %u out of range", d->fd);
			break;
		}
		if (!rst_file_by_id(im, d->file_id)) {
			ret = rst_verify_fail(name, -EBADMSG, "fd %u refers to file %u, not in files.img", d->fd,
				   d->file_id);
			break;
		}
		fds[i] = d->fd;
	}
	if (!ret && t->nr_fdinfo > 1) {
		qsort(fds, t->nr_fdinfo, sizeof(*fds), cmp_fd);
		for (size_t i = 1; i < t->nr_fdinfo && !ret; i++)
			if (fds[i] == fds[i - 1])
				ret = rst_verify_fail(name, -EBADMSG, "fd %u listed twice", fds[i]);
	}
	free(fds);
	return ret;
}

/* A changed file still restores, but the user should know. */
void rst_warn_changed(const char *path, const struct stat *st, bool has_ino, uint64_t ino,
		      bool has_size, uint64_t size)
{
	if (has_ino && ino != (uint64_t)st->st_ino)
		pr_warn("%s was replaced since the dump (inode %" PRIu64 ", now %" PRIu64 ")", path,
			ino, (uint64_t)st->st_ino);
	else if (has_size && S_ISREG(st->st_mode) && size != (uint64_t)st->st_size)
		pr_warn("%s changed size since the dump (%" PRIu64 ", now %" PRIu64 ")", path, size,
			(uint64_t)st->st_size);
}

static int verify_files_exist(const struct rst_task *t)
{
	const MmEntry *mm = t->mm;
	struct stat st;

	if (stat(mm->exe_path, &st))
		return rst_verify_fail(mm->exe_path, -errno, "%s (the executable)", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return rst_verify_fail(mm->exe_path, -EINVAL, "a %s, dumped as a regular file (the executable)",
			    rst_file_type_name(st.st_mode));
	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];

		if (!vma_is_file(v) || v->has_deleted_file_id) /* deleted: made from the images */
			continue;
		if (stat(v->path, &st))
			return rst_verify_fail(v->path, -errno, "%s (mapped at %#" PRIx64 ")", strerror(errno),
				    v->start);
		if (!S_ISREG(st.st_mode))
			return rst_verify_fail(v->path, -EINVAL,
				    "a %s, dumped as a regular file (mapped at %#" PRIx64 ")",
				    rst_file_type_name(st.st_mode), v->start);
		rst_warn_changed(v->path, &st, v->has_ino, v->ino, false, 0);
	}
	return 0;
}

/*
 * A /proc file of a process's own (reg proc_self) is the first holder's
 * (as-owner.h: its owner); another holder must be a descendant of it (it
 * inherited the fd), which reopens it under the owner's restored pid.
 */
static bool proc_self_unreachable(const struct rst_images *im, const struct rst_task *t,
				  uint32_t id)
{
	const struct rst_task *o = as_owner_of_file(im, id);
	int i = (int)(t - im->tasks);

	for (size_t depth = 0; i >= 0 && depth <= im->nr_tasks; depth++) {
		if (&im->tasks[i] == o)
			return false;
		i = im->tasks[i].parent;
	}
	return true;
}

/*
 * What each fd's description needs on this machine, through its kind (a
 * FIFO in a file's place would block). A description shared by several
 * fds is checked once per process: cheap, and the fd named.
 */
static int check_task_files(const struct rst_images *im, const struct rst_task *t)
{
	for (size_t i = 0; i < t->nr_fdinfo; i++) {
		const FileEntry *f = rst_file_by_id(im, t->fdinfo[i]->file_id);
		const struct fd_kind *k = fd_kind_of(f->kind);
		char why[512];
		int ret;

		if (f->kind == FILE_KIND__FD_REG && f->reg && f->reg->proc_self &&
		    proc_self_unreachable(im, t, f->id)) {
			pr_err("%s: a /proc file of a process that is not this one or an ancestor "
			       "(process %u, fd %u)", f->reg->path, t->pid, t->fdinfo[i]->fd);
			return -EBADMSG;
		}
		if (!k->check)
			continue;
		ret = k->check(f, why, sizeof(why));
		if (ret) {
			pr_err("%s (process %u, fd %u)", why, t->pid, t->fdinfo[i]->fd);
			return ret;
		}
	}
	return 0;
}

/*
 * Working and root directory: still directories, no symbolic link in their
 * paths (the dumped ones, from /proc/PID/cwd, had none). Each process opens
 * them as itself later (rst_task_fs); this names a planted link before
 * anything is created.
 */
static int check_task_dirs(const struct rst_task *t)
{
	const char *const what[2] = { "working directory", "root directory" };
	const char *path[2] = { t->fs->cwd, t->fs->root };

	for (int i = 0; i < 2; i++) {
		int fd = as_owner_open_nolinks(path[i], O_PATH | O_DIRECTORY);

		if (fd < 0) {
			pr_err("%s %s (process %u): %s", what[i], path[i], t->pid,
			       fd == -ELOOP ? "a symbolic link in its path (the dumped path had "
					      "none): refused" : strerror(-fd));
			return fd;
		}
		close(fd);
	}
	return 0;
}

int rst_verify_files(const struct rst_images *im)
{
	for (size_t i = 0; i < im->nr_tasks; i++) {
		const struct rst_task *t = &im->tasks[i];
		int ret = rst_task_zombie(t) ? 0 : check_task_dirs(t) ?: check_task_files(im, t);

		if (ret)
			return ret;
	}
	return 0;
}

/* core-<tid>.img of every thread: its tid, the xsave size of this dump. */
static int verify_core(const struct rst_images *im, const struct rst_task *t)
{
	char name[64];

	for (size_t i = 0; i < t->nr_cores; i++) {
		const CoreEntry *c = t->cores[i];
		uint32_t tid = t->pstree->threads[i];

		snprintf(name, sizeof(name), "core-%u.img", tid);
		if (c->tid != tid)
			return rst_verify_fail(name, -EBADMSG, "thread %u, expected %u", c->tid, tid);
		if (c->xsave.len != im->inv->xsave_size)
			return rst_verify_fail(name, -EBADMSG, "xsave state of %zu bytes, inventory says %u",
				    c->xsave.len, im->inv->xsave_size);
	}
	return 0;
}

int rst_verify_mm(const struct rst_images *im, const struct rst_task *t)
{
	char name[64];
	int ret;

	snprintf(name, sizeof(name), "mm-%u.img", t->pid);
	ret = verify_core(im, t);
	if (!ret)
		ret = verify_vmas(im, t, name);
	if (!ret)
		ret = verify_pagemap(t);
	return ret;
}

/* task-<pid>.img: its POSIX timers (plugin/timers.c). */
static int verify_timers(const struct rst_task *t)
{
	char name[64], why[200];
	int ret;

	snprintf(name, sizeof(name), "task-%u.img", t->pid);
	ret = plg_check_timers(t->task, t->pstree->threads, t->pstree->n_threads, why,
			       sizeof(why));
	return ret ? rst_verify_fail(name, ret, "%s", why) : 0;
}

static int verify_task(const struct rst_images *im, const struct rst_task *t)
{
	int ret;

	ret = rst_verify_mm(im, t);
	if (!ret)
		ret = verify_timers(t);
	if (!ret)
		ret = verify_pages(im, t);
	if (!ret)
		ret = rst_verify_fds(im, t);
	if (!ret)
		ret = verify_files_exist(t);
	return ret;
}

int rst_verify(const struct rst_images *im)
{
	int ret = rst_shmem_verify(im);

	if (ret)
		return ret;
	for (size_t i = 0; i < im->nr_tasks; i++) {
		ret = rst_task_zombie(&im->tasks[i]) ? 0 : verify_task(im, &im->tasks[i]);
		if (ret)
			return ret;
	}
	return 0;
}
