/*
 * fd-pipe.h - pipes and FIFOs (fd-pipe.c): the two fd kinds, and the check
 * that no end of a dumped pipe has its peer outside the tree.
 */
#ifndef LZ_FD_PIPE_H
#define LZ_FD_PIPE_H

#include <stddef.h>

#include "fd-kind.h"

extern const struct fd_kind fd_kind_pipe, fd_kind_fifo;

struct files_table;

/*
 * Dump, with every description of the tree in TAB: refuse (-EOPNOTSUPP,
 * one line naming pid and fd) an end of a pipe or FIFO whose other end was
 * open while no description of the tree is that other end. It is held
 * outside the dumped tree, and restore could only give back a pipe whose
 * other end is closed.
 */
int fd_pipe_dump_check(const struct files_table *tab);

#endif
