/*
 * unit.h - a tiny table-driven unit test runner.
 *
 * Each case runs in its own child process under a timeout, so a crash or a
 * hang fails that case alone. Prints "N passed, N failed" at the end.
 *
 *   static int test_foo(void) { CHECK(1 + 1 == 2); return 0; }
 *   static const struct unit_case cases[] = { UNIT(test_foo), { 0 } };
 *   int main(int argc, char **argv) { return unit_main(argc, argv, cases); }
 */
#ifndef LZ_UNIT_H
#define LZ_UNIT_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

struct unit_case {
	const char *name;
	int (*fn)(void);
	unsigned timeout_s; /* 0: 30 s */
};

#define UNIT(f) { #f, f, 0 }

#define CHECK(cond)                                                                   \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__, __LINE__, \
				#cond);                                               \
			return 1;                                                     \
		}                                                                     \
	} while (0)

static inline int unit_run_one(const struct unit_case *c)
{
	int status;
	pid_t pid = fork();

	if (pid < 0)
		return 1;
	if (pid == 0) {
		alarm(c->timeout_s ? c->timeout_s : 30);
		_exit(c->fn() ? 1 : 0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return 1;
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "  %s: killed by signal %d%s\n", c->name, WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
		return 1;
	}
	return WEXITSTATUS(status) != 0;
}

static inline int unit_main(int argc, char **argv, const struct unit_case *cases)
{
	int passed = 0, failed = 0;

	for (const struct unit_case *c = cases; c->name; c++) {
		if (argc > 1 && !strstr(c->name, argv[1]))
			continue;
		if (unit_run_one(c)) {
			printf("FAIL %s\n", c->name);
			failed++;
		} else {
			printf("ok   %s\n", c->name);
			passed++;
		}
	}
	printf("%s: %d passed, %d failed\n", argv[0], passed, failed);
	return failed ? 1 : 0;
}

#endif
