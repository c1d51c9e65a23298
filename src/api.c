/* api.c - small glue of the public API that belongs to no other module. */
#include "lazarus/lazarus.h"
#include "log.h"

void lz_log_setup(int level, int fd)
{
	log_init(level, fd);
}
