/*
 * fd-reg.c - regular files, directories and O_PATH fds, reopened by path.
 *
 * The path is the one /proc/PID/fd/N names at dump time; restore opens it
 * again with the dumped status flags (minus the ones that only act at
 * creation) and seeks to the dumped offset. A FIFO or device put in the
 * file's place is refused before it is opened (check), and opening is done
 * with O_NONBLOCK so that nothing can block on a peer anyway. An O_PATH fd
 * opens nothing: any file type is taken, it is only checked to be the same.
 * What is not here yet: deleted files (refused at dump by dump-files.c,
 * "deleted file"), memfds (their own kind), file locks (dump-checks.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "log.h"
#include "fd-kind.h"
#include "restore-fds.h"
#include "restore-verify.h"

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

static bool reg_match(const struct fd_probe *p)
{
	if (p->link[0] != '/' || ends_with(p->link, " (deleted)") ||
	    !strncmp(p->link, "/memfd:", 7))
		return false;
	if (p->flags & O_PATH)
		return true;
	return S_ISREG(p->st.st_mode) || S_ISDIR(p->st.st_mode);
}

static int reg_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	RegFileEntry *r = malloc(sizeof(*r));

	(void)imgs;
	if (!r)
		return -ENOMEM;
	reg_file_entry__init(r);
	e->reg = r;
	r->path = strdup(p->link);
	if (!r->path)
		return -ENOMEM;
	r->pos = p->pos;
	r->mode = p->st.st_mode;
	if (S_ISREG(p->st.st_mode)) {
		r->has_size = true;
		r->size = (uint64_t)p->st.st_size;
	}
	r->has_dev = r->has_ino = true;
	r->dev = (uint64_t)p->st.st_dev;
	r->ino = (uint64_t)p->st.st_ino;
	return 0;
}

static int reg_verify(const FileEntry *e, char *why, size_t len)
{
	const RegFileEntry *r = e->reg;

	if (!r) {
		snprintf(why, len, "regular file without its reg entry");
		return -EBADMSG;
	}
	if (!r->path || r->path[0] != '/') {
		snprintf(why, len, "has no absolute path");
		return -EBADMSG;
	}
	if (!(e->flags & O_PATH) && !S_ISREG(r->mode) && !S_ISDIR(r->mode)) {
		snprintf(why, len, "%s is a %s, not a regular file or directory", r->path,
			 rst_file_type_name((mode_t)r->mode));
		return -EBADMSG;
	}
	return 0;
}

/* The file is still there, of the dumped type; a changed one is only a warning. */
static int reg_check(const FileEntry *e, char *why, size_t len)
{
	const RegFileEntry *r = e->reg;
	struct stat st;
	int ret;

	/* O_PATH|O_NOFOLLOW of a symlink names the link itself. */
	ret = S_ISLNK(r->mode) ? lstat(r->path, &st) : stat(r->path, &st);
	if (ret) {
		snprintf(why, len, "%s: %s", r->path, strerror(errno));
		return -errno;
	}
	if ((st.st_mode & S_IFMT) != (r->mode & S_IFMT)) {
		snprintf(why, len, "%s: a %s, dumped as a %s", r->path,
			 rst_file_type_name(st.st_mode), rst_file_type_name((mode_t)r->mode));
		return -EINVAL;
	}
	rst_warn_changed(r->path, &st, r->has_ino, r->ino, r->has_size, r->size);
	return 0;
}

/*
 * Status flags as at dump time, minus what only makes sense at creation.
 * O_NOCTTY: a terminal must not become our controlling tty by accident.
 */
static int reg_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		    char *why, size_t len)
{
	const RegFileEntry *r = e->reg;
	int flags = (int)(e->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC)) | O_NOCTTY;
	char what[128];
	int fd;

	(void)im;
	if (flags & O_PATH) { /* opens nothing: cannot block */
		fd = open(r->path, flags | O_CLOEXEC);
		if (fd < 0) {
			fd = -errno;
			snprintf(what, sizeof(what), "%s", strerror(errno));
		}
	} else {
		fd = rst_open_typed(r->path, flags, (mode_t)r->mode, what, sizeof(what));
	}
	if (fd < 0) {
		snprintf(why, len, "open %s: %s", r->path, what);
		return fd;
	}
	if (!(flags & O_PATH) && S_ISREG(r->mode) && lseek(fd, (off_t)r->pos, SEEK_SET) < 0) {
		snprintf(why, len, "seek %s to %" PRIu64 ": %s", r->path, r->pos, strerror(errno));
		close(fd);
		return -errno;
	}
	if (!(flags & O_PATH) && S_ISDIR(r->mode) && r->pos)
		lseek(fd, (off_t)r->pos, SEEK_SET); /* a readdir cookie: best effort */
	pr_debug("file %u: %s flags %#o pos %" PRIu64, e->id, r->path, e->flags, r->pos);
	return rst_fstore_put(st, e->id, fd, why, len);
}

const struct fd_kind fd_kind_reg = {
	.kind = FILE_KIND__FD_REG,
	.name = "regular file",
	.match = reg_match,
	.dump = reg_dump,
	.verify = reg_verify,
	.check = reg_check,
	.open = reg_open,
};
