/*
 * fdio.h - whole reads and writes on a file descriptor: retried on EINTR
 * and on short transfers. Return 0 or -errno; a read that meets the end of
 * the file before LEN bytes returns -ENODATA, a write that makes no
 * progress -EIO.
 */
#ifndef LZ_FDIO_H
#define LZ_FDIO_H

#include <stddef.h>
#include <stdint.h>

int fdio_write_all(int fd, const void *buf, size_t len);
int fdio_pwrite_all(int fd, const void *buf, size_t len, uint64_t off);
int fdio_pread_all(int fd, void *buf, size_t len, uint64_t off);

#endif
