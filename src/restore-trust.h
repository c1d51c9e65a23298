/*
 * restore-trust.h - whose images restore believes.
 *
 * Restore runs whatever its images say, with its own privilege. Checksums
 * and the dump id detect damage and files of two dumps mixed; they do not
 * stop anyone who can write the images. So restore reads images only from
 * users it trusts: root, the user it runs as (its effective uid), and the
 * one user named by --trust-images-of. The rule (Documentation/lazarus.8,
 * TRUST):
 *
 *   - the images directory is owned by a trusted user and not writable by
 *     group or others;
 *   - every directory above it is owned by a trusted user and is either not
 *     writable by group or others, or sticky (then only the owner of the
 *     entry below, checked in turn, can rename it): nobody else can swap
 *     the images directory for another;
 *   - every image file is a regular file owned by a trusted user and not
 *     writable by group or others.
 *
 * The directories are checked once, on the directory fd restore then uses
 * for everything; each image file when it is opened, on that open file.
 * Functions return 0 or -EPERM and log nothing: *why says what is wrong.
 */
#ifndef LZ_RESTORE_TRUST_H
#define LZ_RESTORE_TRUST_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

struct rst_trust {
	uid_t uids[3];	/* root, restore's euid, --trust-images-of */
	unsigned nr;
};

/* Root and the caller's euid, plus EXTRA (0 adds nothing: root always is). */
void rst_trust_init(struct rst_trust *t, uid_t extra);
/*
 * The images directory (DIRFD, opened by the caller; DIR its name for
 * messages) and every directory above it. On failure *WHY is one line
 * naming the directory.
 */
int rst_trust_dir(const struct rst_trust *t, int dirfd, const char *dir, char *why, size_t len);
/* One image file, from the fstat of the open file: why is the text after its name. */
int rst_trust_file(const struct rst_trust *t, const struct stat *st, char *why, size_t len);

#endif
