/*
 * lazy-shmem.c - shared memory served lazily: one outstanding-page map per
 * shared memory object, not per process.
 *
 * The restore makes each lazily served object (shared anonymous memory or a
 * memfd that only MAP_SHARED mappings of the tree reach, restore-shmem.c)
 * empty, registers every mapping of it MISSING with its process's uffd, and
 * tells us each object's id and inode (LZ_LAZY_SHMEM). A missing page of
 * shmem faults only while it is absent from the object's page cache, so
 * whichever process faults first gets it with UFFDIO_COPY into its own
 * mapping, which puts it into the page cache for every mapper: one page,
 * one copy. A copy that finds the page there (EEXIST) means another process
 * got it first: the faulting thread is only woken.
 *
 * Which object and page a fault is for is read from /proc/PID/maps at the
 * fault (inode and offset of the VMA holding the address), so forks, mremap
 * and munmap need no bookkeeping here. The object itself is the truth of
 * what is in place: a data page not marked done is absent (nothing but our
 * copies can bring one in: every mapping is registered, and no fd reaches
 * the object), which also lets a resumed daemon rebuild the map with
 * SEEK_DATA/SEEK_HOLE. Pages that were zero at dump are never copied: a
 * fault there gets UFFDIO_ZEROPAGE, and so does a data page placed and then
 * dropped by MADV_REMOVE.
 *
 * MADV_DONTNEED and MADV_REMOVE on shared memory both arrive as
 * UFFD_EVENT_REMOVE, but the first keeps the page cache and the second
 * punches a hole. On data pages not in place yet the two cannot be told
 * apart, so the processes that map the object are killed rather than
 * given either the dumped data or zeros where the other was right.
 *
 * The background fill writes whole chunks of absent data pages through an
 * fd of the object (opened through /proc/PID/map_files of a mapping of it),
 * after the restore finished; no process is let go (its uffd closed, which
 * unregisters its mappings) while an object has data pages outstanding.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX "lazy-pages: "
#include "log.h"
#include "lazy-int.h"
#include "shmem.pb-c.h"

#define PG LZ_PAGE_SIZE

struct lshm_obj {
	uint32_t id;
	uint64_t dev, ino;	/* the restored object */
	uint64_t size, nr_pages;
	struct lazy_src *src;	/* its data runs; vaddr = byte offset in the object */
	int fd;			/* O_RDWR, through a mapping's map_files; -1 until needed */
	uint64_t *done;		/* per page: data in place, or not data */
	uint64_t outstanding;	/* data pages not done */
	uint64_t cursor;	/* background fill, page */
	bool dead;		/* its processes were killed */
	uint64_t faults, pages_fault, pages_fill, pages_zero, pages_exist;
	uint64_t pages_data;		/* data pages in all */
	uint64_t t_start_ns, t_done_ns; /* handed over; last data page in (0: not yet) */
};

struct lshm_set {
	struct lshm_obj *v;
	size_t nr;
};

struct lshm_vma {
	uint64_t start, end, pgoff;
	struct lshm_obj *o;
};

/* ------------------------------------------------------------ objects */

static bool bit(const uint64_t *b, uint64_t i)
{
	return b[i / 64] >> (i % 64) & 1;
}

static void set_bit_(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ULL << (i % 64);
}

static void obj_mark(struct lshm_obj *o, uint64_t q, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (!bit(o->done, q + i)) {
			set_bit_(o->done, q + i);
			o->outstanding--;
		}
	if (!o->outstanding && !o->t_done_ns)
		o->t_done_ns = lz_now_ns();
}

/* The data run holding object page Q: its lazy page index, and pages left in the run. */
static bool data_page(const struct lazy_src *s, uint64_t q, uint64_t *idx, uint64_t *left)
{
	size_t lo = 0, hi = s->nr_orig;
	uint64_t off = q * PG;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->orig[mid].vaddr + s->orig[mid].npages * PG <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == s->nr_orig || s->orig[lo].vaddr > off)
		return false;
	*idx = s->orig[lo].idx + (off - s->orig[lo].vaddr) / PG;
	*left = s->orig[lo].npages - (off - s->orig[lo].vaddr) / PG;
	return true;
}

/* Its runs and pages file, from shmem.img of the dump the client restores. */
static int obj_source(struct lazy_daemon *d, const ShmemEntry *e, const struct lz_dump_id *id,
		      struct lazy_src **out, char *why, size_t len)
{
	PagemapHead h = PAGEMAP_HEAD__INIT;
	uint64_t prev_end = 0;
	struct lazy_src *s;
	int ret;

	ret = src_alloc(e->id, &s);
	if (ret) {
		snprintf(why, len, "out of memory");
		return ret;
	}
	snprintf(s->pages_name, sizeof(s->pages_name), "pages-shmem-%u.img", e->id);
	h.nr_data_pages = e->nr_data_pages;
	h.block_pages = e->block_pages;
	h.n_block_crc = e->n_block_crc;
	h.block_crc = e->block_crc;
	ret = e->nr_data_pages ? src_set_head(s, &h, "shmem.img", why, len) : 0;
	for (size_t i = 0; !ret && i < e->n_runs; i++) {
		PagemapEntry pe = PAGEMAP_ENTRY__INIT;

		pe.vaddr = e->runs[i]->pgoff * PG;
		pe.nr_pages = e->runs[i]->nr_pages;
		pe.flags = LZ_PE_PRESENT | LZ_PE_LAZY;
		pe.has_data_page = true;
		pe.data_page = e->runs[i]->data_page;
		if (e->runs[i]->pgoff > (e->size + PG - 1) / PG ||
		    pe.nr_pages > (e->size + PG - 1) / PG - e->runs[i]->pgoff) {
			snprintf(why, len, "shmem.img: object %u: a run lies beyond its end", e->id);
			ret = -EBADMSG;
			break;
		}
		ret = src_add_entry(s, &pe, &prev_end, "shmem.img", why, len);
	}
	if (!ret)
		ret = src_open_pages(s, d->dirfd, &d->trust, id, why, len);
	if (ret) {
		src_put(s);
		return ret;
	}
	*out = s;
	return 0;
}

static int load_entries(struct lazy_daemon *d, const struct lz_dump_id *id, ShmemEntry ***v,
			size_t *nr, char *why, size_t len)
{
	ProtobufCMessage *m;
	struct img_reader r;
	int ret;

	ret = src_read_image(d->dirfd, &d->trust, "shmem.img", LZ_IMG_SHMEM, &r, why, len);
	if (ret)
		return ret;
	ret = img_reader_check_id(&r, id);
	if (ret) {
		snprintf(why, len, "shmem.img: %s of this restore", r.why);
		goto out_close;
	}
	*v = calloc(r.nr_entries + 1, sizeof(**v));
	*nr = 0;
	if (!*v) {
		ret = -ENOMEM;
		goto out_close;
	}
	while ((ret = img_reader_next(&r, &shmem_entry__descriptor, &m)) == 0)
		(*v)[(*nr)++] = (ShmemEntry *)m;
	if (ret == -ENODATA)
		ret = 0;
	else
		snprintf(why, len, "shmem.img: %s", r.why);
out_close:
	img_reader_close(&r);
	return ret;
}

static int obj_init(struct lazy_daemon *d, struct lshm_obj *o, const struct lz_lazy_shmem_obj *w,
		    const ShmemEntry *e, const struct lz_dump_id *id, char *why, size_t len)
{
	int ret;

	memset(o, 0, sizeof(*o));
	o->fd = -1;
	o->id = w->id;
	o->dev = w->dev;
	o->ino = w->ino;
	o->size = e->size;
	o->nr_pages = (e->size + PG - 1) / PG;
	if (w->size != e->size || w->reserved ||
	    (e->kind != SHMEM_KIND__SHMEM_ANON && e->kind != SHMEM_KIND__SHMEM_MEMFD)) {
		snprintf(why, len, "shmem.img: object %u is not what the restore made", w->id);
		return -EBADMSG;
	}
	ret = obj_source(d, e, id, &o->src, why, len);
	if (ret)
		return ret;
	o->done = calloc((o->nr_pages + 63) / 64 + 1, sizeof(uint64_t));
	if (!o->done)
		return -ENOMEM;
	/* Pages that hold no data at dump are never copied: done from the start. */
	for (uint64_t q = 0; q < o->nr_pages; q++) {
		uint64_t idx, left;

		if (!data_page(o->src, q, &idx, &left))
			set_bit_(o->done, q);
		else
			o->outstanding++;
	}
	o->pages_data = o->outstanding;
	o->t_start_ns = lz_now_ns();
	return 0;
}

int lshm_add(struct lazy_daemon *d, const struct lz_dump_id *id,
	     const struct lz_lazy_shmem_obj *w, uint32_t n, char *why, size_t len)
{
	struct lshm_set *set = d->lshm;
	ShmemEntry **ents = NULL;
	size_t nr_ents = 0;
	int ret;

	if (!set) {
		set = d->lshm = calloc(1, sizeof(*set));
		if (!set)
			return -ENOMEM;
	}
	if (set->nr + n > LZ_LAZY_SHMEM_MAX) {
		snprintf(why, len, "more than %u shared memory objects", LZ_LAZY_SHMEM_MAX);
		return -E2BIG;
	}
	ret = load_entries(d, id, &ents, &nr_ents, why, len);
	if (ret)
		return ret;
	struct lshm_obj *v = realloc(set->v, (set->nr + n + 1) * sizeof(*v));

	if (!v) {
		ret = -ENOMEM;
		goto out_free;
	}
	set->v = v;
	for (uint32_t i = 0; !ret && i < n; i++) {
		const ShmemEntry *e = NULL;

		for (size_t k = 0; k < nr_ents; k++)
			if (ents[k]->id == w[i].id)
				e = ents[k];
		if (!e) {
			snprintf(why, len, "shmem.img has no object %u", w[i].id);
			ret = -EBADMSG;
			break;
		}
		ret = obj_init(d, &set->v[set->nr], &w[i], e, id, why, len);
		if (ret) {
			src_put(set->v[set->nr].src);
			free(set->v[set->nr].done);
			break;
		}
		ret = shm_lshm_note(&d->shm, &w[i], id);
		if (ret) {
			snprintf(why, len, "the shared state has no room for object %u", w[i].id);
			break;
		}
		pr_info("shared memory object %u (%" PRIu64 " bytes): %" PRIu64
			" data pages served lazily", w[i].id, e->size, set->v[set->nr].outstanding);
		set->nr++;
	}
out_free:
	for (size_t k = 0; k < nr_ents; k++)
		protobuf_c_message_free_unpacked(&ents[k]->base, NULL);
	free(ents);
	return ret;
}

/* ------------------------------------------------------------ maps */

static struct lshm_obj *obj_by_inode(struct lshm_set *set, uint64_t dev, uint64_t ino)
{
	for (size_t i = 0; set && i < set->nr; i++)
		if (set->v[i].dev == dev && set->v[i].ino == ino)
			return &set->v[i];
	return NULL;
}

/*
 * The VMA of PID holding ADDR when it maps one of our objects (shared);
 * with ADDR 0, the first VMA of object WANT. 1 when found, 0 when not, -errno.
 */
static int find_vma(struct lshm_set *set, pid_t pid, uint64_t addr, const struct lshm_obj *want,
		    struct lshm_vma *out)
{
	char path[64], line[512];
	int found = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (!found && fgets(line, sizeof(line), f)) {
		unsigned long long start, end, pgoff, ino;
		unsigned maj, mnr;
		char perms[8];

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &start, &end, perms, &pgoff, &maj,
			   &mnr, &ino) != 7 || perms[3] != 's')
			continue;
		if (want ? false : (addr < start || addr >= end))
			continue;
		out->o = obj_by_inode(set, makedev(maj, mnr), ino);
		if (!out->o || (want && out->o != want))
			continue;
		out->start = start;
		out->end = end;
		out->pgoff = pgoff;
		found = 1;
	}
	fclose(f);
	return found;
}

/*
 * An fd of the object (through PID's mapping of it), and what of it is
 * already in place: nothing on a fresh restore, what the dead daemon placed
 * after a resume.
 */
static int obj_open(struct lshm_obj *o, pid_t pid, const struct lshm_vma *v)
{
	char path[96];
	off_t pos = 0;

	if (o->fd >= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%" PRIx64 "-%" PRIx64, pid, v->start,
		 v->end);
	o->fd = open(path, O_RDWR | O_CLOEXEC);
	if (o->fd < 0)
		return -errno;
	for (;;) {
		off_t data = lseek(o->fd, pos, SEEK_DATA), hole;

		if (data < 0)
			break;
		hole = lseek(o->fd, data, SEEK_HOLE);
		if (hole < 0)
			break;
		for (uint64_t q = (uint64_t)data / PG; q < ((uint64_t)hole + PG - 1) / PG &&
						      q < o->nr_pages; q++) {
			if (!bit(o->done, q)) {
				obj_mark(o, q, 1);
				o->pages_exist++;
			}
		}
		pos = hole;
	}
	return 0;
}

/* ------------------------------------------------------------ faults */

static bool lpi_active_(const struct lpi *p)
{
	return p->sh->state == LZ_SLOT_ACTIVE;
}


/*
 * Copy the outstanding data pages of [a, end) of P's mapping V. 0, or
 * -EAGAIN (layout changing: retry later), or another -errno.
 */
static int place_window(struct lpi *p, const struct lshm_vma *v, uint64_t a, uint64_t end)
{
	struct lshm_obj *o = v->o;

	while (a < end) {
		uint64_t q = (v->pgoff + a - v->start) / PG, idx, left, n = 1, done = 0;
		const void *data;
		int ret;

		if (bit(o->done, q)) {
			a += PG;
			continue;
		}
		data_page(o->src, q, &idx, &left);
		while (n < left && a + n * PG < end && !bit(o->done, q + n))
			n++;
		ret = src_pages(o->src, idx, &n, &data);
		if (ret) {
			lpi_kill(p, "%s", o->src->why);
			return ret;
		}
		ret = uffd_copy(p->uffd, a, data, n * PG, &done);
		done = ret ? done / PG : n;
		obj_mark(o, q, done);
		o->pages_fault += done;
		a += done * PG;
		if (!ret || (ret == -EAGAIN && done))
			continue;
		if (ret == -EEXIST) { /* another process placed it first */
			obj_mark(o, q + done, 1);
			o->pages_exist++;
			a += PG;
			continue;
		}
		return ret;
	}
	return 0;
}

/* An error no retry fixes: the process exited, or it cannot be served. */
static int lshm_failed(struct lpi *p, const char *op, uint64_t addr, int err)
{
	if (err == -ESRCH)
		lpi_exited(p);
	else if (lpi_active_(p))
		lpi_kill(p, "shared memory at 0x%" PRIx64 ": %s: %s", addr, op, strerror(-err));
	return err;
}

int lshm_fault(struct lpi *p, uint64_t addr)
{
	struct lazy_daemon *d = p->d;
	uint64_t win = d->fa_pages * PG, lo, hi, q, done = 0;
	struct lshm_vma v;
	int ret;

	if (!d->lshm || !d->lshm->nr)
		return 1;
	if (!p->pid) {
		lpi_kill(p, "a fault at 0x%" PRIx64 " of a process whose pid is unknown may be on "
			 "shared memory", addr);
		return -ESRCH;
	}
	ret = find_vma(d->lshm, p->pid, addr, NULL, &v);
	if (ret == 0 || ret == -ENOENT || ret == -ESRCH)
		return 1; /* not ours, or the process is gone (the ioctl will say) */
	if (ret < 0)
		return lshm_failed(p, "reading its maps", addr, ret);
	if (v.o->dead)
		return 1;
	if (obj_open(v.o, p->pid, &v))
		pr_warn("%s: object %u: no fd for the background fill yet", p->name, v.o->id);
	v.o->faults++;
	q = (v.pgoff + addr - v.start) / PG;
	if (q >= v.o->nr_pages)
		return 1; /* past its end: SIGBUS is the kernel's business */
	lo = MAX(ALIGN_DOWN(addr, win), v.start);
	hi = MIN(ALIGN_DOWN(addr, win) + win, v.end);
	hi = MIN(hi, v.start + (v.o->nr_pages - v.pgoff / PG) * PG);
	ret = place_window(p, &v, lo, hi);
	if (ret == -EAGAIN)
		return ret;
	if (ret && ret != -ENOENT)
		return lshm_failed(p, "UFFDIO_COPY", addr, ret);
	/* The faulting page is done now: ours, another's (wake), or zero. */
	ret = uffd_zero(p->uffd, addr, PG, &done);
	if (!ret) {
		v.o->pages_zero++;
		return 0;
	}
	if (ret == -EEXIST)
		ret = uffd_wake(p->uffd, addr, PG);
	if (ret == -EAGAIN)
		return ret;
	return ret && ret != -ENOENT ? lshm_failed(p, "UFFDIO_ZEROPAGE/WAKE", addr, ret) : 0;
}

/* ------------------------------------------------------------ remove */

static void kill_mappers(struct lazy_daemon *d, struct lshm_obj *o, const char *why)
{
	o->dead = true;
	o->outstanding = 0;
	for (struct lpi *p = d->procs; p; p = p->next) {
		struct lshm_vma v;

		if (p->uffd < 0 || !p->pid || find_vma(d->lshm, p->pid, 0, o, &v) != 1)
			continue;
		lpi_kill(p, "%s", why);
	}
}

void lshm_removed(struct lpi *p, uint64_t start, uint64_t end)
{
	struct lazy_daemon *d = p->d;
	struct lshm_vma v;
	char why[160];

	if (!d->lshm || !d->lshm->nr || !p->pid)
		return;
	for (uint64_t a = start; a < end; a = v.end) {
		if (find_vma(d->lshm, p->pid, a, NULL, &v) != 1)
			return; /* not shared memory of ours (or gone) */
		for (uint64_t x = MAX(a, v.start); x < MIN(end, v.end); x += PG) {
			uint64_t q = (v.pgoff + x - v.start) / PG;

			if (q < v.o->nr_pages && !bit(v.o->done, q)) {
				snprintf(why, sizeof(why), "MADV_DONTNEED or MADV_REMOVE on shared "
					 "memory object %u at 0x%" PRIx64 " before its data was in "
					 "place: the two cannot be told apart", v.o->id, x);
				kill_mappers(d, v.o, why);
				return;
			}
		}
	}
}

/* ------------------------------------------------------------ fill */

bool lshm_outstanding(const struct lazy_daemon *d)
{
	for (size_t i = 0; d->lshm && i < d->lshm->nr; i++)
		if (d->lshm->v[i].outstanding && !d->lshm->v[i].dead)
			return true;
	return false;
}

/* An fd of O through any served process that maps it. */
static int obj_reach(struct lazy_daemon *d, struct lshm_obj *o)
{
	struct lshm_vma v;

	for (struct lpi *p = d->procs; o->fd < 0 && p; p = p->next)
		if (p->uffd >= 0 && p->pid && find_vma(d->lshm, p->pid, 0, o, &v) == 1)
			obj_open(o, p->pid, &v);
	return o->fd >= 0 ? 0 : -ENOENT;
}

static int pwrite_full(int fd, const uint8_t *b, size_t n, uint64_t off)
{
	while (n) {
		ssize_t r = pwrite(fd, b, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		b += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

/* One chunk of O's absent data pages, through its fd. */
static void fill_chunk(struct lazy_daemon *d, struct lshm_obj *o)
{
	uint64_t q = o->cursor, idx, left, n = 0;
	const void *data;
	off_t present;
	int ret;

	while (q < o->nr_pages && bit(o->done, q))
		q++;
	if (q >= o->nr_pages) {
		o->cursor = 0; /* the count drifted: rescan from the start next time */
		if (!o->outstanding)
			return;
		for (q = 0; q < o->nr_pages && bit(o->done, q); q++)
			;
		if (q >= o->nr_pages) {
			o->outstanding = 0;
			return;
		}
	}
	data_page(o->src, q, &idx, &left);
	/* One piece per loop round, not a chunk: a fault waits behind one at most. */
	left = src_piece(o->src, idx, MIN(left, d->fill_piece));
	while (n < left && !bit(o->done, q + n))
		n++;
	/* Never over a page that is there (placed by a fault meanwhile). */
	present = lseek(o->fd, (off_t)(q * PG), SEEK_DATA);
	if (present >= 0 && (uint64_t)present < (q + n) * PG)
		n = ((uint64_t)present - q * PG) / PG;
	if (!n) {
		obj_mark(o, q, 1);
		o->pages_exist++;
		o->cursor = q + 1;
		return;
	}
	ret = src_pages(o->src, idx, &n, &data);
	if (!ret)
		ret = pwrite_full(o->fd, data, n * PG, q * PG);
	if (ret) {
		char why[256];

		snprintf(why, sizeof(why), "shared memory object %u: %s", o->id,
			 ret == -EBADMSG || ret == -EIO ? o->src->why : strerror(-ret));
		kill_mappers(d, o, why);
		return;
	}
	obj_mark(o, q, n);
	o->pages_fill += n;
	o->cursor = q + n;
}

bool lshm_fill_one(struct lazy_daemon *d)
{
	bool finished = false;

	for (struct lpi *p = d->procs; p; p = p->next)
		finished |= p->finished && p->uffd >= 0;
	if (!finished || !d->lshm)
		return false;
	for (size_t i = 0; i < d->lshm->nr; i++) {
		struct lshm_obj *o = &d->lshm->v[i];

		if (!o->outstanding || o->dead)
			continue;
		if (obj_reach(d, o)) {
			/* No served process maps it any more: nothing can read it. */
			pr_debug("shared memory object %u: no longer mapped", o->id);
			o->dead = true;
			o->outstanding = 0;
			continue;
		}
		fill_chunk(d, o);
		if (!o->outstanding)
			pr_info("shared memory object %u: every page in place (%" PRIu64
				" on fault, %" PRIu64 " by fill, %" PRIu64 " zero, %" PRIu64
				" found there) after %" PRIu64 " faults",
				o->id, o->pages_fault, o->pages_fill, o->pages_zero, o->pages_exist,
				o->faults);
		return true;
	}
	return false;
}

/* ------------------------------------------------------------ resume, exit */

int lshm_resume(struct lazy_daemon *d, char *why, size_t len)
{
	const struct lz_shm_hdr *h = d->shm.hdr;
	int ret = 0;

	for (uint32_t i = 0; !ret && i < h->nr_lshm; i++) {
		struct lz_lazy_shmem_obj w = { .id = h->lshm[i].id, .dev = h->lshm[i].dev,
					       .ino = h->lshm[i].ino, .size = h->lshm[i].size };
		struct lz_dump_id id;

		memcpy(id.b, h->lshm[i].dump_id, sizeof(id.b));
		/* shm_lshm_note finds it there already: not noted twice. */
		ret = lshm_add(d, &id, &w, 1, why, len);
	}
	return ret;
}

void lshm_free_all(struct lazy_daemon *d)
{
	for (size_t i = 0; d->lshm && i < d->lshm->nr; i++) {
		struct lshm_obj *o = &d->lshm->v[i];

		if (o->fd >= 0)
			close(o->fd);
		src_put(o->src);
		free(o->done);
	}
	if (d->lshm)
		free(d->lshm->v);
	free(d->lshm);
	d->lshm = NULL;
}

void lshm_poison(const struct lz_shm *m, int uffd, pid_t pid)
{
	const struct lz_shm_hdr *h = m->hdr;
	uint32_t nr = __atomic_load_n(&h->nr_lshm, __ATOMIC_ACQUIRE);
	char path[64], line[512];
	FILE *f;

	if (!nr)
		return;
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, pgoff, ino;
		unsigned maj, mnr;
		char perms[8];
		bool ours = false;

		if (sscanf(line, "%llx-%llx %7s %llx %x:%x %llu", &start, &end, perms, &pgoff, &maj,
			   &mnr, &ino) != 7 || perms[3] != 's')
			continue;
		for (uint32_t i = 0; i < nr; i++)
			ours |= h->lshm[i].dev == makedev(maj, mnr) && h->lshm[i].ino == ino;
		/* Absent pages only: a present one (EEXIST) is skipped. */
		for (uint64_t a = start; ours && a < end;) {
			uint64_t done = 0;
			int ret = uffd_poison(uffd, a, end - a, &done);

			if (!ret)
				break;
			a += done + (ret == -EEXIST || ret == -EAGAIN ? PG : end);
		}
	}
	fclose(f);
}

void lshm_stats(const struct lazy_daemon *d, FILE *f)
{
	for (size_t i = 0; d->lshm && i < d->lshm->nr; i++) {
		const struct lshm_obj *o = &d->lshm->v[i];

		fprintf(f, "%s\n    {\"id\": %u, \"size\": %" PRIu64 ", \"state\": \"%s\", "
			"\"pages_data\": %" PRIu64 ", \"pages_fault\": %" PRIu64
			", \"pages_fill\": %" PRIu64 ", \"pages_zero\": %" PRIu64
			", \"pages_exist\": %" PRIu64 ", \"faults\": %" PRIu64
			", \"time_to_complete_ns\": ",
			i ? "," : "", o->id, o->size,
			o->dead ? "killed" : o->outstanding ? "active" : "done", o->pages_data,
			o->pages_fault, o->pages_fill, o->pages_zero, o->pages_exist, o->faults);
		if (o->t_done_ns)
			fprintf(f, "%" PRIu64 "}", o->t_done_ns - o->t_start_ns);
		else
			fprintf(f, "null}");
	}
}
