/*
 * test_image.c - image framing: round trips, and every kind of damage
 * (truncation at every length, every flipped byte, wrong version/kind)
 * refused with the right reason.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "unit.h"
#include "image.h"
#include "core.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"

static char dir[] = "/tmp/lz-unit-XXXXXX";

static int setup_dir(void)
{
	return mkdtemp(dir) ? open(dir, O_RDONLY | O_DIRECTORY) : -1;
}

/* Write a pstree image with n entries; return its bytes. */
static const struct lz_dump_id test_id = { { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 } };

static uint8_t *make_image(int dfd, unsigned n, size_t *size)
{
	struct img_writer w;
	struct stat st;
	uint8_t *buf;
	int fd;

	if (img_writer_open(&w, dfd, "pstree.img", LZ_IMG_PSTREE, &test_id))
		return NULL;
	for (unsigned i = 0; i < n; i++) {
		PstreeEntry e = PSTREE_ENTRY__INIT;
		uint32_t threads[2] = { 100 + i, 200 + i };

		e.pid = 100 + i;
		e.ppid = 1;
		e.pgid = 100;
		e.sid = 100;
		e.n_threads = 2;
		e.threads = threads;
		if (img_writer_put(&w, &e.base))
			return NULL;
	}
	if (img_writer_close(&w, dfd))
		return NULL;
	fd = openat(dfd, "pstree.img", O_RDONLY);
	if (fd < 0 || fstat(fd, &st))
		return NULL;
	buf = malloc((size_t)st.st_size);
	if (read(fd, buf, (size_t)st.st_size) != st.st_size)
		return NULL;
	close(fd);
	*size = (size_t)st.st_size;
	return buf;
}

static int test_round_trip(void)
{
	struct img_reader r;
	ProtobufCMessage *m;
	int dfd = setup_dir();
	size_t size;

	CHECK(dfd >= 0);
	CHECK(make_image(dfd, 3, &size));
	CHECK(img_reader_open(&r, dfd, "pstree.img", LZ_IMG_PSTREE) == 0);
	CHECK(r.nr_entries == 3);
	for (unsigned i = 0; i < 3; i++) {
		CHECK(img_reader_next(&r, &pstree_entry__descriptor, &m) == 0);
		PstreeEntry *e = (PstreeEntry *)m;
		CHECK(e->pid == 100 + i && e->n_threads == 2 && e->threads[1] == 200 + i);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	CHECK(img_reader_next(&r, &pstree_entry__descriptor, &m) == -ENODATA);
	img_reader_close(&r);
	return 0;
}

static int test_empty_image(void)
{
	struct img_reader r;
	int dfd = setup_dir();
	size_t size;
	uint8_t *b = make_image(dfd, 0, &size);

	CHECK(b && size == sizeof(struct lz_img_hdr) + sizeof(struct lz_img_tail));
	CHECK(img_reader_from_buf(&r, "x", b, size, LZ_IMG_PSTREE) == 0 && r.nr_entries == 0);
	return 0;
}

static int test_every_truncation_refused(void)
{
	struct img_reader r;
	int dfd = setup_dir();
	size_t size;
	uint8_t *b = make_image(dfd, 4, &size);

	CHECK(b);
	for (size_t len = 0; len < size; len++) {
		uint8_t *copy = malloc(len ? len : 1);

		memcpy(copy, b, len);
		CHECK(img_reader_from_buf(&r, "x", copy, len, LZ_IMG_PSTREE) == -EBADMSG);
		CHECK(r.why && *r.why);
		free(copy);
	}
	return 0;
}

static int test_every_flipped_byte_refused(void)
{
	struct img_reader r;
	int dfd = setup_dir();
	size_t size;
	uint8_t *b = make_image(dfd, 4, &size);

	CHECK(b);
	for (size_t i = 0; i < size; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b[i] ^= (uint8_t)(1 << bit);
			int ret = img_reader_from_buf(&r, "x", b, size, LZ_IMG_PSTREE);
			CHECK(ret == -EBADMSG || ret == -EPROTO);
			b[i] ^= (uint8_t)(1 << bit);
		}
	}
	CHECK(img_reader_from_buf(&r, "x", b, size, LZ_IMG_PSTREE) == 0);
	return 0;
}

static int test_version_and_kind(void)
{
	char want[32];
	struct img_reader r;
	int dfd = setup_dir();
	size_t size;
	uint8_t *b = make_image(dfd, 1, &size);

	CHECK(b);
	CHECK(img_reader_from_buf(&r, "x", b, size, LZ_IMG_CORE) == -EBADMSG);
	CHECK(strstr(r.why, "kind"));
	b[4]++; /* version */
	CHECK(img_reader_from_buf(&r, "x", b, size, LZ_IMG_PSTREE) == -EPROTO);
	snprintf(want, sizeof(want), "version %d", LZ_IMG_FORMAT_VERSION + 1);
	CHECK(strstr(r.why, want));
	b[4]--;
	b[0] ^= 0xff;
	CHECK(img_reader_from_buf(&r, "x", b, size, LZ_IMG_PSTREE) == -EBADMSG);
	CHECK(strstr(r.why, "magic"));
	return 0;
}

static int test_missing_file(void)
{
	struct img_reader r;
	int dfd = setup_dir();

	CHECK(img_reader_open(&r, dfd, "core-1.img", LZ_IMG_CORE) == -ENOENT);
	CHECK(strstr(r.why, "No such file"));
	return 0;
}

/* Not regular files: refused by what they are, without blocking on a FIFO. */
static int test_not_regular_refused(void)
{
	static const struct {
		const char *name;
		const char *why;
	} t[] = {
		{ "fifo.img", "is a FIFO, not a regular file" },
		{ "link.img", "is a symbolic link (refused: images are never followed)" },
		{ "zero.img", "is a character device, not a regular file" },
		{ "sub.img", "is a directory, not a regular file" },
	};
	int dfd = setup_dir();

	CHECK(dfd >= 0);
	CHECK(mkfifoat(dfd, "fifo.img", 0600) == 0);
	CHECK(symlinkat("/dev/zero", dfd, "link.img") == 0);
	CHECK(mknodat(dfd, "zero.img", S_IFCHR | 0600, makedev(1, 5)) == 0);
	CHECK(mkdirat(dfd, "sub.img", 0700) == 0);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct img_reader r;

		CHECK(img_reader_open(&r, dfd, t[i].name, LZ_IMG_CORE) < 0);
		CHECK(!strcmp(r.why, t[i].why));
	}
	return 0;
}

/* A file larger than its kind may be is refused before it is read. */
static int test_size_bound(void)
{
	struct img_reader r;
	int dfd = setup_dir(), fd;

	CHECK(dfd >= 0);
	fd = openat(dfd, "pstree.img", O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0 && ftruncate(fd, (off_t)img_kind_max_size(LZ_IMG_PSTREE) + 1) == 0);
	close(fd);
	CHECK(img_reader_open(&r, dfd, "pstree.img", LZ_IMG_PSTREE) == -EFBIG);
	CHECK(!strcmp(r.why, "16777217 bytes, more than a pstree image may hold (16 MiB)"));
	CHECK(img_kind_max_size(LZ_IMG_PAGES) == UINT64_MAX);
	return 0;
}

static int test_read_one(void)
{
	struct img_reader r;
	ProtobufCMessage *m = NULL;
	int dfd = setup_dir();
	size_t size;

	CHECK(make_image(dfd, 2, &size));
	CHECK(img_read_one(&r, dfd, "pstree.img", LZ_IMG_PSTREE, &pstree_entry__descriptor, &m) ==
	      -EBADMSG);
	CHECK(strstr(r.why, "exactly one"));
	CHECK(make_image(dfd, 1, &size));
	CHECK(img_read_one(&r, dfd, "pstree.img", LZ_IMG_PSTREE, &pstree_entry__descriptor, &m) == 0);
	CHECK(((PstreeEntry *)m)->pid == 100);
	return 0;
}

static int test_kind_from_name(void)
{
	enum lz_img_kind k;

	CHECK(img_kind_from_name("core-12.img", &k) == 0 && k == LZ_IMG_CORE);
	CHECK(img_kind_from_name("/x/y/pagemap-1.img", &k) == 0 && k == LZ_IMG_PAGEMAP);
	CHECK(img_kind_from_name("inventory.img", &k) == 0 && k == LZ_IMG_INVENTORY);
	CHECK(img_kind_from_name("pages-3.img", &k) == 0 && k == LZ_IMG_PAGES);
	CHECK(img_kind_from_name("corex.img", &k) == -EINVAL);
	return 0;
}

static int test_pages_hdr(void)
{
	struct lz_pages_hdr h;
	const char *why = NULL;

	struct lz_dump_id other = test_id;

	other.b[15] ^= 1;
	pages_hdr_init(&h, 42, 7, &test_id);
	CHECK(pages_hdr_check(&h, &test_id, &why) == 0);
	CHECK(pages_hdr_check(&h, NULL, &why) == 0);
	CHECK(pages_hdr_check(&h, &other, &why) == -ESTALE && strstr(why, "another dump"));
	h.nr_pages = 8;
	CHECK(pages_hdr_check(&h, NULL, &why) == -EBADMSG && strstr(why, "checksum"));
	pages_hdr_init(&h, 42, 7, &test_id);
	h.version = 1;
	CHECK(pages_hdr_check(&h, NULL, &why) == -EPROTO);
	pages_hdr_init(&h, 42, 7, &test_id);
	h.magic = 0;
	CHECK(pages_hdr_check(&h, NULL, &why) == -EBADMSG && strstr(why, "magic"));
	return 0;
}

/* Every file of a dump carries its id; a reader names both ids when they differ. */
static int test_dump_id(void)
{
	struct lz_dump_id a, b, other = test_id;
	char hex[LZ_DUMP_ID_HEX];
	struct img_reader r;
	int dfd = setup_dir();
	size_t size;
	uint8_t *buf = make_image(dfd, 2, &size);

	CHECK(buf);
	CHECK(lz_dump_id_new(&a) == 0 && lz_dump_id_new(&b) == 0 && !lz_dump_id_eq(&a, &b));
	CHECK(strlen(lz_dump_id_hex(&test_id, hex)) == 32 &&
	      !strcmp(hex, "0102030405060708090a0b0c0d0e0f10"));
	CHECK(img_reader_from_buf(&r, "x", buf, size, LZ_IMG_PSTREE) == 0);
	CHECK(img_reader_check_id(&r, &test_id) == 0);
	other.b[0] = 0xff;
	CHECK(img_reader_check_id(&r, &other) == -ESTALE);
	CHECK(strstr(r.why, "another dump") && strstr(r.why, hex));
	return 0;
}

static int test_crc32c_known_value(void)
{
	/* The standard CRC-32C check value. */
	CHECK(lz_crc32c(0, "123456789", 9) == 0xe3069283U);
	CHECK(lz_crc32c(0, "", 0) == 0);
	/* Incremental == one shot. */
	CHECK(lz_crc32c(lz_crc32c(0, "1234", 4), "56789", 5) == 0xe3069283U);
	return 0;
}

/* Bit by bit, as the definition: the reference for the fast paths. */
static uint32_t crc32c_ref(const uint8_t *p, size_t len)
{
	uint32_t c = ~0U;

	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78U : c >> 1;
	}
	return ~c;
}

/* Every length around the three-stream split points, at every alignment,
 * one shot and in two pieces, equals the bitwise definition. */
static int test_crc32c_long_buffers(void)
{
	static const size_t lens[] = { 0,     7,     8,	    383,   384,	  385,	 3071,	3072,
				       3073,  24575, 24576, 24577, 27647, 27655, 65536, 100003 };
	size_t max = 100003 + 8;
	uint8_t *buf = malloc(max);
	uint32_t x = 2463534242U;

	CHECK(buf);
	for (size_t i = 0; i < max; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
		for (size_t off = 0; off < 8; off++) {
			uint32_t want = crc32c_ref(buf + off, lens[l]);
			size_t half = lens[l] / 2;

			CHECK(lz_crc32c(0, buf + off, lens[l]) == want);
			CHECK(lz_crc32c(lz_crc32c(0, buf + off, half), buf + off + half,
					lens[l] - half) == want);
		}
	free(buf);
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_round_trip),
	UNIT(test_empty_image),
	UNIT(test_every_truncation_refused),
	UNIT(test_every_flipped_byte_refused),
	UNIT(test_version_and_kind),
	UNIT(test_missing_file),
	UNIT(test_not_regular_refused),
	UNIT(test_size_bound),
	UNIT(test_read_one),
	UNIT(test_kind_from_name),
	UNIT(test_pages_hdr),
	UNIT(test_dump_id),
	UNIT(test_crc32c_known_value),
	UNIT(test_crc32c_long_buffers),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
