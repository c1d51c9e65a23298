/*
 * restore-task.c - session, signal handlers, prctl switches and fs state of
 * the process being restored, set while it still runs lazarus's code with
 * every signal blocked (rt_sigreturn sets the dumped mask at the end).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "restore-task.h"

int rst_task_session(const struct rst_images *im, char *why, size_t len)
{
	const PstreeEntry *p = im->pstree;

	if (p->sid == p->pid) {
		if (setsid() < 0) {
			snprintf(why, len, "setsid: %s", strerror(errno));
			return -errno;
		}
	} else if (p->pgid == p->pid) {
		if (setpgid(0, 0) < 0) {
			snprintf(why, len, "setpgid: %s", strerror(errno));
			return -errno;
		}
	}
	return 0;
}

/* struct sigaction as the kernel takes it (not glibc's). */
struct k_sigaction {
	uint64_t handler;
	uint64_t flags;
	uint64_t restorer;
	uint64_t mask;
};

/*
 * glibc's sigaction() would put its own restorer in; the target's handlers
 * return through the one it registered, which is what was dumped. The
 * handlers point into the target's code: safe because every signal stays
 * blocked until the final rt_sigreturn.
 */
int rst_task_sigactions(const struct rst_images *im, char *why, size_t len)
{
	for (size_t i = 0; i < im->nr_sigacts; i++) {
		const SigactionEntry *s = im->sigacts[i];
		struct k_sigaction ka = { s->handler, s->flags, s->restorer, s->mask };

		if (s->signo < 1 || s->signo > 64 || s->signo == SIGKILL || s->signo == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, s->signo, &ka, NULL, sizeof(ka.mask))) {
			snprintf(why, len, "rt_sigaction(%u): %s", s->signo, strerror(errno));
			return -errno;
		}
	}
	return 0;
}

static int prctl_set(int option, unsigned long value, const char *what, char *why, size_t len)
{
	if (prctl(option, value, 0, 0, 0)) {
		snprintf(why, len, "prctl(%s, %lu): %s", what, value, strerror(errno));
		return -errno;
	}
	return 0;
}

int rst_task_misc(const struct rst_images *im, char *why, size_t len)
{
	const TaskEntry *t = im->task;
	int ret = 0;

	if (personality(t->personality) < 0) {
		snprintf(why, len, "personality(%#x): %s", t->personality, strerror(errno));
		return -errno;
	}
	ret = prctl_set(PR_SET_NAME, (unsigned long)t->comm, "PR_SET_NAME", why, len);
	if (!ret)
		ret = prctl_set(PR_SET_THP_DISABLE, t->thp_disabled ? 1 : 0, "PR_SET_THP_DISABLE",
				why, len);
	if (!ret)
		ret = prctl_set(PR_SET_CHILD_SUBREAPER, t->child_subreaper ? 1 : 0,
				"PR_SET_CHILD_SUBREAPER", why, len);
	/* no_new_privs and dumpable go with the credentials, last (blob/creds.c). */
	return ret;
}

/* The cwd is a path from our root, so chdir before chroot. */
int rst_task_fs(const struct rst_images *im, char *why, size_t len)
{
	const FsEntry *fs = im->fs;

	if (chdir(fs->cwd)) {
		snprintf(why, len, "chdir %s: %s", fs->cwd, strerror(errno));
		return -errno;
	}
	if (strcmp(fs->root, "/") && chroot(fs->root)) {
		snprintf(why, len, "chroot %s: %s", fs->root, strerror(errno));
		return -errno;
	}
	umask((mode_t)fs->umask);
	return 0;
}
