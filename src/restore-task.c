/*
 * restore-task.c - session, signal handlers, prctl switches and fs state of
 * the process being restored, set while it still runs lazarus's code with
 * every signal blocked (rt_sigreturn sets the dumped mask at the end); and
 * the state of Documentation/state.md that restore sets exactly or fails
 * on: cgroups, oom_score_adj, loginuid, membarrier registrations, and the
 * thread's nice value, scheduling policy, CPU affinity, timer slack, TSC
 * mode and machine-check kill policy; coredump_filter.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/membarrier.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <limits.h>
#include <unistd.h>

#include "restore-task.h"
#include "as-owner.h"

/*
 * Sessions and process groups of a tree. The kernel's rules: setsid() makes
 * a new session (and group) led by the caller, unless it leads a group
 * already; setpgid(0, G) moves the caller into group G only if G exists in
 * the caller's session, or G is the caller's own pid (a new group); a
 * session leader cannot change groups. A child starts in its parent's
 * session and group.
 *
 * So every process, first thing after it is created and before it creates
 * its own children (restore-child.c):
 *   - leads its session: setsid() (which also makes it its group's leader);
 *   - else leads its group: setpgid(0, 0);
 *   - else it is in its parent's session (pstree.img is refused otherwise,
 *     restore-images.c) and, for now, in its parent's group.
 * Its children are created only then, so they start in the right session
 * and, mostly, the right group. Once they exist (rst_task_join_group), a
 * process whose dumped group is led by another process of the tree (a
 * sibling's, a child's) and that is not in it yet joins it; the leader
 * creates its group first thing after its own creation, which nothing
 * waits for in turn, so a bounded retry on EPERM is enough. A group whose
 * leader is not in the dump (it exited) gets a helper holding that pid, as
 * CRIU does: the session's leader creates it right after its setsid, the
 * helper makes the group and stays until every member of the dump joined
 * it (getpgid), then exits, and the leader reaps it before it jumps into
 * the restorer: the group lives on in its members. The root that does
 * not lead its session or group stays in lazarus's, as a single process
 * always did. A zombie does the same before it exits again: a group whose
 * leader is a zombie still exists.
 */
int rst_task_session(const struct rst_task *rt, char *why, size_t len)
{
	const PstreeEntry *p = rt->pstree;

	if (p->sid == p->pid) {
		if (setsid() < 0) {
			snprintf(why, len, "setsid: %s", strerror(errno));
			return -errno;
		}
	} else if (p->pgid == p->pid) {
		if (setpgid(0, 0) < 0) {
			snprintf(why, len, "setpgid: %s", strerror(errno));
			return -errno;
		}
	}
	return 0;
}

#define JOIN_WAIT_MS 10000

int rst_task_join_group(const struct rst_images *im, const struct rst_task *rt, char *why,
			size_t len)
{
	pid_t pgid = (pid_t)rt->pstree->pgid;

	bool helper = false;

	for (size_t i = 0; i < im->nr_groups; i++)
		helper = helper || im->groups[i].pgid == (uint32_t)pgid;
	if (pgid == (pid_t)rt->pid || rt->pstree->sid == rt->pid || getpgrp() == pgid ||
	    (!rst_task_by_pid(im, (uint32_t)pgid) && !helper))
		return 0;
	for (int ms = 0; setpgid(0, pgid) < 0; ms++) {
		if (errno != EPERM || ms >= JOIN_WAIT_MS) {
			snprintf(why, len, "setpgid into group %d: %s", pgid, strerror(errno));
			return -errno;
		}
		usleep(1000); /* its leader has not made it yet */
	}
	return 0;
}

/* Every process of the dump in group PGID, the zombies too, is in it? */
static bool group_complete(const struct rst_images *im, pid_t pgid)
{
	for (size_t i = 0; i < im->nr_tasks; i++)
		if ((pid_t)im->tasks[i].pstree->pgid == pgid &&
		    getpgid((pid_t)im->tasks[i].pid) != pgid)
			return false;
	return true;
}

static __attribute__((noreturn)) void group_helper(const struct rst_images *im, pid_t pgid)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (setpgid(0, 0))
		_exit(2);
	for (int ms = 0; !group_complete(im, pgid); ms++) {
		if (ms >= JOIN_WAIT_MS)
			_exit(1);
		usleep(1000);
	}
	_exit(0);
}

int rst_task_group_helpers(const struct rst_images *im, const struct rst_task *rt,
			   pid_t *helpers, size_t *nr, char *why, size_t len)
{
	*nr = 0;
	for (size_t i = 0; i < im->nr_groups; i++) {
		pid_t tid = (pid_t)im->groups[i].pgid, pid;
		struct clone_args ca = {
			.exit_signal = SIGCHLD,
			.set_tid = (uint64_t)(uintptr_t)&tid,
			.set_tid_size = 1,
		};

		if (im->groups[i].sid != rt->pid)
			continue;
		pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
		if (pid == 0)
			group_helper(im, tid);
		if (pid < 0) {
			snprintf(why, len, "helper for group %d (its leader is gone): %s", tid,
				 errno == EEXIST ? "the pid is already in use" : strerror(errno));
			return -errno;
		}
		helpers[(*nr)++] = pid;
	}
	return 0;
}

int rst_task_group_helpers_wait(const pid_t *helpers, size_t nr, char *why, size_t len)
{
	for (size_t i = 0; i < nr; i++) {
		int st = 0;

		while (waitpid(helpers[i], &st, 0) < 0 && errno == EINTR)
			;
		if (!WIFEXITED(st) || WEXITSTATUS(st)) {
			snprintf(why, len, "group %d (its leader is gone): %s", helpers[i],
				 WIFEXITED(st) && WEXITSTATUS(st) == 1
					 ? "its members did not all join it within 10 s"
					 : "its helper failed");
			return -ECHILD;
		}
	}
	return 0;
}

/* struct sigaction as the kernel takes it (not glibc's). */
struct k_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

/*
 * glibc's sigaction() would put its own restorer in; the target's handlers
 * return through the one it registered, which is what was dumped. The
 * handlers point into the target's code: safe because every signal stays
 * blocked until the final rt_sigreturn.
 */
int rst_task_sigactions(const struct rst_task *rt, char *why, size_t len)
{
	for (size_t i = 0; i < rt->nr_sigacts; i++) {
		const SigactionEntry *s = rt->sigacts[i];
		struct k_sigaction ka = { s->handler, s->flags, s->restorer, s->mask };

		if (s->signo < 1 || s->signo > 64 || s->signo == SIGKILL || s->signo == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, s->signo, &ka, NULL, sizeof(ka.mask))) {
			snprintf(why, len, "rt_sigaction(%u): %s", s->signo, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int prctl_set(int option, unsigned long value, const char *what, char *why, size_t len)
{
	if (prctl(option, value, 0, 0, 0)) {
		snprintf(why, len, "prctl(%s, %lu): %s", what, value, strerror(errno));
		return -errno;
	}
	return 0;
}

int rst_task_misc(const struct rst_task *rt, char *why, size_t len)
{
	const TaskEntry *t = rt->task;
	int ret = 0;

	if (personality(t->personality) < 0) {
		snprintf(why, len, "personality(%#x): %s", t->personality, strerror(errno));
		return -errno;
	}
	ret = prctl_set(PR_SET_NAME, (unsigned long)t->comm, "PR_SET_NAME", why, len);
	if (!ret)
		ret = prctl_set(PR_SET_THP_DISABLE, t->thp_disabled ? 1 : 0, "PR_SET_THP_DISABLE",
				why, len);
	if (!ret)
		ret = prctl_set(PR_SET_CHILD_SUBREAPER, t->child_subreaper ? 1 : 0,
				"PR_SET_CHILD_SUBREAPER", why, len);
	/* no_new_privs and dumpable go with the credentials, last (blob/creds.c). */
	return ret;
}

/*
 * Root and cwd are opened as the process (as-owner.h: no symbolic link in
 * the path; "/." at the end so that the owner must be allowed to search the
 * directory itself, as chdir asks; refused to it, as lazarus only if it is
 * the dumped directory), both before either changes: the dumped paths are
 * from our root. Then chroot into the root (through fchdir) and fchdir
 * into the cwd.
 */
static int open_dir(const struct rst_task *rt, const char *path, bool has_ino, uint64_t dev,
		    uint64_t ino, bool has_btime, uint64_t btime, const char *what, char *why,
		    size_t len)
{
	const struct as_owner_file was = { .has_ino = has_ino, .dev = dev, .ino = ino,
					   .has_btime = has_btime, .btime_ns = btime };
	char dot[PATH_MAX + 4], msg[PATH_MAX + 200];
	const char *m = msg;
	size_t n;
	int fd;

	snprintf(dot, sizeof(dot), "%s%s.", path, path[strlen(path) - 1] == '/' ? "" : "/");
	fd = as_owner_open(rt, dot, O_PATH | O_DIRECTORY, &was, msg, sizeof(msg));
	n = strlen(dot);
	if (!strncmp(msg, dot, n) && !strncmp(msg + n, ": ", 2))
		m = msg + n + 2; /* "DOT: why": the path is named once, as dumped */
	if (fd < 0)
		snprintf(why, len, "%s %s (process %u): %s", what, path, rt->pid,
			 fd == -ELOOP ? "a symbolic link in its path (the dumped path had none): "
					"refused" : m);
	return fd;
}

int rst_task_fs(const struct rst_task *rt, char *why, size_t len)
{
	const FsEntry *fs = rt->fs;
	int cwd, root = -1, ret = 0;

	cwd = open_dir(rt, fs->cwd, fs->has_cwd_dev && fs->has_cwd_ino, fs->cwd_dev, fs->cwd_ino,
		       fs->has_cwd_btime_ns, fs->cwd_btime_ns, "working directory", why, len);
	if (cwd < 0)
		return cwd;
	if (strcmp(fs->root, "/")) {
		root = open_dir(rt, fs->root, fs->has_root_dev && fs->has_root_ino, fs->root_dev,
				fs->root_ino, fs->has_root_btime_ns, fs->root_btime_ns,
				"root directory", why, len);
		if (root < 0) {
			ret = root;
			goto close_cwd;
		}
		if (fchdir(root) || chroot(".")) {
			ret = -errno;
			snprintf(why, len, "chroot %s: %s", fs->root, strerror(errno));
			goto close_root;
		}
	}
	if (fchdir(cwd)) {
		ret = -errno;
		snprintf(why, len, "chdir %s: %s", fs->cwd, strerror(errno));
		goto close_root;
	}
	umask((mode_t)fs->umask);
close_root:
	if (root >= 0)
		close(root);
close_cwd:
	close(cwd);
	return ret;
}

/* ------------------------------------------------------------ /proc/self files */

static int read_text(const char *path, char *buf, size_t size)
{
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	if ((size_t)n == size - 1)
		return -E2BIG;
	buf[n] = '\0';
	return 0;
}

static int write_text(const char *path, const char *text)
{
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, text, strlen(text));
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	return 0;
}

static int read_number(const char *path, long long *val, char *why, size_t len)
{
	char buf[64], *end;
	int ret = read_text(path, buf, sizeof(buf));

	if (!ret) {
		errno = 0;
		*val = strtoll(buf, &end, 10);
		ret = (errno || end == buf) ? -EINVAL : 0;
	}
	if (ret)
		snprintf(why, len, "reading %s: %s", path, strerror(-ret));
	return ret;
}

/* ------------------------------------------------------------ cgroups */

/* Is every comma-separated word of WANT an option of OPTS? */
static bool opts_have_all(const char *opts, const char *want)
{
	while (*want) {
		size_t n = strcspn(want, ","), on;
		const char *o = opts;
		bool found = false;

		while (*o && !found) {
			on = strcspn(o, ",");
			found = on == n && !strncmp(o, want, n);
			o += on + (o[on] == ',');
		}
		if (!found)
			return false;
		want += n + (want[n] == ',');
	}
	return true;
}

/*
 * The directory of cgroup PATH in the hierarchy "ID:CONTROLLERS" (a line of
 * /proc/self/cgroup without its path): the cgroup2 mount for id 0, else
 * the cgroup mount whose super options name every controller.
 */
static int cgroup_dir(const char *key, const char *path, char *dir, size_t size)
{
	const char *ctrls = strchr(key, ':') + 1;
	bool v2 = !strncmp(key, "0:", 2) && !*ctrls;
	char line[4096], root[PATH_MAX], mnt[PATH_MAX], fstype[64], sopts[1024];
	int ret = -ENOENT;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	while (ret && fgets(line, sizeof(line), f)) {
		const char *sep = strstr(line, " - ");
		size_t rl;

		if (!sep || sscanf(line, "%*s %*s %*s %4095s %4095s", root, mnt) != 2 ||
		    sscanf(sep + 3, "%63s %*s %1023s", fstype, sopts) != 2)
			continue;
		if (v2 ? strcmp(fstype, "cgroup2") :
			 (strcmp(fstype, "cgroup") || !opts_have_all(sopts, ctrls)))
			continue;
		rl = strcmp(root, "/") ? strlen(root) : 0;
		if (rl && (strncmp(path, root, rl) || (path[rl] && path[rl] != '/')))
			continue; /* a bind mount of another part of the hierarchy */
		if ((size_t)snprintf(dir, size, "%s%s", mnt, path + rl) < size)
			ret = 0;
	}
	fclose(f);
	return ret;
}

/* This process's path in hierarchy KEY ("ID:CONTROLLERS"), or NULL. */
static const char *own_cgroup(const char *own, const char *key, char *buf, size_t size)
{
	size_t kl = strlen(key);

	for (const char *l = own; *l; l += strcspn(l, "\n") + (l[strcspn(l, "\n")] == '\n')) {
		size_t n = strcspn(l, "\n");

		if (n > kl && !strncmp(l, key, kl) && l[kl] == ':' && n - kl - 1 < size) {
			memcpy(buf, l + kl + 1, n - kl - 1);
			buf[n - kl - 1] = '\0';
			return buf;
		}
	}
	return NULL;
}

/*
 * Join each dumped cgroup the child is not in yet, by writing "0" (this
 * process) into its cgroup.procs. A hierarchy or cgroup missing here fails
 * the restore: the process would run with other limits.
 */
static int restore_cgroups(const TaskEntry *t, char *why, size_t len)
{
	char own[8192], key[512], cur[PATH_MAX], dir[PATH_MAX], procs[PATH_MAX + 16];
	int ret;

	if (!t->n_cgroups)
		return 0;
	ret = read_text("/proc/self/cgroup", own, sizeof(own));
	if (ret) {
		snprintf(why, len, "reading /proc/self/cgroup: %s", strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < t->n_cgroups; i++) {
		const char *l = t->cgroups[i], *c1 = strchr(l, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

		if (!c2 || c2[1] != '/' || (size_t)(c2 - l) >= sizeof(key)) {
			snprintf(why, len, "task image: bad cgroup line \"%.64s\"", l);
			return -EINVAL;
		}
		memcpy(key, l, (size_t)(c2 - l));
		key[c2 - l] = '\0';
		if (!own_cgroup(own, key, cur, sizeof(cur))) {
			snprintf(why, len, "cgroup hierarchy %s of the dump does not exist here", key);
			return -ENOENT;
		}
		if (!strcmp(cur, c2 + 1))
			continue;
		ret = cgroup_dir(key, c2 + 1, dir, sizeof(dir));
		if (ret) {
			snprintf(why, len, "cgroup %s (hierarchy %s): no mount of that hierarchy here",
				 c2 + 1, key);
			return ret;
		}
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
		ret = write_text(procs, "0");
		if (ret) {
			snprintf(why, len, "cgroup %s (hierarchy %s): %s", c2 + 1, key,
				 ret == -ENOENT ? "does not exist" : strerror(-ret));
			return ret;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ process state */

/*
 * Raising oom_score_adj is always allowed; lowering it below the floor this
 * process inherited needs CAP_SYS_RESOURCE. Never restore another value.
 */
static int restore_oom(const TaskEntry *t, char *why, size_t len)
{
	char text[16];
	long long cur;
	int ret;

	if (!t->has_oom_score_adj)
		return 0;
	ret = read_number("/proc/self/oom_score_adj", &cur, why, len);
	if (ret || cur == t->oom_score_adj)
		return ret;
	snprintf(text, sizeof(text), "%d", t->oom_score_adj);
	ret = write_text("/proc/self/oom_score_adj", text);
	if (ret == -EACCES)
		snprintf(why, len,
			 "oom_score_adj %d cannot be set without CAP_SYS_RESOURCE (restore's is %lld)",
			 t->oom_score_adj, cur);
	else if (ret)
		snprintf(why, len, "oom_score_adj %d: %s", t->oom_score_adj, strerror(-ret));
	return ret;
}

/* Writing loginuid also starts a new audit session: only when it differs. */
static int restore_loginuid(const TaskEntry *t, char *why, size_t len)
{
	char text[16];
	long long cur;
	int ret;

	if (!t->has_loginuid)
		return 0;
	ret = read_number("/proc/self/loginuid", &cur, why, len);
	if (ret || (uint32_t)cur == t->loginuid)
		return ret;
	snprintf(text, sizeof(text), "%u", t->loginuid);
	ret = write_text("/proc/self/loginuid", text);
	if (ret)
		snprintf(why, len, "loginuid %u: %s", t->loginuid, strerror(-ret));
	return ret;
}

/*
 * membarrier registrations live in the mm, which the restorer keeps while
 * it replaces every mapping: registering here is registering the target.
 */
static int restore_membarrier(const TaskEntry *t, char *why, size_t len)
{
	uint32_t bits = t->has_membarrier ? t->membarrier : 0;

	for (int b = 0; b < 32; b++) {
		if (!(bits & (1U << b)))
			continue;
		if (syscall(SYS_membarrier, 1U << b, 0, 0)) {
			snprintf(why, len, "membarrier registration %#x: %s", 1U << b,
				 strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* Which mappings a core dump would contain: a per-mm setting, kept by the blob. */
static int restore_coredump_filter(const TaskEntry *t, char *why, size_t len)
{
	char text[16];
	int ret;

	if (!t->has_coredump_filter)
		return 0;
	snprintf(text, sizeof(text), "%#x", t->coredump_filter);
	ret = write_text("/proc/self/coredump_filter", text);
	if (ret)
		snprintf(why, len, "coredump_filter %s: %s", text, strerror(-ret));
	return ret;
}

/*
 * The restorer sets the rlimits last, but a hard limit above ours needs
 * CAP_SYS_RESOURCE and would come back lower: fail here instead, before
 * anything of the target exists.
 */
static bool have_sys_resource(void)
{
	cap_flag_value_t v = CAP_CLEAR;
	cap_t caps = cap_get_proc();

	if (caps) {
		cap_get_flag(caps, CAP_SYS_RESOURCE, CAP_EFFECTIVE, &v);
		cap_free(caps);
	}
	return v == CAP_SET;
}

static int check_rlimits(const TaskEntry *t, char *why, size_t len)
{
	static const char *const names[] = { "CPU",	"FSIZE", "DATA",    "STACK",  "CORE",
					     "RSS",	"NPROC", "NOFILE",  "MEMLOCK", "AS",
					     "LOCKS", "SIGPENDING", "MSGQUEUE", "NICE", "RTPRIO",
					     "RTTIME" };

	for (size_t i = 0; i < t->n_rlimits; i++) {
		const RlimitEntry *r = t->rlimits[i];
		struct rlimit own;

		if (r->resource >= sizeof(names) / sizeof(names[0]))
			continue; /* the restorer refuses it */
		if (getrlimit((__rlimit_resource_t)r->resource, &own)) {
			snprintf(why, len, "getrlimit(RLIMIT_%s): %s", names[r->resource],
				 strerror(errno));
			return -errno;
		}
		if (own.rlim_max != RLIM_INFINITY &&
		    (r->max == RLIM_INFINITY || r->max > own.rlim_max) && !have_sys_resource()) {
			snprintf(why, len,
				 "RLIMIT_%s hard limit %" PRIu64 " cannot be set without "
				 "CAP_SYS_RESOURCE (restore's is %llu)",
				 names[r->resource], r->max, (unsigned long long)own.rlim_max);
			return -EPERM;
		}
	}
	return 0;
}

int rst_task_state(const struct rst_task *rt, char *why, size_t len)
{
	const TaskEntry *t = rt->task;
	int ret = check_rlimits(t, why, len);

	if (!ret)
		ret = restore_cgroups(t, why, len);
	if (!ret)
		ret = restore_coredump_filter(t, why, len);
	if (!ret)
		ret = restore_oom(t, why, len);
	if (!ret)
		ret = restore_loginuid(t, why, len);
	if (!ret)
		ret = restore_membarrier(t, why, len);
	return ret;
}

/* ------------------------------------------------------------ scheduling */

#define CPU_WORDS 128 /* as dump-task.h's TASK_CPU_WORDS: 8192 CPUs */

/*
 * The kernel ignores CPUs this machine lacks, so read the mask back: a
 * mask that cannot be set exactly fails the restore.
 */
static int restore_affinity(const CoreEntry *c, char *why, size_t len)
{
	uint64_t got[CPU_WORDS] = { 0 };
	size_t n = c->n_cpu_affinity;
	long r;

	if (!n)
		return 0;
	if (n > CPU_WORDS) {
		snprintf(why, len, "CPU affinity mask of %zu words, at most %d", n, CPU_WORDS);
		return -EINVAL;
	}
	if (syscall(SYS_sched_setaffinity, 0, n * sizeof(uint64_t), c->cpu_affinity)) {
		snprintf(why, len, "sched_setaffinity: %s", strerror(errno));
		return -errno;
	}
	r = syscall(SYS_sched_getaffinity, 0, sizeof(got), got);
	if (r < 0) {
		snprintf(why, len, "sched_getaffinity: %s", strerror(errno));
		return -errno;
	}
	for (size_t i = 0; i < CPU_WORDS; i++) {
		uint64_t want = i < n ? c->cpu_affinity[i] : 0;

		if (got[i] != want) {
			snprintf(why, len,
				 "CPU affinity cannot be set exactly here: CPUs %zu-%zu are %#" PRIx64
				 ", dumped %#" PRIx64,
				 i * 64, i * 64 + 63, got[i], want);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * nice first: sched_setscheduler() keeps it for the normal policies. Then
 * the policy, which for the real-time ones sets the timer slack to 0; a
 * non-zero dumped slack is set last.
 */
int rst_task_sched(const struct rst_task *rt, char *why, size_t len)
{
	const CoreEntry *c = rt->cores[0];
	struct sched_param sp = { 0 };
	int ret;

	ret = restore_affinity(c, why, len);
	if (ret)
		return ret;
	if (c->has_nice && setpriority(PRIO_PROCESS, 0, c->nice)) {
		snprintf(why, len, "setpriority(nice %d): %s", c->nice, strerror(errno));
		return -errno;
	}
	if (c->has_sched_policy) {
		int policy = (int)c->sched_policy | (c->sched_reset_on_fork ? SCHED_RESET_ON_FORK : 0);

		sp.sched_priority = (int)c->sched_priority;
		if (sched_setscheduler(0, policy, &sp)) {
			snprintf(why, len, "sched_setscheduler(policy %u, priority %u%s): %s",
				 c->sched_policy, c->sched_priority,
				 c->sched_reset_on_fork ? ", reset on fork" : "", strerror(errno));
			return -errno;
		}
	}
	if (c->has_timerslack_ns && c->timerslack_ns &&
	    prctl(PR_SET_TIMERSLACK, (unsigned long)c->timerslack_ns, 0, 0, 0)) {
		snprintf(why, len, "prctl(PR_SET_TIMERSLACK, %" PRIu64 "): %s", c->timerslack_ns,
			 strerror(errno));
		return -errno;
	}
	if (c->has_mce_kill &&
	    (c->mce_kill == PR_MCE_KILL_DEFAULT
		     ? prctl(PR_MCE_KILL, PR_MCE_KILL_CLEAR, 0, 0, 0)
		     : prctl(PR_MCE_KILL, PR_MCE_KILL_SET, (unsigned long)c->mce_kill, 0, 0))) {
		snprintf(why, len, "prctl(PR_MCE_KILL, %d): %s", c->mce_kill, strerror(errno));
		return -errno;
	}
	/*
	 * Last of all: with PR_TSC_SIGSEGV, rdtsc faults, and glibc's clock_gettime
	 * (the log's timestamps) uses it; the blob calls the syscall.
	 */
	if (c->has_tsc_mode && c->tsc_mode && prctl(PR_SET_TSC, (unsigned long)c->tsc_mode, 0, 0, 0)) {
		snprintf(why, len, "prctl(PR_SET_TSC, %u): %s", c->tsc_mode, strerror(errno));
		return -errno;
	}
	return 0;
}
