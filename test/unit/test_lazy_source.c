/*
 * test_lazy_source.c - the lazy-pages daemon's page source, the part that
 * needs no image files: cutting the background fill into pieces that end on
 * a checksum block (src_piece), so consecutive pieces read each block once.
 */
#include <stdint.h>

#include "unit.h"
#include "lazy-source.h"

/* Three lazy runs: data pages 5..104 (idx 0..99), a zero run (idx 100..149),
 * data pages 200..299 (idx 150..249); blocks of 16 pages. */
static struct lazy_orig origs[] = {
	{ .vaddr = 0x1000000, .npages = 100, .idx = 0, .data_page = 5 },
	{ .vaddr = 0x2000000, .npages = 50, .idx = 100, .zero = 1 },
	{ .vaddr = 0x3000000, .npages = 100, .idx = 150, .data_page = 200 },
};

static struct lazy_src src = { .block_pages = 16, .orig = origs, .nr_orig = 3 };

static int test_piece_ends_on_block(void)
{
	/* idx 0 = data page 5: 64 wanted, cut to end at data page 64 (59 pages). */
	CHECK(src_piece(&src, 0, 64) == 59);
	/* The next piece starts on a block and takes 64 whole. */
	CHECK(src_piece(&src, 59, 64) == 64);
	/* Less than a block to the next boundary: the want, unchanged. */
	CHECK(src_piece(&src, 0, 8) == 8);
	/* Data page 200 = 12 * 16 + 8: ends at page 256 (56 pages). */
	CHECK(src_piece(&src, 150, 64) == 56);
	return 0;
}

static int test_piece_run_end_and_zero(void)
{
	/* The run ends first: the want (lpi_place splits at the run's end). */
	CHECK(src_piece(&src, 90, 64) == 64);
	CHECK(src_piece(&src, 99, 1) == 1);
	/* Zero runs read nothing: no block to end on. */
	CHECK(src_piece(&src, 100, 40) == 40);
	/* An index in no run: the want (src_pages then says why). */
	CHECK(src_piece(&src, 1000, 64) == 64);
	return 0;
}

static int test_pieces_cover_every_page_once(void)
{
	/* Walk a run the way lpi_fill_chunk does: no page lost or repeated,
	 * every piece but the last ends on a block, none longer than wanted. */
	uint64_t idx = 0, end = 100, blocks_read = 0;

	while (idx < end) {
		uint64_t want = end - idx < 64 ? end - idx : 64, n = src_piece(&src, idx, want);
		uint64_t dp = 5 + idx;

		CHECK(n >= 1 && n <= want);
		if (idx + n < end)
			CHECK((dp + n) % 16 == 0);
		blocks_read += (dp + n - 1) / 16 - dp / 16 + 1;
		idx += n;
	}
	CHECK(idx == end);
	/* Data pages 5..104 lie in blocks 0..6: each read once. */
	CHECK(blocks_read == 7);
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_piece_ends_on_block),
	UNIT(test_piece_run_end_and_zero),
	UNIT(test_pieces_cover_every_page_once),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
