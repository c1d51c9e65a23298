/*
 * dump-ns.c - the pid and mount namespace of a dumped tree (dump-ns.h).
 *
 * NSpid, NSpgid and NSsid of /proc/PID/status list the ids of a process in
 * every pid namespace from the one of the /proc read (ours) down to its
 * own; the last is the innermost, 0 where the group or session has no pid
 * there (led from outside).
 *
 * The mount namespace of `unshare --mount-proc` is a copy of the dumper's
 * (same superblocks, same mount points and options; the copy has fresh
 * mount ids, another order and private propagation) with a fresh proc
 * mounted on top of /proc. So the two mountinfo files are compared as
 * sets of "dev root mountpoint options - type source superoptions" with
 * /proc and what is under it left out, and the topmost mount on /proc must
 * be a proc of the tree's pid namespace: its pid 1's ns/pid is the root's.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-ns.h"
#include "proc.h"

#define NS_LEVELS_MAX 32 /* MAX_PID_NS_LEVEL */

/* The numbers of the status line KEY ("NSpid:"); -EINVAL if absent. */
static int ns_line(const char *text, const char *key, long *v, unsigned *n)
{
	const char *s = strstr(text, key);
	char *end;

	*n = 0;
	if (!s || (s != text && s[-1] != '\n'))
		return -EINVAL;
	s += strlen(key);
	for (;;) {
		long x = strtol(s, &end, 10);

		if (end == s || *n == NS_LEVELS_MAX)
			break;
		v[(*n)++] = x;
		s = end;
		if (*s == '\n')
			break;
	}
	return *n ? 0 : -EINVAL;
}

static int read_status(pid_t pid, pid_t tid, char **text)
{
	char name[64];
	int ret;

	snprintf(name, sizeof(name), "task/%d/status", tid);
	ret = proc_read(pid, tid == pid ? "status" : name, text, NULL);
	if (ret)
		pr_err("process %d: reading /proc/%d/%s: %s", pid, pid,
		       tid == pid ? "status" : name, strerror(-ret));
	return ret;
}

/* The root's IPC namespace: ours, or one of its own the whole tree must share. */
static int probe_ipc(struct dump_ns *ns, pid_t root)
{
	char ours[DUMP_NS_LINK_MAX];
	int ret;

	ret = proc_readlink(root, "ns/ipc", ns->ipc_link, sizeof(ns->ipc_link));
	if (!ret)
		ret = proc_readlink(getpid(), "ns/ipc", ours, sizeof(ours));
	if (ret) {
		pr_err("process %d: reading the ns/ipc links: %s", root, strerror(-ret));
		return ret;
	}
	ns->ipc_own = strcmp(ns->ipc_link, ours) != 0;
	return 0;
}

int dump_ns_probe(struct dump_ns *ns, pid_t root)
{
	long v[NS_LEVELS_MAX];
	char *text;
	int ret;

	memset(ns, 0, sizeof(*ns));
	ret = probe_ipc(ns, root);
	if (ret)
		return ret;
	ret = read_status(root, root, &text);
	if (ret)
		return ret;
	ret = ns_line(text, "NSpid:", v, &ns->level);
	free(text);
	if (ret) {
		pr_err("process %d: no NSpid line in /proc/%d/status", root, root);
		return ret;
	}
	if (ns->level == 1)
		return 0;
	if (ns->level > 2) {
		pr_err("process %d is pid %ld of a pid namespace %u levels below lazarus's: nested "
		       "pid namespaces are not supported",
		       root, v[ns->level - 1], ns->level - 1);
		return -EOPNOTSUPP;
	}
	if (v[1] != 1) {
		pr_err("process %d is pid %ld of its own pid namespace, not its init: dump the "
		       "namespace's init (pid 1) instead",
		       root, v[1]);
		return -EOPNOTSUPP;
	}
	ret = proc_readlink(root, "ns/pid", ns->pid_link, sizeof(ns->pid_link));
	if (ret) {
		pr_err("process %d: reading /proc/%d/ns/pid: %s", root, root, strerror(-ret));
		return ret;
	}
	ns->root_init = true;
	return 0;
}

int dump_ns_vids(const struct dump_ns *ns, pid_t pid, pid_t tid, struct dump_vids *v)
{
	long ids[3][NS_LEVELS_MAX];
	static const char *const keys[3] = { "NSpid:", "NSpgid:", "NSsid:" };
	unsigned n[3];
	char *text;
	int ret;

	if (!ns->root_init) {
		*v = (struct dump_vids){ tid, 0, 0 };
		return 0;
	}
	ret = read_status(pid, tid, &text);
	if (ret)
		return ret;
	for (int k = 0; k < 3 && !ret; k++)
		ret = ns_line(text, keys[k], ids[k], &n[k]);
	free(text);
	if (ret) {
		pr_err("process %d: no NSpid, NSpgid and NSsid lines in /proc/%d/status", pid, pid);
		return ret;
	}
	if (n[0] != ns->level || n[1] != n[0] || n[2] != n[0]) {
		pr_err("process %d%s is in a pid namespace of its own inside the tree's (pid %ld "
		       "there): nested pid namespaces are not supported",
		       pid, tid == pid ? "" : " (a thread)", ids[0][n[0] - 1]);
		return -EOPNOTSUPP;
	}
	v->pid = (pid_t)ids[0][n[0] - 1];
	v->pgid = (pid_t)ids[1][n[1] - 1];
	v->sid = (pid_t)ids[2][n[2] - 1];
	return 0;
}

/* ------------------------------------------------------------ mounts */

struct mnt_line {
	char *key;	   /* "dev root mountpoint options - type source superoptions" */
	const char *point; /* the mount point, inside key */
	long id, parent;
};

struct mnt_table {
	struct mnt_line *l;
	size_t nr;
	char *text;
};

static void mnt_free(struct mnt_table *t)
{
	for (size_t i = 0; i < t->nr; i++)
		free(t->l[i].key);
	free(t->l);
	free(t->text);
}

/* POINT runs on into the rest of the key: "/proc opts - ..." */
static bool under_proc(const char *point)
{
	return !strncmp(point, "/proc ", 6) || !strncmp(point, "/proc/", 6);
}

/* One mountinfo line into a key without the ids and the optional fields. */
static int mnt_parse_line(char *line, struct mnt_line *m)
{
	char *f[6], *dash, *save = NULL;
	int k = 0;

	dash = strstr(line, " - ");
	if (!dash)
		return -EINVAL;
	*dash = '\0';
	for (char *s = strtok_r(line, " ", &save); s && k < 6; s = strtok_r(NULL, " ", &save))
		f[k++] = s;
	if (k < 6)
		return -EINVAL;
	m->id = strtol(f[0], NULL, 10);
	m->parent = strtol(f[1], NULL, 10);
	if (asprintf(&m->key, "%s %s %s %s -%s", f[2], f[3], f[4], f[5], dash + 2) < 0) {
		m->key = NULL;
		return -ENOMEM;
	}
	m->point = m->key + strlen(f[2]) + strlen(f[3]) + 2;
	return 0;
}

static int mnt_read(pid_t pid, struct mnt_table *t)
{
	size_t cap = 0;
	char *line, *save = NULL;
	int ret;

	memset(t, 0, sizeof(*t));
	ret = proc_read(pid, "mountinfo", &t->text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/mountinfo: %s", pid, pid, strerror(-ret));
		return ret;
	}
	for (line = strtok_r(t->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (t->nr == cap) {
			struct mnt_line *n = realloc(t->l, (cap = cap ? 2 * cap : 64) * sizeof(*n));

			if (!n)
				return -ENOMEM;
			t->l = n;
		}
		ret = mnt_parse_line(line, &t->l[t->nr]);
		if (ret) {
			pr_err("process %d: cannot parse /proc/%d/mountinfo", pid, pid);
			return ret;
		}
		t->nr++;
	}
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The keys of T outside /proc, sorted, into *keys (pointers into T). */
static int mnt_keys(const struct mnt_table *t, char ***keys, size_t *nr)
{
	*nr = 0;
	*keys = calloc(t->nr + 1, sizeof(**keys));
	if (!*keys)
		return -ENOMEM;
	for (size_t i = 0; i < t->nr; i++)
		if (!under_proc(t->l[i].point))
			(*keys)[(*nr)++] = t->l[i].key;
	qsort(*keys, *nr, sizeof(**keys), cmp_key);
	return 0;
}

/* Same mounts outside /proc? Else the first difference into why. */
static int mnt_same_outside_proc(const struct mnt_table *a, const struct mnt_table *b,
				 char *why, size_t len)
{
	char **ka = NULL, **kb = NULL;
	size_t na, nb, i;
	int ret;

	ret = mnt_keys(a, &ka, &na);
	if (!ret)
		ret = mnt_keys(b, &kb, &nb);
	if (ret)
		goto out_free;
	for (i = 0; i < na && i < nb && !strcmp(ka[i], kb[i]); i++)
		;
	if (i < na || i < nb) {
		snprintf(why, len, "mount \"%.200s\" %s", i < na ? ka[i] : kb[i],
			 i < na && (i >= nb || strcmp(ka[i], kb[i]) < 0) ? "is not lazarus's"
									: "of lazarus's is missing");
		ret = -EOPNOTSUPP;
	}
out_free:
	free(ka);
	free(kb);
	return ret;
}

/* The mount on /proc that nothing else on /proc covers; NULL if none. */
static const struct mnt_line *mnt_top_proc(const struct mnt_table *t)
{
	const struct mnt_line *top = NULL;

	for (size_t i = 0; i < t->nr; i++) {
		bool covered = false;

		if (strncmp(t->l[i].point, "/proc ", 6))
			continue;
		for (size_t j = 0; j < t->nr && !covered; j++)
			covered = t->l[j].parent == t->l[i].id && !strncmp(t->l[j].point, "/proc ", 6);
		if (!covered)
			top = &t->l[i];
	}
	return top;
}

/* What `unshare --mount-proc` mounts: MS_NOSUID | MS_NODEV | MS_NOEXEC, default options. */
#define PROC_KEY_TAIL "/ /proc rw,nosuid,nodev,noexec,relatime - proc proc rw"

static int check_own_proc(pid_t root, const struct mnt_table *t, const char *pid_link,
			  char *why, size_t len)
{
	const struct mnt_line *top = mnt_top_proc(t);
	const char *tail = top ? strchr(top->key, ' ') : NULL;
	char link[DUMP_NS_LINK_MAX];
	int ret;

	if (!tail || strcmp(tail + 1, PROC_KEY_TAIL)) {
		snprintf(why, len, "its /proc is %s%.200s%s, not a proc mounted as by unshare "
			 "--mount-proc",
			 tail ? "\"" : "", tail ? tail + 1 : "not mounted", tail ? "\"" : "");
		return -EOPNOTSUPP;
	}
	/* Pid 1 of that proc is the init of the proc's pid namespace. */
	ret = proc_readlink(root, "root/proc/1/ns/pid", link, sizeof(link));
	if (ret || strcmp(link, pid_link)) {
		snprintf(why, len, "its /proc is not of its own pid namespace");
		return -EOPNOTSUPP;
	}
	return 0;
}

int dump_ns_check_mnt(struct dump_ns *ns, pid_t root)
{
	char ours[DUMP_NS_LINK_MAX], why[320];
	struct mnt_table mine = { 0 }, theirs = { 0 };
	int ret;

	ret = proc_readlink(root, "ns/mnt", ns->mnt_link, sizeof(ns->mnt_link));
	if (!ret)
		ret = proc_readlink(getpid(), "ns/mnt", ours, sizeof(ours));
	if (ret) {
		pr_err("process %d: reading the ns/mnt links: %s", root, strerror(-ret));
		return ret;
	}
	if (!strcmp(ns->mnt_link, ours))
		return 0;
	ret = mnt_read(getpid(), &mine);
	if (!ret)
		ret = mnt_read(root, &theirs);
	if (!ret)
		ret = mnt_same_outside_proc(&theirs, &mine, why, sizeof(why));
	if (!ret)
		ret = check_own_proc(root, &theirs, ns->pid_link, why, sizeof(why));
	if (ret == -EOPNOTSUPP)
		pr_err("process %d is in another mnt namespace (%s, lazarus is in %s): %s; only "
		       "lazarus's own mounts with a fresh /proc (unshare --mount-proc) are supported",
		       root, ns->mnt_link, ours, why);
	else if (ret == -ENOMEM)
		pr_err("process %d: reading the mount tables: %s", root, strerror(ENOMEM));
	mnt_free(&mine);
	mnt_free(&theirs);
	ns->mnt_proc = !ret;
	return ret;
}
