/*
 * lazy-shm.c - the shared, crash-surviving state of the lazy-pages daemon:
 * a sparse memfd with a slot table and a bump-allocated heap for layouts
 * and done bitmaps. See lazy-shm.h for the update rules.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lazy-shm.h"
#include "lazy-proto.h"
#include "image.h"

_Static_assert(sizeof(struct lz_shm_slot) % 8 == 0, "slots are 8-byte aligned");
_Static_assert(offsetof(struct lz_shm_slot, inbox) % 8 == 0, "inbox is 8-byte aligned");

uint64_t lz_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int shm_map(struct lz_shm *m, int fd)
{
	m->fd = fd;
	m->base = mmap(NULL, LZ_SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (m->base == MAP_FAILED) {
		m->base = NULL;
		return -errno;
	}
	m->hdr = (struct lz_shm_hdr *)m->base;
	return 0;
}

int shm_create(struct lz_shm *m, const char *images_dir)
{
	int fd, ret;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	fd = memfd_create("lazarus-lazy-state", MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)LZ_SHM_SIZE) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	ret = shm_map(m, fd);
	if (ret) {
		close(fd);
		m->fd = -1;
		return ret;
	}
	m->hdr->magic = LZ_SHM_MAGIC;
	m->hdr->version = LZ_SHM_VERSION;
	m->hdr->max_slots = LZ_SHM_MAX_SLOTS;
	m->hdr->size = LZ_SHM_SIZE;
	m->hdr->heap = ALIGN_UP((uint64_t)sizeof(struct lz_shm_hdr), LZ_PAGE_SIZE);
	m->hdr->brk = m->hdr->heap;
	m->hdr->t_start_ns = lz_now_ns();
	snprintf(m->hdr->images_dir, sizeof(m->hdr->images_dir), "%s", images_dir);
	return 0;
}

int shm_attach(struct lz_shm *m, int fd)
{
	struct stat st;
	int ret;

	memset(m, 0, sizeof(*m));
	m->fd = -1;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != LZ_SHM_SIZE) {
		close(fd);
		return -EINVAL;
	}
	ret = shm_map(m, fd);
	if (ret) {
		close(fd);
		m->fd = -1;
		return ret;
	}
	if (m->hdr->magic != LZ_SHM_MAGIC || m->hdr->version != LZ_SHM_VERSION ||
	    m->hdr->max_slots != LZ_SHM_MAX_SLOTS || m->hdr->brk > LZ_SHM_SIZE ||
	    m->hdr->heap > m->hdr->brk) {
		shm_detach(m);
		return -EPROTO;
	}
	return 0;
}

void shm_detach(struct lz_shm *m)
{
	if (m->base)
		munmap(m->base, LZ_SHM_SIZE);
	if (m->fd >= 0)
		close(m->fd);
	memset(m, 0, sizeof(*m));
	m->fd = -1;
}

void *shm_alloc(struct lz_shm *m, uint64_t bytes, uint64_t *off)
{
	uint64_t at = ALIGN_UP(m->hdr->brk, 64);

	if (bytes > LZ_SHM_SIZE || at > LZ_SHM_SIZE - bytes)
		return NULL;
	/* Heap memory is never reused, so it is still zero from the memfd. */
	m->hdr->brk = at + bytes;
	*off = at;
	return m->base + at;
}

void *shm_at(const struct lz_shm *m, uint64_t off, uint64_t bytes)
{
	if (off < m->hdr->heap || off > m->hdr->brk || bytes > m->hdr->brk - off)
		return NULL;
	return m->base + off;
}

int shm_slot_new(struct lz_shm *m)
{
	for (uint32_t i = 0; i < LZ_SHM_MAX_SLOTS; i++) {
		struct lz_shm_slot *sl = &m->hdr->slots[i];

		if (sl->state != LZ_SLOT_FREE)
			continue;
		memset(sl, 0, sizeof(*sl));
		if (i >= m->hdr->nr_used)
			m->hdr->nr_used = (uint16_t)(i + 1);
		sl->parent = LZ_SHM_NO_SLOT;
		sl->pending_fork = LZ_SHM_NO_SLOT;
		return (int)i;
	}
	return -ENOSPC;
}

int shm_slot_bitmap(struct lz_shm *m, struct lz_shm_slot *sl, uint64_t nr_idx,
		    const uint64_t *from)
{
	uint64_t words = nr_idx / 64 + 1, off;
	uint64_t *bm = shm_alloc(m, words * 8, &off);

	if (!bm)
		return -ENOSPC;
	if (from)
		memcpy(bm, from, words * 8);
	sl->nr_idx = nr_idx;
	sl->done_off = off;
	return 0;
}

uint64_t *shm_done(const struct lz_shm *m, const struct lz_shm_slot *sl)
{
	return shm_at(m, sl->done_off, (sl->nr_idx / 64 + 1) * 8);
}

int shm_layout_publish(struct lz_shm *m, struct lz_shm_slot *sl, const struct lr_set *lay)
{
	uint32_t next = sl->cur ^ 1;
	struct lr_run *buf;
	uint64_t off;

	if (sl->lay_cap[next] < lay->nr || !sl->lay_off[next]) {
		uint32_t cap = MAX(lay->nr * 2, 16U);

		buf = shm_alloc(m, (uint64_t)cap * sizeof(*buf), &off);
		if (!buf)
			return -ENOSPC;
		sl->lay_off[next] = off;
		sl->lay_cap[next] = cap;
	}
	buf = shm_at(m, sl->lay_off[next], (uint64_t)sl->lay_cap[next] * sizeof(*buf));
	if (!buf)
		return -EINVAL;
	if (lay->nr)
		memcpy(buf, lay->v, lay->nr * sizeof(*buf));
	sl->lay_nr[next] = lay->nr;
	/* The switch is one aligned store: a reader after our death sees the
	 * old layout or the new one, never half of one. */
	__atomic_store_n(&sl->cur, next, __ATOMIC_RELEASE);
	return 0;
}

int shm_layout_read(const struct lz_shm *m, const struct lz_shm_slot *sl, struct lr_set *out)
{
	uint32_t cur = __atomic_load_n(&sl->cur, __ATOMIC_ACQUIRE) & 1;
	const struct lr_run *buf;
	struct lr_set tmp = { 0 };
	int ret = 0;

	lr_init(out);
	if (!sl->lay_off[cur])
		return 0;
	if (sl->lay_nr[cur] > sl->lay_cap[cur])
		return -EINVAL;
	buf = shm_at(m, sl->lay_off[cur], (uint64_t)sl->lay_cap[cur] * sizeof(*buf));
	if (!buf)
		return -EINVAL;
	/* Appending re-checks order and overlap. */
	for (uint32_t i = 0; i < sl->lay_nr[cur] && !ret; i++) {
		if (buf[i].idx > sl->nr_idx || buf[i].npages > sl->nr_idx - buf[i].idx)
			ret = -EINVAL;
		else
			ret = lr_append(&tmp, buf[i].start, buf[i].npages, buf[i].idx, false);
	}
	if (ret) {
		lr_fini(&tmp);
		return ret;
	}
	*out = tmp;
	return 0;
}

int shm_lshm_note(struct lz_shm *m, const struct lz_lazy_shmem_obj *o,
		  const struct lz_dump_id *id)
{
	struct lz_shm_hdr *h = m->hdr;
	struct lz_shm_lshm *e;

	for (uint32_t i = 0; i < h->nr_lshm; i++)
		if (h->lshm[i].id == o->id && h->lshm[i].dev == o->dev && h->lshm[i].ino == o->ino &&
		    !memcmp(h->lshm[i].dump_id, id->b, sizeof(id->b)))
			return 0;
	if (h->nr_lshm >= LZ_SHM_MAX_LSHM)
		return -ENOSPC;
	e = &h->lshm[h->nr_lshm];
	e->id = o->id;
	e->dev = o->dev;
	e->ino = o->ino;
	e->size = o->size;
	memcpy(e->dump_id, id->b, sizeof(e->dump_id));
	/* Complete before it counts: the guardian and a resume read it. */
	__atomic_store_n(&h->nr_lshm, h->nr_lshm + 1, __ATOMIC_RELEASE);
	return 0;
}
