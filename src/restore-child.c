/*
 * restore-child.c - what the restored process does before it jumps into
 * the restorer blob, in this order:
 *
 *   block every signal       the target's handlers get installed below
 *   (the root, MNTNS_PROC)   a fresh private mount namespace with its own
 *                            /proc, as `unshare --mount-proc` made it
 *   (not the root) parent-death signal SIGKILL: a process whose parent
 *                            dies before lazarus holds a pidfd of it dies too
 *   session / group          setsid or setpgid as dumped (restore-task.c);
 *                            a session leader takes its terminal (restore-tty.c)
 *   group helpers            a session leader: one child per group of its
 *                            session whose leader is gone, holding its pid
 *                            until the members joined (reaped before jump)
 *   children                 each with its pid (clone3 set_tid, CLONE_PIDFD);
 *                            lazarus takes a copy of each pidfd
 *                            (RST_MSG_CHILD) before this process goes on;
 *                            then every other process's pipes and pages
 *                            file are closed here
 *   group of another         join it (restore-task.c)
 *   foreground group         the session leader (a shell job's root) sets
 *                            its terminal's (restore-tty.c)
 *   zombie                   a zombie of the dump stops here: it says so
 *                            and exits with its dumped status, its parent
 *                            never reaps it
 *   cgroups, oom_score_adj,  through /proc/self, so before root and cwd
 *   loginuid, membarrier     change; membarrier registers this mm, which
 *                            the blob keeps
 *   lazy mode: userfaultfd   opened here: it binds to this process's mm
 *   service fds              opened, then moved above the target's fds and
 *                            the store (every other fd closed)
 *   the target's fds         dup'ed from the store lazarus opened before
 *                            the tree was created (fd-kind.h), at their
 *                            numbers; the store closed; kinds' post();
 *                            POSIX locks checked, left to the blob (after
 *                            it closed the service fds, mapped files')
 *   lazy mode: handover      the parent gives the uffd to the daemon while
 *                            this process goes on with what follows
 *   plugin                   bootstrap area, blob args, signal frame
 *   prctl bits, handlers, fs personality, comm...; rt_sigaction; cwd, root, umask
 *   lazy mode: wait          until the daemon holds the uffd (the go byte)
 *   scheduling               affinity, nice, policy, timer slack, MCE and
 *                            TSC modes: last, so a SCHED_IDLE target does
 *                            not slow restore down, and no log line after
 *   jump                     the blob does memory and thread state, and with
 *                            -d releases the helper when nothing of its own
 *                            can fail any more (struct rst_detach); after
 *                            "OK" it waits on the go pipe for the parent,
 *                            which takes the blob away (restore-finish.c)
 *
 * Failures go to the parent over the status pipe as one text record.
 */
#include <inttypes.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOG_PREFIX "restore: "
#include "log.h"
#include "plugin.h"
#include "restore-child.h"
#include "restore-fds.h"
#include "restore-proc.h"
#include "restore-shmem.h"
#include "restore-task.h"
#include "restore-tty.h"

struct rst_child {
	const struct rst_images *im;
	const struct rst_task *t; /* the process this one becomes */
	const struct rst_chan *chans; /* every task's pipes (restore-child.h) */
	int status_fd; /* moves with the service fds */
	int go_fd;     /* the parent's go pipe: until moved into svc */
	const struct rst_detach *detach; /* NULL without -d */
	const struct rst_lazy *lazy;	 /* NULL in eager mode */
	int uffd;			 /* lazy: until moved into svc */
	uint64_t uffd_features;
	uint64_t t_start;
	struct rst_svc svc;
	struct plg_restore plg;
	pid_t helpers[RST_MAX_TASKS];	 /* groups whose leader is gone (restore-task.h) */
	size_t nr_helpers;
	char why[LZ_RST_TEXT_MAX];
};

static int child_uffd_open(struct rst_child *c)
{
	char feat[256];
	int fd;

	fd = uffd_open(&c->lazy->ki, UFFD_LAZY_WANTED, UFFD_LAZY_REQUIRED, &c->uffd_features);
	if (fd < 0) {
		snprintf(c->why, sizeof(c->why), "userfaultfd: %s", strerror(-fd));
		return fd;
	}
	c->uffd = fd;
	uffd_features_str(c->uffd_features, feat, sizeof(feat));
	pr_info("userfaultfd %d with %s", fd, feat);
	return 0;
}

static int child_fds(struct rst_child *c)
{
	struct rst_svc_in in = {
		.im = c->im,
		.status_fd = c->status_fd,
		.release_fd = c->detach ? c->detach->release_fd : -1,
		.go_fd = c->go_fd,
		.uffd = c->uffd,
	};
	int ret = rst_svc_open(&c->svc, c->t, &in, c->why, sizeof(c->why));

	if (!ret)
		ret = rst_svc_move(&c->svc, c->t, c->im->fstore, c->why, sizeof(c->why));
	if (ret)
		return ret;
	c->status_fd = c->svc.status_fd;
	pr_info("service fds at %d..; installing %zu fds", c->svc.lowest, c->t->nr_fdinfo);
	return rst_fds_install(c->im, c->t, c->im->fstore, &c->svc, c->why, sizeof(c->why));
}

/*
 * Tell the parent which fd is our uffd. It hands a copy to the daemon
 * while we go on preparing (plugin, handlers, fs): only the blob registers
 * memory with it, and child_lazy_wait() comes before the jump.
 */
static void child_lazy_handover(struct rst_child *c)
{
	struct lz_rst_msg m = { .magic = LZ_RST_MSG_MAGIC, .type = LZ_MSG_UFFD,
				.step = LZ_STEP_UFFD, .arg = (uint32_t)c->svc.uffd,
				.addr = c->uffd_features };

	while (write(c->svc.status_fd, &m, sizeof(m)) < 0 && errno == EINTR)
		;
}

/* Wait until the daemon guards a copy of the uffd: only then may the blob run. */
static int child_lazy_wait(struct rst_child *c)
{
	ssize_t n;
	char go;

	do
		n = read(c->svc.go_fd, &go, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1) {
		snprintf(c->why, sizeof(c->why), "the lazy-pages daemon did not take the process");
		return -ECONNABORTED;
	}
	return 0;
}

static void log_plan(const struct rst_child *c)
{
	const struct lz_blob_args *a = c->plg.args;
	const struct lz_blob_vma *v = (const struct lz_blob_vma *)(uintptr_t)a->vmas;

	pr_info("restorer area %#" PRIx64 "-%#" PRIx64 ", %u VMAs, %" PRIu64 " page runs, %" PRIu64
		" data pages",
		c->plg.area, c->plg.area + c->plg.area_len, a->nr_vmas, a->nr_runs,
		c->plg.nr_data_pages);
	for (uint32_t i = 0; i < a->nr_vmas; i++)
		pr_debug("vma %#" PRIx64 "-%#" PRIx64 " prot %x flags %#x fd %d madv %#x%s%s",
			 v[i].start, v[i].end, v[i].prot, v[i].flags, v[i].fd, v[i].madv,
			 (v[i].vflags & LZ_BVMA_FILL) ? " fill" : "",
			 (v[i].vflags & LZ_BVMA_LAZY) ? " lazy" : "");
	if (a->vdso_addr)
		pr_debug("vdso at %#" PRIx64 " (%" PRIu64 " bytes)", a->vdso_addr, a->vdso_len);
}

static int child_plugin(struct rst_child *c)
{
	const struct rst_task *t = c->t;
	struct plg_images pi = {
		.mm = t->mm,
		.core = t->cores[0],
		.cores = (const CoreEntry *const *)t->cores,
		.nr_threads = t->nr_cores,
		.task = t->task,
		.pm = t->pm,
		.nr_pm = t->nr_pm,
		.xfeatures = c->im->inv->xfeatures,
	};
	struct plg_fds pf = {
		.status_fd = c->svc.status_fd,
		.release_fd = c->svc.release_fd,
		.go_fd = c->svc.go_fd,
		.helper_pid = c->detach ? c->detach->helper : 0,
		.pages_fd = c->svc.pages_fd,
		.exe_fd = c->svc.exe_fd,
		.uffd = c->svc.uffd,
		.vma_fds = c->svc.vma_fds,
		.close_fds = c->svc.all,
		.nr_close_fds = c->svc.nr_all,
		.shm_ids = rst_shmem_plg(c->im),
		.nr_shm = c->im->nr_shmem,
		.locks = c->svc.locks,
		.nr_locks = c->svc.nr_locks,
	};
	int ret;

	if (c->im->nr_shmem && !pf.shm_ids) {
		snprintf(c->why, sizeof(c->why), "out of memory");
		return -ENOMEM;
	}
	ret = plg_prepare(&c->plg, &pi, &pf, c->t_start, c->why, sizeof(c->why));
	free((void *)pf.shm_ids);
	if (!ret)
		log_plan(c);
	return ret;
}

/*
 * Test hook (Documentation/testing.md, test-only): LAZARUS_TEST_PAUSE=child
 * makes the process hang for good, silent and idle, right before the jump,
 * so that the parent's bound on its wait (restore-proc.c) and the cleanup
 * after it can be tested. Every signal is blocked: only SIGKILL ends it.
 */
static void test_hang(void)
{
	const char *want = getenv("LAZARUS_TEST_PAUSE");

	if (!want || strcmp(want, "child"))
		return;
	pr_info("LAZARUS_TEST_PAUSE=child: hanging before the jump");
	for (;;)
		pause();
}

static void child_msg(const struct rst_child *c, uint16_t type, uint32_t arg, uint64_t addr)
{
	struct lz_rst_msg m = { .magic = LZ_RST_MSG_MAGIC, .type = type,
				.step = LZ_STEP_CHILD, .arg = arg, .addr = addr };

	while (write(c->status_fd, &m, sizeof(m)) < 0 && errno == EINTR)
		;
}

/* One byte on the go pipe: lazarus answered; EOF: it gave up on us. */
static int child_wait_go(struct rst_child *c, const char *what)
{
	ssize_t n;
	char go;

	do
		n = read(c->go_fd, &go, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1)
		return 0;
	snprintf(c->why, sizeof(c->why), "lazarus did not answer (%s)", what);
	return -ECONNABORTED;
}

/*
 * Create one child with its pid, and a pidfd of it. The child never
 * returns from here: it restores its own task.
 */
static int child_fork_one(struct rst_child *c, const struct rst_task *k, int *pidfd)
{
	pid_t tid = (pid_t)k->pid;
	struct clone_args ca = {
		.flags = CLONE_PIDFD,
		.pidfd = (uint64_t)(uintptr_t)pidfd,
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&tid,
		.set_tid_size = 1,
	};
	pid_t pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));

	if (pid == 0)
		rst_child_main(c->im, k, c->chans, NULL, c->lazy);
	if (pid < 0) {
		if (errno == EEXIST)
			snprintf(c->why, sizeof(c->why), "child %d: pid %d is already in use",
				 tid, tid);
		else
			snprintf(c->why, sizeof(c->why), "clone3 of child %d: %s", tid,
				 strerror(errno));
		return -errno;
	}
	return 0;
}

/*
 * Our children, in pstree order, each reported with its pidfd; lazarus
 * copies every pidfd (pidfd_getfd) before it lets us go on, so that from
 * then on it can kill each of them for sure. Until it does, a child dies
 * with us (its parent-death signal).
 */
static int child_fork_all(struct rst_child *c)
{
	size_t me = (size_t)(c->t - c->im->tasks), nr = 0;
	int ret;

	for (size_t j = me + 1; j < c->im->nr_tasks; j++) {
		const struct rst_task *k = &c->im->tasks[j];
		int pidfd = -1;

		if (k->parent != (int)me)
			continue;
		ret = child_fork_one(c, k, &pidfd);
		if (ret)
			return ret;
		child_msg(c, RST_MSG_CHILD, (uint32_t)pidfd, k->pid);
		nr++;
	}
	if (!nr)
		return 0;
	child_msg(c, RST_MSG_CHILDREN, (uint32_t)nr, 0);
	return child_wait_go(c, "pidfds of our children");
}

/* Every other task's pipes and pages file: ours to keep are ours only. */
static void child_close_others(struct rst_child *c)
{
	size_t me = (size_t)(c->t - c->im->tasks);

	for (size_t j = 0; j < c->im->nr_tasks; j++) {
		const struct rst_chan *ch = &c->chans[j];

		if (ch->status_rd >= 0)
			close(ch->status_rd);
		if (ch->go_wr >= 0)
			close(ch->go_wr);
		if (j == me)
			continue;
		if (ch->status_wr >= 0)
			close(ch->status_wr);
		if (ch->go_rd >= 0)
			close(ch->go_rd);
		if (c->im->tasks[j].pages_fd >= 0)
			close(c->im->tasks[j].pages_fd);
	}
}

/*
 * A zombie of the dump: exit again with the dumped wait status (its exit
 * code, or the signal that killed it, without a core dump), and stay a
 * zombie: its parent runs lazarus's code, then the blob, and never reaps.
 */
static __attribute__((noreturn)) void child_zombie(struct rst_child *c)
{
	int st = c->t->pstree->exit_status;
	struct rlimit no_core = { 0, 0 };
	sigset_t set;

	child_msg(c, RST_MSG_ZOMBIE, (uint32_t)st, 0);
	if (WIFSIGNALED(st)) {
		setrlimit(RLIMIT_CORE, &no_core);
		signal(WTERMSIG(st), SIG_DFL);
		sigemptyset(&set);
		sigaddset(&set, WTERMSIG(st));
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		kill(getpid(), WTERMSIG(st));
	}
	_exit(WIFEXITED(st) ? WEXITSTATUS(st) : 0);
}

/*
 * Not the root: SIGKILL when our parent dies, until the blob sets the
 * dumped parent-death signal; a parent already gone means we were orphaned
 * before it was set.
 */
static int child_pdeath(struct rst_child *c)
{
	const struct rst_task *q;

	if (c->t->parent < 0)
		return 0;
	q = &c->im->tasks[c->t->parent];
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0)) {
		snprintf(c->why, sizeof(c->why), "prctl(PR_SET_PDEATHSIG): %s", strerror(errno));
		return -errno;
	}
	if (getppid() != (pid_t)q->pid) {
		snprintf(c->why, sizeof(c->why), "its parent %u is gone", q->pid);
		return -ESRCH;
	}
	return 0;
}

/*
 * Test hook (Documentation/testing.md, test-only): LAZARUS_FAULT_PID=<pid>
 * limits LAZARUS_FAULT_BLOB to that process of a tree.
 */
static void fault_only_pid(const struct rst_child *c)
{
	const char *want = getenv("LAZARUS_FAULT_PID");

	if (want && strtoul(want, NULL, 10) != c->t->pid)
		unsetenv("LAZARUS_FAULT_BLOB");
}

/*
 * MNTNS_PROC, the root (pid 1 of the fresh pid namespace), before it makes
 * any child: what `unshare --mount-proc` made, a private copy of our mount
 * namespace with a proc of the new pid namespace on /proc (dump-ns.c
 * checked the dumped one was just that).
 */
static int child_mnt_ns(struct rst_child *c)
{
	if (!c->im->mnt_proc || c->t->parent >= 0)
		return 0;
	if (unshare(CLONE_NEWNS)) {
		snprintf(c->why, sizeof(c->why), "unshare(CLONE_NEWNS): %s", strerror(errno));
		return -errno;
	}
	if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL)) {
		snprintf(c->why, sizeof(c->why), "making the mounts private: %s", strerror(errno));
		return -errno;
	}
	if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) {
		snprintf(c->why, sizeof(c->why), "mounting /proc of the new pid namespace: %s",
			 strerror(errno));
		return -errno;
	}
	return 0;
}

static int child_run(struct rst_child *c)
{
	int ret = child_mnt_ns(c);

	if (!ret)
		ret = child_pdeath(c);

	if (!ret)
		ret = rst_task_session(c->t, c->why, sizeof(c->why));
	if (!ret)
		ret = rst_tty_session(c->im, c->t, c->why, sizeof(c->why));
	if (!ret)
		ret = rst_task_group_helpers(c->im, c->t, c->helpers, &c->nr_helpers, c->why,
					     sizeof(c->why));
	if (!ret)
		ret = child_fork_all(c);
	if (ret)
		return ret;
	child_close_others(c);
	ret = rst_task_join_group(c->im, c->t, c->why, sizeof(c->why));
	if (!ret)
		ret = rst_tty_foreground(c->im, c->t, c->why, sizeof(c->why));
	if (ret)
		return ret;
	if (rst_task_zombie(c->t))
		child_zombie(c);
	fault_only_pid(c);
	ret = rst_task_state(c->t, c->why, sizeof(c->why));
	if (!ret && c->lazy)
		ret = child_uffd_open(c);
	if (!ret)
		ret = child_fds(c);
	if (ret)
		return ret;
	if (c->lazy)
		child_lazy_handover(c); /* the parent's round trip overlaps what follows */
	ret = child_plugin(c);
	if (!ret)
		ret = rst_task_misc(c->t, c->why, sizeof(c->why));
	if (!ret)
		ret = rst_task_sigactions(c->t, c->why, sizeof(c->why));
	if (!ret)
		ret = rst_task_fs(c->t, c->why, sizeof(c->why));
	if (!ret)
		ret = rst_task_group_helpers_wait(c->helpers, c->nr_helpers, c->why,
						  sizeof(c->why));
	if (!ret && c->lazy)
		ret = child_lazy_wait(c);
	if (ret)
		return ret;
	test_hang();
	pr_info("jumping into the restorer");
	/* No logging from here on: the TSC mode may make rdtsc fault. */
	ret = rst_task_sched(c->t, c->why, sizeof(c->why));
	return ret ? ret : plg_jump(&c->plg, c->why, sizeof(c->why));
}

void rst_child_main(const struct rst_images *im, const struct rst_task *t,
		    const struct rst_chan *chans, const struct rst_detach *detach,
		    const struct rst_lazy *lazy)
{
	size_t me = (size_t)(t - im->tasks);
	struct rst_child c = {
		.im = im,
		.t = t,
		.chans = chans,
		.status_fd = chans[me].status_wr,
		.go_fd = chans[me].go_rd,
		.detach = detach,
		.lazy = lazy,
		.uffd = -1,
		.t_start = rst_now_ns(),
	};
	sigset_t all;
	int ret;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	ret = child_run(&c);
	rst_msg_text(c.status_fd, LZ_MSG_FAIL, ret, "%s", c.why);
	_exit(1);
}
