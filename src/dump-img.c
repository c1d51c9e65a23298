/*
 * dump-img.c - write image files into a staging directory, remember their
 * names, and commit them into the images directory or take them all back.
 *
 * Why a staging directory and per-file exchanges, not one atomic switch:
 * readers open the images by fixed names in DIR itself (inventory.img,
 * core-<pid>.img...), so the only single atomic operation that could switch
 * a whole dump is a rename of DIR, which needs DIR's parent (not ours to
 * check or write) and would carry off whatever else lives in DIR (logs,
 * the lazy-pages socket). Instead:
 *
 *  1. every new file is written and fsynced in DIR/.lazarus-new.<id>, a
 *     directory we just created (0700), so nothing in DIR changes while the
 *     expensive, failure-prone part runs (memory, disk full, a signal);
 *  2. commit: each new file but inventory.img is exchanged with its old
 *     namesake (renameat2 RENAME_EXCHANGE; a plain no-replace rename when
 *     there is none), so the old file lands in the staging directory; old
 *     files the new dump does not list are moved there too; then
 *     inventory.img is exchanged: that is the commit point. A reader that
 *     sees the new inventory sees only new files. In the short window of
 *     renames before it, the old inventory may meet new files: their dump
 *     id and checksum make restore refuse them by name, never mix them.
 *     Any failure in the window exchanges everything back, in reverse:
 *     DIR holds the old dump exactly as before;
 *  3. fsync DIR (before the target is killed), then remove the staging
 *     directory with the old files.
 * A crash (power loss, SIGKILL) in step 2 leaves a staging directory; the
 * next dump into DIR removes it (dump_imgs_init).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-img.h"
#include "inventory.pb-c.h"
#include "safe-file.h"

#define STATS_DUMP "stats-dump.json"

/* ------------------------------------------------------------ staging directory */

/*
 * Remove the files in staging directory NAME of DIRFD, then NAME itself.
 * FD is NAME opened, or -1 for the stage of an earlier dump: opened here,
 * refusing a symlink, a directory that is not ours or one a running dump
 * holds, and first rolled back (stage_roll_back). Subdirectories are never
 * entered: NAME is then left in place, with a warning. Returns 0 or -errno.
 */
static void stage_roll_back(int dirfd, const char *stage, int sfd);

static int stage_remove(int dirfd, const char *name, int fd)
{
	bool stale = fd < 0;
	struct dirent *de;
	struct stat st;
	int ret = 0;
	DIR *dir;

	if (fd >= 0) {
		fd = dup(fd);
	} else {
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		/* A dump still running holds the lock of its staging directory. */
		if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0) {
			close(fd);
			return -EBUSY;
		}
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || st.st_uid != geteuid()) {
		close(fd);
		return -EPERM;
	}
	if (stale)
		stage_roll_back(dirfd, name, fd);
	dir = fdopendir(fd);
	if (!dir) {
		close(fd);
		return -errno;
	}
	rewinddir(dir); /* a dup shares the offset of whoever read FD before */
	/* unlinkat removes a symlink itself, never what it points to. */
	while ((de = readdir(dir)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    unlinkat(fd, de->d_name, 0) < 0 && !ret)
			ret = -errno;
	closedir(dir);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && !ret)
		ret = -errno;
	return ret;
}

static bool is_stage_name(const char *n)
{
	size_t p = strlen(DUMP_STAGE_PREFIX);

	if (strncmp(n, DUMP_STAGE_PREFIX, p) || strlen(n) != p + LZ_DUMP_ID_HEX - 1)
		return false;
	for (n += p; *n; n++)
		if (!((*n >= '0' && *n <= '9') || (*n >= 'a' && *n <= 'f')))
			return false;
	return true;
}

/* The dump id in the header of file NAME of directory FD (a framed image or a pages file). */
static int header_id(int fd, const char *name, struct lz_dump_id *id)
{
	union {
		struct lz_img_hdr img;
		struct lz_pages_hdr pages;
	} h;
	enum lz_img_kind kind;
	struct stat st;
	int f, ret = 0;

	if (img_kind_from_name(name, &kind))
		return -EINVAL;
	f = openat(fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (f < 0)
		return -errno;
	if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode) || pread(f, &h, sizeof(h), 0) != sizeof(h))
		ret = -EINVAL;
	else
		*id = kind == LZ_IMG_PAGES ? h.pages.dump_id : h.img.dump_id;
	close(f);
	return ret;
}

/*
 * A dump killed in the middle of its commit (power loss, SIGKILL) left DIR
 * with the old inventory.img and some of its files already exchanged into
 * staging directory SFD, which still holds the new inventory.img (the
 * commit point was not reached). Put back every staged file that carries
 * the dump id of DIR's inventory: DIR then holds the previous dump whole
 * again. After the commit point there is nothing to put back: the stage
 * holds only old files and is removed.
 */
static void stage_roll_back(int dirfd, const char *stage, int sfd)
{
	struct lz_dump_id old, id;
	struct img_reader r;
	InventoryEntry *inv;
	struct dirent *de;
	int fd, nr = 0;
	DIR *dir;

	if (faccessat(sfd, "inventory.img", F_OK, AT_SYMLINK_NOFOLLOW))
		return;
	if (img_read_one(&r, dirfd, "inventory.img", LZ_IMG_INVENTORY,
			 &inventory_entry__descriptor, (ProtobufCMessage **)&inv))
		return; /* no previous dump to put back */
	old = r.dump_id;
	inventory_entry__free_unpacked(inv, NULL);
	fd = dup(sfd);
	dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rewinddir(dir);
	while ((de = readdir(dir))) {
		const char *n = de->d_name;

		if (!strcmp(n, "inventory.img") || header_id(sfd, n, &id) || !lz_dump_id_eq(&id, &old))
			continue;
		if (renameat2(sfd, n, dirfd, n, RENAME_EXCHANGE) &&
		    (errno != ENOENT || renameat2(sfd, n, dirfd, n, RENAME_NOREPLACE)))
			pr_warn_perror("%s: putting the previous dump's %s back", stage, n);
		else
			nr++;
	}
	closedir(dir);
	pr_warn("a dump was interrupted while committing: %d files of the previous dump put back from %s",
		nr, stage);
}

/*
 * ".<image name>.tmp": where lazarus before the staging directory wrote
 * each image, the pages file included; a crash left it behind, large.
 */
static bool is_old_tmp(const char *n)
{
	size_t len = strlen(n);
	char name[DUMP_IMG_NAME_MAX];
	enum lz_img_kind kind;

	if (n[0] != '.' || len < 9 || len - 5 >= sizeof(name) || strcmp(n + len - 4, ".tmp"))
		return false;
	memcpy(name, n + 1, len - 5);
	name[len - 5] = '\0';
	return strlen(name) > 4 && !strcmp(name + strlen(name) - 4, ".img") &&
	       !img_kind_from_name(name, &kind);
}

/* Leftovers of a dump that crashed: staging directories and temporaries of ours. */
static void remove_stale(int dirfd)
{
	struct dirent *de;
	DIR *dir;
	int fd;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dir) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(dir))) {
		struct stat st;
		int ret;

		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* Ours only: our names, our uid; unlinkat never follows a symlink. */
		if (is_old_tmp(de->d_name) && !S_ISDIR(st.st_mode) && st.st_uid == geteuid()) {
			if (!unlinkat(dirfd, de->d_name, 0))
				pr_info("removed %s, the leftover of an interrupted dump", de->d_name);
			continue;
		}
		/* Only directories are ours: anything else of that name is left alone. */
		if (!is_stage_name(de->d_name) || !S_ISDIR(st.st_mode))
			continue;
		ret = stage_remove(dirfd, de->d_name, -1);
		if (ret == -EBUSY)
			pr_warn("%s: another dump into this directory is running", de->d_name);
		else if (ret)
			pr_warn("leftover of an interrupted dump %s: not removed: %s", de->d_name,
				strerror(-ret));
		else
			pr_info("removed %s, the leftover of an interrupted dump", de->d_name);
	}
	closedir(dir);
	sf_remove_stale_tmps(dirfd, STATS_DUMP);
}

int dump_imgs_init(struct dump_imgs *d, int dirfd)
{
	char hex[LZ_DUMP_ID_HEX], why[SF_WHY_MAX];
	int ret;

	memset(d, 0, sizeof(*d));
	d->dirfd = dirfd;
	d->stagefd = -1;
	ret = lz_dump_id_new(&d->id);
	if (ret) {
		pr_err("drawing a dump id: %s", strerror(-ret));
		return ret;
	}
	remove_stale(dirfd);
	snprintf(d->stage, sizeof(d->stage), DUMP_STAGE_PREFIX "%s", lz_dump_id_hex(&d->id, hex));
	if (mkdirat(dirfd, d->stage, 0700) < 0) {
		ret = -errno;
		d->stage[0] = '\0';
		pr_err("creating the staging directory in the images directory: %s",
		       strerror(-ret));
		return ret;
	}
	d->stagefd = openat(dirfd, d->stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	ret = d->stagefd < 0 ? -errno : sf_dir_check(d->stagefd, 0, why);
	if (!ret && (fchmod(d->stagefd, 0700) < 0 || flock(d->stagefd, LOCK_EX | LOCK_NB) < 0))
		ret = -errno;
	if (ret) {
		pr_err("staging directory %s: %s", d->stage,
		       d->stagefd < 0 || ret != -EPERM ? strerror(-ret) : why);
		dump_imgs_remove(d);
		return ret;
	}
	return 0;
}

/* ------------------------------------------------------------ writing */

int dump_imgs_add(struct dump_imgs *d, const char *name, uint64_t size, uint32_t crc)
{
	struct dump_img_file *f;

	if (strlen(name) >= DUMP_IMG_NAME_MAX)
		return -ENAMETOOLONG;
	if (d->nr == d->cap) {
		size_t nc = d->cap ? d->cap * 2 : 16;
		struct dump_img_file *nf = realloc(d->files, nc * sizeof(*nf));

		if (!nf)
			return -ENOMEM;
		d->files = nf;
		d->cap = nc;
	}
	f = &d->files[d->nr++];
	snprintf(f->name, sizeof(f->name), "%s", name);
	f->size = size;
	f->crc = crc;
	return 0;
}

int dump_img_write(struct dump_imgs *d, const char *name, enum lz_img_kind kind,
		   const ProtobufCMessage *const *msgs, size_t n)
{
	struct img_writer w;
	int ret;

	ret = img_writer_open(&w, d->stagefd, name, kind, &d->id);
	for (size_t i = 0; !ret && i < n; i++)
		ret = img_writer_put(&w, msgs[i]);
	if (ret) {
		img_writer_abort(&w, d->stagefd);
		goto out_err;
	}
	ret = img_writer_close(&w, d->stagefd);
	if (ret)
		goto out_err;
	ret = dump_imgs_add(d, name, w.size, w.crc);
	if (ret)
		goto out_err;
	pr_debug("wrote %s (%zu entries)", name, n);
	return 0;

out_err:
	pr_err("writing image %s: %s", name, strerror(-ret));
	return ret;
}

int dump_img_write_one(struct dump_imgs *d, const char *name, enum lz_img_kind kind,
		       const ProtobufCMessage *msg)
{
	return dump_img_write(d, name, kind, &msg, 1);
}

/* ------------------------------------------------------------ commit */

enum step_kind {
	STEP_EXCHANGED, /* new and old swapped: the old one is in the stage */
	STEP_MOVED_IN,	/* new file moved into DIR, where there was none */
	STEP_REPLACED,	/* renamed over the old one (no exchange here): cannot undo */
	STEP_MOVED_OUT, /* an obsolete old file moved into the stage */
};

struct step {
	const char *name;
	enum step_kind kind;
};

struct commit {
	struct dump_imgs *d;
	struct step *steps;
	size_t nr;
	char **obsolete; /* old files the new dump does not list */
	size_t nr_obsolete;
};

static bool listed(const struct dump_imgs *d, const char *name)
{
	for (size_t i = 0; i < d->nr; i++)
		if (!strcmp(d->files[i].name, name))
			return true;
	return false;
}

/*
 * The files of the previous dump that this one does not list: from the
 * old inventory, names of our images only (no path, a known kind), so a
 * damaged or crafted inventory can make us move nothing but images. No
 * readable old inventory: nothing is obsolete.
 */
static int find_obsolete(struct commit *c)
{
	InventoryEntry *inv = NULL;
	struct img_reader r;
	int ret;

	ret = img_read_one(&r, c->d->dirfd, "inventory.img", LZ_IMG_INVENTORY,
			   &inventory_entry__descriptor, (ProtobufCMessage **)&inv);
	if (ret) {
		if (ret != -ENOENT)
			pr_debug("the old inventory.img is unreadable (%s): no old files to remove",
				 r.why ? r.why : strerror(-ret));
		return 0;
	}
	c->obsolete = calloc(inv->n_files + 1, sizeof(*c->obsolete));
	if (!c->obsolete) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (size_t i = 0; i < inv->n_files; i++) {
		const char *n = inv->files[i]->name;
		enum lz_img_kind kind;

		if (strchr(n, '/') || strlen(n) >= DUMP_IMG_NAME_MAX || img_kind_from_name(n, &kind) ||
		    kind == LZ_IMG_INVENTORY || listed(c->d, n))
			continue;
		c->obsolete[c->nr_obsolete] = strdup(n);
		if (!c->obsolete[c->nr_obsolete]) {
			ret = -ENOMEM;
			goto out_free;
		}
		c->nr_obsolete++;
	}
out_free:
	inventory_entry__free_unpacked(inv, NULL);
	if (ret)
		pr_err("reading the old inventory.img: %s", strerror(-ret));
	return ret;
}

/* What DIR holds at NAME must be a file we may replace: absent, regular or a symlink. */
static int check_target(const struct dump_imgs *d, const char *name)
{
	struct stat st;

	if (fstatat(d->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		pr_perror("images directory: %s", name);
		return -errno;
	}
	if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
		pr_err("images directory: %s is not a regular file: not replacing it", name);
		return -EEXIST;
	}
	return 0;
}

static int move_in(struct commit *c, const char *name)
{
	struct dump_imgs *d = c->d;
	struct step *s = &c->steps[c->nr];

	s->name = name;
	if (!renameat2(d->stagefd, name, d->dirfd, name, RENAME_EXCHANGE)) {
		s->kind = STEP_EXCHANGED;
	} else if (errno == ENOENT &&
		   !renameat2(d->stagefd, name, d->dirfd, name, RENAME_NOREPLACE)) {
		s->kind = STEP_MOVED_IN;
	} else if (errno == EINVAL && !renameat(d->stagefd, name, d->dirfd, name)) {
		/* A file system without RENAME_EXCHANGE: replace, and lose the undo. */
		s->kind = STEP_REPLACED;
	} else {
		pr_perror("moving %s into the images directory", name);
		return -errno;
	}
	c->nr++;
	return 0;
}

static int move_out(struct commit *c, const char *name)
{
	struct dump_imgs *d = c->d;

	if (renameat2(d->dirfd, name, d->stagefd, name, RENAME_NOREPLACE) < 0) {
		if (errno == ENOENT)
			return 0; /* already gone */
		pr_perror("moving the old %s out of the images directory", name);
		return -errno;
	}
	c->steps[c->nr].name = name;
	c->steps[c->nr++].kind = STEP_MOVED_OUT;
	return 0;
}

/* Undo the steps in reverse: DIR holds the old dump again. */
static void undo(struct commit *c)
{
	struct dump_imgs *d = c->d;

	while (c->nr) {
		const struct step *s = &c->steps[--c->nr];
		int r = 0;

		switch (s->kind) {
		case STEP_EXCHANGED:
			r = renameat2(d->stagefd, s->name, d->dirfd, s->name, RENAME_EXCHANGE);
			break;
		case STEP_MOVED_IN:
			r = renameat2(d->dirfd, s->name, d->stagefd, s->name, RENAME_NOREPLACE);
			break;
		case STEP_MOVED_OUT:
			r = renameat2(d->stagefd, s->name, d->dirfd, s->name, RENAME_NOREPLACE);
			break;
		case STEP_REPLACED:
			pr_warn("the old %s is lost: this file system cannot exchange files",
				s->name);
			break;
		}
		if (r < 0)
			pr_warn_perror("putting the old %s back", s->name);
	}
}

/*
 * For the tests: LAZARUS_TEST_COMMIT_FAIL=N makes the commit fail after N
 * moves (the undo runs), LAZARUS_TEST_COMMIT_CRASH=N kills lazarus there
 * (the next dump's stage_roll_back runs).
 */
static int test_hook(const struct commit *c)
{
	const char *fail = getenv("LAZARUS_TEST_COMMIT_FAIL");
	const char *crash = getenv("LAZARUS_TEST_COMMIT_CRASH");

	if (crash && (size_t)atoi(crash) == c->nr)
		kill(getpid(), SIGKILL);
	if (fail && (size_t)atoi(fail) == c->nr) {
		pr_err("committing the dump: %s (injected by LAZARUS_TEST_COMMIT_FAIL)",
		       strerror(EIO));
		return -EIO;
	}
	return 0;
}

static int commit_steps(struct commit *c)
{
	struct dump_imgs *d = c->d;
	size_t inv = d->nr - 1;
	int ret = 0;

	for (size_t i = 0; !ret && i < d->nr; i++)
		ret = check_target(d, d->files[i].name);
	for (size_t i = 0; !ret && i < c->nr_obsolete; i++)
		ret = check_target(d, c->obsolete[i]);
	for (size_t i = 0; !ret && i < inv; i++)
		if (!(ret = test_hook(c)))
			ret = move_in(c, d->files[i].name);
	for (size_t i = 0; !ret && i < c->nr_obsolete; i++)
		if (!(ret = test_hook(c)))
			ret = move_out(c, c->obsolete[i]);
	if (!ret)
		ret = test_hook(c);
	if (!ret)
		ret = move_in(c, d->files[inv].name); /* the commit point */
	if (ret)
		undo(c);
	return ret;
}

int dump_imgs_commit(struct dump_imgs *d)
{
	struct commit c = { .d = d };
	int ret;

	if (!d->nr || strcmp(d->files[d->nr - 1].name, "inventory.img"))
		return -EINVAL;
	if (fsync(d->stagefd) < 0) {
		ret = -errno;
		pr_perror("syncing the staging directory %s", d->stage);
		return ret;
	}
	/* Two dumps committing into one directory at once would mix their files. */
	if (flock(d->dirfd, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		pr_err("images directory: another dump is committing into it: %s",
		       strerror(-ret));
		return ret;
	}
	ret = find_obsolete(&c);
	if (ret)
		goto out_free;
	c.steps = calloc(d->nr + c.nr_obsolete, sizeof(*c.steps));
	if (!c.steps) {
		ret = -ENOMEM;
		pr_err("committing the dump: %s", strerror(ENOMEM));
		goto out_free;
	}
	ret = commit_steps(&c);
	if (ret)
		goto out_free;
	/* Durable before the target is killed. */
	if (sf_fsync_dir(d->dirfd)) {
		ret = -errno;
		pr_perror("syncing the images directory");
		goto out_free;
	}
	pr_debug("committed %zu files, %zu old ones removed", d->nr, c.nr_obsolete);
	dump_imgs_remove(d); /* now the old files */
	sf_fsync_dir(d->dirfd);
out_free:
	flock(d->dirfd, LOCK_UN);
	for (size_t i = 0; i < c.nr_obsolete; i++)
		free(c.obsolete[i]);
	free(c.obsolete);
	free(c.steps);
	return ret;
}

void dump_imgs_remove(struct dump_imgs *d)
{
	int ret;

	if (!d->stage[0])
		return;
	ret = stage_remove(d->dirfd, d->stage, d->stagefd);
	if (ret)
		pr_warn("removing the staging directory %s: %s", d->stage, strerror(-ret));
	if (d->stagefd >= 0)
		close(d->stagefd);
	d->stagefd = -1;
	d->stage[0] = '\0';
}

void dump_imgs_fini(struct dump_imgs *d)
{
	dump_imgs_remove(d);
	free(d->files);
	d->files = NULL;
	d->nr = d->cap = 0;
}
