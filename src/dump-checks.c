/*
 * dump-checks.c - state the images have no place for, refused while the
 * process is frozen and nothing has been injected or written, so that a
 * refusal leaves it exactly as it was (detached, running on).
 *
 * Each check reads /proc only:
 *  - POSIX timers: /proc/PID/timers lists one "ID:" block per timer;
 *  - file locks and leases: "lock:" lines of /proc/PID/fdinfo/N (flock,
 *    POSIX and OFD locks, leases), which name the lock kind and type;
 *  - a controlling terminal: tty_nr (field 7) of /proc/PID/stat;
 *  - namespaces: every /proc/PID/ns/X link against lazarus's own
 *    /proc/self/ns/X; the process is restored into lazarus's namespaces,
 *    so any other one is refused (pid_for_children and time_for_children
 *    too: the process unshared them for children it has not made yet);
 *  - auxv: the restorer takes at most LZ_BLOB_AUXV_MAX words.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static int check_timers(pid_t pid)
{
	unsigned nr = 0;
	char *text, *p;
	int ret;

	ret = read_or_log(pid, "timers", &text, NULL);
	if (ret)
		return ret;
	for (p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		nr += !strncmp(p, "ID:", 3);
	free(text);
	if (!nr)
		return 0;
	pr_err("process %d has %u POSIX timer%s (timer_create): not supported yet", pid, nr,
	       nr == 1 ? "" : "s");
	return -EOPNOTSUPP;
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

static int check_ctty(pid_t pid)
{
	unsigned long tty = 0;
	char *text, *p;
	int ret;

	ret = read_or_log(pid, "stat", &text, NULL);
	if (ret)
		return ret;
	/* After "(comm)": state ppid pgrp session tty_nr */
	p = strrchr(text, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %lu", &tty) != 1) {
		pr_err("process %d: cannot parse /proc/%d/stat", pid, pid);
		free(text);
		return -EINVAL;
	}
	free(text);
	if (!tty)
		return 0;
	pr_err("process %d has a controlling terminal (tty %u:%u): --shell-job is not supported yet",
	       pid, major((dev_t)tty), minor((dev_t)tty));
	return -EOPNOTSUPP;
}

static int check_namespaces(pid_t pid)
{
	static const char *const ns[] = { "cgroup", "ipc",  "mnt",		 "net",
					  "pid",    "time", "pid_for_children", "time_for_children",
					  "user",   "uts" };
	char name[64], theirs[128], ours[128];

	for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
		int ret, mine;

		snprintf(name, sizeof(name), "ns/%s", ns[i]);
		mine = proc_readlink(getpid(), name, ours, sizeof(ours));
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
			pr_err("process %d is in another %s namespace (%s, lazarus is in %s): "
			       "namespaces are not supported yet",
			       pid, ns[i], theirs, ours);
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

int dump_check_state(pid_t pid)
{
	int ret = check_namespaces(pid);

	if (!ret)
		ret = check_ctty(pid);
	if (!ret)
		ret = check_timers(pid);
	if (!ret)
		ret = check_locks(pid);
	if (!ret)
		ret = check_auxv(pid);
	return ret;
}
