/*
 * records.h - the input format of the semantic fuzzers and their seeds
 * (test/fuzz/mkseed.c): a sequence of records, each a tag byte, a 16-bit
 * little-endian length and that many bytes. Most records are one packed
 * protobuf message; a truncated last record ends the input.
 */
#ifndef LZ_FUZZ_RECORDS_H
#define LZ_FUZZ_RECORDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FZ_REC_MAX 0xffffU

/* fuzz_verify: a struct rst_images */
enum {
	FZ_V_PARAMS = 0,   /* struct fz_v_params */
	FZ_V_CORE = 1,	   /* CoreEntry */
	FZ_V_INV = 2,	   /* InventoryEntry */
	FZ_V_MM = 3,	   /* MmEntry */
	FZ_V_PM_HEAD = 4,  /* PagemapHead */
	FZ_V_PM = 5,	   /* PagemapEntry, one per record */
	FZ_V_FILE = 6,	   /* FileEntry, one per record */
	FZ_V_FDINFO = 7,   /* FdinfoEntry, one per record */
	FZ_V_PAGES = 8,	   /* the start of pages-<pid>.img, raw */
	FZ_V_TASK = 10,	   /* TaskEntry (its POSIX timers) */
};

struct fz_v_params {
	uint32_t pid;
	uint8_t lazy;	   /* im->lazy */
	uint8_t pad_pages; /* extend pages-<pid>.img with zeros to its full size (up to 4 MiB) */
	uint8_t id[16];	   /* im->id, the dump id (inventory.img's) */
};

/* fuzz_lazy_source: a page source */
enum {
	FZ_S_HEAD = 4,	   /* PagemapHead */
	FZ_S_PM = 5,	   /* PagemapEntry */
	FZ_S_DATA = 8,	   /* data pages (after the pages header), raw; appended */
	FZ_S_REQ = 9,	   /* struct fz_s_req: one src_pages() call */
};

struct fz_s_req {
	uint64_t idx;
	uint64_t n;
};

/*
 * fuzz_lazy_conn: what one client sends, one record per message. The tag's
 * low three bits are the number of fds to attach (0-4, each a fresh
 * eventfd); with FZ_C_FRAMED the fuzzer writes a valid header itself (type
 * from the first byte, the rest is the payload), else the record is sent
 * as it is.
 */
#define FZ_C_NFDS 0x07U
#define FZ_C_FRAMED 0x80U

static inline bool fz_next(const uint8_t **data, size_t *size, uint8_t *tag, const uint8_t **p,
			   size_t *len)
{
	if (*size < 3)
		return false;
	*tag = (*data)[0];
	*len = (size_t)(*data)[1] | (size_t)(*data)[2] << 8;
	if (*size - 3 < *len)
		return false;
	*p = *data + 3;
	*data += 3 + *len;
	*size -= 3 + *len;
	return true;
}

static inline int fz_put(FILE *f, uint8_t tag, const void *p, size_t len)
{
	uint8_t h[3] = { tag, (uint8_t)len, (uint8_t)(len >> 8) };

	if (len > FZ_REC_MAX)
		return -1;
	return fwrite(h, 3, 1, f) == 1 && (!len || fwrite(p, len, 1, f) == 1) ? 0 : -1;
}

#endif
