/*
 * dump-shmem.h - the shared memory objects of a dumped tree: shmem.img and
 * one pages-shmem-<id>.img per object. Functions return 0 or -errno and
 * log failures once.
 */
#ifndef LZ_DUMP_SHMEM_H
#define LZ_DUMP_SHMEM_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "dump-files.h"
#include "dump-img.h"
#include "dump-mm.h"
#include "dump-signals.h"

/* One shmem-backed object (shmem.proto), however many VMAs map it. */
struct shmem_obj {
	uint32_t id;	      /* 1, 2, ... in the order first seen */
	int kind;	      /* ShmemKind */
	uint64_t dev, ino;    /* its shmem inode: the identity */
	int fd;		      /* opened through map_files of its first mapping */
	pid_t pid;	      /* that first mapping, for messages */
	uint64_t start, end;
	uint64_t size;	      /* i_size */
	char *name;	      /* memfd: the name after "memfd:" */
	uint32_t seals, mode;
	int32_t key, shmid;   /* SysV */
	uint32_t uid, gid, cuid, cgid;
	uint32_t nattch;      /* SysV: as /proc/sysvipc/shm says */
	uint32_t nr_vmas;     /* VMAs of the tree that map it */
	bool removed;	      /* SysV: SHM_DEST */
	bool shared_write;    /* some MAP_SHARED VMA of it may write (VmFlags "mw") */
	uint64_t data_pages;  /* written to its pages file */
};

struct shmem_table {
	struct shmem_obj *objs;
	size_t nr, cap;
};

/*
 * Find the object of every VMA_SHMEM of MMS[0..NR) and of every memfd held
 * as an fd in FILES (giving each VMA and memfd_file_entry its shmem_id),
 * open it and read its attributes; refuse by name what restore cannot
 * bring back (a SysV segment attached outside the tree, SHM_LOCK, a memfd
 * sealed against writes that is mapped writable, huge pages).
 */
int shmem_collect(struct shmem_table *t, struct mm_dump *const *mms, size_t nr,
		  struct files_table *files);
/*
 * The tree has an IPC namespace of its own, entered (dump-ipcns.h): after
 * shmem_collect, every SysV segment there that no process of the tree
 * attaches is an object too (a container's segments outlive their
 * attachments). One attached only outside the tree is refused by name.
 */
int shmem_collect_ns(struct shmem_table *t, pid_t root);
/* Write every object's pages file, then shmem.img (none without objects). */
int shmem_dump(struct shmem_table *t, struct dump_imgs *imgs, struct dump_sig *sig);
void shmem_fini(struct shmem_table *t);

#endif
