/*
 * util.c - memset/memcpy for the restorer blob. The compiler emits calls to
 * them for struct copies and zeroing even when freestanding; string
 * instructions keep it from turning these loops back into calls.
 */
#include "blob.h"

void *memset(void *s, int c, unsigned long n)
{
	void *d = s;

	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return s;
}

void *memcpy(void *d, const void *s, unsigned long n)
{
	void *dd = d;

	__asm__ volatile("rep movsb" : "+D"(dd), "+S"(s), "+c"(n) : : "memory");
	return d;
}
