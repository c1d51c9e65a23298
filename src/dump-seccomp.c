/*
 * dump-seccomp.c - a thread's seccomp state, read from outside while it is
 * frozen: the mode from /proc/TID/status, and in filter mode every filter
 * with PTRACE_SECCOMP_GET_FILTER (index 0 is the oldest, the order the
 * image keeps) and its flags with PTRACE_SECCOMP_GET_METADATA. Both need
 * CAP_SYS_ADMIN. Each thread gets its own copy of its chain: threads that
 * shared filters get equal, separate chains back (same behaviour).
 *
 * The syscalls the dump injects must not meet the filters: the tracee was
 * seized with PTRACE_O_SUSPEND_SECCOMP (ptrace.c); where that was refused,
 * a thread using seccomp is refused here.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>

#define LOG_PREFIX "dump: "
#include "log.h"
#include "dump-seccomp.h"
#include "proc.h"

#define GET_FILTER_ 0x420c   /* PTRACE_SECCOMP_GET_FILTER */
#define GET_METADATA_ 0x420d /* PTRACE_SECCOMP_GET_METADATA */
#define CAP_SYS_ADMIN_ 21
#define FILTER_FLAG_LOG_ 2U  /* SECCOMP_FILTER_FLAG_LOG: the only flag it reports */

struct seccomp_metadata_ {
	uint64_t filter_off;
	uint64_t flags;
};

static int get_filter(struct seccomp_dump *s, pid_t tid, unsigned long idx, unsigned slot)
{
	struct seccomp_metadata_ md = { .filter_off = idx };
	long n = ptrace(GET_FILTER_, tid, (void *)idx, NULL);

	if (n <= 0) {
		pr_err("thread %d: PTRACE_SECCOMP_GET_FILTER %lu: %s", tid, idx,
		       n ? strerror(errno) : "empty filter");
		return n ? -errno : -EINVAL;
	}
	s->prog[slot] = calloc((size_t)n, 8);
	if (!s->prog[slot])
		return -ENOMEM;
	if (ptrace(GET_FILTER_, tid, (void *)idx, s->prog[slot]) != n) {
		pr_err("thread %d: PTRACE_SECCOMP_GET_FILTER %lu changed size", tid, idx);
		return -EIO;
	}
	s->len[slot] = (uint32_t)n;
	if (ptrace(GET_METADATA_, tid, (void *)sizeof(md), &md) < 0) {
		pr_err("thread %d: PTRACE_SECCOMP_GET_METADATA %lu: %s", tid, idx, strerror(errno));
		return -errno;
	}
	s->flags[slot] = (uint32_t)md.flags & FILTER_FLAG_LOG_;
	return 0;
}

static int get_filters(struct seccomp_dump *s, pid_t tid)
{
	unsigned long n = 0;
	int ret;

	/* Count them first: a filter is added by a thread only, and it is frozen. */
	while (ptrace(GET_FILTER_, tid, (void *)n, NULL) > 0)
		n++;
	if (errno != ENOENT) {
		pr_err("thread %d: PTRACE_SECCOMP_GET_FILTER %lu: %s", tid, n, strerror(errno));
		return -errno;
	}
	if (!n || n > SECCOMP_MAX_FILTERS) {
		pr_err("thread %d: %lu seccomp filters, 1..%d can be dumped", tid, n,
		       SECCOMP_MAX_FILTERS);
		return -E2BIG;
	}
	for (unsigned long i = 0; i < n; i++) {
		ret = get_filter(s, tid, i, (unsigned)i);
		if (ret)
			return ret;
		s->nr++;
	}
	return 0;
}

int seccomp_collect(struct seccomp_dump *s, struct tracee *t)
{
	uint64_t mode = 0, nnp = 0, cap_eff = 0;
	char *text;
	int ret;

	memset(s, 0, sizeof(*s));
	ret = proc_read(t->pid, "status", &text, NULL);
	if (ret) {
		pr_err("thread %d: reading /proc/%d/status: %s", t->pid, t->pid, strerror(-ret));
		return ret;
	}
	proc_parse_status_num(text, "Seccomp", 10, &mode); /* absent without CONFIG_SECCOMP */
	proc_parse_status_num(text, "NoNewPrivs", 10, &nnp);
	proc_parse_status_num(text, "CapEff", 16, &cap_eff);
	free(text);
	if (!mode)
		return 0;
	if (mode > 2) {
		pr_err("thread %d uses seccomp mode %" PRIu64 ": unknown mode", t->pid, mode);
		return -EOPNOTSUPP;
	}
	if (!t->seccomp_suspended) {
		pr_err("thread %d uses seccomp (mode %" PRIu64
		       "): its filters cannot be suspended for the dump (PTRACE_O_SUSPEND_SECCOMP needs CAP_SYS_ADMIN)",
		       t->pid, mode);
		return -EPERM;
	}
	/* What seccomp(SET_MODE_FILTER) asks of the restored thread (blob/seccomp.c). */
	if (mode == 2 && !nnp && !(cap_eff & (1ULL << CAP_SYS_ADMIN_))) {
		pr_err("thread %d: seccomp filters without no_new_privs or CAP_SYS_ADMIN cannot be installed again",
		       t->pid);
		return -EPERM;
	}
	s->mode = (uint32_t)mode;
	return mode == 2 ? get_filters(s, t->pid) : 0;
}

void seccomp_to_core(const struct seccomp_dump *s, CoreEntry *core, SeccompEntry *e,
		     SeccompFilterEntry *f, SeccompFilterEntry **fp)
{
	if (!s->mode)
		return;
	seccomp_entry__init(e);
	e->mode = s->mode;
	for (uint32_t i = 0; i < s->nr; i++) {
		seccomp_filter_entry__init(&f[i]);
		f[i].prog = (ProtobufCBinaryData){ .len = (size_t)s->len[i] * 8, .data = s->prog[i] };
		f[i].has_flags = true;
		f[i].flags = s->flags[i];
		fp[i] = &f[i];
	}
	e->n_filters = s->nr;
	e->filters = fp;
	core->seccomp = e;
}

void seccomp_fini(struct seccomp_dump *s)
{
	for (uint32_t i = 0; i < SECCOMP_MAX_FILTERS; i++) {
		free(s->prog[i]);
		s->prog[i] = NULL;
	}
	s->nr = 0;
}
