/* proto_ext: each ext type's forms and refusals, byte by byte. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ext.h"
#include "proto.h"

/* "c7 09 01 ff00" → bytes (spaces ignored). Returns the length. */
static size_t
unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t n = 0;
    unsigned v;

    while (*hex != '\0') {
        if (*hex == ' ') {
            hex++;
            continue;
        }
        assert_true(n < cap);
        assert_int_equal(sscanf(hex, "%2x", &v), 1);
        out[n++] = (unsigned char)v;
        hex += 2;
    }
    return n;
}

struct packed {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void
packed_init(struct packed *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

/* What was packed equals the hex text. */
static void
assert_packed(struct packed *p, const char *hex)
{
    unsigned char want[512];
    size_t n = unhex(hex, want, sizeof(want));

    if (p->sb.size != n || memcmp(p->sb.data, want, n) != 0) {
        char got[1100] = "";
        for (size_t i = 0; i < p->sb.size && i < 500; i++)
            snprintf(got + 2 * i, 3, "%02x", (unsigned char)p->sb.data[i]);
        fail_msg("packed %s, want %s", got, hex);
    }
    msgpack_sbuffer_destroy(&p->sb);
    packed_init(p);
}

/* ------------------------------------------------------------ timestamp */

static void
ts_decodes(const char *hex, int64_t want_sec, uint32_t want_nsec)
{
    unsigned char b[16];
    size_t n = unhex(hex, b, sizeof(b));
    char cause[PROTO_CAUSE_MAX] = "";
    int64_t sec = -7;
    uint32_t nsec = 7;

    assert_int_equal(
        proto_ext_timestamp_decode((const char *)b, n, &sec, &nsec, cause), 0);
    assert_true(sec == want_sec);
    assert_int_equal(nsec, want_nsec);
}

static void
ts_refused(const char *hex, const char *want_cause)
{
    unsigned char b[16];
    size_t n = unhex(hex, b, sizeof(b));
    char cause[PROTO_CAUSE_MAX] = "";
    int64_t sec;
    uint32_t nsec;

    assert_int_equal(
        proto_ext_timestamp_decode((const char *)b, n, &sec, &nsec, cause),
        -EINVAL);
    assert_string_equal(cause, want_cause);
}

static void
test_timestamp_decode(void **state)
{
    (void)state;
    /* 32: seconds only */
    ts_decodes("00000000", 0, 0);
    ts_decodes("00000001", 1, 0);
    ts_decodes("ffffffff", 4294967295LL, 0);
    /* 64: 30 bits of nanoseconds over 34 bits of seconds */
    ts_decodes("00000004 00000001", 1, 1);
    ts_decodes("00000003 ffffffff", 17179869183LL, 0); /* 2^34 - 1 */
    ts_decodes("ee6b27fc 00000000", 0, 999999999);
    ts_decodes("1d6f3454 00000001", 1, 123456789);
    /* 96: u32 nanoseconds, s64 seconds */
    ts_decodes("00000000 ffffffffffffffff", -1, 0);
    ts_decodes("3b9ac9ff 8000000000000000", INT64_MIN, 999999999);
    ts_decodes("00000000 7fffffffffffffff", INT64_MAX, 0);
    ts_decodes("00000000 0000000400000000", 17179869184LL, 0);
}

static void
test_timestamp_refusals(void **state)
{
    (void)state;
    ts_refused("", "timestamp of a size other than 4, 8 or 12 bytes");
    ts_refused("000000", "timestamp of a size other than 4, 8 or 12 bytes");
    ts_refused("0000000000", "timestamp of a size other than 4, 8 or 12 bytes");
    ts_refused("00000000 00000000 00000000 00000000",
               "timestamp of a size other than 4, 8 or 12 bytes");
    /* 64: nanoseconds 1e9 (0x3b9aca00 << 2) and the 30-bit maximum */
    ts_refused("ee6b2800 00000000",
               "timestamp with more than 999999999 nanoseconds");
    ts_refused("ffffffff ffffffff",
               "timestamp with more than 999999999 nanoseconds");
    /* 96: nanoseconds 1e9 and 2^32 - 1 */
    ts_refused("3b9aca00 0000000000000000",
               "timestamp with more than 999999999 nanoseconds");
    ts_refused("ffffffff 0000000000000001",
               "timestamp with more than 999999999 nanoseconds");
    /* a NULL cause is allowed */
    {
        int64_t sec;
        uint32_t nsec;
        assert_int_equal(proto_ext_timestamp_decode("", 0, &sec, &nsec, NULL),
                         -EINVAL);
    }
}

static void
test_timestamp_pack(void **state)
{
    struct packed p;
    unsigned char buf[PROTO_EXT_TIMESTAMP_MAX];

    (void)state;
    packed_init(&p);
    /* the smallest of the three forms */
    assert_int_equal(proto_ext_timestamp_pack(&p.pk, 0, 0), 0);
    assert_packed(&p, "d6 ff 00000000");
    assert_int_equal(proto_ext_timestamp_pack(&p.pk, 4294967295LL, 0), 0);
    assert_packed(&p, "d6 ff ffffffff");
    assert_int_equal(proto_ext_timestamp_pack(&p.pk, 4294967296LL, 0), 0);
    assert_packed(&p, "d7 ff 00000001 00000000");
    assert_int_equal(proto_ext_timestamp_pack(&p.pk, 1, 1), 0);
    assert_packed(&p, "d7 ff 00000004 00000001");
    assert_int_equal(proto_ext_timestamp_pack(&p.pk, 17179869183LL, 999999999),
                     0);
    assert_packed(&p, "d7 ff ee6b27ff ffffffff");
    assert_int_equal(proto_ext_timestamp_pack(&p.pk, 17179869184LL, 0), 0);
    assert_packed(&p, "c7 0c ff 00000000 0000000400000000");
    assert_int_equal(proto_ext_timestamp_pack(&p.pk, -1, 999000000), 0);
    assert_packed(&p, "c7 0c ff 3b8b87c0 ffffffffffffffff");
    assert_int_equal(proto_ext_timestamp_pack(&p.pk, INT64_MIN, 0), 0);
    assert_packed(&p, "c7 0c ff 00000000 8000000000000000");
    /* nanoseconds past 999999999 have no form */
    assert_int_equal(proto_ext_timestamp_pack(&p.pk, 0, 1000000000u), -EINVAL);
    assert_int_equal(proto_ext_timestamp_encode(5, 1000000000u, buf), 0);
    assert_int_equal(proto_ext_timestamp_encode(5, UINT32_MAX, buf), 0);
    assert_int_equal(p.sb.size, 0);
    msgpack_sbuffer_destroy(&p.sb);
}

/* Every encoded form decodes back to its value. */
static void
test_timestamp_roundtrip(void **state)
{
    static const int64_t secs[] = {0,
                                   1,
                                   4294967295LL,
                                   4294967296LL,
                                   17179869183LL,
                                   17179869184LL,
                                   -1,
                                   -17179869184LL,
                                   INT64_MAX,
                                   INT64_MIN};
    static const uint32_t nsecs[] = {0, 1, 999, 500000000, 999999999};
    unsigned char buf[PROTO_EXT_TIMESTAMP_MAX];
    int64_t sec;
    uint32_t nsec;

    (void)state;
    for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++) {
        for (size_t j = 0; j < sizeof(nsecs) / sizeof(nsecs[0]); j++) {
            size_t n = proto_ext_timestamp_encode(secs[i], nsecs[j], buf);
            assert_true(n == 4 || n == 8 || n == 12);
            if (n == 4)
                assert_int_equal(nsecs[j], 0);
            assert_int_equal(proto_ext_timestamp_decode((const char *)buf, n,
                                                        &sec, &nsec, NULL),
                             0);
            assert_true(sec == secs[i]);
            assert_int_equal(nsec, nsecs[j]);
        }
    }
}

/* --------------------------------------------------------------- bigint */

/* Packs (neg, magnitude in hex) and compares with want. */
static void
big_packs(bool neg, const char *mag_hex, const char *want)
{
    unsigned char mag[300];
    size_t n = unhex(mag_hex, mag, sizeof(mag));
    struct packed p;

    packed_init(&p);
    assert_int_equal(proto_ext_bigint_pack(&p.pk, neg, mag, n), 0);
    assert_packed(&p, want);
    msgpack_sbuffer_destroy(&p.sb);
}

static void
big_decodes(const char *hex, bool want_neg, const char *want_mag)
{
    unsigned char b[300], mag[300], want[300];
    size_t n = unhex(hex, b, sizeof(b));
    size_t wn = unhex(want_mag, want, sizeof(want));
    size_t mn = 99;
    bool neg = !want_neg;
    char cause[PROTO_CAUSE_MAX] = "";

    assert_int_equal(
        proto_ext_bigint_decode((const char *)b, n, &neg, mag, &mn, cause), 0);
    assert_int_equal(neg, want_neg);
    assert_int_equal(mn, wn);
    assert_memory_equal(mag, want, wn);
}

static void
test_bigint_pack_fits_64_bits(void **state)
{
    (void)state;
    /* what fits int64 or uint64 is a plain int */
    big_packs(false, "", "00");
    big_packs(true, "", "00"); /* -0 is 0 */
    big_packs(false, "00", "00");
    big_packs(false, "05", "05");
    big_packs(true, "01", "ff");
    big_packs(true, "81", "d1 ff7f");
    big_packs(false, "0000000005", "05"); /* leading zeros are allowed */
    big_packs(false, "ffffffffffffffff", "cf ffffffffffffffff");
    big_packs(true, "8000000000000000", "d3 8000000000000000");
    big_packs(true, "7fffffffffffffff", "d3 8000000000000001");
}

static void
test_bigint_pack_ext(void **state)
{
    (void)state;
    /* 2^64, -2^64 */
    big_packs(false, "010000000000000000", "c7 09 01 010000000000000000");
    big_packs(true, "010000000000000000", "c7 09 01 ff0000000000000000");
    /* -2^63 - 1 and -(2^64 - 1): 9 bytes, one of them the sign */
    big_packs(true, "8000000000000001", "c7 09 01 ff7fffffffffffffff");
    big_packs(true, "ffffffffffffffff", "c7 09 01 ff0000000000000001");
    /* 2^71 - 1; 2^71 needs a sign byte; -2^71 does not */
    big_packs(false, "7fffffffffffffffff", "c7 09 01 7fffffffffffffffff");
    big_packs(false, "800000000000000000", "c7 0a 01 00800000000000000000");
    big_packs(true, "800000000000000000", "c7 09 01 800000000000000000");
    big_packs(true, "800000000000000001", "c7 0a 01 ff7fffffffffffffffff");
    big_packs(true, "810000000000000000", "c7 0a 01 ff7f0000000000000000");
    /* the lowest non-zero byte is negated, the zeros under it stay */
    big_packs(true, "0123000000000000000000",
              "c7 0b 01 fedd000000000000000000");
    big_packs(false, "00000123000000000000000000",
              "c7 0b 01 0123000000000000000000");
}

static void
test_bigint_decode(void **state)
{
    (void)state;
    big_decodes("", false, "");
    big_decodes("00", false, "");
    big_decodes("7f", false, "7f");
    big_decodes("80", true, "80");
    big_decodes("ff", true, "01");
    big_decodes("0080", false, "80");
    big_decodes("ff7f", true, "81");
    big_decodes("ff00", true, "0100");
    big_decodes("010000000000000000", false, "010000000000000000");
    big_decodes("ff0000000000000000", true, "010000000000000000");
    big_decodes("800000000000000000", true, "800000000000000000");
    big_decodes("ff7fffffffffffffff", true, "8000000000000001");
    /* values that fit 64 bits are read too (a JS BigInt 0n) */
    big_decodes("05", false, "05");
}

static void
test_bigint_refusals(void **state)
{
    static const char *const redundant[] = {"0000", "0005",   "007f",    "ff80",
                                            "ffff", "ffff7f", "00007f00"};
    unsigned char b[16], mag[16];
    size_t n, mn;
    bool neg;
    char cause[PROTO_CAUSE_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof(redundant) / sizeof(redundant[0]); i++) {
        n = unhex(redundant[i], b, sizeof(b));
        cause[0] = '\0';
        assert_int_equal(
            proto_ext_bigint_decode((const char *)b, n, &neg, mag, &mn, cause),
            -EINVAL);
        assert_string_equal(cause, "bigint with a redundant sign byte");
    }
}

/* Magnitudes of every length up to 300 bytes (past the packer's chunk), both
 * signs: packed, read back as msgpack, decoded, equal. */
static void
test_bigint_roundtrip(void **state)
{
    unsigned char mag[300], back[301];
    unsigned seed = 12345;

    (void)state;
    for (size_t len = 1; len <= sizeof(mag); len++) {
        for (int shape = 0; shape < 4; shape++) {
            for (size_t i = 0; i < len; i++) {
                seed = seed * 1103515245u + 12345u;
                mag[i] = shape == 0   ? (unsigned char)(seed >> 16)
                         : shape == 1 ? (i == 0 ? 0x80 : 0)
                         : shape == 2 ? 0xff
                                      : (i == len - 1 ? 0 : 0x42);
            }
            if (mag[0] == 0)
                mag[0] = 1;
            for (int neg = 0; neg < 2; neg++) {
                struct packed p;
                msgpack_unpacked u;
                size_t mn = 0;
                bool bneg;

                packed_init(&p);
                assert_int_equal(proto_ext_bigint_pack(&p.pk, neg, mag, len),
                                 0);
                msgpack_unpacked_init(&u);
                assert_int_equal(
                    msgpack_unpack_next(&u, p.sb.data, p.sb.size, NULL),
                    MSGPACK_UNPACK_SUCCESS);
                if (u.data.type == MSGPACK_OBJECT_EXT) {
                    assert_int_equal(u.data.via.ext.type, PROTO_EXT_BIGINT);
                    assert_true(u.data.via.ext.size <= len + 1);
                    assert_int_equal(
                        proto_ext_bigint_decode(u.data.via.ext.ptr,
                                                u.data.via.ext.size, &bneg,
                                                back, &mn, NULL),
                        0);
                    assert_int_equal(bneg, neg);
                    assert_int_equal(mn, len);
                    assert_memory_equal(back, mag, len);
                } else {
                    /* only what fits 64 bits is a plain int */
                    assert_true(len <= 8);
                    assert_true(u.data.type ==
                                (neg ? MSGPACK_OBJECT_NEGATIVE_INTEGER
                                     : MSGPACK_OBJECT_POSITIVE_INTEGER));
                }
                msgpack_unpacked_destroy(&u);
                msgpack_sbuffer_destroy(&p.sb);
            }
        }
    }
}

/* ------------------------------------------------------------- callable */

static void
test_callable(void **state)
{
    struct packed p;
    uint32_t id = 0;
    char cause[PROTO_CAUSE_MAX] = "";

    (void)state;
    packed_init(&p);
    assert_int_equal(proto_ext_callable_pack(&p.pk, 0xdeadbeefu), 0);
    assert_packed(&p, "d6 02 deadbeef");
    assert_int_equal(proto_ext_callable_pack(&p.pk, 0), 0);
    assert_packed(&p, "d6 02 00000000");
    assert_int_equal(
        proto_ext_callable_decode("\x00\x00\x01\x02", 4, &id, cause), 0);
    assert_int_equal(id, 0x102);
    assert_int_equal(
        proto_ext_callable_decode("\xff\xff\xff\xff", 4, &id, cause), 0);
    assert_int_equal(id, UINT32_MAX);
    assert_int_equal(proto_ext_callable_decode("\x00\x01\x02", 3, &id, cause),
                     -EINVAL);
    assert_string_equal(cause, "callable of a size other than 4 bytes");
    cause[0] = '\0';
    assert_int_equal(
        proto_ext_callable_decode("\x00\x00\x00\x01\x02", 5, &id, cause),
        -EINVAL);
    assert_string_equal(cause, "callable of a size other than 4 bytes");
    assert_int_equal(proto_ext_callable_decode("", 0, &id, NULL), -EINVAL);
    msgpack_sbuffer_destroy(&p.sb);
}

/* A packer whose writes fail: each packer's error comes back. */
static int
failing_write(void *data, const char *buf, size_t len)
{
    (void)data;
    (void)buf;
    (void)len;
    return -1;
}

static void
test_packer_errors(void **state)
{
    msgpack_packer pk;
    static const unsigned char big[] = {1, 0, 0, 0, 0, 0, 0, 0, 0};

    (void)state;
    msgpack_packer_init(&pk, NULL, failing_write);
    assert_int_equal(proto_ext_timestamp_pack(&pk, 1, 0), -1);
    assert_int_equal(proto_ext_bigint_pack(&pk, false, big, sizeof(big)), -1);
    assert_int_equal(proto_ext_bigint_pack(&pk, true, big, sizeof(big)), -1);
    assert_int_equal(proto_ext_bigint_pack(&pk, true, big, 1), -1);
    assert_int_equal(proto_ext_callable_pack(&pk, 1), -1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timestamp_decode),
        cmocka_unit_test(test_timestamp_refusals),
        cmocka_unit_test(test_timestamp_pack),
        cmocka_unit_test(test_timestamp_roundtrip),
        cmocka_unit_test(test_bigint_pack_fits_64_bits),
        cmocka_unit_test(test_bigint_pack_ext),
        cmocka_unit_test(test_bigint_decode),
        cmocka_unit_test(test_bigint_refusals),
        cmocka_unit_test(test_bigint_roundtrip),
        cmocka_unit_test(test_callable),
        cmocka_unit_test(test_packer_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
