/*
 * mkseed.c - turn a real dump into seed inputs for every fuzzer
 * (tools/fuzz-seed.sh runs it after dumping a small workload):
 *
 *   mkseed DUMPDIR FUZZDIR [PREFIX]
 *
 * writes FUZZDIR/corpus-<target>/seed-[PREFIX]* in each target's input format
 * (records.h): the image files as they are for fuzz_image, the loaded dump
 * as records for fuzz_verify, the pagemap, the first data pages and a
 * request per lazy run for fuzz_lazy_source, and the conversation a
 * restore has with the daemon for fuzz_lazy_conn (each of its messages
 * alone for fuzz_lazy_msg).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "lazy-proto.h"
#include "log.h"
#include "records.h"
#include "restore-images.h"
#include "restore-trust.h"

#define SEED_DATA_PAGES 32 /* two checksum blocks of a default dump */

static const char *fuzz_dir;
static const char *seed_prefix = ""; /* a second dump's seeds beside the first's */

static FILE *seed_open(const char *target, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/corpus-%s/seed-%s%s", fuzz_dir, target, seed_prefix, name);
	f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "mkseed: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return f;
}

static void seed_close(FILE *f)
{
	if (fclose(f)) {
		perror("mkseed: write");
		exit(1);
	}
}

static void put_msg(FILE *f, uint8_t tag, const ProtobufCMessage *m)
{
	size_t len = protobuf_c_message_get_packed_size(m);
	uint8_t *buf = malloc(len + 1);

	if (!buf)
		exit(1);
	protobuf_c_message_pack(m, buf);
	if (fz_put(f, tag, buf, len)) {
		fprintf(stderr, "mkseed: a %s message of %zu bytes does not fit a record\n",
			m->descriptor->name, len);
		exit(1);
	}
	free(buf);
}

/* Up to max bytes of DIR/NAME from offset off. */
static size_t read_part(int dirfd, const char *name, off_t off, uint8_t *buf, size_t max)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return 0;
	n = pread(fd, buf, max, off);
	close(fd);
	return n > 0 ? (size_t)n : 0;
}

/* fuzz_image: a kind byte, then the file. */
static void seed_image(int dirfd)
{
	static uint8_t buf[65535];
	DIR *dir = fdopendir(dup(dirfd));
	struct dirent *de;

	while (dir && (de = readdir(dir))) {
		enum lz_img_kind kind;
		size_t n;
		FILE *f;

		if (img_kind_from_name(de->d_name, &kind))
			continue;
		n = read_part(dirfd, de->d_name, 0, buf, sizeof(buf));
		f = seed_open("fuzz_image", de->d_name);
		fputc(kind - 1, f);
		fwrite(buf, 1, n, f);
		seed_close(f);
	}
	if (dir)
		closedir(dir);
}

static void seed_verify(const struct rst_images *im, int dirfd, bool lazy)
{
	static uint8_t buf[FZ_REC_MAX];
	const struct rst_task *t = &im->tasks[0];
	struct fz_v_params prm = { .pid = t->pid, .lazy = lazy, .pad_pages = 1 };
	char name[64];
	size_t used = 0, n;
	FILE *f;

	memcpy(prm.id, im->id.b, sizeof(prm.id));
	snprintf(name, sizeof(name), "verify-%s", lazy ? "lazy" : "eager");
	f = seed_open("fuzz_verify", name);
	fz_put(f, FZ_V_PARAMS, &prm, sizeof(prm));
	put_msg(f, FZ_V_CORE, &t->cores[0]->base);
	put_msg(f, FZ_V_INV, &im->inv->base);
	put_msg(f, FZ_V_MM, &t->mm->base);
	put_msg(f, FZ_V_TASK, &t->task->base);
	put_msg(f, FZ_V_PM_HEAD, &t->pm_head->base);
	for (size_t i = 0; i < t->nr_pm; i++)
		put_msg(f, FZ_V_PM, &t->pm[i]->base);
	for (size_t i = 0; i < im->nr_files; i++)
		put_msg(f, FZ_V_FILE, &im->files[i]->base);
	for (size_t i = 0; i < t->nr_fdinfo; i++)
		put_msg(f, FZ_V_FDINFO, &t->fdinfo[i]->base);
	used = (size_t)ftell(f);
	/* As much of the pages file as keeps the input under 64 KiB. */
	n = read_part(dirfd, t->pages_name, 0, buf, used < 60000 ? 60000 - used : 0);
	fz_put(f, FZ_V_PAGES, buf, n);
	seed_close(f);
}

static void seed_source(const struct rst_task *im, int dirfd)
{
	static uint8_t buf[FZ_REC_MAX];
	uint64_t idx = 0;
	int reqs = 0;
	FILE *f = seed_open("fuzz_lazy_source", "source");

	put_msg(f, FZ_S_HEAD, &im->pm_head->base);
	for (size_t i = 0; i < im->nr_pm; i++)
		put_msg(f, FZ_S_PM, &im->pm[i]->base);
	for (int part = 0; part < SEED_DATA_PAGES / 8; part++) {
		size_t n = read_part(dirfd, im->pages_name,
				     LZ_PAGES_HDR_SIZE + part * 8 * LZ_PAGE_SIZE, buf, 8 * LZ_PAGE_SIZE);

		if (n)
			fz_put(f, FZ_S_DATA, buf, n);
	}
	for (size_t i = 0; i < im->nr_pm && reqs < 16; i++) {
		const PagemapEntry *e = im->pm[i];

		if (!(e->flags & LZ_PE_LAZY))
			continue;
		struct fz_s_req rq = { idx, e->nr_pages };

		fz_put(f, FZ_S_REQ, &rq, sizeof(rq));
		idx += e->nr_pages;
		reqs++;
	}
	seed_close(f);
}

/* One message for fuzz_lazy_conn's input, and as sent for fuzz_lazy_msg. */
static void put_framed(FILE *f, uint8_t nfds, uint16_t type, const void *p, size_t len)
{
	struct lz_lazy_hdr h = { LZ_LAZY_MAGIC, LZ_LAZY_VERSION, type, (uint32_t)len, 1 };
	uint8_t buf[1 + 4096];
	char name[32];
	FILE *m;

	buf[0] = (uint8_t)type;
	if (len)
		memcpy(buf + 1, p, len);
	fz_put(f, FZ_C_FRAMED | nfds, buf, len + 1);
	snprintf(name, sizeof(name), "type-%u", type);
	m = seed_open("fuzz_lazy_msg", name);
	fwrite(&h, sizeof(h), 1, m);
	fwrite(buf + 1, 1, len, m);
	seed_close(m);
}

/* fuzz_lazy_conn: what `restore --lazy-pages` says to the daemon. */
static void seed_conn(const struct rst_task *im)
{
	struct lz_lazy_hello hello = { .role = LZ_LAZY_ROLE_RESTORE };
	struct {
		struct lz_lazy_process p;
		struct lz_lazy_range r[64];
	} pr = { .p = { .pid = (int32_t)im->pid, .img_id = im->pid, .flags = LZ_LAZY_PF_PIDFD } };
	const MmEntry *mm = im->mm;
	uint32_t n = 0;
	FILE *f = seed_open("fuzz_lazy_conn", "restore");

	for (size_t i = 0; i < mm->n_vmas && n < 64; i++)
		if (mm->vmas[i]->kind == VMA_KIND__VMA_ANON)
			pr.r[n++] = (struct lz_lazy_range){ mm->vmas[i]->start,
							    mm->vmas[i]->end - mm->vmas[i]->start };
	/* Half the ranges with PROCESS, the rest in one RANGES. */
	pr.p.nr_ranges = n;
	pr.p.nr_here = n / 2;
	put_framed(f, 0, LZ_LAZY_HELLO, &hello, sizeof(hello));
	put_framed(f, 2, LZ_LAZY_PROCESS, &pr, sizeof(pr.p) + pr.p.nr_here * sizeof(pr.r[0]));
	put_framed(f, 0, LZ_LAZY_RANGES, &pr.r[n / 2], (n - n / 2) * sizeof(pr.r[0]));
	put_framed(f, 0, LZ_LAZY_FINISHED, NULL, 0);
	seed_close(f);
}

int main(int argc, char **argv)
{
	struct rst_images im = { .dirfd = -1 };
	struct rst_trust trust;
	int dirfd, ret;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: mkseed DUMPDIR FUZZDIR [PREFIX]\n");
		return 2;
	}
	fuzz_dir = argv[2];
	if (argc == 4)
		seed_prefix = argv[3];
	log_init(LOG_ERROR, -1);
	dirfd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rst_trust_init(&trust, 0);
	ret = dirfd < 0 ? -errno : rst_images_load(&im, argv[1], false, &trust);
	if (ret) {
		fprintf(stderr, "mkseed: cannot load the dump in %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	seed_image(dirfd);
	seed_verify(&im, dirfd, false);
	seed_verify(&im, dirfd, true);
	seed_source(&im.tasks[0], dirfd);
	seed_conn(&im.tasks[0]);
	rst_images_free(&im);
	close(dirfd);
	return 0;
}
