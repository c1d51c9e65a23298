/*
 * restore-child.c - what the restored process does before it jumps into
 * the restorer blob, in this order:
 *
 *   block every signal       the target's handlers get installed below
 *   session / group          setsid or setpgid as dumped
 *   cgroups, oom_score_adj,  through /proc/self, so before root and cwd
 *   loginuid, membarrier     change; membarrier registers this mm, which
 *                            the blob keeps
 *   lazy mode: userfaultfd   opened here: it binds to this process's mm
 *   service fds              opened, then moved above the target's fds
 *   the target's fds         opened and installed at their numbers
 *   lazy mode: handover      the parent gives the uffd to the daemon; wait
 *   plugin                   bootstrap area, blob args, signal frame
 *   prctl bits, handlers, fs personality, comm...; rt_sigaction; cwd, root, umask
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
#include <signal.h>
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
#include "restore-task.h"

struct rst_child {
	const struct rst_images *im;
	const struct rst_task *t; /* the process this one becomes */
	int status_fd; /* moves with the service fds */
	int go_fd;     /* the parent's go pipe: until moved into svc */
	const struct rst_detach *detach; /* NULL without -d */
	const struct rst_lazy *lazy;	 /* NULL in eager mode */
	int uffd;			 /* lazy: until moved into svc */
	uint64_t uffd_features;
	uint64_t t_start;
	struct rst_svc svc;
	struct plg_restore plg;
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
		.status_fd = c->status_fd,
		.release_fd = c->detach ? c->detach->release_fd : -1,
		.go_fd = c->go_fd,
		.uffd = c->uffd,
	};
	int ret = rst_svc_open(&c->svc, c->t, &in, c->why, sizeof(c->why));

	if (!ret)
		ret = rst_svc_move(&c->svc, c->t, c->why, sizeof(c->why));
	if (ret)
		return ret;
	c->status_fd = c->svc.status_fd;
	pr_info("service fds at %d..; installing %zu fds", c->svc.lowest, c->t->nr_fdinfo);
	return rst_fds_install(c->im, c->t, c->why, sizeof(c->why));
}

/*
 * Tell the parent which fd is our uffd and wait until the daemon guards a
 * copy of it: only then may the blob register memory with it.
 */
static int child_lazy_handover(struct rst_child *c)
{
	struct lz_rst_msg m = { .magic = LZ_RST_MSG_MAGIC, .type = LZ_MSG_UFFD,
				.step = LZ_STEP_UFFD, .arg = (uint32_t)c->svc.uffd,
				.addr = c->uffd_features };
	ssize_t n;
	char go;

	while (write(c->svc.status_fd, &m, sizeof(m)) < 0 && errno == EINTR)
		;
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
	};
	int ret = plg_prepare(&c->plg, &pi, &pf, c->t_start, c->why, sizeof(c->why));

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

static int child_run(struct rst_child *c)
{
	int ret = rst_task_session(c->t, c->why, sizeof(c->why));

	if (!ret)
		ret = rst_task_state(c->t, c->why, sizeof(c->why));
	if (!ret && c->lazy)
		ret = child_uffd_open(c);
	if (!ret)
		ret = child_fds(c);
	if (!ret && c->lazy)
		ret = child_lazy_handover(c);
	if (!ret)
		ret = child_plugin(c);
	if (!ret)
		ret = rst_task_misc(c->t, c->why, sizeof(c->why));
	if (!ret)
		ret = rst_task_sigactions(c->t, c->why, sizeof(c->why));
	if (!ret)
		ret = rst_task_fs(c->t, c->why, sizeof(c->why));
	if (ret)
		return ret;
	test_hang();
	pr_info("jumping into the restorer");
	/* No logging from here on: the TSC mode may make rdtsc fault. */
	ret = rst_task_sched(c->t, c->why, sizeof(c->why));
	return ret ? ret : plg_jump(&c->plg, c->why, sizeof(c->why));
}

void rst_child_main(const struct rst_images *im, const struct rst_task *t, int status_fd,
		    int go_fd,
		    const struct rst_detach *detach, const struct rst_lazy *lazy)
{
	struct rst_child c = {
		.im = im,
		.t = t,
		.status_fd = status_fd,
		.go_fd = go_fd,
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
