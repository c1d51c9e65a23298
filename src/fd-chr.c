/*
 * fd-chr.c - character devices without per-open state, reopened by path.
 *
 * Reopening is the same thing only for devices that keep nothing per open:
 * /dev/null, zero, full, random, urandom and pty slaves (the same terminal
 * while its master lives). A pty master, a tun device, /dev/fuse... would
 * come back as a fresh, different object: no kind takes them, and dump
 * refuses them as "character device MAJ:MIN".
 *
 * Opened as the process that holds it (as-owner.h), no symlink followed
 * (pty slaves go to fd-pty.c, which opens an outside terminal the same way
 * and only so). The memory devices (1:N) are the same device whoever opens them: when
 * the owner is refused (a process that opened one before dropping its
 * privileges), lazarus opens it and keeps it if it is the dumped device.
 * The opened fd's device number is checked against the dump either way.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "as-owner.h"
#include "fd-kind.h"
#include "restore-fds.h"

static bool chr_reopenable(dev_t rdev)
{
	unsigned maj = major(rdev), min = minor(rdev);

	if (maj == 1)
		return min == 3 || min == 5 || min == 7 || min == 8 || min == 9;
	return maj >= 136 && maj <= 143; /* UNIX98 pty slaves */
}

static bool chr_match(const struct fd_probe *p)
{
	return S_ISCHR(p->st.st_mode) && !(p->flags & O_PATH) && p->link[0] == '/' &&
	       chr_reopenable(p->st.st_rdev);
}

static int chr_dump(struct fd_probe *p, FileEntry *e, struct dump_imgs *imgs)
{
	ChrFileEntry *c = malloc(sizeof(*c));

	(void)imgs;
	if (!c)
		return -ENOMEM;
	chr_file_entry__init(c);
	e->chr = c;
	c->path = strdup(p->link);
	if (!c->path)
		return -ENOMEM;
	c->rdev = (uint64_t)p->st.st_rdev;
	return 0;
}

static int chr_verify(const FileEntry *e, char *why, size_t len)
{
	const ChrFileEntry *c = e->chr;

	if (!c) {
		snprintf(why, len, "character device without its chr entry");
		return -EBADMSG;
	}
	if (!c->path || c->path[0] != '/') {
		snprintf(why, len, "has no absolute path");
		return -EBADMSG;
	}
	if (!chr_reopenable((dev_t)c->rdev)) {
		snprintf(why, len, "%s: character device %u:%u cannot be reopened", c->path,
			 major((dev_t)c->rdev), minor((dev_t)c->rdev));
		return -EBADMSG;
	}
	return 0;
}

static int chr_check(const FileEntry *e, char *why, size_t len)
{
	const ChrFileEntry *c = e->chr;
	struct stat st;

	if (stat(c->path, &st)) {
		snprintf(why, len, "%s: %s", c->path, strerror(errno));
		return -errno;
	}
	if (!S_ISCHR(st.st_mode)) {
		snprintf(why, len, "%s: a %s, dumped as a %s", c->path,
			 rst_file_type_name(st.st_mode), rst_file_type_name(S_IFCHR));
		return -EINVAL;
	}
	if (st.st_rdev != (dev_t)c->rdev) {
		snprintf(why, len, "%s: character device %u:%u, dumped as %u:%u", c->path,
			 major(st.st_rdev), minor(st.st_rdev), major((dev_t)c->rdev),
			 minor((dev_t)c->rdev));
		return -EINVAL;
	}
	return 0;
}

static int chr_open(const FileEntry *e, const struct rst_images *im, struct rst_fstore *st,
		    char *why, size_t len)
{
	const ChrFileEntry *c = e->chr;
	const struct rst_task *t = as_owner_of_file(im, e->id);
	int flags = (int)(e->flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_CLOEXEC | O_ASYNC)) | O_NOCTTY;
	char what[128];
	struct stat sb;
	int fd;

	fd = as_owner_open_typed(t, c->path, flags, S_IFCHR, NULL, what, sizeof(what));
	if ((fd == -EACCES || fd == -EPERM) && major((dev_t)c->rdev) == 1) {
		fd = as_owner_open_nolinks(c->path, flags | O_NONBLOCK);
		if (fd >= 0 && !(flags & O_NONBLOCK) &&
		    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) {
			close(fd);
			fd = -errno;
		}
		if (fd < 0)
			snprintf(what, sizeof(what), "%s: %s", c->path, strerror(-fd));
	}
	if (fd < 0) {
		snprintf(why, len, "character device %s", what);
		return fd;
	}
	if (fstat(fd, &sb) || !S_ISCHR(sb.st_mode) || sb.st_rdev != (dev_t)c->rdev) {
		snprintf(why, len, "open %s: not character device %u:%u it was at dump", c->path,
			 major((dev_t)c->rdev), minor((dev_t)c->rdev));
		close(fd);
		return -EINVAL;
	}
	return rst_fstore_put(st, e->id, fd, why, len);
}

const struct fd_kind fd_kind_chr = {
	.kind = FILE_KIND__FD_CHR,
	.name = "character device",
	.match = chr_match,
	.dump = chr_dump,
	.verify = chr_verify,
	.check = chr_check,
	.open = chr_open,
};
