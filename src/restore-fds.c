/*
 * restore-fds.c - fds of the process being restored.
 *
 * Runs in the restored process while it is still a copy of lazarus. First
 * the fds restore itself needs (status pipe, log, pages image as verified, executable,
 * mapped files) move to the top of RLIMIT_NOFILE and everything else but
 * the store is closed; then the target's fds are dup'ed from the store at
 * their numbers and the store is closed. The store (fd-kind.h) is opened
 * once by lazarus before the tree is created and inherited by every
 * process: an open file description shared by several fds, of one process
 * or of several, is one, with one offset and one set of flags, as it was.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "compiler.h"
#define LOG_PREFIX "restore: "
#include "log.h"
#include "as-owner.h"
#include "fd-desc.h"
#include "fd-kind.h"
#include "restore-fds.h"
#include "restore-shmem.h"

static int svc_add(struct rst_svc *s, int fd)
{
	for (unsigned i = 0; i < s->nr_all; i++)
		if (s->all[i] == fd)
			return 0;
	s->all[s->nr_all++] = fd;
	return 0;
}

const char *rst_file_type_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return "regular file";
	case S_IFDIR:
		return "directory";
	case S_IFCHR:
		return "character device";
	case S_IFBLK:
		return "block device";
	case S_IFIFO:
		return "FIFO";
	case S_IFSOCK:
		return "socket";
	case S_IFLNK:
		return "symbolic link";
	default:
		return "file of unknown type";
	}
}

int rst_open_typed(const char *path, int flags, mode_t want, char *what, size_t len)
{
	struct stat st;
	int fd, err;

	fd = open(path, flags | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		snprintf(what, len, "%s", strerror(err));
		return -err;
	}
	if (fstat(fd, &st)) {
		err = errno;
		snprintf(what, len, "fstat: %s", strerror(err));
		close(fd);
		return -err;
	}
	if ((st.st_mode & S_IFMT) != (want & S_IFMT)) {
		snprintf(what, len, "a %s, dumped as a %s", rst_file_type_name(st.st_mode),
			 rst_file_type_name(want));
		close(fd);
		return -EINVAL;
	}
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) {
		err = errno;
		snprintf(what, len, "clearing O_NONBLOCK: %s", strerror(err));
		close(fd);
		return -err;
	}
	return fd;
}

/*
 * A shared file mapping needs a file opened for writing exactly when the
 * original one had it (VmFlags "mw", VM_MAYWRITE): with it a later
 * mprotect(PROT_WRITE) works, without it that fails with EACCES.
 */
static bool vma_needs_write(const VmaEntry *v)
{
	return v->kind == VMA_KIND__VMA_FILE_SHARED &&
	       ((v->prot & PROT_WRITE) || (v->has_may_write && v->may_write));
}

/*
 * Same file, same access: one fd serves all its mappings. Opened as the
 * process itself (as-owner.h: a writable MAP_SHARED of a file it could not
 * open is never handed to it; no symlink in the path).
 */
static int vma_open(struct rst_svc *s, const struct rst_task *rt, size_t i, char *why,
		    size_t len)
{
	const MmEntry *mm = rt->mm;
	const VmaEntry *v = mm->vmas[i];
	bool shared_w = vma_needs_write(v);
	char what[PATH_MAX + 160];
	int fd;

	for (size_t j = 0; j < i; j++) {
		const VmaEntry *w = mm->vmas[j];

		if (s->vma_fds[j] >= 0 && w->kind != VMA_KIND__VMA_SHMEM && !w->has_deleted_file_id &&
		    !strcmp(w->path, v->path) && shared_w == vma_needs_write(w)) {
			s->vma_fds[i] = s->vma_fds[j];
			return 0;
		}
	}
	fd = as_owner_open_typed(rt, v->path, shared_w ? O_RDWR : O_RDONLY, S_IFREG,
				 &(struct as_owner_file){ .has_ino = v->has_ino && v->has_dev,
							  .dev = v->dev, .ino = v->ino,
							  .has_btime = v->has_btime_ns,
							  .btime_ns = v->btime_ns },
				 what, sizeof(what));
	if (fd < 0) {
		snprintf(why, len, "process %u: open (mapped at %#" PRIx64 ") %s", rt->pid, v->start,
			 what);
		return fd;
	}
	s->vma_fds[i] = fd;
	return svc_add(s, fd);
}

/*
 * A mapping of a deleted file (dump-delmap.c): lazarus made the file again
 * into the store (fd-reg.c: one O_TMPFILE per inode, for its fds and its
 * mappings alike), still open here; reopened through /proc/self/fd with
 * the access the mapping needs, so it maps the very file the process's
 * fds of it have. Same file, same access: one fd for all its mappings.
 */
static int vma_deleted_fd(struct rst_svc *s, const struct rst_images *im, const MmEntry *mm,
			  size_t i, char *why, size_t len)
{
	const VmaEntry *v = mm->vmas[i];
	bool shared_w = vma_needs_write(v);
	int src = rst_fstore_get(im->fstore, v->deleted_file_id), fd;
	char link[64];

	for (size_t j = 0; j < i; j++) {
		const VmaEntry *w = mm->vmas[j];

		if (s->vma_fds[j] >= 0 && w->has_deleted_file_id &&
		    w->deleted_file_id == v->deleted_file_id && shared_w == vma_needs_write(w)) {
			s->vma_fds[i] = s->vma_fds[j];
			return 0;
		}
	}
	if (src < 0) {
		snprintf(why, len, "deleted file %s (file %u, mapped at %#" PRIx64 ") was not made",
			 v->path, v->deleted_file_id, v->start);
		return -ENOENT;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", src);
	fd = open(link, (shared_w ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "reopening deleted file %s (mapped at %#" PRIx64 "): %s", v->path,
			 v->start, strerror(errno));
		return -errno;
	}
	s->vma_fds[i] = fd;
	return svc_add(s, fd);
}

/*
 * The executable, as the process (as-owner.h): refused to it (an
 * execute-only binary it cannot read), as lazarus only if it is the dumped
 * file (mm.img exe_dev/exe_ino/exe_btime_ns; images without them: a
 * mapping of it, without birth time).
 */
static int exe_open(const struct rst_task *rt, char *what, size_t len)
{
	const MmEntry *mm = rt->mm;
	const VmaEntry *m = NULL;
	struct as_owner_file was = { .has_ino = mm->has_exe_dev && mm->has_exe_ino,
				     .dev = mm->exe_dev, .ino = mm->exe_ino,
				     .has_btime = mm->has_exe_btime_ns,
				     .btime_ns = mm->exe_btime_ns };

	for (size_t i = 0; i < mm->n_vmas && !m && !was.has_ino; i++)
		if (mm->vmas[i]->path && mm->vmas[i]->has_ino && !strcmp(mm->vmas[i]->path, mm->exe_path))
			m = mm->vmas[i];
	if (m && m->has_dev)
		was = (struct as_owner_file){ .has_ino = true, .dev = m->dev, .ino = m->ino,
					      .has_btime = m->has_btime_ns,
					      .btime_ns = m->btime_ns };
	return as_owner_open_typed(rt, mm->exe_path, O_RDONLY, S_IFREG, &was, what, len);
}

/*
 * A shared memory object made by lazarus (restore-shmem.c), inherited: one
 * object for every process that maps it. SysV segments are attached by the
 * blob instead (no fd). A shared mapping that could not become writable
 * (no VmFlags "mw": its fd was read-only) gets a read-only open of it.
 */
static int vma_shm_fd(struct rst_svc *s, const struct rst_images *im, const VmaEntry *v,
		      size_t i, char *why, size_t len)
{
	int k = rst_shmem_index(im, v->shmem_id), fd;
	char link[64];

	if (k < 0 || !im->shm) {
		snprintf(why, len, "shared memory object %u (mapped at %#" PRIx64 ") was not made",
			 v->shmem_id, v->start);
		return -ENOENT;
	}
	fd = im->shm[k].fd;
	if (fd < 0)
		return 0; /* SysV */
	if ((v->flags & MAP_SHARED) && v->has_may_write && !v->may_write) {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		fd = open(link, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(why, len, "reopening shared memory object %u read-only: %s",
				 v->shmem_id, strerror(errno));
			return -errno;
		}
	}
	s->vma_fds[i] = fd;
	return svc_add(s, fd);
}

int rst_svc_open(struct rst_svc *s, const struct rst_task *rt, const struct rst_svc_in *in,
		 char *why, size_t len)
{
	const MmEntry *mm = rt->mm;
	char what[PATH_MAX + 160];
	int ret;

	memset(s, 0, sizeof(*s));
	s->vma_fds = malloc((mm->n_vmas + 1) * sizeof(int));
	s->all = malloc((mm->n_vmas + 7) * sizeof(int));
	if (!s->vma_fds || !s->all) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	s->status_fd = in->status_fd;
	s->release_fd = in->release_fd;
	s->go_fd = in->go_fd;
	s->uffd = in->uffd;
	s->log_fd = log_get_fd();
	svc_add(s, s->status_fd);
	if (s->release_fd >= 0)
		svc_add(s, s->release_fd);
	if (s->go_fd >= 0)
		svc_add(s, s->go_fd);
	if (s->uffd >= 0)
		svc_add(s, s->uffd);
	svc_add(s, s->log_fd);
	/*
	 * The pages file restore opened once and verified (restore-images.c),
	 * inherited through the fork: never reopened by name, so a file swapped
	 * in after verification is not what the blob reads.
	 */
	s->pages_fd = rt->pages_fd;
	svc_add(s, s->pages_fd);
	s->exe_fd = exe_open(rt, what, sizeof(what));
	if (s->exe_fd < 0) {
		snprintf(why, len, "process %u: open (the executable) %s", rt->pid, what);
		return s->exe_fd;
	}
	svc_add(s, s->exe_fd);
	for (size_t i = 0; i < mm->n_vmas; i++) {
		const VmaEntry *v = mm->vmas[i];

		s->vma_fds[i] = -1;
		if (v->kind == VMA_KIND__VMA_SHMEM) {
			ret = vma_shm_fd(s, in->im, v, i, why, len);
			if (ret)
				return ret;
			continue;
		}
		if (v->kind != VMA_KIND__VMA_FILE_PRIVATE && v->kind != VMA_KIND__VMA_FILE_SHARED)
			continue;
		if (v->has_deleted_file_id)
			ret = vma_deleted_fd(s, in->im, mm, i, why, len);
		else
			ret = vma_open(s, rt, i, why, len);
		if (ret)
			return ret;
	}
	return 0;
}

static int max_target_fd(const struct rst_task *rt)
{
	int max = -1;

	for (size_t i = 0; i < rt->nr_fdinfo; i++)
		max = MAX(max, (int)rt->fdinfo[i]->fd);
	return max;
}

/*
 * Service fds go to [nofile - n, nofile). Below them: every fd of the
 * target, and the store above those (restore-fds.h); if the soft limit is
 * too low for that, raise it up to the hard limit.
 */
static int svc_top(const struct rst_svc *s, const struct rst_task *rt,
		   const struct rst_fstore *fst, int *top, char *why, size_t len)
{
	int need = MAX(max_target_fd(rt) + 1, fst->hi + 1) + (int)s->nr_all;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		snprintf(why, len, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
		return -errno;
	}
	if (rl.rlim_cur < (rlim_t)need && rl.rlim_max >= (rlim_t)need) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			rl.rlim_cur = rl.rlim_max;
		else
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < (rlim_t)need) {
		snprintf(why, len, "fd %d of the process does not fit under RLIMIT_NOFILE %llu",
			 max_target_fd(rt), (unsigned long long)rl.rlim_cur);
		return -EMFILE;
	}
	*top = (int)MIN(rl.rlim_cur, (rlim_t)(1U << 20));
	return 0;
}

static int svc_remap(const int *from, const int *to, unsigned n, int fd)
{
	for (unsigned i = 0; i < n; i++)
		if (from[i] == fd)
			return to[i];
	return fd;
}

/* Close every fd below END but the store's (sorted by rst_fstore_put). */
static void close_but_store(const struct rst_fstore *fst, int end)
{
	int from = 0;

	for (size_t i = 0; i < fst->nr && fst->fds[i] < end; i++) {
		if (fst->fds[i] > from)
			close_range((unsigned)from, (unsigned)fst->fds[i] - 1, 0);
		from = fst->fds[i] + 1;
	}
	if (end > from)
		close_range((unsigned)from, (unsigned)end - 1, 0);
}

int rst_svc_move(struct rst_svc *s, const struct rst_task *rt, const struct rst_fstore *fst,
		 char *why, size_t len)
{
	int *to = malloc(s->nr_all * sizeof(int));
	int top = 0, ret;

	if (!to) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	ret = svc_top(s, rt, fst, &top, why, len);
	if (ret)
		goto out_free;
	s->lowest = top - (int)s->nr_all;
	for (unsigned i = 0; i < s->nr_all; i++) {
		to[i] = top - 1 - (int)i;
		/* lazarus's own fds are few and low; a clash would be a bug here. */
		if (s->all[i] >= s->lowest || dup3(s->all[i], to[i], O_CLOEXEC) < 0) {
			ret = s->all[i] >= s->lowest ? -EBUSY : -errno;
			snprintf(why, len, "move service fd %d to %d: %s", s->all[i], to[i],
				 strerror(-ret));
			goto out_free;
		}
	}
	close_but_store(fst, s->lowest);
	for (size_t i = 0; i < rt->mm->n_vmas; i++)
		s->vma_fds[i] = svc_remap(s->all, to, s->nr_all, s->vma_fds[i]);
	s->status_fd = svc_remap(s->all, to, s->nr_all, s->status_fd);
	s->release_fd = svc_remap(s->all, to, s->nr_all, s->release_fd);
	s->go_fd = svc_remap(s->all, to, s->nr_all, s->go_fd);
	s->uffd = svc_remap(s->all, to, s->nr_all, s->uffd);
	s->log_fd = svc_remap(s->all, to, s->nr_all, s->log_fd);
	s->pages_fd = svc_remap(s->all, to, s->nr_all, s->pages_fd);
	s->exe_fd = svc_remap(s->all, to, s->nr_all, s->exe_fd);
	memcpy(s->all, to, s->nr_all * sizeof(int));
	/* Errors of this process reach the user through the status pipe. */
	log_init(log_get_level(), s->log_fd);
out_free:
	free(to);
	return ret;
}

/* ------------------------------------------------------------ the store */

int rst_fstore_put(struct rst_fstore *st, uint32_t id, int fd, char *why, size_t len)
{
	int hi, err;
	size_t i;

	if (st->nr == st->cap) {
		size_t cap = st->cap ? st->cap * 2 : 64;
		uint32_t *ids = realloc(st->ids, cap * sizeof(*ids));
		int *fds = ids ? realloc(st->fds, cap * sizeof(*fds)) : NULL;

		if (ids)
			st->ids = ids;
		if (fds)
			st->fds = fds;
		if (!ids || !fds) {
			close(fd);
			snprintf(why, len, "out of memory");
			return -ENOMEM;
		}
		st->cap = cap;
	}
	hi = fcntl(fd, F_DUPFD_CLOEXEC, st->floor);
	err = errno;
	close(fd);
	if (hi < 0) {
		snprintf(why, len, "file %u: no fd above %d: %s", id, st->floor, strerror(err));
		return -err;
	}
	/* Sorted by fd, for close_but_store(). */
	for (i = st->nr; i > 0 && st->fds[i - 1] > hi; i--) {
		st->fds[i] = st->fds[i - 1];
		st->ids[i] = st->ids[i - 1];
	}
	st->fds[i] = hi;
	st->ids[i] = id;
	st->nr++;
	st->hi = MAX(st->hi, hi);
	return 0;
}

int rst_fstore_get(const struct rst_fstore *st, uint32_t id)
{
	for (size_t i = 0; i < st->nr; i++)
		if (st->ids[i] == id)
			return st->fds[i];
	return -1;
}

/*
 * The store sits above every fd number of the dump; lazarus's soft limit
 * is raised to its hard limit if the store needs it.
 */
static int fstore_floor(const struct rst_images *im, struct rst_fstore *st)
{
	int max = 2;
	struct rlimit rl;
	rlim_t need;

	for (size_t i = 0; i < im->nr_tasks; i++) {
		const struct rst_task *t = &im->tasks[i];

		for (size_t j = 0; j < t->nr_fdinfo; j++)
			max = MAX(max, (int)t->fdinfo[j]->fd);
	}
	st->floor = max + 1;
	need = (rlim_t)st->floor + im->nr_files + 64; /* 64: lazarus's own fds */
	if (getrlimit(RLIMIT_NOFILE, &rl)) {
		pr_perror("getrlimit(RLIMIT_NOFILE)");
		return -errno;
	}
	if (rl.rlim_cur < need && rl.rlim_max > rl.rlim_cur) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need) {
		pr_err("files.img: %zu open files above fd %d do not fit under RLIMIT_NOFILE %llu "
		       "(raise it to %llu)",
		       im->nr_files, max, (unsigned long long)rl.rlim_cur, (unsigned long long)need);
		return -EMFILE;
	}
	return 0;
}

int rst_fstore_open(const struct rst_images *im, struct rst_fstore *st)
{
	char why[512] = "";
	int ret;

	memset(st, 0, sizeof(*st));
	st->hi = -1;
	ret = fstore_floor(im, st);
	/* Kinds in table order: a kind may use those before it from the store. */
	for (size_t k = 0; !ret && k < nr_fd_kinds; k++) {
		const struct fd_kind *kind = fd_kinds[k];

		for (size_t i = 0; !ret && i < im->nr_files; i++) {
			const FileEntry *e = im->files[i];

			if (e->kind != kind->kind || rst_fstore_get(st, e->id) >= 0)
				continue;
			why[0] = '\0';
			ret = kind->open(e, im, st, why, sizeof(why));
			if (!ret && e->n_locks)
				ret = rst_desc_open(e, rst_fstore_get(st, e->id), why, sizeof(why));
			if (ret && why[0])
				pr_err("%s", why); /* empty: logged already */
		}
	}
	if (!ret)
		pr_info("%zu open files in the store at fds %d..%d", st->nr, st->floor, st->hi);
	return ret;
}

void rst_fstore_close(struct rst_fstore *st)
{
	for (size_t i = 0; i < st->nr; i++)
		close(st->fds[i]);
	st->nr = 0;
	st->hi = -1;
}

void rst_fstore_fini(struct rst_fstore *st)
{
	rst_fstore_close(st);
	free(st->ids);
	free(st->fds);
	st->ids = NULL;
	st->fds = NULL;
	st->cap = 0;
}

/* ------------------------------------------------------------ the fd table */

/* Each fd from the store at its number, as dumped; then the store goes. */
int rst_fds_install(const struct rst_images *im, const struct rst_task *rt,
		    struct rst_fstore *st, struct rst_svc *s, char *why, size_t len)
{
	size_t max_locks = 0;

	for (size_t i = 0; i < rt->nr_fdinfo; i++) {
		const FileEntry *e = rst_file_by_id(im, rt->fdinfo[i]->file_id);

		max_locks += e ? e->n_locks : 0;
	}
	s->nr_locks = 0;
	s->locks = max_locks ? calloc(max_locks, sizeof(*s->locks)) : NULL;
	if (max_locks && !s->locks) {
		snprintf(why, len, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < rt->nr_fdinfo; i++) {
		const FileEntry *e = rst_file_by_id(im, rt->fdinfo[i]->file_id);
		int ret;

		if (!e || e->kind != FILE_KIND__FD_REG || !e->reg || !e->reg->proc_self ||
		    rst_fstore_get(st, e->id) >= 0)
			continue;
		ret = reg_open_proc_self(e, im, rt, st, why, len);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < rt->nr_fdinfo; i++) {
		const FdinfoEntry *d = rt->fdinfo[i];
		int fd = rst_fstore_get(st, d->file_id);

		if (fd < 0 || dup3(fd, (int)d->fd, (d->fd_flags & FD_CLOEXEC) ? O_CLOEXEC : 0) < 0) {
			snprintf(why, len, "install file %u as fd %u: %s", d->file_id, d->fd,
				 fd < 0 ? "not in the store" : strerror(errno));
			return fd < 0 ? -ENOENT : -errno;
		}
	}
	/* Before POSIX locks are checked: closing any fd of a file drops them. */
	rst_fstore_close(st);
	for (size_t i = 0; i < rt->nr_fdinfo; i++) {
		const FdinfoEntry *d = rt->fdinfo[i];
		const FileEntry *e = rst_file_by_id(im, d->file_id);
		const struct fd_kind *k = fd_kind_of(e->kind);
		bool first = true;
		int ret;

		for (size_t j = 0; j < i && first; j++)
			first = rt->fdinfo[j]->file_id != d->file_id;
		ret = rst_desc_install(e, (pid_t)rt->pid, (int)d->fd, first, s->locks, &s->nr_locks,
				       why, len);
		if (!ret && k->post)
			ret = k->post(e, rt, (int)d->fd, why, len);
		if (ret)
			return ret;
	}
	return 0;
}
