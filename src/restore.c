/* restore.c - placeholder until the restore side lands. */
#include <errno.h>
#include "lazarus/lazarus.h"
#include "log.h"

int lz_restore(const struct lz_restore_opts *opts, int *wait_status, int *root_pid)
{
	(void)opts;
	(void)wait_status;
	(void)root_pid;
	pr_err("restore: not implemented yet");
	return -ENOSYS;
}
