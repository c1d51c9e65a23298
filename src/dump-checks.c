/*
 * dump-checks.c - state the images have no place for, refused while the
 * process is frozen and nothing has been injected or written, so that a
 * refusal leaves it exactly as it was (detached, running on).
 *
 * Each check reads /proc only:
 *  - file leases (and any lock but flock, POSIX and OFD locks, which
 *    fd-desc.c dumps): "lock:" lines of /proc/PID/fdinfo/N, which name the
 *    lock kind and type;
 *  - a shell job's terminal, a session of another process, an exit signal
 *    other than SIGCHLD: /proc/PID/stat;
 *  - speculation controls, LAM (untag_mask) and shadow stacks: the lines
 *    of /proc/PID/status against lazarus's own; an LSM label likewise;
 *  - KSM for the whole process (ksm_stat), an autogroup nice value;
 *  - NUMA memory policies: get_mempolicy injected into the leader for the
 *    task and for each VMA (dump_check_numa_injected, the injection
 *    phase); only if one is not the default, numa_maps for the message;
 *  - namespaces: every /proc/PID/ns/X link against lazarus's own
 *    /proc/self/ns/X; the process is restored into lazarus's namespaces,
 *    so any other one is refused (pid_for_children and time_for_children
 *    too: the process unshared them for children it has not made yet);
 *  - auxv: the restorer takes at most LZ_BLOB_AUXV_MAX words.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-checks.h"
#include "proc.h"
#include "restorer.h"

static int read_or_log(pid_t pid, const char *name, char **text, size_t *len)
{
	int ret = proc_read(pid, name, text, len);

	if (ret)
		pr_err("process %d: reading /proc/%d/%s: %s", pid, pid, name, strerror(-ret));
	return ret;
}

/* "lock:\t1: FLOCK  ADVISORY  WRITE 1234 ..." -> "FLOCK ADVISORY WRITE" */
static void lock_kind(const char *line, char *buf, size_t size)
{
	const char *p = strchr(line, ':');
	size_t n = 0;

	p = p ? strchr(p + 1, ':') : NULL; /* after the lock's number */
	buf[0] = '\0';
	if (!p)
		return;
	p++;
	for (int word = 0; word < 3; word++) {
		size_t len;

		p += strspn(p, " \t");
		len = strcspn(p, " \t\n");
		if (!len || n + len + 2 > size)
			break;
		n += (size_t)snprintf(buf + n, size - n, "%s%.*s", word ? " " : "", (int)len, p);
		p += len;
	}
}

static int check_fd_locks(pid_t pid, const char *fd)
{
	char name[300], kind[64], *text, *p;
	int ret;

	snprintf(name, sizeof(name), "fdinfo/%s", fd);
	ret = proc_read(pid, name, &text, NULL);
	if (ret == -ENOENT)
		return 0; /* closed meanwhile: cannot happen while frozen, harmless */
	if (ret) {
		pr_err("process %d: reading /proc/%d/%s: %s", pid, pid, name, strerror(-ret));
		return ret;
	}
	for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, "lock:", 5))
			continue;
		lock_kind(p, kind, sizeof(kind));
		/* flock, POSIX and OFD locks are dumped with the file (fd-desc.c). */
		if (!strncmp(kind, "FLOCK ", 6) || !strncmp(kind, "POSIX ", 6) ||
		    !strncmp(kind, "OFDLCK ", 7))
			continue;
		pr_err("process %d fd %s holds a file %s (%s): not supported yet", pid, fd,
		       strstr(kind, "LEASE") ? "lease" : "lock", kind);
		ret = -EOPNOTSUPP;
		break;
	}
	free(text);
	return ret;
}

static int check_locks(pid_t pid)
{
	struct dirent *de;
	char path[64];
	int ret = 0;
	DIR *dir;

	snprintf(path, sizeof(path), "/proc/%d/fdinfo", pid);
	dir = opendir(path);
	if (!dir) {
		ret = -errno;
		pr_perror("process %d: opening %s", pid, path);
		return ret;
	}
	while (!ret && (de = readdir(dir)))
		if (de->d_name[0] != '.')
			ret = check_fd_locks(pid, de->d_name);
	closedir(dir);
	return ret;
}

/* Field N (man proc_pid_stat numbering, N >= 3) of /proc/PID/stat text. */
static int stat_field(const char *text, int n, long long *val)
{
	const char *p = strrchr(text, ')');

	if (!p)
		return -EINVAL;
	p++;
	for (int i = 3; i < n; i++) {
		p += strspn(p, " ");
		p += strcspn(p, " ");
	}
	return sscanf(p, " %lld", val) == 1 ? 0 : -EINVAL;
}

/*
 * The session and the exit signal: restore makes the process a session
 * leader (setsid), or puts it in the session of a process of the same tree
 * (SESSION_IN_TREE), or with --shell-job in its own caller's session (the
 * caller passes SESSION_IN_TREE true then); and it signals its parent with
 * SIGCHLD; anything else would come back different. A process whose session
 * is led from outside and that has a controlling terminal is a shell job:
 * refused naming --shell-job. Terminals of sessions led inside the tree are
 * dump-tty.c's.
 */
static int check_stat(pid_t pid, bool session_in_tree)
{
	long long tty, sid, exit_signal;
	char *text;
	int ret;

	ret = read_or_log(pid, "stat", &text, NULL);
	if (ret)
		return ret;
	ret = stat_field(text, 7, &tty);
	if (!ret)
		ret = stat_field(text, 6, &sid);
	if (!ret)
		ret = stat_field(text, 38, &exit_signal);
	free(text);
	if (ret) {
		pr_err("process %d: cannot parse /proc/%d/stat", pid, pid);
		return ret;
	}
	if (sid != pid && !session_in_tree && tty) {
		unsigned maj = major((dev_t)tty), min = minor((dev_t)tty);

		if (maj >= 136 && maj <= 143)
			pr_err("process %d has the controlling terminal /dev/pts/%u of session %lld, "
			       "led from outside the tree: dump it with --shell-job",
			       pid, (maj - 136) * 256 + min, sid);
		else
			pr_err("process %d has the controlling terminal %u:%u of session %lld, "
			       "led from outside the tree: dump it with --shell-job",
			       pid, maj, min, sid);
		return -EOPNOTSUPP;
	}
	if (sid != pid && !session_in_tree) {
		pr_err("process %d is in session %lld of another process: not supported yet "
		       "(start it with setsid, or dump it with --shell-job)",
		       pid, sid);
		return -EOPNOTSUPP;
	}
	if (exit_signal != SIGCHLD) {
		pr_err("process %d signals its parent with signal %lld on exit, not SIGCHLD: "
		       "not supported yet",
		       pid, exit_signal);
		return -EOPNOTSUPP;
	}
	return 0;
}

/* The value of "KEY:" in status-like text, up to the line end; "" if absent. */
static void status_value(const char *text, const char *key, char *buf, size_t size)
{
	size_t kl = strlen(key);

	buf[0] = '\0';
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, kl) || p[kl] != ':')
			continue;
		p += kl + 1;
		p += strspn(p, " \t");
		snprintf(buf, size, "%.*s", (int)strcspn(p, "\n"), p);
		return;
	}
}

/*
 * Per-task settings shown in /proc/PID/status that restore does not set:
 * the restored process has lazarus's own, so any other value is refused.
 */
static int check_status(pid_t pid)
{
	static const char *const keys[] = { "Speculation_Store_Bypass",
					    "SpeculationIndirectBranch", "untag_mask",
					    "x86_Thread_features", "x86_Thread_features_locked" };
	char *theirs, *ours, a[128], b[128];
	int ret;

	ret = read_or_log(pid, "status", &theirs, NULL);
	if (ret)
		return ret;
	ret = read_or_log(getpid(), "status", &ours, NULL);
	if (ret) {
		free(theirs);
		return ret;
	}
	for (size_t i = 0; !ret && i < sizeof(keys) / sizeof(keys[0]); i++) {
		status_value(theirs, keys[i], a, sizeof(a));
		status_value(ours, keys[i], b, sizeof(b));
		if (strcmp(a, b)) {
			pr_err("process %d: %s is \"%s\" (lazarus has \"%s\"): not supported yet",
			       pid, keys[i], a, b);
			ret = -EOPNOTSUPP;
		}
	}
	free(theirs);
	free(ours);
	return ret;
}

/* KSM for the whole process (PR_SET_MEMORY_MERGE): setting it needs CAP_SYS_RESOURCE. */
static int check_ksm(pid_t pid)
{
	char *text, v[16];
	int ret = proc_read(pid, "ksm_stat", &text, NULL);

	if (ret == -ENOENT)
		return 0; /* no CONFIG_KSM: nobody can have it */
	if (ret) {
		pr_err("process %d: reading /proc/%d/ksm_stat: %s", pid, pid, strerror(-ret));
		return ret;
	}
	status_value(text, "ksm_merge_any", v, sizeof(v));
	free(text);
	if (strcmp(v, "yes"))
		return 0;
	pr_err("process %d merges all its memory with KSM (PR_SET_MEMORY_MERGE): not supported yet",
	       pid);
	return -EOPNOTSUPP;
}

/* setsid() at restore makes a new autogroup, of nice 0. */
static int check_autogroup(pid_t pid)
{
	char *text;
	int nice = 0, ret = proc_read(pid, "autogroup", &text, NULL);

	if (ret == -ENOENT)
		return 0; /* no CONFIG_SCHED_AUTOGROUP */
	if (ret) {
		pr_err("process %d: reading /proc/%d/autogroup: %s", pid, pid, strerror(-ret));
		return ret;
	}
	if (!strstr(text, " nice ") || sscanf(strstr(text, " nice ") + 6, "%d", &nice) != 1)
		nice = 0;
	free(text);
	if (!nice)
		return 0;
	pr_err("process %d: its autogroup has nice %d: not supported yet", pid, nice);
	return -EOPNOTSUPP;
}

/*
 * NUMA memory policies (set_mempolicy, mbind): numa_maps names the policy
 * of each VMA, or the task's where the VMA has none. Restore sets none.
 * Reading it walks every page table entry of the process (it counts pages
 * per node too); dump_check_numa_injected() asks the same question first.
 */
static int check_numa(pid_t pid)
{
	char *text, pol[64];
	unsigned long start;
	int ret = proc_read(pid, "numa_maps", &text, NULL);

	if (ret == -ENOENT)
		return 0; /* no CONFIG_NUMA */
	if (ret) {
		pr_err("process %d: reading /proc/%d/numa_maps: %s", pid, pid, strerror(-ret));
		return ret;
	}
	for (char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (sscanf(p, "%lx %63s", &start, pol) != 2 || !strcmp(pol, "default"))
			continue;
		pr_err("process %d: NUMA memory policy %s at %lx: not supported yet", pid, pol,
		       start);
		ret = -EOPNOTSUPP;
		break;
	}
	free(text);
	return ret;
}

#define LZ_MPOL_DEFAULT 0
#define LZ_MPOL_F_ADDR (1 << 1)

int dump_check_numa_injected(struct tracee *t, const uint64_t *addrs, size_t n)
{
	struct tracee_call calls[TRACEE_MAX_CALLS];
	int32_t modes[TRACEE_MAX_CALLS];
	size_t done = 0;
	int ret;

	_Static_assert(sizeof(modes) <= TRACEE_SCRATCH_SIZE, "out-params fit the scratch page");
	/* Call 0 of the first batch: the task's policy; then one per VMA start. */
	while (done < n + 1) {
		size_t k = n + 1 - done < TRACEE_MAX_CALLS ? n + 1 - done : TRACEE_MAX_CALLS;

		for (size_t i = 0; i < k; i++) {
			size_t v = done + i;

			calls[i] = (struct tracee_call){ .nr = SYS_get_mempolicy,
							 .args = { t->scratch + i * sizeof(int32_t) } };
			if (v) {
				calls[i].args[3] = addrs[v - 1];
				calls[i].args[4] = LZ_MPOL_F_ADDR;
			}
		}
		ret = tracee_syscalls(t, calls, k);
		if (!ret)
			ret = tracee_read(t, t->scratch, modes, k * sizeof(int32_t));
		if (ret) {
			pr_err("process %d: injected get_mempolicy: %s", t->pid, strerror(-ret));
			return ret;
		}
		for (size_t i = 0; i < k; i++)
			if (calls[i].ret || modes[i] != LZ_MPOL_DEFAULT)
				return check_numa(t->pid); /* a policy, or no answer: numa_maps says */
		done += k;
	}
	return 0;
}

/* An LSM label (AppArmor, SELinux...) other than lazarus's own. */
static int check_lsm(pid_t pid)
{
	char *theirs = NULL, *ours = NULL;
	int r1 = proc_read(pid, "attr/current", &theirs, NULL);
	int r2 = proc_read(getpid(), "attr/current", &ours, NULL);
	int ret = 0;

	if (r1 && r2)
		ret = 0; /* no LSM that keeps task labels */
	else if (r1 || r2 || strcmp(theirs, ours)) {
		if (theirs)
			theirs[strcspn(theirs, "\n")] = '\0';
		if (ours)
			ours[strcspn(ours, "\n")] = '\0';
		pr_err("process %d: security label \"%s\" (lazarus has \"%s\"): not supported yet",
		       pid, theirs ? theirs : "?", ours ? ours : "?");
		ret = -EOPNOTSUPP;
	}
	free(theirs);
	free(ours);
	return ret;
}

/* The namespace NAME the tree should be in: NS's (dump-ns.h) or lazarus's own. */
static const char *expected_ns(const struct dump_ns *ns, const char *name)
{
	if (ns && ns->root_init && (!strcmp(name, "pid") || !strcmp(name, "pid_for_children")))
		return ns->pid_link;
	if (ns && ns->mnt_proc && !strcmp(name, "mnt"))
		return ns->mnt_link;
	if (ns && ns->ipc_own && !strcmp(name, "ipc"))
		return ns->ipc_link;
	return NULL;
}

static int check_namespaces(pid_t pid, const struct dump_ns *tree_ns)
{
	static const char *const ns[] = { "cgroup", "ipc",  "mnt",		 "net",
					  "pid",    "time", "pid_for_children", "time_for_children",
					  "user",   "uts" };
	char name[64], theirs[128], ours[128];

	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		int ret, mine;

		snprintf(name, sizeof(name), "ns/%s", ns[i]);
		mine = proc_readlink(getpid(), name, ours, sizeof(ours));
		if (!mine && expected_ns(tree_ns, ns[i]))
			snprintf(ours, sizeof(ours), "%s", expected_ns(tree_ns, ns[i]));
		ret = proc_readlink(pid, name, theirs, sizeof(theirs));
		if (ret == -ENOENT && mine == -ENOENT)
			continue; /* a namespace kind this kernel does not have */
		/*
		 * pid_for_children of a process that unshared a pid namespace
		 * and has no child in it yet cannot be read: another one too.
		 */
		if (ret == -ENOENT && !mine) {
			snprintf(theirs, sizeof(theirs), "one with no process yet");
			ret = 0;
		}
		if (ret || mine) {
			pr_err("process %d: reading /proc/%d/%s: %s", pid, ret ? pid : getpid(), name,
			       strerror(ret ? -ret : -mine));
			return ret ? ret : mine;
		}
		if (strcmp(theirs, ours)) {
			pr_err("process %d is in another %s namespace (%s, %s is in %s): "
			       "namespaces are not supported yet",
			       pid, ns[i], theirs,
			       expected_ns(tree_ns, ns[i]) ? "the tree's root" : "lazarus", ours);
			return -EOPNOTSUPP;
		}
	}
	return 0;
}

/* Words up to and including AT_NULL's pair, as dump-mm.c keeps them. */
static int check_auxv(pid_t pid)
{
	size_t len, words = 0;
	uint64_t pair[2];
	char *data;
	int ret;

	ret = read_or_log(pid, "auxv", &data, &len);
	if (ret)
		return ret;
	for (size_t off = 0; off + sizeof(pair) <= len; off += sizeof(pair)) {
		memcpy(pair, data + off, sizeof(pair));
		words += 2;
		if (!pair[0])
			break;
	}
	free(data);
	if (words <= LZ_BLOB_AUXV_MAX)
		return 0;
	pr_err("process %d: its auxv has %zu words, at most %d can be restored: not supported yet",
	       pid, words, LZ_BLOB_AUXV_MAX);
	return -EOPNOTSUPP;
}

int dump_check_state(pid_t pid, bool session_in_tree, const struct dump_ns *ns)
{
	int ret = check_namespaces(pid, ns);

	if (!ret)
		ret = check_stat(pid, session_in_tree);
	if (!ret)
		ret = check_status(pid);
	if (!ret)
		ret = check_lsm(pid);
	if (!ret)
		ret = check_ksm(pid);
	if (!ret)
		ret = check_autogroup(pid);
	if (!ret)
		ret = check_locks(pid);
	if (!ret)
		ret = check_auxv(pid);
	return ret;
}
