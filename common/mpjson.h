/*
 * JSON <-> msgpack for the CLI, libjshost's JSON helpers and the tests, built on
 * jansson. No aborts, no prints: usable by clients.
 *
 * JSON → msgpack: integers as int (any that fit int64/uint64; larger ones are an
 * error), reals as float64, strings as str, arrays, objects as maps with str keys.
 * msgpack → JSON: as the reverse; bin as {"$bin": "<base64>"}, a timestamp ext as {"$date": "<ISO 8601>"}, a bigint ext as
 * {"$bigint": "<decimal>"}, NaN/±Infinity as null (JSON has none), non-str map
 * keys stringified. The CLI prints what this gives.
 */
#ifndef JSHOST_MPJSON_H
#define JSHOST_MPJSON_H

#include <stddef.h>

#include <msgpack.h>

/*
 * Packs the JSON text (len bytes) as one msgpack value. 0, or -EINVAL with
 * `cause` (256 bytes, may be NULL) saying where the JSON is bad ("line 1,
 * column 7: ..."), -ENOMEM.
 */
int mpjson_pack(msgpack_packer *pk, const char *json, size_t len, char *cause);

/*
 * Renders a msgpack object as JSON. flags: MPJSON_PRETTY for indented output.
 * A malloc'd NUL-terminated string, or NULL on failure (out of memory, or
 * nesting past 64 levels).
 */
#define MPJSON_PRETTY 1
char *mpjson_dump(const msgpack_object *obj, int flags);

/* The same for packed bytes (one value); NULL when they do not parse. */
char *mpjson_dump_bytes(const char *buf, size_t len, int flags);

#endif
