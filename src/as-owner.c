/*
 * as-owner.c - act as a process of the tree (as-owner.h has the rules).
 *
 * Order matters: groups and gids change while lazarus still has
 * CAP_SETGID, then the euid (the kernel clears the effective capabilities
 * when it leaves 0, keeps the permitted set while the real and saved uid
 * stay 0), then the fsuid, then the owner's effective set is raised from
 * the permitted one. Back: euid 0 first (the kernel makes the effective set
 * the permitted one again), then the saved capability sets, then gids and
 * groups.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "as-owner.h"
#include "restore-fds.h"

const struct rst_task *as_owner_of_file(const struct rst_images *im, uint32_t id)
{
	for (size_t i = 0; i < im->nr_tasks; i++) {
		const struct rst_task *t = &im->tasks[i];

		if (rst_task_zombie(t))
			continue;
		for (size_t j = 0; j < t->nr_fdinfo; j++)
			if (t->fdinfo[j]->file_id == id)
				return t;
	}
	return im->nr_tasks ? &im->tasks[0] : NULL;
}

/* Raw syscalls: this thread only (glibc's set*id would change every thread). */
static int sys_setresuid(uid_t r, uid_t e, uid_t s)
{
	return syscall(SYS_setresuid, r, e, s) ? -errno : 0;
}

static int sys_setresgid(gid_t r, gid_t e, gid_t s)
{
	return syscall(SYS_setresgid, r, e, s) ? -errno : 0;
}

static int sys_setgroups(size_t n, const gid_t *g)
{
	return syscall(SYS_setgroups, n, g) ? -errno : 0;
}

/* setfsuid/setfsgid report no error: read back what is in force. */
static uid_t sys_fsuid(void)
{
	return (uid_t)syscall(SYS_setfsuid, (uid_t)-1);
}

static gid_t sys_fsgid(void)
{
	return (gid_t)syscall(SYS_setfsgid, (gid_t)-1);
}

static int set_fsuid(uid_t u)
{
	syscall(SYS_setfsuid, u);
	return sys_fsuid() == u ? 0 : -EPERM;
}

static int set_fsgid(gid_t g)
{
	syscall(SYS_setfsgid, g);
	return sys_fsgid() == g ? 0 : -EPERM;
}

static int caps_get(uint32_t eff[2], uint32_t prm[2], uint32_t inh[2])
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return -errno;
	for (int i = 0; i < 2; i++) {
		eff[i] = d[i].effective;
		prm[i] = d[i].permitted;
		inh[i] = d[i].inheritable;
	}
	return 0;
}

static int caps_set(const uint32_t eff[2], const uint32_t prm[2], const uint32_t inh[2])
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	for (int i = 0; i < 2; i++)
		d[i] = (struct __user_cap_data_struct){ .effective = eff[i], .permitted = prm[i],
							 .inheritable = inh[i] };
	return syscall(SYS_capset, &h, d) ? -errno : 0;
}

static int save(struct as_owner *ao)
{
	int n;

	memset(ao, 0, sizeof(*ao));
	if (getresuid(&ao->ruid, &ao->euid, &ao->suid) || getresgid(&ao->rgid, &ao->egid, &ao->sgid))
		return -errno;
	ao->fsuid = sys_fsuid();
	ao->fsgid = sys_fsgid();
	n = getgroups(0, NULL);
	if (n < 0)
		return -errno;
	ao->groups = calloc((size_t)n + 1, sizeof(gid_t));
	if (!ao->groups)
		return -ENOMEM;
	ao->nr_groups = n ? getgroups(n, ao->groups) : 0;
	if (ao->nr_groups < 0)
		return -errno;
	return caps_get(ao->cap_eff, ao->cap_prm, ao->cap_inh);
}

static bool same_groups(const struct as_owner *ao, const CredsEntry *c)
{
	if ((size_t)ao->nr_groups != c->n_groups)
		return false;
	for (size_t i = 0; i < c->n_groups; i++)
		if (ao->groups[i] != c->groups[i])
			return false;
	return true;
}

/* The effective set acting as C gives: the owner's, never more than lazarus's permitted. */
static void owner_eff(const struct as_owner *ao, const CredsEntry *c, uint32_t eff[2])
{
	eff[0] = (uint32_t)c->cap_eff & ao->cap_prm[0];
	eff[1] = (uint32_t)(c->cap_eff >> 32) & ao->cap_prm[1];
}

/*
 * Acting as C would change nothing: every id and group enter_ids sets is
 * already the one in force, and so is the effective set it would set (the
 * permitted and inheritable sets, the real and saved ids are never
 * changed). Then the open runs under exactly the credentials it would have
 * had: a root owner with all of lazarus's capabilities, the common case.
 */
static bool already_owner(const struct as_owner *ao, const CredsEntry *c)
{
	uint32_t eff[2];

	owner_eff(ao, c, eff);
	return same_groups(ao, c) && c->egid == ao->egid && c->fsgid == ao->fsgid &&
	       c->euid == ao->euid && c->fsuid == ao->fsuid && eff[0] == ao->cap_eff[0] &&
	       eff[1] == ao->cap_eff[1];
}

/* Each step, or -errno with WHY naming it. */
static int enter_ids(struct as_owner *ao, const CredsEntry *c, char *why, size_t len)
{
	uint32_t all[2] = { ao->cap_prm[0], ao->cap_prm[1] };
	uint32_t eff[2];
	int ret = 0;

	owner_eff(ao, c, eff);

	if (!same_groups(ao, c) && (ret = sys_setgroups(c->n_groups, c->groups)))
		snprintf(why, len, "setgroups: %s", strerror(-ret));
	else if (c->egid != ao->egid && (ret = sys_setresgid((gid_t)-1, c->egid, (gid_t)-1)))
		snprintf(why, len, "setting egid %u: %s", c->egid, strerror(-ret));
	else if ((ret = set_fsgid(c->fsgid)))
		snprintf(why, len, "setting fsgid %u: refused", c->fsgid);
	else if (c->euid != ao->euid && (ret = sys_setresuid((uid_t)-1, c->euid, (uid_t)-1)))
		snprintf(why, len, "setting euid %u: %s", c->euid, strerror(-ret));
	else if (sys_fsuid() != c->fsuid && ((ret = caps_set(all, ao->cap_prm, ao->cap_inh)) ||
					     (ret = set_fsuid(c->fsuid))))
		snprintf(why, len, "setting fsuid %u: %s", c->fsuid, strerror(-ret));
	else if ((ret = caps_set(eff, ao->cap_prm, ao->cap_inh)))
		snprintf(why, len, "setting the effective capabilities %#llx: %s",
			 (unsigned long long)c->cap_eff, strerror(-ret));
	return ret;
}

int as_owner_enter_creds(struct as_owner *ao, const CredsEntry *c, char *why, size_t len)
{
	char tmp[128];
	int ret = save(ao);

	if (ret) {
		snprintf(why, len, "reading lazarus's own credentials: %s", strerror(-ret));
		free(ao->groups);
		ao->groups = NULL;
		return ret;
	}
	if (already_owner(ao, c)) {
		free(ao->groups);
		ao->groups = NULL;
		return 0; /* not entered: leaving is a no-op */
	}
	ao->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
	ao->in = true;
	ret = enter_ids(ao, c, tmp, sizeof(tmp));
	if (ret) {
		snprintf(why, len, "acting as uid %u gid %u: %s", c->euid, c->egid, tmp);
		return as_owner_leave(ao, ret, why, len);
	}
	return 0;
}

int as_owner_enter(struct as_owner *ao, const struct rst_task *t, char *why, size_t len)
{
	int ret;

	memset(ao, 0, sizeof(*ao));
	if (!t)
		return 0;
	if (!t->nr_cores || !t->cores[0]->creds) {
		snprintf(why, len, "process %u: no credentials in the dump to act as", t->pid);
		return -EINVAL;
	}
	ret = as_owner_enter_creds(ao, t->cores[0]->creds, why, len);
	if (ret) {
		char tmp[256];

		snprintf(tmp, sizeof(tmp), "%s", why);
		snprintf(why, len, "process %u: %s", t->pid, tmp);
	}
	return ret;
}

static bool back_home(const struct as_owner *ao)
{
	uid_t r, e, s;
	gid_t rg, eg, sg;
	uint32_t eff[2], prm[2], inh[2];
	int n = getgroups(0, NULL);

	if (getresuid(&r, &e, &s) || getresgid(&rg, &eg, &sg) || caps_get(eff, prm, inh))
		return false;
	return r == ao->ruid && e == ao->euid && s == ao->suid && rg == ao->rgid &&
	       eg == ao->egid && sg == ao->sgid && sys_fsuid() == ao->fsuid &&
	       sys_fsgid() == ao->fsgid && n == ao->nr_groups && !memcmp(eff, ao->cap_eff, 8) &&
	       !memcmp(prm, ao->cap_prm, 8) && !memcmp(inh, ao->cap_inh, 8);
}

int as_owner_leave(struct as_owner *ao, int ret, char *why, size_t len)
{
	int err;

	if (!ao->in)
		return ret;
	ao->in = false;
	err = sys_setresuid((uid_t)-1, ao->euid, (uid_t)-1);
	if (!err)
		err = set_fsuid(ao->fsuid);
	if (!err)
		err = caps_set(ao->cap_eff, ao->cap_prm, ao->cap_inh);
	if (!err)
		err = sys_setresgid((gid_t)-1, ao->egid, (gid_t)-1);
	if (!err)
		err = set_fsgid(ao->fsgid);
	if (!err)
		err = sys_setgroups((size_t)ao->nr_groups, ao->groups);
	if (!err && ao->dumpable == 1)
		prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	if (!err && !back_home(ao))
		err = -EPERM;
	free(ao->groups);
	ao->groups = NULL;
	if (!err)
		return ret;
	snprintf(why, len, "lazarus cannot take back its own credentials (uid %u): %s", ao->euid,
		 strerror(-err));
	return err;
}

/* ------------------------------------------------------------ files */

/* What openat2 takes of open(2)'s flags (it refuses the rest, open drops it). */
#define OPEN_FLAGS_OK                                                                          \
	(O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_SYNC | O_DIRECT | O_LARGEFILE |      \
	 O_DIRECTORY | O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_NOCTTY | O_PATH | O_ASYNC)
#define O_PATH_FLAGS_OK (O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

int as_owner_open_nolinks(const char *path, int flags)
{
	struct open_how how = { .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	long fd;

	flags |= O_CLOEXEC;
	how.flags = (uint64_t)(flags & ((flags & O_PATH) ? O_PATH_FLAGS_OK : OPEN_FLAGS_OK));
	fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	return fd < 0 ? -errno : (int)fd;
}

static const char *open_why(int err)
{
	return err == -ELOOP ? "a symbolic link in its path (the dumped path had none)"
			     : strerror(-err);
}

bool as_owner_btime(int dirfd, const char *path, uint64_t *ns)
{
	struct statx stx;

	if (statx(dirfd, path, path[0] ? 0 : AT_EMPTY_PATH, STATX_BTIME, &stx) ||
	    !(stx.stx_mask & STATX_BTIME))
		return false;
	*ns = (uint64_t)stx.stx_btime.tv_sec * 1000000000ULL + stx.stx_btime.tv_nsec;
	return true;
}

/* FD is the file WAS describes. */
static bool same_file(int fd, const struct as_owner_file *was)
{
	struct stat st;
	uint64_t btime;

	if (fstat(fd, &st) || (uint64_t)st.st_dev != was->dev || (uint64_t)st.st_ino != was->ino)
		return false;
	return !was->has_btime || (as_owner_btime(fd, "", &btime) && btime == was->btime_ns);
}

int as_owner_open(const struct rst_task *t, const char *path, int flags,
		  const struct as_owner_file *was, char *why, size_t len)
{
	struct as_owner ao;
	int fd, ret;

	ret = as_owner_enter(&ao, t, why, len);
	if (ret)
		return ret;
	fd = as_owner_open_nolinks(path, flags);
	ret = as_owner_leave(&ao, 0, why, len);
	if (ret) {
		if (fd >= 0)
			close(fd);
		return ret;
	}
	if (fd >= 0 || (fd != -EACCES && fd != -EPERM)) {
		if (fd < 0)
			snprintf(why, len, "%s: %s", path, open_why(fd));
		return fd;
	}
	/* The owner is refused: only the very file it had open. */
	if (!was || !was->has_ino) {
		snprintf(why, len, "%s: %s to process %u", path, strerror(-fd), t ? t->pid : 0);
		return fd;
	}
	fd = as_owner_open_nolinks(path, flags);
	if (fd < 0) {
		snprintf(why, len, "%s: %s", path, open_why(fd));
		return fd;
	}
	if (!same_file(fd, was)) {
		close(fd);
		snprintf(why, len, "%s: process %u may not open it and it is not the file it had "
			 "open (another file since the dump): refused", path, t ? t->pid : 0);
		return -EACCES;
	}
	return fd;
}

int as_owner_open_typed(const struct rst_task *t, const char *path, int flags, mode_t want,
			const struct as_owner_file *was, char *why, size_t len)
{
	struct stat st;
	int fd = as_owner_open(t, path, flags | O_NONBLOCK, was, why, len), err;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st)) {
		err = -errno;
		snprintf(why, len, "%s: fstat: %s", path, strerror(errno));
		goto out_close;
	}
	if ((st.st_mode & S_IFMT) != (want & S_IFMT)) {
		err = -EINVAL;
		snprintf(why, len, "%s: a %s, dumped as a %s", path, rst_file_type_name(st.st_mode),
			 rst_file_type_name(want));
		goto out_close;
	}
	if (!(flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)) {
		err = -errno;
		snprintf(why, len, "%s: clearing O_NONBLOCK: %s", path, strerror(errno));
		goto out_close;
	}
	return fd;
out_close:
	close(fd);
	return err;
}

int as_owner_tmpfile(const char *dir, mode_t mode, bool excl)
{
	struct open_how how = { .flags = (uint64_t)(O_TMPFILE | O_RDWR | O_CLOEXEC |
						     (excl ? O_EXCL : 0)),
				.mode = mode & 07777,
				.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	long fd = syscall(SYS_openat2, AT_FDCWD, dir, &how, sizeof(how));

	return fd < 0 ? -errno : (int)fd;
}

/* ------------------------------------------------------------ sockets */

int as_owner_socket(const struct rst_task *t, int family, int type, int protocol, char *why,
		    size_t len)
{
	struct as_owner ao;
	int sk, ret;

	ret = as_owner_enter(&ao, t, why, len);
	if (ret)
		return ret;
	sk = socket(family, type, protocol);
	if (sk < 0)
		sk = -errno;
	ret = as_owner_leave(&ao, 0, why, len);
	if (ret) {
		if (sk >= 0)
			close(sk);
		return ret;
	}
	/* Refused to the owner (a kind that needs a capability it dropped since): it had one. */
	if (sk == -EPERM || sk == -EACCES) {
		sk = socket(family, type, protocol);
		if (sk < 0)
			sk = -errno;
	}
	if (sk < 0)
		snprintf(why, len, "socket: %s", strerror(-sk));
	return sk;
}
