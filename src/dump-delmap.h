/*
 * dump-delmap.h - mappings of deleted files (dump-delmap.c): each one's
 * content saved once as a deleted regular file of files.img.
 */
#ifndef LZ_DUMP_DELMAP_H
#define LZ_DUMP_DELMAP_H

#include <stddef.h>

#include "dump-files.h"
#include "dump-img.h"
#include "dump-mm.h"

/*
 * With every process's VMAs and fds collected: give each VMA of a deleted
 * file (dump_vma.deleted) the id of the files.img entry that has its
 * content, the entry of an fd of the same inode or a new one added to TAB
 * (its fddata-<id>.img written through IMGS). 0 or -errno, logged once.
 */
int delmap_collect(struct mm_dump *const *mms, size_t nr, struct files_table *tab,
		   struct dump_imgs *imgs);

#endif
