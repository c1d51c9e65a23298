/* cli.c - command-line helpers that need more than option parsing. */
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
