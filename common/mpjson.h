/*
 * JSON <-> msgpack for the CLI, libjshost's JSON helpers and the tests, built on
 * jansson. No aborts, no prints: usable by clients.
 *
 * JSON → msgpack: integers as int (any that fit int64/uint64; larger ones are an
 * error), reals as float64, strings as str, arrays, objects as maps with str keys.
 * msgpack → JSON: as the reverse; bin as {"$bin": "<base64>"}, a timestamp ext as {"$date": "<ISO 8601>"}, a bigint ext as
 * {"$bigint": "<decimal>"}, NaN/±Infinity as null (JSON has none), non-str map
 * keys stringified. Other ext types, and a timestamp or bigint ext that its
 * codec (proto/ext.h) refuses, as {"$ext": [type, "<base64>"]}. The CLI prints
 * what this gives.
 *
 * The special forms go back the same way when packing: an object with exactly
 * one key "$bin", "$date", "$bigint" (a decimal string; what fits int64/uint64
 * packs as a plain int) or "$ext" packs as bin / timestamp / bigint / ext, so
 * msgpack → JSON → msgpack keeps every value (NaN and ±Infinity aside). Such an
 * object with a malformed payload is an error (-EINVAL with a cause).
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
 * Nesting mpjson_pack accepts: a value that crosses the boundary as call data
 * or a result (PROTO_VALUE_MAX_DEPTH in proto.h; common does not include proto).
 * Deeper JSON is -EINVAL with the line and column of the first bracket too many.
 */
#define MPJSON_MAX_DEPTH 30

/* mpjson_pack with another nesting limit (e.g. a whole params array, which
 * sits one level above the values in it). */
int mpjson_pack_depth(msgpack_packer *pk, const char *json, size_t len,
                      int max_depth, char *cause);

/*
 * Renders a msgpack object as JSON (compact, as JSON.stringify; floats always
 * with a '.' or an exponent). flags: MPJSON_PRETTY for 2-space indentation.
 * A malloc'd NUL-terminated string, or NULL on failure (out of memory,
 * nesting past 64 levels, or more than 8 non-str map keys inside each other:
 * each is dumped as escaped JSON text, which doubles the size per level).
 */
#define MPJSON_PRETTY 1
char *mpjson_dump(const msgpack_object *obj, int flags);

/* The same for packed bytes (exactly one value); NULL when they do not parse
 * or bytes follow the value. */
char *mpjson_dump_bytes(const char *buf, size_t len, int flags);

#endif
