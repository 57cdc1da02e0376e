/* mpjson: JSON <-> msgpack, every special form, and the words of its errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tu.h"

#include <errno.h>
#include <math.h>

#include "mpjson.h"

/* Packs JSON; returns the result, the bytes in *sb (caller destroys). */
static int
pack(const char *json, msgpack_sbuffer *sb, char *cause)
{
    msgpack_packer pk;

    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    return mpjson_pack(&pk, json, strlen(json), cause);
}

/* JSON → msgpack → JSON gives `want` (NULL: the input itself). */
static void
roundtrip(const char *json, const char *want)
{
    msgpack_sbuffer sb;
    char cause[256], *out;

    if (pack(json, &sb, cause) != 0)
        fail_msg("packing %s failed: %s", json, cause);
    out = mpjson_dump_bytes(sb.data, sb.size, 0);
    assert_non_null(out);
    if (strcmp(out, want ? want : json) != 0)
        fail_msg("%s came back as %s, wanted %s", json, out,
                 want ? want : json);
    /* And once more from the output: the output is a fixed point. */
    msgpack_sbuffer_destroy(&sb);
    assert_int_equal(pack(out, &sb, cause), 0);
    free(out);
    out = mpjson_dump_bytes(sb.data, sb.size, 0);
    assert_string_equal(out, want ? want : json);
    free(out);
    msgpack_sbuffer_destroy(&sb);
}

/* The packed bytes of a JSON text equal `bytes`. */
static void
packs_to(const char *json, const char *bytes, size_t n)
{
    msgpack_sbuffer sb;
    char cause[256];

    if (pack(json, &sb, cause) != 0)
        fail_msg("packing %s failed: %s", json, cause);
    assert_int_equal(sb.size, n);
    assert_memory_equal(sb.data, bytes, n);
    msgpack_sbuffer_destroy(&sb);
}

/* Packing fails with -EINVAL and a cause containing `why`. */
static void
bad(const char *json, const char *why)
{
    msgpack_sbuffer sb;
    char cause[256] = "";

    assert_int_equal(pack(json, &sb, cause), -EINVAL);
    if (strstr(cause, why) == NULL)
        fail_msg("bad JSON %s: cause \"%s\" lacks \"%s\"", json, cause, why);
    msgpack_sbuffer_destroy(&sb);
    /* A NULL cause is allowed. */
    assert_int_equal(pack(json, &sb, NULL), -EINVAL);
    msgpack_sbuffer_destroy(&sb);
}

/* Dumps hand-packed bytes. */
static void
dumps_to(const char *bytes, size_t n, const char *want)
{
    char *out = mpjson_dump_bytes(bytes, n, 0);

    assert_non_null(out);
    assert_string_equal(out, want);
    free(out);
}

static void
test_scalars_and_containers(void **state)
{
    (void)state;
    roundtrip("null", NULL);
    roundtrip("true", NULL);
    roundtrip("false", NULL);
    roundtrip("0", NULL);
    roundtrip("-1", NULL);
    roundtrip("[1,-2,3.5,\"x\",null,[],{}]", NULL);
    roundtrip("{\"a\":[1,{\"b\":null}],\"c\":\"d\"}", NULL);
    roundtrip(" { \"a\" : 1 , \"b\":[ ] } ", "{\"a\":1,\"b\":[]}");
    /* Key order is the text's. */
    roundtrip("{\"z\":1,\"a\":2,\"m\":3}", NULL);
    roundtrip("\"\"", NULL);
    roundtrip("\"a\\nb\\t\\\"q\\\"\\\\ \\u0001\"", NULL);
    roundtrip("\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", NULL);
    roundtrip("\"\\u00e9\\ud83d\\ude00\"", "\"\xc3\xa9\xf0\x9f\x98\x80\"");
    roundtrip("\"nul\\u0000inside\"", NULL);
}

static void
test_integers(void **state)
{
    (void)state;
    roundtrip("9223372036854775807", NULL);
    roundtrip("-9223372036854775808", NULL);
    roundtrip("9223372036854775808", NULL);
    roundtrip("18446744073709551615", NULL);
    roundtrip("[18446744073709551615,{\"k\":10000000000000000000},1]", NULL);
    roundtrip("[\n  12345678901234567890\n]", "[12345678901234567890]");

    packs_to("1", "\x01", 1);
    packs_to("-1", "\xff", 1);
    packs_to("300", "\xcd\x01\x2c", 3);
    packs_to("18446744073709551615", "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    packs_to("-9223372036854775808", "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
}

static void
test_reals(void **state)
{
    msgpack_object o;
    char *s;

    (void)state;
    roundtrip("0.1", NULL);
    roundtrip("1.5", NULL);
    roundtrip("-0.0", NULL);
    roundtrip("1e+300", NULL);
    roundtrip("1.0", NULL);
    roundtrip("2.5e-08", NULL);
    roundtrip("0.30000000000000004", NULL);
    roundtrip("1.99999999999999999999", "2.0");
    /* An integral real stays a real: it keeps its ".0". */
    packs_to("1.0", "\xcb\x3f\xf0\x00\x00\x00\x00\x00\x00", 9);

    o.type = MSGPACK_OBJECT_FLOAT64;
    o.via.f64 = NAN;
    s = mpjson_dump(&o, 0);
    assert_string_equal(s, "null");
    free(s);
    o.via.f64 = -INFINITY;
    s = mpjson_dump(&o, 0);
    assert_string_equal(s, "null");
    free(s);
    /* float32 prints its own shortest form, not float64 noise. */
    dumps_to("\xca\x3d\xcc\xcc\xcd", 5, "0.1");
}

static void
test_bin(void **state)
{
    (void)state;
    dumps_to("\xc4\x00", 2, "{\"$bin\":\"\"}");
    dumps_to("\xc4\x01\x00", 3, "{\"$bin\":\"AA==\"}");
    dumps_to("\xc4\x02\x00\x01", 4, "{\"$bin\":\"AAE=\"}");
    dumps_to("\xc4\x03\xfb\xff\xfe", 5, "{\"$bin\":\"+//+\"}");
    roundtrip("{\"$bin\":\"aGVsbG8=\"}", NULL);
    packs_to("{\"$bin\":\"aGVsbG8=\"}", "\xc4\x05hello", 7);
    /* Padding optional, URL-safe letters accepted. */
    packs_to("{\"$bin\":\"-_8\"}", "\xc4\x02\xfb\xff", 4);
    bad("{\"$bin\":\"a*b\"}", "not valid base64");
    bad("{\"$bin\":\"abcde\"}", "not valid base64");
    bad("{\"$bin\":5}", "needs a base64 string");
    /* Two keys: an ordinary map. */
    roundtrip("{\"$bin\":\"AA==\",\"x\":1}", NULL);
}

static void
test_dates(void **state)
{
    (void)state;
    /* The three timestamp encodings (4, 8 and 12 bytes). */
    dumps_to("\xd6\xff\x00\x00\x00\x00", 6,
             "{\"$date\":\"1970-01-01T00:00:00.000Z\"}");
    dumps_to("\xd6\xff\x69\x1f\x66\x66", 6,
             "{\"$date\":\"2025-11-20T19:05:10.000Z\"}");
    /* 8 bytes: nsec 123000000 << 34 | sec 1763665510 */
    dumps_to("\xd7\xff\x1d\x53\x53\x00\x69\x1f\x66\x66", 10,
             "{\"$date\":\"2025-11-20T19:05:10.123Z\"}");
    /* 12 bytes, before 1970: nsec 1, sec -1 */
    dumps_to("\xc7\x0c\xff\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff\xff\xff", 15,
             "{\"$date\":\"1969-12-31T23:59:59.000000001Z\"}");

    roundtrip("{\"$date\":\"2026-11-21T23:30:46.123Z\"}", NULL);
    roundtrip("{\"$date\":\"1900-02-28T12:00:00.000Z\"}", NULL);
    roundtrip("{\"$date\":\"2000-02-29T00:00:00.500100Z\"}", NULL);
    roundtrip("{\"$date\":\"+275760-09-13T00:00:00.000Z\"}", NULL);
    roundtrip("{\"$date\":\"-000001-01-01T00:00:00.000Z\"}", NULL);
    /* Offsets and missing seconds are understood, and normalised to UTC. */
    roundtrip("{\"$date\":\"2026-11-22T01:30+02:00\"}",
              "{\"$date\":\"2026-11-21T23:30:00.000Z\"}");
    packs_to("{\"$date\":\"1970-01-01T00:00:01Z\"}", "\xd6\xff\x00\x00\x00\x01",
             6);
    bad("{\"$date\":\"yesterday\"}", "needs an ISO 8601 string");
    bad("{\"$date\":\"2026-13-01T00:00:00Z\"}", "needs an ISO 8601 string");
    bad("{\"$date\":\"2026-11-21T23:30:46\"}", "needs an ISO 8601 string");
    bad("{\"$date\":1}", "needs an ISO 8601 string");
    /* Nanoseconds past 999999999 say no date: kept as the raw ext. */
    dumps_to("\xd7\xff\xee\x6b\x28\x00\x00\x00\x00\x00", 10,
             "{\"$ext\":[-1,\"7msoAAAAAAA=\"]}");
}

static void
test_bigints(void **state)
{
    (void)state;
    /* ext 1: two's complement, big-endian. 2^64 = 01 00*8. */
    dumps_to("\xc7\x09\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00", 12,
             "{\"$bigint\":\"18446744073709551616\"}");
    /* -(2^64) = ff 00*8 */
    dumps_to("\xc7\x09\x01\xff\x00\x00\x00\x00\x00\x00\x00\x00", 12,
             "{\"$bigint\":\"-18446744073709551616\"}");
    dumps_to("\xd4\x01\xff", 3, "{\"$bigint\":\"-1\"}");
    dumps_to("\xd4\x01\x7f", 3, "{\"$bigint\":\"127\"}");
    dumps_to("\xd4\x01\x80", 3, "{\"$bigint\":\"-128\"}");
    dumps_to("\xc7\x00\x01", 3, "{\"$bigint\":\"0\"}");
    /* A redundant sign byte is refused by the codec: kept as the raw ext,
     * which packs back to the same bytes. */
    dumps_to("\xd5\x01\x00\x05", 4, "{\"$ext\":[1,\"AAU=\"]}");
    packs_to("{\"$ext\":[1,\"AAU=\"]}", "\xd5\x01\x00\x05", 4);
    packs_to("{\"$bigint\":\"-0\"}", "\x00", 1);

    packs_to("{\"$bigint\":\"18446744073709551616\"}",
             "\xc7\x09\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00", 12);
    packs_to("{\"$bigint\":\"-18446744073709551616\"}",
             "\xc7\x09\x01\xff\x00\x00\x00\x00\x00\x00\x00\x00", 12);
    /* What fits 64 bits is a plain int. */
    packs_to("{\"$bigint\":\"5\"}", "\x05", 1);
    packs_to("{\"$bigint\":\"-129\"}", "\xd1\xff\x7f", 3);
    packs_to("{\"$bigint\":\"18446744073709551615\"}",
             "\xcf\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    packs_to("{\"$bigint\":\"-9223372036854775808\"}",
             "\xd3\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    packs_to("{\"$bigint\":7}", "\x07", 1);

    roundtrip("{\"$bigint\":\"123456789012345678901234567890\"}", NULL);
    roundtrip("{\"$bigint\":\"-123456789012345678901234567890\"}", NULL);
    roundtrip("{\"$bigint\":\"-9223372036854775809\"}", NULL);
    roundtrip("{\"$bigint\":\"340282366920938463463374607431768211456\"}",
              NULL);
    roundtrip("{\"$bigint\":\"18446744073709551615\"}", "18446744073709551615");
    bad("{\"$bigint\":\"12a\"}", "needs a decimal integer string");
    bad("{\"$bigint\":\"\"}", "needs a decimal integer string");
    bad("{\"$bigint\":1.5}", "needs a decimal integer string");
}

static void
test_other_ext_and_keys(void **state)
{
    (void)state;
    dumps_to("\xd4\x05\x2a", 3, "{\"$ext\":[5,\"Kg==\"]}");
    roundtrip("{\"$ext\":[5,\"Kg==\"]}", NULL);
    roundtrip("{\"$ext\":[-7,\"\"]}", NULL);
    bad("{\"$ext\":[500,\"\"]}", "needs [type (-128..127), base64]");
    bad("{\"$ext\":\"x\"}", "needs [type (-128..127), base64]");
    /* Non-str map keys are stringified. {1: "a", nil: 2, [1]: true} */
    dumps_to("\x83\x01\xa1\x61\xc0\x02\x91\x01\xc3", 9,
             "{\"1\":\"a\",\"null\":2,\"[1]\":true}");
    /* Invalid UTF-8 in a str is replaced, never emitted raw. */
    dumps_to("\xa3\x61\xff\x62", 4, "\"a\\ufffdb\"");
    dumps_to("\xa2\xed\xa0", 3, "\"\\ufffd\\ufffd\"");
    /* Control characters escaped. */
    dumps_to("\xa2\x1f\x7f", 3, "\"\\u001f\x7f\"");
}

static void
test_pretty(void **state)
{
    msgpack_sbuffer sb;
    char *out;

    (void)state;
    assert_int_equal(
        pack("{\"a\":[1,2],\"b\":{},\"c\":{\"$bin\":\"AA==\"}}", &sb, NULL), 0);
    out = mpjson_dump_bytes(sb.data, sb.size, MPJSON_PRETTY);
    assert_string_equal(out, "{\n"
                             "  \"a\": [\n"
                             "    1,\n"
                             "    2\n"
                             "  ],\n"
                             "  \"b\": {},\n"
                             "  \"c\": {\"$bin\": \"AA==\"}\n"
                             "}");
    free(out);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_dump_bytes_rejects(void **state)
{
    (void)state;
    assert_null(mpjson_dump_bytes("", 0, 0));
    assert_null(mpjson_dump_bytes("\xc1", 1, 0));     /* never used */
    assert_null(mpjson_dump_bytes("\x92\x01", 2, 0)); /* truncated */
    assert_null(mpjson_dump_bytes("\x01\x02", 2, 0)); /* two values */
}

/* Nested arrays, `depth` deep, as a msgpack_object built by hand. */
static void
test_dump_depth(void **state)
{
    msgpack_object objs[70];
    char *s;
    int i;

    (void)state;
    for (i = 0; i < 70; i++) {
        objs[i].type = MSGPACK_OBJECT_ARRAY;
        objs[i].via.array.size = i == 69 ? 0 : 1;
        objs[i].via.array.ptr = i == 69 ? NULL : &objs[i + 1];
    }
    /* objs[70-64] holds 64 levels: fine; objs[70-65]: one too many. */
    s = mpjson_dump(&objs[70 - 64], 0);
    assert_non_null(s);
    assert_int_equal(strlen(s), 128);
    free(s);
    assert_null(mpjson_dump(&objs[70 - 65], 0));
}

static char *
nested(int depth, const char *inner)
{
    char *s = malloc((size_t)depth * 2 + strlen(inner) + 1);
    int i;

    for (i = 0; i < depth; i++)
        s[i] = '[';
    strcpy(s + depth, inner);
    for (i = 0; i < depth; i++)
        strcat(s, "]");
    return s;
}

static void
test_pack_depth(void **state)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char cause[256], *s;

    (void)state;
    s = nested(MPJSON_MAX_DEPTH, "1");
    assert_int_equal(pack(s, &sb, cause), 0);
    msgpack_sbuffer_destroy(&sb);
    free(s);

    s = nested(MPJSON_MAX_DEPTH + 1, "1");
    bad(s, "line 1, column 31: nesting deeper than 30 levels");
    free(s);

    /* Objects count too, and the place is the bracket too many. */
    s = nested(29, "{\"a\":\n {\"b\": 1}}");
    bad(s, "line 2, column 2: nesting deeper than 30 levels");
    free(s);

    /* Far too deep (past jansson's own limit) is still our words. */
    s = nested(5000, "");
    bad(s, "line 1, column 31: nesting deeper than 30 levels");
    free(s);

    /* A syntax error before the too-deep place is reported first. */
    s = nested(40, "");
    s[3] = '}';
    bad(s, "line 1, column 4");
    free(s);

    /* Another limit on request. */
    s = nested(31, "1");
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(mpjson_pack_depth(&pk, s, strlen(s), 31, cause), 0);
    msgpack_sbuffer_destroy(&sb);
    free(s);
}

static void
test_bad_json(void **state)
{
    (void)state;
    bad("", "line 1, column 0");
    bad("[1,\n 2,,3]", "line 2, column 4");
    bad("{\"a\" 1}", "line 1, column 6");
    bad("{\"a\":1", "end of file");
    bad("123abc", "line 1");
    bad("[1] [2]", "end of file expected");
    bad("\"\xff\"", "line 1, column 1: unable to decode byte 0xff");
    bad("tru", "line 1");
    bad("01", "line 1");
    /* Integers beyond int64/uint64 are refused with the place. */
    bad("18446744073709551616", "line 1, column 20: integer out of range");
    bad("[1,\n-9223372036854775809]",
        "line 2, column 20: integer out of range");
    bad("[99999999999999999999999]", "integer out of range");
    /* Digit runs inside a negative or real number are not uint64 literals. */
    bad("-99999999999999999999", "line 1, column 21: integer out of range");
    bad("-18446744073709551615", "integer out of range");
    bad("[1e400]", "line 1, column 6: real number out of range");
    bad("[1e18446744073709551615]", "real number out of range");
    /* A big literal with leading zeros stays invalid. */
    bad("09223372036854775808", "line 1");
    /* Our marker strings cannot be faked to mean a number. */
    bad("[\"\\u0000#0000000000\", 18446744073709551615]",
        "line 1, column 2: a string starting with");
}

static void
test_marker_lookalike_alone(void **state)
{
    (void)state;
    /* Without big integers in the text, such a string is just a string. */
    roundtrip("\"\\u0000#0000000000\"", NULL);
}

/* Found by fuzz_mpjson: the pre-scan looked for marker-like strings only as
 * "\u0000#", so "\u0000\u0023..." next to a big integer was read back as
 * that integer. */
static void
test_marker_lookalike_escaped(void **state)
{
    (void)state;
    bad("[12345678901234567890, \"\\u0000\\u00230\"]",
        "line 1, column 24: a string starting with");
    /* Other strings starting with NUL are fine next to big integers. */
    packs_to("[12345678901234567890, \"\\u0000\\u0024\"]",
             "\x92\xcf\xab\x54\xa9\x8c\xeb\x1f\x0a\xd2\xa2\x00$", 13);
}

/* A big integer where a key goes stays invalid JSON, in jansson's words, not
 * a complaint about a marker string the user never wrote. */
static void
test_big_literal_as_key(void **state)
{
    msgpack_sbuffer sb;
    char cause[256] = "";

    (void)state;
    assert_int_equal(pack("{12345678901234567890: 1}", &sb, cause), -EINVAL);
    if (strstr(cause, "\\u0000") != NULL || strstr(cause, "NUL") != NULL)
        fail_msg("cause mentions the marker: %s", cause);
    msgpack_sbuffer_destroy(&sb);
}

/* Found by fuzz_mpjson: a timestamp past year 999999 dumped as a date text
 * ("+1000000-01-01T...") that packing refuses; it goes out as $ext now. */
static void
test_date_beyond_text(void **state)
{
    /* ext -1, 12 bytes: nsec 0, sec 2^45 (year ~1.1 million) */
    static const char far[] = "\xc7\x0c\xff\x00\x00\x00\x00"
                              "\x00\x00\x20\x00\x00\x00\x00\x00";
    msgpack_sbuffer sb;
    char cause[256], *out;

    (void)state;
    dumps_to(far, sizeof far - 1, "{\"$ext\":[-1,\"AAAAAAAAIAAAAAAA\"]}");
    packs_to("{\"$ext\":[-1,\"AAAAAAAAIAAAAAAA\"]}", far, sizeof far - 1);
    /* The largest year a date text has, pushed past it by its zone. */
    assert_int_equal(pack("{\"$date\": \"+999999-12-31T23:59:59.999-23:59\"}",
                          &sb, cause),
                     0);
    out = mpjson_dump_bytes(sb.data, sb.size, 0);
    assert_non_null(out);
    assert_int_equal(strncmp(out, "{\"$ext\":[-1,", 12), 0);
    free(out);
    msgpack_sbuffer_destroy(&sb);
    dumps_to("\xc7\x0c\xff\x3b\x8b\x87\xc0\x00\x00\x1c\xa4\xf3\x75\x89\xff",
             15, "{\"$date\":\"+999999-12-31T23:59:59.999Z\"}");
}

/* Found by fuzz_mpjson: msgpack-c reserves room for a container's elements
 * as soon as it reads the count, so these 5 bytes asked for ~100 GB (an
 * out-of-memory abort under ASan, `make check-sanitize`). They are refused
 * before msgpack-c sees them. */
static void
test_dump_bytes_huge_count(void **state)
{
    (void)state;
    assert_null(mpjson_dump_bytes("\xdd\xff\xff\xff\xff", 5, 0));
    assert_null(mpjson_dump_bytes("\xdf\xff\xff\xff\xff", 5, 0));
    assert_null(mpjson_dump_bytes("\x91\xdc\x00\x03\x01\x02", 6, 0));
    /* Long forms that do hold their elements still dump. */
    dumps_to("\xdc\x00\x02\x01\xc0", 5, "[1,null]");
    dumps_to("\xdf\x00\x00\x00\x01\xa1k\xc7\x01\x05\x07", 11,
             "{\"k\":{\"$ext\":[5,\"Bw==\"]}}");
}

/* n maps, each the key of the one around it; the innermost keyed by 1. */
static size_t
keys_in_keys(char *buf, int n)
{
    size_t len = 0;
    int i;

    for (i = 0; i < n; i++)
        buf[len++] = '\x81';
    buf[len++] = '\x01';
    for (i = 0; i < n; i++)
        buf[len++] = '\x01';
    return len;
}

/* Found by fuzz_mpjson: a key that is not a str is dumped as the string of
 * its JSON text, so its quotes and backslashes are escaped once more for
 * every key it is inside; 30 maps keyed by maps (61 bytes) made gigabytes.
 * Keys inside keys stop at 8 levels. */
static void
test_dump_keys_in_keys(void **state)
{
    char buf[128], *out;
    size_t n;

    (void)state;
    n = keys_in_keys(buf, 2);
    dumps_to(buf, n, "{\"{\\\"1\\\":1}\":1}");
    n = keys_in_keys(buf, 8);
    out = mpjson_dump_bytes(buf, n, 0);
    assert_non_null(out);
    assert_true(strlen(out) < 4096);
    free(out);
    n = keys_in_keys(buf, 9);
    assert_null(mpjson_dump_bytes(buf, n, 0));
    n = keys_in_keys(buf, 30);
    assert_null(mpjson_dump_bytes(buf, n, 0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scalars_and_containers),
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_reals),
        cmocka_unit_test(test_bin),
        cmocka_unit_test(test_dates),
        cmocka_unit_test(test_bigints),
        cmocka_unit_test(test_other_ext_and_keys),
        cmocka_unit_test(test_pretty),
        cmocka_unit_test(test_dump_bytes_rejects),
        cmocka_unit_test(test_dump_depth),
        cmocka_unit_test(test_pack_depth),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_marker_lookalike_alone),
        cmocka_unit_test(test_marker_lookalike_escaped),
        cmocka_unit_test(test_big_literal_as_key),
        cmocka_unit_test(test_date_beyond_text),
        cmocka_unit_test(test_dump_bytes_huge_count),
        cmocka_unit_test(test_dump_keys_in_keys),
    };

    return cmocka_run_group_tests_name("common/mpjson", tests, NULL, NULL);
}
