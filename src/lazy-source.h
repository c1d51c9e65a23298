/*
 * lazy-source.h - where the lazy-pages daemon takes page contents from: the
 * lazy runs of pagemap-<id>.img and pages-<id>.img, read block by block and
 * checked against the pagemap's crc32c right before anything is copied.
 *
 * Lazy pages are numbered 0, 1, ... in address order of the pagemap's lazy
 * runs: the page index of lazy-ranges.h. A source is shared (refcounted) by
 * a process and the children it forks, since they inherit its pages.
 *
 * Functions return 0 or -errno; on content errors s->why (or the why buffer
 * passed to src_open) says what is wrong, naming the file.
 */
#ifndef LZ_LAZY_SOURCE_H
#define LZ_LAZY_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "lazy-ranges.h"
#include "pagemap.pb-c.h"
#include "restore-trust.h"

struct lazy_orig {
	uint64_t vaddr;	    /* dump-time address of the run */
	uint64_t npages;
	uint64_t idx;	    /* page index of its first page */
	uint64_t data_page; /* first page in the pages file; unused for zero runs */
	uint32_t zero;	    /* 1: LZ_PE_ZERO run, no data */
	uint32_t pad;
};

struct lazy_src {
	int refs;
	uint32_t img_id;
	char pages_name[48];
	int fd;			 /* pages file */
	uint64_t nr_data_pages;
	uint32_t block_pages;	 /* pages per checksum block */
	uint32_t nr_blocks;
	uint32_t *block_crc;
	uint8_t *scratch;	 /* the blocks of the last request, checked */
	size_t scratch_len;
	struct lazy_orig *orig;	 /* lazy runs in address order */
	size_t nr_orig;
	uint64_t nr_idx;	 /* lazy pages in all */
	uint64_t cache_b0, cache_b1; /* scratch holds these blocks, checked */
	bool cached;		 /* ... when set */
	char why[192];
};

/*
 * Load and check pagemap-<img_id>.img and pages-<img_id>.img in dirfd; both
 * must belong to dump id (-ESTALE otherwise). The pagemap is used from the
 * buffer that was verified, the pages from the fd whose header was checked.
 */
int src_open(int dirfd, const struct rst_trust *trust, uint32_t img_id,
	     const struct lz_dump_id *id, struct lazy_src **out, char *why, size_t whylen);

/*
 * Read dirfd/name whole and verify it as an image of kind: no symlink
 * followed, no FIFO or device opened in a way that blocks, owned by a user
 * trust trusts (restore-trust.h), size bounded. On failure why names the
 * file and the problem. img_reader_close() it.
 */
int src_read_image(int dirfd, const struct rst_trust *trust, const char *name,
		   enum lz_img_kind kind, struct img_reader *r, char *why, size_t whylen);
struct lazy_src *src_get(struct lazy_src *s);

/*
 * The steps of src_open() that read no file (test/fuzz/fuzz_lazy_source.c
 * calls them alone): a source with no pages file yet (fd -1), its pagemap
 * head, then each run in file order (prev_end starts at 0). name is the
 * pagemap file for the messages.
 */
int src_alloc(uint32_t img_id, struct lazy_src **out);

/* The lazy run (s->orig, sorted by idx) holding page index IDX; NULL if none. */
const struct lazy_orig *lazy_src_find(const struct lazy_src *s, uint64_t idx);
int src_set_head(struct lazy_src *s, const PagemapHead *h, const char *name, char *why,
		 size_t whylen);
int src_add_entry(struct lazy_src *s, const PagemapEntry *e, uint64_t *prev_end, const char *name,
		  char *why, size_t whylen);
void src_put(struct lazy_src *s);
/*
 * Open s->pages_name in dirfd and check its header (dump id, page count
 * against the head set) and exact size: the last step of src_open(), for a
 * source whose runs came from elsewhere (lazy-shmem.c: shmem.img).
 */
int src_open_pages(struct lazy_src *s, int dirfd, const struct rst_trust *trust,
		   const struct lz_dump_id *id, char *why, size_t whylen);

/* The lazy runs as {vaddr, npages, idx}, for lr_build. Free with free(). */
int src_lazy_runs(const struct lazy_src *s, struct lr_run **runs, size_t *nr);

/*
 * Where the pages [idx, idx + *n) come from. *n is clipped to the pagemap
 * run that holds idx and to a 2 MiB chunk. *data points into the source's
 * buffer of just-checked data (valid until the next call), or is NULL for a
 * zero run. Every block the pages touch is checked first: -EBADMSG (or -EIO
 * for a short read) with s->why set when one is damaged.
 */
int src_pages(struct lazy_src *s, uint64_t idx, uint64_t *n, const void **data);

/*
 * How many of the `want` pages from idx to take as one piece so that its data
 * ends on a checksum block boundary: consecutive pieces then read and check
 * every block once. `want` when the run ends first, is zero, or no boundary
 * lies within.
 */
uint64_t src_piece(const struct lazy_src *s, uint64_t idx, uint64_t want);

#endif
