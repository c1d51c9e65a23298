/*
 * lazy-ws.c - working set first (REAP-style): record the lazy pages a
 * restored process touches first, write them to ws-<id>.img, and on a
 * later restore of the same images place them first, in recorded order.
 *
 * Recording (--record-ws): the process's background fill is held back and
 * its faults are resolved one page at a time (no fault-around), so every
 * first access is a fault and the record is exactly the pages touched, in
 * order. It ends when the process exits, when every page came in by fault,
 * or after the recording time; the file is written then and the fill goes
 * on. A process killed because its images are bad gets no file.
 *
 * Prefetch (--prefetch-ws): the file is checked at handover like any image
 * (a bad or foreign one refuses the process before it runs); once the
 * restore said FINISHED (the ranges are registered), the recorded pages
 * are placed ahead of any background fill, a bounded batch per loop round
 * so faults still come first, then the fill does the rest. Each page is
 * read alone and checked against the crc32c the recording took from its
 * checked contents: a 4 KiB read, not its whole checksum block (the pages
 * of a working set are scattered: nearly every block holds one).
 */
#define LOG_PREFIX "lazy-pages: "

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lazy-int.h"
#include "lazy-ws.h"
#include "lazy-source.h"
#include "log.h"
#include "safe-file.h"

#define PG LZ_PAGE_SIZE
#define PREFETCH_IOCTLS 32 /* copies per loop round: a fault waits for at most these */
#define WS_BUF_PAGES 64U

/* ------------------------------------------------------------ the set */

void ws_init(struct lazy_ws *ws)
{
	memset(ws, 0, sizeof(*ws));
}

void ws_fini(struct lazy_ws *ws)
{
	free(ws->v);
	free(ws->crc);
	free(ws->buf);
	ws_init(ws);
}

int ws_record(struct lazy_ws *ws, uint64_t idx, uint64_t n, const uint32_t *crc)
{
	struct ws_run *last = ws->nr ? &ws->v[ws->nr - 1] : NULL;

	if (!n)
		return 0;
	if (ws->pages + n > ws->crc_cap) {
		uint64_t cap = MAX(ws->crc_cap * 2, ws->pages + n + 1024);
		uint32_t *c = realloc(ws->crc, cap * sizeof(*c));

		if (!c)
			return -ENOMEM;
		ws->crc = c;
		ws->crc_cap = cap;
	}
	if (!last || last->idx + last->npages != idx) {
		if (ws->nr == ws->cap) {
			size_t cap = ws->cap ? ws->cap * 2 : 256;
			struct ws_run *v = realloc(ws->v, cap * sizeof(*v));

			if (!v)
				return -ENOMEM;
			ws->v = v;
			ws->cap = cap;
		}
		ws->v[ws->nr++] = (struct ws_run){ idx, 0 };
		last = &ws->v[ws->nr - 1];
	}
	memcpy(ws->crc + ws->pages, crc, n * sizeof(*crc));
	last->npages += n;
	ws->pages += n;
	return 0;
}

/* ------------------------------------------------------------ the file */

int ws_write(int dirfd, uint32_t img_id, const struct lz_dump_id *id, uint64_t nr_idx,
	     const struct lazy_ws *ws, char *why, size_t whylen)
{
	uint64_t *buf = malloc(2 * LZ_WS_RUNS_PER_ENTRY * sizeof(*buf));
	struct img_writer w;
	char name[48];
	uint64_t k = 0;
	size_t i = 0;
	int ret;

	snprintf(name, sizeof(name), "ws-%u.img", img_id);
	if (!buf) {
		snprintf(why, whylen, "%s: out of memory", name);
		return -ENOMEM;
	}
	ret = img_writer_open(&w, dirfd, name, LZ_IMG_WS, id);
	if (ret) {
		snprintf(why, whylen, "%s: %s", name, strerror(-ret));
		free(buf);
		return ret;
	}
	/* At least one message, so an empty working set is a file too. */
	do {
		WsEntry e = WS_ENTRY__INIT;
		size_t n = MIN(ws->nr - i, (size_t)LZ_WS_RUNS_PER_ENTRY);

		e.page_crc = ws->crc + k;
		for (size_t j = 0; j < n; j++) {
			buf[2 * j] = ws->v[i + j].idx;
			buf[2 * j + 1] = ws->v[i + j].npages;
			e.n_page_crc += ws->v[i + j].npages;
		}
		e.pid = img_id;
		e.nr_lazy_pages = nr_idx;
		e.n_run = 2 * n;
		e.run = buf;
		ret = img_writer_put(&w, &e.base);
		k += e.n_page_crc;
		i += n;
	} while (!ret && i < ws->nr);
	free(buf);
	if (ret) {
		img_writer_abort(&w, dirfd);
		snprintf(why, whylen, "%s: %s", name, strerror(-ret));
		return ret;
	}
	ret = img_writer_close(&w, dirfd);
	if (!ret)
		ret = sf_fsync_dir(dirfd);
	if (ret)
		snprintf(why, whylen, "%s: %s", name, strerror(-ret));
	return ret;
}

int ws_add_entry(struct lazy_ws *ws, const WsEntry *e, uint32_t img_id, uint64_t nr_idx,
		 const char *name, char *why, size_t whylen)
{
	uint64_t pages = 0;
	size_t c = 0;

	if (e->pid != img_id || e->nr_lazy_pages != nr_idx) {
		snprintf(why, whylen, "%s: recorded for process %u with %" PRIu64 " lazy pages, not "
			 "process %u with %" PRIu64, name, e->pid, e->nr_lazy_pages, img_id, nr_idx);
		return -EBADMSG;
	}
	if (e->n_run % 2) {
		snprintf(why, whylen, "%s: a run without its length", name);
		return -EBADMSG;
	}
	for (size_t i = 0; i < e->n_run; i += 2) {
		uint64_t idx = e->run[i], n = e->run[i + 1];

		if (!n || idx >= nr_idx || n > nr_idx - idx || n > nr_idx - ws->pages - pages) {
			snprintf(why, whylen, "%s: run of %" PRIu64 " pages at page %" PRIu64 " is "
				 "empty, past the %" PRIu64 " lazy pages or one too many", name, n,
				 idx, nr_idx);
			return -EBADMSG;
		}
		pages += n;
	}
	if (e->n_page_crc != pages) {
		snprintf(why, whylen, "%s: %zu page checksums for %" PRIu64 " pages", name,
			 e->n_page_crc, pages);
		return -EBADMSG;
	}
	for (size_t i = 0; i < e->n_run; i += 2) {
		int ret = ws_record(ws, e->run[i], e->run[i + 1], e->page_crc + c);

		if (ret) {
			snprintf(why, whylen, "%s: out of memory", name);
			return ret;
		}
		c += e->run[i + 1];
	}
	return 0;
}

/* Read and check the frame of dirfd/ws-<img_id>.img into r (trust, size,
 * checksums, dump id). */
static int ws_read(int dirfd, const struct rst_trust *trust, uint32_t img_id,
		   const struct lz_dump_id *id, struct img_reader *r, char *why, size_t whylen)
{
	char name[48];
	int ret;

	snprintf(name, sizeof(name), "ws-%u.img", img_id);
	ret = src_read_image(dirfd, trust, name, LZ_IMG_WS, r, why, whylen);
	if (ret)
		return ret;
	if (r->size > img_kind_max_size(LZ_IMG_WS)) {
		snprintf(why, whylen, "%s: larger than a working set may be", name);
		ret = -EFBIG;
	} else if ((ret = img_reader_check_id(r, id))) {
		snprintf(why, whylen, "%s: %s of this restore", name, r->why);
	}
	if (ret)
		img_reader_close(r);
	return ret;
}

/* Every message of a checked frame, then close it. */
static int ws_parse(struct img_reader *r, uint32_t img_id, uint64_t nr_idx, struct lazy_ws *ws,
		    char *why, size_t whylen)
{
	ProtobufCMessage *m = NULL;
	int ret;

	ws_init(ws);
	for (;;) {
		ret = img_reader_next(r, &ws_entry__descriptor, &m);
		if (ret == -ENODATA) {
			ret = r->nr_entries ? 0 : -EBADMSG;
			if (ret)
				snprintf(why, whylen, "%s: empty", r->name);
			break;
		}
		if (ret) {
			snprintf(why, whylen, "%s: %s", r->name, r->why ? r->why : strerror(-ret));
			break;
		}
		ret = ws_add_entry(ws, (WsEntry *)m, img_id, nr_idx, r->name, why, whylen);
		protobuf_c_message_free_unpacked(m, NULL);
		if (ret)
			break;
	}
	img_reader_close(r);
	if (ret)
		ws_fini(ws);
	return ret;
}

int ws_load(int dirfd, const struct rst_trust *trust, uint32_t img_id, const struct lz_dump_id *id,
	    uint64_t nr_idx, struct lazy_ws *ws, char *why, size_t whylen)
{
	struct img_reader r;
	int ret;

	ws_init(ws);
	ret = ws_read(dirfd, trust, img_id, id, &r, why, whylen);
	return ret ? ret : ws_parse(&r, img_id, nr_idx, ws, why, whylen);
}

/* ------------------------------------------------------------ reading pages */

uint64_t ws_run_left(const struct lazy_src *s, uint64_t idx)
{
	const struct lazy_orig *o = lazy_src_find(s, idx);

	return o ? o->npages - (idx - o->idx) : 0;
}

int ws_read_pages(const struct lazy_ws *ws, struct lazy_src *s, uint64_t k, uint64_t idx,
		  uint64_t n, uint8_t *buf)
{
	const struct lazy_orig *o = lazy_src_find(s, idx);
	size_t len = (size_t)n * PG, got = 0;
	uint64_t dp;

	if (!o || n > o->npages - (idx - o->idx) || k + n > ws->pages) {
		snprintf(s->why, sizeof(s->why), "page index %" PRIu64 " is not in pagemap-%u.img",
			 idx, s->img_id);
		return -EINVAL;
	}
	if (o->zero) {
		memset(buf, 0, len);
		return 0;
	}
	dp = o->data_page + (idx - o->idx);
	while (got < len) {
		ssize_t r = pread(s->fd, buf + got, len - got,
				  (off_t)(LZ_PAGES_HDR_SIZE + dp * PG + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			snprintf(s->why, sizeof(s->why), "%s: data pages %" PRIu64 "-%" PRIu64 ": %s",
				 s->pages_name, dp, dp + n - 1,
				 r < 0 ? strerror(errno) : "truncated (short read)");
			return -EIO;
		}
		got += (size_t)r;
	}
	for (uint64_t j = 0; j < n; j++) {
		uint64_t one = 1;
		const void *data;
		int ret;

		if (lz_crc32c(0, buf + j * PG, PG) == ws->crc[k + j])
			continue;
		/* Not what was recorded: the block's own checksum decides. */
		ret = src_pages(s, idx + j, &one, &data);
		if (ret)
			return ret;
		memcpy(buf + j * PG, data, PG);
	}
	return 0;
}

/* ------------------------------------------------------------ the daemon */

int lpi_ws_start(struct lpi *p, char *why, size_t whylen)
{
	struct lazy_daemon *d = p->d;
	struct lz_dump_id id;
	struct lazy_ws *ws;
	int ret;

	if (!d->o.record_ws && !d->o.prefetch_ws)
		return 0;
	ws = calloc(1, sizeof(*ws));
	if (!ws) {
		snprintf(why, whylen, "%s: out of memory", p->name);
		return -ENOMEM;
	}
	if (d->o.record_ws) {
		ws_init(ws);
		p->ws_rec = ws;
		p->ws_rec_end_ns = d->o.record_ws_ms ?
			lz_now_ns() + (uint64_t)d->o.record_ws_ms * 1000000 : 0;
		pr_info("%s: recording its working set (background fill held back)", p->name);
		return 0;
	}
	memcpy(&id, p->sh->dump_id, sizeof(id));
	ret = ws_load(d->dirfd, &d->trust, p->sh->img_id, &id, p->src->nr_idx, ws, why, whylen);
	if (ret == -ENOENT) {
		pr_warn("%s: no ws-%u.img in %s: nothing to prefetch", p->name, p->sh->img_id,
			d->images_dir);
		free(ws);
		return 0;
	}
	if (ret) {
		free(ws);
		return ret;
	}
	p->ws_pre = ws;
	pr_info("%s: prefetching its working set first: %" PRIu64 " pages in %zu runs", p->name,
		ws->pages, ws->nr);
	return 0;
}

void lpi_ws_free(struct lpi *p)
{
	if (p->ws_rec) {
		ws_fini(p->ws_rec);
		free(p->ws_rec);
		p->ws_rec = NULL;
	}
	if (p->ws_pre) {
		ws_fini(p->ws_pre);
		free(p->ws_pre);
		p->ws_pre = NULL;
	}
}

void lpi_ws_fault(struct lpi *p, const struct lr_run *ch)
{
	int ret = 0;

	if (!p->ws_rec)
		return;
	for (uint64_t j = 0; j < ch->npages && !ret; j++) {
		uint64_t one = 1;
		const void *data;
		uint32_t crc = 0;

		/* The blocks lpi_place just checked: src_pages still holds them. */
		ret = src_pages(p->src, ch->idx + j, &one, &data);
		if (!ret && data)
			crc = lz_crc32c(0, data, PG);
		if (!ret)
			ret = ws_record(p->ws_rec, ch->idx + j, 1, &crc);
	}
	if (ret) {
		pr_err("%s: recording its working set: %s; recording stopped", p->name,
		       ret == -ENOMEM ? "out of memory" : p->src->why);
		ws_fini(p->ws_rec);
		free(p->ws_rec);
		p->ws_rec = NULL;
	}
}

void lpi_ws_end(struct lpi *p, const char *why)
{
	struct lz_dump_id id;
	char msg[256];
	int ret;

	if (!p->ws_rec)
		return;
	memcpy(&id, p->sh->dump_id, sizeof(id));
	ret = ws_write(p->d->dirfd, p->sh->img_id, &id, p->src->nr_idx, p->ws_rec, msg,
		       sizeof(msg));
	if (ret)
		pr_err("%s/%s", p->d->images_dir, msg);
	else
		pr_info("%s: working set recorded (%s): %" PRIu64 " pages in %zu runs, "
			"ws-%u.img", p->name, why, p->ws_rec->pages, p->ws_rec->nr, p->sh->img_id);
	p->sh->st.ws_pages = p->ws_rec->pages;
	ws_fini(p->ws_rec);
	free(p->ws_rec);
	p->ws_rec = NULL;
}

int lpi_ws_tick(struct lazy_daemon *d)
{
	uint64_t now = lz_now_ns(), next = UINT64_MAX;

	for (struct lpi *p = d->procs; p; p = p->next) {
		if (!p->ws_rec || !p->ws_rec_end_ns || p->sh->state != LZ_SLOT_ACTIVE)
			continue;
		if (p->ws_rec_end_ns <= now)
			lpi_ws_end(p, "recording time over");
		else
			next = MIN(next, p->ws_rec_end_ns);
	}
	if (next == UINT64_MAX)
		return -1;
	return (int)MIN((next - now + 999999) / 1000000, (uint64_t)INT32_MAX);
}

/* The layout run holding page index idx (layouts are short: VMAs). */
static const struct lr_run *lay_by_idx(const struct lr_set *lay, uint64_t idx)
{
	for (uint32_t i = 0; i < lay->nr; i++)
		if (idx >= lay->v[i].idx && idx - lay->v[i].idx < lay->v[i].npages)
			return &lay->v[i];
	return NULL;
}

static void ws_advance(struct lazy_ws *ws, uint64_t n)
{
	while (n && ws->pos < ws->nr) {
		uint64_t step = MIN(n, ws->v[ws->pos].npages - ws->off);

		ws->off += step;
		ws->k += step;
		n -= step;
		if (ws->off == ws->v[ws->pos].npages)
			ws->pos++, ws->off = 0;
	}
}

/*
 * The next outstanding pages of the working set, from its cursor: one
 * contiguous chunk inside one layout run; false
 * when the set is done. Pages already in place or no longer in the layout
 * are passed over.
 */
static bool ws_next_chunk(struct lpi *p, struct lazy_ws *ws, struct lr_run *ch)
{
	while (ws->pos < ws->nr) {
		const struct ws_run *w = &ws->v[ws->pos];
		uint64_t idx = w->idx + ws->off, left = w->npages - ws->off, n = 0;
		const struct lr_run *r = lay_by_idx(&p->lay, idx);

		if (!r || lr_done(p->done, idx)) {
			ws_advance(ws, 1);
			continue;
		}
		left = MIN(left, r->npages - (idx - r->idx));
		while (n < left && !lr_done(p->done, idx + n))
			n++;
		ch->start = r->start + (idx - r->idx) * PG;
		ch->idx = idx;
		ch->npages = n;
		return true;
	}
	return false;
}

bool lpi_prefetch_one(struct lpi *p)
{
	struct lazy_ws *ws = p->ws_pre;
	struct lr_run ch;

	for (int k = 0; k < PREFETCH_IOCTLS; k++) {
		if (!ws_next_chunk(p, ws, &ch)) {
			p->sh->st.t_prefetch_done_ns = lz_now_ns();
			pr_info("%s: working set in place (%" PRIu64 " pages prefetched) after %" PRIu64
				" ms", p->name, p->sh->st.pages_prefetch,
				(p->sh->st.t_prefetch_done_ns - p->sh->st.t_start_ns) / 1000000);
			ws_fini(ws);
			free(ws);
			p->ws_pre = NULL;
			return k > 0;
		}
		ch.npages = MIN(MIN(ch.npages, (uint64_t)WS_BUF_PAGES), ws_run_left(p->src, ch.idx));
		if (!ch.npages) { /* cannot be: the layout comes from the pagemap; pass it */
			ws_advance(ws, 1);
			continue;
		}
		if (!ws->buf && !(ws->buf = malloc(WS_BUF_PAGES * PG))) {
			lpi_kill(p, "out of memory prefetching its working set");
			return true;
		}
		if (ws_read_pages(ws, p->src, ws->k, ch.idx, ch.npages, ws->buf)) {
			lpi_kill(p, "%s", p->src->why);
			return true;
		}
		/* -EAGAIN: the layout is changing; the same pages next round. */
		if (lpi_place(p, &ch, PLACE_PREFETCH, ws->buf) || p->sh->state != LZ_SLOT_ACTIVE)
			return true;
		ws_advance(ws, ch.npages);
	}
	return true;
}
