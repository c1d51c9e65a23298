/*
 * lazy-nspid.c - which process here a fault's thread id names
 * (lazy-nspid.h).
 *
 * In the daemon's own pid namespace the id is ours: its Tgid. In another,
 * the processes of that namespace (same ns/pid link as KIN's) are looked
 * through for a thread whose innermost NSpid is the id; only one thread
 * can have it there at a time.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lazy-nspid.h"
#include "proc.h"

#define LINK_MAX_LEN 64

static int ns_link(pid_t pid, char *buf)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/ns/pid", pid);
	n = readlink(path, buf, LINK_MAX_LEN - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* A number after KEY in a status file: the last one (the innermost for NSpid). */
static long status_last(const char *path, const char *key)
{
	char buf[2048], *s, *e;
	long v = -1;

	if (proc_read_small(path, buf, sizeof(buf)) <= 0 || !(s = strstr(buf, key)))
		return -1;
	s += strlen(key);
	for (;;) {
		long x = strtol(s, &e, 10);

		if (e == s)
			break;
		v = x;
		s = e;
		if (*s == '\n')
			break;
	}
	return v;
}

/* A thread of process PID (here) whose id inside is TID? */
static bool has_inner_tid(pid_t pid, pid_t tid)
{
	char path[96];
	struct dirent *de;
	bool found = false;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	while (d && !found && (de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/status", pid, de->d_name);
		found = status_last(path, "\nNSpid:") == tid;
	}
	if (d)
		closedir(d);
	return found;
}

static pid_t search_ns(const char *want, pid_t tid)
{
	char link[LINK_MAX_LEN];
	struct dirent *de;
	pid_t found = 0;
	DIR *d = opendir("/proc");

	while (d && !found && (de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);

		if (pid <= 0 || ns_link(pid, link) || strcmp(link, want))
			continue;
		if (has_inner_tid(pid, tid))
			found = pid;
	}
	if (d)
		closedir(d);
	return found;
}

pid_t lazy_tid_here(pid_t kin, pid_t tid)
{
	char theirs[LINK_MAX_LEN], ours[LINK_MAX_LEN], link[LINK_MAX_LEN], path[64];
	long tgid;

	if (kin <= 0 || tid <= 0 || ns_link(kin, theirs) || ns_link(getpid(), ours))
		return 0;
	if (strcmp(theirs, ours))
		return search_ns(theirs, tid);
	snprintf(path, sizeof(path), "/proc/%d/status", tid);
	tgid = status_last(path, "\nTgid:");
	if (tgid <= 0 || ns_link((pid_t)tgid, link) || strcmp(link, theirs))
		return 0;
	return (pid_t)tgid;
}
