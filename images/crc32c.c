/*
 * crc32c.c - CRC-32C (Castagnoli), the checksum of every image.
 *
 * Uses the SSE4.2 crc32 instruction when the CPU has it (three streams side
 * by side, ~8 bytes/cycle), a table otherwise. Both give the same value.
 */
#include <stdint.h>
#include <string.h>

#include "image.h"

static uint32_t crc_table[256];

static void crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ 0x82f63b78U : c >> 1;
		crc_table[i] = c;
	}
}

static uint32_t crc32c_sw(uint32_t crc, const uint8_t *p, size_t len)
{
	if (!crc_table[1])
		crc_table_init();
	while (len--)
		crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

/*
 * One crc32 instruction has a latency of 3 cycles and a throughput of one a
 * cycle: a single stream runs at a third of what the unit can do. So a long
 * buffer goes as three streams of len bytes each, computed side by side, and
 * joined: the register after A B C is (c_A * x^8len + c_B) * x^8len + c_C
 * (mod P), c_B and c_C started from 0. x8n is x^(8 len) mod P, reflected as
 * the instruction's register (computed as zlib's x2nmodp does).
 */
static const struct {
	size_t len;
	uint32_t x8n;
} crc_streams[] = { { 8192, 0x28461564 }, { 1024, 0xe4172b16 }, { 128, 0xb8fdb1e7 } };

/* a * b mod P, both reflected; a is a nonzero constant above. */
static uint32_t crc_mulmod(uint32_t a, uint32_t b)
{
	uint32_t m = 1U << 31, p = 0;

	for (;;) {
		if (a & m) {
			p ^= b;
			if (!(a & (m - 1)))
				return p;
		}
		m >>= 1;
		b = (b & 1) ? (b >> 1) ^ 0x82f63b78U : b >> 1;
	}
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p,
							     size_t len)
{
	uint64_t c = crc;

	while (len && ((uintptr_t)p & 7)) {
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
		len--;
	}
	for (size_t s = 0; s < sizeof(crc_streams) / sizeof(crc_streams[0]); s++) {
		size_t n = crc_streams[s].len;

		while (len >= 3 * n) {
			uint64_t c1 = 0, c2 = 0;

			for (size_t i = 0; i < n; i += 8) {
				uint64_t v0, v1, v2;

				memcpy(&v0, p + i, 8);
				memcpy(&v1, p + n + i, 8);
				memcpy(&v2, p + 2 * n + i, 8);
				c = __builtin_ia32_crc32di(c, v0);
				c1 = __builtin_ia32_crc32di(c1, v1);
				c2 = __builtin_ia32_crc32di(c2, v2);
			}
			c = crc_mulmod(crc_streams[s].x8n, (uint32_t)c) ^ (uint32_t)c1;
			c = crc_mulmod(crc_streams[s].x8n, (uint32_t)c) ^ (uint32_t)c2;
			p += 3 * n;
			len -= 3 * n;
		}
	}
	while (len >= 8) {
		uint64_t v;

		memcpy(&v, p, 8);
		c = __builtin_ia32_crc32di(c, v);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = __builtin_ia32_crc32qi((uint32_t)c, *p++);
	return (uint32_t)c;
}

uint32_t lz_crc32c(uint32_t crc, const void *buf, size_t len)
{
	static int have_hw = -1;

	if (have_hw < 0) {
		__builtin_cpu_init();
		have_hw = __builtin_cpu_supports("sse4.2");
	}
	crc = ~crc;
	crc = have_hw ? crc32c_hw(crc, buf, len) : crc32c_sw(crc, buf, len);
	return ~crc;
}
