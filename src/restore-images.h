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
#include "shmem.pb-c.h"
#include "sigact.pb-c.h"
#include "task.pb-c.h"

/*
 * One process of the dump, in pstree.img order (the root first, every
 * parent before its children). A zombie (rst_task_zombie) has no images:
 * everything below `parent` is NULL/0 and pages_fd is -1.
 */
struct rst_fstore;

struct rst_task {
	uint32_t pid;
	const PstreeEntry *pstree; /* its pstree.img entry (owned by rst_images) */
	int parent;		   /* index of its parent in rst_images.tasks; -1: the root */
	TaskEntry *task;
	SigactionEntry **sigacts;
	size_t nr_sigacts;
	MmEntry *mm;
	PagemapHead *pm_head;
	PagemapEntry **pm;
	size_t nr_pm;
	FsEntry *fs;
	FdinfoEntry **fdinfo;
	size_t nr_fdinfo;
	CoreEntry **cores; /* core-<tid>.img per thread, in pstree thread order */
	size_t nr_cores;   /* cores[0] is the leader's (tid == pid) */
	char pages_name[64]; /* pages-<pid>.img */
	int pages_fd;	     /* it, opened once: verified and used from this fd */
};

/* A zombie in the dump: no images of its own, it only exits again. */
static inline bool rst_task_zombie(const struct rst_task *t)
{
	return t->pstree->zombie;
}

struct rst_shm;

/* The most processes one restore takes (each holds pipes and its pages file). */
#define RST_MAX_TASKS 256U

/* The dump as a whole, and its processes. */
/*
 * A process group of the dump whose leader is gone: restored by a helper
 * process with the group's id as pid, made by the session's leader, that
 * leads the group until every member joined it, then exits
 * (restore-task.c).
 */
struct rst_group {
	uint32_t pgid, sid;
};

struct rst_images {
	int dirfd;
	const struct rst_trust *trust; /* whose images are read at all */
	struct lz_dump_id id; /* inventory.img's: every other file must carry it */
	InventoryEntry *inv;
	/*
	 * Per inventory file: the reader check_listed verified (bytes, size,
	 * checksum, dump id), until the loader of that file takes it (data
	 * NULL then, or for pages); the rest is freed at the end of loading.
	 * Each image is read once, and what is decoded is what was checked.
	 */
	struct img_reader *listed;
	PstreeEntry **pstree; /* pstree.img, one entry per process */
	size_t nr_pstree;
	struct rst_task *tasks; /* one per pstree entry, same order; tasks[0] the root */
	size_t nr_tasks;
	FileEntry **files;
	size_t nr_files;
	FileEntry **files_by_id; /* the same, sorted by id (rst_file_by_id) */
	bool lazy;	     /* lazy restore: the daemon checks lazy pages itself */
	ShmemEntry **shmem;  /* shmem.img: shared memory objects; none without it */
	size_t nr_shmem;
	int *shmem_pages_fd; /* per shmem entry: pages-shmem-<id>.img, opened once */
	struct rst_shm *shm; /* per shmem entry, made by rst_shmem_create (restore-shmem.h) */
	bool root_init;	     /* PIDNS_ROOT_INIT: pids are inside the root's pid namespace,
				the root was its pid 1 (restored into a fresh one) */
	bool mnt_proc;	     /* MNTNS_PROC: the root mounts its own /proc in a fresh mount ns */
	bool ipc_own;	     /* IPCNS_OWN: restored into a fresh IPC namespace (restore-ipcns.h) */
	struct rst_group groups[RST_MAX_TASKS]; /* groups whose leader is gone */
	size_t nr_groups;
	/*
	 * Not an image: the open file descriptions opened from files.img
	 * (restore.c, rst_fstore_open), inherited by every process of the
	 * tree, which installs its fds from it. NULL until opened.
	 */
	struct rst_fstore *fstore;
	bool shell_job; /* not an image: --shell-job (restore-tty.c) */
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

/*
 * Every message of NAME, an image of KIND that inventory.img must list,
 * read and checked as at load time (framing, dump id, size and checksum).
 * For images read late (fddata-<id>.img when its file is opened). Logs
 * once. Free with rst_images_free_all().
 */
int rst_images_load_all(const struct rst_images *im, enum lz_img_kind kind, const char *name,
			ProtobufCMessage ***out, size_t *nr);
void rst_images_free_all(ProtobufCMessage **v, size_t n);

/* inventory.img's entry for NAME; NULL if it does not list it. */
const ImageFile *rst_inv_file(const struct rst_images *im, const char *name);

/* The task of PID; NULL if the dump has no such process. */
const struct rst_task *rst_task_by_pid(const struct rst_images *im, uint32_t pid);
/* The file description an fd refers to; NULL if none (a binary search). */
const FileEntry *rst_file_by_id(const struct rst_images *im, uint32_t id);

#endif
