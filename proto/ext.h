/*
 * proto_ext: the msgpack ext types jshost puts on the wire, one codec each,
 * shared by the worker, libjshost, the Python extension and mpjson (what each
 * type means to JavaScript and Python: docs/values.md).
 *
 *   ext -1  timestamp  msgpack's own: 4 bytes (u32 seconds), 8 bytes (u30
 *                      nanoseconds, u34 seconds) or 12 bytes (u32 nanoseconds,
 *                      s64 seconds), big-endian; nanoseconds <= 999999999
 *   ext 1   bigint     an integer beyond int64/uint64, two's complement,
 *                      big-endian, without a redundant leading sign byte
 *   ext 2   callable   a client's callback id, u32 big-endian
 *
 * Decoders take the ext's payload (msgpack_object.via.ext.ptr and .size) and
 * return 0 or -EINVAL with `cause` (PROTO_CAUSE_MAX bytes, may be NULL) naming
 * what is wrong. Packers always write the one form a value has. Nothing here
 * allocates, prints or aborts.
 */
#ifndef JSHOST_PROTO_EXT_H
#define JSHOST_PROTO_EXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROTO_EXT_TIMESTAMP (-1)
#define PROTO_EXT_BIGINT 1
#define PROTO_EXT_CALLABLE 2

/* The largest timestamp payload (the 12-byte form). */
#define PROTO_EXT_TIMESTAMP_MAX 12
#define PROTO_EXT_NSEC_MAX 999999999u

/* A timestamp payload of 4, 8 or 12 bytes → seconds since the epoch and
 * nanoseconds. Refuses other sizes and nanoseconds past 999999999. */
int proto_ext_timestamp_decode(const char *p, size_t n, int64_t *sec,
                               uint32_t *nsec, char *cause);
/* The smallest of the three forms for (sec, nsec) into out; returns its size
 * (4, 8 or 12), or 0 when nsec is past 999999999. */
size_t proto_ext_timestamp_encode(int64_t sec, uint32_t nsec,
                                  unsigned char out[PROTO_EXT_TIMESTAMP_MAX]);
/* Packs ext -1 in its smallest form. 0, -EINVAL (nsec past 999999999) or the
 * packer's error. */
int proto_ext_timestamp_pack(msgpack_packer *pk, int64_t sec, uint32_t nsec);

/*
 * A bigint payload → its sign and magnitude: mag (room for n bytes) gets the
 * magnitude big-endian with no leading zero byte, *mag_len bytes of it (0 for
 * zero). An empty payload reads as 0. Refuses a redundant leading sign byte
 * (0x00 before a byte below 0x80, 0xff before one from 0x80): every integer
 * has one form.
 */
int proto_ext_bigint_decode(const char *p, size_t n, bool *neg,
                            unsigned char *mag, size_t *mag_len, char *cause);
/*
 * Packs the integer whose magnitude is mag[0..len) (big-endian; leading zero
 * bytes allowed) and whose sign is neg: as a msgpack int when it fits int64
 * or uint64, else as ext 1 in its minimal form. 0 or the packer's error.
 */
int proto_ext_bigint_pack(msgpack_packer *pk, bool neg,
                          const unsigned char *mag, size_t len);
/* A callable payload (exactly 4 bytes) → the client's callback id. */
int proto_ext_callable_decode(const char *p, size_t n, uint32_t *id,
                              char *cause);
/* Packs ext 2 for callback id `id`. 0 or the packer's error. */
int proto_ext_callable_pack(msgpack_packer *pk, uint32_t id);

#ifdef __cplusplus
}
#endif

#endif
