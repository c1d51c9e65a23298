/*
 * dump-img.h - the set of image files one dump writes.
 *
 * Every image goes through here, so the dump knows the names to list in
 * inventory.img and to remove again when it fails. Functions return 0 or
 * -errno and log a failure once, naming the file.
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

struct dump_imgs {
	int dirfd;		  /* the images directory */
	struct lz_dump_id id;	  /* this dump's identity, in every header */
	struct dump_img_file *files; /* files written so far, in order */
	size_t nr, cap;
};

/* A fresh dump id is drawn here. */
int dump_imgs_init(struct dump_imgs *d, int dirfd);
/* Note NAME as written (for files not written through img_writer). */
int dump_imgs_add(struct dump_imgs *d, const char *name, uint64_t size, uint32_t crc);
/* Write NAME with the messages MSGS[0..N). */
int dump_img_write(struct dump_imgs *d, const char *name, enum lz_img_kind kind,
		   const ProtobufCMessage *const *msgs, size_t n);
/* Write NAME with the one message MSG. */
int dump_img_write_one(struct dump_imgs *d, const char *name, enum lz_img_kind kind,
		       const ProtobufCMessage *msg);
/* Remove every file noted so far (a failed dump). */
void dump_imgs_remove(struct dump_imgs *d);
void dump_imgs_fini(struct dump_imgs *d);

#endif
