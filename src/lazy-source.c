/*
 * lazy-source.c - the page source of the lazy-pages daemon: parse and check
 * a process's pagemap and pages file, and hand out page data that has just
 * been checked against the pagemap's crc32c.
 *
 * Every request is read with pread into a private buffer (whole checksum
 * blocks), checked, and copied into the process from that buffer: what goes
 * in is exactly what was checked, even if the file changes under us; a file
 * cut behind our back gives a short read and a clear error (a mapping would
 * give SIGBUS or EFAULT); and it is faster here than UFFDIO_COPY out of a
 * file mapping (make bench: ~1 GB/s from a mapping, ~4 GB/s via pread).
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

#include "image.h"
#include "lazy-source.h"
#include "pagemap.pb-c.h"

#define PG LZ_PAGE_SIZE
#define MAX_BLOCK_PAGES 4096U /* 16 MiB: a sane bound for one checked block */
#define CHUNK_PAGES 512U      /* 2 MiB: most handed out by one src_pages() */
#define MAX_IMAGE_BYTES (256LL << 20) /* a pagemap of ~8 million runs */

/*
 * Open dirfd/name without following a symlink or blocking on a FIFO, check
 * it is a regular file of sane size, read it whole and verify it as an
 * image of kind: what is used afterwards is this buffer, the one verified.
 */
/* A regular file a trusted user owns, nobody else can write. */
static int src_check_file(const struct rst_trust *trust, const struct stat *st, const char *name,
			  char *why, size_t whylen)
{
	char tw[256];

	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "%s: not a regular file", name);
		return -EINVAL;
	}
	if (rst_trust_file(trust, st, tw, sizeof(tw))) {
		snprintf(why, whylen, "%s: %s", name, tw);
		return -EPERM;
	}
	return 0;
}

int src_read_image(int dirfd, const struct rst_trust *trust, const char *name,
		   enum lz_img_kind kind, struct img_reader *r, char *why, size_t whylen)
{
	uint8_t *data = NULL;
	struct stat st;
	size_t got = 0;
	int fd, ret;

	memset(r, 0, sizeof(*r));
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, whylen, "%s: %s", name, ret == -ELOOP ? "is a symbolic link" : strerror(-ret));
		return ret;
	}
	if (fstat(fd, &st)) {
		ret = -errno;
		snprintf(why, whylen, "%s: %s", name, strerror(-ret));
		goto out_close;
	}
	ret = src_check_file(trust, &st, name, why, whylen);
	if (ret)
		goto out_close;
	if (st.st_size > MAX_IMAGE_BYTES) {
		ret = -EFBIG;
		snprintf(why, whylen, "%s: larger than an image may be", name);
		goto out_close;
	}
	data = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!data) {
		ret = -ENOMEM;
		snprintf(why, whylen, "%s: out of memory", name);
		goto out_close;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			snprintf(why, whylen, "%s: %s", name, n < 0 ? strerror(errno) : "truncated");
			goto out_free;
		}
		got += (size_t)n;
	}
	close(fd);
	ret = img_reader_from_buf(r, name, data, got, kind);
	if (ret) {
		snprintf(why, whylen, "%s: %s", name, r->why ? r->why : strerror(-ret));
		free(data);
		r->data = NULL;
	}
	return ret;

out_free:
	free(data);
out_close:
	close(fd);
	return ret;
}

int src_alloc(uint32_t img_id, struct lazy_src **out)
{
	struct lazy_src *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->refs = 1;
	s->fd = -1;
	s->img_id = img_id;
	snprintf(s->pages_name, sizeof(s->pages_name), "pages-%u.img", img_id);
	*out = s;
	return 0;
}

int src_set_head(struct lazy_src *s, const PagemapHead *h, const char *name, char *why,
		 size_t whylen)
{
	uint64_t blocks;

	if (!h->block_pages || h->block_pages > MAX_BLOCK_PAGES) {
		snprintf(why, whylen, "%s: block_pages %u out of range", name, h->block_pages);
		return -EBADMSG;
	}
	blocks = (h->nr_data_pages + h->block_pages - 1) / h->block_pages;
	if (h->n_block_crc != blocks) {
		snprintf(why, whylen, "%s: %zu block checksums for %" PRIu64 " data pages (want %" PRIu64 ")",
			 name, h->n_block_crc, h->nr_data_pages, blocks);
		return -EBADMSG;
	}
	s->nr_data_pages = h->nr_data_pages;
	s->block_pages = h->block_pages;
	s->nr_blocks = (uint32_t)blocks;
	s->block_crc = malloc(blocks * sizeof(uint32_t) + 1);
	/* A chunk may start and end inside a block: room for both partial ones. */
	s->scratch_len = ((size_t)CHUNK_PAGES + 2 * (size_t)h->block_pages) * PG;
	s->scratch = aligned_alloc(PG, s->scratch_len);
	if (!s->block_crc || !s->scratch)
		return -ENOMEM;
	if (blocks)
		memcpy(s->block_crc, h->block_crc, blocks * sizeof(uint32_t));
	return 0;
}

/* One pagemap run: check it, and keep it when it is lazy. */
int src_add_entry(struct lazy_src *s, const PagemapEntry *e, uint64_t *prev_end, const char *name,
		  char *why, size_t whylen)
{
	bool present = e->flags & LZ_PE_PRESENT, zero = e->flags & LZ_PE_ZERO;
	struct lazy_orig *o;

	if ((e->vaddr & (PG - 1)) || !e->nr_pages || e->nr_pages > (UINT64_MAX - e->vaddr) / PG ||
	    e->vaddr < *prev_end) {
		snprintf(why, whylen, "%s: run at 0x%" PRIx64 " (%" PRIu64 " pages) is unaligned, empty, "
			 "unsorted or overlapping", name, e->vaddr, e->nr_pages);
		return -EBADMSG;
	}
	*prev_end = e->vaddr + e->nr_pages * PG;
	if (present == zero) {
		snprintf(why, whylen, "%s: run at 0x%" PRIx64 " is %s", name, e->vaddr,
			 present ? "both present and zero" : "neither present nor zero (remote lazy "
			 "pages are not served from images)");
		return (e->flags & LZ_PE_LAZY) || present ? -EBADMSG : 0;
	}
	if (present && (!e->has_data_page || e->data_page > s->nr_data_pages ||
			e->nr_pages > s->nr_data_pages - e->data_page)) {
		snprintf(why, whylen, "%s: run at 0x%" PRIx64 " points past the %" PRIu64 " data pages",
			 name, e->vaddr, s->nr_data_pages);
		return -EBADMSG;
	}
	if (!(e->flags & LZ_PE_LAZY))
		return 0;
	o = realloc(s->orig, (s->nr_orig + 1) * sizeof(*o));
	if (!o)
		return -ENOMEM;
	s->orig = o;
	s->orig[s->nr_orig++] = (struct lazy_orig){
		.vaddr = e->vaddr, .npages = e->nr_pages, .idx = s->nr_idx,
		.data_page = present ? e->data_page : 0, .zero = zero,
	};
	s->nr_idx += e->nr_pages;
	return 0;
}

static int src_read_pagemap(struct lazy_src *s, int dirfd, const struct rst_trust *trust,
			    const struct lz_dump_id *id, char *why, size_t whylen)
{
	ProtobufCMessage *m = NULL;
	struct img_reader r;
	uint64_t prev_end = 0;
	char name[48];
	int ret;

	snprintf(name, sizeof(name), "pagemap-%u.img", s->img_id);
	ret = src_read_image(dirfd, trust, name, LZ_IMG_PAGEMAP, &r, why, whylen);
	if (ret)
		return ret;
	ret = img_reader_check_id(&r, id);
	if (ret) {
		snprintf(why, whylen, "%s: %s of this restore", name, r.why);
		goto out_close;
	}
	ret = img_reader_next(&r, &pagemap_head__descriptor, &m);
	if (ret) {
		snprintf(why, whylen, "%s: no pagemap head: %s", name, r.why ? r.why : "empty");
		goto out_close;
	}
	ret = src_set_head(s, (PagemapHead *)m, name, why, whylen);
	protobuf_c_message_free_unpacked(m, NULL);
	while (!ret) {
		ret = img_reader_next(&r, &pagemap_entry__descriptor, &m);
		if (ret == -ENODATA) {
			ret = 0;
			break;
		}
		if (ret) {
			snprintf(why, whylen, "%s: %s", name, r.why);
			break;
		}
		ret = src_add_entry(s, (PagemapEntry *)m, &prev_end, name, why, whylen);
		protobuf_c_message_free_unpacked(m, NULL);
	}
out_close:
	img_reader_close(&r);
	return ret;
}

int src_open_pages(struct lazy_src *s, int dirfd, const struct rst_trust *trust,
		   const struct lz_dump_id *id, char *why, size_t whylen)
{
	uint64_t want = LZ_PAGES_HDR_SIZE + s->nr_data_pages * PG;
	struct lz_pages_hdr h;
	const char *bad = NULL;
	struct stat st;
	int ret;

	/* The header checked here, then every block read, come from this fd. */
	s->fd = openat(dirfd, s->pages_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (s->fd < 0 || fstat(s->fd, &st) < 0) {
		ret = -errno;

		snprintf(why, whylen, "%s: %s", s->pages_name,
			 ret == -ELOOP ? "is a symbolic link" : strerror(-ret));
		return ret;
	}
	ret = src_check_file(trust, &st, s->pages_name, why, whylen);
	if (ret)
		return ret;
	if (pread(s->fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
		snprintf(why, whylen, "%s: truncated (no pages header)", s->pages_name);
		return -EBADMSG;
	}
	if (pages_hdr_check(&h, NULL, &bad)) {
		snprintf(why, whylen, "%s: %s", s->pages_name, bad);
		return -EBADMSG;
	}
	if (pages_hdr_check(&h, id, &bad)) {
		char a[LZ_DUMP_ID_HEX], b[LZ_DUMP_ID_HEX];

		snprintf(why, whylen, "%s: belongs to another dump (dump id %s, not %s of this "
			 "restore)", s->pages_name, lz_dump_id_hex(&h.dump_id, a),
			 lz_dump_id_hex(id, b));
		return -ESTALE;
	}
	if (h.nr_pages != s->nr_data_pages) {
		snprintf(why, whylen, "%s: holds %" PRIu64 " pages, its map expects %" PRIu64,
			 s->pages_name, h.nr_pages, s->nr_data_pages);
		return -EBADMSG;
	}
	if ((uint64_t)st.st_size != want) {
		snprintf(why, whylen, "%s: %s: %" PRIu64 " bytes, expected %" PRIu64, s->pages_name,
			 (uint64_t)st.st_size < want ? "truncated" : "trailing data",
			 (uint64_t)st.st_size, want);
		return -EBADMSG;
	}
	return 0;
}

int src_open(int dirfd, const struct rst_trust *trust, uint32_t img_id,
	     const struct lz_dump_id *id, struct lazy_src **out, char *why, size_t whylen)
{
	struct lazy_src *s;
	int ret;

	ret = src_alloc(img_id, &s);
	if (ret) {
		snprintf(why, whylen, "out of memory");
		return ret;
	}
	ret = src_read_pagemap(s, dirfd, trust, id, why, whylen);
	if (!ret)
		ret = src_open_pages(s, dirfd, trust, id, why, whylen);
	if (ret) {
		if (ret == -ENOMEM)
			snprintf(why, whylen, "out of memory reading pagemap-%u.img", img_id);
		src_put(s);
		return ret;
	}
	*out = s;
	return 0;
}

struct lazy_src *src_get(struct lazy_src *s)
{
	s->refs++;
	return s;
}

void src_put(struct lazy_src *s)
{
	if (!s || --s->refs > 0)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->block_crc);
	free(s->scratch);
	free(s->orig);
	free(s);
}

int src_lazy_runs(const struct lazy_src *s, struct lr_run **runs, size_t *nr)
{
	struct lr_run *r = malloc((s->nr_orig + 1) * sizeof(*r));

	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < s->nr_orig; i++)
		r[i] = (struct lr_run){ s->orig[i].vaddr, s->orig[i].npages, s->orig[i].idx };
	*runs = r;
	*nr = s->nr_orig;
	return 0;
}

/* The pagemap run holding page index idx. */
const struct lazy_orig *lazy_src_find(const struct lazy_src *s, uint64_t idx)
{
	size_t lo = 0, hi = s->nr_orig;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->orig[mid].idx + s->orig[mid].npages <= idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < s->nr_orig && s->orig[lo].idx <= idx ? &s->orig[lo] : NULL;
}

/* Read blocks [b0, b1] to scratch + at and check each; the file must be whole. */
static int src_load(struct lazy_src *s, uint64_t b0, uint64_t b1, uint8_t *at)
{
	uint64_t first = b0 * s->block_pages;
	uint64_t end = MIN((b1 + 1) * s->block_pages, s->nr_data_pages);
	size_t len = (size_t)(end - first) * PG, got = 0;

	while (got < len) {
		ssize_t n = pread(s->fd, at + got, len - got,
				  (off_t)(LZ_PAGES_HDR_SIZE + first * PG + got));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(s->why, sizeof(s->why),
				 "%s: data pages %" PRIu64 "-%" PRIu64 ": %s", s->pages_name, first,
				 end - 1, n < 0 ? strerror(errno) : "truncated (short read)");
			return -EIO;
		}
		got += (size_t)n;
	}
	for (uint64_t b = b0; b <= b1; b++) {
		uint64_t off = (b - b0) * s->block_pages;
		uint64_t n = MIN((uint64_t)s->block_pages, s->nr_data_pages - b * s->block_pages);

		if (lz_crc32c(0, at + off * PG, n * PG) != s->block_crc[b]) {
			snprintf(s->why, sizeof(s->why),
				 "%s: block %" PRIu64 " (data pages %" PRIu64 "-%" PRIu64
				 "): checksum mismatch (corrupted)",
				 s->pages_name, b, b * s->block_pages, b * s->block_pages + n - 1);
			return -EBADMSG;
		}
	}
	return 0;
}

/* Blocks (the last one may be short) in bytes. */
static size_t src_blocks_len(const struct lazy_src *s, uint64_t b0, uint64_t b1)
{
	return (size_t)(MIN((b1 + 1) * s->block_pages, s->nr_data_pages) - b0 * s->block_pages) *
	       PG;
}

#define SMALL_CACHE_BLOCKS 4 /* a fault's window: moved down to add blocks below */

/*
 * Make scratch hold blocks [b0, b1], checked. Blocks it holds already (a
 * working set read in file order, a fault's page and then its window) are
 * not read again: a request inside them is served as is, one next to a
 * small cached range adds only the blocks it lacks.
 */
static int src_read_blocks(struct lazy_src *s, uint64_t b0, uint64_t b1)
{
	uint64_t c0 = s->cache_b0, c1 = s->cache_b1;
	int ret;

	if (s->cached && c0 <= b0 && b1 <= c1)
		return 0;
	if (s->cached && b0 >= c0 && b0 <= c1 + 1 && b1 > c1 &&
	    src_blocks_len(s, c0, b1) <= s->scratch_len) {
		/* Above: c1 is not the file's last block, so every block
		 * before c1 + 1 is whole. */
		s->cached = false;
		ret = src_load(s, c1 + 1, b1, s->scratch + (c1 + 1 - c0) * s->block_pages * PG);
		if (ret)
			return ret;
		s->cache_b1 = b1;
		s->cached = true;
		return 0;
	}
	if (s->cached && b0 < c0 && b1 + 1 >= c0 && b1 <= c1 && c1 - c0 < SMALL_CACHE_BLOCKS &&
	    src_blocks_len(s, b0, c1) <= s->scratch_len) {
		s->cached = false;
		memmove(s->scratch + (c0 - b0) * s->block_pages * PG, s->scratch,
			src_blocks_len(s, c0, c1));
		ret = src_load(s, b0, c0 - 1, s->scratch);
		if (ret)
			return ret;
		s->cache_b0 = b0;
		s->cached = true;
		return 0;
	}
	s->cached = false;
	ret = src_load(s, b0, b1, s->scratch);
	if (ret)
		return ret;
	s->cache_b0 = b0;
	s->cache_b1 = b1;
	s->cached = true;
	return 0;
}

uint64_t src_piece(const struct lazy_src *s, uint64_t idx, uint64_t want)
{
	const struct lazy_orig *o = lazy_src_find(s, idx);
	uint64_t dp, end;

	if (!o || o->zero || want >= o->npages - (idx - o->idx))
		return want;
	dp = o->data_page + (idx - o->idx);
	end = dp + want - (dp + want) % s->block_pages;
	return end > dp ? end - dp : want;
}

int src_pages(struct lazy_src *s, uint64_t idx, uint64_t *n, const void **data)
{
	const struct lazy_orig *o = lazy_src_find(s, idx);
	uint64_t off, dp, b0;
	int ret;

	if (!o) {
		snprintf(s->why, sizeof(s->why), "page index %" PRIu64 " is not in pagemap-%u.img",
			 idx, s->img_id);
		return -EINVAL;
	}
	off = idx - o->idx;
	*n = MIN(*n, o->npages - off);
	if (o->zero) {
		*data = NULL;
		return 0;
	}
	*n = MIN(*n, (uint64_t)CHUNK_PAGES);
	dp = o->data_page + off;
	b0 = dp / s->block_pages;
	ret = src_read_blocks(s, b0, (dp + *n - 1) / s->block_pages);
	if (ret)
		return ret;
	*data = s->scratch + (dp - s->cache_b0 * s->block_pages) * PG;
	return 0;
}
