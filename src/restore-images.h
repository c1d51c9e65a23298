/*
 * restore-images.h - load and verify every image of a dump before restore
 * creates anything.
 */
#ifndef LZ_RESTORE_IMAGES_H
#define LZ_RESTORE_IMAGES_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

#include "image.h"
#include "restore-trust.h"
#include "core.pb-c.h"
#include "files.pb-c.h"
#include "fs.pb-c.h"
#include "inventory.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "pstree.pb-c.h"
#include "sigact.pb-c.h"
#include "task.pb-c.h"

struct rst_images {
	int dirfd;
	const struct rst_trust *trust; /* whose images are read at all */
	struct lz_dump_id id; /* inventory.img's: every other file must carry it */
	uint32_t pid; /* the one process of the dump */
	InventoryEntry *inv;
	PstreeEntry *pstree;
	CoreEntry *core;	/* the leader's: cores[0] */
	CoreEntry **cores;	/* core-<tid>.img per thread, in pstree order (leader first) */
	size_t nr_threads;
	TaskEntry *task;
	SigactionEntry **sigacts;
	size_t nr_sigacts;
	MmEntry *mm;
	PagemapHead *pm_head;
	PagemapEntry **pm;
	size_t nr_pm;
	FsEntry *fs;
	FileEntry **files;
	size_t nr_files;
	FileEntry **files_by_id; /* the same, sorted by id (rst_file_by_id) */
	FdinfoEntry **fdinfo;
	size_t nr_fdinfo;
	char pages_name[64]; /* pages-<pid>.img */
	int pages_fd;	     /* it, opened once: verified and used from this fd */
	bool lazy;	     /* lazy restore: the daemon checks lazy pages itself */
};

/*
 * Read and verify everything in dir, after checking that TRUST trusts the
 * directory and every image in it (restore-trust.h): framing and checksums of every listed
 * file, the pages data block by block, the pagemap against the VMAs, the
 * CPU and vdso against this machine, and that mapped and open files exist.
 * On failure logs one line ("<file>: <why>") and returns -errno. For a lazy
 * restore only the blocks of pages read eagerly are checked here: the
 * lazy-pages daemon checks each other block before it first copies from it,
 * so the time to resume does not grow with memory size.
 */
int rst_images_load(struct rst_images *im, const char *dir, bool lazy,
		    const struct rst_trust *trust);
void rst_images_free(struct rst_images *im);

/* inventory.img's entry for NAME; NULL if it does not list it. */
const ImageFile *rst_inv_file(const struct rst_images *im, const char *name);

/* The file description an fd refers to; NULL if none (a binary search). */
const FileEntry *rst_file_by_id(const struct rst_images *im, uint32_t id);

#endif
