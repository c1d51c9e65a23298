/*
 * seccomp.c - a thread's seccomp mode, the very last thing it restores.
 *
 * A filter may forbid what the blob still does after it (futex, read,
 * close, rt_sigreturn) and what the lazarus parent injects afterwards
 * (munmap of the bootstrap area, restore-finish.c); strict mode forbids
 * nearly everything. So a thread installs its mode only once the parent
 * traces it with PTRACE_O_SUSPEND_SECCOMP (after `go`): from then until
 * the parent detaches, no filter and no strict mode applies to it, and at
 * the detach they all do. Filters go in oldest first (the kernel runs the
 * newest first, as before), each with its dumped flags; they are installed
 * with the restored credentials, which need no_new_privs or CAP_SYS_ADMIN
 * (checked when the arguments are built, plugin/args.c). Nothing may fail
 * here any more (the status pipe is closed): a failure ends the process
 * with exit_group(LZ_SECCOMP_EXIT), which the parent sees as a dead thread.
 */
#include <linux/seccomp.h>
#include <linux/prctl.h>

#include "blob.h"
#include "sys.h"

#define LZ_SECCOMP_EXIT 126

struct sock_fprog_ {
	uint16_t len;
	uint64_t filter;
};

void blob_restore_seccomp(const struct lz_blob_thread *t)
{
	const struct lz_blob_seccomp *f = (const struct lz_blob_seccomp *)(uintptr_t)t->seccomp;

	if (t->seccomp_mode == SECCOMP_MODE_STRICT) {
		if (sys_prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0))
			sys_exit_group(LZ_SECCOMP_EXIT);
		return;
	}
	for (uint32_t i = 0; i < t->nr_seccomp; i++) {
		struct sock_fprog_ prog = { .len = (uint16_t)f[i].len, .filter = f[i].prog };

		if (sys3(__NR_seccomp, SECCOMP_SET_MODE_FILTER, f[i].flags, &prog))
			sys_exit_group(LZ_SECCOMP_EXIT);
	}
}
