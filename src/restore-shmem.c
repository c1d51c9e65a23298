/*
 * restore-shmem.c - shared memory objects made again before the tree.
 *
 * shmem.img lists each object once (dump-shmem.c). Lazarus makes each here,
 * in the parent, before any process of the tree exists, and fills it from
 * its pages file; every process inherits the fds through clone and maps
 * its VMA_SHMEM from them (restore-fds.c, plugin/blob/mem.c), so a page
 * written by one process after restore is seen by all, as before.
 A memfd is
 * created as the first process holding or mapping it (as-owner.h), so
 * that its inode's owner is that process's, and filled by lazarus.
 *
 * Shared anonymous memory is made as what it was, a MAP_SHARED|
 * MAP_ANONYMOUS object (reached as an fd through /proc/self/map_files),
 * not as a memfd: its mappings then read "/dev/zero (deleted)" in maps
 * again and a second dump sees the same kind. SysV segments keep their id:
 * /proc/sys/kernel/shm_next_id names the id the next shmget in this IPC
 * namespace gets; a taken id or key is refused, never replaced, and the id
 * obtained is checked (another process may have raced us to it). A tree
 * that had an IPC namespace of its own gets a fresh one first
 * (restore-ipcns.c): there every id and key is free, and the segments no
 * process attached at dump are made too, held by the namespace alone once
 * lazarus lets go (rst_shmem_release).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "fdio.h"
#include "log.h"
#include "as-owner.h"
#include "restore-shmem.h"
#include "restore-verify.h"
#include "lazy-proto.h"

#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#endif
#define SEAL_SEAL 0x0001U
#define MFD_CLOEXEC_ 0x0001U
#define MFD_ALLOW_SEALING_ 0x0002U
#define MFD_NAME_MAX 249U
#define SIZE_MAX_ (1ULL << 46) /* far above any machine's memory */
#define FILL_CHUNK (1UL << 20)

int rst_shmem_index(const struct rst_images *im, uint32_t id)
{
	for (size_t i = 0; i < im->nr_shmem; i++)
		if (im->shmem[i]->id == id)
			return (int)i;
	return -1;
}

static uint64_t obj_pages(const ShmemEntry *e)
{
	return (e->size + LZ_PAGE_SIZE - 1) / LZ_PAGE_SIZE;
}

const char *rst_shmem_vma_why(const struct rst_images *im, const VmaEntry *v)
{
	const ShmemEntry *e;
	int i;

	if (!v->has_shmem_id)
		return "shared memory mapping without an object id";
	i = rst_shmem_index(im, v->shmem_id);
	if (i < 0)
		return "maps a shared memory object shmem.img does not list";
	e = im->shmem[i];
	if (e->kind != SHMEM_KIND__SHMEM_MEMFD && !(v->flags & MAP_SHARED))
		return "private mapping of shared memory that is no memfd";
	if (e->kind == SHMEM_KIND__SHMEM_SYSV &&
	    (v->pgoff > obj_pages(e) * LZ_PAGE_SIZE ||
	     v->end - v->start > obj_pages(e) * LZ_PAGE_SIZE - v->pgoff))
		return "maps beyond the end of its SysV segment";
	return NULL;
}

/* ------------------------------------------------------------ verify */

static const char *entry_why(const ShmemEntry *e)
{
	if (!e->id)
		return "object id 0";
	if (e->kind < SHMEM_KIND__SHMEM_ANON || e->kind > SHMEM_KIND__SHMEM_SYSV)
		return "unknown kind";
	if (!e->size || e->size > SIZE_MAX_)
		return "size out of range";
	if (e->kind == SHMEM_KIND__SHMEM_MEMFD &&
	    (!e->name || strlen(e->name) > MFD_NAME_MAX || !e->has_seals))
		return "memfd without a name (of at most 249 bytes) or seals";
	if (e->kind == SHMEM_KIND__SHMEM_SYSV &&
	    (!e->has_key || !e->has_shmid || !e->has_uid || !e->has_gid || !e->has_mode ||
	     !e->has_removed))
		return "SysV segment without key, id, owner or mode";
	if (e->kind == SHMEM_KIND__SHMEM_SYSV && e->shmid < 0)
		return "SysV shm id out of range";
	if (e->nr_data_pages && !e->block_pages)
		return "checksum block size is 0";
	if (e->nr_data_pages > obj_pages(e))
		return "more data pages than the object has";
	if (e->n_block_crc != (e->block_pages ? (e->nr_data_pages + e->block_pages - 1) /
							  e->block_pages
					      : 0))
		return "wrong number of block checksums";
	return NULL;
}

static const char *runs_why(const ShmemEntry *e)
{
	uint64_t prev_end = 0;

	for (size_t i = 0; i < e->n_runs; i++) {
		const ShmemRun *r = e->runs[i];

		if (!r->nr_pages || r->pgoff < prev_end)
			return "a run is empty, overlaps the previous one or is out of order";
		if (r->pgoff > obj_pages(e) || r->nr_pages > obj_pages(e) - r->pgoff)
			return "a run lies beyond the end of the object";
		if (r->data_page > e->nr_data_pages || r->nr_pages > e->nr_data_pages - r->data_page)
			return "a run's data lies beyond the pages file";
		prev_end = r->pgoff + r->nr_pages;
	}
	return NULL;
}

/* One IPC namespace holds one segment of an id, and of a key but IPC_PRIVATE. */
static const char *sysv_twice_why(const struct rst_images *im, size_t i)
{
	const ShmemEntry *e = im->shmem[i];

	for (size_t j = 0; e->kind == SHMEM_KIND__SHMEM_SYSV && j < i; j++) {
		const ShmemEntry *o = im->shmem[j];

		if (o->kind != SHMEM_KIND__SHMEM_SYSV)
			continue;
		if (o->shmid == e->shmid)
			return "SysV shm id listed twice";
		if (o->key == e->key && e->key != IPC_PRIVATE)
			return "SysV shm key listed twice";
	}
	return NULL;
}

int rst_shmem_verify(const struct rst_images *im)
{
	for (size_t i = 0; i < im->nr_shmem; i++) {
		const ShmemEntry *e = im->shmem[i];
		const char *w = entry_why(e);
		char name[64];
		int ret;

		if (!w)
			w = runs_why(e);
		if (!w && rst_shmem_index(im, e->id) != (int)i)
			w = "object id listed twice";
		if (!w)
			w = sysv_twice_why(im, i);
		if (w)
			return rst_verify_fail("shmem.img", -EBADMSG, "object %u: %s", e->id, w);
		snprintf(name, sizeof(name), "pages-shmem-%u.img", e->id);
		struct rst_pages_check pc = {
			.fd = im->shmem_pages_fd[i],
			.name = name,
			.map_name = "shmem.img",
			.owner_what = "object",
			.owner = e->id,
			.nr_pages = e->nr_data_pages,
			.block_pages = e->block_pages,
			.crc = e->block_crc,
			.nr_crc = e->n_block_crc,
		};
		ret = rst_verify_pages_file(im, &pc, NULL);
		if (ret)
			return ret;
	}
	return 0;
}

/* ------------------------------------------------------------ fill */

/*
 * Copy every run into the object: through FD (pwrite, never past the
 * dumped size: that would grow a memfd) or into the mapping AT.
 */
static int obj_fill(const ShmemEntry *e, int pages_fd, int fd, uint8_t *at)
{
	uint8_t *buf = at ? NULL : malloc(FILL_CHUNK);
	int ret = 0;

	if (!at && !buf)
		return -ENOMEM;
	for (size_t i = 0; !ret && i < e->n_runs; i++) {
		const ShmemRun *r = e->runs[i];
		uint64_t len = r->nr_pages * LZ_PAGE_SIZE, done = 0;
		uint64_t src = LZ_PAGES_HDR_SIZE + r->data_page * LZ_PAGE_SIZE;
		uint64_t dst = r->pgoff * LZ_PAGE_SIZE;

		while (!ret && done < len) {
			uint64_t n = MIN(len - done, (uint64_t)FILL_CHUNK);

			if (at) {
				ret = fdio_pread_all(pages_fd, at + dst + done, n, src + done);
			} else {
				ret = fdio_pread_all(pages_fd, buf, n, src + done);
				if (!ret && dst + done < e->size)
					ret = fdio_pwrite_all(fd, buf, MIN(n, e->size - dst - done),
							 dst + done);
			}
			done += n;
		}
	}
	free(buf);
	return ret;
}

/* ------------------------------------------------------------ create */

/*
 * The owner of object ID (as-owner.h): the first process in pstree order
 * with an fd of it (a memfd_file_entry) or a mapping of it; NULL if none.
 */
static const struct rst_task *shmem_owner(const struct rst_images *im, uint32_t id)
{
	for (size_t i = 0; i < im->nr_tasks; i++) {
		const struct rst_task *t = &im->tasks[i];

		for (size_t j = 0; j < t->nr_fdinfo; j++) {
			const FileEntry *f = rst_file_by_id(im, t->fdinfo[j]->file_id);

			if (f && f->kind == FILE_KIND__FD_MEMFD && f->memfd && f->memfd->shmem_id == id)
				return t;
		}
		for (size_t v = 0; t->mm && v < t->mm->n_vmas; v++)
			if (t->mm->vmas[v]->kind == VMA_KIND__VMA_SHMEM &&
			    t->mm->vmas[v]->has_shmem_id && t->mm->vmas[v]->shmem_id == id)
				return t;
	}
	return NULL;
}

/*
 * memfd_create as the object's owner (as-owner.h), so that the inode's
 * uid and gid are the process's as they were (the kernel takes its fsuid
 * and fsgid); lazarus fills it and sets its mode through the fd it holds.
 */
static int make_memfd(const struct rst_images *im, const ShmemEntry *e, int pages_fd,
		      struct rst_shm *s)
{
	const ShmemEntry fill = { .n_runs = s->lazy ? 0 : e->n_runs, .runs = e->runs,
				  .size = e->size };
	unsigned flags = MFD_CLOEXEC_ | (e->seals == SEAL_SEAL ? 0 : MFD_ALLOW_SEALING_);
	const struct rst_task *owner = shmem_owner(im, e->id);
	struct as_owner ao;
	char why[256];
	int ret, err;

	ret = as_owner_enter(&ao, owner, why, sizeof(why));
	if (ret)
		return rst_verify_fail("shmem.img", ret, "memfd %s: %s", e->name, why);
	s->fd = (int)syscall(SYS_memfd_create, e->name, flags);
	err = s->fd < 0 ? -errno : 0;
	ret = as_owner_leave(&ao, err, why, sizeof(why));
	if (ret && !err) {
		close(s->fd);
		s->fd = -1;
		return rst_verify_fail("shmem.img", ret, "memfd %s: %s", e->name, why);
	}
	if (s->fd < 0)
		return rst_verify_fail("shmem.img", err, "memfd %s: memfd_create as process %u: %s",
				       e->name, owner ? owner->pid : 0, strerror(-err));
	if (ftruncate(s->fd, (off_t)e->size) < 0)
		return rst_verify_fail("shmem.img", -errno, "memfd %s: ftruncate to %" PRIu64 ": %s", e->name,
			    e->size, strerror(errno));
	ret = obj_fill(&fill, pages_fd, s->fd, NULL);
	if (ret)
		return rst_verify_fail("shmem.img", ret, "memfd %s: filling it: %s", e->name, strerror(-ret));
	if (e->has_mode && fchmod(s->fd, (mode_t)(e->mode & 07777)) < 0)
		return rst_verify_fail("shmem.img", -errno, "memfd %s: fchmod %o: %s", e->name, e->mode,
			    strerror(errno));
	/* After the fill: F_SEAL_WRITE would refuse it. */
	if (e->seals && e->seals != SEAL_SEAL && !s->lazy &&
	    fcntl(s->fd, F_ADD_SEALS, (int)e->seals) < 0)
		return rst_verify_fail("shmem.img", -errno, "memfd %s: adding seals %#x: %s", e->name,
			    e->seals, strerror(errno));
	return 0;
}

static int make_anon(const ShmemEntry *e, int pages_fd, struct rst_shm *s)
{
	uint64_t len = obj_pages(e) * LZ_PAGE_SIZE;
	char link[96];
	void *p;
	int ret;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return rst_verify_fail("shmem.img", -errno, "shared anonymous object %u (%" PRIu64
			    " bytes): mmap: %s", e->id, len, strerror(errno));
	snprintf(link, sizeof(link), "/proc/self/map_files/%lx-%lx", (unsigned long)p,
		 (unsigned long)p + len);
	s->fd = open(link, O_RDWR | O_CLOEXEC);
	ret = s->fd < 0 ? -errno : 0;
	munmap(p, len);
	if (ret)
		return rst_verify_fail("shmem.img", ret, "shared anonymous object %u: opening %s: %s", e->id,
			    link, strerror(-ret));
	ret = s->lazy ? 0 : obj_fill(e, pages_fd, s->fd, NULL);
	if (ret)
		return rst_verify_fail("shmem.img", ret, "shared anonymous object %u: filling it: %s", e->id,
			    strerror(-ret));
	return 0;
}

/* The next shmget in our IPC namespace gets id ID. */
static int set_next_id(int id)
{
	char buf[16];
	int fd, n, ret = 0;

	fd = open("/proc/sys/kernel/shm_next_id", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%d", id);
	if (write(fd, buf, (size_t)n) != n)
		ret = -errno;
	close(fd);
	return ret;
}

static int sysv_check_free(const ShmemEntry *e)
{
	struct shmid_ds ds;

	if (shmctl(e->shmid, IPC_STAT, &ds) == 0 || errno == EACCES)
		return rst_verify_fail("shmem.img", -EEXIST,
			    "SysV shm id %d (key %#x) is taken in this IPC namespace", e->shmid,
			    (unsigned)e->key);
	if (e->key != IPC_PRIVATE && (shmget(e->key, 0, 0) >= 0 || errno == EACCES))
		return rst_verify_fail("shmem.img", -EEXIST,
			    "SysV shm key %#x (id %d) is taken in this IPC namespace",
			    (unsigned)e->key, e->shmid);
	return 0;
}

static int sysv_set_owner(const ShmemEntry *e)
{
	struct shmid_ds ds;

	if (shmctl(e->shmid, IPC_STAT, &ds) < 0)
		return -errno;
	ds.shm_perm.uid = e->uid;
	ds.shm_perm.gid = e->gid;
	ds.shm_perm.mode = (unsigned short)(e->mode & 0777);
	return shmctl(e->shmid, IPC_SET, &ds) < 0 ? -errno : 0;
}

/*
 * shmget as the segment's creator (as-owner.h), so that IPC_STAT's cuid and
 * cgid are the dumped ones (the kernel takes them from the caller's euid
 * and egid; IPC_SET cannot change them). Lazarus makes it 0600 and fills
 * it as root (it keeps CAP_IPC_OWNER), then sets the dumped owner and mode.
 */
static int sysv_shmget_as_creator(const ShmemEntry *e, char *why, size_t len)
{
	CredsEntry c = CREDS_ENTRY__INIT;
	struct as_owner ao;
	int id, ret;

	if (!e->has_cuid || !e->has_cgid) {
		id = shmget(e->key, e->size, IPC_CREAT | IPC_EXCL | 0600);
		if (id < 0)
			snprintf(why, len, "shmget: %s", strerror(errno));
		return id < 0 ? -errno : id;
	}
	c.uid = c.euid = c.suid = c.fsuid = e->cuid;
	c.gid = c.egid = c.sgid = c.fsgid = e->cgid;
	ret = as_owner_enter_creds(&ao, &c, why, len);
	if (ret)
		return ret;
	id = shmget(e->key, e->size, IPC_CREAT | IPC_EXCL | 0600);
	ret = id < 0 ? -errno : 0;
	if (ret)
		snprintf(why, len, "shmget as creator uid %u gid %u: %s", e->cuid, e->cgid,
			 strerror(errno));
	ret = as_owner_leave(&ao, ret, why, len);
	if (ret && id >= 0)
		shmctl(id, IPC_RMID, NULL);
	return ret ? ret : id;
}

static int make_sysv(const ShmemEntry *e, int pages_fd, struct rst_shm *s)
{
	char why[256];
	int id, ret;

	ret = sysv_check_free(e);
	if (ret)
		return ret;
	ret = set_next_id(e->shmid);
	if (ret)
		return rst_verify_fail("shmem.img", ret, "SysV shm id %d: writing shm_next_id: %s", e->shmid,
			    strerror(-ret));
	id = sysv_shmget_as_creator(e, why, sizeof(why));
	if (id < 0)
		return rst_verify_fail("shmem.img", id, "SysV shm id %d (key %#x): %s", e->shmid,
			    (unsigned)e->key, why);
	if (id != e->shmid) {
		shmctl(id, IPC_RMID, NULL);
		set_next_id(-1);
		return rst_verify_fail("shmem.img", -EEXIST, "SysV shm id %d: got id %d (taken meanwhile?)",
			    e->shmid, id);
	}
	s->shmid = id;
	s->created = true;
	s->attach = shmat(id, NULL, 0);
	if (s->attach == (void *)-1) {
		s->attach = NULL;
		return rst_verify_fail("shmem.img", -errno, "SysV shm id %d: shmat: %s", id, strerror(errno));
	}
	ret = obj_fill(e, pages_fd, -1, s->attach);
	if (ret)
		return rst_verify_fail("shmem.img", ret, "SysV shm id %d: filling it: %s", id, strerror(-ret));
	ret = sysv_set_owner(e);
	if (ret)
		return rst_verify_fail("shmem.img", ret, "SysV shm id %d: setting owner %u:%u mode %o: %s", id,
			    e->uid, e->gid, e->mode, strerror(-ret));
	/* Removed at dump: removed again; Linux lets the tree attach it by id all the same. */
	if (e->removed && shmctl(id, IPC_RMID, NULL) < 0)
		return rst_verify_fail("shmem.img", -errno, "SysV shm id %d: IPC_RMID: %s", id,
			    strerror(errno));
	return 0;
}

/*
 * With --lazy-pages, an object is filled by the lazy-pages daemon when
 * nothing but MAP_SHARED mappings of the tree reach it: every such mapping
 * is registered, so no read can find a page missing without the daemon
 * being asked. A memfd held as an fd (a read(2) does not fault), a private
 * mapping (its read faults fill the page cache with zeros unregistered)
 * SysV segments (any process may shmat them by id) and sealed memfds (the
 * seals go on after the fill) are filled here.
 */
static bool obj_lazy(const struct rst_images *im, size_t i)
{
	const ShmemEntry *e = im->shmem[i];

	if (!im->lazy || e->kind == SHMEM_KIND__SHMEM_SYSV || !e->nr_data_pages)
		return false;
	if (e->kind == SHMEM_KIND__SHMEM_MEMFD && e->seals && e->seals != SEAL_SEAL)
		return false; /* seals go on after the fill; a write seal would stop it */
	for (size_t f = 0; f < im->nr_files; f++)
		if (im->files[f]->memfd && im->files[f]->memfd->shmem_id == e->id)
			return false;
	for (size_t t = 0; t < im->nr_tasks; t++) {
		const MmEntry *mm = im->tasks[t].mm;

		for (size_t v = 0; mm && v < mm->n_vmas; v++)
			if (mm->vmas[v]->kind == VMA_KIND__VMA_SHMEM && mm->vmas[v]->shmem_id == e->id &&
			    !(mm->vmas[v]->flags & MAP_SHARED))
				return false;
	}
	return true;
}

int rst_shmem_create(struct rst_images *im)
{
	if (!im->nr_shmem)
		return 0;
	im->shm = calloc(im->nr_shmem, sizeof(*im->shm));
	if (!im->shm)
		return rst_verify_fail("shmem.img", -ENOMEM, "out of memory");
	for (size_t i = 0; i < im->nr_shmem; i++)
		im->shm[i] = (struct rst_shm){ .fd = -1, .shmid = -1 };
	for (size_t i = 0; i < im->nr_shmem; i++) {
		const ShmemEntry *e = im->shmem[i];
		int pfd = im->shmem_pages_fd[i], ret;
		struct stat st;

		im->shm[i].lazy = obj_lazy(im, i);
		switch (e->kind) {
		case SHMEM_KIND__SHMEM_MEMFD:
			ret = make_memfd(im, e, pfd, &im->shm[i]);
			break;
		case SHMEM_KIND__SHMEM_ANON:
			ret = make_anon(e, pfd, &im->shm[i]);
			break;
		default:
			ret = make_sysv(e, pfd, &im->shm[i]);
			break;
		}
		if (ret)
			return ret;
		if (im->shm[i].fd >= 0 && fstat(im->shm[i].fd, &st) == 0) {
			im->shm[i].dev = st.st_dev;
			im->shm[i].ino = st.st_ino;
		}
	}
	pr_info("%zu shared memory objects made", im->nr_shmem);
	return 0;
}

void rst_shmem_release(struct rst_images *im, bool failed)
{
	for (size_t i = 0; im->shm && i < im->nr_shmem; i++) {
		struct rst_shm *s = &im->shm[i];

		if (s->attach)
			shmdt(s->attach);
		s->attach = NULL;
		if (failed && s->created && !im->shmem[i]->removed)
			shmctl(s->shmid, IPC_RMID, NULL);
		s->created = false;
		if (s->fd >= 0)
			close(s->fd);
		s->fd = -1;
	}
	free(im->shm);
	im->shm = NULL;
}

void rst_shmem_detach(const struct rst_images *im)
{
	for (size_t i = 0; im->shm && i < im->nr_shmem; i++)
		if (im->shm[i].attach)
			shmdt(im->shm[i].attach);
}

struct plg_shm *rst_shmem_plg(const struct rst_images *im)
{
	struct plg_shm *p;

	if (!im->nr_shmem)
		return NULL;
	p = calloc(im->nr_shmem, sizeof(*p));
	if (!p)
		return NULL;
	for (size_t i = 0; i < im->nr_shmem; i++) {
		p[i].id = im->shmem[i]->id;
		p[i].shmid = im->shmem[i]->kind == SHMEM_KIND__SHMEM_SYSV ? im->shmem[i]->shmid : -1;
		p[i].size = obj_pages(im->shmem[i]) * LZ_PAGE_SIZE;
		p[i].lazy = im->shm && im->shm[i].lazy;
	}
	return p;
}

struct lz_lazy_shmem_obj *rst_shmem_lazy_objs(const struct rst_images *im, uint32_t *nr)
{
	struct lz_lazy_shmem_obj *o = calloc(im->nr_shmem + 1, sizeof(*o));

	*nr = 0;
	for (size_t i = 0; o && im->shm && i < im->nr_shmem; i++)
		if (im->shm[i].lazy)
			o[(*nr)++] = (struct lz_lazy_shmem_obj){ .id = im->shmem[i]->id,
								 .dev = im->shm[i].dev,
								 .ino = im->shm[i].ino,
								 .size = im->shmem[i]->size };
	return o;
}

int rst_shmem_lazy_ranges(const struct rst_images *im, const MmEntry *mm,
			  struct plg_range **r, uint32_t *nr)
{
	for (size_t v = 0; im->shm && v < mm->n_vmas; v++) {
		const VmaEntry *e = mm->vmas[v];
		int k = e->kind == VMA_KIND__VMA_SHMEM ? rst_shmem_index(im, e->shmem_id) : -1;
		struct plg_range *n;

		if (k < 0 || !im->shm[k].lazy)
			continue;
		n = realloc(*r, (*nr + 1) * sizeof(*n));
		if (!n)
			return -ENOMEM;
		*r = n;
		n[(*nr)++] = (struct plg_range){ .start = e->start, .end = e->end };
	}
	return 0;
}
