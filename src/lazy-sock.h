/*
 * lazy-sock.h - framing of lazy-pages protocol messages (lazy-proto.h) on a
 * SOCK_SEQPACKET socket, with their file descriptors, for the client, the
 * daemon and the guardian alike.
 */
#ifndef LZ_LAZY_SOCK_H
#define LZ_LAZY_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/types.h>
#include <sys/un.h>

#include "compiler.h"
#include "lazy-proto.h"

/*
 * The address of WORKDIR/lazy-pages.sock: /proc/self/fd/<dirfd>/ when
 * dirfd >= 0 (dirfd must stay open while the address is used), else the
 * path.
 */
int lz_sock_addr(const char *work_dir, int dirfd, struct sockaddr_un *sa, socklen_t *len);

/* SO_RCVTIMEO and SO_SNDTIMEO of ms (0: none). */
int lz_sock_timeouts(int sock, unsigned ms);
/* connect(), bounded by the socket's SO_SNDTIMEO: -ETIMEDOUT when the
 * listener's backlog stayed full that long. */
int lz_sock_connect(int sock, const struct sockaddr_un *sa, socklen_t len);

/* SO_PEERCRED of a connected socket (for a client: the listener's
 * credentials when it called listen()). */
int lz_peer_cred(int sock, struct ucred *cr);
/* The peers both sides accept: root, or our own effective uid. */
bool lz_uid_trusted(uid_t uid);

/* Send one message: header, then the iovecs as payload, then fds. */
int lz_msg_sendv(int sock, uint16_t type, uint32_t seq, const struct iovec *iov, int niov,
		 const int *fds, int nfds);
int lz_msg_send(int sock, uint16_t type, uint32_t seq, const void *payload, size_t len,
		const int *fds, int nfds);
int lz_reply(int sock, uint32_t seq, int status, const char *fmt, ...) __printf(4, 5);

struct lz_msg {
	struct lz_lazy_hdr hdr;
	uint8_t payload[LZ_LAZY_MAX_MSG - sizeof(struct lz_lazy_hdr)];
	int fds[LZ_LAZY_MAX_FDS];
	int nfds;
};

/*
 * Receive one message. 0 on success, -ENODATA at EOF, -EAGAIN when nothing
 * is there (non-blocking socket). A message that is not ours (short, wrong
 * magic, version or length, more fds than a message may carry) fails with
 * -EPROTO and why says what was wrong; its fds are closed.
 */
int lz_msg_recv(int sock, struct lz_msg *m, const char **why);
void lz_msg_close_fds(struct lz_msg *m);

/* Close every fd above stderr except those in keep (a forked helper must
 * not hold its parent's images, sockets or uffds). */
void lz_close_fds_except(const int *keep, int nkeep);

#endif
