/* cli.c - command-line helpers that need more than option parsing. */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "safe-file.h"

int cli_open_log(const struct cli_opts *o)
{
	char why[SF_WHY_MAX];
	int ret = log_open_file_why(o->images_dir, o->log_file, why);

	if (ret)
		pr_err("log file %s: %s", o->log_file, why);
	return ret;
}

/*
 * `lazarus dump` blocks the stop signals from its first instruction to its
 * exit. lz_dump() polls them and stops the dump cleanly when one comes; one
 * arriving before or after lz_dump() stays pending until the exit, so the
 * command always ends with its own status and message, never killed half way.
 */
void cli_block_stop_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigprocmask(SIG_BLOCK, &set, NULL);
}

int cli_parse_user(const char *s, uid_t *uid)
{
	struct passwd *pw = getpwnam(s);
	char *end;
	unsigned long v;

	if (pw) {
		*uid = pw->pw_uid;
		return 0;
	}
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *s == '\0' || *end != '\0' || v >= (uid_t)-1) {
		fprintf(stderr, "lazarus: --trust-images-of: no such user: '%s'\n", s);
		return -1;
	}
	*uid = (uid_t)v;
	return 0;
}
