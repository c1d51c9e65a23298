/*
 * plugin.h - the restore plugin: plans the bootstrap area, fills the
 * restorer blob's arguments and signal frame, and jumps into the blob.
 *
 * plg_check_*() run in the lazarus parent while images are verified, before
 * any process exists. plg_prepare() and plg_jump() run in the restored
 * process while it is still a copy of lazarus, after its fds are in place.
 * Functions return 0 or -errno and, on failure, write one phrase into `why`
 * (no logging here: the caller reports it once).
 */
#ifndef LZ_PLUGIN_H
#define LZ_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.pb-c.h"
#include "mm.pb-c.h"
#include "pagemap.pb-c.h"
#include "task.pb-c.h"
#include "restorer.h"

/* What the plugin reads from the images. */
struct plg_images {
	const MmEntry *mm;
	const CoreEntry *core;		   /* the leader's: cores[0] */
	const CoreEntry *const *cores;	   /* per thread, the leader first (pstree order) */
	size_t nr_threads;
	const TaskEntry *task;
	PagemapEntry *const *pm; /* sorted runs, verified against mm */
	size_t nr_pm;
	uint64_t xfeatures; /* inventory: XCR0 of the dump */
};

/* A SysV segment a VMA_SHMEM maps (shmid >= 0), by shmem id. */
struct plg_shm {
	uint32_t id;	/* shmem_entry.id */
	int32_t shmid;	/* -1: not SysV, mapped from its fd */
	uint64_t size;	/* page-aligned */
	bool lazy;	/* served by the lazy-pages daemon: register its mappings */
};

/* The restored process's service fds (all above its own fds). */
struct plg_fds {
	int status_fd;
	int release_fd;	       /* -d: pipe to the helper that cloned us; -1 */
	int go_fd;	       /* go pipe from the lazarus parent */
	int helper_pid;	       /* -d: that helper */
	int pages_fd;
	int exe_fd;
	int uffd;	       /* lazy mode; -1 */
	const int *vma_fds;    /* per mm->vmas index: the mapped file, -1 if none */
	const int *close_fds;  /* every service fd but the status pipe */
	unsigned nr_close_fds;
	const struct plg_shm *shm_ids; /* every shared memory object of the dump */
	size_t nr_shm;
	const struct lz_blob_lock *locks; /* POSIX locks the blob takes after closing */
	unsigned nr_locks;
};

static inline const struct plg_shm *plg_shm_find(const struct plg_fds *f, uint32_t id)
{
	for (size_t i = 0; i < f->nr_shm; i++)
		if (f->shm_ids[i].id == id)
			return &f->shm_ids[i];
	return NULL;
}

struct plg_restore {
	uint64_t area;	    /* bootstrap area */
	uint64_t area_len;
	uint64_t stack_top; /* initial rsp of the blob */
	uint64_t entry;	    /* lz_blob_entry */
	struct lz_blob_args *args;
	uint64_t nr_data_pages; /* pages the blob will read */
};

/* The dumped [vvar]/[vvar_vclock]/[vdso] must match this kernel's sizes. */
int plg_check_vdso(const MmEntry *mm, char *why, size_t len);
/*
 * The POSIX timers of task image T (timers.c): clock, notification and
 * signal of a kind restore can create, SIGEV_THREAD_ID aimed at one of
 * TIDS, ids ascending, times valid.
 */
int plg_check_timers(const TaskEntry *t, const uint32_t *tids, size_t nr_tids, char *why,
		     size_t len);
/* The dump's xsave layout must be this CPU's. */
int plg_check_cpu(uint32_t xsave_size, uint64_t xfeatures, char *why, size_t len);

/* Map the bootstrap area, copy the blob, fill its args and signal frame. */
int plg_prepare(struct plg_restore *p, const struct plg_images *im, const struct plg_fds *fds,
		uint64_t t_child_ns, char *why, size_t len);
/* Unregister glibc's rseq, switch to the blob stack and enter the blob. */
int plg_jump(struct plg_restore *p, char *why, size_t len);

struct plg_range {
	uint64_t start, end;
};

/*
 * Lazy mode. A pagemap run is left to the lazy-pages daemon when the dump
 * marked it lazy and its VMA is private anonymous and not locked;
 * plg_lazy_ranges() lists the VMAs holding such runs, which the blob
 * registers with the userfaultfd (the same list goes to the daemon).
 */
bool plg_run_is_lazy(const VmaEntry *v, uint32_t pe_flags);
int plg_lazy_ranges(const MmEntry *mm, PagemapEntry *const *pm, size_t nr_pm,
		    struct plg_range **out, uint32_t *nr);

/* --- internal to plugin/ --- */

/* Ranges mapped in this process now (below the 47-bit TASK_SIZE). */
int plg_self_maps(struct plg_range **out, size_t *nr);
/* A free spot of `size` bytes for the bootstrap area. */
int plg_find_hole(const MmEntry *mm, uint64_t size, uint64_t *addr, char *why, size_t len);
/* Where the target's [vvar]..[vdso] go: 0 if the dump has none. */
void plg_vdso_range(const MmEntry *mm, uint64_t *start, uint64_t *len);
int plg_build_args(struct lz_blob_args *a, uint8_t *extra, size_t extra_len,
		   const struct plg_images *im, const struct plg_fds *fds, uint64_t *nr_data,
		   char *why, size_t len);
/* The blob's timer array (checked again with plg_check_timers). */
int plg_build_timers(struct lz_blob_args *a, struct lz_blob_timer *timers,
		     const struct plg_images *im, char *why, size_t len);
/* The threads array plg_build_args() placed in `extra`. */
struct lz_blob_thread *plg_args_threads(struct lz_blob_args *a);
/* Bytes plg_build_args() needs after the args struct (VMAs, runs, fds). */
size_t plg_args_extra(const struct plg_images *im, const struct plg_fds *fds);
size_t plg_sigframe_size(const CoreEntry *core);
/* Write the frame of thread CORE at `at`; returns the rsp for rt_sigreturn. */
uint64_t plg_build_sigframe(uint8_t *at, const CoreEntry *core, uint64_t xfeatures);

#endif
