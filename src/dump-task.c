/*
 * dump-task.c - per-process kernel state: comm, personality, rlimits,
 * itimers, prctl flags, signal dispositions, the process-wide queue of
 * pending signals, oom_score_adj, loginuid, cgroups, membarrier
 * registrations; and the scheduling state of a thread (nice, policy,
 * priority, affinity, timer slack), which goes into its core image.
 *
 * Most of it can only be asked by the task itself, so it is read through
 * injected syscalls that write into the scratch page. rlimits come from
 * prlimit(pid); without CAP_SYS_RESOURCE that fails for a task of another
 * user, and /proc/PID/limits gives the same numbers.
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "core.pb-c.h"
#include "dump-task.h"
#include "restorer.h"
#include "sigact.pb-c.h"
#include "task.pb-c.h"

_Static_assert(RLIM_NLIMITS == PROC_NR_RLIMITS, "x86_64 has 16 rlimits");
/* The blob's fixed arrays take every rlimit and itimer there is: nothing is cut. */
_Static_assert(PROC_NR_RLIMITS <= LZ_BLOB_MAX_RLIMITS, "every rlimit fits the blob");
_Static_assert(3 <= LZ_BLOB_MAX_ITIMERS, "every itimer fits the blob");

/* <linux/membarrier.h> of 6.3 (system headers here are 6.1). */
#define LZ_MEMBARRIER_CMD_GET_REGISTRATIONS (1 << 9)

/* struct sched_attr of <linux/sched/types.h>, SCHED_ATTR_SIZE_VER1. */
struct lz_sched_attr {
	uint32_t size;
	uint32_t sched_policy;
	uint64_t sched_flags;
	int32_t sched_nice;
	uint32_t sched_priority;
	uint64_t sched_runtime, sched_deadline, sched_period;
	uint32_t sched_util_min, sched_util_max;
};
_Static_assert(sizeof(struct lz_sched_attr) == 56, "kernel ABI: SCHED_ATTR_SIZE_VER1");

#define LZ_SCHED_DEADLINE 6
#define LZ_SCHED_FLAG_RESET_ON_FORK 0x01ULL
#define LZ_UCLAMP_MAX 1024

/*
 * The 3 getitimer, the prctl options and membarrier(GET_REGISTRATIONS) in
 * one batch. prctl options return their answer as the syscall's value
 * (out < 0) or store an int at arg2 (out: its int slot in the scratch page,
 * after the itimers). Each fails on a negative result, naming what.
 */
struct prctl_ask {
	int option;
	const char *what;
	int out;
	int32_t *val;
};

#define TASK_MAX_PRCTL 8
#define TASK_BATCH (3 + TASK_MAX_PRCTL + 1)

static int membarrier_answer(struct task_dump *td, struct tracee *t, int64_t r);

static int get_task_batch(struct task_dump *td, struct tracee *t, const struct prctl_ask *ask,
			  size_t n)
{
	static const int which[3] = { ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF };
	const uint64_t ints = t->scratch + sizeof(td->itimer);
	struct tracee_call calls[TASK_BATCH];
	struct {
		struct task_itimer itimer[3];
		int32_t val[TASK_MAX_PRCTL];
	} out;
	int ret;

	_Static_assert(sizeof(out) <= TRACEE_SCRATCH_SIZE, "out-params fit the scratch page");
	_Static_assert(sizeof(out.itimer) == sizeof(td->itimer), "the scratch page's layout");
	for (int i = 0; i < 3; i++)
		calls[i] = (struct tracee_call){ .nr = SYS_getitimer,
						 .args = { (uint64_t)which[i],
							   t->scratch + i * sizeof(td->itimer[0]) } };
	for (size_t i = 0; i < n; i++) {
		calls[3 + i] = (struct tracee_call){ .nr = SYS_prctl,
						     .args = { (uint64_t)ask[i].option } };
		if (ask[i].out >= 0)
			calls[3 + i].args[1] = ints + (uint64_t)ask[i].out * sizeof(int32_t);
	}
	calls[3 + n] = (struct tracee_call){ .nr = SYS_membarrier,
					     .args = { LZ_MEMBARRIER_CMD_GET_REGISTRATIONS } };
	ret = tracee_syscalls(t, calls, 3 + n + 1);
	if (!ret)
		ret = tracee_read(t, t->scratch, &out, sizeof(out));
	if (ret) {
		pr_err("process %d: reading the scratch page: %s", t->pid, strerror(-ret));
		return ret;
	}
	for (int i = 0; i < 3; i++) {
		if (calls[i].ret < 0) {
			pr_err("process %d: injected getitimer: %s", t->pid,
			       strerror((int)-calls[i].ret));
			return (int)calls[i].ret;
		}
	}
	memcpy(td->itimer, out.itimer, sizeof(td->itimer));
	for (size_t i = 0; i < n; i++) {
		if (calls[3 + i].ret < 0) {
			pr_err("process %d: injected %s: %s", t->pid, ask[i].what,
			       strerror((int)-calls[3 + i].ret));
			return (int)calls[3 + i].ret;
		}
		*ask[i].val = ask[i].out >= 0 ? out.val[ask[i].out] : (int32_t)calls[3 + i].ret;
	}
	return membarrier_answer(td, t, calls[3 + n].ret);
}

static int get_task_state(struct task_dump *td, struct tracee *t)
{
	const struct prctl_ask ask[] = {
		{ PR_GET_THP_DISABLE, "prctl(PR_GET_THP_DISABLE)", -1, &td->thp_disabled },
		{ PR_GET_DUMPABLE, "prctl(PR_GET_DUMPABLE)", -1, &td->dumpable },
		{ PR_GET_NO_NEW_PRIVS, "prctl(PR_GET_NO_NEW_PRIVS)", -1, &td->no_new_privs },
		{ PR_GET_PDEATHSIG, "prctl(PR_GET_PDEATHSIG)", 0, &td->pdeath_sig },
		{ PR_GET_CHILD_SUBREAPER, "prctl(PR_GET_CHILD_SUBREAPER)", 1, &td->child_subreaper },
	};
	int ret;

	_Static_assert(ARRAY_SIZE(ask) <= TASK_MAX_PRCTL, "one batch");
	ret = get_task_batch(td, t, ask, ARRAY_SIZE(ask));

	/* Linux 6.18 reports PR_THP_DISABLE_EXCEPT_ADVISED (bit 1) here: restore sets only 0/1. */
	if (!ret && td->thp_disabled > 1) {
		pr_err("process %d: transparent huge pages disabled with flags %#x "
		       "(PR_SET_THP_DISABLE): not supported yet",
		       t->pid, (unsigned)td->thp_disabled);
		return -EOPNOTSUPP;
	}
	return ret;
}

/* All in one batch; each signal's answer in its own slot of the scratch page. */
static int get_sigactions(struct task_dump *td, struct tracee *t)
{
	struct tracee_call calls[TASK_NR_SIGNALS];
	uint8_t out[TASK_NR_SIGNALS][sizeof(td->sigact[0])];
	size_t n = 0;
	int ret;

	_Static_assert(sizeof(out) <= TRACEE_SCRATCH_SIZE, "out-params fit the scratch page");
	_Static_assert(TASK_NR_SIGNALS <= TRACEE_MAX_CALLS, "one batch");
	for (int sig = 1; sig <= TASK_NR_SIGNALS; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		calls[n++] = (struct tracee_call){
			.nr = SYS_rt_sigaction,
			.args = { (uint64_t)sig, 0, t->scratch + (sig - 1) * sizeof(out[0]),
				  8 /* sigsetsize */ },
		};
	}
	ret = tracee_syscalls(t, calls, n);
	for (size_t i = 0; !ret && i < n; i++) {
		if (calls[i].ret < 0) {
			pr_err("process %d: injected rt_sigaction: %s", t->pid,
			       strerror((int)-calls[i].ret));
			return (int)calls[i].ret;
		}
	}
	if (!ret)
		ret = tracee_read(t, t->scratch, out, sizeof(out));
	if (ret) {
		pr_err("process %d: reading the scratch page: %s", t->pid, strerror(-ret));
		return ret;
	}
	for (int sig = 1; sig <= TASK_NR_SIGNALS; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			memcpy(&td->sigact[sig], out[sig - 1], sizeof(td->sigact[sig]));
	return 0;
}

/*
 * membarrier registrations belong to the mm and only the task can ask.
 * MEMBARRIER_CMD_GET_REGISTRATIONS (Linux 6.3) tells them all. Before it,
 * each private expedited command fails with EPERM unless registered (EINVAL:
 * this kernel lacks that command); a GLOBAL_EXPEDITED registration cannot
 * be seen there and is lost (Documentation/state.md).
 */
static int membarrier_answer(struct task_dump *td, struct tracee *t, int64_t r)
{
	static const struct {
		int cmd, reg;
	} probe[] = {
		{ MEMBARRIER_CMD_PRIVATE_EXPEDITED, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED },
		{ MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE,
		  MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE },
		{ MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
		  MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ },
	};
	int ret;

	if (r >= 0) {
		td->membarrier = (uint32_t)r;
		return 0;
	}
	if (r != -EINVAL && r != -ENOSYS) {
		pr_err("process %d: injected membarrier(GET_REGISTRATIONS): %s", t->pid,
		       strerror((int)-r));
		return (int)r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(probe); i++) {
		uint64_t pargs[6] = { (uint64_t)probe[i].cmd };

		ret = tracee_syscall(t, SYS_membarrier, pargs, &r);
		if (ret)
			return ret;
		if (r == 0)
			td->membarrier |= (uint32_t)probe[i].reg;
		else if (r != -EPERM && r != -EINVAL)
			pr_warn("process %d: injected membarrier(%d): %s", t->pid, probe[i].cmd,
				strerror((int)-r));
	}
	return 0;
}

int task_collect_injected(struct task_dump *td, struct tracee *t)
{
	int ret;

	/* Not zeroed here: task_collect_state() filled part of it in the checks phase. */
	td->pid = t->pid;
	ret = get_task_state(td, t);
	if (!ret)
		ret = get_sigactions(td, t);
	return ret;
}

#define LZ_PR_GET_MDWE 66 /* <linux/prctl.h> of 6.3 */

int task_collect_thread_injected(struct thread_sched *s, struct tracee *t)
{
	struct tracee_call calls[3] = {
		{ .nr = SYS_prctl, .args = { PR_GET_TSC, t->scratch } },
		{ .nr = SYS_prctl, .args = { PR_MCE_KILL_GET } },
		{ .nr = SYS_prctl, .args = { LZ_PR_GET_MDWE } },
	};
	int32_t tsc = 0;
	int ret;

	ret = tracee_syscalls(t, calls, 3);
	if (!ret && calls[0].ret >= 0)
		ret = tracee_read(t, t->scratch, &tsc, sizeof(tsc));
	if (ret) {
		pr_err("process %d: reading the scratch page: %s", t->pid, strerror(-ret));
		return ret;
	}
	for (int i = 0; i < 2; i++) {
		if (calls[i].ret < 0) {
			pr_err("process %d: injected %s: %s", t->pid,
			       i ? "prctl(PR_MCE_KILL_GET)" : "prctl(PR_GET_TSC)",
			       strerror((int)-calls[i].ret));
			return (int)calls[i].ret;
		}
	}
	/* Restore could not map the process with it set; EINVAL: a kernel without MDWE. */
	if (calls[2].ret > 0) {
		pr_err("process %d denies write+execute mappings (PR_SET_MDWE %#llx): not supported yet",
		       t->pid, (unsigned long long)calls[2].ret);
		return -EOPNOTSUPP;
	}
	s->tsc_mode = (uint32_t)tsc;
	s->mce_kill = (int32_t)calls[1].ret;
	return 0;
}

/* One decimal number from /proc/PID/NAME. */
static int proc_number(pid_t pid, const char *name, long long *val)
{
	char *text, *end;
	int ret;

	ret = proc_read(pid, name, &text, NULL);
	if (!ret) {
		errno = 0;
		*val = strtoll(text, &end, 10);
		ret = (errno || end == text) ? -EINVAL : 0;
		free(text);
	}
	if (ret)
		pr_err("process %d: reading /proc/%d/%s: %s", pid, pid, name, strerror(-ret));
	return ret;
}

int task_collect_state(struct task_dump *td, pid_t pid)
{
	long long oom, loginuid;
	char *text;
	size_t len;
	int ret;

	td->pid = pid;
	ret = proc_number(pid, "oom_score_adj", &oom);
	if (!ret)
		ret = proc_number(pid, "loginuid", &loginuid);
	if (ret)
		return ret;
	td->oom_score_adj = (int32_t)oom;
	td->loginuid = (uint32_t)loginuid;
	ret = proc_read(pid, "coredump_filter", &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/coredump_filter: %s", pid, pid, strerror(-ret));
		return ret;
	}
	td->coredump_filter = (uint32_t)strtoul(text, NULL, 16);
	free(text);
	ret = proc_read(pid, "cgroup", &text, &len);
	if (ret) {
		pr_err("process %d: reading /proc/%d/cgroup: %s", pid, pid, strerror(-ret));
		return ret;
	}
	if (len >= sizeof(td->cgroups)) {
		pr_err("process %d: /proc/%d/cgroup is %zu bytes, at most %zu are supported", pid,
		       pid, len, sizeof(td->cgroups) - 1);
		free(text);
		return -E2BIG;
	}
	memcpy(td->cgroups, text, len);
	td->cgroups[len] = '\0';
	free(text);
	len = 0;
	for (const char *p = td->cgroups; (p = strchr(p, '\n')); p++)
		len++;
	if (len > TASK_MAX_CGROUPS) {
		pr_err("process %d: /proc/%d/cgroup has %zu hierarchies, at most %d are supported",
		       pid, pid, len, TASK_MAX_CGROUPS);
		return -E2BIG;
	}
	return 0;
}

static int get_sched_attr(struct thread_sched *s, pid_t pid, pid_t tid)
{
	struct lz_sched_attr a = { 0 };

	if (syscall(SYS_sched_getattr, tid, &a, sizeof(a), 0)) {
		pr_perror("process %d: sched_getattr of thread %d", pid, tid);
		return -errno;
	}
	if (a.sched_policy == LZ_SCHED_DEADLINE) {
		pr_err("process %d: thread %d runs under SCHED_DEADLINE: not supported yet", pid,
		       tid);
		return -EOPNOTSUPP;
	}
	/* Without CONFIG_UCLAMP_TASK both read 0. */
	if (a.sched_util_min || (a.sched_util_max && a.sched_util_max != LZ_UCLAMP_MAX)) {
		pr_err("process %d: thread %d has a utilization clamp (util_min %u, util_max %u): "
		       "not supported yet",
		       pid, tid, a.sched_util_min, a.sched_util_max);
		return -EOPNOTSUPP;
	}
	s->policy = a.sched_policy;
	s->priority = a.sched_priority;
	s->reset_on_fork = !!(a.sched_flags & LZ_SCHED_FLAG_RESET_ON_FORK);
	return 0;
}

int task_collect_sched(struct thread_sched *s, pid_t pid, pid_t tid)
{
	long long slack;
	char name[64];
	long n;
	int ret;

	memset(s, 0, sizeof(*s));
	ret = get_sched_attr(s, pid, tid);
	if (ret)
		return ret;
	/* getpriority: the nice value whatever the policy (sched_getattr has it only for normal ones). */
	errno = 0;
	s->nice = getpriority(PRIO_PROCESS, (id_t)tid);
	if (errno) {
		pr_perror("process %d: getpriority of thread %d", pid, tid);
		return -errno;
	}
	n = syscall(SYS_sched_getaffinity, tid, sizeof(s->affinity), s->affinity);
	if (n < 0) {
		pr_perror("process %d: sched_getaffinity of thread %d", pid, tid);
		return -errno;
	}
	s->nr_affinity = (unsigned)((size_t)n / sizeof(uint64_t));
	snprintf(name, sizeof(name), "task/%d/timerslack_ns", tid);
	ret = proc_number(pid, tid == pid ? "timerslack_ns" : name, &slack);
	if (ret)
		return ret;
	s->timerslack_ns = (uint64_t)slack;
	return 0;
}

void task_sched_to_core(const struct thread_sched *s, CoreEntry *e)
{
	e->has_nice = e->has_sched_policy = e->has_sched_priority = true;
	e->has_sched_reset_on_fork = e->has_timerslack_ns = true;
	e->nice = s->nice;
	e->sched_policy = s->policy;
	e->sched_priority = s->priority;
	e->sched_reset_on_fork = s->reset_on_fork;
	e->timerslack_ns = s->timerslack_ns;
	e->has_tsc_mode = e->has_mce_kill = true;
	e->tsc_mode = s->tsc_mode;
	e->mce_kill = s->mce_kill;
	e->n_cpu_affinity = s->nr_affinity;
	e->cpu_affinity = (uint64_t *)s->affinity;
}

static int get_rlimits(struct task_dump *td)
{
	char *text;
	int ret;

	for (int res = 0; res < PROC_NR_RLIMITS; res++) {
		struct rlimit rl;

		if (prlimit(td->pid, (enum __rlimit_resource)res, NULL, &rl) < 0)
			goto from_proc;
		td->rlim[res].cur = rl.rlim_cur;
		td->rlim[res].max = rl.rlim_max;
	}
	return 0;

from_proc:
	if (errno != EPERM) {
		pr_perror("process %d: prlimit", td->pid);
		return -errno;
	}
	pr_debug("process %d: prlimit not permitted, reading /proc/%d/limits", td->pid, td->pid);
	ret = proc_read(td->pid, "limits", &text, NULL);
	if (!ret) {
		ret = proc_parse_limits(text, td->rlim);
		free(text);
	}
	if (ret)
		pr_err("process %d: reading /proc/%d/limits: %s", td->pid, td->pid, strerror(-ret));
	return ret;
}

static int get_comm_personality(struct task_dump *td)
{
	char *text = NULL;
	int ret;

	ret = proc_read(td->pid, "comm", &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/comm: %s", td->pid, td->pid, strerror(-ret));
		return ret;
	}
	text[strcspn(text, "\n")] = '\0';
	snprintf(td->comm, sizeof(td->comm), "%s", text);
	free(text);

	ret = proc_read(td->pid, "personality", &text, NULL);
	if (ret) {
		pr_err("process %d: reading /proc/%d/personality: %s", td->pid, td->pid,
		       strerror(-ret));
		return ret;
	}
	errno = 0;
	td->personality = (uint32_t)strtoul(text, NULL, 16);
	free(text);
	return 0;
}

int task_collect_proc(struct task_dump *td, pid_t pid)
{
	int ret;

	td->pid = pid;
	ret = get_comm_personality(td);
	if (!ret)
		ret = get_rlimits(td);
	return ret;
}

int task_collect_pending(struct task_dump *td, struct tracee *t, unsigned max)
{
	int ret = tracee_peek_pending(t, true, &td->shared_pending[0][0], max,
				      &td->nr_shared_pending);

	if (ret == -E2BIG)
		pr_err("process %d has more than %d pending signals: not supported yet", td->pid,
		       TRACEE_MAX_PENDING);
	return ret;
}

static int write_task(const struct task_dump *td, struct dump_imgs *imgs)
{
	ProtobufCBinaryData pending[TRACEE_MAX_PENDING];
	RlimitEntry rl[PROC_NR_RLIMITS], *rlp[PROC_NR_RLIMITS];
	ItimerEntry it[3], *itp[3];
	TaskEntry e = TASK_ENTRY__INIT;
	char cg_text[TASK_CGROUP_TEXT], *cgroups[TASK_MAX_CGROUPS];
	char name[DUMP_IMG_NAME_MAX];
	int ret;

	for (int i = 0; i < PROC_NR_RLIMITS; i++) {
		rlimit_entry__init(&rl[i]);
		rl[i].resource = (uint32_t)i;
		rl[i].cur = td->rlim[i].cur;
		rl[i].max = td->rlim[i].max;
		rlp[i] = &rl[i];
	}
	for (int i = 0; i < 3; i++) {
		itimer_entry__init(&it[i]);
		it[i].which = (uint32_t)i; /* ITIMER_REAL 0, VIRTUAL 1, PROF 2 */
		it[i].interval_sec = td->itimer[i].interval_sec;
		it[i].interval_usec = td->itimer[i].interval_usec;
		it[i].value_sec = td->itimer[i].value_sec;
		it[i].value_usec = td->itimer[i].value_usec;
		itp[i] = &it[i];
	}
	e.pid = (uint32_t)td->img_pid;
	e.comm = (char *)td->comm;
	e.personality = td->personality;
	e.n_rlimits = PROC_NR_RLIMITS;
	e.rlimits = rlp;
	e.n_itimers = 3;
	e.itimers = itp;
	e.thp_disabled = td->thp_disabled;
	e.dumpable = td->dumpable;
	e.pdeath_sig = td->pdeath_sig;
	e.child_subreaper = td->child_subreaper;
	e.no_new_privs = td->no_new_privs;
	for (unsigned i = 0; i < td->nr_shared_pending; i++)
		pending[i] = (ProtobufCBinaryData){ .len = TRACEE_SIGINFO_SIZE,
						    .data = (uint8_t *)td->shared_pending[i] };
	e.n_shared_pending_siginfo = td->nr_shared_pending;
	e.shared_pending_siginfo = pending;
	e.has_oom_score_adj = e.has_loginuid = e.has_membarrier = true;
	e.oom_score_adj = td->oom_score_adj;
	e.loginuid = td->loginuid;
	e.membarrier = td->membarrier;
	e.has_coredump_filter = true;
	e.coredump_filter = td->coredump_filter;
	memcpy(cg_text, td->cgroups, sizeof(cg_text));
	for (char *save = NULL, *l = strtok_r(cg_text, "\n", &save);
	     l && e.n_cgroups < TASK_MAX_CGROUPS; l = strtok_r(NULL, "\n", &save))
		cgroups[e.n_cgroups++] = l;
	e.cgroups = cgroups;
	snprintf(name, sizeof(name), "task-%d.img", td->img_pid);
	ret = timers_to_task(&td->timers, &e);
	if (!ret)
		ret = dump_img_write_one(imgs, name, LZ_IMG_TASK, &e.base);
	timers_free_task(&e);
	return ret;
}

static int write_sigacts(const struct task_dump *td, struct dump_imgs *imgs)
{
	SigactionEntry sa[TASK_NR_SIGNALS];
	const ProtobufCMessage *msgs[TASK_NR_SIGNALS];
	char name[DUMP_IMG_NAME_MAX];
	size_t n = 0;

	for (int sig = 1; sig <= TASK_NR_SIGNALS; sig++) {
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		sigaction_entry__init(&sa[n]);
		sa[n].signo = (uint32_t)sig;
		sa[n].handler = td->sigact[sig].handler;
		sa[n].flags = td->sigact[sig].flags;
		sa[n].restorer = td->sigact[sig].restorer;
		sa[n].mask = td->sigact[sig].mask;
		msgs[n] = &sa[n].base;
		n++;
	}
	snprintf(name, sizeof(name), "sigacts-%d.img", td->img_pid);
	return dump_img_write(imgs, name, LZ_IMG_SIGACTS, msgs, n);
}

int task_write(const struct task_dump *td, struct dump_imgs *imgs)
{
	int ret = write_task(td, imgs);

	return ret ? ret : write_sigacts(td, imgs);
}
