/*
 * dump-img.c - write image files and remember their names, so that a dump
 * can list them in the inventory or take them all back when it fails.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-img.h"

int dump_imgs_init(struct dump_imgs *d, int dirfd)
{
	memset(d, 0, sizeof(*d));
	d->dirfd = dirfd;
	return lz_dump_id_new(&d->id);
}

int dump_imgs_add(struct dump_imgs *d, const char *name, uint64_t size, uint32_t crc)
{
	struct dump_img_file *f;

	if (strlen(name) >= DUMP_IMG_NAME_MAX)
		return -ENAMETOOLONG;
	if (d->nr == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 16;
		struct dump_img_file *nf = realloc(d->files, nc * sizeof(*nf));

		if (!nf)
			return -ENOMEM;
		d->files = nf;
		d->cap = nc;
	}
	f = &d->files[d->nr++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->size = size;
	f->crc = crc;
	return 0;
}

int dump_img_write(struct dump_imgs *d, const char *name, enum lz_img_kind kind,
		   const ProtobufCMessage *const *msgs, size_t n)
{
	struct img_writer w;
	int ret;

	ret = img_writer_open(&w, d->dirfd, name, kind, &d->id);
	for (size_t i = 0; !ret && i < n; i++)
		ret = img_writer_put(&w, msgs[i]);
	if (ret) {
		img_writer_abort(&w, d->dirfd);
		goto out_err;
	}
	/* Note the name first: if close fails half way, cleanup still removes it. */
	ret = dump_imgs_add(d, name, 0, 0);
	if (ret) {
		img_writer_abort(&w, d->dirfd);
		goto out_err;
	}
	ret = img_writer_close(&w, d->dirfd);
	if (ret)
		goto out_err;
	d->files[d->nr - 1].size = w.size;
	d->files[d->nr - 1].crc = w.crc;
	pr_debug("wrote %s (%zu entries)", name, n);
	return 0;

out_err:
	pr_err("writing image %s: %s", name, strerror(-ret));
	return ret;
}

int dump_img_write_one(struct dump_imgs *d, const char *name, enum lz_img_kind kind,
		       const ProtobufCMessage *msg)
{
	return dump_img_write(d, name, kind, &msg, 1);
}

void dump_imgs_remove(struct dump_imgs *d)
{
	for (size_t i = 0; i < d->nr; i++)
		if (unlinkat(d->dirfd, d->files[i].name, 0) < 0 && errno != ENOENT)
			pr_warn_perror("removing %s", d->files[i].name);
	d->nr = 0;
}

void dump_imgs_fini(struct dump_imgs *d)
{
	free(d->files);
	d->files = NULL;
	d->nr = d->cap = 0;
}
