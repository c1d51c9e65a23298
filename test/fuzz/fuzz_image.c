/*
 * fuzz_image.c - libFuzzer target for every image parser: the framing
 * reader, each kind's protobuf messages, and the pages header.
 * The first input byte picks the kind (low bits) and the mode (bit 7):
 * raw, the rest is the file as read from disk; framed, the rest is one
 * message payload that gets a valid frame and checksums around it, so the
 * fuzzer reaches the protobuf decoders past the crc checks. A working-set
 * message (ws-<pid>.img) that decodes also goes through the daemon's checks
 * (ws_add_entry, src/lazy-ws.c): what they accept lies inside the pagemap.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "lazy-ws.h"

static void fuzz_ws(const WsEntry *e)
{
	uint64_t nr_idx = e->nr_lazy_pages & ((1 << 20) - 1); /* a pagemap of up to 4 GiB */
	struct lazy_ws ws;
	char why[256] = "";

	ws_init(&ws);
	if (ws_add_entry(&ws, e, e->pid, nr_idx, "ws-1.img", why, sizeof(why)) == 0) {
		uint64_t pages = 0;

		for (size_t i = 0; i < ws.nr; i++) {
			if (!ws.v[i].npages || ws.v[i].idx >= nr_idx ||
			    ws.v[i].npages > nr_idx - ws.v[i].idx)
				abort(); /* accepted a run outside the pagemap */
			pages += ws.v[i].npages;
		}
		if (pages != ws.pages || pages > nr_idx)
			abort();
	} else if (!why[0]) {
		abort(); /* refused without saying why */
	}
	ws_fini(&ws);
}

static int fuzz_framed(enum lz_img_kind kind, const uint8_t *payload, size_t len)
{
	struct lz_img_hdr h = { .magic = LZ_IMG_MAGIC, .version = LZ_IMG_FORMAT_VERSION,
				.kind = (uint16_t)kind };
	struct lz_img_entry_hdr eh = { .len = (uint32_t)len, .crc = lz_crc32c(0, payload, len) };
	struct lz_img_tail t = { .marker = LZ_IMG_TAIL_MARKER, .nr_entries = 1,
				 .magic = LZ_IMG_TAIL_MAGIC };
	size_t size = sizeof(h) + sizeof(eh) + len + sizeof(t);
	uint8_t *buf = malloc(size);
	struct img_reader r;
	ProtobufCMessage *m;

	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &eh, sizeof(eh));
	memcpy(buf + sizeof(h) + sizeof(eh), payload, len);
	t.crc = lz_crc32c(0, buf, size - sizeof(t));
	memcpy(buf + size - sizeof(t), &t, sizeof(t));
	if (img_reader_from_buf(&r, "fuzz", buf, size, kind) != 0)
		abort(); /* a well-framed file must pass the framing checks */
	if (img_reader_next(&r, img_kind_desc(kind), &m) == 0) {
		if (kind == LZ_IMG_WS)
			fuzz_ws((const WsEntry *)m);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	free(buf);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const ProtobufCMessageDescriptor *desc;
	struct img_reader r;
	enum lz_img_kind kind;
	uint8_t *copy;

	if (size < 1)
		return 0;
	bool framed = data[0] & 0x80;

	kind = (enum lz_img_kind)(1 + (data[0] & 0x7f) % (LZ_IMG_KIND_MAX - 1));
	data++;
	size--;
	if (framed && kind != LZ_IMG_PAGES)
		return fuzz_framed(kind, data, size);

	if (kind == LZ_IMG_PAGES) {
		struct lz_pages_hdr h;
		const char *why;

		if (size >= sizeof(h)) {
			memcpy(&h, data, sizeof(h));
			pages_hdr_check(&h, NULL, &why);
		}
		return 0;
	}
	desc = img_kind_desc(kind);
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	if (img_reader_from_buf(&r, "fuzz", copy, size, kind) == 0) {
		ProtobufCMessage *m;

		while (img_reader_next(&r, desc, &m) == 0)
			protobuf_c_message_free_unpacked(m, NULL);
	}
	free(copy);
	return 0;
}
