/*
 * fuzz_proc_timers.c - libFuzzer target for the dump's /proc/PID/timers
 * parser (timers_parse in src/dump-timers.c) on any text. The oracle: an
 * accepted list is sorted by strictly ascending ids, each id in 0..INT_MAX,
 * each notification one the kernel prints (SIGEV_SIGNAL, NONE, THREAD,
 * THREAD_ID), each target a pid >= 0; a refusal leaves nothing allocated.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dump-timers.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct proc_timer *t;
	size_t n;
	int ret;

	memcpy(text, data, size);
	text[size] = '\0';
	ret = timers_parse(text, &t, &n);
	free(text);
	if (ret) {
		if (ret != -EINVAL || t || n)
			abort();
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (t[i].id < 0 || (i && t[i].id <= t[i - 1].id) || t[i].target < 0)
			abort();
		if (t[i].notify != 0 && t[i].notify != 1 && t[i].notify != 2 && t[i].notify != 4)
			abort();
	}
	free(t);
	return 0;
}
