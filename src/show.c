/*
 * show.c - `lazarus show FILE`: any image as JSON on stdout.
 *
 * Protobuf images are printed by walking the message descriptors, so a new
 * field shows up without touching this file. The pages file prints its header.
 */
#include <fcntl.h>
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

static int read_file(const char *path, uint8_t **data, size_t *size)
{
	struct stat st;
	size_t got = 0;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	*data = malloc((size_t)st.st_size + 1);
	if (!*data) {
		ret = -ENOMEM;
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, *data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	*size = got;
out:
	close(fd);
	return ret;
}

static int show_pages(const char *path, const uint8_t *data, size_t size)
{
	char hex[LZ_DUMP_ID_HEX];
	struct lz_pages_hdr h;
	const char *why = NULL;

	if (size < sizeof(h)) {
		pr_err("%s: truncated (shorter than the pages header)", path);
		return -EBADMSG;
	}
	memcpy(&h, data, sizeof(h));
	if (pages_hdr_check(&h, NULL, &why)) {
		pr_err("%s: %s", path, why);
		return -EBADMSG;
	}
	printf("{\"file\": ");
	json_string(stdout, path);
	printf(", \"kind\": \"pages\", \"version\": %u, \"dump_id\": \"%s\", \"pid\": %u, "
	       "\"page_size\": %u, "
	       "\"nr_pages\": %" PRIu64 ", \"file_size\": %zu, \"complete\": %s}\n",
	       h.version, lz_dump_id_hex(&h.dump_id, hex), h.pid, h.page_size, h.nr_pages, size,
	       size == LZ_PAGES_HDR_SIZE + h.nr_pages * LZ_PAGE_SIZE ? "true" : "false");
	return 0;
}

int cli_show(const char *path)
{
	const ProtobufCMessageDescriptor *desc;
	char hex[LZ_DUMP_ID_HEX];
	struct img_reader r;
	struct lz_img_hdr h;
	uint8_t *data = NULL;
	size_t size = 0;
	int ret;

	ret = read_file(path, &data, &size);
	if (ret) {
		pr_err("%s: %s", path, strerror(-ret));
		return ret;
	}
	if (size >= 4 && *(uint32_t *)data == LZ_PAGES_MAGIC) {
		ret = show_pages(path, data, size);
		free(data);
		return ret;
	}
	if (size < sizeof(h)) {
		pr_err("%s: truncated (shorter than the image header)", path);
		free(data);
		return -EBADMSG;
	}
	memcpy(&h, data, sizeof(h));
	desc = img_kind_desc((enum lz_img_kind)h.kind);
	if (h.magic == LZ_IMG_MAGIC && !desc) {
		pr_err("%s: unknown image kind %u", path, h.kind);
		free(data);
		return -EBADMSG;
	}
	ret = img_reader_from_buf(&r, path, data, size, (enum lz_img_kind)h.kind);
	if (ret) {
		pr_err("%s: %s", path, r.why);
		free(data);
		return ret;
	}
	printf("{\"file\": ");
	json_string(stdout, path);
	printf(", \"kind\": \"%s\", \"version\": %u, \"dump_id\": \"%s\", \"entries\": [",
	       img_kind_name((enum lz_img_kind)h.kind), h.version, lz_dump_id_hex(&h.dump_id, hex));
	for (uint32_t i = 0;; i++) {
		ProtobufCMessage *m;

		/* A pagemap image starts with its pagemap_head. */
		ret = img_reader_next(&r, h.kind == LZ_IMG_PAGEMAP && i == 0 ?
					      &pagemap_head__descriptor : desc, &m);
		if (ret == -ENODATA) {
			ret = 0;
			break;
		}
		if (ret) {
			printf("]}\n");
			fflush(stdout);
			pr_err("%s: entry %u: %s", path, i, r.why);
			goto out;
		}
		printf("%s\n  ", i ? "," : "");
		json_message(stdout, m, 1);
		protobuf_c_message_free_unpacked(m, NULL);
	}
	printf("\n]}\n");
out:
	img_reader_close(&r);
	return ret;
}
