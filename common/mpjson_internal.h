/* mpjson's own files share these (the JSON forms of bin, timestamp and
 * bigint, both ways): mpjson.c packs JSON, mpjson_dump.c prints msgpack,
 * mpjson_forms.c holds the forms. */
#ifndef JSHOST_MPJSON_INTERNAL_H
#define JSHOST_MPJSON_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The base64 alphabet. */
extern const char mpjson__b64[];
/* Base64 text to bytes (malloc'd into *out). 0 or -EINVAL / -ENOMEM. */
int mpjson__b64decode(const char *s, size_t len, unsigned char **out,
                      size_t *outlen);
/* An ISO 8601 date with a zone ("2026-11-21T23:30:46.123Z") to seconds and
 * nanoseconds. 0 or -1. */
int mpjson__parse_date(const char *s, size_t len, int64_t *sec, uint32_t *nsec);
/* Seconds and nanoseconds as such a date into buf (>= 48 bytes). 0, or -1
 * for a year past +-999999. */
int mpjson__format_date(int64_t sec, uint32_t nsec, char *buf, size_t size);
/* Decimal digits (an optional '-') to a sign and big-endian magnitude
 * (malloc'd into *out). 0 or -EINVAL / -ENOMEM. */
int mpjson__bigint_from_dec(const char *s, size_t len, bool *neg,
                            unsigned char **out, size_t *outlen);
/* A sign and big-endian magnitude (used up) as decimal digits (malloc'd);
 * NULL when out of memory. */
char *mpjson__bigint_to_dec(bool neg, unsigned char *mag, size_t len);

#endif
