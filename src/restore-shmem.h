/*
 * restore-shmem.h - the shared memory objects of a dump (shmem.img), made
 * again by lazarus before the tree is created: every process inherits them
 * and maps its VMA_SHMEM from them, so each stays one object shared by the
 * same processes. Functions return 0 or -errno and log once.
 */
#ifndef LZ_RESTORE_SHMEM_H
#define LZ_RESTORE_SHMEM_H

#include <stdbool.h>
#include <stdint.h>

#include "plugin.h"
#include "restore-images.h"

/* One object as restore made it (rst_images.shm[i] for shmem[i]). */
struct rst_shm {
	int fd;		/* memfd / shared anonymous: the object; -1 for SysV */
	int shmid;	/* SysV: the segment made (the dumped id); -1 */
	void *attach;	/* SysV: lazarus's own attachment until rst_shmem_release */
	bool created;	/* SysV: ours to remove if the restore fails */
	bool lazy;	/* made empty: the lazy-pages daemon fills it (lazy-shmem.c) */
	uint64_t dev, ino; /* the object made (how maps names it) */
};

/*
 * Why VMA_SHMEM V cannot be restored from these objects (unknown id, a
 * private SysV mapping, a SysV part beyond the segment), NULL if it can.
 */
const char *rst_shmem_vma_why(const struct rst_images *im, const VmaEntry *v);

/*
 * Every entry of shmem.img (ids, kinds, sizes, runs against the object and
 * the pages file) and every pages-shmem-<id>.img (header, size, all block
 * checksums: shared memory is always filled eagerly).
 */
int rst_shmem_verify(const struct rst_images *im);

/*
 * Make every object and fill it: memfd_create with the dumped name, size,
 * mode and (after the fill) seals; shared anonymous memory as a fresh
 * MAP_SHARED|MAP_ANONYMOUS object (same maps name as before); SysV with
 * the dumped id (shm_next_id), key, owner and mode. A taken SysV id or key
 * is refused by name. In the lazarus parent, before the tree is created.
 */
int rst_shmem_create(struct rst_images *im);

/*
 * Once every process mapped what it maps (or the restore failed: FAILED),
 * let go: SysV segments dumped as removed are removed now that the tree
 * holds them; on failure every segment made here is removed.
 */
void rst_shmem_release(struct rst_images *im, bool failed);

/*
 * In a process forked from lazarus that lives on (the --pidns init): let
 * go of lazarus's own SysV attachments it inherited, which would count in
 * every segment's shm_nattch.
 */
void rst_shmem_detach(const struct rst_images *im);

/* The object with shmem id ID: its index in im->shmem, or -1. */
int rst_shmem_index(const struct rst_images *im, uint32_t id);

/* For the plugin: shmid and size of each object (malloc'ed; NULL if none). */
struct plg_shm *rst_shmem_plg(const struct rst_images *im);

/*
 * Lazy restore: the objects made empty, for the lazy-pages daemon
 * (LZ_LAZY_SHMEM; malloc'ed, *nr 0 and NULL when none).
 */
struct lz_lazy_shmem_obj *rst_shmem_lazy_objs(const struct rst_images *im, uint32_t *nr);
/*
 * Append to *r (*nr entries, realloc'ed) the VMAs of MM that map an object
 * served lazily: the blob registers them with the process's userfaultfd.
 */
int rst_shmem_lazy_ranges(const struct rst_images *im, const MmEntry *mm,
			  struct plg_range **r, uint32_t *nr);

#endif
