/*
 * dump-files.c - the fd table of a process and the files behind it.
 *
 * Each fd is looked at through /proc/PID/fd/N (stat follows the magic link
 * to the open file; readlink names it) and /proc/PID/fdinfo/N (offset and
 * status flags). Regular files, directories and character devices are
 * dumped by path; everything else is refused by kind. fds that share one
 * open file description (dup, fork) are found with kcmp(KCMP_FILE) and
 * share one file entry, so that they share the offset again after restore.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-files.h"
#include "files.pb-c.h"
#include "fs.pb-c.h"
#include "proc.h"

#define KCMP_FILE 0 /* include/uapi/linux/kcmp.h */

static bool starts_with(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/*
 * Character devices are reopened by path, which is the same thing only for
 * devices without per-open state: /dev/null, zero, full, random, urandom
 * and pty slaves (the same terminal while its master lives). A pty master,
 * a tun device, /dev/fuse... would come back as a fresh, different object.
 */
static bool chr_reopenable(dev_t rdev)
{
	unsigned maj = major(rdev), min = minor(rdev);

	if (maj == 1)
		return min == 3 || min == 5 || min == 7 || min == 8 || min == 9;
	return maj >= 136 && maj <= 143; /* UNIX98 pty slaves */
}

/* What an unsupported fd is, in a word or two; NULL if it can be dumped. */
static const char *fd_unsupported_kind(const char *link, const struct stat *st, char *buf,
				       size_t size)
{
	if (S_ISSOCK(st->st_mode))
		return "socket";
	if (S_ISFIFO(st->st_mode))
		return link[0] == '/' ? "FIFO" : "pipe"; /* a named FIFO could block restore */
	if (starts_with(link, "anon_inode:")) {
		/* "anon_inode:[eventfd]", "anon_inode:inotify" -> "eventfd", "inotify" */
		const char *k = link + strlen("anon_inode:");

		if (*k == '[')
			k++;
		snprintf(buf, size, "%.*s", (int)strcspn(k, "]"), k);
		return buf;
	}
	if (starts_with(link, "/memfd:"))
		return "memfd";
	if (ends_with(link, " (deleted)"))
		return "deleted file";
	if (link[0] != '/')
		return "special file"; /* nsfs, pidfs, ... */
	if (S_ISBLK(st->st_mode))
		return "block device";
	if (S_ISCHR(st->st_mode) && !chr_reopenable(st->st_rdev)) {
		snprintf(buf, size, "character device %u:%u", major(st->st_rdev), minor(st->st_rdev));
		return buf;
	}
	if (!S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode) && !S_ISCHR(st->st_mode))
		return "unknown file type";
	return NULL;
}

/* An earlier fd with the same open file description, or NULL. */
static struct dump_file *find_shared(struct files_dump *f, int fd, const struct stat *st)
{
	for (size_t i = 0; i < f->nr_files; i++) {
		struct dump_file *df = &f->files[i];
		long r;

		if (df->dev != st->st_dev || df->ino != st->st_ino)
			continue;
		r = syscall(SYS_kcmp, f->pid, f->pid, KCMP_FILE, df->first_fd, fd);
		if (r == 0)
			return df;
	}
	return NULL;
}

static int read_fdinfo(pid_t pid, int fd, uint64_t *pos, uint32_t *flags)
{
	char name[64], *text;
	int ret;

	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	ret = proc_read(pid, name, &text, NULL);
	if (!ret) {
		ret = proc_parse_fdinfo(text, pos, flags);
		free(text);
	}
	if (ret)
		pr_err("process %d: reading /proc/%d/%s: %s", pid, pid, name, strerror(-ret));
	return ret;
}

static int add_file(struct files_dump *f, int fd, const char *link, const struct stat *st,
		    uint64_t pos, uint32_t flags, struct dump_file **out)
{
	struct dump_file *df, *nf;

	nf = realloc(f->files, (f->nr_files + 1) * sizeof(*nf));
	if (!nf)
		return -ENOMEM;
	f->files = nf;
	df = &f->files[f->nr_files];
	memset(df, 0, sizeof(*df));
	df->path = strdup(link);
	if (!df->path)
		return -ENOMEM;
	f->nr_files++;
	df->id = (uint32_t)f->nr_files;
	df->type = S_ISCHR(st->st_mode) ? FILE_TYPE__FILE_CHR : FILE_TYPE__FILE_REG;
	df->flags = flags & ~(uint32_t)O_CLOEXEC;
	df->pos = pos;
	df->mode = st->st_mode;
	df->rdev = st->st_rdev;
	df->size = (uint64_t)st->st_size;
	df->dev = st->st_dev;
	df->ino = st->st_ino;
	df->first_fd = fd;
	*out = df;
	return 0;
}

static int dump_one_fd(struct files_dump *f, int fd)
{
	char name[32], path[64], link[PATH_MAX], kbuf[64];
	struct dump_file *df;
	struct dump_fd *nfd;
	const char *kind;
	struct stat st;
	uint64_t pos;
	uint32_t flags;
	int ret;

	snprintf(name, sizeof(name), "fd/%d", fd);
	ret = proc_readlink(f->pid, name, link, sizeof(link));
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", f->pid, fd);
	if (ret || stat(path, &st) < 0) {
		ret = ret ? ret : -errno;
		pr_err("process %d fd %d: %s: %s", f->pid, fd, path, strerror(-ret));
		return ret;
	}
	kind = fd_unsupported_kind(link, &st, kbuf, sizeof(kbuf));
	if (kind) {
		pr_err("process %d fd %d: %s (%s): not supported yet", f->pid, fd, kind, link);
		return -EOPNOTSUPP;
	}
	ret = read_fdinfo(f->pid, fd, &pos, &flags);
	if (ret)
		return ret;
	/* open() ignores O_ASYNC, and the owner and signal (F_SETOWN, F_SETSIG) are not dumped. */
	if (flags & O_ASYNC) {
		pr_err("process %d fd %d: signal-driven I/O (O_ASYNC) on %s: not supported yet",
		       f->pid, fd, link);
		return -EOPNOTSUPP;
	}
	df = find_shared(f, fd, &st);
	if (!df) {
		ret = add_file(f, fd, link, &st, pos, flags, &df);
		if (ret)
			return ret;
	}
	nfd = realloc(f->fds, (f->nr_fds + 1) * sizeof(*nfd));
	if (!nfd)
		return -ENOMEM;
	f->fds = nfd;
	nfd[f->nr_fds].fd = fd;
	nfd[f->nr_fds].file_id = df->id;
	nfd[f->nr_fds].fd_flags = (flags & O_CLOEXEC) ? FD_CLOEXEC : 0;
	f->nr_fds++;
	pr_debug("process %d fd %d: file %u %s pos %lu flags 0%o", f->pid, fd, df->id, link,
		 (unsigned long)pos, flags);
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* The fd numbers of PID, sorted. */
static int list_fds(pid_t pid, int **fds, size_t *nr)
{
	char path[64];
	struct dirent *de;
	size_t cap = 0;
	DIR *d;

	*fds = NULL;
	*nr = 0;
	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d) {
		pr_perror("process %d: opening %s", pid, path);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (*nr == cap) {
			int *n;

			cap = cap ? cap * 2 : 64;
			n = realloc(*fds, cap * sizeof(*n));
			if (!n) {
				closedir(d);
				return -ENOMEM;
			}
			*fds = n;
		}
		(*fds)[(*nr)++] = atoi(de->d_name);
	}
	closedir(d);
	qsort(*fds, *nr, sizeof(**fds), cmp_int);
	return 0;
}

static int collect_fs(struct files_dump *f)
{
	uint64_t umask;
	char *status;
	int ret;

	ret = proc_readlink(f->pid, "cwd", f->cwd, sizeof(f->cwd));
	if (!ret)
		ret = proc_readlink(f->pid, "root", f->root, sizeof(f->root));
	if (ret) {
		pr_err("process %d: reading its cwd and root: %s", f->pid, strerror(-ret));
		return ret;
	}
	if (ends_with(f->cwd, " (deleted)")) {
		pr_err("process %d: working directory %s: deleted directories are not supported yet",
		       f->pid, f->cwd);
		return -EOPNOTSUPP;
	}
	ret = proc_read(f->pid, "status", &status, NULL);
	if (!ret) {
		ret = proc_parse_status_num(status, "Umask", 8, &umask);
		free(status);
	}
	if (ret) {
		pr_err("process %d: reading Umask of /proc/%d/status: %s", f->pid, f->pid,
		       strerror(-ret));
		return ret;
	}
	f->umask = (uint32_t)umask;
	return 0;
}

int files_collect(struct files_dump *f, pid_t pid)
{
	size_t nr;
	int *fds, ret;

	memset(f, 0, sizeof(*f));
	f->pid = pid;
	ret = list_fds(pid, &fds, &nr);
	for (size_t i = 0; !ret && i < nr; i++)
		ret = dump_one_fd(f, fds[i]);
	free(fds);
	if (ret == -ENOMEM)
		pr_err("process %d: out of memory listing its files", pid);
	if (!ret)
		ret = collect_fs(f);
	return ret;
}

/*
 * files.img holds the descriptions of every process of the dump: ids are
 * numbered on across processes (process k's from the count of those before
 * it), so that they stay unique in the one file; fdinfo-<pid>.img uses the
 * same numbering.
 */
static size_t nr_files_all(const struct files_dump *const *fs, size_t n)
{
	size_t nr = 0;

	for (size_t k = 0; k < n; k++)
		nr += fs[k]->nr_files;
	return nr;
}

static void file_to_entry(const struct dump_file *df, uint32_t id_base, FileEntry *e)
{
	file_entry__init(e);
	e->id = df->id + id_base;
	e->type = (FileType)df->type;
	e->path = df->path;
	e->flags = df->flags;
	e->pos = df->pos;
	e->mode = df->mode;
	if (df->type == FILE_TYPE__FILE_CHR) {
		e->has_rdev = true;
		e->rdev = df->rdev;
	} else {
		e->has_size = true;
		e->size = df->size;
	}
	e->has_dev = e->has_ino = true;
	e->dev = df->dev;
	e->ino = df->ino;
}

static int write_files(const struct files_dump *const *fs, size_t n, struct dump_imgs *imgs)
{
	size_t nr = nr_files_all(fs, n), i = 0;
	FileEntry *fe = calloc(nr + 1, sizeof(*fe));
	const ProtobufCMessage **msgs = calloc(nr + 1, sizeof(*msgs));
	int ret = -ENOMEM;

	if (!fe || !msgs) {
		pr_err("writing files.img: %s", strerror(ENOMEM));
		goto out_free;
	}
	for (size_t k = 0; k < n; k++) {
		for (size_t j = 0; j < fs[k]->nr_files; j++, i++) {
			file_to_entry(&fs[k]->files[j], fs[k]->id_base, &fe[i]);
			msgs[i] = &fe[i].base;
		}
	}
	ret = dump_img_write(imgs, "files.img", LZ_IMG_FILES, msgs, nr);
out_free:
	free(msgs);
	free(fe);
	return ret;
}

static int write_fdinfo(const struct files_dump *f, struct dump_imgs *imgs)
{
	FdinfoEntry *fe = calloc(f->nr_fds + 1, sizeof(*fe));
	const ProtobufCMessage **msgs = calloc(f->nr_fds + 1, sizeof(*msgs));
	char name[DUMP_IMG_NAME_MAX];
	int ret = -ENOMEM;

	if (!fe || !msgs) {
		pr_err("writing fdinfo-%d.img: %s", f->img_pid, strerror(ENOMEM));
		goto out_free;
	}
	for (size_t i = 0; i < f->nr_fds; i++) {
		fdinfo_entry__init(&fe[i]);
		fe[i].fd = (uint32_t)f->fds[i].fd;
		fe[i].file_id = f->fds[i].file_id + f->id_base;
		fe[i].fd_flags = f->fds[i].fd_flags;
		msgs[i] = &fe[i].base;
	}
	snprintf(name, sizeof(name), "fdinfo-%d.img", f->img_pid);
	ret = dump_img_write(imgs, name, LZ_IMG_FDINFO, msgs, f->nr_fds);
out_free:
	free(msgs);
	free(fe);
	return ret;
}

static int write_fs(const struct files_dump *f, struct dump_imgs *imgs)
{
	FsEntry e = FS_ENTRY__INIT;
	char name[DUMP_IMG_NAME_MAX];

	e.cwd = (char *)f->cwd;
	e.root = (char *)f->root;
	e.umask = f->umask;
	snprintf(name, sizeof(name), "fs-%d.img", f->img_pid);
	return dump_img_write_one(imgs, name, LZ_IMG_FS, &e.base);
}

int files_write(struct files_dump *const *fs, size_t n, struct dump_imgs *imgs)
{
	uint32_t base = 0;
	int ret;

	for (size_t k = 0; k < n; k++) {
		fs[k]->id_base = base;
		base += (uint32_t)fs[k]->nr_files;
	}
	ret = write_files((const struct files_dump *const *)fs, n, imgs);
	for (size_t k = 0; !ret && k < n; k++) {
		ret = write_fdinfo(fs[k], imgs);
		if (!ret)
			ret = write_fs(fs[k], imgs);
	}
	return ret;
}

/*
 * Descriptions that restore can open again in each process without a
 * difference anyone could see: character devices with no position and no
 * per-open state. Anything else shared (a file offset, pipe ends, a
 * socket) must stay one description, which is issue 7's.
 */
static bool reopen_is_same(const struct dump_file *df)
{
	static const char *const devs[] = { "/dev/null", "/dev/zero", "/dev/full",
					    "/dev/random", "/dev/urandom" };

	if (df->type != FILE_TYPE__FILE_CHR)
		return false;
	for (size_t i = 0; i < sizeof(devs) / sizeof(devs[0]); i++)
		if (!strcmp(df->path, devs[i]))
			return true;
	return false;
}

static int check_shared_pair(const struct files_dump *a, const struct files_dump *b)
{
	for (size_t i = 0; i < a->nr_files; i++) {
		const struct dump_file *fa = &a->files[i];

		if (reopen_is_same(fa))
			continue;
		for (size_t j = 0; j < b->nr_files; j++) {
			const struct dump_file *fb = &b->files[j];

			/* Only the same inode can be the same description: kcmp only then. */
			if (fa->dev != fb->dev || fa->ino != fb->ino)
				continue;
			if (syscall(SYS_kcmp, a->pid, b->pid, KCMP_FILE, fa->first_fd,
				    fb->first_fd) != 0)
				continue;
			pr_err("fd %d of process %d shares its open file description with fd %d of "
			       "process %d: not supported yet (issue 7)",
			       fb->first_fd, b->pid, fa->first_fd, a->pid);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

int files_check_shared(const struct files_dump *const *fs, size_t n)
{
	for (size_t k = 1; k < n; k++)
		for (size_t l = 0; l < k; l++) {
			int ret = check_shared_pair(fs[l], fs[k]);

			if (ret)
				return ret;
		}
	return 0;
}

void files_fini(struct files_dump *f)
{
	for (size_t i = 0; i < f->nr_files; i++)
		free(f->files[i].path);
	free(f->files);
	free(f->fds);
	f->files = NULL;
	f->fds = NULL;
	f->nr_files = f->nr_fds = 0;
}
