/*
 * restore-netns.h - restore --netns PATH: lazarus enters the network
 * namespace before any file of the tree is opened, so every socket is
 * created there and every process, cloned from lazarus, starts in it.
 */
#ifndef LZ_RESTORE_NETNS_H
#define LZ_RESTORE_NETNS_H

/*
 * Enter the network namespace PATH (an nsfs file: /run/netns/NAME,
 * /proc/PID/ns/net). *OLD gets an fd of the namespace lazarus was in, for
 * rst_netns_return. Logs its failure (naming PATH) and returns -errno.
 */
int rst_netns_enter(const char *path, int *old);
/* Back into OLD (closed); a failure is logged. */
int rst_netns_return(int old);

#endif
