/* cli.c - command-line helpers that need more than option parsing. */
#include <string.h>

#include "cli.h"
#include "log.h"

int cli_open_log(const struct cli_opts *o)
{
	int ret = log_open_file(o->images_dir, o->log_file);

	if (ret)
		pr_err("log file %s: %s", o->log_file, strerror(-ret));
	return ret;
}
