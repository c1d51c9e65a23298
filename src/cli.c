/* cli.c - command-line helpers that need more than option parsing. */
#include <signal.h>
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
