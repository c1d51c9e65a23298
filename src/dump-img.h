/*
 * dump-img.h - the set of image files one dump writes, and its commit.
 *
 * Every image goes through here, so the dump knows the names to list in
 * inventory.img and to take back when it fails. A dump writes into a fresh
 * staging directory DIR/.lazarus-new.<dump id> (mode 0700, created by us),
 * never into DIR itself, so the previous dump in DIR stays whole while the
 * new one is written; dump_imgs_commit() then moves the new files into DIR,
 * inventory.img last (see Documentation/image-format.md, "How a dump is
 * committed"). Functions return 0 or -errno and log a failure once, naming
 * the file.
 */
#ifndef LZ_DUMP_IMG_H
#define LZ_DUMP_IMG_H

#include <stddef.h>

#include "image.h"

#define DUMP_IMG_NAME_MAX 64

/* One file written by this dump, as inventory.img lists it. */
struct dump_img_file {
	char name[DUMP_IMG_NAME_MAX];
	uint64_t size; /* bytes */
	uint32_t crc;  /* tail crc32c (framed) or hdr_crc (pages) */
};

#define DUMP_STAGE_PREFIX ".lazarus-new."

struct dump_imgs {
	int dirfd;		  /* the images directory, checked (safe-file.h) */
	int stagefd;		  /* the staging directory; -1 when there is none */
	char stage[DUMP_IMG_NAME_MAX]; /* its name in DIR: DUMP_STAGE_PREFIX + id hex */
	struct lz_dump_id id;	  /* this dump's identity, in every header */
	struct dump_img_file *files; /* files written so far, in order */
	size_t nr, cap;
};

/*
 * Draw a fresh dump id, remove what an earlier crashed dump left in DIRFD
 * (staging directories and stats temporaries of ours) and create this
 * dump's staging directory. Logs its failures.
 */
int dump_imgs_init(struct dump_imgs *d, int dirfd);
/* Note NAME as written (for files not written through img_writer). */
int dump_imgs_add(struct dump_imgs *d, const char *name, uint64_t size, uint32_t crc);
/* Write NAME (into the staging directory) with the messages MSGS[0..N). */
int dump_img_write(struct dump_imgs *d, const char *name, enum lz_img_kind kind,
		   const ProtobufCMessage *const *msgs, size_t n);
/* Write NAME with the one message MSG. */
int dump_img_write_one(struct dump_imgs *d, const char *name, enum lz_img_kind kind,
		       const ProtobufCMessage *msg);
/*
 * Commit: with every file written and fsynced in the staging directory,
 * inventory.img noted last, move them into DIR (inventory.img last), move
 * out the files of the previous dump that the new one does not list, fsync
 * DIR and remove the staging directory with the old files in it. A failure
 * before inventory.img is in place puts every old file back: DIR then
 * holds the previous dump exactly as before.
 */
int dump_imgs_commit(struct dump_imgs *d);
/* A failed dump: remove the staging directory and all that is in it. */
void dump_imgs_remove(struct dump_imgs *d);
void dump_imgs_fini(struct dump_imgs *d);

#endif
