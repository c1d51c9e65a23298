/* restore-verify.h - semantic checks of a loaded dump (restore-verify.c). */
#ifndef LZ_RESTORE_VERIFY_H
#define LZ_RESTORE_VERIFY_H

#include "restore-images.h"

/* Logs one line and returns -errno on the first problem. */
int rst_verify(const struct rst_images *im);

#endif
