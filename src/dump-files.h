/*
 * dump-files.h - open files (files.img, fdinfo-<pid>.img) and the fs state
 * (fs-<pid>.img) of a process. Functions return 0 or -errno and log
 * failures once.
 */
#ifndef LZ_DUMP_FILES_H
#define LZ_DUMP_FILES_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dump-img.h"

/* One open file description; several fds may share it. */
struct dump_file {
	uint32_t id;	 /* from 1 */
	int type;	 /* FileType */
	char *path;
	uint32_t flags;	 /* O_* without O_CLOEXEC */
	uint64_t pos;
	uint32_t mode;	 /* st_mode */
	uint64_t rdev, size, dev, ino;
	int first_fd;	 /* an fd of the description, for kcmp */
};

struct dump_fd {
	int fd;
	uint32_t file_id;
	uint32_t fd_flags; /* FD_CLOEXEC */
};

struct files_dump {
	pid_t pid;
	pid_t img_pid; /* its pid in the images (dump-ns.h: inside the tree's pid ns) */
	struct dump_file *files;
	size_t nr_files;
	struct dump_fd *fds;
	size_t nr_fds;
	char cwd[PATH_MAX], root[PATH_MAX];
	uint32_t umask;
	uint32_t id_base;	 /* added to ids in the images: set by files_write */
};

/*
 * Every fd of PID and what it refers to, cwd, root and umask. Refuses
 * (-EOPNOTSUPP, naming pid, fd and kind) what cannot be dumped yet.
 */
int files_collect(struct files_dump *f, pid_t pid);
/* files.img, fdinfo-<pid>.img and fs-<pid>.img */
/*
 * Refuse (one line, -EOPNOTSUPP) an open file description shared between
 * two of the N processes FS, unless restore can open it again in each
 * without a difference (/dev/null and the like); nothing else (issue 7).
 */
int files_check_shared(const struct files_dump *const *fs, size_t n);
/* files.img for the N processes FS, then each one's fdinfo-<pid>.img and fs-<pid>.img. */
int files_write(struct files_dump *const *fs, size_t n, struct dump_imgs *imgs);
void files_fini(struct files_dump *f);

#endif
