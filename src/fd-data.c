/*
 * fd-data.c - content of a file description kept in the images:
 * fddata-<file id>.img, a list of fd_data_chunk (files.proto), for any
 * kind that needs one (a deleted file's content; queued data of other
 * kinds may use it too). Chunks are at most FD_DATA_CHUNK bytes, in
 * increasing offset order; an all-zero chunk is not written (a hole). The
 * image goes through dump_imgs, so inventory.img lists it with its size
 * and checksum and restore checks both before anything is created.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-img.h"
#include "fd-kind.h"
#include "restore-images.h"

#define FD_DATA_CHUNK (1U << 20)

static bool all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static void free_chunks(FdDataChunk *c, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c[i].data.data);
	free(c);
}

int fd_data_dump(struct dump_imgs *imgs, uint32_t id, int fd, uint64_t size)
{
	size_t max = (size_t)(size / FD_DATA_CHUNK) + 1, n = 0;
	FdDataChunk *c = calloc(max, sizeof(*c));
	const ProtobufCMessage **msgs = calloc(max, sizeof(*msgs));
	char name[DUMP_IMG_NAME_MAX];
	int ret = -ENOMEM;

	if (size > FD_DATA_MAX)
		return -EFBIG;
	if (!c || !msgs)
		goto out_free;
	for (uint64_t off = 0; off < size;) {
		size_t want = (size_t)(size - off < FD_DATA_CHUNK ? size - off : FD_DATA_CHUNK);
		uint8_t *b = malloc(want);
		ssize_t got;

		if (!b)
			goto out_free;
		got = pread(fd, b, want, (off_t)off);
		if (got <= 0) {
			free(b);
			ret = got < 0 ? -errno : -EIO; /* shorter than its size while frozen */
			goto out_free;
		}
		if (all_zero(b, (size_t)got)) {
			free(b);
		} else {
			fd_data_chunk__init(&c[n]);
			c[n].off = off;
			c[n].data.data = b;
			c[n].data.len = (size_t)got;
			msgs[n] = &c[n].base;
			n++;
		}
		off += (uint64_t)got;
	}
	snprintf(name, sizeof(name), "fddata-%u.img", id);
	ret = dump_img_write(imgs, name, LZ_IMG_FDDATA, msgs, n);
out_free:
	free(msgs);
	free_chunks(c, n);
	return ret;
}

int rst_fd_data_restore(const struct rst_images *im, uint32_t id, int fd, uint64_t size,
			char *why, size_t len)
{
	ProtobufCMessage **v = NULL;
	char name[64];
	uint64_t end = 0;
	size_t n = 0;
	int ret;

	snprintf(name, sizeof(name), "fddata-%u.img", id);
	ret = rst_images_load_all(im, LZ_IMG_FDDATA, name, &v, &n);
	if (ret) {
		if (len)
			why[0] = '\0'; /* logged */
		return ret;
	}
	if (ftruncate(fd, (off_t)size)) {
		ret = -errno;
		snprintf(why, len, "file %u: ftruncate to %" PRIu64 ": %s", id, size,
			 strerror(errno));
	}
	for (size_t i = 0; !ret && i < n; i++) {
		const FdDataChunk *c = (const FdDataChunk *)v[i];

		if (c->off < end || c->data.len > size || c->off > size - c->data.len) {
			snprintf(why, len, "%s: chunk at %" PRIu64 " of %zu bytes out of order or "
				 "past the size %" PRIu64, name, c->off, c->data.len, size);
			ret = -EBADMSG;
			break;
		}
		end = c->off + c->data.len;
		for (size_t done = 0; done < c->data.len;) {
			ssize_t w = pwrite(fd, c->data.data + done, c->data.len - done,
					   (off_t)(c->off + done));

			if (w <= 0) {
				ret = w < 0 ? -errno : -EIO;
				snprintf(why, len, "file %u: writing its content: %s", id,
					 strerror(-ret));
				break;
			}
			done += (size_t)w;
		}
	}
	rst_images_free_all(v, n);
	return ret;
}
