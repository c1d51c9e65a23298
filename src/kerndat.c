/*
 * kerndat.c - one-time probes of the kernel features Lazarus relies on.
 */
#include <cpuid.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/sched.h>

#include "kerndat.h"
#include "log.h"
#include "uapi/linux/prctl.h"

#ifndef PTRACE_GET_RSEQ_CONFIGURATION
#define PTRACE_GET_RSEQ_CONFIGURATION 0x420f
#endif
#ifndef CAP_CHECKPOINT_RESTORE
#define CAP_CHECKPOINT_RESTORE 40
#endif
#define KCMP_FILE 0

struct rseq_conf {
	uint64_t abi_pointer;
	uint32_t abi_size;
	uint32_t signature;
	uint32_t flags;
	uint32_t pad;
};

static bool has_cap(int cap)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d) < 0)
		return false;
	return d[cap / 32].effective & (1U << (cap % 32));
}

/* Seize a child that waits in pause(); check INTERRUPT and rseq config. */
static void probe_ptrace(struct lz_kerndat *kd)
{
	struct rseq_conf rc;
	int status;
	pid_t pid;

	pid = fork();
	if (pid < 0)
		return;
	if (pid == 0) {
		pause();
		_exit(0);
	}
	if (ptrace(PTRACE_SEIZE, pid, 0, 0) == 0 && ptrace(PTRACE_INTERRUPT, pid, 0, 0) == 0 &&
	    waitpid(pid, &status, __WALL) == pid && WIFSTOPPED(status)) {
		kd->ptrace_seize = true;
		if (ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid, sizeof(rc), &rc) > 0)
			kd->ptrace_rseq_conf = true;
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, __WALL);
}

/*
 * clone3 with our own pid in set_tid: a kernel that supports set_tid (and
 * lets us use it) answers EEXIST without creating anything.
 */
static void probe_clone3(struct lz_kerndat *kd)
{
	pid_t tid = getpid();
	struct clone_args args = {
		.exit_signal = SIGCHLD,
		.set_tid = (uint64_t)(uintptr_t)&tid,
		.set_tid_size = 1,
	};
	long ret = syscall(SYS_clone3, &args, sizeof(args));

	if (ret == 0)
		_exit(0); /* cannot happen: our pid is taken */
	if (ret > 0) {
		waitpid((pid_t)ret, NULL, 0);
		return;
	}
	kd->clone3_set_tid = errno == EEXIST;
}

static void probe_pagemap(struct lz_kerndat *kd)
{
	volatile char *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t pme = 0;
	int fd;

	if (p == MAP_FAILED)
		return;
	p[0] = 1;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &pme, sizeof(pme), (off_t)((uintptr_t)p / 4096 * 8)) == sizeof(pme))
			kd->pagemap_pfn = (pme >> 63) && (pme & ((1ULL << 55) - 1));
		close(fd);
	}
	munmap((void *)p, 4096);
}

static void probe_xsave(struct lz_kerndat *kd)
{
	unsigned a, b, c, d;
	uint32_t lo, hi;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
		return;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	kd->xfeatures = ((uint64_t)hi << 32) | lo;
	__cpuid_count(0xd, 0, a, b, c, d);
	kd->xsave_size = b; /* size for the features enabled in XCR0 */
}

static void probe_vdso(struct lz_kerndat *kd)
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx", &s, &e) != 2)
			continue;
		if (strstr(line, "[vdso]"))
			kd->vdso_size += e - s;
		else if (strstr(line, "[vvar_vclock]")) {
			kd->vvar_size += e - s;
			kd->vvar_vclock = true;
		} else if (strstr(line, "[vvar]"))
			kd->vvar_size += e - s;
	}
	fclose(f);
}

void kerndat_probe(struct lz_kerndat *kd)
{
	unsigned int mm_map_size = 0;
	char buf[8];
	struct iovec l = { buf, 1 }, r = { buf + 1, 1 };

	memset(kd, 0, sizeof(*kd));
	probe_ptrace(kd);
	probe_clone3(kd);
	kd->pr_set_mm_map = prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE, &mm_map_size, 0, 0) == 0 &&
			    mm_map_size > 0;
	kd->kcmp = syscall(SYS_kcmp, getpid(), getpid(), KCMP_FILE, 0, 0) >= 0;
	probe_pagemap(kd);
	buf[1] = 1;
	kd->process_vm_readv = process_vm_readv(getpid(), &l, 1, &r, 1, 0) == 1;
	kd->cap_checkpoint_restore = has_cap(CAP_CHECKPOINT_RESTORE) || has_cap(CAP_SYS_ADMIN);
	kd->cap_sys_resource = has_cap(CAP_SYS_RESOURCE);
	probe_xsave(kd);
	probe_vdso(kd);
	kd->timer_restore_ids =
		prctl(PR_TIMER_CREATE_RESTORE_IDS, PR_TIMER_CREATE_RESTORE_IDS_GET, 0, 0, 0) >= 0;
	kd->time_ns = access("/proc/self/ns/time", F_OK) == 0;
}
