/*
 * image.c - framing, verification and protobuf (un)packing of image files.
 * The on-disk layout is described in image.h and Documentation/image-format.md.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdio.h"
#include "image.h"
#include "core.pb-c.h"
#include "files.pb-c.h"
#include "fs.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "shmem.pb-c.h"
#include "sigact.pb-c.h"
#include "task.pb-c.h"
#include "ws.pb-c.h"

static const struct {
	const char *prefix; /* file name up to "-<id>.img" or ".img" */
	const ProtobufCMessageDescriptor *desc;
} kinds[LZ_IMG_KIND_MAX] = {
	[LZ_IMG_INVENTORY] = { "inventory", &inventory_entry__descriptor },
	[LZ_IMG_PSTREE] = { "pstree", &pstree_entry__descriptor },
	[LZ_IMG_CORE] = { "core", &core_entry__descriptor },
	[LZ_IMG_TASK] = { "task", &task_entry__descriptor },
	[LZ_IMG_SIGACTS] = { "sigacts", &sigaction_entry__descriptor },
	[LZ_IMG_MM] = { "mm", &mm_entry__descriptor },
	[LZ_IMG_PAGEMAP] = { "pagemap", &pagemap_entry__descriptor },
	[LZ_IMG_PAGES] = { "pages", NULL },
	[LZ_IMG_FS] = { "fs", &fs_entry__descriptor },
	[LZ_IMG_FILES] = { "files", &file_entry__descriptor },
	[LZ_IMG_FDINFO] = { "fdinfo", &fdinfo_entry__descriptor },
	[LZ_IMG_FDDATA] = { "fddata", &fd_data_chunk__descriptor },
	[LZ_IMG_SHMEM] = { "shmem", &shmem_entry__descriptor },
	[LZ_IMG_WS] = { "ws", &ws_entry__descriptor },
};

int lz_dump_id_new(struct lz_dump_id *id)
{
	size_t got = 0;

	while (got < sizeof(id->b)) {
		ssize_t n = getrandom(id->b + got, sizeof(id->b) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return 0;
}

bool lz_dump_id_eq(const struct lz_dump_id *a, const struct lz_dump_id *b)
{
	return !memcmp(a->b, b->b, sizeof(a->b));
}

const char *lz_dump_id_hex(const struct lz_dump_id *id, char *buf)
{
	for (size_t i = 0; i < sizeof(id->b); i++)
		snprintf(buf + 2 * i, 3, "%02x", id->b[i]);
	return buf;
}

const char *img_kind_name(enum lz_img_kind kind)
{
	if (kind <= 0 || kind >= LZ_IMG_KIND_MAX)
		return "unknown";
	return kinds[kind].prefix;
}

const ProtobufCMessageDescriptor *img_kind_desc(enum lz_img_kind kind)
{
	if (kind <= 0 || kind >= LZ_IMG_KIND_MAX)
		return NULL;
	return kinds[kind].desc;
}

int img_kind_from_name(const char *name, enum lz_img_kind *kind)
{
	const char *base = strrchr(name, '/');

	base = base ? base + 1 : name;
	for (int k = 1; k < LZ_IMG_KIND_MAX; k++) {
		size_t n = strlen(kinds[k].prefix);

		if (strncmp(base, kinds[k].prefix, n) == 0 && (base[n] == '-' || base[n] == '.')) {
			*kind = (enum lz_img_kind)k;
			return 0;
		}
	}
	return -EINVAL;
}

/* ------------------------------------------------------------------ writer */

static int writer_reserve(struct img_writer *w, size_t more)
{
	if (w->len + more <= w->cap)
		return 0;
	size_t cap = w->cap ? w->cap : 4096;
	while (cap < w->len + more)
		cap *= 2;
	uint8_t *nb = realloc(w->buf, cap);
	if (!nb)
		return -ENOMEM;
	w->buf = nb;
	w->cap = cap;
	return 0;
}

static int writer_append(struct img_writer *w, const void *p, size_t n)
{
	int ret = writer_reserve(w, n);

	if (ret)
		return ret;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

int img_writer_open(struct img_writer *w, int dirfd, const char *name, enum lz_img_kind kind,
		    const struct lz_dump_id *id)
{
	struct lz_img_hdr h = {
		.magic = LZ_IMG_MAGIC,
		.version = LZ_IMG_FORMAT_VERSION,
		.kind = (uint16_t)kind,
		.dump_id = *id,
	};
	int ret;

	memset(w, 0, sizeof(*w));
	w->out.fd = -1;
	if (snprintf(w->name, sizeof(w->name), "%s", name) >= (int)sizeof(w->name))
		return -ENAMETOOLONG;
	ret = sf_create_tmp(dirfd, name, &w->out);
	if (ret)
		return ret;
	w->out.no_dir_sync = true; /* the caller's, once for all its files */
	return writer_append(w, &h, sizeof(h));
}

int img_writer_put(struct img_writer *w, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	struct lz_img_entry_hdr eh;
	int ret;

	if (n > LZ_IMG_MAX_ENTRY)
		return -E2BIG;
	ret = writer_reserve(w, sizeof(eh) + n);
	if (ret)
		return ret;
	protobuf_c_message_pack(msg, w->buf + w->len + sizeof(eh));
	eh.len = (uint32_t)n;
	eh.crc = lz_crc32c(0, w->buf + w->len + sizeof(eh), n);
	memcpy(w->buf + w->len, &eh, sizeof(eh));
	w->len += sizeof(eh) + n;
	w->nr_entries++;
	return 0;
}

int img_writer_close(struct img_writer *w, int dirfd)
{
	struct lz_img_tail t = { .marker = LZ_IMG_TAIL_MARKER, .magic = LZ_IMG_TAIL_MAGIC };
	int ret;

	t.nr_entries = w->nr_entries;
	t.crc = lz_crc32c(0, w->buf, w->len);
	w->crc = t.crc;
	ret = writer_append(w, &t, sizeof(t));
	if (ret)
		goto out_abort;
	ret = fdio_write_all(w->out.fd, w->buf, w->len);
	if (ret)
		goto out_abort;
	ret = sf_commit(dirfd, &w->out); /* fsync, rename over NAME */
	if (ret)
		goto out_abort;
	w->size = w->len;
	free(w->buf);
	w->buf = NULL;
	return 0;

out_abort:
	img_writer_abort(w, dirfd);
	return ret;
}

void img_writer_abort(struct img_writer *w, int dirfd)
{
	sf_abort(dirfd, &w->out);
	free(w->buf);
	w->buf = NULL;
}

/* ------------------------------------------------------------------ reader */

int img_reader_from_buf(struct img_reader *r, const char *name, uint8_t *data, size_t size,
			enum lz_img_kind kind)
{
	struct lz_img_hdr h;
	struct lz_img_tail t;
	uint32_t count = 0;
	size_t off, end;

	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	r->kind = kind;
	r->data = data;
	r->size = size;

	if (size == 0) {
		r->why = "empty file";
		return -EBADMSG;
	}
	if (size < sizeof(h)) {
		r->why = "truncated (shorter than the image header)";
		return -EBADMSG;
	}
	memcpy(&h, data, sizeof(h));
	if (h.magic != LZ_IMG_MAGIC) {
		r->why = "bad magic (not a lazarus image)";
		return -EBADMSG;
	}
	if (h.version != LZ_IMG_FORMAT_VERSION) {
		snprintf(r->why_buf, sizeof(r->why_buf),
			 "unsupported format version %u (this lazarus reads %u)", h.version,
			 LZ_IMG_FORMAT_VERSION);
		r->why = r->why_buf;
		return -EPROTO;
	}
	if (h.kind != kind) {
		r->why = "wrong image kind for this file name";
		return -EBADMSG;
	}
	if (size < sizeof(h) + sizeof(t)) {
		r->why = "truncated (no image tail)";
		return -EBADMSG;
	}
	memcpy(&t, data + size - sizeof(t), sizeof(t));
	if (t.magic != LZ_IMG_TAIL_MAGIC || t.marker != LZ_IMG_TAIL_MARKER) {
		r->why = "truncated (image tail missing)";
		return -EBADMSG;
	}
	end = size - sizeof(t);
	if (lz_crc32c(0, data, end) != t.crc) {
		r->why = "checksum mismatch (corrupted)";
		return -EBADMSG;
	}
	for (off = sizeof(h); off < end; count++) {
		struct lz_img_entry_hdr eh;

		if (end - off < sizeof(eh)) {
			r->why = "entry header runs past the end";
			return -EBADMSG;
		}
		memcpy(&eh, data + off, sizeof(eh));
		off += sizeof(eh);
		if (eh.len > LZ_IMG_MAX_ENTRY || eh.len > end - off) {
			r->why = "entry runs past the end";
			return -EBADMSG;
		}
		if (lz_crc32c(0, data + off, eh.len) != eh.crc) {
			r->why = "entry checksum mismatch (corrupted)";
			return -EBADMSG;
		}
		off += eh.len;
	}
	if (count != t.nr_entries) {
		r->why = "entry count does not match the tail";
		return -EBADMSG;
	}
	r->nr_entries = count;
	r->crc = t.crc;
	r->dump_id = h.dump_id;
	r->off = sizeof(h);
	return 0;
}

/*
 * Sanity bounds on a whole image file of each kind, far above anything a
 * real dump writes (one process with the kernel's 65530 VMAs, a million fds,
 * a pagemap head of 64 MiB of block checksums), so that a crafted or
 * damaged size is refused by name instead of being read into memory.
 */
static const uint64_t kind_max[LZ_IMG_KIND_MAX] = {
	[LZ_IMG_INVENTORY] = 64ULL << 20,
	[LZ_IMG_PSTREE] = 16ULL << 20,
	[LZ_IMG_CORE] = 16ULL << 20,
	[LZ_IMG_TASK] = 16ULL << 20,
	[LZ_IMG_SIGACTS] = 1ULL << 20,
	[LZ_IMG_MM] = 256ULL << 20,
	[LZ_IMG_PAGEMAP] = 512ULL << 20,
	[LZ_IMG_FS] = 1ULL << 20,
	[LZ_IMG_FILES] = 512ULL << 20,
	[LZ_IMG_FDINFO] = 256ULL << 20,
	[LZ_IMG_FDDATA] = 1ULL << 30, /* FD_DATA_MAX of content and the framing */
	[LZ_IMG_SHMEM] = 512ULL << 20,
	[LZ_IMG_WS] = 64ULL << 20,
};

uint64_t img_kind_max_size(enum lz_img_kind kind)
{
	if (kind <= 0 || kind >= LZ_IMG_KIND_MAX || kind == LZ_IMG_PAGES)
		return UINT64_MAX;
	return kind_max[kind];
}

const char *img_file_type_why(mode_t mode)
{
	if (S_ISREG(mode))
		return NULL;
	if (S_ISFIFO(mode))
		return "is a FIFO, not a regular file";
	if (S_ISCHR(mode))
		return "is a character device, not a regular file";
	if (S_ISBLK(mode))
		return "is a block device, not a regular file";
	if (S_ISSOCK(mode))
		return "is a socket, not a regular file";
	if (S_ISLNK(mode))
		return "is a symbolic link (refused: images are never followed)";
	if (S_ISDIR(mode))
		return "is a directory, not a regular file";
	return "is not a regular file";
}

int img_open_file(int dirfd, const char *name, struct stat *st, const char **why)
{
	int fd, flags, ret;

	/*
	 * O_NONBLOCK: opening a FIFO for reading must not wait for a writer;
	 * O_NOFOLLOW: a symlink in place of an image is refused (ELOOP), not
	 * followed to whatever it points at. Nothing is read before fstat said
	 * this is a regular file.
	 */
	fd = openat(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		*why = errno == ELOOP ? img_file_type_why(S_IFLNK) : strerror(errno);
		return ret;
	}
	if (fstat(fd, st) < 0) {
		ret = -errno;
		*why = strerror(errno);
		goto out_close;
	}
	*why = img_file_type_why(st->st_mode);
	if (*why) {
		ret = -EINVAL;
		goto out_close;
	}
	/* A regular file ignores O_NONBLOCK; clear it for whoever reads it next. */
	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		ret = -errno;
		*why = strerror(errno);
		goto out_close;
	}
	return fd;

out_close:
	close(fd);
	return ret;
}

int img_reader_from_fd(struct img_reader *r, int fd, const struct stat *st, const char *name,
		       enum lz_img_kind kind)
{
	uint64_t max = img_kind_max_size(kind);
	size_t size, got = 0;
	uint8_t *data;
	int ret;

	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", name);
	if (st->st_size < 0 || (uint64_t)st->st_size > max) {
		snprintf(r->why_buf, sizeof(r->why_buf),
			 "%lld bytes, more than a %s image may hold (%" PRIu64 " MiB)",
			 (long long)st->st_size, img_kind_name(kind), max >> 20);
		r->why = r->why_buf;
		return -EFBIG;
	}
	size = (size_t)st->st_size;
	data = malloc(size ? size : 1);
	if (!data) {
		r->why = strerror(ENOMEM);
		return -ENOMEM;
	}
	while (got < size) {
		ssize_t n = pread(fd, data + got, size - got, (off_t)got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			r->why = strerror(errno);
			free(data);
			return ret;
		}
		if (n == 0)
			break; /* shrank since fstat: the checks below say truncated */
		got += (size_t)n;
	}
	ret = img_reader_from_buf(r, name, data, got, kind);
	if (ret) {
		const char *why = r->why;

		free(data);
		r->data = NULL;
		r->why = why;
	}
	return ret;
}

int img_reader_open(struct img_reader *r, int dirfd, const char *name, enum lz_img_kind kind)
{
	const char *why = NULL;
	struct stat st;
	int fd, ret;

	fd = img_open_file(dirfd, name, &st, &why);
	if (fd < 0) {
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%s", name);
		r->why = why;
		return fd;
	}
	ret = img_reader_from_fd(r, fd, &st, name, kind);
	close(fd);
	return ret;
}

int img_reader_next(struct img_reader *r, const ProtobufCMessageDescriptor *desc,
		    ProtobufCMessage **out)
{
	struct lz_img_entry_hdr eh;
	ProtobufCMessage *m;

	if (r->next >= r->nr_entries)
		return -ENODATA;
	/* Bounds were verified at open. */
	memcpy(&eh, r->data + r->off, sizeof(eh));
	m = protobuf_c_message_unpack(desc, NULL, eh.len, r->data + r->off + sizeof(eh));
	if (!m) {
		r->why = "entry does not decode (malformed message)";
		return -EBADMSG;
	}
	r->off += sizeof(eh) + eh.len;
	r->next++;
	*out = m;
	return 0;
}

void img_reader_close(struct img_reader *r)
{
	free(r->data);
	r->data = NULL;
}

int img_reader_check_id(struct img_reader *r, const struct lz_dump_id *id)
{
	char a[LZ_DUMP_ID_HEX], b[LZ_DUMP_ID_HEX];

	if (lz_dump_id_eq(&r->dump_id, id))
		return 0;
	snprintf(r->why_buf, sizeof(r->why_buf), "belongs to another dump (dump id %s, not %s)",
		 lz_dump_id_hex(&r->dump_id, a), lz_dump_id_hex(id, b));
	r->why = r->why_buf;
	return -ESTALE;
}

int img_read_one(struct img_reader *r, int dirfd, const char *name, enum lz_img_kind kind,
		 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
	int ret;

	ret = img_reader_open(r, dirfd, name, kind);
	if (ret)
		return ret;
	if (r->nr_entries != 1) {
		r->why = "expected exactly one entry";
		ret = -EBADMSG;
		goto out_close;
	}
	ret = img_reader_next(r, desc, out);
out_close:
	img_reader_close(r);
	return ret;
}

/* ------------------------------------------------------------------ pages */

void pages_hdr_init(struct lz_pages_hdr *h, uint32_t pid, uint64_t nr_pages,
		    const struct lz_dump_id *id)
{
	memset(h, 0, sizeof(*h));
	h->magic = LZ_PAGES_MAGIC;
	h->version = LZ_IMG_FORMAT_VERSION;
	h->kind = LZ_IMG_PAGES;
	h->page_size = (uint32_t)LZ_PAGE_SIZE;
	h->pid = pid;
	h->nr_pages = nr_pages;
	h->dump_id = *id;
	h->hdr_crc = lz_crc32c(0, h, offsetof(struct lz_pages_hdr, hdr_crc));
}

int pages_hdr_check(const struct lz_pages_hdr *h, const struct lz_dump_id *id, const char **why)
{
	if (h->magic != LZ_PAGES_MAGIC) {
		*why = "bad magic (not a lazarus pages image)";
		return -EBADMSG;
	}
	if (h->version != LZ_IMG_FORMAT_VERSION) {
		*why = "unsupported format version (this lazarus reads version 2)";
		return -EPROTO;
	}
	if (h->kind != LZ_IMG_PAGES || h->page_size != LZ_PAGE_SIZE) {
		*why = "not a pages image of this page size";
		return -EBADMSG;
	}
	if (lz_crc32c(0, h, offsetof(struct lz_pages_hdr, hdr_crc)) != h->hdr_crc) {
		*why = "header checksum mismatch (corrupted)";
		return -EBADMSG;
	}
	if (id && !lz_dump_id_eq(&h->dump_id, id)) {
		*why = "belongs to another dump (its dump id is not inventory.img's)";
		return -ESTALE;
	}
	return 0;
}
