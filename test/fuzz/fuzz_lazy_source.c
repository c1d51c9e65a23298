/*
 * fuzz_lazy_source.c - libFuzzer target for the lazy-pages daemon's page
 * source (src/lazy-source.c): the pagemap checks of src_open() (head, then
 * each run) and, on a source they accept, src_lazy_runs() and src_pages()
 * requests against a pages file held in a memfd.
 *
 * The input is a list of records (records.h): a PagemapHead, PagemapEntry
 * messages, the data pages (the records appended), and the page requests. The oracle: lazy runs
 * come out sorted, disjoint and numbered without gaps; a request returns
 * between 1 and the pages asked for, inside the run that holds its index,
 * and data equal to the pages file at the pagemap's data page; a refusal
 * says why.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "image.h"
#include "lazy-source.h"
#include "log.h"
#include "records.h"

#define MAX_RUNS 4096
#define MAX_REQS 64
#define MAX_FILE_PAGES 4096 /* the memfd is sparse: zeros past the input's data */

static uint8_t buf_[2 << 20];
static uint8_t body_[256 << 10];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_init(LOG_MSG, -1);
	return 0;
}

static void check_request(struct lazy_src *s, const struct fz_s_req *rq)
{
	uint64_t n = rq->n, idx = rq->idx;
	const struct lazy_orig *o = NULL;
	const void *data = NULL;
	int ret;

	if (!n)
		return; /* the daemon asks for one page or more */
	s->why[0] = 0;
	ret = src_pages(s, idx, &n, &data);
	for (size_t i = 0; i < s->nr_orig; i++)
		if (idx >= s->orig[i].idx && idx - s->orig[i].idx < s->orig[i].npages)
			o = &s->orig[i];
	if (ret) {
		if (!s->why[0])
			abort(); /* refused without saying why */
		if (ret == -EINVAL && o)
			abort(); /* refused an index it holds */
		return;
	}
	if (!o || !n || n > rq->n || n > o->npages - (idx - o->idx))
		abort();
	if (o->zero) {
		if (data)
			abort();
		return;
	}
	uint64_t dp = o->data_page + (idx - o->idx);
	size_t len = (size_t)n * LZ_PAGE_SIZE;

	if (!data || len > sizeof(buf_))
		abort();
	if (pread(s->fd, buf_, len, (off_t)(LZ_PAGES_HDR_SIZE + dp * LZ_PAGE_SIZE)) != (ssize_t)len)
		abort();
	if (memcmp(buf_, data, len)) /* also: data lies inside the scratch buffer (ASan) */
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	PagemapEntry *runs[MAX_RUNS];
	struct fz_s_req reqs[MAX_REQS];
	size_t nr_runs = 0, nr_reqs = 0, len, body_len = 0;
	PagemapHead *head = NULL;
	const uint8_t *p;
	struct lazy_src *s = NULL;
	uint64_t prev_end = 0;
	char why[192] = "";
	uint8_t tag;
	int ret;

	while (fz_next(&data, &size, &tag, &p, &len)) {
		if (tag == FZ_S_HEAD && !head) {
			head = pagemap_head__unpack(NULL, len, p);
		} else if (tag == FZ_S_PM && nr_runs < MAX_RUNS) {
			runs[nr_runs] = pagemap_entry__unpack(NULL, len, p);
			nr_runs += !!runs[nr_runs];
		} else if (tag == FZ_S_DATA) {
			len = MIN(len, sizeof(body_) - body_len);
			memcpy(body_ + body_len, p, len);
			body_len += len;
		} else if (tag == FZ_S_REQ && nr_reqs < MAX_REQS) {
			memset(&reqs[nr_reqs], 0, sizeof(reqs[0]));
			memcpy(&reqs[nr_reqs++], p, MIN(len, sizeof(reqs[0])));
		}
	}
	if (!head)
		goto out;
	if (src_alloc(7, &s))
		abort();
	ret = src_set_head(s, head, "pagemap-7.img", why, sizeof(why));
	for (size_t i = 0; !ret && i < nr_runs; i++) {
		why[0] = 0;
		ret = src_add_entry(s, runs[i], &prev_end, "pagemap-7.img", why, sizeof(why));
		if (ret == 0 && why[0])
			why[0] = 0; /* a skipped run (not served from images) */
	}
	if (ret) {
		if (!why[0] && ret != -ENOMEM)
			abort();
		goto out;
	}

	/* src_lazy_runs: sorted, disjoint, numbered without gaps. */
	struct lr_run *lr;
	size_t nr_lr;
	uint64_t idx = 0, end = 0;

	if (src_lazy_runs(s, &lr, &nr_lr))
		abort();
	for (size_t i = 0; i < nr_lr; i++) {
		if (lr[i].idx != idx || !lr[i].npages || lr[i].start < end ||
		    __builtin_add_overflow(lr[i].start, lr[i].npages * LZ_PAGE_SIZE, &end))
			abort();
		idx += lr[i].npages;
	}
	free(lr);
	if (idx != s->nr_idx)
		abort();

	/* The pages file, as src_map_pages() would have accepted it. */
	if (s->nr_data_pages > MAX_FILE_PAGES)
		goto out;
	s->fd = memfd_create("pages", MFD_CLOEXEC);
	if (s->fd < 0 ||
	    ftruncate(s->fd, (off_t)(LZ_PAGES_HDR_SIZE + s->nr_data_pages * LZ_PAGE_SIZE)))
		abort();
	body_len = MIN(body_len, (size_t)s->nr_data_pages * LZ_PAGE_SIZE);
	if (body_len && pwrite(s->fd, body_, body_len, LZ_PAGES_HDR_SIZE) != (ssize_t)body_len)
		abort();
	for (size_t i = 0; i < nr_reqs; i++)
		check_request(s, &reqs[i]);
out:
	src_put(s);
	if (head)
		pagemap_head__free_unpacked(head, NULL);
	for (size_t i = 0; i < nr_runs; i++)
		pagemap_entry__free_unpacked(runs[i], NULL);
	return 0;
}
