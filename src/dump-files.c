/*
 * dump-files.c - the fd table of a process and the files behind it.
 *
 * Each fd is looked at through /proc/PID/fd/N (stat follows the magic link
 * to the open file; readlink names it) and /proc/PID/fdinfo/N (offset and
 * status flags). fds that share one open file description (dup, fork,
 * across the processes of the tree) are found with kcmp(KCMP_FILE) and
 * share one file entry, so that they share the offset and flags again
 * after restore. A new description is dumped by the first kind of
 * fd_kinds[] that takes it (fd-kind.h); one no kind takes is refused,
 * named by what it looks like.
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
#include "as-owner.h"
#include "dump-files.h"
#include "fd-desc.h"
#include "fd-event.h"
#include "fd-pipe.h"
#include "fd-kind.h"
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

/* What an fd no kind takes is, in a word or two, for its refusal. */
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
	if (S_ISCHR(st->st_mode)) {
		snprintf(buf, size, "character device %u:%u", major(st->st_rdev), minor(st->st_rdev));
		return buf;
	}
	return "unknown file type";
}

/*
 * fd_probe_getfd: the same open file description in lazarus. pidfd_getfd
 * needs PTRACE_MODE_ATTACH_REALCREDS on the target, which holds: it is
 * seized by us.
 */
int fd_probe_getfd(struct fd_probe *p)
{
	if (p->local >= 0)
		return p->local;
	if (p->pidfd < 0) {
		p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
		if (p->pidfd < 0) {
			pr_perror("process %d fd %d: pidfd_open", p->pid, p->fd);
			return -errno;
		}
	}
	p->local = (int)syscall(SYS_pidfd_getfd, p->pidfd, p->fd, 0);
	if (p->local < 0) {
		pr_perror("process %d fd %d: pidfd_getfd", p->pid, p->fd);
		return -errno;
	}
	return p->local;
}

static void probe_fini(struct fd_probe *p)
{
	if (p->local >= 0)
		close(p->local);
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->local = p->pidfd = -1;
}

/*
 * A description already dumped, by this process or another of the tree,
 * that FD of PID also refers to: the same inode first, then kcmp.
 */
static struct dump_file *find_shared(struct files_table *tab, pid_t pid, int fd,
				     const struct stat *st)
{
	for (size_t i = 0; i < tab->nr; i++) {
		struct dump_file *df = &tab->files[i];

		if (df->dev != (uint64_t)st->st_dev || df->ino != (uint64_t)st->st_ino)
			continue;
		if (syscall(SYS_kcmp, df->pid, pid, KCMP_FILE, df->fd, fd) == 0)
			return df;
	}
	return NULL;
}

static const struct fd_kind *kind_match(const struct fd_probe *p)
{
	for (size_t i = 0; i < nr_fd_kinds; i++)
		if (fd_kinds[i]->match(p))
			return fd_kinds[i];
	return NULL;
}

/* A new description: its kind dumps it into a new entry of TAB. */
static int add_file(struct files_table *tab, struct fd_probe *p, struct dump_imgs *imgs,
		    struct dump_file **out)
{
	const struct fd_kind *k = kind_match(p);
	struct dump_file *nf, *df;
	char kbuf[64];
	FileEntry *e;
	int ret;

	if (!k) {
		pr_err("process %d fd %d: %s (%s): not supported yet", p->pid, p->fd,
		       fd_unsupported_kind(p->link, &p->st, kbuf, sizeof(kbuf)), p->link);
		return -EOPNOTSUPP;
	}
	nf = realloc(tab->files, (tab->nr + 1) * sizeof(*nf));
	e = malloc(sizeof(*e));
	if (nf)
		tab->files = nf;
	if (!nf || !e) {
		free(e);
		return -ENOMEM;
	}
	file_entry__init(e);
	e->id = (uint32_t)tab->nr + 1;
	e->kind = k->kind;
	e->flags = p->flags;
	ret = k->dump(p, e, imgs);
	if (!ret)
		ret = fd_desc_dump(p, e, true);
	if (ret) {
		protobuf_c_message_free_unpacked(&e->base, NULL);
		return ret;
	}
	df = &tab->files[tab->nr++];
	df->e = e;
	df->pid = p->pid;
	df->fd = p->fd;
	df->dev = (uint64_t)p->st.st_dev;
	df->ino = (uint64_t)p->st.st_ino;
	*out = df;
	return 0;
}

static int read_fdinfo(pid_t pid, int fd, char **text, uint64_t *pos, uint32_t *flags)
{
	char name[64];
	int ret;

	snprintf(name, sizeof(name), "fdinfo/%d", fd);
	ret = proc_read(pid, name, text, NULL);
	if (!ret) {
		ret = proc_parse_fdinfo(*text, pos, flags);
		if (ret) {
			free(*text);
			*text = NULL;
		}
	}
	if (ret)
		pr_err("process %d: reading /proc/%d/%s: %s", pid, pid, name, strerror(-ret));
	return ret;
}

static int add_fd(struct files_dump *f, int fd, uint32_t id, uint32_t fd_flags)
{
	struct dump_fd *nfd = realloc(f->fds, (f->nr_fds + 1) * sizeof(*nfd));

	if (!nfd)
		return -ENOMEM;
	f->fds = nfd;
	nfd[f->nr_fds].fd = fd;
	nfd[f->nr_fds].file_id = id;
	nfd[f->nr_fds].fd_flags = fd_flags;
	f->nr_fds++;
	return 0;
}

/* Is A an ancestor of P (their parent links, as this /proc sees them)? */
static bool is_ancestor(pid_t a, pid_t p)
{
	for (int depth = 0; p > 1 && depth < 4096; depth++) {
		uint64_t ppid;
		char *status;
		int ret = proc_read(p, "status", &status, NULL);

		if (!ret) {
			ret = proc_parse_status_num(status, "PPid", 10, &ppid);
			free(status);
		}
		if (ret)
			return false;
		p = (pid_t)ppid;
		if (p == a)
			return true;
	}
	return false;
}

static int dump_one_fd(struct files_dump *f, struct files_table *tab, int fd,
		       struct dump_imgs *imgs)
{
	char name[32], path[64], link[PATH_MAX], *fdinfo = NULL;
	struct fd_probe p = { .pid = f->pid, .fd = fd, .link = link, .pidfd = -1, .local = -1,
			      .ctx = &tab->ctx };
	struct dump_file *df;
	uint32_t flags;
	int ret;

	snprintf(name, sizeof(name), "fd/%d", fd);
	ret = proc_readlink(f->pid, name, link, sizeof(link));
	snprintf(path, sizeof(path), "/proc/%d/fd/%d", f->pid, fd);
	if (ret || stat(path, &p.st) < 0) {
		ret = ret ? ret : -errno;
		pr_err("process %d fd %d: %s: %s", f->pid, fd, path, strerror(-ret));
		return ret;
	}
	ret = read_fdinfo(f->pid, fd, &fdinfo, &p.pos, &flags);
	if (ret)
		return ret;
	p.fdinfo = fdinfo;
	p.flags = flags & ~(uint32_t)O_CLOEXEC;
	df = find_shared(tab, f->pid, fd, &p.st);
	if (df && df->pid != f->pid && df->e->reg && df->e->reg->proc_self &&
	    !is_ancestor(df->pid, f->pid)) {
		pr_err("dump: process %d fd %d: %s: a /proc file of process %d, which is not its "
		       "ancestor: cannot be restored faithfully: refused", f->pid, fd, link, df->pid);
		ret = -EOPNOTSUPP;
	} else if (df)
		ret = fd_desc_dump(&p, df->e, false); /* this process's POSIX locks */
	else
		ret = add_file(tab, &p, imgs, &df);
	if (!ret)
		ret = add_fd(f, fd, df->e->id, (flags & O_CLOEXEC) ? FD_CLOEXEC : 0);
	if (!ret)
		pr_debug("process %d fd %d: file %u %s flags 0%o", f->pid, fd, df->e->id, link,
			 flags);
	probe_fini(&p);
	free(fdinfo);
	return ret;
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

/* st_dev, st_ino and birth time of /proc/PID/NAME (cwd, root). */
static int dir_was(pid_t pid, const char *name, struct dump_dir *d)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
	if (stat(path, &st))
		return -errno;
	d->dev = (uint64_t)st.st_dev;
	d->ino = (uint64_t)st.st_ino;
	d->has_btime = as_owner_btime(AT_FDCWD, path, &d->btime_ns);
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
	if (!ret)
		ret = dir_was(f->pid, "cwd", &f->cwd_was) ?: dir_was(f->pid, "root", &f->root_was);
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

int files_collect(struct files_dump *f, struct files_table *tab, pid_t pid,
		  struct dump_imgs *imgs)
{
	size_t nr;
	int *fds, ret;

	memset(f, 0, sizeof(*f));
	f->pid = pid;
	ret = list_fds(pid, &fds, &nr);
	for (size_t i = 0; !ret && i < nr; i++)
		ret = dump_one_fd(f, tab, fds[i], imgs);
	free(fds);
	if (ret == -ENOMEM)
		pr_err("process %d: out of memory listing its files", pid);
	if (!ret)
		ret = collect_fs(f);
	return ret;
}

static int write_files(const struct files_table *tab, struct dump_imgs *imgs)
{
	const ProtobufCMessage **msgs = calloc(tab->nr + 1, sizeof(*msgs));
	int ret;

	if (!msgs) {
		pr_err("writing files.img: %s", strerror(ENOMEM));
		return -ENOMEM;
	}
	for (size_t i = 0; i < tab->nr; i++)
		msgs[i] = &tab->files[i].e->base;
	ret = dump_img_write(imgs, "files.img", LZ_IMG_FILES, msgs, tab->nr);
	free(msgs);
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
		fe[i].file_id = f->fds[i].file_id;
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
	e.has_cwd_dev = e.has_cwd_ino = e.has_root_dev = e.has_root_ino = true;
	e.cwd_dev = f->cwd_was.dev;
	e.cwd_ino = f->cwd_was.ino;
	e.root_dev = f->root_was.dev;
	e.root_ino = f->root_was.ino;
	e.has_cwd_btime_ns = f->cwd_was.has_btime;
	e.cwd_btime_ns = f->cwd_was.btime_ns;
	e.has_root_btime_ns = f->root_was.has_btime;
	e.root_btime_ns = f->root_was.btime_ns;
	snprintf(name, sizeof(name), "fs-%d.img", f->img_pid);
	return dump_img_write_one(imgs, name, LZ_IMG_FS, &e.base);
}

int files_write(const struct files_table *tab, struct files_dump *const *fs, size_t n,
		struct dump_imgs *imgs)
{
	/* Pipe ends and epoll sets need the whole tree to be checked. */
	int ret = fd_pipe_dump_check(tab) ?: fd_epoll_dump_check(tab, fs, n);

	if (!ret)
		ret = write_files(tab, imgs);
	for (size_t k = 0; !ret && k < n; k++) {
		ret = write_fdinfo(fs[k], imgs);
		if (!ret)
			ret = write_fs(fs[k], imgs);
	}
	return ret;
}

void files_fini(struct files_dump *f)
{
	free(f->fds);
	f->fds = NULL;
	f->nr_fds = 0;
}

int files_finish(struct files_table *tab)
{
	for (size_t i = 0; i < nr_fd_kinds; i++) {
		int ret = fd_kinds[i]->finish ? fd_kinds[i]->finish(&tab->ctx) : 0;

		if (ret)
			return ret;
	}
	return 0;
}

void files_table_fini(struct files_table *tab)
{
	for (size_t i = 0; i < nr_fd_kinds; i++)
		if (fd_kinds[i]->dump_fini)
			fd_kinds[i]->dump_fini(&tab->ctx);
	for (size_t i = 0; i < tab->nr; i++)
		protobuf_c_message_free_unpacked(&tab->files[i].e->base, NULL);
	free(tab->files);
	tab->files = NULL;
	tab->nr = 0;
}
