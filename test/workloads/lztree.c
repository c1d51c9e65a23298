/*
 * lztree.c - a three-level process tree whose every process can check its
 * own state after a checkpoint and restore.
 *
 *   lztree --dir DIR
 *
 * The tree (the root is started as a session and group leader, setsid):
 *   root            DIR/           session and group leader
 *   ├── a           DIR/a/         leader of a process group of its own
 *   │   ├── a1      DIR/a1/        in a's group
 *   │   └── z       (no dir)       exited with status 7, never reaped by a: a zombie
 *   └── b           DIR/b/         stopped by SIGSTOP once everyone is ready
 *       └── b1      DIR/b1/        in the root's group
 * Each live process owns 512 KiB of memory with a pattern seeded by its
 * name and a counter bumped every 1 ms, writes DIR/<name>/ready ("pid=P")
 * and answers SIGUSR1 with DIR/<name>/result:
 *   "PASS seq=S pid=P ctr=C ..."  or  "FAIL seq=S pid=P ...: reasons"
 * checking its memory, that its counter moved, its parent, group and
 * session; a also checks that z is still its unreaped zombie with exit
 * status 7 (waitid WNOWAIT); the root also checks the shape of the whole
 * tree from /proc (each pid's parent, group, session and state: b stopped,
 * z a zombie). The root's ready file lists every pid:
 *   "pid=R a=A a1=A1 z=Z b=B b1=B1".
 * Children write their output to DIR/<name>/out (their own open files: a
 * description shared across processes is not dumped yet). SIGTERM exits 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lztree"
#include "wl.h"

#define MEM_SIZE (512UL << 10)
#define ZOMBIE_STATUS 7
#define WAIT_MS 30000

enum who { W_ROOT, W_A, W_A1, W_Z, W_B, W_B1, W_NR };
static const char *const names[W_NR] = { "root", "a", "a1", "z", "b", "b1" };

struct node {
	enum who who;
	char dir[4096];
	uint64_t *mem;
	uint64_t ctr, ctr_at_check, seq;
	pid_t ppid, pgid, sid;	 /* as set up */
	pid_t pids[W_NR];	 /* root: every process; a: z */
};


static uint64_t pattern(enum who w, uint64_t i)
{
	uint64_t x = (i + 7) * 0xbf58476d1ce4e5b9ULL ^ ((uint64_t)w << 48);

	x ^= x >> 31;
	return x | 1;
}

static void addf(char *buf, size_t size, const char *fmt, ...)
{
	size_t n = strlen(buf);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
}

/* /proc/PID/stat: state, ppid, pgrp, session; 0 if there is no such process. */
static int read_stat(pid_t pid, char *state, pid_t *ppid, pid_t *pgid, pid_t *sid)
{
	char path[64], buf[1024], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	return p && sscanf(p + 2, "%c %d %d %d", state, ppid, pgid, sid) == 4;
}

/* The root: the shape of the tree, from /proc. */
static void check_shape(const struct node *n, char *fails, size_t size)
{
	static const enum who parent[W_NR] = { W_NR, W_ROOT, W_A, W_A, W_ROOT, W_B };

	for (int w = W_A; w < W_NR; w++) {
		pid_t pid = n->pids[w], ppid, pgid, sid;
		pid_t want_pgid = (w == W_A || w == W_A1 || w == W_Z) ? n->pids[W_A] : n->pids[W_ROOT];
		char st;

		if (!read_stat(pid, &st, &ppid, &pgid, &sid)) {
			addf(fails, size, "%s (pid %d) is gone; ", names[w], pid);
			continue;
		}
		if (ppid != n->pids[parent[w]] || pgid != want_pgid || sid != n->pids[W_ROOT])
			addf(fails, size, "%s: ppid %d pgid %d sid %d; ", names[w], ppid, pgid, sid);
		if (w == W_Z && st != 'Z')
			addf(fails, size, "z is in state %c, not a zombie; ", st);
		if (w == W_B && st != 'T')
			addf(fails, size, "b is in state %c, not stopped; ", st);
		if (w != W_Z && w != W_B && (st == 'T' || st == 't' || st == 'Z'))
			addf(fails, size, "%s is in state %c; ", names[w], st);
	}
}

/* a: z is still its zombie, with its exit status, and stays one. */
static void check_zombie(const struct node *n, char *fails, size_t size)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)n->pids[W_Z], &si, WEXITED | WNOHANG | WNOWAIT))
		addf(fails, size, "waitid of z (pid %d): %s; ", n->pids[W_Z], strerror(errno));
	else if (si.si_pid != n->pids[W_Z] || si.si_code != CLD_EXITED ||
		 si.si_status != ZOMBIE_STATUS)
		addf(fails, size, "z: pid %d code %d status %d; ", si.si_pid, si.si_code,
		     si.si_status);
}

static void self_check(struct node *n)
{
	char fails[4096] = "", text[4300];

	for (uint64_t i = 0; i < MEM_SIZE / 8; i++) {
		if (n->mem[i] != pattern(n->who, i)) {
			addf(fails, sizeof(fails), "memory word %" PRIu64 " wrong; ", i);
			break;
		}
	}
	if (n->ctr <= n->ctr_at_check)
		addf(fails, sizeof(fails), "counter stuck at %" PRIu64 "; ", n->ctr);
	n->ctr_at_check = n->ctr;
	/* The root's parent is whoever started (or restored) it: not checked. */
	if ((n->who != W_ROOT && getppid() != n->ppid) || getpgrp() != n->pgid || getsid(0) != n->sid)
		addf(fails, sizeof(fails), "ppid %d pgid %d sid %d, want %d %d %d; ", getppid(),
		     getpgrp(), getsid(0), n->ppid, n->pgid, n->sid);
	if (n->who == W_ROOT)
		check_shape(n, fails, sizeof(fails));
	if (n->who == W_A)
		check_zombie(n, fails, sizeof(fails));
	snprintf(text, sizeof(text), "%s seq=%" PRIu64 " pid=%d ctr=%" PRIu64 "%s%s\n",
		 fails[0] ? "FAIL" : "PASS", ++n->seq, getpid(), n->ctr, fails[0] ? ": " : "",
		 fails);
	wl_publish(n->dir, "result", text);
}

static void run(struct node *n)
{
	struct timespec ms = { 0, 1000000 };

	while (!term_requested) {
		if (check_requested) {
			check_requested = 0;
			self_check(n);
		}
		nanosleep(&ms, NULL);
		n->ctr++;
	}
	exit(0);
}

static void setup_node(struct node *n, enum who w, const char *root_dir)
{
	char text[64];

	n->who = w;
	if (w == W_ROOT)
		snprintf(n->dir, sizeof(n->dir), "%s", root_dir);
	else
		snprintf(n->dir, sizeof(n->dir), "%s/%s", root_dir, names[w]);
	n->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (n->mem == MAP_FAILED)
		die("mmap");
	for (uint64_t i = 0; i < MEM_SIZE / 8; i++)
		n->mem[i] = pattern(w, i);
	n->ppid = getppid();
	n->pgid = getpgrp();
	n->sid = getsid(0);
	if (w == W_ROOT)
		return;
	snprintf(text, sizeof(text), "pid=%d\n", getpid());
	wl_publish(n->dir, "ready", text);
}

/* In a new child: its own dir and output (not the parent's open file). */
static void child_files(enum who w, const char *root_dir)
{
	char dir[4200], out[4300];
	int fd;

	snprintf(dir, sizeof(dir), "%s/%s", root_dir, names[w]);
	if (mkdir(dir, 0755) && errno != EEXIST)
		die("mkdir %s", dir);
	snprintf(out, sizeof(out), "%s/out", dir);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		die("open %s", out);
	close(fd);
	if (chdir(dir))
		die("chdir %s", dir);
}

static pid_t spawn(enum who w, const char *root_dir, void (*body)(enum who, const char *))
{
	pid_t pid = fork();

	if (pid < 0)
		die("fork");
	if (pid == 0) {
		if (w != W_Z)
			child_files(w, root_dir);
		body(w, root_dir);
		exit(0);
	}
	return pid;
}

static void leaf(enum who w, const char *root_dir)
{
	static struct node n;

	if (w == W_Z)
		_exit(ZOMBIE_STATUS);
	setup_node(&n, w, root_dir);
	run(&n);
}

static void wait_file(const char *root_dir, enum who w)
{
	char path[4300];

	snprintf(path, sizeof(path), "%s/%s/ready", root_dir, names[w]);
	for (int ms = 0; access(path, F_OK); ms++) {
		if (ms == WAIT_MS) {
			errno = ETIMEDOUT;
			die("waiting for %s", path);
		}
		usleep(1000);
	}
}

/* a: its own group, a child a1 in it, and a zombie z. */
static void node_a(enum who w, const char *root_dir)
{
	static struct node n;

	if (setpgid(0, 0))
		die("setpgid");
	n.pids[W_A1] = spawn(W_A1, root_dir, leaf);
	n.pids[W_Z] = spawn(W_Z, root_dir, leaf);
	/* z is a zombie once it shows up as one; a never reaps it. */
	for (char st = 0; st != 'Z';) {
		pid_t x;

		if (!read_stat(n.pids[W_Z], &st, &x, &x, &x))
			die("z vanished");
		usleep(1000);
	}
	wait_file(root_dir, W_A1);
	setup_node(&n, w, root_dir);
	run(&n);
}

static void node_b(enum who w, const char *root_dir)
{
	static struct node n;

	spawn(W_B1, root_dir, leaf);
	wait_file(root_dir, W_B1);
	setup_node(&n, w, root_dir);
	run(&n);
}

/* a's pids of a1 and z, which only a knows: /proc/A/task/A/children, in fork order. */
static void read_a_children(struct node *n)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", n->pids[W_A], n->pids[W_A]);
	f = fopen(path, "r");
	if (!f || fscanf(f, "%d %d", &n->pids[W_A1], &n->pids[W_Z]) != 2)
		die("reading %s", path);
	fclose(f);
}

int main(int argc, char **argv)
{
	static struct node n;
	struct sigaction sa = { 0 };
	const char *dir = NULL;
	char text[256];
	char st = 0;
	pid_t x;

	for (int i = 1; i + 1 < argc; i += 2)
		if (!strcmp(argv[i], "--dir"))
			dir = argv[i + 1];
	if (!dir) {
		fprintf(stderr, "usage: lztree --dir DIR\n");
		return 2;
	}
	sa.sa_handler = wl_on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = wl_on_term;
	sigaction(SIGTERM, &sa, NULL);
	if (getsid(0) != getpid() && setsid() < 0)
		die("setsid");
	n.pids[W_ROOT] = getpid();
	n.pids[W_A] = spawn(W_A, dir, node_a);
	n.pids[W_B] = spawn(W_B, dir, node_b);
	wait_file(dir, W_A);
	wait_file(dir, W_B);
	read_a_children(&n);
	snprintf(text, sizeof(text), "/proc/%d/task/%d/children", n.pids[W_B], n.pids[W_B]);
	{
		FILE *f = fopen(text, "r");

		if (!f || fscanf(f, "%d", &n.pids[W_B1]) != 1)
			die("reading %s", text);
		fclose(f);
	}
	kill(n.pids[W_B], SIGSTOP);
	for (int ms = 0; st != 'T'; ms++) {
		if (ms == WAIT_MS || !read_stat(n.pids[W_B], &st, &x, &x, &x)) {
			errno = ETIMEDOUT;
			die("waiting for b to stop");
		}
		usleep(1000);
	}
	setup_node(&n, W_ROOT, dir);
	snprintf(text, sizeof(text), "pid=%d a=%d a1=%d z=%d b=%d b1=%d\n", n.pids[W_ROOT],
		 n.pids[W_A], n.pids[W_A1], n.pids[W_Z], n.pids[W_B], n.pids[W_B1]);
	wl_publish(dir, "ready", text);
	run(&n);
	return 0;
}
