/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum Google Secret Manager sends
 * with every payload (payload.dataCrc32c).
 */
#ifndef SECRETFS_CRC32C_H
#define SECRETFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extends @crc (0 to start) over @len bytes of @data: reflected polynomial
 * 0x82F63B78, initial value and final xor 0xFFFFFFFF, so that
 * crc32c(crc32c(0, a), b) == crc32c(0, a || b).
 */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
