/*
 * dump-shmem.c - shared memory objects of the whole tree, each dumped once.
 *
 * A MAP_SHARED|MAP_ANONYMOUS region, a memfd and a SysV segment are all one
 * shmem inode to the kernel, whichever processes map it and however often.
 * /proc/PID/map_files names that inode (st_dev/st_ino; for SysV the inode
 * number is the shmid), so every VMA_SHMEM of every process is matched to
 * one object here and gets its id. Opening the map_files link gives a file
 * of the shmem inode itself (also for SysV, whose VMA file is a wrapper
 * without read()), which the dump reads with pread: SEEK_DATA/SEEK_HOLE
 * skip what was never written (shmem counts swapped pages as data), zero
 * pages are left out, the rest goes into pages-shmem-<id>.img with a crc32c
 * per MEM_BLOCK_PAGES pages, as for private memory.
 *
 * A memfd held as an fd (fd-memfd.c) is matched to the same objects by its
 * inode, so the fd and the mappings of one memfd stay one object.
 *
 * The tree is frozen while this runs; what a process outside the tree does
 * to the same object is not: a SysV segment attached outside the tree is
 * refused (nattch counts every attached VMA), a memfd or shared anonymous
 * region also mapped outside cannot be seen and is restored as the tree's
 * own (Documentation/state.md, known gap).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "fdio.h"
#include "log.h"
#include "dump-mem.h"
#include "dump-shmem.h"
#include "proc.h"
#include "files.pb-c.h"
#include "safe-file.h"
#include "mm.pb-c.h"
#include "shmem.pb-c.h"

#ifndef F_GET_SEALS
#define F_GET_SEALS 1034
#endif
#define SEAL_WRITE 0x0008U	  /* F_SEAL_WRITE */
#define SEAL_FUTURE_WRITE 0x0010U /* F_SEAL_FUTURE_WRITE */
#define SHM_DEST_ 01000U	  /* perms bit: IPC_RMID while attached */
#define SHM_LOCKED_ 02000U	  /* perms bit: SHM_LOCK */
#define CHUNK_PAGES 256U	  /* 1 MiB per read */

static const char *kind_name(int kind)
{
	switch (kind) {
	case SHMEM_KIND__SHMEM_ANON:
		return "shared anonymous memory";
	case SHMEM_KIND__SHMEM_MEMFD:
		return "memfd";
	default:
		return "SysV shm";
	}
}

/* ------------------------------------------------------------ SysV */

/*
 * The row of /proc/sysvipc/shm for SHMID. Our IPC namespace is the tree's:
 * the same (dump-checks.c) or entered for the collection (dump-ipcns.c).
 */
static int sysv_lookup(struct shmem_obj *o)
{
	unsigned long long size;
	unsigned perms, nattch, uid, gid, cuid, cgid;
	int key, shmid, found = 0;
	char line[512];
	FILE *f;

	f = fopen("/proc/sysvipc/shm", "re");
	if (!f) {
		pr_perror("reading /proc/sysvipc/shm");
		return -errno;
	}
	while (!found && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%d %d %o %llu %*d %*d %u %u %u %u %u", &key, &shmid, &perms,
			   &size, &nattch, &uid, &gid, &cuid, &cgid) != 9 ||
		    (uint64_t)shmid != o->ino)
			continue;
		found = 1;
		o->key = key;
		o->shmid = shmid;
		o->mode = perms & 0777;
		o->removed = perms & SHM_DEST_;
		o->size = size;
		o->nattch = nattch;
		o->uid = uid;
		o->gid = gid;
		o->cuid = cuid;
		o->cgid = cgid;
		if (perms & SHM_LOCKED_) {
			pr_err("process %d: SysV shm %d at %" PRIx64 "-%" PRIx64
			       " is locked in memory (SHM_LOCK): not supported yet",
			       o->pid, shmid, o->start, o->end);
			fclose(f);
			return -EOPNOTSUPP;
		}
	}
	fclose(f);
	if (!found) {
		pr_err("process %d: SysV shm %" PRIu64 " at %" PRIx64 "-%" PRIx64
		       " is not in /proc/sysvipc/shm",
		       o->pid, o->ino, o->start, o->end);
		return -ENOENT;
	}
	return 0;
}

/* ------------------------------------------------------------ collect */

/*
 * Open the object through LINK (map_files of a mapping, or fd/N of an fd);
 * NAME is how maps or the fd link names it.
 */
static int obj_open(struct shmem_obj *o, const char *link, const char *name)
{
	struct stat st;
	int seals;

	o->fd = open(link, O_RDONLY | O_CLOEXEC);
	if (o->fd < 0 || fstat(o->fd, &st) < 0) {
		pr_perror("process %d: opening %s (%s)", o->pid, link, name);
		return -errno;
	}
	if ((uint64_t)st.st_dev != o->dev || (uint64_t)st.st_ino != o->ino) {
		pr_err("process %d: %s changed while frozen", o->pid, link);
		return -ESTALE;
	}
	/* Only shmem and hugetlbfs answer F_GET_SEALS; hugetlbfs has huge blocks. */
	seals = fcntl(o->fd, F_GET_SEALS);
	if (seals < 0 || st.st_blksize != (blksize_t)LZ_PAGE_SIZE) {
		pr_err("process %d: %s (%s) is not shared memory of small pages: not supported yet",
		       o->pid, name, link);
		return -EOPNOTSUPP;
	}
	o->seals = (uint32_t)seals;
	o->size = (uint64_t)st.st_size;
	o->mode = st.st_mode & 07777;
	if (o->kind == SHMEM_KIND__SHMEM_MEMFD) {
		/* "/memfd:NAME (deleted)": NAME may hold anything but a newline. */
		size_t n = strlen(name) - strlen("/memfd:") - strlen(" (deleted)");

		o->name = strndup(name + strlen("/memfd:"), n);
		if (!o->name)
			return -ENOMEM;
	}
	if (o->kind == SHMEM_KIND__SHMEM_SYSV)
		return sysv_lookup(o);
	return 0;
}

static struct shmem_obj *obj_find(struct shmem_table *t, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; i < t->nr; i++)
		if (t->objs[i].dev == dev && t->objs[i].ino == ino)
			return &t->objs[i];
	return NULL;
}

static struct shmem_obj *obj_new(struct shmem_table *t)
{
	struct shmem_obj *o;

	if (t->nr == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 8;
		struct shmem_obj *n = realloc(t->objs, nc * sizeof(*n));

		if (!n)
			return NULL;
		t->objs = n;
		t->cap = nc;
	}
	o = &t->objs[t->nr++];
	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->id = (uint32_t)t->nr;
	return o;
}

static int obj_add(struct shmem_table *t, pid_t pid, const struct dump_vma *v,
		   struct shmem_obj **out)
{
	struct shmem_obj *o = obj_new(t);
	char link[96];

	if (!o)
		return -ENOMEM;
	o->kind = v->shm_kind;
	o->dev = v->dev;
	o->ino = v->ino;
	o->pid = pid;
	o->start = v->start;
	o->end = v->end;
	*out = o;
	snprintf(link, sizeof(link), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, v->start,
		 v->end);
	return obj_open(o, link, v->name);
}

/* What restore could not give back as it was, refused by name. */
static int obj_check(const struct shmem_obj *o)
{
	if (o->kind == SHMEM_KIND__SHMEM_SYSV && o->nattch != o->nr_vmas) {
		pr_err("process %d: SysV shm %d at %" PRIx64 "-%" PRIx64
		       " is attached %u times, %u of them in the dumped tree: segments attached "
		       "outside the tree are not supported",
		       o->pid, o->shmid, o->start, o->end, o->nattch, o->nr_vmas);
		return -EOPNOTSUPP;
	}
	/* Restore seals before the processes map: a writable mapping cannot come back then. */
	if (o->kind == SHMEM_KIND__SHMEM_MEMFD && (o->seals & SEAL_FUTURE_WRITE) &&
	    o->shared_write) {
		pr_err("process %d: memfd %s at %" PRIx64 "-%" PRIx64
		       " is sealed against future writes but mapped writable: not supported yet",
		       o->pid, o->name, o->start, o->end);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* A memfd held as an fd: the same object as its mappings, found by its inode. */
static int collect_fd(struct shmem_table *t, struct dump_file *df)
{
	struct shmem_obj *o = obj_find(t, df->dev, df->ino);
	char link[64], name[PATH_MAX];
	ssize_t n;

	if (!o) {
		snprintf(link, sizeof(link), "/proc/%d/fd/%d", df->pid, df->fd);
		n = readlink(link, name, sizeof(name) - 1);
		if (n < 0) {
			pr_perror("process %d: readlink %s", df->pid, link);
			return -errno;
		}
		name[n] = '\0';
		o = obj_new(t);
		if (!o)
			return -ENOMEM;
		o->kind = SHMEM_KIND__SHMEM_MEMFD;
		o->dev = df->dev;
		o->ino = df->ino;
		o->pid = df->pid;
		if (!strncmp(name, "/memfd:", 7) && strlen(name) > 17) {
			int ret = obj_open(o, link, name);

			if (ret)
				return ret;
		} else {
			pr_err("process %d fd %d: memfd %s changed while frozen", df->pid, df->fd, name);
			return -ESTALE;
		}
	}
	if (o->kind != SHMEM_KIND__SHMEM_MEMFD) {
		pr_err("process %d fd %d: %s object %u held as an fd: not supported yet", df->pid,
		       df->fd, kind_name(o->kind), o->id);
		return -EOPNOTSUPP;
	}
	df->e->memfd->shmem_id = o->id;
	return 0;
}

int shmem_collect(struct shmem_table *t, struct mm_dump *const *mms, size_t nr,
		  struct files_table *files)
{
	int ret;

	for (size_t i = 0; i < nr; i++) {
		for (size_t j = 0; j < mms[i]->nr_vmas; j++) {
			struct dump_vma *v = &mms[i]->vmas[j];
			struct shmem_obj *o;

			if (v->kind != VMA_KIND__VMA_SHMEM)
				continue;
			o = obj_find(t, v->dev, v->ino);
			if (!o) {
				ret = obj_add(t, mms[i]->pid, v, &o);
				if (ret)
					return ret;
			}
			v->shmem_id = o->id;
			o->nr_vmas++;
			if ((v->flags & MAP_SHARED) && (v->vmflags & PROC_VMF_MW))
				o->shared_write = true;
		}
	}
	for (size_t i = 0; i < files->nr; i++) {
		if (files->files[i].e->kind != FILE_KIND__FD_MEMFD)
			continue;
		ret = collect_fd(t, &files->files[i]);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < t->nr; i++) {
		ret = obj_check(&t->objs[i]);
		if (ret)
			return ret;
		pr_debug("%s object %u: %" PRIu64 " bytes, mapped %u times", kind_name(t->objs[i].kind),
			 t->objs[i].id, t->objs[i].size, t->objs[i].nr_vmas);
	}
	return 0;
}

/* ------------------------------------------------------------ a namespace's own */

/* A row of /proc/sysvipc/shm. */
struct sysv_row {
	int key, shmid;
	unsigned nattch;
	unsigned long long size;
};

static int sysv_rows(struct sysv_row **rows, size_t *nr)
{
	size_t cap = 0;
	char line[512];
	FILE *f;

	*rows = NULL;
	*nr = 0;
	f = fopen("/proc/sysvipc/shm", "re");
	if (!f) {
		pr_perror("reading /proc/sysvipc/shm");
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		struct sysv_row r;

		if (sscanf(line, "%d %d %*o %llu %*d %*d %u", &r.key, &r.shmid, &r.size,
			   &r.nattch) != 4)
			continue; /* the header */
		if (*nr == cap) {
			struct sysv_row *n = realloc(*rows, (cap = cap ? 2 * cap : 16) * sizeof(*n));

			if (!n) {
				fclose(f);
				pr_err("reading /proc/sysvipc/shm: %s", strerror(ENOMEM));
				return -ENOMEM;
			}
			*rows = n;
		}
		(*rows)[(*nr)++] = r;
	}
	fclose(f);
	return 0;
}

/*
 * A segment no process attaches: lazarus attaches it read-only for as long
 * as it takes to open the shmem inode (map_files) and read its row.
 */
static int add_unattached(struct shmem_table *t, const struct sysv_row *r, pid_t root)
{
	uint64_t len = ALIGN_UP((uint64_t)r->size, LZ_PAGE_SIZE);
	struct shmem_obj *o;
	char link[96], name[64];
	struct stat st;
	void *at;
	int ret;

	at = shmat(r->shmid, NULL, SHM_RDONLY);
	if (at == (void *)-1) {
		pr_perror("process %d: SysV shm %d (key %#x) of its IPC namespace: shmat", root,
			  r->shmid, (unsigned)r->key);
		return -errno;
	}
	o = obj_new(t);
	ret = o ? 0 : -ENOMEM;
	if (o) {
		o->kind = SHMEM_KIND__SHMEM_SYSV;
		o->pid = root;
		o->ino = (uint64_t)r->shmid;
		snprintf(link, sizeof(link), "/proc/self/map_files/%lx-%lx", (unsigned long)at,
			 (unsigned long)at + (unsigned long)len);
		snprintf(name, sizeof(name), "/SYSV%08x (deleted)", (unsigned)r->key);
		if (stat(link, &st) < 0) {
			ret = -errno;
			pr_perror("process %d: SysV shm %d: stat %s", root, r->shmid, link);
		} else {
			o->dev = (uint64_t)st.st_dev;
			ret = obj_open(o, link, name);
		}
		o->nattch = 0; /* ours is gone at shmdt */
	}
	shmdt(at);
	return ret;
}

int shmem_collect_ns(struct shmem_table *t, pid_t root)
{
	struct sysv_row *rows;
	size_t nr;
	int ret;

	ret = sysv_rows(&rows, &nr);
	for (size_t i = 0; !ret && i < nr; i++) {
		bool seen = false;

		for (size_t j = 0; j < t->nr && !seen; j++)
			seen = t->objs[j].kind == SHMEM_KIND__SHMEM_SYSV &&
			       t->objs[j].shmid == rows[i].shmid;
		if (seen)
			continue;
		if (rows[i].nattch) {
			pr_err("process %d: SysV shm %d (key %#x) of its IPC namespace is attached %u "
			       "times, none of them in the dumped tree: segments attached outside the "
			       "tree are not supported",
			       root, rows[i].shmid, (unsigned)rows[i].key, rows[i].nattch);
			ret = -EOPNOTSUPP;
			break;
		}
		ret = add_unattached(t, &rows[i], root);
		if (!ret)
			pr_debug("SysV shm %d (key %#x, %llu bytes): attached by no process, object %u",
				 rows[i].shmid, (unsigned)rows[i].key, rows[i].size,
				 t->objs[t->nr - 1].id);
	}
	free(rows);
	return ret;
}

/* ------------------------------------------------------------ pages */

struct shm_pages {
	struct shmem_obj *o;
	int fd; /* the pages file */
	char name[DUMP_IMG_NAME_MAX];
	uint8_t *buf; /* CHUNK_PAGES pages */
	ShmemRun *runs;
	size_t nr_runs, cap_runs;
	uint32_t *crc;
	size_t nr_crc, cap_crc;
	uint32_t cur_crc;
	unsigned cur_fill;
};

static bool page_is_zero(const uint8_t *p)
{
	uint64_t first;

	memcpy(&first, p, sizeof(first));
	return first == 0 && !memcmp(p, p + 8, LZ_PAGE_SIZE - 8);
}

static int grow(void **v, size_t *cap, size_t nr, size_t size)
{
	void *n;

	if (nr < *cap)
		return 0;
	n = realloc(*v, (*cap ? *cap * 2 : 64) * size);
	if (!n)
		return -ENOMEM;
	*v = n;
	*cap = *cap ? *cap * 2 : 64;
	return 0;
}

static int add_page(struct shm_pages *s, uint64_t pgoff, const uint8_t *page)
{
	ShmemRun *r = s->nr_runs ? &s->runs[s->nr_runs - 1] : NULL;
	int ret;

	if (r && r->pgoff + r->nr_pages == pgoff) {
		r->nr_pages++;
	} else {
		ret = grow((void **)&s->runs, &s->cap_runs, s->nr_runs, sizeof(*s->runs));
		if (ret)
			return ret;
		r = &s->runs[s->nr_runs++];
		shmem_run__init(r);
		r->pgoff = pgoff;
		r->nr_pages = 1;
		r->data_page = s->o->data_pages;
	}
	s->o->data_pages++;
	s->cur_crc = lz_crc32c(s->cur_crc, page, LZ_PAGE_SIZE);
	if (++s->cur_fill < MEM_BLOCK_PAGES)
		return 0;
	ret = grow((void **)&s->crc, &s->cap_crc, s->nr_crc, sizeof(*s->crc));
	if (ret)
		return ret;
	s->crc[s->nr_crc++] = s->cur_crc;
	s->cur_crc = 0;
	s->cur_fill = 0;
	return 0;
}

/* Pages [first, first + nr) of the object: read, keep the non-zero ones. */
static int copy_chunk(struct shm_pages *s, uint64_t first, size_t nr)
{
	size_t len = nr * LZ_PAGE_SIZE, got = 0;
	int ret;

	while (got < len) {
		ssize_t n = pread(s->o->fd, s->buf + got, len - got,
				  (off_t)(first * LZ_PAGE_SIZE + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* Past i_size: a short last page reads short; the rest is zero. */
			if (n == 0)
				memset(s->buf + got, 0, len - got);
			if (n == 0)
				break;
			pr_perror("reading %s object %u", kind_name(s->o->kind), s->o->id);
			return -errno;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < nr; i++) {
		const uint8_t *page = s->buf + i * LZ_PAGE_SIZE;

		if (page_is_zero(page))
			continue;
		ret = add_page(s, first + i, page);
		if (!ret)
			ret = fdio_write_all(s->fd, page, LZ_PAGE_SIZE);
		if (ret) {
			pr_err("writing %s: %s", s->name, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* Every data range of the object by SEEK_DATA/SEEK_HOLE, in chunks. */
static int copy_pages(struct shm_pages *s, struct dump_sig *sig)
{
	uint64_t size = ALIGN_UP(s->o->size, LZ_PAGE_SIZE), pos = 0;
	int ret;

	while (pos < size) {
		off_t data = lseek(s->o->fd, (off_t)pos, SEEK_DATA), hole;

		if (data < 0 && errno == ENXIO)
			break;
		hole = data < 0 ? -1 : lseek(s->o->fd, data, SEEK_HOLE);
		if (hole < 0) {
			pr_perror("seeking in %s object %u", kind_name(s->o->kind), s->o->id);
			return -errno;
		}
		pos = ALIGN_DOWN((uint64_t)data, LZ_PAGE_SIZE);
		hole = (off_t)MIN(ALIGN_UP((uint64_t)hole, LZ_PAGE_SIZE), size);
		while (pos < (uint64_t)hole) {
			size_t nr = MIN((size_t)CHUNK_PAGES, ((uint64_t)hole - pos) / LZ_PAGE_SIZE);

			ret = dsig_poll(sig);
			if (!ret)
				ret = copy_chunk(s, pos / LZ_PAGE_SIZE, nr);
			if (ret)
				return ret;
			pos += nr * LZ_PAGE_SIZE;
		}
	}
	if (s->cur_fill) {
		ret = grow((void **)&s->crc, &s->cap_crc, s->nr_crc, sizeof(*s->crc));
		if (ret)
			return ret;
		s->crc[s->nr_crc++] = s->cur_crc;
	}
	return 0;
}

static int pages_close(struct shm_pages *s, struct dump_imgs *imgs)
{
	struct lz_pages_hdr h;
	int ret;

	pages_hdr_init(&h, s->o->id, s->o->data_pages, &imgs->id);
	if (pwrite(s->fd, &h, sizeof(h), 0) != sizeof(h) || fsync(s->fd) < 0) {
		pr_perror("writing %s", s->name);
		return -errno;
	}
	ret = close(s->fd) < 0 ? -errno : 0;
	s->fd = -1;
	if (!ret)
		ret = dump_imgs_add(imgs, s->name,
				    LZ_PAGES_HDR_SIZE + s->o->data_pages * LZ_PAGE_SIZE, h.hdr_crc);
	if (ret)
		pr_err("writing %s: %s", s->name, strerror(-ret));
	return ret;
}

static void entry_fill(ShmemEntry *e, const struct shm_pages *s)
{
	const struct shmem_obj *o = s->o;

	shmem_entry__init(e);
	e->id = o->id;
	e->kind = (ShmemKind)o->kind;
	e->size = o->size;
	e->nr_data_pages = o->data_pages;
	e->block_pages = MEM_BLOCK_PAGES;
	e->n_block_crc = s->nr_crc;
	e->block_crc = s->crc;
	e->has_mode = true;
	e->mode = o->mode;
	if (o->kind == SHMEM_KIND__SHMEM_MEMFD) {
		e->name = o->name;
		e->has_seals = true;
		e->seals = o->seals;
	}
	if (o->kind == SHMEM_KIND__SHMEM_SYSV) {
		e->has_key = e->has_shmid = e->has_uid = e->has_gid = true;
		e->has_cuid = e->has_cgid = e->has_removed = true;
		e->key = o->key;
		e->shmid = o->shmid;
		e->uid = o->uid;
		e->gid = o->gid;
		e->cuid = o->cuid;
		e->cgid = o->cgid;
		e->removed = o->removed;
	}
}

static int dump_one(struct shm_pages *s, struct dump_imgs *imgs, struct dump_sig *sig)
{
	uint8_t hdr[LZ_PAGES_HDR_SIZE] = { 0 };
	int ret;

	snprintf(s->name, sizeof(s->name), "pages-shmem-%u.img", s->o->id);
	s->fd = sf_create_excl(imgs->stagefd, s->name);
	if (s->fd < 0) {
		pr_err("creating %s: %s", s->name, strerror(-s->fd));
		return s->fd;
	}
	ret = fdio_write_all(s->fd, hdr, sizeof(hdr));
	if (ret) {
		pr_err("writing %s: %s", s->name, strerror(-ret));
		return ret;
	}
	ret = copy_pages(s, sig);
	if (ret == -ENOMEM)
		pr_err("%s: out of memory", s->name);
	return ret ? ret : pages_close(s, imgs);
}

int shmem_dump(struct shmem_table *t, struct dump_imgs *imgs, struct dump_sig *sig)
{
	struct shm_pages *sp = calloc(t->nr + 1, sizeof(*sp));
	ShmemEntry *ents = calloc(t->nr + 1, sizeof(*ents));
	const ProtobufCMessage **msgs = calloc(t->nr + 1, sizeof(*msgs));
	uint8_t *buf = malloc(CHUNK_PAGES * LZ_PAGE_SIZE);
	int ret = 0;

	if (!sp || !ents || !msgs || !buf) {
		pr_err("writing shmem.img: %s", strerror(ENOMEM));
		ret = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; !ret && i < t->nr; i++) {
		sp[i].o = &t->objs[i];
		sp[i].fd = -1;
		sp[i].buf = buf;
		ret = dump_one(&sp[i], imgs, sig);
		if (!ret) {
			entry_fill(&ents[i], &sp[i]);
			ents[i].n_runs = sp[i].nr_runs;
			msgs[i] = &ents[i].base;
		}
	}
	if (!ret && t->nr) {
		ShmemRun **runs = NULL;
		size_t total = 0, k = 0;

		for (size_t i = 0; i < t->nr; i++)
			total += sp[i].nr_runs;
		runs = calloc(total + 1, sizeof(*runs));
		if (!runs) {
			pr_err("writing shmem.img: %s", strerror(ENOMEM));
			ret = -ENOMEM;
			goto out_free;
		}
		for (size_t i = 0; i < t->nr; i++) {
			ents[i].runs = &runs[k];
			for (size_t j = 0; j < sp[i].nr_runs; j++)
				runs[k++] = &sp[i].runs[j];
		}
		ret = dump_img_write(imgs, "shmem.img", LZ_IMG_SHMEM, msgs, t->nr);
		free(runs);
	}
out_free:
	for (size_t i = 0; sp && i < t->nr; i++) {
		if (sp[i].fd >= 0 && sp[i].o)
			close(sp[i].fd);
		free(sp[i].runs);
		free(sp[i].crc);
	}
	free(buf);
	free(msgs);
	free(ents);
	free(sp);
	return ret;
}

void shmem_fini(struct shmem_table *t)
{
	for (size_t i = 0; i < t->nr; i++) {
		if (t->objs[i].fd >= 0)
			close(t->objs[i].fd);
		free(t->objs[i].name);
	}
	free(t->objs);
	memset(t, 0, sizeof(*t));
}
