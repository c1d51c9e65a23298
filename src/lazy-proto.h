/*
 * lazy-proto.h - the wire protocol of the lazy-pages daemon, version 2.
 * Documentation/lazy-protocol.md is the specification; this is its code.
 *
 * Transport: an AF_UNIX SOCK_SEQPACKET socket, WORKDIR/lazy-pages.sock, so
 * every message arrives whole or not at all and a peer cannot desynchronise
 * the stream. Each message is one struct lz_lazy_hdr followed by hdr.len
 * payload bytes; file descriptors ride along as SCM_RIGHTS. All integers
 * are host-endian (the socket is local), every struct is fixed-width with
 * explicit padding, and every reserved field must be zero.
 *
 * A connection starts with HELLO. A restore client then sends, per restored
 * process, PROCESS (with the uffd and a pidfd), RANGES when more registered
 * ranges follow than fit one message, and finally FINISHED once every
 * process is in place. The daemon answers HELLO, each complete PROCESS and
 * FINISHED with one REPLY. The G_* messages are spoken between the daemon
 * and its guardian, and between the guardian and `lazy-pages --resume`.
 */
#ifndef LZ_LAZY_PROTO_H
#define LZ_LAZY_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define LZ_LAZY_SOCK_NAME "lazy-pages.sock"
#define LZ_LAZY_LOCK_NAME "lazy-pages.lock"
#define LZ_LAZY_STATS_NAME "lazy-pages-stats.json"

#define LZ_LAZY_MAGIC 0x50595a4cU /* "LZYP" */
#define LZ_LAZY_VERSION 3	  /* 2: HELLO carries the dump id; REPLY msg 240 bytes;
				     3: SHMEM */
#define LZ_LAZY_MAX_MSG 65536U	  /* header + payload, bytes */
#define LZ_LAZY_MAX_FDS 3	  /* fds on one message */

enum lz_lazy_type {
	LZ_LAZY_HELLO = 1,    /* C->D: struct lz_lazy_hello */
	LZ_LAZY_PROCESS = 2,  /* C->D: struct lz_lazy_process + ranges; fds uffd[, pidfd] */
	LZ_LAZY_RANGES = 3,   /* C->D: more struct lz_lazy_range of the open PROCESS */
	LZ_LAZY_FINISHED = 4, /* C->D: no payload; every process is restored */
	LZ_LAZY_REPLY = 5,    /* D->C: struct lz_lazy_reply */
	LZ_LAZY_SHMEM = 6,    /* C->D: struct lz_lazy_shmem_obj[]: shared memory served lazily */

	LZ_LAZY_G_ADD = 16,   /* D->G and G->R: struct lz_lazy_g_slot; fds uffd[, pidfd] */
	LZ_LAZY_G_PIDFD = 17, /* D->G: struct lz_lazy_g_slot; fd pidfd (pid learnt late) */
	LZ_LAZY_G_DROP = 18,  /* D->G: struct lz_lazy_g_slot; close that slot's fds */
	LZ_LAZY_G_DONE = 19,  /* D->G: no payload; every page is in place, exit */
	LZ_LAZY_G_STATE = 20, /* G->R: struct lz_lazy_g_state; fds shm, listen socket, lock */
	LZ_LAZY_G_END = 21,   /* G->R: no payload; handover complete */
};

struct lz_lazy_hdr {
	uint32_t magic;	  /* LZ_LAZY_MAGIC */
	uint16_t version; /* LZ_LAZY_VERSION */
	uint16_t type;	  /* enum lz_lazy_type */
	uint32_t len;	  /* payload bytes after this header */
	uint32_t seq;	  /* sender's counter; a REPLY echoes the request's */
};
_Static_assert(sizeof(struct lz_lazy_hdr) == 16, "lazy header is 16 bytes");
_Static_assert(offsetof(struct lz_lazy_hdr, type) == 6, "type at 6");
_Static_assert(offsetof(struct lz_lazy_hdr, len) == 8, "len at 8");
_Static_assert(offsetof(struct lz_lazy_hdr, seq) == 12, "seq at 12");

enum lz_lazy_role {
	LZ_LAZY_ROLE_RESTORE = 1, /* hands processes over */
	LZ_LAZY_ROLE_RESUME = 2,  /* `lazy-pages --resume`: take over from the guardian */
};

#define LZ_LAZY_DUMP_ID_LEN 16 /* struct lz_dump_id of images/image.h */

struct lz_lazy_hello {
	uint32_t role;	   /* enum lz_lazy_role */
	uint32_t flags;	   /* 0 */
	uint64_t reserved; /* 0 */
	uint8_t dump_id[LZ_LAZY_DUMP_ID_LEN]; /* RESTORE: the dump it restores; RESUME: 0 */
};
_Static_assert(sizeof(struct lz_lazy_hello) == 32, "hello is 32 bytes");
_Static_assert(offsetof(struct lz_lazy_hello, dump_id) == 16, "dump_id at 16");

struct lz_lazy_range {
	uint64_t start; /* page aligned */
	uint64_t len;	/* bytes, page aligned, > 0 */
};
_Static_assert(sizeof(struct lz_lazy_range) == 16, "range is 16 bytes");
_Static_assert(offsetof(struct lz_lazy_range, len) == 8, "len at 8");

#define LZ_LAZY_PF_PIDFD 0x1U /* a pidfd follows the uffd */

struct lz_lazy_process {
	int32_t pid;	     /* the restored process, in the daemon's pid namespace */
	uint32_t img_id;     /* serve from pagemap-<img_id>.img + pages-<img_id>.img */
	uint64_t features;   /* UFFD_FEATURE_* the uffd was enabled with */
	uint64_t ioctls;     /* AND of UFFDIO_REGISTER's ioctls over the ranges; 0: unknown */
	uint32_t nr_ranges;  /* registered ranges in total */
	uint32_t nr_here;    /* ranges following in this message */
	uint32_t flags;	     /* LZ_LAZY_PF_* */
	uint32_t reserved;   /* 0 */
	/* struct lz_lazy_range ranges[nr_here] follow */
};
_Static_assert(sizeof(struct lz_lazy_process) == 40, "process is 40 bytes");
_Static_assert(offsetof(struct lz_lazy_process, features) == 8, "features at 8");
_Static_assert(offsetof(struct lz_lazy_process, nr_ranges) == 24, "nr_ranges at 24");
_Static_assert(offsetof(struct lz_lazy_process, reserved) == 36, "reserved at 36");

#define LZ_LAZY_RANGES_PER_MSG \
	((LZ_LAZY_MAX_MSG - sizeof(struct lz_lazy_hdr) - sizeof(struct lz_lazy_process)) / \
	 sizeof(struct lz_lazy_range))

/*
 * A shared memory object of shmem.img that the restore made empty and
 * registered (MISSING) in every mapping of it: the daemon serves it by
 * object, whichever process faults (lazy-shmem.c). Sent once, after HELLO
 * and before any PROCESS that maps it.
 */
struct lz_lazy_shmem_obj {
	uint32_t id;	   /* shmem_entry.id: pages-shmem-<id>.img */
	uint32_t reserved; /* 0 */
	uint64_t dev;	   /* st_dev, st_ino of the object made: how maps names it */
	uint64_t ino;
	uint64_t size;	   /* bytes, as shmem.img says */
};
_Static_assert(sizeof(struct lz_lazy_shmem_obj) == 32, "shmem obj is 32 bytes");
_Static_assert(offsetof(struct lz_lazy_shmem_obj, dev) == 8, "dev at 8");

#define LZ_LAZY_SHMEM_MAX 256U /* objects of one dump served lazily */

struct lz_lazy_reply {
	int32_t status;	  /* 0, or -errno */
	uint32_t version; /* protocol version of the daemon */
	uint32_t pid;	  /* daemon pid */
	uint32_t reserved;
	char msg[240];	  /* NUL-terminated reason when status != 0 */
};
_Static_assert(sizeof(struct lz_lazy_reply) == 256, "reply is 256 bytes");
_Static_assert(offsetof(struct lz_lazy_reply, msg) == 16, "msg at 16");

/* --- daemon <-> guardian <-> resume --- */

#define LZ_LAZY_GF_PIDFD 0x1U /* a pidfd follows the uffd */

struct lz_lazy_g_slot {
	uint32_t slot;	/* index into the shared state's slot table */
	uint32_t flags; /* LZ_LAZY_GF_* */
};
_Static_assert(sizeof(struct lz_lazy_g_slot) == 8, "g_slot is 8 bytes");
_Static_assert(offsetof(struct lz_lazy_g_slot, flags) == 4, "flags at 4");

struct lz_lazy_g_state {
	uint32_t nr_slots;    /* G_ADD messages that follow */
	uint32_t guard_pid;   /* the guardian, for the log */
	uint64_t reserved;
};
_Static_assert(sizeof(struct lz_lazy_g_state) == 16, "g_state is 16 bytes");
_Static_assert(offsetof(struct lz_lazy_g_state, reserved) == 8, "reserved at 8");

#endif
