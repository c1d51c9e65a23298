/*
 * dump-plural.h - what restore can bring back beyond one single-threaded
 * process; dump refuses the rest before anything is written (the one
 * place that asks is dump_plural_supported() in dump.c).
 *
 * The restore side flips these to 1 when it lands:
 *  LZ_RESTORE_THREADS  more than one thread in a process;
 *  LZ_RESTORE_TREES    more than one process, zombies, stopped processes.
 */
#ifndef LZ_DUMP_PLURAL_H
#define LZ_DUMP_PLURAL_H

#define LZ_RESTORE_THREADS 1
#define LZ_RESTORE_TREES 1

#endif
