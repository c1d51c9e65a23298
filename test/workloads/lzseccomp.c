/*
 * lzseccomp.c - a process whose threads use seccomp, checking after a
 * restore that every thread is still under exactly its own filters.
 *
 *   lzseccomp --dir DIR [--no-nnp [--drop-admin]]
 *
 * Threads, in the order they are set up:
 *   strict  enters strict mode (before any filter exists, which would
 *           forbid it) and then spins without syscalls, answering each
 *           request word with an incremented counter (pipes are not
 *           restored yet, and strict mode allows no futex);
 *   main    installs filter A: getppid fails with EPERM, ioctl(0, MAGIC)
 *           kills the process (SECCOMP_RET_KILL_PROCESS: SIGSYS);
 *   second  created after A (inherits it), adds filter B: uname fails with
 *           EPERM; it answers requests (polled, 1 ms sleeps) with what
 *           getppid and uname returned there.
 * By default no_new_privs is set before the filters; with --no-nnp it is
 * not (root's CAP_SYS_ADMIN allows the filters), and with --drop-admin the
 * process then drops CAP_SYS_ADMIN from its effective and permitted sets.
 * DIR/ready says "pid=P strict=TID second=TID".
 *
 * On SIGUSR1 it checks and writes DIR/result "PASS pid=P" or
 * "FAIL pid=P: what": in main getppid is EPERM and uname works, in second
 * both are EPERM, strict answers with a growing counter, and
 * /proc/self/task/TID/status shows Seccomp 1/2/2 and Seccomp_filters
 * 0/1/2. On SIGUSR2 main calls ioctl(0, MAGIC): the filter kills it.
 * SIGTERM exits 0.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#define WL_NAME "lzseccomp"
#include "wl.h"

#define MAGIC 0x4c5a0001UL

static volatile sig_atomic_t check_requested, kill_requested, term_requested;
static volatile uint64_t strict_req, strict_resp, second_req, second_resp;
static volatile int second_res[2];
static pid_t strict_tid, second_tid;
static pthread_barrier_t started;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		check_requested = 1;
	else if (sig == SIGUSR2)
		kill_requested = 1;
	else
		term_requested = 1;
}

/* ERRNO(EPERM) for syscall NR, or KILL_PROCESS for ioctl(*, MAGIC), else allow. */
static void install(int nr, int kill_ioctl)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kill_ioctl ? SYS_ioctl : 0xffffffffU, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[1])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)MAGIC, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog))
		die("seccomp(SET_MODE_FILTER)");
}

static void block_all(void)
{
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* Strict mode: only read, write, exit and rt_sigreturn from here on. */
static void *strict_main(void *arg)
{
	(void)arg;
	block_all();
	strict_tid = (pid_t)syscall(SYS_gettid);
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_STRICT, 0, 0, 0))
		die("PR_SET_SECCOMP strict");
	strict_resp = 1; /* in strict mode: no futex from here on */
	for (;;) {
		uint64_t r = strict_req;

		if (r != strict_resp)
			strict_resp = r;
		__builtin_ia32_pause();
	}
	return NULL;
}

static void nap(void)
{
	const struct timespec ms = { 0, 1000000 };

	nanosleep(&ms, NULL);
}

static void *second_main(void *arg)
{
	struct utsname u;

	(void)arg;
	block_all();
	second_tid = (pid_t)syscall(SYS_gettid);
	install(SYS_uname, 0);
	pthread_barrier_wait(&started);
	for (;;) {
		uint64_t r = second_req;

		if (r == second_resp) {
			nap();
			continue;
		}
		errno = 0;
		second_res[0] = syscall(SYS_getppid) < 0 ? errno : 0;
		errno = 0;
		second_res[1] = uname(&u) < 0 ? errno : 0;
		__atomic_store_n(&second_resp, r, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

/* Seccomp and Seccomp_filters of thread TID. */
static void task_seccomp(pid_t tid, int *mode, int *filters)
{
	char path[64], buf[4096], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/status", tid);
	f = fopen(path, "r");
	if (!f)
		die("open %s", path);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	*mode = *filters = -1;
	p = strstr(buf, "\nSeccomp:");
	if (p)
		*mode = atoi(p + 9);
	p = strstr(buf, "\nSeccomp_filters:");
	if (p)
		*filters = atoi(p + 17);
}

static int check(char *why, size_t len)
{
	struct utsname u;
	const struct {
		pid_t tid;
		int mode, filters;
		const char *name;
	} want[] = { { (pid_t)syscall(SYS_gettid), 2, 1, "main" },
		     { strict_tid, 1, 0, "strict" },
		     { second_tid, 2, 2, "second" } };
	int mode, filters;

	errno = 0;
	if (syscall(SYS_getppid) != -1 || errno != EPERM)
		return snprintf(why, len, "main: getppid not denied (errno %d)", errno);
	if (uname(&u))
		return snprintf(why, len, "main: uname failed: %s", strerror(errno));
	for (size_t i = 0; i < 3; i++) {
		task_seccomp(want[i].tid, &mode, &filters);
		if (mode != want[i].mode || (want[i].filters && filters != want[i].filters))
			return snprintf(why, len, "%s: Seccomp %d, Seccomp_filters %d", want[i].name,
					mode, filters);
	}
	__atomic_store_n(&second_req, second_req + 1, __ATOMIC_SEQ_CST);
	while (second_resp != second_req)
		nap();
	if (second_res[0] != EPERM || second_res[1] != EPERM)
		return snprintf(why, len, "second: getppid %d uname %d, want EPERM", second_res[0],
				second_res[1]);
	__atomic_store_n(&strict_req, strict_resp + 1, __ATOMIC_SEQ_CST);
	while (strict_resp != strict_req)
		nap();
	return 0;
}

static void drop_admin(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		die("capget");
	d[0].effective &= ~(1U << CAP_SYS_ADMIN);
	d[0].permitted &= ~(1U << CAP_SYS_ADMIN);
	if (syscall(SYS_capset, &h, d))
		die("capset");
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	int nnp = 1, drop = 0;
	pthread_t strict, second;
	struct sigaction sa;
	sigset_t mine, old;
	char buf[256], why[200];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else if (!strcmp(argv[i], "--no-nnp"))
			nnp = 0;
		else if (!strcmp(argv[i], "--drop-admin"))
			drop = 1;
		else
			die("usage: lzseccomp --dir DIR [--no-nnp [--drop-admin]]");
	}
	if (!dir)
		die("--dir is required");
	sigemptyset(&mine);
	sigaddset(&mine, SIGUSR1);
	sigaddset(&mine, SIGUSR2);
	sigaddset(&mine, SIGTERM);
	sigprocmask(SIG_BLOCK, &mine, &old);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if (pthread_barrier_init(&started, NULL, 2))
		die("barrier");
	/* The strict thread first: no filter may exist yet. */
	if (pthread_create(&strict, NULL, strict_main, NULL))
		die("pthread_create");
	strict_req = 1;
	while (strict_resp != 1)
		nap();
	if (nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		die("PR_SET_NO_NEW_PRIVS");
	install(SYS_getppid, 1);
	if (pthread_create(&second, NULL, second_main, NULL))
		die("pthread_create");
	pthread_barrier_wait(&started);
	if (drop)
		drop_admin();
	snprintf(buf, sizeof(buf), "pid=%d strict=%d second=%d\n", getpid(), strict_tid,
		 second_tid);
	wl_publish(dir, "ready", buf);
	for (;;) {
		sigsuspend(&old);
		if (term_requested)
			_exit(0);
		if (kill_requested)
			ioctl(0, MAGIC, 0);
		if (check_requested) {
			check_requested = 0;
			if (check(why, sizeof(why)))
				snprintf(buf, sizeof(buf), "FAIL pid=%d: %s\n", getpid(), why);
			else
				snprintf(buf, sizeof(buf), "PASS pid=%d\n", getpid());
			wl_publish(dir, "result", buf);
		}
	}
}
