/*
 * fuzz_lazy_msg.c - libFuzzer target for the lazy-pages daemon's message
 * reader: whatever a socket peer sends (any bytes, any length) must be
 * taken as one valid message or refused with a reason, never crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lazy-sock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct lz_msg m;
	const char *why;
	int sv[2];

	if (size > LZ_LAZY_MAX_MSG + 64)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv))
		abort();
	if (send(sv[0], data, size, 0) != (ssize_t)size)
		abort();
	close(sv[0]);
	int ret = lz_msg_recv(sv[1], &m, &why);
	if (ret == 0) {
		if (m.hdr.magic != LZ_LAZY_MAGIC || m.hdr.len + sizeof(m.hdr) != size)
			abort(); /* accepted a message that is not ours */
	} else if (ret == -EPROTO && !why) {
		abort(); /* refused without saying why */
	}
	lz_msg_close_fds(&m);
	close(sv[1]);
	return 0;
}
