/*
 * image.h - reading and writing Lazarus image files.
 *
 * Every protobuf image file is framed as (all little-endian):
 *
 *   struct lz_img_hdr   magic "LZRS", format version, kind, dump id
 *   { u32 len; u32 crc32c(payload); payload[len] }   one per message
 *   struct lz_img_tail  marker, entry count, crc32c of everything before it
 *
 * The pages file is raw page data behind a one-page struct lz_pages_hdr;
 * its integrity is carried by per-block crc32c values in the pagemap image.
 * Readers check everything (size, magic, version, kind, file and entry
 * checksums, entry count) before they hand out a single message, so a
 * truncated or corrupted image is refused before any process is touched.
 *
 * The dump id is 16 random bytes drawn once per dump and written into the
 * header of every file of that dump (protobuf images and the pages file):
 * the only thing that ties the files of one dump together. Checksums detect
 * damage; the id detects files of two dumps mixed in one directory. Neither
 * is a defence against someone who can write the images (see
 * Documentation/lazarus.8, TRUST).
 *
 * Functions return 0 or -errno. When they fail on file content they also set
 * the reader's `why` to a short phrase the caller prints after the file name.
 */
#ifndef LZ_IMAGE_H
#define LZ_IMAGE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <protobuf-c/protobuf-c.h>

#include "compiler.h"
#include "safe-file.h"

#define LZ_IMG_MAGIC 0x53525a4cU	    /* "LZRS" */
#define LZ_IMG_TAIL_MAGIC 0x444e5a4cU	    /* "LZND" */
#define LZ_IMG_TAIL_MARKER 0xffffffffU
#define LZ_PAGES_MAGIC 0x47505a4cU	    /* "LZPG" */
#define LZ_IMG_FORMAT_VERSION 3
#define LZ_IMG_MAX_ENTRY (64U << 20)	    /* sanity bound on one message */
#define LZ_PAGES_HDR_SIZE 4096U

enum lz_img_kind {
	LZ_IMG_INVENTORY = 1,
	LZ_IMG_PSTREE = 2,
	LZ_IMG_CORE = 3,
	LZ_IMG_TASK = 4,
	LZ_IMG_SIGACTS = 5,
	LZ_IMG_MM = 6,
	LZ_IMG_PAGEMAP = 7,
	LZ_IMG_PAGES = 8,
	LZ_IMG_FS = 9,
	LZ_IMG_FILES = 10,
	LZ_IMG_FDINFO = 11,
	LZ_IMG_FDDATA = 12, /* fddata-<file id>.img: content of a file description */
	LZ_IMG_SHMEM = 13,
	LZ_IMG_WS = 14,	/* ws-<pid>.img: recorded working set (lazy-pages --record-ws) */
	LZ_IMG_KIND_MAX,
};

/* Pagemap entry flags (pagemap_entry.flags). */
#define LZ_PE_PRESENT 0x1U	/* data in the pages file at data_page */
#define LZ_PE_ZERO 0x2U		/* all-zero pages: no data, restore as zero */
#define LZ_PE_LAZY 0x4U		/* may be served lazily (private anonymous) */

/* madvise bits kept per VMA (vma_entry.madv). */
#define LZ_MADV_HUGEPAGE 0x1U
#define LZ_MADV_NOHUGEPAGE 0x2U
#define LZ_MADV_DONTDUMP 0x4U
#define LZ_MADV_DONTFORK 0x8U
#define LZ_MADV_WIPEONFORK 0x10U
#define LZ_MADV_LOCKED 0x20U
#define LZ_MADV_MERGEABLE 0x40U
#define LZ_MADV_SEQUENTIAL 0x80U
#define LZ_MADV_RANDOM 0x100U

/* The identity of one dump: random, the same in every file it wrote. */
struct lz_dump_id {
	uint8_t b[16];
};
_Static_assert(sizeof(struct lz_dump_id) == 16, "dump id is 16 bytes");

#define LZ_DUMP_ID_HEX 33 /* 32 hex digits and a NUL */

struct lz_img_hdr {
	uint32_t magic;		   /* LZ_IMG_MAGIC */
	uint16_t version;	   /* LZ_IMG_FORMAT_VERSION */
	uint16_t kind;		   /* enum lz_img_kind */
	uint32_t flags;		   /* 0; reserved */
	uint32_t reserved;	   /* 0 */
	struct lz_dump_id dump_id; /* the dump this file belongs to */
};
_Static_assert(sizeof(struct lz_img_hdr) == 32, "image header is 32 bytes");
_Static_assert(offsetof(struct lz_img_hdr, kind) == 6, "kind at 6");
_Static_assert(offsetof(struct lz_img_hdr, dump_id) == 16, "dump_id at 16");

struct lz_img_entry_hdr {
	uint32_t len; /* payload bytes */
	uint32_t crc; /* crc32c of the payload */
};
_Static_assert(sizeof(struct lz_img_entry_hdr) == 8, "entry header is 8 bytes");

struct lz_img_tail {
	uint32_t marker;     /* LZ_IMG_TAIL_MARKER: cannot be an entry length */
	uint32_t nr_entries; /* messages in the file */
	uint32_t crc;	     /* crc32c of every byte before the tail */
	uint32_t magic;	     /* LZ_IMG_TAIL_MAGIC */
};
_Static_assert(sizeof(struct lz_img_tail) == 16, "image tail is 16 bytes");

/* First page of pages-<pid>.img; page data starts at LZ_PAGES_HDR_SIZE. */
struct lz_pages_hdr {
	uint32_t magic;	    /* LZ_PAGES_MAGIC */
	uint16_t version;   /* LZ_IMG_FORMAT_VERSION */
	uint16_t kind;	    /* LZ_IMG_PAGES */
	uint32_t page_size; /* 4096 */
	uint32_t pid;	    /* owner */
	uint64_t nr_pages;  /* data pages that follow */
	struct lz_dump_id dump_id; /* the dump this file belongs to */
	uint32_t hdr_crc;   /* crc32c of the 40 bytes before this field */
	uint32_t reserved;  /* 0 */
};
_Static_assert(sizeof(struct lz_pages_hdr) == 48, "pages header is 48 bytes");
_Static_assert(offsetof(struct lz_pages_hdr, nr_pages) == 16, "nr_pages at 16");
_Static_assert(offsetof(struct lz_pages_hdr, dump_id) == 24, "dump_id at 24");
_Static_assert(offsetof(struct lz_pages_hdr, hdr_crc) == 40, "hdr_crc at 40");

uint32_t lz_crc32c(uint32_t crc, const void *buf, size_t len);

/* A fresh random dump id (getrandom). */
int lz_dump_id_new(struct lz_dump_id *id);
bool lz_dump_id_eq(const struct lz_dump_id *a, const struct lz_dump_id *b);
/* 32 lower-case hex digits into buf[LZ_DUMP_ID_HEX]; returns buf. */
const char *lz_dump_id_hex(const struct lz_dump_id *id, char *buf);

const char *img_kind_name(enum lz_img_kind kind);
/* Message descriptor of the kind's messages (NULL for pages). */
const ProtobufCMessageDescriptor *img_kind_desc(enum lz_img_kind kind);
/* Guess the kind from a file name like "core-123.img". */
int img_kind_from_name(const char *name, enum lz_img_kind *kind);

/* --- writing --- */
struct img_writer {
	struct sf_tmp out; /* the O_EXCL temporary; out.name is the final name */
	char name[256];	 /* file name inside the directory, for messages */
	uint32_t crc;	 /* after close: crc32c of everything before the tail */
	uint32_t nr_entries;
	uint64_t size;	 /* after close: bytes in the file */
	uint8_t *buf;	 /* pending bytes */
	size_t len, cap;
};

/*
 * Start DIRFD/NAME for the dump ID: written under a fresh O_EXCL temporary
 * name (safe-file.h), which replaces any old NAME atomically at
 * img_writer_close. Nothing at NAME or at a temporary name is written
 * through, even a planted symlink.
 */
int img_writer_open(struct img_writer *w, int dirfd, const char *name, enum lz_img_kind kind,
		    const struct lz_dump_id *id);
int img_writer_put(struct img_writer *w, const ProtobufCMessage *msg);
/*
 * Write the tail, fsync and rename into place. The directory is not
 * fsynced: a caller that needs the rename durable fsyncs DIRFD, once for
 * all its files (the dump does, see src/dump-img.c). Frees w's buffers in
 * all cases; on success w->crc and w->size describe the file (for
 * inventory.img).
 */
int img_writer_close(struct img_writer *w, int dirfd);
void img_writer_abort(struct img_writer *w, int dirfd);

/* --- reading --- */
struct img_reader {
	char name[256];
	enum lz_img_kind kind;
	uint8_t *data;	  /* whole file */
	size_t size;
	size_t off;	  /* next entry */
	uint32_t nr_entries;
	uint32_t next;	  /* index of next entry */
	uint32_t crc;	  /* the tail's crc32c of everything before it */
	struct lz_dump_id dump_id; /* from the header */
	const char *why;  /* what is wrong, when a call failed on content */
	char why_buf[128]; /* backing store for a formatted why */
};

/*
 * Open DIRFD/NAME to read an image: never following a symlink (ELOOP),
 * never blocking (O_NONBLOCK, so a FIFO in place of an image is refused at
 * once instead of waiting for a writer), and only a regular file (fstat
 * before anything is read). Returns the fd (O_CLOEXEC, blocking again) with
 * *st filled, or -errno with *why a static phrase to print after the name.
 */
int img_open_file(int dirfd, const char *name, struct stat *st, const char **why);
/* NULL for a regular file, else a phrase naming what it is instead. */
const char *img_file_type_why(mode_t mode);
/* Largest file an image of KIND may be; UINT64_MAX for pages (see its header). */
uint64_t img_kind_max_size(enum lz_img_kind kind);
/*
 * Read and verify the file FD (opened by img_open_file, ST its fstat) as an
 * image of KIND named NAME. A file larger than img_kind_max_size(KIND) is
 * refused (-EFBIG) before anything is read. FD stays open.
 */
int img_reader_from_fd(struct img_reader *r, int fd, const struct stat *st, const char *name,
		       enum lz_img_kind kind);
/*
 * img_open_file + img_reader_from_fd. On failure r->why says what is wrong
 * (for -ENOENT and other I/O errors it is strerror's).
 */
int img_reader_open(struct img_reader *r, int dirfd, const char *name, enum lz_img_kind kind);
/* Verify an in-memory image (used by the fuzzer and by img_reader_open). */
int img_reader_from_buf(struct img_reader *r, const char *name, uint8_t *data, size_t size,
			enum lz_img_kind kind);
/* Unpack the next message; -ENODATA at the end. Free with protobuf_c_message_free_unpacked. */
int img_reader_next(struct img_reader *r, const ProtobufCMessageDescriptor *desc,
		    ProtobufCMessage **out);
/* Exactly one message expected in the file; r is closed on return, r->why kept. */
int img_read_one(struct img_reader *r, int dirfd, const char *name, enum lz_img_kind kind,
		 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out);
void img_reader_close(struct img_reader *r);
/*
 * The file read by R (open or closed) belongs to dump ID: 0, or -ESTALE with
 * r->why naming both ids.
 */
int img_reader_check_id(struct img_reader *r, const struct lz_dump_id *id);

/* --- pages file --- */
/*
 * Check a pages header; with ID, also that it belongs to that dump (-ESTALE
 * when not). *WHY is set to a static phrase on failure.
 */
int pages_hdr_check(const struct lz_pages_hdr *h, const struct lz_dump_id *id, const char **why);
void pages_hdr_init(struct lz_pages_hdr *h, uint32_t pid, uint64_t nr_pages,
		    const struct lz_dump_id *id);

#endif
