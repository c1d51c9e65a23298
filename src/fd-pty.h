/*
 * fd-pty.h - pseudo-terminals (fd-pty.c): pairs inside the dump created
 * again, slaves of outside masters reopened by path.
 */
#ifndef LZ_FD_PTY_H
#define LZ_FD_PTY_H

#include "fd-kind.h"

extern const struct fd_kind fd_kind_pty;

#endif
