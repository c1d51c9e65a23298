/*
 * restore-proc.c - create the restored tree and listen to it.
 *
 * The root is cloned with its dumped pid (clone3 set_tid) and restores
 * itself (restore-child.c, then the blob); each process creates its own
 * children first. Every process has its own status pipe, so every record
 * is known to be of that process (its pid), and its own go pipe. Records
 * of the lazarus code (RST_MSG_CHILD: a pidfd of a new child to copy)
 * come in any order across pipes: one that needs a pidfd not held yet
 * waits for it. It talks back over a pipe in
 * struct lz_rst_msg records: warnings, one failure, or "OK" when only its
 * final rt_sigreturn is left. Only this file turns records into log lines
 * (restore-finish.c logs the ptrace step after "OK"), so a failure
 * anywhere is reported exactly once. EOF without "OK" is a failure too: the
 * process died on the way.
 *
 * Every wait here is bounded. The status pipe is read with poll(): a
 * process that says nothing, uses no CPU and reads nothing for
 * RST_IDLE_TIMEOUT_S is given up on (killed, one line naming what was
 * waited for). Every failure after clone3 removes what was created: the
 * process (through a pidfd, so never a stranger that took its pid) and the
 * -d helper.
 *
 * The go pipe runs the other way: one byte lets the process go on. In lazy
 * mode the first one follows the uffd handover; the last one comes from
 * rst_proc_finish(), once the blob (blocked after "OK") is traced.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "log.h"
#include "proc.h"
#include "restore-child.h"
#include "restore-finish.h"
#include "restore-fds.h"
#include "restore-proc.h"
#include "restore-shmem.h"
#include "timens.h"

uint64_t rst_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void rst_msg_text(int fd, int type, int err, const char *fmt, ...)
{
	struct lz_rst_msg m = { .magic = LZ_RST_MSG_MAGIC, .type = (uint16_t)type,
				.step = LZ_STEP_CHILD, .err = err };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m.text, sizeof(m.text), fmt, ap);
	va_end(ap);
	while (write(fd, &m, sizeof(m)) < 0 && errno == EINTR)
		;
}

/* fork() semantics, but with the pid we ask for. */
static pid_t clone_with_pid(pid_t pid)
{
	pid_t tid = pid;
	struct clone_args ca = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&tid,
		.set_tid_size = 1,
	};

	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

/*
 * The root of a PIDNS_ROOT_INIT dump: pid 1 of a fresh pid namespace
 * (no set_tid: the first process of a namespace is its pid 1).
 */
static pid_t clone_ns_init(void)
{
	struct clone_args ca = {
		.flags = CLONE_NEWPID,
		.exit_signal = SIGCHLD,
	};

	return (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
}

/* The root with its dumped pid, or as pid 1 of a fresh pid namespace. */
static pid_t clone_root(const struct rst_proc *p)
{
	return p->newpid ? clone_ns_init() : clone_with_pid((pid_t)p->t->pid);
}

static const char *clone_why(int err, pid_t pid, char *buf, size_t len)
{
	if (err == EEXIST)
		snprintf(buf, len, "pid %d is already in use", pid);
	else
		snprintf(buf, len, "clone3 with pid %d: %s", pid, strerror(err));
	return buf;
}

static const char *clone_root_why(const struct rst_proc *p, int err, char *buf, size_t len)
{
	if (!p->newpid)
		return clone_why(err, (pid_t)p->t->pid, buf, len);
	snprintf(buf, len, "clone3(CLONE_NEWPID) of the root, pid 1 of its own pid namespace: %s",
		 strerror(err));
	return buf;
}

/*
 * --pidns: the root, our child to come, enters a fresh time namespace where
 * CLOCK_MONOTONIC and CLOCK_BOOTTIME go on from the dump's (timens.c); we
 * stay in restore's. A dump without them (older images), or a kernel without
 * time namespaces, keeps this machine's. The same for a root that was pid 1
 * of its own pid namespace, cloned by the -d helper (here) or by lazarus
 * itself (rst_tree_create: then lazarus's later children would enter it
 * too; it makes none).
 */
static void enter_timens(const struct rst_proc *p, const struct rst_chan *chans)
{
	const InventoryEntry *inv = p->im->inv;
	struct timens_clocks want = { inv->monotonic_ns, inv->boottime_ns };
	const char *what;
	int ret;

	if (!inv->has_monotonic_ns || !inv->has_boottime_ns)
		return;
	ret = timens_unshare_at(&want, &what);
	if (ret && ret != -EOPNOTSUPP) {
		rst_msg_text(chans[0].status_wr, LZ_MSG_FAIL, ret,
			     "--pidns: a time namespace for the dumped clocks: %s: %s", what,
			     strerror(-ret));
		_exit(127);
	}
}

/*
 * -d: the helper clones the target and waits until the target releases it
 * (struct rst_detach), then exits so the target is orphaned. If the target
 * fails before that, the helper reaps it: no zombie is left behind. It also
 * waits for EOF on hold_fd: until lazarus took a pidfd of the target (while
 * the helper is still its parent, take_pidfd()), the target stays its child.
 */
static void close_chans(const struct rst_chan *chans, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const int fds[4] = { chans[i].status_rd, chans[i].status_wr, chans[i].go_rd,
				     chans[i].go_wr };

		for (int k = 0; k < 4; k++)
			if (fds[k] >= 0)
				close(fds[k]);
	}
}

static __attribute__((noreturn)) void helper_main(struct rst_proc *p,
						  const struct rst_chan *chans, int hold_fd,
						  int sync_wr)
{
	int status_fd = chans[0].status_wr;
	struct rst_detach d = { .helper = getpid() };
	int rel[2], st;
	char why[128], go;
	ssize_t n;
	pid_t pid;

	if (pipe2(rel, O_CLOEXEC)) {
		rst_msg_text(status_fd, LZ_MSG_FAIL, -errno, "pipe: %s", strerror(errno));
		_exit(1);
	}
	d.release_fd = rel[1];
	if (p->newpid)
		enter_timens(p, chans);
	pid = clone_root(p);
	if (pid == 0) {
		close(rel[0]);
		rst_child_main(p->im, p->t, chans, &d, p->lazy_on ? &p->lazy : NULL);
	}
	if (pid < 0) {
		rst_msg_text(status_fd, LZ_MSG_FAIL, -errno, "%s",
			     clone_root_why(p, errno, why, sizeof(why)));
		_exit(1);
	}
	close(rel[1]);
	/* Every pipe and file of the tree: EOF on them must mean what it says. */
	close_chans(chans, p->im->nr_tasks);
	/* Our copies only: the store is lazarus's own memory too (CLONE_VM). */
	for (size_t i = 0; p->im->fstore && i < p->im->fstore->nr; i++)
		close(p->im->fstore->fds[i]);
	if (sync_wr >= 0) {
		/* CLONE_VM: lazarus goes on; nothing of its memory is ours any more. */
		while (write(sync_wr, "c", 1) < 0 && errno == EINTR)
			;
		close(sync_wr);
	}
	do
		n = read(rel[0], &go, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1) {
		do
			n = read(hold_fd, &go, 1);
		while (n < 0 && errno == EINTR);
		_exit(0); /* released: it runs on as an orphan */
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	_exit(1);
}

/*
 * The helper of -d shares our memory (CLONE_VM, its own stack and fd
 * table): creating it copies no page table and leaves no page of ours
 * copy-on-write, and its exit tears down no copy of our address space
 * (the blob waits for that exit). We wait, blocked in read(), until it has
 * cloned the root (a copy of this memory, taken while we hold no lock)
 * and closed its copies of the tree's fds; from then on it touches only
 * its own stack and makes plain syscalls. Not for the root that is pid 1
 * of a fresh pid namespace: setns() into a time namespace needs an mm of
 * its own (enter_timens).
 */
#define HELPER_STACK (8UL << 20)

/*
 * AddressSanitizer keeps per-thread state (the stack bounds it checks every
 * noreturn call against) that a CLONE_VM child on a stack of ours does not
 * have: it warns at each _exit there, and could report wrongly. Sanitized
 * builds fork the helper, as for a pid-1 root.
 */
#if defined(__SANITIZE_ADDRESS__)
#define HELPER_SHARES_MEMORY 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HELPER_SHARES_MEMORY 0
#endif
#endif
#ifndef HELPER_SHARES_MEMORY
#define HELPER_SHARES_MEMORY 1
#endif

struct helper_vm {
	struct rst_proc *p;
	const struct rst_chan *chans;
	int hold_fd, hold_wr, sync_rd, sync_wr;
};

static int helper_vm_main(void *arg)
{
	struct helper_vm *h = arg;

	/* Its own fd table: lazarus's ends are not for it (nor for the root). */
	close(h->hold_wr);
	close(h->sync_rd);
	helper_main(h->p, h->chans, h->hold_fd, h->sync_wr);
}

static int create_helper_vm(struct rst_proc *p, const struct rst_chan *chans, int hold_fd,
			    int hold_wr)
{
	struct helper_vm h = { .p = p, .chans = chans, .hold_fd = hold_fd, .hold_wr = hold_wr };
	int sync[2], ret = 0;
	ssize_t n;
	char c;

	p->helper_stack = mmap(NULL, HELPER_STACK, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE, -1, 0);
	if (p->helper_stack == MAP_FAILED) {
		p->helper_stack = NULL;
		return -errno;
	}
	/* A guard page: the root runs on a copy of this stack until the jump. */
	if (mprotect(p->helper_stack, 4096, PROT_NONE)) {
		ret = -errno;
		goto out_unmap;
	}
	if (pipe2(sync, O_CLOEXEC)) {
		ret = -errno;
		goto out_unmap;
	}
	h.sync_rd = sync[0];
	h.sync_wr = sync[1];
	p->helper = clone(helper_vm_main, (char *)p->helper_stack + HELPER_STACK, CLONE_VM | SIGCHLD,
			  &h);
	if (p->helper < 0) {
		ret = -errno;
		p->helper = 0;
		close(sync[0]);
		close(sync[1]);
		goto out_unmap;
	}
	close(sync[1]);
	/* One byte once the root is cloned, EOF if the helper gave up first. */
	do
		n = read(sync[0], &c, 1);
	while (n < 0 && errno == EINTR);
	close(sync[0]);
	return 0;
out_unmap:
	munmap(p->helper_stack, HELPER_STACK);
	p->helper_stack = NULL;
	return ret;
}

static int create_detached(struct rst_proc *p, const struct rst_chan *chans)
{
	int hold[2], ret;

	if (pipe2(hold, O_CLOEXEC)) {
		pr_perror("pipe");
		return -errno;
	}
	if (!p->newpid && HELPER_SHARES_MEMORY) {
		ret = create_helper_vm(p, chans, hold[0], hold[1]);
		close(hold[0]);
		if (ret) {
			close(hold[1]);
			pr_err("clone of the -d helper: %s", strerror(-ret));
			return ret;
		}
		p->hold_wr = hold[1];
		p->pid = (pid_t)p->t->pid;
		return 0;
	}
	p->helper = fork();
	if (p->helper == 0) {
		close(hold[1]);
		helper_main(p, chans, hold[0], -1);
	}
	close(hold[0]);
	if (p->helper < 0) {
		p->helper = 0;
		close(hold[1]);
		pr_perror("fork");
		return -errno;
	}
	p->hold_wr = hold[1];
	p->pid = p->newpid ? 0 : (pid_t)p->t->pid; /* newpid: the helper's child, take_pidfd() */
	return 0;
}

/* Let the -d helper exit once the process released it. */
static void let_helper_go(struct rst_proc *p)
{
	if (p->hold_wr >= 0)
		close(p->hold_wr);
	p->hold_wr = -1;
}

/* The helper exits when the target is released or gone. */
static void reap_helper(struct rst_proc *p)
{
	int st;

	if (!p->helper)
		return;
	while (waitpid(p->helper, &st, 0) < 0 && errno == EINTR)
		;
	p->helper = 0;
	if (p->helper_stack) /* it ran there till its exit */
		munmap(p->helper_stack, HELPER_STACK);
	p->helper_stack = NULL;
}

/* 'Z' for a zombie, another state letter, or 0 when there is no such pid. */
static char pid_state(pid_t pid)
{
	char path[64], buf[512], *s;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (proc_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	s = strrchr(buf, ')');
	return s && s[1] == ' ' ? s[2] : '?';
}

#define ZOMBIE_WAIT_MS 5000

/*
 * The dumped process was killed after its dump; until its parent reaps it,
 * its pid is a zombie's (PID 1 on some machines reaps only once a second).
 * Wait for a zombie to go away; a live process keeps the pid: refuse.
 */
int rst_pid_wait_free(pid_t pid)
{
	bool said = false;

	for (int ms = 0;; ms += 10) {
		char st = pid_state(pid);

		if (!st)
			return 0;
		if ((st != 'Z' && st != 'X') || ms >= ZOMBIE_WAIT_MS)
			break;
		if (!said)
			pr_info("pid %d is a zombie still: waiting for it to be reaped", pid);
		said = true;
		usleep(10000);
	}
	pr_err("pid %d is already in use", pid);
	return -EEXIST;
}

int rst_tree_prepare(struct rst_proc *procs, struct rst_chan *chans, const struct rst_images *im,
		     bool detach, bool pidns, const struct uffd_kinfo *lazy)
{
	for (size_t i = 0; i < im->nr_tasks; i++) {
		struct rst_proc *p = &procs[i];

		memset(p, 0, sizeof(*p));
		p->pidfd = -1;
		p->status_rd = -1;
		p->go_wr = -1;
		p->hold_wr = -1;
		p->im = im;
		p->t = &im->tasks[i];
		p->idx = i;
		/* PIDNS_ROOT_INIT: the root, pid 1 of the fresh namespace, is ours or -d's. */
		p->newpid = i == 0 && im->root_init;
		p->detach = i == 0 && detach && (!pidns || im->root_init);
		p->ours = i == 0 && !detach && (!pidns || im->root_init);
		p->init = pidns || im->root_init ? -1 : 0; /* --pidns: set by rst_tree_create */
		p->tagged = im->nr_tasks > 1;
		if (lazy) {
			p->lazy_on = true;
			p->lazy.ki = *lazy;
		}
		chans[i] = (struct rst_chan){ -1, -1, -1, -1 };
	}
	for (size_t i = 0; i < im->nr_tasks && !pidns && !im->root_init; i++)
		if (rst_pid_wait_free((pid_t)im->tasks[i].pid))
			return -EEXIST;
	for (size_t i = 0; i < im->nr_groups && !pidns && !im->root_init; i++)
		if (rst_pid_wait_free((pid_t)im->groups[i].pgid))
			return -EEXIST;
	for (size_t i = 0; i < im->nr_tasks; i++) {
		int sfd[2], gfd[2];

		if (pipe2(sfd, O_CLOEXEC)) {
			pr_perror("pipe");
			return -errno;
		}
		if (pipe2(gfd, O_CLOEXEC)) {
			pr_perror("pipe");
			close(sfd[0]);
			close(sfd[1]);
			return -errno;
		}
		chans[i] = (struct rst_chan){ sfd[0], sfd[1], gfd[0], gfd[1] };
		procs[i].status_rd = sfd[0];
		procs[i].go_wr = gfd[1];
	}
	return 0;
}

/* Lazarus's copy of the processes' ends, once they have theirs. */
static void close_child_ends(struct rst_chan *chans, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (chans[i].status_wr >= 0)
			close(chans[i].status_wr);
		if (chans[i].go_rd >= 0)
			close(chans[i].go_rd);
		chans[i].status_wr = chans[i].go_rd = -1;
	}
}

/*
 * --pidns: pid 1 of the fresh namespace. Creates the root with its dumped
 * pid (inside), keeps no fd of ours (EOF on the pipes and on the lazy-pages
 * socket must mean what it says), reaps whatever ends up as its child and
 * exits with the root's status when the root exits: the kernel then kills
 * whatever is left in the namespace.
 */
/* enter_timens for lazarus itself, which clones the root: logs here. */
static int root_timens(const struct rst_proc *p)
{
	const InventoryEntry *inv = p->im->inv;
	struct timens_clocks want = { inv->monotonic_ns, inv->boottime_ns };
	const char *what;
	int ret;

	if (!inv->has_monotonic_ns || !inv->has_boottime_ns)
		return 0;
	ret = timens_unshare_at(&want, &what);
	if (ret && ret != -EOPNOTSUPP) {
		pr_err("a time namespace for the dumped clocks: %s: %s", what, strerror(-ret));
		return ret;
	}
	return 0;
}

static __attribute__((noreturn)) void init_main(struct rst_proc *p, const struct rst_chan *chans)
{
	char why[128];
	pid_t root, w;
	int st, nul;

	prctl(PR_SET_NAME, "lazarus-init", 0, 0, 0);
	enter_timens(p, chans);
	root = clone_with_pid((pid_t)p->t->pid);
	if (root == 0)
		rst_child_main(p->im, p->t, chans, NULL, p->lazy_on ? &p->lazy : NULL);
	if (root < 0) {
		rst_msg_text(chans[0].status_wr, LZ_MSG_FAIL, -errno, "%s",
			     clone_why(errno, (pid_t)p->t->pid, why, sizeof(why)));
		_exit(127);
	}
	/*
	 * lazarus's own attachments of the SysV segments came with the fork:
	 * not the init's to hold (they would count in every shm_nattch).
	 */
	rst_shmem_detach(p->im);
	/* Not even our stdio: whoever reads lazarus's output would wait for the init. */
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int fd = 0; fd < 3 && nul >= 0; fd++)
		dup2(nul, fd);
	if (syscall(SYS_close_range, 3U, ~0U, 0U))
		close_chans(chans, p->im->nr_tasks);
	for (;;) {
		w = waitpid(-1, &st, 0);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			_exit(127);
		if (w == root)
			_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	}
}

static int create_init(struct rst_proc *p, const struct rst_chan *chans, struct rst_init *init)
{
	int pidfd = -1;
	struct clone_args ca = {
		.flags = CLONE_NEWPID | CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)&pidfd,
		.exit_signal = SIGCHLD,
	};
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));

	if (pid == 0)
		init_main(p, chans);
	if (pid < 0) {
		pr_perror("--pidns: clone3(CLONE_NEWPID)");
		return -errno;
	}
	init->pid = pid;
	init->pidfd = pidfd;
	p->init = pid;
	p->pid = 0; /* the root's pid here: the init's child, found by take_pidfd() */
	return 0;
}

void rst_init_kill(struct rst_init *init)
{
	int st;

	if (init->pid <= 0)
		return;
	if (init->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, init->pidfd, SIGKILL, NULL, 0);
	while (waitpid(init->pid, &st, 0) < 0 && errno == EINTR)
		;
	init->pid = 0;
	if (init->pidfd >= 0)
		close(init->pidfd);
	init->pidfd = -1;
}

int rst_init_wait(struct rst_init *init, int *status)
{
	while (waitpid(init->pid, status, 0) < 0) {
		if (errno == EINTR)
			continue;
		pr_perror("waitpid %d (the pid namespace's init)", init->pid);
		return -errno;
	}
	init->pid = 0;
	return 0;
}

int rst_tree_create(struct rst_proc *procs, struct rst_chan *chans, struct rst_init *init)
{
	struct rst_proc *p = &procs[0];
	size_t n = p->im->nr_tasks;
	char why[128];
	int ret = 0;

	p->t_clone = rst_now_ns();
	if (init) {
		ret = create_init(p, chans, init);
	} else if (p->detach) {
		ret = create_detached(p, chans);
	} else {
		ret = p->newpid ? root_timens(p) : 0;
		p->pid = ret ? 0 : clone_root(p);
		if (p->pid == 0 && !ret)
			rst_child_main(p->im, p->t, chans, NULL, p->lazy_on ? &p->lazy : NULL);
		if (p->pid < 0) {
			ret = -errno;
			pr_err("%s", clone_root_why(p, errno, why, sizeof(why)));
		}
	}
	close_child_ends(chans, n);
	for (size_t i = 1; i < n; i++) /* created by its parent: its pidfd tells */
		procs[i].pid = procs[i].init ? 0 : (pid_t)procs[i].t->pid;
	if (ret) {
		let_helper_go(p);
		if (p->helper)
			reap_helper(p);
		p->pid = 0;
		return ret;
	}
	if (init) {
		pr_info("created the init %d of a fresh pid namespace; it creates process %u there",
			init->pid, p->t->pid);
		return 0;
	}
	if (!p->detach)
		p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0); /* our child: it is ours */
	if (p->newpid && p->pid <= 0) /* -d: the helper's child, known once it reports */
		pr_info("created process 1 of a fresh pid namespace (detached)%s",
			n > 1 ? ", the root of the tree" : "");
	else
		pr_info("created process %d%s%s%s", p->pid, p->detach ? " (detached)" : "",
			n > 1 ? ", the root of the tree" : "",
			p->newpid ? ", pid 1 of a fresh pid namespace" : "");
	return 0;
}

static const char *const rlimit_names[] = {
	"RLIMIT_CPU",	 "RLIMIT_FSIZE",  "RLIMIT_DATA",       "RLIMIT_STACK",
	"RLIMIT_CORE",	 "RLIMIT_RSS",	  "RLIMIT_NPROC",      "RLIMIT_NOFILE",
	"RLIMIT_MEMLOCK", "RLIMIT_AS",	  "RLIMIT_LOCKS",      "RLIMIT_SIGPENDING",
	"RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO",     "RLIMIT_RTTIME",
};

/* The blob warns with the dumped hard limit in addr; EPERM: it kept ours. */
static void rlimit_format(const struct lz_rst_msg *m, char *buf, size_t len)
{
	const char *name = m->arg < ARRAY_SIZE(rlimit_names) ? rlimit_names[m->arg] : "rlimit";
	char max[32];

	if (m->addr == UINT64_MAX)
		snprintf(max, sizeof(max), "unlimited");
	else
		snprintf(max, sizeof(max), "%" PRIu64, m->addr);
	snprintf(buf, len, "restorer: %s hard limit %s not restored: %s%s", name, max,
		 strerror(-m->err), m->err == -EPERM ? " (kept the current hard limit)" : "");
}

static const char *const step_names[LZ_STEP_MAX] = {
	[LZ_STEP_ABI] = "restorer ABI check",
	[LZ_STEP_UNMAP] = "unmap the old address space",
	[LZ_STEP_VDSO] = "map the vdso",
	[LZ_STEP_MAP] = "map",
	[LZ_STEP_MADVISE] = "madvise",
	[LZ_STEP_FILL] = "read pages into",
	[LZ_STEP_PROTECT] = "mprotect",
	[LZ_STEP_MM] = "prctl(PR_SET_MM_MAP)",
	[LZ_STEP_ROBUST] = "set_robust_list",
	[LZ_STEP_RSEQ] = "rseq",
	[LZ_STEP_TLS] = "arch_prctl(ARCH_SET_FS/GS)",
	[LZ_STEP_ITIMER] = "setitimer",
	[LZ_STEP_RLIMIT] = "prlimit",
	[LZ_STEP_CLOSE] = "close service fd",
	[LZ_STEP_MLOCK] = "mlock",
	[LZ_STEP_RELEASE] = "release the helper / PR_SET_PDEATHSIG",
	[LZ_STEP_UFFD] = "register with the userfaultfd",
	[LZ_STEP_TRACER] = "wait for the lazarus parent",
	[LZ_STEP_SIGQUEUE] = "re-queue pending signal",
	[LZ_STEP_CREDS] = "restore credentials",
	[LZ_STEP_CLONE] = "create thread",
	[LZ_STEP_SCHED] = "restore the thread's scheduling",
	[LZ_STEP_BARRIER] = "wait for every thread",
	[LZ_STEP_TIMER] = "POSIX timer",
	[LZ_STEP_LOCK] = "take the POSIX lock",
};

/* enum lz_creds_op: what the blob was doing to the credentials. */
static const char *const creds_ops[LZ_CREDS_OP_MAX] = {
	[LZ_CREDS_CAPGET] = "capget",
	[LZ_CREDS_CAPSET_KEEP] = "capset(inheritable)",
	[LZ_CREDS_AMBIENT] = "raise ambient capability",
	[LZ_CREDS_BOUNDING] = "bounding set, capability",
	[LZ_CREDS_FIXUP] = "prctl(PR_SET_SECUREBITS, SECBIT_NO_SETUID_FIXUP)",
	[LZ_CREDS_SETGROUPS] = "setgroups",
	[LZ_CREDS_SETRESGID] = "setresgid",
	[LZ_CREDS_SETRESUID] = "setresuid",
	[LZ_CREDS_SETFSGID] = "setfsgid",
	[LZ_CREDS_SETFSUID] = "setfsuid",
	[LZ_CREDS_SECUREBITS] = "prctl(PR_SET_SECUREBITS)",
	[LZ_CREDS_CAPSET] = "capset",
	[LZ_CREDS_NO_NEW_PRIVS] = "prctl(PR_SET_NO_NEW_PRIVS)",
	[LZ_CREDS_DUMPABLE] = "prctl(PR_SET_DUMPABLE)",
	[LZ_CREDS_CHECK] = "read back",
};

static const char *const creds_checks[LZ_CREDS_CHECK_MAX] = {
	[LZ_CREDS_CHECK_UIDS] = "uids",
	[LZ_CREDS_CHECK_GIDS] = "gids",
	[LZ_CREDS_CHECK_GROUPS] = "supplementary groups",
	[LZ_CREDS_CHECK_CAPS] = "capabilities",
	[LZ_CREDS_CHECK_AMBIENT] = "ambient capabilities",
	[LZ_CREDS_CHECK_BOUNDING] = "bounding set",
	[LZ_CREDS_CHECK_SECUREBITS] = "securebits",
};

static void creds_format(const struct lz_rst_msg *m, const char *step, char *buf, size_t len)
{
	const char *op = m->arg < LZ_CREDS_OP_MAX && creds_ops[m->arg] ? creds_ops[m->arg] : "?";
	const char *err = strerror(-m->err);

	switch (m->arg) {
	case LZ_CREDS_AMBIENT:
	case LZ_CREDS_BOUNDING:
		snprintf(buf, len, "restorer: %s: %s %" PRIu64 ": %s", step, op, m->addr, err);
		break;
	case LZ_CREDS_CHECK:
		snprintf(buf, len, "restorer: %s: read back: %s not as dumped", step,
			 m->addr < LZ_CREDS_CHECK_MAX ? creds_checks[m->addr] : "?");
		break;
	default:
		snprintf(buf, len, "restorer: %s: %s: %s", step, op, err);
		break;
	}
}

/* The mapped file of the blob's VMA number idx (mapped VMAs only). */
static const char *blob_vma_what(const struct rst_task *t, uint32_t idx)
{
	uint32_t n = 0;

	for (size_t i = 0; i < t->mm->n_vmas; i++) {
		const VmaEntry *v = t->mm->vmas[i];

		if (v->kind != VMA_KIND__VMA_ANON && v->kind != VMA_KIND__VMA_FILE_PRIVATE &&
		    v->kind != VMA_KIND__VMA_FILE_SHARED && v->kind != VMA_KIND__VMA_SHMEM)
			continue;
		if (n++ == idx)
			return v->path		? v->path
			       : v->name	? v->name
			       : v->kind == VMA_KIND__VMA_SHMEM ? "shared memory"
						: "anonymous memory";
	}
	return "?";
}

/* enum lz_sched_op: which scheduling call of a thread failed. */
static const char *const sched_ops[LZ_SCHED_OP_MAX] = {
	[LZ_SCHED_AFFINITY] = "sched_setaffinity", [LZ_SCHED_NICE] = "setpriority",
	[LZ_SCHED_POLICY] = "sched_setscheduler",  [LZ_SCHED_SLACK] = "PR_SET_TIMERSLACK",
	[LZ_SCHED_MCE] = "PR_MCE_KILL",		   [LZ_SCHED_TSC] = "PR_SET_TSC",
};

static void msg_format_one(const struct rst_proc *p, const struct lz_rst_msg *m, char *buf,
			   size_t len);

/* enum lz_timer_op; addr: the timer id, and for LZ_TIMER_ID the id the kernel gave << 32. */
static void timer_format(const struct lz_rst_msg *m, char *buf, size_t len)
{
	static const char *const ops[LZ_TIMER_OP_MAX] = {
		[LZ_TIMER_CREATE] = "timer_create", [LZ_TIMER_SETTIME] = "timer_settime",
		[LZ_TIMER_PRCTL] = "prctl(PR_TIMER_CREATE_RESTORE_IDS)",
	};
	uint32_t id = (uint32_t)m->addr;

	if (m->arg == LZ_TIMER_ID)
		snprintf(buf, len, "restorer: POSIX timer %u: the kernel gave it id %d instead",
			 id, (int32_t)(m->addr >> 32));
	else if (m->arg == LZ_TIMER_GAPS)
		snprintf(buf, len,
			 "restorer: POSIX timer %u: more than 65536 ids to skip without "
			 "PR_TIMER_CREATE_RESTORE_IDS (Linux 6.16)",
			 id);
	else if (m->arg == LZ_TIMER_PRCTL)
		snprintf(buf, len, "restorer: POSIX timers: %s: %s", ops[m->arg],
			 strerror(-m->err));
	else
		snprintf(buf, len, "restorer: POSIX timer %u: %s: %s", id,
			 m->arg < LZ_TIMER_OP_MAX && ops[m->arg] ? ops[m->arg] : "?",
			 strerror(-m->err));
}

/* arg: the fd, addr: the lock's start; the file named by its path where it has one. */
static void lock_format(const struct rst_proc *p, const struct lz_rst_msg *m, const char *step,
			char *buf, size_t len)
{
	const FileEntry *e = NULL;

	for (size_t i = 0; i < p->t->nr_fdinfo && !e; i++)
		if (p->t->fdinfo[i]->fd == m->arg)
			e = rst_file_by_id(p->im, p->t->fdinfo[i]->file_id);
	snprintf(buf, len, "restorer: %s of fd %u (%s) from byte %" PRIu64 ": %s%s", step, m->arg,
		 e && e->reg ? e->reg->path : "?", m->addr, strerror(-m->err),
		 m->err == -EAGAIN || m->err == -EACCES ? " (taken by someone else since)" : "");
}

/* A failure of a thread other than the leader names it: "restorer: thread TID: ...". */
static void msg_format(const struct rst_proc *p, const struct lz_rst_msg *m, char *buf,
		       size_t len)
{
	char one[512];

	msg_format_one(p, m, one, sizeof(one));
	if (m->step == LZ_STEP_CHILD || !m->tid || m->tid == (uint32_t)p->pid ||
	    strncmp(one, "restorer: ", 10))
		snprintf(buf, len, "%s", one);
	else if (snprintf(buf, len, "restorer: thread %u: %s", m->tid, one + 10) < 0)
		buf[0] = '\0';
}

static void msg_format_one(const struct rst_proc *p, const struct lz_rst_msg *m, char *buf,
			   size_t len)
{
	const char *step = m->step < LZ_STEP_MAX && step_names[m->step] ? step_names[m->step]
									 : "unknown step";
	const char *err = strerror(-m->err);

	if (m->arg == LZ_RST_ARG_FAULT && m->step != LZ_STEP_CHILD) {
		snprintf(buf, len, "restorer: %s: %s (injected by LAZARUS_FAULT_BLOB)", step, err);
		return;
	}
	switch (m->step) {
	case LZ_STEP_CHILD:
		snprintf(buf, len, "%.*s", (int)sizeof(m->text), m->text);
		break;
	case LZ_STEP_MAP:
	case LZ_STEP_FILL:
	case LZ_STEP_UFFD:
	case LZ_STEP_PROTECT:
	case LZ_STEP_MLOCK:
		snprintf(buf, len, "restorer: %s %s at %#" PRIx64 ": %s", step,
			 blob_vma_what(p->t, m->arg), m->addr, err);
		break;
	case LZ_STEP_MADVISE:
		snprintf(buf, len, "restorer: madvise(%u) at %#" PRIx64 ": %s", m->arg, m->addr,
			 err);
		break;
	case LZ_STEP_RLIMIT:
		rlimit_format(m, buf, len);
		break;
	case LZ_STEP_SIGQUEUE:
		snprintf(buf, len, "restorer: %s %" PRIu64 " (number %u of the dumped ones): %s",
			 step, m->addr, m->arg + 1, err);
		break;
	case LZ_STEP_ITIMER:
	case LZ_STEP_CLOSE:
		snprintf(buf, len, "restorer: %s %u: %s", step, m->arg, err);
		break;
	case LZ_STEP_CREDS:
		creds_format(m, step, buf, len);
		break;
	case LZ_STEP_CLONE:
		snprintf(buf, len, "restorer: %s %" PRIu64 ": %s", step, m->addr, err);
		break;
	case LZ_STEP_SCHED:
		snprintf(buf, len, "restorer: %s: %s: %s", step,
			 m->arg < LZ_SCHED_OP_MAX && sched_ops[m->arg] ? sched_ops[m->arg] : "?", err);
		break;
	case LZ_STEP_BARRIER:
		snprintf(buf, len, "restorer: %s: %u ready after 10 s: %s", step, m->arg, err);
		break;
	case LZ_STEP_TIMER:
		timer_format(m, buf, len);
		break;
	case LZ_STEP_LOCK:
		lock_format(p, m, step, buf, len);
		break;
	default:
		if (m->addr)
			snprintf(buf, len, "restorer: %s at %#" PRIx64 ": %s", step, m->addr, err);
		else
			snprintf(buf, len, "restorer: %s: %s", step, err);
		break;
	}
}

/* ppid of pid from /proc; 0 if unknown. */
static pid_t pid_parent(pid_t pid)
{
	char path[64], buf[512], *s;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (proc_read_small(path, buf, sizeof(buf)) <= 0)
		return 0;
	s = strrchr(buf, ')');
	if (!s || sscanf(s + 1, " %*c %d", &ppid) != 1)
		return 0;
	return (pid_t)ppid;
}

/*
 * -d: the process is the helper's child, not ours. Take a pidfd of it while
 * the helper (our child, not reaped yet, so its pid cannot be reused) is
 * still its parent: checked after pidfd_open, so the pidfd is of our
 * process and not of whoever may hold the pid later. The helper stays its
 * parent until we let it go (hold_wr), which we do once we hold the pidfd.
 */
/*
 * --pidns: the init's one child (the root), as seen here; 0 if none yet.
 * Also the -d helper's one child (PIDNS_ROOT_INIT).
 */
static pid_t init_child(pid_t init)
{
	char path[64], buf[64];
	int pid;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", init, init);
	if (proc_read_small(path, buf, sizeof(buf)) <= 0 || sscanf(buf, "%d", &pid) != 1)
		return 0;
	return (pid_t)pid;
}

/*
 * --pidns: the root is the init's child. The init (our child, not reaped)
 * has no other child while the root lives, and the root's pid cannot be
 * reused while it is the init's: pidfd_open, then check the parent.
 */
static void take_root_pidfd(struct rst_proc *p)
{
	pid_t pid = init_child(p->init);
	int fd;

	if (pid <= 0)
		return;
	fd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (fd < 0)
		return;
	if (pid_parent(pid) != p->init) {
		close(fd);
		return;
	}
	p->pid = pid;
	p->pidfd = fd;
	pr_info("process %u of the pid namespace is %d here", p->t->pid, pid);
}

/* The pid here of the process a pidfd refers to (its fdinfo); 0 if unknown. */
static pid_t pidfd_pid(int fd)
{
	char path[64], buf[1024], *s;
	int pid;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	if (proc_read_small(path, buf, sizeof(buf)) <= 0 || !(s = strstr(buf, "\nPid:")) ||
	    sscanf(s + 5, "%d", &pid) != 1 || pid <= 0)
		return 0;
	return (pid_t)pid;
}

static void take_pidfd(struct rst_proc *p)
{
	int fd;

	if (p->pidfd < 0 && p->init > 0 && p->idx == 0) {
		take_root_pidfd(p);
		return;
	}
	/* -d, PIDNS_ROOT_INIT: the helper's child is the root; checked again below. */
	if (p->pidfd < 0 && p->newpid && p->detach && p->helper && p->pid <= 0)
		p->pid = init_child(p->helper);
	if (p->pidfd >= 0 || !p->detach || p->pid <= 0 || !p->helper)
		return;
	fd = (int)syscall(SYS_pidfd_open, p->pid, 0);
	if (fd < 0)
		return;
	if (pid_parent(p->pid) != p->helper) {
		close(fd);
		return;
	}
	p->pidfd = fd;
	let_helper_go(p);
}

/*
 * A sign the process is working: CPU time (utime + stime) and bytes read
 * (rchar, which counts the blob's preads of the pages file) change.
 */
static uint64_t progress_mark(pid_t pid)
{
	unsigned long long ut = 0, st = 0, rchar = 0;
	char path[64], buf[1024], *s;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (proc_read_small(path, buf, sizeof(buf)) > 0 && (s = strrchr(buf, ')')))
		sscanf(s + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st);
	snprintf(path, sizeof(path), "/proc/%d/io", pid);
	if (proc_read_small(path, buf, sizeof(buf)) > 0 && (s = strstr(buf, "rchar:")))
		sscanf(s + 6, "%llu", &rchar);
	return ut + st + rchar;
}

static unsigned idle_timeout_s(void)
{
	const char *e = getenv(RST_IDLE_TIMEOUT_ENV);
	unsigned long v;
	char *end;

	if (!e || !*e)
		return RST_IDLE_TIMEOUT_S;
	v = strtoul(e, &end, 10);
	return *end || v == 0 || v > 86400 ? RST_IDLE_TIMEOUT_S : (unsigned)v;
}

static bool proc_exited(const struct rst_proc *p)
{
	struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };

	return p->pidfd >= 0 && poll(&pfd, 1, 0) == 1;
}

#define KILL_WAIT_MS 5000

void rst_proc_abort(struct rst_proc *p)
{
	int st;

	if (p->pid <= 0)
		return;
	take_pidfd(p);
	if (p->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, p->pidfd, SIGKILL, NULL, 0);
	if (p->ours) {
		/* Our child: its pid stays ours until we reap it. */
		kill(p->pid, SIGKILL);
		while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR)
			;
	} else if (p->pidfd >= 0) {
		/* Bounded: a process killed at once goes at once. */
		struct pollfd pfd = { .fd = p->pidfd, .events = POLLIN };

		while (poll(&pfd, 1, KILL_WAIT_MS) < 0 && errno == EINTR)
			;
	}
	/* -d: the helper reaps the process, then exits; one already released was orphaned. */
	let_helper_go(p);
	reap_helper(p);
	if (p->go_wr >= 0)
		close(p->go_wr);
	p->go_wr = -1;
	if (p->status_rd >= 0)
		close(p->status_rd);
	p->status_rd = -1;
	p->pid = 0;
}

void rst_proc_release(struct rst_proc *p)
{
	if (p->pidfd >= 0)
		close(p->pidfd);
	p->pidfd = -1;
}

/* One byte on the go pipe: the process may go on. */
static int proc_go(struct rst_proc *p)
{
	while (write(p->go_wr, "g", 1) < 0) {
		if (errno == EINTR)
			continue;
		pr_perror("wake process %d", p->pid);
		return -errno;
	}
	return 0;
}

/* A failure line of process p: "process PID: " first in a tree. */
static void proc_err(const struct rst_proc *p, const char *line)
{
	if (p->tagged)
		pr_err("process %d: %s", p->pid, line);
	else
		pr_err("%s", line);
}

static int proc_record(struct rst_proc *procs, size_t n, struct rst_proc *p, rst_uffd_cb cb,
		       void *ctx);

/*
 * The process announced its uffd: hand it over, then let it go on. It
 * prepares on meanwhile and may fail and exit first (CB: -ESRCH, not
 * logged): then its own record says why, and that is the error.
 */
static int take_uffd(struct rst_proc *procs, size_t n, struct rst_proc *p,
		     const struct lz_rst_msg *m, rst_uffd_cb cb, void *ctx)
{
	int ret;

	if (!p->lazy_on || !cb || p->go_wr < 0) {
		pr_err("process %d sent a userfaultfd outside lazy mode", p->pid);
		return -EPROTO;
	}
	ret = cb(ctx, p, (int)m->arg, m->addr);
	if (ret == -ESRCH) {
		ret = proc_record(procs, n, p, NULL, NULL);
		if (ret >= 0) {
			pr_err("process %d exited before its userfaultfd was handed over",
			       p->pid);
			ret = -ESRCH;
		}
	}
	if (ret)
		return ret;
	return proc_go(p);
}

/*
 * RST_MSG_CHILD: p created one of its children and holds a pidfd of it at
 * fd m->arg; a copy of that pidfd is ours, so the child is ours to kill
 * whatever happens to its pid later.
 */
static int take_child(struct rst_proc *procs, size_t n, struct rst_proc *p,
		      const struct lz_rst_msg *m)
{
	struct rst_proc *k = NULL;
	int fd;

	for (size_t j = p->idx + 1; j < n; j++)
		if (procs[j].t->parent == (int)p->idx && procs[j].t->pid == m->addr)
			k = &procs[j];
	if (!k || k->pidfd >= 0) {
		pr_err("process %d reported a child %" PRIu64 " it has not in the dump", p->pid,
		       m->addr);
		return -EPROTO;
	}
	take_pidfd(p);
	if (p->pidfd < 0) {
		pr_err("process %d: no pidfd of it to take its child %d's from", p->pid, k->pid);
		return -ESRCH;
	}
	fd = (int)syscall(SYS_pidfd_getfd, p->pidfd, (int)m->arg, 0);
	if (fd < 0) {
		pr_err("process %d: pidfd_getfd of its child %d: %s", p->pid, k->pid,
		       strerror(errno));
		return -errno;
	}
	k->pidfd = fd;
	if (p->init) { /* --pidns: m->addr is its pid inside */
		k->pid = pidfd_pid(fd);
		if (k->pid <= 0) {
			pr_err("process %d: no pid here for its child %" PRIu64, p->pid, m->addr);
			return -ESRCH;
		}
	}
	p->nr_children++;
	pr_debug("process %d created its child %d", p->pid, k->pid);
	return 0;
}

static int take_children(struct rst_proc *p, const struct lz_rst_msg *m)
{
	if (m->arg != p->nr_children) {
		pr_err("process %d reported %u children, %u of them with a pidfd", p->pid, m->arg,
		       p->nr_children);
		return -EPROTO;
	}
	return proc_go(p);
}

/* A zombie of the dump said it exits now; it must become a zombie (bounded). */
static int zombie_check(struct rst_proc *p)
{
	for (int ms = 0;; ms += 10) {
		char st = pid_state(p->pid);

		if (st == 'Z' && proc_exited(p))
			return 0;
		if (ms >= ZOMBIE_WAIT_MS) {
			pr_err("process %d: should be a zombie again, is in state %c", p->pid,
			       st ? st : '-');
			return -ECHILD;
		}
		usleep(10000);
	}
}

static int proc_handle(struct rst_proc *procs, size_t n, struct rst_proc *p,
		       const struct lz_rst_msg *mp, rst_uffd_cb cb, void *ctx);

/*
 * One record from p (poll said its pipe is readable; records are written
 * whole, smaller than PIPE_BUF). 1: p is done (its pipe closed); 0: go on.
 */
static int proc_record(struct rst_proc *procs, size_t n, struct rst_proc *p, rst_uffd_cb cb,
		       void *ctx)
{
	struct lz_rst_msg m;
	ssize_t got;

	do
		got = read(p->status_rd, &m, sizeof(m));
	while (got < 0 && errno == EINTR);
	if (got != (ssize_t)sizeof(m) || m.magic != LZ_RST_MSG_MAGIC) {
		pr_err("process %d died before it was restored", p->pid);
		return -ECHILD;
	}
	return proc_handle(procs, n, p, &m, cb, ctx);
}

/*
 * Records of two processes come in any order: a child may report its own
 * children before its parent reported it. Such a record waits (held, the
 * pipe not read further) until the parent's report gave us its pidfd.
 */
static int proc_handle(struct rst_proc *procs, size_t n, struct rst_proc *p,
		       const struct lz_rst_msg *mp, rst_uffd_cb cb, void *ctx)
{
	struct lz_rst_msg m = *mp;
	char line[512];

	if (p->idx == 0 && (p->init > 0 || p->newpid))
		take_pidfd(p); /* --pidns, -d: the root exists, it wrote this */
	/* --pidns: every record, as its pid here is not known before its pidfd. */
	if ((m.type == RST_MSG_CHILD || m.type == RST_MSG_CHILDREN || p->init) &&
	    p->pidfd < 0 && p->idx > 0) {
		p->held = m;
		p->has_held = true;
		return 0;
	}
	switch (m.type) {
	case LZ_MSG_OK:
		p->ok = m;
		p->area = m.addr;
		p->area_len = (uint64_t)m.arg << 12;
		/* fall through */
	case RST_MSG_ZOMBIE:
		p->ready = true;
		close(p->status_rd);
		p->status_rd = -1;
		return 1;
	case LZ_MSG_UFFD:
		return take_uffd(procs, n, p, &m, cb, ctx);
	case RST_MSG_CHILD:
		return take_child(procs, n, p, &m);
	case RST_MSG_CHILDREN:
		return take_children(p, &m);
	default:
		break;
	}
	msg_format(p, &m, line, sizeof(line));
	if (m.type == LZ_MSG_WARN) {
		if (p->tagged)
			pr_warn("process %d: %s", p->pid, line);
		else
			pr_warn("%s", line);
		p->nr_warnings++;
		return 0;
	}
	proc_err(p, line);
	return m.err ? m.err : -EINVAL;
}

static uint64_t tree_progress(const struct rst_proc *procs, size_t n)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++)
		if (procs[i].status_rd >= 0 && procs[i].pid > 0)
			sum += progress_mark(procs[i].pid);
	return sum;
}

int rst_tree_wait_ready(struct rst_proc *procs, size_t n, rst_uffd_cb on_uffd, void *ctx)
{
	unsigned timeout_s = idle_timeout_s();
	uint64_t mark = tree_progress(procs, n), idle_since = rst_now_ns();
	struct pollfd *pfd = calloc(n, sizeof(*pfd));
	size_t *who = calloc(n, sizeof(*who));
	int ret = 0;

	if (!pfd || !who) {
		pr_err("out of memory");
		ret = -ENOMEM;
		goto out_free;
	}
	for (;;) {
		size_t nr = 0;
		uint64_t now, cur;
		int k;

		for (size_t i = 0; i < n && !ret; i++) {
			take_pidfd(&procs[i]);
			if (procs[i].has_held && procs[i].pidfd >= 0) {
				procs[i].has_held = false;
				ret = proc_handle(procs, n, &procs[i], &procs[i].held, on_uffd, ctx);
				ret = ret > 0 ? 0 : ret; /* a held "OK" (--pidns): done */
			}
			if (procs[i].status_rd < 0 || procs[i].has_held)
				continue;
			pfd[nr] = (struct pollfd){ .fd = procs[i].status_rd, .events = POLLIN };
			who[nr++] = i;
		}
		if (ret)
			break;
		if (!nr) {
			for (size_t i = 0; i < n && !ret; i++)
				if (procs[i].status_rd >= 0) {
					pr_err("process %d reported children before it was "
					       "reported itself", procs[i].pid);
					ret = -EPROTO;
				}
			break;
		}
		/* -d, --pidns: look often for the root until we hold a pidfd of it. */
		k = poll(pfd, nr, (procs[0].detach || procs[0].init) && procs[0].pidfd < 0 ? 5 : 1000);
		if (k < 0 && errno != EINTR) {
			ret = -errno;
			pr_perror("poll");
			break;
		}
		for (size_t j = 0; k > 0 && j < nr && !ret; j++) {
			if (!pfd[j].revents)
				continue;
			ret = proc_record(procs, n, &procs[who[j]], on_uffd, ctx);
			ret = ret > 0 ? 0 : ret;
		}
		if (ret)
			break;
		now = rst_now_ns();
		cur = tree_progress(procs, n);
		if (k > 0 || cur != mark) {
			mark = cur;
			idle_since = now;
		} else if (now - idle_since >= (uint64_t)timeout_s * 1000000000ULL) {
			for (size_t j = 0; j < nr; j++) {
				pr_err("process %d: no report on the status pipe and no progress "
				       "for %u s while it restored itself: killed",
				       procs[who[j]].pid, timeout_s);
				break; /* one line: the first process still waited for */
			}
			ret = -ETIMEDOUT;
			break;
		}
	}
	for (size_t i = 0; i < n && !ret; i++)
		if (rst_task_zombie(procs[i].t))
			ret = zombie_check(&procs[i]);
out_free:
	free(pfd);
	free(who);
	if (ret)
		return ret;
	take_pidfd(&procs[0]);
	let_helper_go(&procs[0]); /* holds the pidfd: the helper was its parent till "OK" */
	reap_helper(&procs[0]);
	return 0;
}

/*
 * Before killing: pidfds of children still announced on the status pipes
 * and not taken yet (records left unread when the restore failed).
 */
static void drain_children(struct rst_proc *procs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct rst_proc *p = &procs[i];
		struct lz_rst_msg m;

		if (p->status_rd < 0)
			continue;
		fcntl(p->status_rd, F_SETFL, O_NONBLOCK);
		while (read(p->status_rd, &m, sizeof(m)) == (ssize_t)sizeof(m))
			if (m.magic == LZ_RST_MSG_MAGIC && m.type == RST_MSG_CHILD)
				take_child(procs, n, p, &m);
	}
}

void rst_tree_abort(struct rst_proc *procs, size_t n)
{
	drain_children(procs, n);
	/* Parents first: a process killed creates no more children. */
	for (size_t i = 0; i < n; i++)
		rst_proc_abort(&procs[i]);
}

/* The last number of the NSpid line of a status file: the pid innermost. */
static pid_t nspid_inner(const char *path)
{
	char buf[4096], *s, *e;
	long v = 0;

	if (proc_read_small(path, buf, sizeof(buf)) <= 0 || !(s = strstr(buf, "\nNSpid:")))
		return 0;
	s += 7;
	for (;;) {
		long x = strtol(s, &e, 10);

		if (e == s)
			break;
		v = x;
		s = e;
	}
	return (pid_t)v;
}

/*
 * --pidns: the tids here of p's threads, in the order of its cores (their
 * dumped tids are the ones inside). Every thread exists once "OK" came.
 */
static int outer_tids(const struct rst_proc *p, pid_t *tids)
{
	char path[96];
	struct dirent *e;
	size_t found = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", p->pid);
	d = opendir(path);
	if (!d) {
		pr_perror("process %d: opendir %s", p->pid, path);
		return -errno;
	}
	memset(tids, 0, p->t->nr_cores * sizeof(*tids));
	while ((e = readdir(d))) {
		int tid = atoi(e->d_name);
		pid_t in;

		if (tid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/status", p->pid, tid);
		in = nspid_inner(path);
		for (size_t i = 0; i < p->t->nr_cores; i++)
			if (in > 0 && (pid_t)p->t->cores[i]->tid == in && !tids[i]) {
				tids[i] = tid;
				found++;
			}
	}
	closedir(d);
	if (found != p->t->nr_cores) {
		pr_err("process %d: %zu of its %zu threads found in /proc/%d/task", p->pid, found,
		       p->t->nr_cores, p->pid);
		return -ESRCH;
	}
	return 0;
}

int rst_proc_finish(struct rst_proc *p)
{
	struct rst_finish f = {
		.pid = p->pid,
		.go_wr = p->go_wr,
		.area = p->area,
		.area_len = p->area_len,
		.cores = (const CoreEntry *const *)p->t->cores,
		.nr_threads = p->t->nr_cores,
	};
	const char *fault = getenv("LAZARUS_FAULT_BLOB"); /* as for the blob's steps */
	const char *fault_pid = getenv("LAZARUS_FAULT_PID");
	int ret;

	pid_t *tids = NULL;

	if (p->init) {
		tids = calloc(p->t->nr_cores ? p->t->nr_cores : 1, sizeof(*tids));
		ret = tids ? outer_tids(p, tids) : -ENOMEM;
		if (ret) {
			if (!tids)
				pr_err("process %d: out of memory", p->pid);
			free(tids);
			rst_proc_abort(p);
			return ret;
		}
		f.tids = tids;
	}
	f.fault = fault && !strcmp(fault, "finish") &&
		  (!fault_pid || strtoul(fault_pid, NULL, 10) == p->t->pid);
	for (size_t i = 0; i < p->t->mm->n_vmas; i++) {
		const VmaEntry *v = p->t->mm->vmas[i];

		if (v->kind == VMA_KIND__VMA_VDSO) {
			f.vdso_start = v->start;
			f.vdso_end = v->end;
		}
	}
	ret = rst_finish_process(&f);
	free(tids);
	close(p->go_wr); /* EOF: a blob never let go fails by itself */
	p->go_wr = -1;
	p->nr_stops = f.nr_stops;
	if (ret)
		rst_proc_abort(p);
	return ret;
}

/*
 * A process stopped at dump time comes back stopped: SIGSTOP once it runs
 * on its own (a waiting parent sees it stopped by SIGSTOP, whatever signal
 * stopped it at dump time).
 */
static int proc_stop(struct rst_proc *p)
{
	if (syscall(SYS_pidfd_send_signal, p->pidfd, SIGSTOP, NULL, 0) < 0) {
		pr_perror("process %d: stop it again", p->pid);
		return -errno;
	}
	return 0;
}

int rst_tree_finish(struct rst_proc *procs, size_t n)
{
	/* The leaves first: a parent runs on once its children are in place. */
	for (size_t i = n; i-- > 0;) {
		struct rst_proc *p = &procs[i];
		int ret;

		if (rst_task_zombie(p->t))
			continue;
		ret = rst_proc_finish(p);
		if (!ret && p->t->pstree->stopped)
			ret = proc_stop(p);
		if (ret)
			return ret;
	}
	return 0;
}

int rst_proc_wait_exit(struct rst_proc *p, int *status)
{
	while (waitpid(p->pid, status, 0) < 0) {
		if (errno == EINTR)
			continue;
		pr_perror("waitpid %d", p->pid);
		p->pid = 0; /* not ours to wait for: not ours to kill either */
		return -errno;
	}
	p->pid = 0; /* reaped */
	return 0;
}
