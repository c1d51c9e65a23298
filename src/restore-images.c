/*
 * restore-images.c - read every image of a dump and check it is whole.
 *
 * Order: whose images these are (restore-trust.h: the directory, the
 * directories above it, every image file in it), then inventory (format
 * version, machine), then every file it lists
 * (framing and checksums), then the messages restore needs, then the
 * semantic checks of restore-verify.c. Nothing is created before all of it
 * passed; each failure is one line naming the file and what is wrong.
 */
#include <dirent.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "image.h"
#include "log.h"
#include "plugin.h"
#include "restore-images.h"
#include "restore-ipcns.h"
#include "restore-verify.h"

/* Logs the one line and passes the error on. */
static int img_fail(const char *name, int ret, const char *why)
{
	pr_err("%s: %s", name, why ? why : strerror(-ret));
	return ret;
}

static void img_name(char *buf, size_t len, enum lz_img_kind kind, uint32_t pid)
{
	snprintf(buf, len, "%s-%u.img", img_kind_name(kind), pid);
}

const ImageFile *rst_inv_file(const struct rst_images *im, const char *name)
{
	for (size_t i = 0; i < im->inv->n_files; i++)
		if (!strcmp(im->inv->files[i]->name, name))
			return im->inv->files[i];
	return NULL;
}

/* A file restore needs must be part of the dump, not a stray left in DIR. */
static int need_listed(const struct rst_images *im, const char *name)
{
	char why[128];

	if (rst_inv_file(im, name))
		return 0;
	snprintf(why, sizeof(why), "does not list %s, which restore needs", name);
	return img_fail("inventory.img", -EBADMSG, why);
}

/*
 * Open NAME for reading (img_open_file: no symlink, no FIFO or device, no
 * blocking) and check its owner and mode on the open file. Returns the fd
 * with *st filled, or logs one line and returns -errno.
 */
static int open_image(struct rst_images *im, const char *name, struct stat *st)
{
	const char *why = NULL;
	char tw[256];
	int fd, ret;

	fd = img_open_file(im->dirfd, name, st, &why);
	if (fd < 0)
		return img_fail(name, fd, why);
	ret = rst_trust_file(im->trust, st, tw, sizeof(tw));
	if (ret) {
		close(fd);
		return img_fail(name, ret, tw);
	}
	return fd;
}

/* open_image + read and verify the framing of the whole file. */
static int read_image(struct rst_images *im, const char *name, enum lz_img_kind kind,
		      struct img_reader *r)
{
	struct stat st;
	int fd, ret;

	fd = open_image(im, name, &st);
	if (fd < 0)
		return fd;
	ret = img_reader_from_fd(r, fd, &st, name, kind);
	close(fd);
	if (ret)
		return img_fail(name, ret, r->why);
	return 0;
}

/*
 * Open and verify NAME, a file inventory.img lists: framing, the dump id,
 * and the size and checksum the inventory recorded. What the caller then
 * decodes is exactly what was checked (the reader holds the bytes).
 */
static int open_listed(struct rst_images *im, const char *name, enum lz_img_kind kind,
		       struct img_reader *r)
{
	const ImageFile *f = rst_inv_file(im, name);
	int ret;

	/* Verified by check_listed and not taken yet: those very bytes. */
	for (size_t i = 0; im->listed && i < im->inv->n_files; i++) {
		struct img_reader *k = &im->listed[i];

		if (k->data && k->kind == kind && !strcmp(im->inv->files[i]->name, name)) {
			*r = *k;
			r->why = NULL; /* may point into K's buffer */
			memset(k, 0, sizeof(*k));
			return 0;
		}
	}

	if (!f) {
		char why[128];

		snprintf(why, sizeof(why), "does not list %s, which restore needs", name);
		return img_fail("inventory.img", -EBADMSG, why);
	}
	ret = read_image(im, name, kind, r);
	if (ret)
		return ret;
	ret = img_reader_check_id(r, &im->id);
	if (!ret && (r->size != f->size || r->crc != f->crc)) {
		r->why = "does not match the size and checksum inventory.img lists for it";
		ret = -ESTALE;
	}
	if (ret) {
		img_fail(name, ret, r->why);
		img_reader_close(r);
	}
	return ret;
}

static int load_one(struct rst_images *im, enum lz_img_kind kind, const char *name,
		    ProtobufCMessage **out)
{
	struct img_reader r;
	int ret;

	ret = open_listed(im, name, kind, &r);
	if (ret)
		return ret;
	if (r.nr_entries != 1) {
		r.why = "expected exactly one entry";
		ret = -EBADMSG;
	} else {
		ret = img_reader_next(&r, img_kind_desc(kind), out);
	}
	if (ret)
		img_fail(name, ret, r.why);
	img_reader_close(&r);
	return ret;
}

/* Every message of a file, all of one type. */
static int load_all(struct rst_images *im, enum lz_img_kind kind, const char *name,
		    ProtobufCMessage ***out, size_t *nr)
{
	ProtobufCMessage **v;
	struct img_reader r;
	size_t n = 0;
	int ret;

	ret = open_listed(im, name, kind, &r);
	if (ret)
		return ret;
	v = calloc(r.nr_entries + 1, sizeof(*v));
	if (!v) {
		img_reader_close(&r);
		return img_fail(name, -ENOMEM, NULL);
	}
	while ((ret = img_reader_next(&r, img_kind_desc(kind), &v[n])) == 0)
		n++;
	*out = v;
	*nr = n;
	if (ret != -ENODATA)
		ret = img_fail(name, ret, r.why);
	else
		ret = 0;
	img_reader_close(&r);
	return ret;
}

void rst_images_free_all(ProtobufCMessage **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(v[i], NULL);
	free(v);
}

int rst_images_load_all(const struct rst_images *im, enum lz_img_kind kind, const char *name,
			ProtobufCMessage ***out, size_t *nr)
{
	/* Reads only: the directory, the trust rules and the inventory. */
	return load_all((struct rst_images *)im, kind, name, out, nr);
}

static void free_all(ProtobufCMessage **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(v[i], NULL);
	free(v);
}

static int check_inventory(struct rst_images *im)
{
	const InventoryEntry *inv = im->inv;
	struct utsname u;
	char why[160];
	int ret;

	if (inv->format_version != LZ_IMG_FORMAT_VERSION) {
		snprintf(why, sizeof(why), "format version %u, this lazarus reads %u",
			 inv->format_version, LZ_IMG_FORMAT_VERSION);
		return img_fail("inventory.img", -EPROTO, why);
	}
	if (strcmp(inv->arch, "x86_64") || inv->page_size != LZ_PAGE_SIZE) {
		snprintf(why, sizeof(why), "dumped on %s with %u-byte pages, this is x86_64/4096",
			 inv->arch, inv->page_size);
		return img_fail("inventory.img", -EOPNOTSUPP, why);
	}
	ret = plg_check_cpu(inv->xsave_size, inv->xfeatures, why, sizeof(why));
	if (ret)
		return img_fail("inventory.img", ret, why);
	if (inv->has_pid_ns && inv->pid_ns != PID_NS_KIND__PIDNS_DUMPER &&
	    inv->pid_ns != PID_NS_KIND__PIDNS_ROOT_INIT) {
		snprintf(why, sizeof(why), "unknown pid namespace kind %d", (int)inv->pid_ns);
		return img_fail("inventory.img", -EBADMSG, why);
	}
	if (inv->has_mnt_ns && inv->mnt_ns != MNT_NS_KIND__MNTNS_DUMPER &&
	    inv->mnt_ns != MNT_NS_KIND__MNTNS_PROC) {
		snprintf(why, sizeof(why), "unknown mount namespace kind %d", (int)inv->mnt_ns);
		return img_fail("inventory.img", -EBADMSG, why);
	}
	if (inv->has_ipc_ns && inv->ipc_ns != IPC_NS_KIND__IPCNS_DUMPER &&
	    inv->ipc_ns != IPC_NS_KIND__IPCNS_OWN) {
		snprintf(why, sizeof(why), "unknown IPC namespace kind %d", (int)inv->ipc_ns);
		return img_fail("inventory.img", -EBADMSG, why);
	}
	im->ipc_own = inv->has_ipc_ns && inv->ipc_ns == IPC_NS_KIND__IPCNS_OWN;
	if (im->ipc_own != (inv->ipc != NULL))
		return img_fail("inventory.img", -EBADMSG,
				"IPC sysctls without an IPC namespace of its own, or the reverse");
	if (inv->ipc && (inv->ipc->n_sem != 4 || !inv->ipc->shmmni ||
			 inv->ipc->shmmni > RST_IPC_MNI_MAX || inv->ipc->msgmni > RST_IPC_MNI_MAX ||
			 inv->ipc->shm_next_id < -1))
		return img_fail("inventory.img", -EBADMSG, "IPC sysctls out of range");
	if (inv->n_msg_queues && !im->ipc_own)
		return img_fail("inventory.img", -EBADMSG,
				"SysV message queues without an IPC namespace of its own");
	if (im->ipc_own && rst_ipcns_check(inv, why, sizeof(why)))
		return img_fail("inventory.img", -EBADMSG, why);
	im->root_init = inv->has_pid_ns && inv->pid_ns == PID_NS_KIND__PIDNS_ROOT_INIT;
	im->mnt_proc = inv->has_mnt_ns && inv->mnt_ns == MNT_NS_KIND__MNTNS_PROC;
	if (im->mnt_proc && !im->root_init)
		return img_fail("inventory.img", -EBADMSG,
				"a mount namespace with its own /proc, but no pid namespace of its "
				"own");
	if (uname(&u) == 0 && strcmp(u.release, inv->kernel_release))
		pr_warn("dumped on kernel %s, restoring on %s: the vdso is assumed identical",
			inv->kernel_release, u.release);
	return 0;
}

/* The verified readers no loader took. */
static void free_listed(struct rst_images *im)
{
	for (size_t i = 0; im->listed && i < im->inv->n_files; i++)
		img_reader_close(&im->listed[i]);
	free(im->listed);
	im->listed = NULL;
}

/*
 * Framing and checksums of every listed file, before anything is decoded;
 * pages files are checked later. The verified readers are kept for the
 * loaders (im->listed): each file is read once.
 */
static int check_listed(struct rst_images *im)
{
	struct img_reader *kept = calloc(im->inv->n_files + 1, sizeof(*kept));

	if (!kept)
		return img_fail("inventory.img", -ENOMEM, NULL);
	for (size_t i = 0; i < im->inv->n_files; i++) {
		const char *name = im->inv->files[i]->name;
		enum lz_img_kind kind;
		int ret;

		if (strchr(name, '/') || img_kind_from_name(name, &kind) ||
		    kind == LZ_IMG_INVENTORY)
			ret = img_fail("inventory.img", -EBADMSG, "lists a file that is no image");
		else if (kind == LZ_IMG_PAGES)
			continue; /* opened once, in open_pages(), and checked from that fd */
		else
			ret = open_listed(im, name, kind, &kept[i]);
		if (ret) {
			for (size_t j = 0; j < i; j++)
				img_reader_close(&kept[j]);
			free(kept);
			return ret;
		}
	}
	im->listed = kept;
	return 0;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Thread ids: at most what the restorer takes, each in range and listed once. */
static int check_threads(const PstreeEntry *e)
{
	char why[128];
	uint32_t *s;
	int ret = 0;

	if (e->n_threads > LZ_BLOB_MAX_THREADS) {
		snprintf(why, sizeof(why), "process %u has %zu threads, at most %d can be restored",
			 e->pid, e->n_threads, LZ_BLOB_MAX_THREADS);
		return img_fail("pstree.img", -EOPNOTSUPP, why);
	}
	s = malloc(e->n_threads * sizeof(*s));
	if (!s)
		return img_fail("pstree.img", -ENOMEM, NULL);
	memcpy(s, e->threads, e->n_threads * sizeof(*s));
	qsort(s, e->n_threads, sizeof(*s), cmp_u32);
	for (size_t i = 0; !ret && i < e->n_threads; i++) {
		if (s[i] < 1 || s[i] > (1U << 22))
			snprintf(why, sizeof(why), "process %u: thread %u out of range", e->pid, s[i]);
		else if (i && s[i] == s[i - 1])
			snprintf(why, sizeof(why), "process %u: thread %u listed twice", e->pid, s[i]);
		else
			continue;
		ret = img_fail("pstree.img", -EBADMSG, why);
	}
	free(s);
	return ret;
}

static int pstree_fail(uint32_t pid, int ret, const char *fmt, ...) __printf(3, 4);

/* "pstree.img: process PID: <why>" */
static int pstree_fail(uint32_t pid, int ret, const char *fmt, ...)
{
	char why[200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	pr_err("pstree.img: process %u: %s", pid, why);
	return ret;
}

/* One entry on its own: pid range, threads, zombie and stop fields. */
static int check_entry(const PstreeEntry *e)
{
	if (e->pid < 1 || e->pid > (1U << 22))
		return img_fail("pstree.img", -EBADMSG, "pid out of range");
	if (e->zombie) {
		if (e->n_threads > 1 || (e->n_threads && e->threads[0] != e->pid))
			return pstree_fail(e->pid, -EBADMSG, "a zombie with threads");
		if (e->stopped)
			return pstree_fail(e->pid, -EBADMSG, "a zombie cannot be stopped");
		return 0;
	}
	if (e->n_threads < 1 || e->threads[0] != e->pid)
		return pstree_fail(e->pid, -EBADMSG, "its leader is not its first thread");
	if (e->stopped && (e->stop_signal < 1 || e->stop_signal > 64))
		return pstree_fail(e->pid, -EBADMSG, "stopped by signal %u", e->stop_signal);
	return check_threads(e);
}

/*
 * The shape of the tree (restore-child.c creates it): the root first, every
 * other process after its parent, no pid twice, a zombie has no children
 * and is not the root. Sessions and groups are restorable only as
 * restore-child.c can build them: a process leads its session or is in its
 * parent's; it leads its group, is in its parent's or in the group of a
 * process of the tree that leads it in the same session, or in a group
 * whose leader is gone, in a session led by the tree (add_group).
 */
/*
 * E's group has no leader in the dump (it exited): a helper will hold its
 * pid, made by the leader of E's session, which must be in the dump.
 * 0 when it can be (once per group); -1 when not.
 */
static int add_group(struct rst_images *im, const PstreeEntry *e)
{
	const struct rst_task *s = rst_task_by_pid(im, e->sid);

	if (!s || s->pstree->sid != s->pid || s->pstree->zombie || !e->pgid ||
	    e->pgid > (1U << 22))
		return -1;
	for (size_t i = 0; i < im->nr_groups; i++)
		if (im->groups[i].pgid == e->pgid)
			return im->groups[i].sid == e->sid ? 0 : -1;
	if (im->nr_groups == RST_MAX_TASKS)
		return -1;
	im->groups[im->nr_groups++] = (struct rst_group){ e->pgid, e->sid };
	return 0;
}

static int link_tree(struct rst_images *im)
{
	for (size_t i = 0; i < im->nr_tasks; i++) {
		struct rst_task *t = &im->tasks[i];
		const PstreeEntry *e = t->pstree;
		const struct rst_task *q, *g;

		for (size_t j = 0; j < i; j++)
			if (im->tasks[j].pid == t->pid)
				return pstree_fail(t->pid, -EBADMSG, "listed twice");
		if (i == 0) {
			if (e->zombie)
				return pstree_fail(t->pid, -EOPNOTSUPP,
						   "the root is a zombie: nothing to restore");
			continue;
		}
		q = NULL;
		for (size_t j = 0; j < i; j++)
			if (im->tasks[j].pid == e->ppid)
				q = &im->tasks[j], t->parent = (int)j;
		if (!q)
			return pstree_fail(t->pid, -EBADMSG,
					   "its parent %u is not listed before it", e->ppid);
		if (q->pstree->zombie)
			return pstree_fail(t->pid, -EBADMSG, "its parent %u is a zombie", q->pid);
		if (e->sid != t->pid && e->sid != q->pstree->sid)
			return pstree_fail(t->pid, -EOPNOTSUPP,
					   "in session %u, its parent %u in %u: not restorable yet",
					   e->sid, q->pid, q->pstree->sid);
		if (e->pgid == t->pid || e->pgid == q->pstree->pgid)
			continue;
		g = rst_task_by_pid(im, e->pgid);
		if (!g && !add_group(im, e))
			continue;
		if (!g || g->pstree->pgid != g->pid || g->pstree->sid != e->sid)
			return pstree_fail(t->pid, -EOPNOTSUPP,
					   "in group %u, whose leader is not in its session in the "
					   "dump: not restorable yet",
					   e->pgid);
	}
	return 0;
}

static int check_pstree(PstreeEntry *const *v, size_t n)
{
	if (n < 1)
		return img_fail("pstree.img", -EBADMSG, "no process");
	if (n > RST_MAX_TASKS) {
		char why[96];

		snprintf(why, sizeof(why), "%zu processes, more than the %u restore takes", n,
			 RST_MAX_TASKS);
		return img_fail("pstree.img", -EOPNOTSUPP, why);
	}
	for (size_t i = 0; i < n; i++) {
		int ret = check_entry(v[i]);

		if (ret)
			return ret;
	}
	return 0;
}

/*
 * The root as inventory.img names it; PIDNS_ROOT_INIT: pid 1 of its pid
 * namespace, so it, and no process of lazarus's, is restored as pid 1.
 */
static int check_root_pid(const struct rst_images *im)
{
	char why[128];

	if (im->inv->root_pid != im->pstree[0]->pid) {
		snprintf(why, sizeof(why), "the root is %u, pstree.img's first process is %u",
			 im->inv->root_pid, im->pstree[0]->pid);
		return img_fail("inventory.img", -EBADMSG, why);
	}
	if (im->root_init && im->pstree[0]->pid != 1) {
		snprintf(why, sizeof(why), "the root was pid 1 of its pid namespace, but is %u "
			 "here", im->pstree[0]->pid);
		return img_fail("pstree.img", -EBADMSG, why);
	}
	if (im->root_init && im->pstree[0]->ppid != 0) {
		snprintf(why, sizeof(why), "the root was pid 1 of its pid namespace, but has a "
			 "parent %u there", im->pstree[0]->ppid);
		return img_fail("pstree.img", -EBADMSG, why);
	}
	return 0;
}

static int load_pstree(struct rst_images *im)
{
	ProtobufCMessage **v = NULL;
	size_t n = 0;
	int ret = load_all(im, LZ_IMG_PSTREE, "pstree.img", &v, &n);

	im->pstree = (PstreeEntry **)v;
	im->nr_pstree = n;
	if (!ret)
		ret = check_pstree(im->pstree, n);
	if (ret)
		return ret;
	im->tasks = calloc(n, sizeof(*im->tasks));
	if (!im->tasks)
		return img_fail("pstree.img", -ENOMEM, NULL);
	im->nr_tasks = n;
	for (size_t i = 0; i < n; i++) {
		im->tasks[i].pid = im->pstree[i]->pid;
		im->tasks[i].pstree = im->pstree[i];
		im->tasks[i].parent = -1;
		im->tasks[i].pages_fd = -1;
	}
	ret = check_root_pid(im);
	return ret ? ret : link_tree(im);
}

/* pagemap-<pid>.img: one pagemap_head, then pagemap_entry runs. */
static int load_pagemap(struct rst_images *im, struct rst_task *t)
{
	struct img_reader r;
	char name[64];
	ProtobufCMessage *m;
	int ret;

	img_name(name, sizeof(name), LZ_IMG_PAGEMAP, t->pid);
	ret = open_listed(im, name, LZ_IMG_PAGEMAP, &r);
	if (ret)
		return ret;
	ret = img_reader_next(&r, &pagemap_head__descriptor, &m);
	if (ret) {
		ret = img_fail(name, ret == -ENODATA ? -EBADMSG : ret,
			       ret == -ENODATA ? "no pagemap head" : r.why);
		goto out_close;
	}
	t->pm_head = (PagemapHead *)m;
	t->pm = calloc(r.nr_entries + 1, sizeof(*t->pm));
	if (!t->pm) {
		ret = img_fail(name, -ENOMEM, NULL);
		goto out_close;
	}
	while ((ret = img_reader_next(&r, &pagemap_entry__descriptor, &m)) == 0)
		t->pm[t->nr_pm++] = (PagemapEntry *)m;
	ret = ret == -ENODATA ? 0 : img_fail(name, ret, r.why);
out_close:
	img_reader_close(&r);
	return ret;
}

/* core-<tid>.img of every thread, in pstree order. */
static int load_cores(struct rst_images *im, struct rst_task *t)
{
	char name[64];
	int ret;

	t->cores = calloc(t->pstree->n_threads + 1, sizeof(*t->cores));
	if (!t->cores)
		return img_fail("pstree.img", -ENOMEM, NULL);
	for (size_t i = 0; i < t->pstree->n_threads; i++) {
		img_name(name, sizeof(name), LZ_IMG_CORE, t->pstree->threads[i]);
		ret = load_one(im, LZ_IMG_CORE, name, (ProtobufCMessage **)&t->cores[i]);
		if (ret)
			return ret;
		t->nr_cores++;
	}
	return 0;
}

static int load_task_images(struct rst_images *im, struct rst_task *t)
{
	char name[64];
	int ret;

	ret = load_cores(im, t);
	if (ret)
		return ret;
	img_name(name, sizeof(name), LZ_IMG_TASK, t->pid);
	ret = load_one(im, LZ_IMG_TASK, name, (ProtobufCMessage **)&t->task);
	if (ret)
		return ret;
	img_name(name, sizeof(name), LZ_IMG_SIGACTS, t->pid);
	ret = load_all(im, LZ_IMG_SIGACTS, name, (ProtobufCMessage ***)&t->sigacts,
		       &t->nr_sigacts);
	if (ret)
		return ret;
	img_name(name, sizeof(name), LZ_IMG_MM, t->pid);
	ret = load_one(im, LZ_IMG_MM, name, (ProtobufCMessage **)&t->mm);
	if (ret)
		return ret;
	ret = load_pagemap(im, t);
	if (ret)
		return ret;
	img_name(name, sizeof(name), LZ_IMG_FS, t->pid);
	ret = load_one(im, LZ_IMG_FS, name, (ProtobufCMessage **)&t->fs);
	if (ret)
		return ret;
	img_name(name, sizeof(name), LZ_IMG_FDINFO, t->pid);
	return load_all(im, LZ_IMG_FDINFO, name, (ProtobufCMessage ***)&t->fdinfo,
			&t->nr_fdinfo);
}

static int load_tasks(struct rst_images *im)
{
	int ret;

	for (size_t i = 0; i < im->nr_tasks; i++) {
		if (rst_task_zombie(&im->tasks[i]))
			continue; /* no images: it only exits again */
		ret = load_task_images(im, &im->tasks[i]);
		if (ret)
			return ret;
	}
	return load_all(im, LZ_IMG_FILES, "files.img", (ProtobufCMessage ***)&im->files,
			&im->nr_files);
}

/*
 * Before anything is read: every image-named entry of the directory is a
 * regular file restore trusts. Each file is checked again, on the open
 * file, when it is read; this pass makes a foreign file fail the restore
 * before a single byte of any image was believed.
 */
static int trust_scan(struct rst_images *im)
{
	struct dirent *de;
	char why[256];
	int fd, ret = 0;
	DIR *d;

	fd = openat(im->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		pr_err("images directory: %s", strerror(-ret));
		return ret;
	}
	while (!ret && (de = readdir(d))) {
		size_t n = strlen(de->d_name);
		enum lz_img_kind kind;
		const char *tw;
		struct stat st;

		if (n < 5 || strcmp(de->d_name + n - 4, ".img") ||
		    img_kind_from_name(de->d_name, &kind))
			continue;
		if (fstatat(im->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			ret = img_fail(de->d_name, -errno, NULL);
			break;
		}
		tw = img_file_type_why(st.st_mode);
		if (tw)
			ret = img_fail(de->d_name, -EINVAL, tw);
		else if ((ret = rst_trust_file(im->trust, &st, why, sizeof(why))))
			img_fail(de->d_name, ret, why);
	}
	closedir(d);
	return ret;
}

static int cmp_file_id(const void *a, const void *b)
{
	uint32_t x = (*(const FileEntry *const *)a)->id, y = (*(const FileEntry *const *)b)->id;

	return x < y ? -1 : x > y;
}

/* files.img by id, for rst_file_by_id's binary search; a repeated id is refused. */
static int index_files(struct rst_images *im)
{
	char why[96];

	im->files_by_id = malloc((im->nr_files + 1) * sizeof(*im->files_by_id));
	if (!im->files_by_id)
		return img_fail("files.img", -ENOMEM, NULL);
	memcpy(im->files_by_id, im->files, im->nr_files * sizeof(*im->files));
	qsort(im->files_by_id, im->nr_files, sizeof(*im->files_by_id), cmp_file_id);
	for (size_t i = 1; i < im->nr_files; i++) {
		if (im->files_by_id[i]->id == im->files_by_id[i - 1]->id) {
			snprintf(why, sizeof(why), "file %u listed twice", im->files_by_id[i]->id);
			return img_fail("files.img", -EBADMSG, why);
		}
	}
	return 0;
}

/* The pages file: opened once here; verified (restore-verify.c) and read from this fd. */
static int open_pages(struct rst_images *im, struct rst_task *t)
{
	struct stat st;
	int ret;

	img_name(t->pages_name, sizeof(t->pages_name), LZ_IMG_PAGES, t->pid);
	ret = need_listed(im, t->pages_name);
	if (ret)
		return ret;
	ret = open_image(im, t->pages_name, &st);
	if (ret < 0)
		return ret;
	t->pages_fd = ret;
	return 0;
}

/*
 * shmem.img when the dump has one, and each object's pages file, opened
 * once like the processes' (restore-shmem.c verifies and reads them).
 */
static int load_shmem(struct rst_images *im)
{
	char name[64];
	int ret;

	if (!rst_inv_file(im, "shmem.img"))
		return 0;
	ret = load_all(im, LZ_IMG_SHMEM, "shmem.img", (ProtobufCMessage ***)&im->shmem,
		       &im->nr_shmem);
	if (ret)
		return ret;
	im->shmem_pages_fd = malloc((im->nr_shmem + 1) * sizeof(int));
	if (!im->shmem_pages_fd)
		return img_fail("shmem.img", -ENOMEM, NULL);
	for (size_t i = 0; i < im->nr_shmem; i++)
		im->shmem_pages_fd[i] = -1;
	for (size_t i = 0; i < im->nr_shmem; i++) {
		struct stat st;

		snprintf(name, sizeof(name), "pages-shmem-%u.img", im->shmem[i]->id);
		ret = need_listed(im, name);
		if (ret)
			return ret;
		ret = open_image(im, name, &st);
		if (ret < 0)
			return ret;
		im->shmem_pages_fd[i] = ret;
	}
	return 0;
}

static int open_all_pages(struct rst_images *im)
{
	for (size_t i = 0; i < im->nr_tasks; i++) {
		int ret = rst_task_zombie(&im->tasks[i]) ? 0 : open_pages(im, &im->tasks[i]);

		if (ret)
			return ret;
	}
	return 0;
}

int rst_images_load(struct rst_images *im, const char *dir, bool lazy,
		    const struct rst_trust *trust)
{
	struct img_reader r;
	char why[1024];
	int ret;

	memset(im, 0, sizeof(*im));
	im->lazy = lazy;
	im->trust = trust;
	im->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (im->dirfd < 0) {
		ret = -errno;
		pr_err("images directory %s: %s", dir, strerror(errno));
		return ret;
	}
	ret = rst_trust_dir(trust, im->dirfd, dir, why, sizeof(why));
	if (ret) {
		pr_err("%s", why);
		return ret;
	}
	ret = trust_scan(im);
	if (ret)
		return ret;
	ret = read_image(im, "inventory.img", LZ_IMG_INVENTORY, &r);
	if (ret)
		return ret;
	if (r.nr_entries != 1) {
		img_reader_close(&r);
		return img_fail("inventory.img", -EBADMSG, "expected exactly one entry");
	}
	ret = img_reader_next(&r, &inventory_entry__descriptor, (ProtobufCMessage **)&im->inv);
	img_reader_close(&r);
	if (ret)
		return img_fail("inventory.img", ret, r.why);
	im->id = r.dump_id;
	ret = check_inventory(im);
	if (!ret)
		ret = check_listed(im);
	if (!ret)
		ret = load_pstree(im);
	if (!ret)
		ret = load_tasks(im);
	if (!ret)
		ret = index_files(im);
	if (!ret)
		ret = open_all_pages(im);
	if (!ret)
		ret = load_shmem(im);
	free_listed(im); /* the loaders are done with them */
	if (!ret)
		ret = rst_verify(im);
	return ret;
}

const struct rst_task *rst_task_by_pid(const struct rst_images *im, uint32_t pid)
{
	for (size_t i = 0; i < im->nr_tasks; i++)
		if (im->tasks[i].pid == pid)
			return &im->tasks[i];
	return NULL;
}

const FileEntry *rst_file_by_id(const struct rst_images *im, uint32_t id)
{
	size_t lo = 0, hi = im->nr_files;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t m = im->files_by_id[mid]->id;

		if (m == id)
			return im->files_by_id[mid];
		if (m < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

#define FREE_MSG(m)                                                                 \
	do {                                                                        \
		if (m)                                                              \
			protobuf_c_message_free_unpacked((ProtobufCMessage *)(m), NULL); \
		(m) = NULL;                                                         \
	} while (0)

static void task_free(struct rst_task *t)
{
	FREE_MSG(t->task);
	FREE_MSG(t->mm);
	FREE_MSG(t->pm_head);
	FREE_MSG(t->fs);
	free_all((ProtobufCMessage **)t->cores, t->nr_cores);
	free_all((ProtobufCMessage **)t->sigacts, t->nr_sigacts);
	free_all((ProtobufCMessage **)t->pm, t->nr_pm);
	free_all((ProtobufCMessage **)t->fdinfo, t->nr_fdinfo);
	t->cores = NULL;
	t->sigacts = NULL;
	t->pm = NULL;
	t->fdinfo = NULL;
	if (t->pages_fd >= 0)
		close(t->pages_fd);
	t->pages_fd = -1;
}

void rst_images_free(struct rst_images *im)
{
	if (im->inv)
		free_listed(im);
	for (size_t i = 0; i < im->nr_tasks; i++)
		task_free(&im->tasks[i]);
	free(im->tasks);
	im->tasks = NULL;
	im->nr_tasks = 0;
	FREE_MSG(im->inv);
	free_all((ProtobufCMessage **)im->pstree, im->nr_pstree);
	im->pstree = NULL;
	im->nr_pstree = 0;
	free_all((ProtobufCMessage **)im->files, im->nr_files);
	im->files = NULL;
	free(im->files_by_id);
	im->files_by_id = NULL;
	for (size_t i = 0; im->shmem_pages_fd && i < im->nr_shmem; i++)
		if (im->shmem_pages_fd[i] >= 0)
			close(im->shmem_pages_fd[i]);
	free(im->shmem_pages_fd);
	im->shmem_pages_fd = NULL;
	free_all((ProtobufCMessage **)im->shmem, im->nr_shmem);
	im->shmem = NULL;
	im->nr_shmem = 0;
	if (im->dirfd >= 0)
		close(im->dirfd);
	im->dirfd = -1;
}
