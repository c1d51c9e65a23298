/*
 * test_as_owner.c - src/as-owner.c: entering a process's credentials and
 * coming back exactly (ids, fs ids, groups, the three capability sets,
 * dumpable), the effective set of a root owner with fewer capabilities,
 * and the no-symlink open. Needs root (skipped, passing, without it).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "unit.h"
#include "as-owner.h"

#define NOBODY 65534U
#define CAP_DAC_OVERRIDE_BIT 1
#define CAP_DAC_READ_SEARCH_BIT 2

struct snap {
	uid_t r, e, s, fs;
	gid_t rg, eg, sg, fsg;
	int ngroups;
	gid_t groups[64];
	uint32_t eff[2], prm[2], inh[2];
	int dumpable;
};

static void take(struct snap *s)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	memset(s, 0, sizeof(*s));
	getresuid(&s->r, &s->e, &s->s);
	getresgid(&s->rg, &s->eg, &s->sg);
	s->fs = (uid_t)syscall(SYS_setfsuid, -1);
	s->fsg = (gid_t)syscall(SYS_setfsgid, -1);
	s->ngroups = getgroups(64, s->groups);
	syscall(SYS_capget, &h, d);
	for (int i = 0; i < 2; i++) {
		s->eff[i] = d[i].effective;
		s->prm[i] = d[i].permitted;
		s->inh[i] = d[i].inheritable;
	}
	s->dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
}

/* A root-only file: the owner must not open it. */
static int secret(char *path, size_t len)
{
	int fd;

	snprintf(path, len, "/tmp/lz-as-owner-%d", getpid());
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int test_enter_leave_nobody(void)
{
	CredsEntry c = CREDS_ENTRY__INIT;
	uint32_t groups[2] = { 100, 4242 };
	struct snap before, in, after;
	struct as_owner ao;
	char why[256], path[64];
	int fd;

	if (geteuid())
		return 0;
	CHECK(secret(path, sizeof(path)) == 0);
	take(&before);
	c.uid = c.euid = c.suid = c.fsuid = NOBODY;
	c.gid = c.egid = c.sgid = c.fsgid = NOBODY;
	c.n_groups = 2;
	c.groups = groups;
	CHECK(as_owner_enter_creds(&ao, &c, why, sizeof(why)) == 0);
	CHECK(ao.in); /* a switch, not the no-change shortcut */
	take(&in);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(as_owner_leave(&ao, 0, why, sizeof(why)) == 0);
	take(&after);
	unlink(path);
	CHECK(fd < 0 && errno == EACCES);
	CHECK(in.e == NOBODY && in.fs == NOBODY && in.eg == NOBODY && in.fsg == NOBODY);
	CHECK(in.r == 0 && in.s == 0); /* the way back */
	CHECK(in.ngroups == 2 && in.groups[0] == 100 && in.groups[1] == 4242);
	CHECK(in.eff[0] == 0 && in.eff[1] == 0);
	CHECK(!memcmp(in.prm, before.prm, sizeof(in.prm)));
	CHECK(!memcmp(&after, &before, sizeof(after)));
	return 0;
}

/* uid 0 without CAP_DAC_*: cannot read a file of another user's 0600. */
static int test_root_fewer_caps(void)
{
	CredsEntry c = CREDS_ENTRY__INIT;
	struct snap before, in, after;
	struct as_owner ao;
	char why[256], path[64];
	int fd;

	if (geteuid())
		return 0;
	CHECK(secret(path, sizeof(path)) == 0);
	CHECK(chown(path, 1000, 1000) == 0);
	take(&before);
	c.cap_eff = ((uint64_t)before.eff[1] << 32 | before.eff[0]) &
		    ~((1ULL << CAP_DAC_OVERRIDE_BIT) | (1ULL << CAP_DAC_READ_SEARCH_BIT));
	CHECK(as_owner_enter_creds(&ao, &c, why, sizeof(why)) == 0);
	CHECK(ao.in); /* a switch, not the no-change shortcut */
	take(&in);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(as_owner_leave(&ao, 0, why, sizeof(why)) == 0);
	take(&after);
	unlink(path);
	CHECK(fd < 0 && errno == EACCES);
	CHECK(in.e == 0 && !(in.eff[0] & (1U << CAP_DAC_OVERRIDE_BIT)));
	CHECK(!memcmp(&after, &before, sizeof(after)));
	return 0;
}

/*
 * An owner whose credentials are lazarus's own (root, groups as lazarus's,
 * all of its effective capabilities): nothing to switch, nothing changes.
 * One uid, one gid, one group or one capability different: switched.
 */
static int test_same_creds_no_switch(void)
{
	CredsEntry c = CREDS_ENTRY__INIT;
	uint32_t groups[64];
	struct snap before, in, after;
	struct as_owner ao;
	char why[256];

	if (geteuid())
		return 0;
	take(&before);
	c.uid = c.euid = c.suid = c.fsuid = before.e;
	c.gid = c.egid = c.sgid = c.fsgid = before.eg;
	for (int i = 0; i < before.ngroups; i++)
		groups[i] = before.groups[i];
	c.n_groups = (size_t)before.ngroups;
	c.groups = groups;
	c.cap_eff = (uint64_t)before.eff[1] << 32 | before.eff[0];
	CHECK(as_owner_enter_creds(&ao, &c, why, sizeof(why)) == 0 && !ao.in);
	take(&in);
	CHECK(as_owner_leave(&ao, 0, why, sizeof(why)) == 0);
	take(&after);
	CHECK(!memcmp(&in, &before, sizeof(in)) && !memcmp(&after, &before, sizeof(after)));

	c.fsuid = 1000; /* only the fsuid differs */
	CHECK(as_owner_enter_creds(&ao, &c, why, sizeof(why)) == 0 && ao.in);
	take(&in);
	CHECK(as_owner_leave(&ao, 0, why, sizeof(why)) == 0);
	CHECK(in.fs == 1000);
	c.fsuid = before.fs;
	c.fsgid = 1000; /* only the fsgid */
	CHECK(as_owner_enter_creds(&ao, &c, why, sizeof(why)) == 0 && ao.in);
	CHECK(as_owner_leave(&ao, 0, why, sizeof(why)) == 0);
	c.fsgid = before.fsg;
	groups[c.n_groups++] = 4242; /* one group more */
	CHECK(as_owner_enter_creds(&ao, &c, why, sizeof(why)) == 0 && ao.in);
	CHECK(as_owner_leave(&ao, 0, why, sizeof(why)) == 0);
	c.n_groups--;
	c.cap_eff &= ~(1ULL << CAP_DAC_OVERRIDE_BIT); /* one capability less */
	CHECK(as_owner_enter_creds(&ao, &c, why, sizeof(why)) == 0 && ao.in);
	take(&in);
	CHECK(as_owner_leave(&ao, 0, why, sizeof(why)) == 0);
	CHECK(!(in.eff[0] & (1U << CAP_DAC_OVERRIDE_BIT)));
	take(&after);
	CHECK(!memcmp(&after, &before, sizeof(after)));
	return 0;
}

/* Leave passes RET through when it comes back; a no-op when not entered. */
static int test_leave_passes_ret(void)
{
	struct as_owner ao = { 0 };
	char why[64] = "kept";

	CHECK(as_owner_leave(&ao, -EIO, why, sizeof(why)) == -EIO && !strcmp(why, "kept"));
	CHECK(as_owner_enter(&ao, NULL, why, sizeof(why)) == 0 && !ao.in);
	return 0;
}

static int test_open_nolinks(void)
{
	char dir[64], path[128], link[128], via[160];
	int fd;

	snprintf(dir, sizeof(dir), "/tmp/lz-nolinks-%d", getpid());
	CHECK(mkdir(dir, 0700) == 0);
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(link, sizeof(link), "%s/l", dir);
	snprintf(via, sizeof(via), "%s/d/f", dir);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	close(fd);
	CHECK(symlink(path, link) == 0);
	snprintf(path, sizeof(path), "%s/d", dir);
	CHECK(symlink(dir, path) == 0);
	fd = as_owner_open_nolinks(link, O_RDONLY);
	CHECK(fd == -ELOOP);
	fd = as_owner_open_nolinks(via, O_RDONLY); /* a link in the middle */
	CHECK(fd == -ELOOP);
	fd = as_owner_open_nolinks(link, O_PATH | O_NOFOLLOW); /* the link itself */
	CHECK(fd >= 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/f", dir);
	fd = as_owner_open_nolinks(path, O_RDONLY | O_LARGEFILE);
	CHECK(fd >= 0);
	close(fd);
	unlink(link);
	unlink(path);
	snprintf(path, sizeof(path), "%s/d", dir);
	unlink(path);
	rmdir(dir);
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_enter_leave_nobody),
	UNIT(test_root_fewer_caps),
	UNIT(test_same_creds_no_switch),
	UNIT(test_leave_passes_ret),
	UNIT(test_open_nolinks),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
