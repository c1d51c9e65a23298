/*
 * test_creds.c - credentials: the /proc/PID/status parser of the dump (fixed
 * text, damaged text, this process's own file against what the kernel says)
 * and the restore side's refusal of ids that would mean "leave as is".
 */
#include <errno.h>
#include <stdint.h>
#include <sys/prctl.h>

#include "unit.h"
#include "dump-creds.h"
#include "plugin.h"

static const char status_text[] = "Name:\tsleep\n"
				  "Umask:\t0022\n"
				  "Uid:\t1001\t1002\t1003\t1004\n"
				  "Gid:\t2001\t2002\t2003\t2004\n"
				  "FDSize:\t64\n"
				  "Groups:\t4 24 27 4294967294 \n"
				  "NStgid:\t77\n"
				  "CapInh:\t0000000000200400\n"
				  "CapPrm:\t0000000000002480\n"
				  "CapEff:\t0000000000000400\n"
				  "CapBnd:\t000001fffeffffff\n"
				  "CapAmb:\t0000000000000400\n"
				  "NoNewPrivs:\t1\n";

static int test_parse(void)
{
	struct creds_dump c = { 0 };

	CHECK(creds_parse_status(status_text, &c) == 0);
	CHECK(c.uid[CREDS_REAL] == 1001 && c.uid[CREDS_EFF] == 1002);
	CHECK(c.uid[CREDS_SAVED] == 1003 && c.uid[CREDS_FS] == 1004);
	CHECK(c.gid[CREDS_REAL] == 2001 && c.gid[CREDS_FS] == 2004);
	CHECK(c.nr_groups == 4 && c.groups[0] == 4 && c.groups[3] == 4294967294U);
	CHECK(c.cap[CREDS_INH] == 0x200400 && c.cap[CREDS_PRM] == 0x2480);
	CHECK(c.cap[CREDS_EFFC] == 0x400 && c.cap[CREDS_BND] == 0x1fffeffffffULL);
	CHECK(c.cap[CREDS_AMB] == 0x400);
	creds_fini(&c);
	CHECK(c.groups == NULL && c.nr_groups == 0);
	return 0;
}

static int test_parse_no_groups(void)
{
	static const char text[] = "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t \n"
				   "CapInh:\t0\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\n";
	struct creds_dump c = { 0 };

	CHECK(creds_parse_status(text, &c) == 0);
	CHECK(c.nr_groups == 0 && c.uid[CREDS_FS] == 0);
	creds_fini(&c);
	return 0;
}

static int test_parse_refused(void)
{
	static const char *const bad[] = {
		"Gid:\t0\t0\t0\t0\nGroups:\t\nCapInh:\t0\nCapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\n"
		"CapAmb:\t0\n",					    /* no Uid */
		"Uid:\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nCapInh:\t0\nCapPrm:\t0\n"
		"CapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\n",		    /* three uids */
		"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t1 x\nCapInh:\t0\nCapPrm:\t0\n"
		"CapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\n",		    /* bad group */
		"Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t\nCapInh:\t0\nCapPrm:\t0\n"
		"CapEff:\t0\nCapBnd:\t0\n",			    /* no CapAmb */
		"Uid:\t0\t0\t0\t99999999999\nGid:\t0\t0\t0\t0\nGroups:\t\nCapInh:\t0\n"
		"CapPrm:\t0\nCapEff:\t0\nCapBnd:\t0\nCapAmb:\t0\n", /* id > 32 bits */
		"",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct creds_dump c = { 0 };

		if (creds_parse_status(bad[i], &c) != -EINVAL) {
			fprintf(stderr, "  case %zu accepted\n", i);
			return 1;
		}
		CHECK(c.groups == NULL);
	}
	return 0;
}

/* Our own status, against getres[ug]id and the prctl getters. */
static int test_own_status(void)
{
	struct creds_dump c = { 0 };
	uid_t r, e, s;
	gid_t gr, ge, gs;
	int n = getgroups(0, NULL);

	CHECK(creds_collect(&c, getpid()) == 0);
	CHECK(getresuid(&r, &e, &s) == 0 && getresgid(&gr, &ge, &gs) == 0);
	CHECK(c.uid[CREDS_REAL] == r && c.uid[CREDS_EFF] == e && c.uid[CREDS_SAVED] == s);
	CHECK(c.gid[CREDS_REAL] == gr && c.gid[CREDS_EFF] == ge && c.gid[CREDS_SAVED] == gs);
	CHECK(n >= 0 && c.nr_groups == (uint32_t)n);
	for (unsigned cap = 0; cap < 64; cap++) {
		int in = prctl(PR_CAPBSET_READ, cap, 0, 0, 0);

		if (in < 0)
			break;
		CHECK(!!(c.cap[CREDS_BND] & (1ULL << cap)) == in);
	}
	creds_fini(&c);
	return 0;
}

/* Just enough images for plg_build_args(). */
struct args_fixture {
	X8664Regs regs;
	CredsEntry creds;
	CoreEntry core;
	TaskEntry task;
	MmEntry mm;
	const CoreEntry *cores[1];
	struct plg_images im;
	struct plg_fds fds;
	struct lz_blob_args *a;
	uint8_t *extra;
	size_t extra_len;
	char why[256];
};

static void fixture_init(struct args_fixture *f, uint32_t *groups, size_t nr_groups)
{
	x86_64_regs__init(&f->regs);
	creds_entry__init(&f->creds);
	core_entry__init(&f->core);
	task_entry__init(&f->task);
	mm_entry__init(&f->mm);
	f->core.regs = &f->regs;
	f->core.creds = &f->creds;
	f->creds.uid = f->creds.euid = f->creds.suid = f->creds.fsuid = 65534;
	f->creds.gid = f->creds.egid = f->creds.sgid = f->creds.fsgid = 65534;
	f->creds.groups = groups;
	f->creds.n_groups = nr_groups;
	f->creds.cap_bnd = 0x3ff;
	f->creds.securebits = 0x2f;
	f->task.dumpable = 1;
	f->task.no_new_privs = 1;
	f->cores[0] = &f->core;
	f->im = (struct plg_images){ .mm = &f->mm, .core = &f->core, .task = &f->task,
				     .cores = f->cores, .nr_threads = 1 };
	f->fds = (struct plg_fds){ .status_fd = 3, .release_fd = -1, .go_fd = 4, .pages_fd = 5,
				   .exe_fd = 6, .uffd = -1 };
	f->a = calloc(1, sizeof(*f->a));
	f->extra_len = plg_args_extra(&f->im, &f->fds);
	f->extra = calloc(1, f->extra_len + 8);
}

static void fixture_fini(struct args_fixture *f)
{
	free(f->a);
	free(f->extra);
}

static int fixture_build(struct args_fixture *f)
{
	uint64_t nr_data;

	f->why[0] = '\0';
	return plg_build_args(f->a, f->extra, f->extra_len, &f->im, &f->fds, &nr_data, f->why,
			      sizeof(f->why));
}

static int test_args_creds(void)
{
	uint32_t groups[3] = { 4, 24, 27 };
	struct args_fixture f;
	const struct lz_blob_thread *t;
	const uint32_t *g;

	fixture_init(&f, groups, 3);
	CHECK(fixture_build(&f) == 0);
	CHECK(f.a->nr_threads == 1);
	t = plg_args_threads(f.a);
	CHECK((const uint8_t *)t >= f.extra && (const uint8_t *)(t + 1) <= f.extra + f.extra_len);
	CHECK(t->creds.uid == 65534 && t->creds.fsgid == 65534);
	CHECK(t->creds.cap_bnd == 0x3ff && t->creds.securebits == 0x2f);
	CHECK(t->creds.no_new_privs == 1 && f.a->dumpable == 1);
	CHECK(t->creds.nr_groups == 3);
	g = (const uint32_t *)(uintptr_t)t->creds.groups;
	CHECK((const uint8_t *)g >= f.extra && (const uint8_t *)(g + 3) <= f.extra + f.extra_len);
	CHECK(g[0] == 4 && g[1] == 24 && g[2] == 27);
	fixture_fini(&f);
	return 0;
}

/* -1 to set*id() means "leave it": it would keep restore's root. */
static int test_args_refuse_minus_one(void)
{
	uint32_t groups[2] = { 4, UINT32_MAX };
	struct args_fixture f;

	fixture_init(&f, groups, 1);
	f.creds.fsuid = UINT32_MAX;
	CHECK(fixture_build(&f) == -EINVAL);
	CHECK(!strcmp(f.why, "core image: credentials: uid 4294967295 is not a valid id"));
	fixture_fini(&f);
	fixture_init(&f, groups, 1);
	f.creds.egid = UINT32_MAX;
	CHECK(fixture_build(&f) == -EINVAL);
	CHECK(!strcmp(f.why, "core image: credentials: gid 4294967295 is not a valid id"));
	fixture_fini(&f);
	fixture_init(&f, groups, 2);
	CHECK(fixture_build(&f) == -EINVAL);
	CHECK(!strcmp(f.why, "core image: credentials: group 4294967295 is not a valid id"));
	fixture_fini(&f);
	return 0;
}

static int test_args_too_many_groups(void)
{
	size_t n = LZ_BLOB_MAX_GROUPS + 1;
	uint32_t *groups = calloc(n, sizeof(*groups));
	struct args_fixture f;

	CHECK(groups);
	fixture_init(&f, groups, n);
	CHECK(fixture_build(&f) == -E2BIG);
	CHECK(!strcmp(f.why, "core image: credentials: 65537 supplementary groups, at most 65536"));
	fixture_fini(&f);
	free(groups);
	return 0;
}

static const struct unit_case cases[] = {
	UNIT(test_parse),
	UNIT(test_parse_no_groups),
	UNIT(test_parse_refused),
	UNIT(test_own_status),
	UNIT(test_args_creds),
	UNIT(test_args_refuse_minus_one),
	UNIT(test_args_too_many_groups),
	{ 0 },
};

int main(int argc, char **argv)
{
	return unit_main(argc, argv, cases);
}
