/* compiler.h - small compiler helpers shared by every part of Lazarus. */
#ifndef LZ_COMPILER_H
#define LZ_COMPILER_H

#include <stddef.h>

#define __printf(a, b) __attribute__((format(printf, a, b)))
#define __unused_fn __attribute__((unused))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define ALIGN_UP(x, a) (((x) + (a) - 1) & ~((__typeof__(x))(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((__typeof__(x))(a) - 1))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define LZ_PAGE_SIZE 4096UL
#define LZ_PAGE_SHIFT 12

#endif
