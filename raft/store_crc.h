/* store_crc.h: CRC-32C (Castagnoli), the checksum of every record the store
 * writes.  Internal to raft/store*.c. */
#ifndef RAFT_STORE_CRC_H
#define RAFT_STORE_CRC_H

#include <stddef.h>
#include <stdint.h>

/* store__crc32c extends crc (0 to start) over len bytes at p (borrowed) and
 * returns the new value.  Chaining calls equals one call over the
 * concatenation. */
uint32_t store__crc32c(uint32_t crc, const void *p, size_t len);

#endif
