/* check.c - placeholder: kernel feature report comes with kerndat. */
#include "cli.h"
#include "log.h"

int cli_check(void)
{
	pr_msg("check: not implemented yet");
	return -1;
}
