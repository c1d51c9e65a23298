/*
 * maxrss.c - run a command and write its peak resident memory.
 *
 *   maxrss FILE CMD [ARGS...]
 *
 * Forks, execs CMD in the child (every fd inherited: a --status-fd stays
 * open), waits for it with wait4() and writes "maxrss_kib=N wall_ns=N" to
 * FILE (ru_maxrss of CMD and its waited-for descendants; wall_ns from the
 * fork to the reap), then exits with CMD's exit code (128+signal if killed).
 *
 * Why a helper: ru_maxrss keeps the high-water mark of the memory a process
 * had before exec(), so a command forked straight from the bench's python3
 * (~20 MiB) would report python3's size. Forked from this small program it
 * reports its own. Used by bench/bench_tools.py for Lazarus and CRIU alike.
 */
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

int main(int argc, char **argv)
{
	struct rusage ru;
	uint64_t t0, t1;
	int status;
	pid_t pid;
	FILE *f;

	if (argc < 3) {
		fprintf(stderr, "usage: maxrss FILE CMD [ARGS...]\n");
		return 2;
	}
	t0 = now_ns();
	pid = fork();
	if (pid < 0)
		bench_die("maxrss", "fork");
	if (pid == 0) {
		execv(argv[2], argv + 2);
		fprintf(stderr, "maxrss: exec %s: %s\n", argv[2], strerror(errno));
		_exit(127);
	}
	while (wait4(pid, &status, 0, &ru) < 0)
		if (errno != EINTR)
			bench_die("maxrss", "wait4 %d", (int)pid);
	t1 = now_ns();
	f = fopen(argv[1], "w");
	if (!f)
		bench_die("maxrss", "%s", argv[1]);
	fprintf(f, "maxrss_kib=%ld wall_ns=%llu\n", ru.ru_maxrss, (unsigned long long)(t1 - t0));
	if (fclose(f))
		bench_die("maxrss", "%s", argv[1]);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}
