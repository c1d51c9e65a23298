/*
 * dump-creds.c - the credentials of a frozen thread.
 *
 * Everything but the securebits is in /proc/PID/task/TID/status, read while
 * the thread is stopped, so nothing changes under us. The securebits have no
 * /proc line: the thread answers prctl(PR_GET_SECUREBITS) itself, injected.
 * Credentials are per thread in the kernel (a raw setresuid() changes only
 * the calling thread), hence one creds_entry per core-<tid>.img.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "core.pb-c.h"
#include "dump-creds.h"
#include "proc.h"

#define CREDS_MAX_GROUPS 65536 /* NGROUPS_MAX of the kernel */

/* The text after "KEY:" on its line, or NULL. */
static const char *status_line(const char *text, const char *key)
{
	size_t klen = strlen(key);

	for (const char *p = text; p && *p;) {
		if (!strncmp(p, key, klen) && p[klen] == ':')
			return p + klen + 1;
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NULL;
}

/* "\t0\t0\t0\t0": real, effective, saved, fs. */
static int parse_ids(const char *text, const char *key, uint32_t ids[CREDS_NR_IDS])
{
	const char *p = status_line(text, key);

	if (!p)
		return -EINVAL;
	for (int i = 0; i < CREDS_NR_IDS; i++) {
		char *end;
		unsigned long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || v > UINT32_MAX)
			return -EINVAL;
		ids[i] = (uint32_t)v;
		p = end;
	}
	return 0;
}

/* "\t4 24 27 \n", or no number at all. */
static int parse_groups(const char *text, struct creds_dump *c)
{
	const char *p = status_line(text, "Groups");
	uint32_t *g = NULL;
	size_t n = 0, cap = 0;

	if (!p)
		return -EINVAL;
	for (;;) {
		char *end;
		unsigned long v;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\n' || !*p)
			break;
		if (*p < '0' || *p > '9' || n == CREDS_MAX_GROUPS)
			goto out_free;
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || v > UINT32_MAX)
			goto out_free;
		if (n == cap) {
			uint32_t *ng = realloc(g, (cap ? cap * 2 : 16) * sizeof(*g));

			if (!ng) {
				free(g);
				return -ENOMEM;
			}
			g = ng;
			cap = cap ? cap * 2 : 16;
		}
		g[n++] = (uint32_t)v;
		p = end;
	}
	c->groups = g;
	c->nr_groups = (uint32_t)n;
	return 0;

out_free:
	free(g);
	return -EINVAL;
}

int creds_parse_status(const char *text, struct creds_dump *c)
{
	static const char *const caps[CREDS_NR_CAPS] = { "CapInh", "CapPrm", "CapEff", "CapBnd",
							 "CapAmb" };
	int ret;

	ret = parse_ids(text, "Uid", c->uid);
	if (!ret)
		ret = parse_ids(text, "Gid", c->gid);
	for (int i = 0; !ret && i < CREDS_NR_CAPS; i++) {
		ret = proc_parse_status_num(text, caps[i], 16, &c->cap[i]);
		if (ret == -ENOENT)
			ret = -EINVAL;
	}
	if (!ret)
		ret = parse_groups(text, c);
	return ret;
}

int creds_collect(struct creds_dump *c, pid_t tid)
{
	char name[64], *text;
	int ret;

	snprintf(name, sizeof(name), "task/%d/status", tid);
	ret = proc_read(tid, name, &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/%s: %s", tid, tid, name, strerror(-ret));
		return ret;
	}
	ret = creds_parse_status(text, c);
	free(text);
	if (ret)
		pr_err("process %d: cannot parse the credentials in /proc/%d/%s: %s", tid, tid,
		       name, strerror(-ret));
	return ret;
}

int creds_take_securebits(struct creds_dump *c, pid_t tid, int64_t r)
{
	if (r < 0) {
		pr_err("process %d: injected prctl(PR_GET_SECUREBITS): %s", tid, strerror((int)-r));
		return (int)r;
	}
	c->securebits = (uint32_t)r;
	return 0;
}

void creds_to_entry(const struct creds_dump *c, CredsEntry *e)
{
	e->uid = c->uid[CREDS_REAL];
	e->euid = c->uid[CREDS_EFF];
	e->suid = c->uid[CREDS_SAVED];
	e->fsuid = c->uid[CREDS_FS];
	e->gid = c->gid[CREDS_REAL];
	e->egid = c->gid[CREDS_EFF];
	e->sgid = c->gid[CREDS_SAVED];
	e->fsgid = c->gid[CREDS_FS];
	e->n_groups = c->nr_groups;
	e->groups = c->groups;
	e->cap_inh = c->cap[CREDS_INH];
	e->cap_prm = c->cap[CREDS_PRM];
	e->cap_eff = c->cap[CREDS_EFFC];
	e->cap_bnd = c->cap[CREDS_BND];
	e->cap_amb = c->cap[CREDS_AMB];
	e->securebits = c->securebits;
}

void creds_fini(struct creds_dump *c)
{
	free(c->groups);
	c->groups = NULL;
	c->nr_groups = 0;
}
