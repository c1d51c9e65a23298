/*
 * lzcreds.c - a process that checks its own credentials after a restore.
 *
 *   lzcreds --dir DIR [--groups G,G,...] [--resgid R,E,S] [--fsgid G]
 *           [--resuid R,E,S] [--fsuid U] [--caps EFF,PRM,INH] [--ambient CAP,...]
 *           [--securebits N] [--pdeathsig SIG]
 *
 * Started as whatever setpriv made it, it first changes its own credentials
 * as asked, in this order: setgroups, setresgid, setfsgid, setresuid (with
 * PR_SET_KEEPCAPS around it, so the permitted set survives, and effective
 * raised to permitted again after it), setfsuid,
 * capset (hex masks), raise ambient capabilities, PR_SET_SECUREBITS, then
 * PR_SET_PDEATHSIG (a change of ids clears it). Then it records what the
 * kernel says it holds: the Uid/Gid/Groups/Cap.../NoNewPrivs lines of
 * /proc/self/status, PR_GET_SECUREBITS, PR_GET_DUMPABLE, PR_GET_PDEATHSIG,
 * and what setuid(0) does in a child (0 or the errno). DIR/ready says
 * "pid=P setuid0=E" and DIR/before holds the record.
 *
 * On SIGUSR1 it records again and writes DIR/result:
 *   "PASS pid=P setuid0=E" or "FAIL pid=P setuid0=E: what differs"
 * SIGTERM exits 0.
 */
#include <errno.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzcreds"
#include "wl.h"

static volatile sig_atomic_t check_requested, term_requested;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		check_requested = 1;
	else
		term_requested = 1;
}

/* "A,B,C" -> up to max unsigned numbers (base 0: hex with 0x). */
static int parse_list(const char *s, unsigned long *out, int max)
{
	int n = 0;

	while (*s && n < max) {
		char *end;

		out[n++] = strtoul(s, &end, 0);
		if (*end != ',' && *end)
			die("bad list %s", s);
		s = *end ? end + 1 : end;
	}
	return n;
}

/* What setuid(0) does for us, tried in a child: 0 or its errno. */
static int probe_setuid0(void)
{
	int st;
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (!pid)
		_exit(setuid(0) ? errno : 0);
	if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		die("waitpid");
	return WEXITSTATUS(st);
}

static void record(char *buf, size_t len, int *setuid0)
{
	static const char *const keys[] = { "Uid:", "Gid:", "Groups:", "CapInh:", "CapPrm:",
					    "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:" };
	char line[4096];
	int pdeath = -1;
	size_t off = 0;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		die("open /proc/self/status");
	buf[0] = '\0';
	while (fgets(line, sizeof(line), f))
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (!strncmp(line, keys[i], strlen(keys[i])) && off + strlen(line) < len)
				off += (size_t)snprintf(buf + off, len - off, "%s", line);
	fclose(f);
	if (prctl(PR_GET_PDEATHSIG, &pdeath))
		die("PR_GET_PDEATHSIG");
	snprintf(buf + off, len - off, "securebits:\t%#x\ndumpable:\t%d\npdeathsig:\t%d\n",
		 prctl(PR_GET_SECUREBITS), prctl(PR_GET_DUMPABLE), pdeath);
	*setuid0 = probe_setuid0();
}

static void set_caps(const char *arg)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	unsigned long v[3];

	if (parse_list(arg, v, 3) != 3)
		die("--caps EFF,PRM,INH");
	for (int i = 0; i < 2; i++) {
		d[i].effective = (uint32_t)(v[0] >> (32 * i));
		d[i].permitted = (uint32_t)(v[1] >> (32 * i));
		d[i].inheritable = (uint32_t)(v[2] >> (32 * i));
	}
	if (syscall(SYS_capset, &h, d))
		die("capset %s", arg);
}

static void raise_effective(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		die("capget");
	d[0].effective = d[0].permitted;
	d[1].effective = d[1].permitted;
	if (syscall(SYS_capset, &h, d))
		die("capset");
}

static void set_ids(int argc, char **argv)
{
	unsigned long v[64];
	int n;

	for (int i = 1; i + 1 < argc; i += 2) {
		const char *o = argv[i], *a = argv[i + 1];

		if (!strcmp(o, "--groups")) {
			gid_t g[64];

			n = parse_list(a, v, 64);
			for (int j = 0; j < n; j++)
				g[j] = (gid_t)v[j];
			if (syscall(SYS_setgroups, n, g))
				die("setgroups");
		} else if (!strcmp(o, "--resgid")) {
			if (parse_list(a, v, 3) != 3 || syscall(SYS_setresgid, v[0], v[1], v[2]))
				die("setresgid %s", a);
		} else if (!strcmp(o, "--fsgid")) {
			syscall(SYS_setfsgid, strtoul(a, NULL, 0));
		} else if (!strcmp(o, "--resuid")) {
			if (prctl(PR_SET_KEEPCAPS, 1) || parse_list(a, v, 3) != 3 ||
			    syscall(SYS_setresuid, v[0], v[1], v[2]) || prctl(PR_SET_KEEPCAPS, 0))
				die("setresuid %s", a);
			raise_effective(); /* emptied by the switch; --fsuid needs it */
		} else if (!strcmp(o, "--fsuid")) {
			syscall(SYS_setfsuid, strtoul(a, NULL, 0));
		} else if (!strcmp(o, "--caps")) {
			set_caps(a);
		} else if (!strcmp(o, "--ambient")) {
			n = parse_list(a, v, 64);
			for (int j = 0; j < n; j++)
				if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, v[j], 0, 0))
					die("raise ambient %lu", v[j]);
		} else if (!strcmp(o, "--securebits")) {
			if (prctl(PR_SET_SECUREBITS, strtoul(a, NULL, 0)))
				die("PR_SET_SECUREBITS %s", a);
		} else if (!strcmp(o, "--pdeathsig")) {
			if (prctl(PR_SET_PDEATHSIG, strtoul(a, NULL, 0)))
				die("PR_SET_PDEATHSIG %s", a);
		}
	}
}

int main(int argc, char **argv)
{
	static char before[8192], now[8192], text[20000];
	const char *dir = NULL;
	struct sigaction sa;
	int su_before, su_now;

	for (int i = 1; i + 1 < argc; i += 2)
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
	if (!dir) {
		fprintf(stderr, "usage: lzcreds --dir DIR [options]\n");
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR1, &sa, NULL) || sigaction(SIGTERM, &sa, NULL))
		die("sigaction");
	set_ids(argc, argv);
	record(before, sizeof(before), &su_before);
	wl_publish(dir, "before", before);
	snprintf(text, sizeof(text), "pid=%d setuid0=%d\n", getpid(), su_before);
	wl_publish(dir, "ready", text);
	/* Polled, not pause(): a SIGUSR1 between the test and pause() would be lost. */
	while (!term_requested) {
		const struct timespec nap = { 0, 10 * 1000 * 1000 };

		nanosleep(&nap, NULL);
		if (!check_requested)
			continue;
		check_requested = 0;
		record(now, sizeof(now), &su_now);
		if (!strcmp(before, now) && su_now == su_before)
			snprintf(text, sizeof(text), "PASS pid=%d setuid0=%d\n", getpid(), su_now);
		else
			snprintf(text, sizeof(text), "FAIL pid=%d setuid0=%d: was %d and\n%s\nnow\n%s",
				 getpid(), su_now, su_before, before, now);
		wl_publish(dir, "result", text);
	}
	return 0;
}
