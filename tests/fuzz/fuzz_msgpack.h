/*
 * For the fuzz targets that unpack arbitrary bytes with msgpack_unpack:
 * msgpack-c reserves room for a container's elements as soon as it reads the
 * count, so a 5-byte array32 header asks for gigabytes, which ASan and
 * libFuzzer's malloc limit report as a crash. fuzz_plausible walks the bytes
 * first, without allocating, and says whether every count fits in the bytes
 * that are left (each element takes at least one) and exactly one value is
 * there; only then is it worth unpacking.
 */
#ifndef JSHOST_FUZZ_MSGPACK_H
#define JSHOST_FUZZ_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

static inline uint64_t
fuzz_be(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    unsigned i;

    for (i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static inline int
fuzz_plausible(const void *data, size_t len)
{
    const unsigned char *p = (const unsigned char *)data;
    size_t pos = 0;
    uint64_t due = 1, items, skip;
    unsigned c, head;

    while (due > 0) {
        if (pos >= len)
            return 0;
        c = p[pos++];
        due--;
        items = 0;
        skip = 0;
        head = 0;
        if (c <= 0x7f || c >= 0xe0 || (c >= 0xc0 && c <= 0xc3)) {
            /* fixint, nil, bool (0xc1 is never used: msgpack-c refuses it) */
            if (c == 0xc1)
                return 0;
        } else if (c >= 0x80 && c <= 0x8f) {
            items = 2u * (c & 0x0f);
        } else if (c >= 0x90 && c <= 0x9f) {
            items = c & 0x0f;
        } else if (c >= 0xa0 && c <= 0xbf) {
            skip = c & 0x1f;
        } else {
            switch (c) {
            case 0xc4: case 0xd9: head = 1; break; /* bin8, str8 */
            case 0xc5: case 0xda: head = 2; break;
            case 0xc6: case 0xdb: head = 4; break;
            case 0xc7: head = 1; skip = 1; break; /* ext8: + type */
            case 0xc8: head = 2; skip = 1; break;
            case 0xc9: head = 4; skip = 1; break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break; /* fixext 1 + type */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: case 0xdd: /* array16/32 */
            case 0xde: case 0xdf: /* map16/32 */
                {
                    unsigned n = (c == 0xdc || c == 0xde) ? 2 : 4;
                    if (len - pos < n)
                        return 0;
                    items = fuzz_be(p + pos, n);
                    if (c >= 0xde)
                        items *= 2;
                    pos += n;
                }
                break;
            default:
                return 0;
            }
        }
        if (head > 0) {
            if (len - pos < head)
                return 0;
            skip += fuzz_be(p + pos, head);
            pos += head;
        }
        if (skip > len - pos)
            return 0;
        pos += (size_t)skip;
        due += items;
        if (due > len - pos)
            return 0;
    }
    return pos == len;
}

#endif
