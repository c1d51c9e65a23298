/*
 * lzstate.c - a process with the task, thread and mm state of
 * Documentation/state.md that restore must bring back exactly.
 *
 *   lzstate --dir DIR --policy batch|idle|fifo
 *
 * Sets: nice 10; affinity to one CPU (the highest it may use); the policy
 * (SCHED_BATCH, SCHED_IDLE, or SCHED_FIFO priority 10 with
 * SCHED_RESET_ON_FORK); timer slack 123456 ns (not for fifo, where the
 * kernel makes it 0); oom_score_adj 400; loginuid 3; membarrier private
 * expedited (plain and sync-core) and global expedited registrations;
 * coredump_filter 0x7; machine-check kill early; TSC mode SIGSEGV; an
 * anonymous region with MADV_DONTDUMP, one mapped MAP_NORESERVE, one with
 * MADV_DONTFORK + MADV_WIPEONFORK, each with data; and a MAP_SHARED,
 * PROT_READ mapping of DIR/shared opened O_RDWR (the fd is closed). Then
 * writes DIR/ready "pid=P" and waits.
 *
 * SIGUSR2: record the state as it is now into memory and DIR/recorded
 *   (the harness may have moved it into a cgroup before).
 * SIGUSR1: read the state again and write DIR/result:
 *   "PASS pid=P items=N" or "FAIL pid=P items=N: KEY want W got G; ..."
 *   then prove the shared mapping can still become writable: mprotect it
 *   PROT_READ|PROT_WRITE, store a byte, pread it back from DIR/shared and
 *   mprotect it back (a failure is reported as key "shared-write"); and
 *   that the membarrier registration works (MEMBARRIER_CMD_PRIVATE_EXPEDITED).
 * SIGTERM: exit 0.
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define WL_NAME "lzstate"
#include "wl.h"

#define MEMBARRIER_GET_REGISTRATIONS (1 << 9) /* Linux 6.3 */
#define REGION (64 * 1024)
#define NR_ITEMS 19
#define TEXT 8192

struct state {
	char val[NR_ITEMS][1024];
};

static const char *const keys[NR_ITEMS] = {
	"nice",	    "policy",	  "priority",	"affinity",    "timerslack", "oom_score_adj",
	"loginuid", "membarrier", "cgroup",	"dontdump",    "noreserve",  "dontfork",
	"shared",   "comm",	  "reset_on_fork", "dumpable",	"coredump_filter", "tsc",
	"mce_kill",
};

static volatile sig_atomic_t check_requested, record_requested, term_requested;
static char *dd, *nr, *df, *sh;
static const char *dir;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		check_requested = 1;
	else if (sig == SIGUSR2)
		record_requested = 1;
	else
		term_requested = 1;
}

static void slurp(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		die("open %s", path);
	n = fread(buf, 1, size - 1, f);
	buf[n] = '\0';
	fclose(f);
	for (char *p = buf; *p; p++)
		if (*p == '\n' || *p == ' ')
			*p = (p[1] ? ';' : '\0');
}

/* VmFlags of the VMA holding ADDR, without the userfaultfd ones (um uw ui). */
static void vmflags(const void *addr, char *out, size_t size)
{
	uintptr_t a = (uintptr_t)addr;
	char line[512];
	int in = 0;
	FILE *f = fopen("/proc/self/smaps", "re");

	if (!f)
		die("open smaps");
	snprintf(out, size, "(no vma)");
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a >= s && a < e;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8)) {
			size_t n = 0;

			out[0] = '\0';
			for (char *t = strtok(line + 8, " \n"); t; t = strtok(NULL, " \n"))
				if (strcmp(t, "um") && strcmp(t, "uw") && strcmp(t, "ui"))
					n += (size_t)snprintf(out + n, size - n, "%s%s", n ? "," : "", t);
			break;
		}
	}
	fclose(f);
}

static void read_state(struct state *s)
{
	struct sched_param sp;
	uint64_t mask[16] = { 0 };
	long n;
	int pol;

	memset(s, 0, sizeof(*s));
	errno = 0;
	snprintf(s->val[0], sizeof(s->val[0]), "%d", getpriority(PRIO_PROCESS, 0));
	pol = sched_getscheduler(0);
	snprintf(s->val[1], sizeof(s->val[1]), "%d", pol & ~SCHED_RESET_ON_FORK);
	if (sched_getparam(0, &sp))
		die("sched_getparam");
	snprintf(s->val[2], sizeof(s->val[2]), "%d", sp.sched_priority);
	n = syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
	for (long i = 0, off = 0; i < n / 8; i++)
		off += snprintf(s->val[3] + off, sizeof(s->val[3]) - (size_t)off, "%lx,",
				(unsigned long)mask[i]);
	snprintf(s->val[4], sizeof(s->val[4]), "%d", prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0));
	slurp("/proc/self/oom_score_adj", s->val[5], sizeof(s->val[5]));
	slurp("/proc/self/loginuid", s->val[6], sizeof(s->val[6]));
	snprintf(s->val[7], sizeof(s->val[7]), "%ld",
		 syscall(SYS_membarrier, MEMBARRIER_GET_REGISTRATIONS, 0, 0));
	slurp("/proc/self/cgroup", s->val[8], sizeof(s->val[8]));
	vmflags(dd, s->val[9], sizeof(s->val[9]));
	vmflags(nr, s->val[10], sizeof(s->val[10]));
	vmflags(df, s->val[11], sizeof(s->val[11]));
	vmflags(sh, s->val[12], sizeof(s->val[12]));
	slurp("/proc/self/comm", s->val[13], sizeof(s->val[13]));
	snprintf(s->val[14], sizeof(s->val[14]), "%d", !!(pol & SCHED_RESET_ON_FORK));
	snprintf(s->val[15], sizeof(s->val[15]), "%d", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	slurp("/proc/self/coredump_filter", s->val[16], sizeof(s->val[16]));
	{
		int tsc = -1;

		prctl(PR_GET_TSC, &tsc, 0, 0, 0);
		snprintf(s->val[17], sizeof(s->val[17]), "%d", tsc);
	}
	snprintf(s->val[18], sizeof(s->val[18]), "%d", prctl(PR_MCE_KILL_GET, 0, 0, 0, 0));
}

static void write_state(const struct state *s, const char *name, const char *head)
{
	static char text[NR_ITEMS * 1100];
	size_t off = (size_t)snprintf(text, sizeof(text), "%s\n", head);

	for (int i = 0; i < NR_ITEMS; i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s=%s\n", keys[i],
					s->val[i]);
	wl_publish(dir, name, text);
}

/* Can the shared mapping still become writable, and does it reach the file? */
static int shared_write(char *why, size_t len)
{
	char path[4200], c = 0;
	int fd, ret = 0;

	if (mprotect(sh, 4096, PROT_READ | PROT_WRITE)) {
		snprintf(why, len, "mprotect(PROT_WRITE): %s", strerror(errno));
		return -1;
	}
	sh[0] = (char)(sh[0] + 1);
	snprintf(path, sizeof(path), "%s/shared", dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || pread(fd, &c, 1, 0) != 1 || c != sh[0]) {
		snprintf(why, len, "the store did not reach %s", path);
		ret = -1;
	}
	if (fd >= 0)
		close(fd);
	if (mprotect(sh, 4096, PROT_READ))
		die("mprotect back");
	return ret;
}

static void check(const struct state *rec)
{
	static char text[NR_ITEMS * 2200];
	struct state now;
	char why[4400];
	size_t off = 0;
	int bad = 0;

	read_state(&now);
	for (int i = 0; i < NR_ITEMS; i++) {
		if (!strcmp(rec->val[i], now.val[i]))
			continue;
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s%s want %s got %s",
					bad++ ? "; " : "", keys[i], rec->val[i], now.val[i]);
	}
	if (syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0))
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%smembarrier-use %s",
					bad++ ? "; " : "", strerror(errno));
	if (shared_write(why, sizeof(why)))
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%sshared-write %s",
					bad++ ? "; " : "", why);
	{
		static char line[sizeof(text) + 128];

		snprintf(line, sizeof(line), "%s pid=%d items=%d%s%s\n", bad ? "FAIL" : "PASS",
			 getpid(), NR_ITEMS, bad ? ": " : "", bad ? text : "");
		wl_publish(dir, "result", line);
	}
}

static char *region(int flags, int advice1, int advice2)
{
	char *p = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | flags,
		       -1, 0);

	if (p == MAP_FAILED)
		die("mmap");
	if (advice1 >= 0 && madvise(p, REGION, advice1))
		die("madvise %d", advice1);
	if (advice2 >= 0 && madvise(p, REGION, advice2))
		die("madvise %d", advice2);
	for (size_t i = 0; i < REGION; i += 4096)
		p[i] = (char)(i / 4096 + 1);
	return p;
}

static void set_sched(const char *policy)
{
	struct sched_param sp = { 0 };
	int pol;
	long n;
	uint64_t mask[16] = { 0 }, one[16] = { 0 };
	int last = -1;

	if (setpriority(PRIO_PROCESS, 0, 10))
		die("setpriority");
	n = syscall(SYS_sched_getaffinity, 0, sizeof(mask), mask);
	if (n < 0)
		die("sched_getaffinity");
	for (int cpu = 0; cpu < n * 8; cpu++)
		if (mask[cpu / 64] & (1ULL << (cpu % 64)))
			last = cpu;
	one[last / 64] = 1ULL << (last % 64);
	if (syscall(SYS_sched_setaffinity, 0, sizeof(one), one))
		die("sched_setaffinity");
	if (!strcmp(policy, "batch")) {
		pol = SCHED_BATCH;
	} else if (!strcmp(policy, "idle")) {
		pol = SCHED_IDLE;
	} else if (!strcmp(policy, "fifo")) {
		pol = SCHED_FIFO | SCHED_RESET_ON_FORK;
		sp.sched_priority = 10;
	} else {
		fprintf(stderr, "lzstate: unknown policy %s\n", policy);
		exit(2);
	}
	if (strcmp(policy, "fifo") && prctl(PR_SET_TIMERSLACK, 123456, 0, 0, 0))
		die("PR_SET_TIMERSLACK");
	if (sched_setscheduler(0, pol, &sp))
		die("sched_setscheduler %s", policy);
}

static void set_process_state(void)
{
	static const int cmds[] = { MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
				    MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE,
				    MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED };
	FILE *f;

	f = fopen("/proc/self/oom_score_adj", "we");
	if (!f || fprintf(f, "400\n") < 0 || fclose(f))
		die("oom_score_adj 400");
	f = fopen("/proc/self/loginuid", "we");
	if (!f || fprintf(f, "3") < 0 || fclose(f))
		die("loginuid 3");
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (syscall(SYS_membarrier, cmds[i], 0, 0))
			die("membarrier register %#x", cmds[i]);
	f = fopen("/proc/self/coredump_filter", "we");
	if (!f || fprintf(f, "0x7") < 0 || fclose(f))
		die("coredump_filter 0x7");
	if (prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY, 0, 0))
		die("PR_MCE_KILL");
	/* rdtsc faults from now on: nothing here reads the clock. */
	if (prctl(PR_SET_TSC, PR_TSC_SIGSEGV, 0, 0, 0))
		die("PR_SET_TSC");
}

static void map_shared(void)
{
	char path[4200], page[4096];
	int fd;

	memset(page, 'S', sizeof(page));
	snprintf(path, sizeof(path), "%s/shared", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write_all(fd, page, sizeof(page)))
		die("create %s", path);
	sh = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fd, 0);
	if (sh == MAP_FAILED)
		die("mmap %s", path);
	close(fd);
}

int main(int argc, char **argv)
{
	const char *policy = NULL;
	struct state rec;
	struct sigaction sa = { .sa_handler = on_signal };
	sigset_t block, old;
	char ready[64];
	int recorded = 0;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
		else if (!strcmp(argv[i], "--policy"))
			policy = argv[i + 1];
	}
	if (!dir || !policy) {
		fprintf(stderr, "usage: lzstate --dir DIR --policy batch|idle|fifo\n");
		return 2;
	}
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGTERM);
	sigprocmask(SIG_BLOCK, &block, &old);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	dd = region(0, MADV_DONTDUMP, -1);
	nr = region(MAP_NORESERVE, -1, -1);
	df = region(0, MADV_DONTFORK, MADV_WIPEONFORK);
	map_shared();
	set_process_state();
	set_sched(policy);

	snprintf(ready, sizeof(ready), "pid=%d\n", getpid());
	wl_publish(dir, "ready", ready);
	while (!term_requested) {
		sigsuspend(&old);
		if (record_requested) {
			record_requested = 0;
			read_state(&rec);
			recorded = 1;
			write_state(&rec, "recorded", "recorded");
		}
		if (check_requested) {
			check_requested = 0;
			if (!recorded)
				{
				char t[64];

				snprintf(t, sizeof(t), "FAIL pid=%d: nothing recorded\n", getpid());
				wl_publish(dir, "result", t);
			}
			else
				check(&rec);
		}
	}
	return 0;
}
