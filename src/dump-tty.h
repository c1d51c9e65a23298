/*
 * dump-tty.h - controlling terminals of the dumped tree (dump-tty.c).
 */
#ifndef LZ_DUMP_TTY_H
#define LZ_DUMP_TTY_H

#include <stdbool.h>

#include "dump-files.h"
#include "dump-tree.h"

/*
 * Once every process's files are collected and the pids mapped: each
 * session of the tree that has a controlling terminal gets it recorded on
 * the master of its pty (files.img: ctty_of, fg_pgrp), and with SHELL_JOB
 * the session led from outside is recorded on the root (tr->shell). Refuses
 * (one line, -EOPNOTSUPP) what restore could not make again.
 */
int dump_tty_tree(struct dump_tree *tr, struct files_table *ft, bool shell_job);

#endif
