/*
 * lazy-shm.h - the lazy-pages daemon's state that must outlive the daemon.
 *
 * A memfd shared by the daemon and its guardian (and handed to a daemon
 * started with --resume) holds, per served process ("slot"): the layout of
 * its outstanding runs, the done bitmap, its counters, and an inbox of the
 * userfaultfd messages read but not yet applied. The daemon keeps it true
 * at every instant the process could observe:
 *
 *  - pages are marked done only after the UFFDIO_COPY that placed them
 *    returned (a lost mark costs a harmless EEXIST later, never a page);
 *  - uffd messages are read straight into the inbox, so a message the
 *    kernel has handed out is never only in the daemon's private memory;
 *    after the layout change it causes is published, its event byte is
 *    cleared (consumed);
 *  - a layout change is written to the inactive of two buffers and then
 *    made current with one aligned store.
 *
 * So whatever instant the daemon dies at, the shared state, replayed with
 * its unconsumed inbox messages, describes what is still missing.
 */
#ifndef LZ_LAZY_SHM_H
#define LZ_LAZY_SHM_H

#include <stdint.h>

#include "lazy-ranges.h"
#include "uffd.h"

#define LZ_SHM_MAGIC 0x48535a4cU /* "LZSH" */
#define LZ_SHM_VERSION 4 /* 3: the working set (ws); 4: lazily served shared memory objects (lshm) */
#define LZ_SHM_MAX_SLOTS 8192U
#define LZ_SHM_INBOX 64		 /* uffd messages per read */
#define LZ_SHM_TIDS 64		 /* threads counted one by one */
#define LZ_SHM_LAT_BUCKETS 40	 /* log2(ns) buckets: up to ~550 s */
#define LZ_SHM_SIZE (4ULL << 30) /* sparse: only touched pages cost memory */
#define LZ_SHM_NO_SLOT 0xffffffffU

enum lz_slot_state {
	LZ_SLOT_FREE = 0,
	LZ_SLOT_ACTIVE = 1, /* being served */
	LZ_SLOT_DONE = 2,   /* every page in place; uffd closed */
	LZ_SLOT_GONE = 3,   /* the process exited */
	LZ_SLOT_KILLED = 4, /* killed: its pages could not be served */
};

#define LZ_SLOT_F_FINISHED 0x1U /* restore reported it in place: fill may run */
#define LZ_SLOT_F_FORKED 0x2U	/* created by UFFD_EVENT_FORK */

struct lz_shm_stats {
	uint64_t pages_total;	/* outstanding pages when it was handed over (or forked) */
	uint64_t pages_fault;	/* copied to resolve a fault (with the fault-around) */
	uint64_t pages_fill;	/* copied by the background fill */
	uint64_t pages_zero;	/* resolved with UFFDIO_ZEROPAGE */
	uint64_t pages_dropped; /* outstanding pages the process unmapped or dropped */
	uint64_t pages_exist;	/* found already in place (EEXIST) */
	uint64_t faults;	/* page-fault messages */
	uint64_t faults_dup;	/* faults on pages already resolved */
	uint64_t t_start_ns;	/* CLOCK_MONOTONIC at handover */
	uint64_t t_done_ns;	/* when the last page went in; 0: not yet */
	uint64_t lat_log2[LZ_SHM_LAT_BUCKETS]; /* fault service time, bucket floor(log2 ns) */
	uint32_t nr_tids;
	uint32_t pad;
	struct {
		int32_t tid;
		uint32_t faults;
	} tids[LZ_SHM_TIDS];
	uint64_t faults_other_tids; /* faults of threads beyond LZ_SHM_TIDS */
	uint64_t pages_prefetch;    /* copied ahead of the fill from a recorded working set */
	uint64_t ws_pages;	    /* pages in the working set it recorded */
	uint64_t t_prefetch_done_ns; /* the working set was in place; 0: not (yet) */
	uint64_t thp_collapsed;	    /* 2 MiB ranges collapsed into huge pages at the end */
};

struct lz_shm_slot {
	uint32_t state;	       /* enum lz_slot_state */
	int32_t pid;	       /* 0: a forked child not identified yet */
	uint32_t img_id;
	uint32_t parent;       /* slot it was forked from, or LZ_SHM_NO_SLOT */
	uint32_t flags;	       /* LZ_SLOT_F_* */
	uint32_t cur;	       /* current layout buffer, 0 or 1 */
	uint32_t pending_fork; /* child slot set up from an unconsumed FORK, or NO_SLOT */
	uint32_t reserved;
	uint64_t features;     /* UFFD_FEATURE_* of its uffd */
	uint64_t nr_idx;       /* bits in the done bitmap */
	uint64_t done_off;     /* heap offset of the done bitmap */
	uint64_t lay_off[2];   /* heap offsets of the two layout buffers */
	uint32_t lay_nr[2];
	uint32_t lay_cap[2];
	uint8_t dump_id[16];   /* struct lz_dump_id its images must carry */
	struct lz_shm_stats st;
	struct uffd_msg inbox[LZ_SHM_INBOX]; /* event 0: consumed or empty */
};

#define LZ_SHM_MAX_LSHM 256U /* LZ_LAZY_SHMEM_MAX */

/*
 * A shared memory object served lazily (lazy-shmem.c): enough for a
 * resumed daemon to find it again; what of it is in place is the object's
 * own page cache (SEEK_DATA).
 */
struct lz_shm_lshm {
	uint32_t id;	     /* shmem_entry.id */
	uint32_t reserved;
	uint64_t dev, ino;   /* the object the restore made */
	uint64_t size;
	uint8_t dump_id[16]; /* the dump whose shmem.img describes it */
};
_Static_assert(sizeof(struct lz_shm_lshm) == 48, "lz_shm_lshm is 48 bytes");

struct lz_shm_hdr {
	uint32_t magic;	     /* LZ_SHM_MAGIC */
	uint16_t version;    /* LZ_SHM_VERSION */
	uint16_t nr_used;    /* slots[nr_used..] have never been used */
	uint32_t max_slots;
	uint32_t generation; /* daemons that took over so far */
	uint64_t size;	     /* bytes of the memfd */
	uint64_t heap;	     /* offset of the heap */
	uint64_t brk;	     /* first free heap byte */
	int32_t daemon_pid;
	int32_t guard_pid;
	uint64_t t_start_ns; /* first daemon's start, CLOCK_MONOTONIC */
	char images_dir[4096];
	uint32_t nr_lshm;    /* lshm[0..nr_lshm) are in use */
	uint32_t reserved2;
	struct lz_shm_lshm lshm[LZ_SHM_MAX_LSHM];
	struct lz_shm_slot slots[LZ_SHM_MAX_SLOTS];
};

struct lz_shm {
	int fd;
	uint8_t *base;
	struct lz_shm_hdr *hdr;
};

int shm_create(struct lz_shm *m, const char *images_dir);
/* Map an existing state memfd and check it. Takes ownership of fd. */
int shm_attach(struct lz_shm *m, int fd);
void shm_detach(struct lz_shm *m);

/* Zeroed heap memory, 64-byte aligned; NULL when the heap is full. */
void *shm_alloc(struct lz_shm *m, uint64_t bytes, uint64_t *off);
/* Heap pointer for [off, off+bytes), NULL when out of bounds. */
void *shm_at(const struct lz_shm *m, uint64_t off, uint64_t bytes);

/* A free slot, reset; -ENOSPC when there is none. */
int shm_slot_new(struct lz_shm *m);
/* Give the slot a done bitmap of nr_idx bits (copied from `from` if not NULL). */
int shm_slot_bitmap(struct lz_shm *m, struct lz_shm_slot *sl, uint64_t nr_idx,
		    const uint64_t *from);
uint64_t *shm_done(const struct lz_shm *m, const struct lz_shm_slot *sl);

/* Make lay the slot's current layout (inactive buffer, then one store). */
int shm_layout_publish(struct lz_shm *m, struct lz_shm_slot *sl, const struct lr_set *lay);
int shm_layout_read(const struct lz_shm *m, const struct lz_shm_slot *sl, struct lr_set *out);

/* Note a lazily served shared memory object (once: a resume finds it noted). */
struct lz_lazy_shmem_obj;
struct lz_dump_id;
int shm_lshm_note(struct lz_shm *m, const struct lz_lazy_shmem_obj *o,
		  const struct lz_dump_id *id);

uint64_t lz_now_ns(void);

#endif
