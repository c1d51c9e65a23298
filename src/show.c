/*
 * show.c - `lazarus show FILE`: any image as JSON on stdout.
 *
 * Protobuf images are printed by walking the message descriptors, so a new
 * field shows up without touching this file. The pages file prints its header.
 * Files are opened as restore opens them (img_open_file), sizes bounded.
 */
#include <fcntl.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "image.h"
#include "log.h"
#include "pagemap.pb-c.h"

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void json_message(FILE *f, const ProtobufCMessage *m, int depth);

static void json_value(FILE *f, const ProtobufCFieldDescriptor *fd, const void *p, int depth)
{
	switch (fd->type) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
		fprintf(f, "%" PRId32, *(const int32_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
		fprintf(f, "%" PRIu32, *(const uint32_t *)p);
		break;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
		fprintf(f, "%" PRId64, *(const int64_t *)p);
		break;
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
		fprintf(f, "%" PRIu64, *(const uint64_t *)p);
		break;
	case PROTOBUF_C_TYPE_FLOAT:
		fprintf(f, "%.9g", (double)*(const float *)p);
		break;
	case PROTOBUF_C_TYPE_DOUBLE:
		fprintf(f, "%.17g", *(const double *)p);
		break;
	case PROTOBUF_C_TYPE_BOOL:
		fputs(*(const protobuf_c_boolean *)p ? "true" : "false", f);
		break;
	case PROTOBUF_C_TYPE_ENUM: {
		const ProtobufCEnumValue *ev =
			protobuf_c_enum_descriptor_get_value(fd->descriptor, *(const int *)p);
		if (ev)
			json_string(f, ev->name);
		else
			fprintf(f, "%d", *(const int *)p);
		break;
	}
	case PROTOBUF_C_TYPE_STRING:
		json_string(f, *(const char *const *)p ? *(const char *const *)p : "");
		break;
	case PROTOBUF_C_TYPE_BYTES: {
		const ProtobufCBinaryData *b = p;

		fputc('"', f);
		for (size_t i = 0; i < b->len; i++)
			fprintf(f, "%02x", b->data[i]);
		fputc('"', f);
		break;
	}
	case PROTOBUF_C_TYPE_MESSAGE:
		json_message(f, *(const ProtobufCMessage *const *)p, depth);
		break;
	}
}

static size_t type_size(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_INT32:
	case PROTOBUF_C_TYPE_SINT32:
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_UINT32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
	case PROTOBUF_C_TYPE_ENUM:
		return 4;
	case PROTOBUF_C_TYPE_INT64:
	case PROTOBUF_C_TYPE_SINT64:
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_UINT64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return 8;
	case PROTOBUF_C_TYPE_BOOL:
		return sizeof(protobuf_c_boolean);
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_MESSAGE:
		return sizeof(void *);
	case PROTOBUF_C_TYPE_BYTES:
		return sizeof(ProtobufCBinaryData);
	}
	return 0;
}

static void json_message(FILE *f, const ProtobufCMessage *m, int depth)
{
	const ProtobufCMessageDescriptor *d = m->descriptor;
	const char *base = (const char *)m;
	bool first = true;

	fputc('{', f);
	for (unsigned i = 0; i < d->n_fields; i++) {
		const ProtobufCFieldDescriptor *fd = &d->fields[i];
		const void *p = base + fd->offset;

		if (fd->label == PROTOBUF_C_LABEL_OPTIONAL) {
			if (fd->type == PROTOBUF_C_TYPE_STRING || fd->type == PROTOBUF_C_TYPE_MESSAGE) {
				if (!*(const void *const *)p)
					continue;
			} else if (fd->quantifier_offset &&
				   !*(const protobuf_c_boolean *)(base + fd->quantifier_offset)) {
				continue;
			}
		}
		fprintf(f, "%s", first ? "" : ", ");
		first = false;
		json_string(f, fd->name);
		fputs(": ", f);
		if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
			size_t n = *(const size_t *)(base + fd->quantifier_offset);
			const char *arr = *(const char *const *)p;

			fputc('[', f);
			for (size_t k = 0; k < n; k++) {
				if (k)
					fputs(", ", f);
				json_value(f, fd, arr + k * type_size(fd->type), depth + 1);
			}
			fputc(']', f);
		} else {
			json_value(f, fd, p, depth + 1);
		}
	}
	fputc('}', f);
}

/*
 * The pages file: only its header is read (its data can be gigabytes);
 * SIZE is the file's, from fstat. The expected size is computed with
 * overflow checks: nr_pages comes from the file.
 */
static int show_pages(const char *path, int fd, uint64_t size)
{
	char hex[LZ_DUMP_ID_HEX];
	struct lz_pages_hdr h;
	const char *why = NULL;
	uint64_t want = 0;
	bool complete;
	ssize_t n;

	do
		n = pread(fd, &h, sizeof(h), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		pr_err("%s: %s", path, strerror(errno));
		return -errno;
	}
	if ((size_t)n < sizeof(h)) {
		pr_err("%s: truncated (shorter than the pages header)", path);
		return -EBADMSG;
	}
	if (pages_hdr_check(&h, NULL, &why)) {
		pr_err("%s: %s", path, why);
		return -EBADMSG;
	}
	complete = !__builtin_mul_overflow(h.nr_pages, (uint64_t)LZ_PAGE_SIZE, &want) &&
		   !__builtin_add_overflow(want, (uint64_t)LZ_PAGES_HDR_SIZE, &want) &&
		   size == want;
	printf("{\"file\": ");
	json_string(stdout, path);
	printf(", \"kind\": \"pages\", \"version\": %u, \"dump_id\": \"%s\", \"pid\": %u, "
	       "\"page_size\": %u, "
	       "\"nr_pages\": %" PRIu64 ", \"file_size\": %" PRIu64 ", \"complete\": %s}\n",
	       h.version, lz_dump_id_hex(&h.dump_id, hex), h.pid, h.page_size, h.nr_pages, size,
	       complete ? "true" : "false");
	return 0;
}

static int show_entries(const char *path, struct img_reader *r, enum lz_img_kind kind)
{
	const ProtobufCMessageDescriptor *desc = img_kind_desc(kind);
	char hex[LZ_DUMP_ID_HEX];
	int ret;

	printf("{\"file\": ");
	json_string(stdout, path);
	printf(", \"kind\": \"%s\", \"version\": %u, \"dump_id\": \"%s\", \"entries\": [",
	       img_kind_name(kind), LZ_IMG_FORMAT_VERSION, lz_dump_id_hex(&r->dump_id, hex));
	for (uint32_t i = 0;; i++) {
		ProtobufCMessage *m;

		/* A pagemap image starts with its pagemap_head. */
		ret = img_reader_next(r, kind == LZ_IMG_PAGEMAP && i == 0 ?
					      &pagemap_head__descriptor : desc, &m);
		if (ret == -ENODATA)
			break;
		if (ret) {
			printf("]}\n");
			fflush(stdout);
			pr_err("%s: entry %u: %s", path, i, r->why);
			return ret;
		}
		printf("%s\n  ", i ? "," : "");
		json_message(stdout, m, 1);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	printf("\n]}\n");
	return 0;
}

/*
 * show reads one file the user names and runs nothing, so it applies no
 * ownership rule (lazarus(8), TRUST); but like restore it never follows a
 * symlink, never blocks on a FIFO or device (img_open_file), and never
 * reads more than an image of its kind may hold.
 */
int cli_show(const char *path)
{
	struct img_reader r;
	struct lz_img_hdr h;
	const char *why = NULL;
	struct stat st;
	ssize_t n;
	int fd, ret;

	fd = img_open_file(AT_FDCWD, path, &st, &why);
	if (fd < 0) {
		pr_err("%s: %s", path, why);
		return fd;
	}
	do
		n = pread(fd, &h, sizeof(h), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		ret = -errno;
		pr_err("%s: %s", path, strerror(errno));
		goto out_close;
	}
	if (n >= 4 && h.magic == LZ_PAGES_MAGIC) {
		ret = show_pages(path, fd, (uint64_t)st.st_size);
		goto out_close;
	}
	ret = -EBADMSG;
	if ((size_t)n < sizeof(h)) {
		pr_err("%s: truncated (shorter than the image header)", path);
		goto out_close;
	}
	if (h.magic != LZ_IMG_MAGIC) {
		pr_err("%s: bad magic (not a lazarus image)", path);
		goto out_close;
	}
	if (!img_kind_desc((enum lz_img_kind)h.kind)) {
		pr_err("%s: unknown image kind %u", path, h.kind);
		goto out_close;
	}
	ret = img_reader_from_fd(&r, fd, &st, path, (enum lz_img_kind)h.kind);
	if (ret) {
		pr_err("%s: %s", path, r.why);
		goto out_close;
	}
	ret = show_entries(path, &r, (enum lz_img_kind)h.kind);
	img_reader_close(&r);
out_close:
	close(fd);
	return ret;
}
