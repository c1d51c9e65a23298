/*
 * dump-mm.h - the address space layout of a process (mm-<pid>.img): its
 * VMAs, classified and checked, and the mm fields of /proc/PID/stat, auxv,
 * exe and brk. Functions return 0 or -errno and log failures once.
 */
#ifndef LZ_DUMP_MM_H
#define LZ_DUMP_MM_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

#include "dump-img.h"
#include "proc.h"
#include "ptrace.h"

struct dump_vma {
	uint64_t start, end;
	uint64_t pgoff;	  /* file offset in bytes */
	uint32_t prot;	  /* PROT_* */
	uint32_t flags;	  /* MAP_* */
	uint32_t madv;	  /* LZ_MADV_* */
	uint32_t vmflags; /* PROC_VMF_* as read */
	bool no_anon;	  /* smaps counted no anonymous and no swapped page */
	int kind;	  /* VmaKind */
	char *path;	  /* file-backed: the file */
	char *name;	  /* [heap], [stack], [anon:...] */
	uint64_t dev, ino;
	bool has_btime;	  /* file-backed: the file system keeps a birth time */
	uint64_t btime_ns;
	int shm_kind;	  /* VMA_SHMEM: ShmemKind, from the maps name */
	uint32_t shmem_id; /* VMA_SHMEM: set by dump-shmem.c */
	bool deleted;	  /* VMA_FILE_*: of an unlinked file (path without " (deleted)") */
	uint64_t size;	  /* deleted: the file's size */
	uint32_t file_id; /* deleted: its files.img entry, set by dump-delmap.c */
};

struct mm_dump {
	pid_t pid;
	pid_t img_pid; /* its pid in the images (dump-ns.h: inside the tree's pid ns) */
	struct dump_vma *vmas;
	size_t nr_vmas;
	struct proc_stat stat; /* start_code .. env_end */
	uint64_t brk;
	uint64_t *auxv;	       /* (type, value) pairs up to and including AT_NULL */
	size_t nr_auxv;	       /* number of u64 */
	char exe[PATH_MAX];
	uint64_t exe_dev, exe_ino, exe_btime_ns; /* stat of /proc/PID/exe */
	bool has_exe_btime;
};

/*
 * Read /proc/PID/smaps and classify every VMA; refuses (-EOPNOTSUPP, with
 * a message naming the mapping) what the dump cannot handle yet.
 */
int mm_collect_vmas(struct mm_dump *mm, pid_t pid);
/* brk, by an injected brk(0). */
int mm_collect_brk(struct mm_dump *mm, struct tracee *t);
/* stat fields, auxv, exe. */
int mm_collect_proc(struct mm_dump *mm);
int mm_write(const struct mm_dump *mm, struct dump_imgs *imgs);
void mm_fini(struct mm_dump *mm);

#endif
