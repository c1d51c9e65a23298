/*
 * dump-files.h - open files (files.img, fdinfo-<pid>.img) and the fs state
 * (fs-<pid>.img) of the processes of a tree. Functions return 0 or -errno
 * and log failures once.
 */
#ifndef LZ_DUMP_FILES_H
#define LZ_DUMP_FILES_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dump-img.h"
#include "fd-kind.h"
#include "files.pb-c.h"

/* One open file description of the tree; fds of several processes may share it. */
struct dump_file {
	FileEntry *e;	/* malloc'd, with its kind's sub-message */
	pid_t pid;	/* a process and fd holding it, for kcmp */
	int fd;
	uint64_t dev, ino;
};

/* Every open file description of the dump: files.img. */
struct files_table {
	struct dump_file *files;
	size_t nr;
	struct fd_dump_ctx ctx; /* the kinds' (fd-kind.h) */
};

struct dump_fd {
	int fd;
	uint32_t file_id;
	uint32_t fd_flags; /* FD_CLOEXEC */
};

/* One process: fdinfo-<pid>.img and fs-<pid>.img. */
struct files_dump {
	pid_t pid;
	pid_t img_pid; /* its pid in the images (dump-ns.h: inside the tree's pid ns) */
	struct dump_fd *fds;
	size_t nr_fds;
	char cwd[PATH_MAX], root[PATH_MAX];
	struct dump_dir {	/* what cwd and root are: restore's fallback checks it */
		uint64_t dev, ino, btime_ns;
		bool has_btime;
	} cwd_was, root_was;
	uint32_t umask;
};

/*
 * Every fd of PID and what it refers to, cwd, root and umask. A description
 * already in TAB (an fd dup'ed, or inherited from another process of the
 * tree) is found with kcmp and shared; a new one is dumped by its kind
 * (fd-kind.h), which may write images through IMGS. Refuses (-EOPNOTSUPP,
 * naming pid, fd and kind) what no kind can dump.
 */
int files_collect(struct files_dump *f, struct files_table *tab, pid_t pid,
		  struct dump_imgs *imgs);
/* files.img from TAB, then each of the N processes' fdinfo-<pid>.img and fs-<pid>.img. */
int files_write(const struct files_table *tab, struct files_dump *const *fs, size_t n,
		struct dump_imgs *imgs);
/* With every process collected: the kinds' checks across the tree (fd-kind.h finish). */
int files_finish(struct files_table *tab);
void files_fini(struct files_dump *f);
void files_table_fini(struct files_table *tab);

#endif
