/* store_crc.c: CRC-32C (Castagnoli polynomial 0x1EDC6F41, reflected form
 * 0x82F63B78, RFC 3720 appendix B.4), computed a byte at a time from a table
 * built on first use.  Speed is not the point: the store checksums records of
 * a few hundred bytes. */
#include "store_crc.h"

static uint32_t crc_table[256];
static int crc_ready;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
    crc_ready = 1;
}

uint32_t store__crc32c(uint32_t crc, const void *p, size_t len)
{
    const unsigned char *b = p;

    if (!crc_ready)
        crc_init();
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = crc_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}
