/*
 * crc32c.c - table-driven CRC-32C (Castagnoli, RFC 3720 B.4).
 *
 * One 256-entry table, filled by the first call (pthread_once).  Secret
 * Manager payloads are at most 64 KiB, so a byte at a time is fast enough
 * and needs no CPU feature checks.
 */
#include <pthread.h>

#include "crc32c.h"

#define CRC32C_POLY 0x82F63B78u /* 0x1EDC6F41 reflected */

static uint32_t table[256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_fill(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
		table[i] = c;
	}
}

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
	const unsigned char *p = data;

	pthread_once(&table_once, table_fill);
	crc = ~crc;
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}
