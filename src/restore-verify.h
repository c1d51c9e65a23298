/* restore-verify.h - semantic checks of a loaded dump (restore-verify.c). */
#ifndef LZ_RESTORE_VERIFY_H
#define LZ_RESTORE_VERIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "restore-images.h"

/* Logs one line and returns -errno on the first problem. */
int rst_verify(const struct rst_images *im);

/* Log "NAME: <formatted why>" as an error and return RET: one refusal line. */
int rst_verify_fail(const char *name, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/*
 * The parts of rst_verify() that read no file, for one process T, in the
 * order it runs them (test/fuzz/fuzz_verify.c calls them alone): each
 * thread's core against the inventory, the VMA list and the vdso, the
 * pagemap against the VMAs; and the fd table against files.img.
 */
int rst_verify_mm(const struct rst_images *im, const struct rst_task *t);
int rst_verify_fds(const struct rst_images *im, const struct rst_task *t);

/* A pages file (pages-<pid>.img, pages-shmem-<id>.img) and the map that describes it. */
struct rst_pages_check {
	int fd;			/* opened once; what is checked is what is read */
	const char *name;	/* the pages file, as inventory.img lists it */
	const char *map_name;	/* "pagemap", "shmem.img": for messages */
	const char *owner_what; /* "pid", "object" */
	uint32_t owner;		/* the header's pid field */
	uint64_t nr_pages;
	uint32_t block_pages;
	const uint32_t *crc;
	size_t nr_crc;
};

/*
 * Header (dump id, owner, page count, the inventory's checksum), exact size
 * and the crc32c of every block; WANT[b] == 0 skips block b (lazy: the
 * daemon checks it before it first copies from it). NULL: all blocks.
 */
int rst_verify_pages_file(const struct rst_images *im, const struct rst_pages_check *pc,
			  const uint8_t *want);

/*
 * The open files of every process against this machine, through each
 * kind's check() (fd-kind.h): after the pids are known to be free, before
 * any file is opened. Logs one line naming the fd; -errno.
 */
int rst_verify_files(const struct rst_images *im);

/* Warn (once per call) when PATH was replaced or changed size since the dump. */
void rst_warn_changed(const char *path, const struct stat *st, bool has_ino, uint64_t ino,
		      bool has_size, uint64_t size);

#endif
