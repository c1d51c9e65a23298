/*
 * lzpidns.c - a process tree whose root is pid 1 of its own pid namespace
 * (started as `unshare --pid --fork [--mount-proc] lzpidns ...`), every
 * process of which checks its own state after a checkpoint and restore.
 *
 *   lzpidns --dir DIR [--own-proc]
 *
 * The tree (pids as seen inside the namespace):
 *   root   pid 1, session leader (setsid), a second thread "tick"
 *   ├── c1      └── c1a  (c1's child)
 *   ├── c2
 *   ├── w       a child the root reaps on request (exits 3 on SIGTERM)
 *   └── o       an orphan: made by a short-lived child of the root, which
 *               exited at once, so o's parent became pid 1 (exits 4)
 * Each process owns 256 KiB of memory with a pattern seeded by its name
 * and a counter bumped every 1 ms, writes DIR/<name>/ready ("pid=P
 * ppid=Q") and answers SIGUSR1 with DIR/<name>/result:
 *   "PASS seq=S pid=P ctr=C"  or  "FAIL seq=S pid=P: reasons"
 * checking its memory, that its counter moved, and that getpid() and
 * getppid() are what they were at setup. With --own-proc (/proc is the
 * namespace's: unshare --mount-proc) it also checks /proc/self (link,
 * NSpid and PPid of status) against getpid(); the root checks the tick
 * thread's gettid(), its /proc/self/task and its children's parents in
 * /proc. The root's ready file lists every pid:
 *   "pid=1 tid=T c1=.. c1a=.. c2=.. w=.. o=..".
 * SIGUSR2 to the root: it forks f, which checks the root's memory in its
 * copy and writes DIR/root/forked "pid=P outer=O bad=N" (O: its /proc/self
 * link), then SIGTERMs w and o, waitpid()s f, w and o and writes
 * DIR/root/reaped "w=STATUS o=STATUS f=STATUS" (their exit codes, -1 on a
 * failed wait). Children write their output to DIR/<name>/out (their own open
 * files). SIGTERM exits 0 (w 3, o 4).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzpidns"
#include "wl.h"

#define MEM_SIZE (256UL << 10)
#define WAIT_MS 30000

enum who { W_ROOT, W_C1, W_C1A, W_C2, W_W, W_O, W_NR };
static const char *const names[W_NR] = { "root", "c1", "c1a", "c2", "w", "o" };
static const int exit_codes[W_NR] = { 0, 0, 0, 0, 3, 4 };

struct node {
	enum who who;
	const char *top;
	char dir[4096];
	bool own_proc;
	uint64_t *mem;
	uint64_t ctr, ctr_at_check, seq;
	pid_t pid, ppid;	 /* at setup */
	pid_t pids[W_NR];	 /* root: every process */
	pid_t tid;		 /* root: the tick thread's, at setup */
};

static volatile sig_atomic_t check_requested, term_requested, reap_requested;
static volatile uint64_t tick_ctr;
static volatile pid_t tick_tid;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		check_requested = 1;
	else if (sig == SIGUSR2)
		reap_requested = 1;
	else
		term_requested = 1;
}

static uint64_t pattern(const struct node *n, size_t i)
{
	return ((uint64_t)(n->who + 1) << 56) ^ (i * 0x9e3779b97f4a7c15ULL);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void *tick_main(void *arg)
{
	(void)arg;
	for (;;) {
		tick_tid = (pid_t)syscall(SYS_gettid);
		tick_ctr++;
		sleep_ms(1);
	}
	return NULL;
}

static void setup_node(struct node *n, enum who who)
{
	n->who = who;
	snprintf(n->dir, sizeof(n->dir), "%s/%s", n->top, names[who]);
	if (mkdir(n->dir, 0755) && errno != EEXIST)
		die("mkdir %s", n->dir);
	n->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (n->mem == MAP_FAILED)
		die("mmap");
	for (size_t i = 0; i < MEM_SIZE / 8; i++)
		n->mem[i] = pattern(n, i);
	n->pid = getpid();
	n->ppid = getppid();
}

/* A child's own stdio: nothing shared with another process of the tree. */
static void own_stdio(const struct node *n)
{
	char path[4200];
	int fd;

	fd = open("/dev/null", O_RDONLY);
	if (fd < 0 || dup2(fd, 0) < 0)
		die("stdin");
	close(fd);
	snprintf(path, sizeof(path), "%s/out", n->dir);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0 || dup2(fd, 1) < 0)
		die("stdout %s", path);
	close(fd);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0 || dup2(fd, 2) < 0)
		die("stderr %s", path);
	close(fd);
	setvbuf(stdout, NULL, _IONBF, 0);
}

static void add(char *why, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void add(char *why, size_t len, const char *fmt, ...)
{
	size_t used = strlen(why);
	va_list ap;

	if (used + 3 >= len)
		return;
	if (used)
		strcat(why, "; ");
	va_start(ap, fmt);
	vsnprintf(why + strlen(why), len - strlen(why), fmt, ap);
	va_end(ap);
}

static long status_field(const char *path, const char *key, int *count)
{
	char buf[4096], *s, *e;
	long v = -1;
	FILE *f = fopen(path, "r");
	size_t len;

	*count = 0;
	if (!f)
		return -1;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	s = strstr(buf, key);
	if (!s)
		return -1;
	s += strlen(key);
	for (;;) {
		long x = strtol(s, &e, 10);

		if (e == s)
			break;
		v = x;
		(*count)++;
		s = e;
		if (*s == '\n')
			break;
	}
	return v;
}

static long stat_ppid(pid_t pid)
{
	char path[64], buf[1024], *s;
	FILE *f;
	size_t len;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	s = strrchr(buf, ')');
	if (!s || sscanf(s + 1, " %*c %d", &ppid) != 1)
		return -1;
	return ppid;
}

static void check_own_proc(const struct node *n, char *why, size_t len)
{
	char link[64];
	ssize_t k = readlink("/proc/self", link, sizeof(link) - 1);
	int cnt;
	long v;

	link[k > 0 ? k : 0] = '\0';
	if (k <= 0 || atoi(link) != getpid())
		add(why, len, "/proc/self is \"%s\", getpid() %d", link, getpid());
	v = status_field("/proc/self/status", "\nNSpid:", &cnt);
	if (cnt != 1 || v != getpid())
		add(why, len, "NSpid of /proc/self/status %ld (%d fields), getpid() %d", v, cnt,
		    getpid());
	v = status_field("/proc/self/status", "\nPPid:", &cnt);
	if (v != getppid())
		add(why, len, "PPid of /proc/self/status %ld, getppid() %d", v, getppid());
	(void)n;
}

static void check_root(struct node *n, char *why, size_t len)
{
	static uint64_t tick_at_check;
	struct dirent *de;
	int nr = 0, extra = 0;
	DIR *d;

	if (tick_tid != n->tid)
		add(why, len, "tick thread's gettid() %d, was %d", tick_tid, n->tid);
	if (tick_ctr <= tick_at_check)
		add(why, len, "tick thread's counter did not move (%" PRIu64 ")", tick_ctr);
	tick_at_check = tick_ctr;
	if (!n->own_proc)
		return;
	d = opendir("/proc/self/task");
	while (d && (de = readdir(d))) {
		pid_t t = atoi(de->d_name);

		if (t <= 0)
			continue;
		nr++;
		extra += t != getpid() && t != n->tid;
	}
	if (d)
		closedir(d);
	if (nr != 2 || extra)
		add(why, len, "/proc/self/task lists %d tasks, %d not 1 or %d", nr, extra, n->tid);
	for (int w = W_C1; w < W_NR; w++) {
		long want = w == W_C1A ? n->pids[W_C1] : 1, got = stat_ppid(n->pids[w]);

		if (!n->pids[w])
			continue; /* reaped on request */
		if (got != want)
			add(why, len, "/proc/%d/stat (%s) gives parent %ld, want %ld", n->pids[w],
			    names[w], got, want);
	}
}

static void do_check(struct node *n)
{
	char why[2048] = "", text[2300];
	size_t bad = 0;

	n->seq++;
	for (size_t i = 0; i < MEM_SIZE / 8; i++)
		bad += n->mem[i] != pattern(n, i);
	if (bad)
		add(why, sizeof(why), "%zu words of memory differ", bad);
	if (n->ctr <= n->ctr_at_check)
		add(why, sizeof(why), "counter did not move (%" PRIu64 ")", n->ctr);
	n->ctr_at_check = n->ctr;
	if (getpid() != n->pid)
		add(why, sizeof(why), "getpid() %d, was %d", getpid(), n->pid);
	if (getppid() != n->ppid)
		add(why, sizeof(why), "getppid() %d, was %d", getppid(), n->ppid);
	if (n->own_proc)
		check_own_proc(n, why, sizeof(why));
	if (n->who == W_ROOT)
		check_root(n, why, sizeof(why));
	if (why[0])
		snprintf(text, sizeof(text), "FAIL seq=%" PRIu64 " pid=%d: %s\n", n->seq, getpid(),
			 why);
	else
		snprintf(text, sizeof(text), "PASS seq=%" PRIu64 " pid=%d ctr=%" PRIu64 "\n", n->seq,
			 getpid(), n->ctr);
	wl_publish(n->dir, "result", text);
}

/*
 * Root: a new child f checks the root's memory in its copy (after a lazy
 * restore, pages still outstanding are served through f's own uffd) and
 * writes DIR/root/forked "pid=P outer=O" (outer: its /proc/self link, the
 * pid outside when /proc is not the namespace's); exits 0 if intact.
 */
static int fork_checker(struct node *n)
{
	char text[128], link[32];
	pid_t f = fork(), got;
	size_t bad = 0;
	ssize_t k;
	int s;

	if (f < 0)
		return -1;
	if (f == 0) {
		for (size_t i = 0; i < MEM_SIZE / 8; i++)
			bad += n->mem[i] != pattern(n, i);
		k = readlink("/proc/self", link, sizeof(link) - 1);
		link[k > 0 ? k : 0] = '\0';
		snprintf(text, sizeof(text), "pid=%d outer=%s bad=%zu\n", getpid(), link, bad);
		wl_publish(n->dir, "forked", text);
		_exit(bad ? 1 : 0);
	}
	do
		got = waitpid(f, &s, 0);
	while (got < 0 && errno == EINTR);
	return got == f && WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

/* Root: fork_checker, then SIGTERM w and o, reap each. */
static void do_reap(struct node *n)
{
	char text[128];
	int st[2] = { -1, -1 }, fst = fork_checker(n);
	const enum who ws[2] = { W_W, W_O };

	for (int k = 0; k < 2; k++) {
		pid_t p = n->pids[ws[k]], got;
		int s;

		if (!p || kill(p, SIGTERM))
			continue;
		do
			got = waitpid(p, &s, 0);
		while (got < 0 && errno == EINTR);
		if (got == p && WIFEXITED(s))
			st[k] = WEXITSTATUS(s);
		n->pids[ws[k]] = 0;
	}
	snprintf(text, sizeof(text), "w=%d o=%d f=%d\n", st[0], st[1], fst);
	wl_publish(n->dir, "reaped", text);
}

static void install_handlers(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

static __attribute__((noreturn)) void run(struct node *n)
{
	char text[1024];

	if (n->who != W_ROOT) {
		snprintf(text, sizeof(text), "pid=%d ppid=%d\n", n->pid, n->ppid);
		wl_publish(n->dir, "ready", text);
	}
	n->ctr_at_check = n->ctr;
	for (;;) {
		n->ctr++;
		if (check_requested) {
			check_requested = 0;
			do_check(n);
		}
		if (reap_requested && n->who == W_ROOT) {
			reap_requested = 0;
			do_reap(n);
		}
		if (term_requested)
			exit(exit_codes[n->who]);
		sleep_ms(1);
	}
}

static pid_t spawn(struct node *parent, enum who who);

static __attribute__((noreturn)) void child_main(struct node *n, enum who who)
{
	setup_node(n, who);
	own_stdio(n);
	if (who == W_C1)
		spawn(n, W_C1A);
	if (who == W_O) {
		/* Wait until our short-lived parent is gone and pid 1 adopted us. */
		for (int ms = 0; getppid() != 1; ms++) {
			if (ms > WAIT_MS)
				die("o: not adopted by pid 1");
			sleep_ms(1);
		}
		n->ppid = getppid();
	}
	run(n);
}

static pid_t spawn(struct node *parent, enum who who)
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0)
		child_main(parent, who);
	return pid;
}

/* The root's short-lived child that makes o and exits: o is orphaned. */
static void spawn_orphan(struct node *n)
{
	pid_t t = fork();
	int st;

	if (t < 0)
		die("fork");
	if (t == 0) {
		if (fork() == 0)
			child_main(n, W_O);
		_exit(0);
	}
	while (waitpid(t, &st, 0) < 0 && errno == EINTR)
		;
}

/* The pid a child wrote into its ready file (after waiting for it). */
static pid_t ready_pid(const struct node *n, enum who who)
{
	char path[4200], buf[128];

	snprintf(path, sizeof(path), "%s/%s/ready", n->top, names[who]);
	for (int ms = 0; ms < WAIT_MS; ms++) {
		FILE *f = fopen(path, "r");
		int pid;

		if (f) {
			size_t len = fread(buf, 1, sizeof(buf) - 1, f);

			fclose(f);
			buf[len] = '\0';
			if (sscanf(buf, "pid=%d", &pid) == 1)
				return pid;
		}
		sleep_ms(1);
	}
	errno = ETIMEDOUT;
	die("%s never got ready", names[who]);
}

int main(int argc, char **argv)
{
	struct node n = { 0 };
	char text[1024];
	pthread_t th;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			n.top = argv[++i];
		else if (!strcmp(argv[i], "--own-proc"))
			n.own_proc = true;
		else
			n.top = NULL, i = argc;
	}
	if (!n.top) {
		fprintf(stderr, "usage: lzpidns --dir DIR [--own-proc]\n");
		return 2;
	}
	if (getsid(0) != getpid() && setsid() < 0)
		die("setsid");
	setvbuf(stdout, NULL, _IONBF, 0);
	install_handlers();
	setup_node(&n, W_ROOT);
	if (n.pid != 1) {
		errno = EINVAL;
		die("not pid 1 of a pid namespace (pid %d): start under unshare --pid --fork", n.pid);
	}
	spawn(&n, W_C1);
	spawn(&n, W_C2);
	spawn(&n, W_W);
	spawn_orphan(&n);
	for (int w = W_C1; w < W_NR; w++)
		n.pids[w] = ready_pid(&n, (enum who)w);
	if (pthread_create(&th, NULL, tick_main, NULL))
		die("pthread_create");
	while (!tick_tid)
		sleep_ms(1);
	n.tid = tick_tid;
	snprintf(text, sizeof(text), "pid=%d tid=%d c1=%d c1a=%d c2=%d w=%d o=%d\n", n.pid, n.tid,
		 n.pids[W_C1], n.pids[W_C1A], n.pids[W_C2], n.pids[W_W], n.pids[W_O]);
	wl_publish(n.dir, "ready", text);
	run(&n);
}
