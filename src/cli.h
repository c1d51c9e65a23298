/* cli.h - what the command line shares between its files. */
#ifndef LZ_CLI_H
#define LZ_CLI_H

#include <stdbool.h>
#include <sys/types.h>

struct cli_opts {
	int pid;
	const char *images_dir;
	const char *work_dir;
	const char *log_file;
	int verbosity;
	bool leave_running;
	bool detach;
	bool progress;
	bool ext_unix_sk;
	int freeze_timeout_s; /* dump: 0 for the default */
};

int cli_open_log(const struct cli_opts *o);
/* dump: block SIGINT, SIGTERM, SIGHUP, SIGQUIT until exit (lz_dump polls them). */
void cli_block_stop_signals(void);
/*
 * --trust-images-of USER: a user name or a numeric uid into *uid; -1 after
 * a usage line on stderr.
 */
int cli_parse_user(const char *s, uid_t *uid);
/* lazarus show FILE: print the image as JSON on stdout. */
int cli_show(const char *path);
/* lazarus check: print kernel features; non-zero if a required one is missing. */
int cli_check(void);

#endif
