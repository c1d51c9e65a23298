/*
 * lazy-ws.h - a process's working set (REAP-style): the lazy pages it
 * touched first after a lazy restore, in the order it touched them, as
 * runs of page indices (the numbering of lazy-ranges.h). `lazy-pages
 * --record-ws` records one and writes it to ws-<id>.img next to the
 * images; `--prefetch-ws` reads it back, checks it and places those pages
 * first, in that order, before the background fill.
 *
 * The file part (record, write, parse, load) is here and has no daemon
 * state in it; test/fuzz/fuzz_image.c drives ws_add_entry(). Functions
 * return 0 or -errno; on content errors `why` names the file and the
 * problem in one line.
 */
#ifndef LZ_LAZY_WS_H
#define LZ_LAZY_WS_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "restore-trust.h"
#include "ws.pb-c.h"

struct lazy_src;

#define LZ_WS_RUNS_PER_ENTRY 8192 /* runs per ws_entry message when written */

struct ws_run {
	uint64_t idx, npages;
};

struct lazy_ws {
	struct ws_run *v;
	size_t nr, cap;
	uint64_t pages;	 /* sum of npages */
	uint32_t *crc;	 /* per page, in order: crc32c of its contents */
	uint64_t crc_cap;
	size_t pos;	 /* prefetch: next run */
	uint64_t off;	 /* prefetch: pages of v[pos] already handled */
	uint64_t k;	 /* prefetch: pages of the set before v[pos] + off */
	uint8_t *buf;	 /* prefetch: the pages being placed */
};

void ws_init(struct lazy_ws *ws);
void ws_fini(struct lazy_ws *ws);

/* Append [idx, idx+n) in order of access with the crc32c of each page;
 * joined with the last run when it continues it. */
int ws_record(struct lazy_ws *ws, uint64_t idx, uint64_t n, const uint32_t *crc);

/*
 * The contents of working-set pages [k, k+n) (page idx.. of one pagemap
 * run) into buf: zero pages as zeros, data pages read with one pread and
 * each checked against its recorded crc; a page that does not match is
 * taken from its checked block instead (src_pages), so what comes out is
 * always checked. -errno with s->why when the block is damaged too.
 */
int ws_read_pages(const struct lazy_ws *ws, struct lazy_src *s, uint64_t k, uint64_t idx,
		  uint64_t n, uint8_t *buf);
/* Pages from idx that one ws_read_pages() call can take: inside its run. */
uint64_t ws_run_left(const struct lazy_src *s, uint64_t idx);

/*
 * Write ws to dirfd/ws-<img_id>.img for dump id (an O_EXCL temporary
 * renamed over the name, then the directory fsynced: safe-file.h).
 */
int ws_write(int dirfd, uint32_t img_id, const struct lz_dump_id *id, uint64_t nr_idx,
	     const struct lazy_ws *ws, char *why, size_t whylen);

/*
 * Check one message of a ws file for process img_id whose pagemap has
 * nr_idx lazy pages, and append its runs: every run inside [0, nr_idx),
 * not empty, the file's pages in all at most nr_idx. name is the file, for
 * the message.
 */
int ws_add_entry(struct lazy_ws *ws, const WsEntry *e, uint32_t img_id, uint64_t nr_idx,
		 const char *name, char *why, size_t whylen);

/*
 * Read and check dirfd/ws-<img_id>.img: no symlink followed, a regular file
 * a trusted user owns, size bounded, framing and checksums, dump id `id`
 * (-ESTALE otherwise), then every message (ws_add_entry). -ENOENT when
 * there is none.
 */
int ws_load(int dirfd, const struct rst_trust *trust, uint32_t img_id, const struct lz_dump_id *id,
	    uint64_t nr_idx, struct lazy_ws *ws, char *why, size_t whylen);

#endif
