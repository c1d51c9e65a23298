/* dump.c - placeholder until the dump side lands. */
#include <errno.h>
#include "lazarus/lazarus.h"
#include "log.h"

int lz_dump(const struct lz_dump_opts *opts)
{
	(void)opts;
	pr_err("dump: not implemented yet");
	return -ENOSYS;
}
