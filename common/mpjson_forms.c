/* The JSON forms of msgpack's bin, timestamp and bigint ({"$bin": base64},
 * {"$date": ISO 8601}, {"$bigint": digits}), both ways, for mpjson.c and
 * mpjson_dump.c. */
#include "mpjson_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- base64 */

const char mpjson__b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
mpjson__b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+' || c == '-')
        return 62;
    if (c == '/' || c == '_')
        return 63;
    return -1;
}

/* Decodes standard or URL-safe base64, padding optional. The output (at most
 * len*3/4 bytes) goes to a malloc'd buffer. 0, -EINVAL, -ENOMEM. */
int
mpjson__b64decode(const char *s, size_t len, unsigned char **out,
                  size_t *outlen)
{
    unsigned char *buf;
    uint32_t acc = 0;
    size_t i, n = 0;
    int bits = 0, v;

    while (len > 0 && s[len - 1] == '=')
        len--;
    if (len % 4 == 1)
        return -EINVAL;
    buf = malloc(len * 3 / 4 + 1);
    if (buf == NULL)
        return -ENOMEM;
    for (i = 0; i < len; i++) {
        v = mpjson__b64val((unsigned char)s[i]);
        if (v < 0) {
            free(buf);
            return -EINVAL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
        }
    }
    *out = buf;
    *outlen = n;
    return 0;
}

/* ------------------------------------------------------------ dates */

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's method). */
static int64_t
mpjson__days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era, yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void
mpjson__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t era, doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    *m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static int
mpjson__digits(const char **p, const char *end, int n, int64_t *v)
{
    int64_t r = 0;
    int i;

    for (i = 0; i < n; i++) {
        if (*p >= end || **p < '0' || **p > '9')
            return -1;
        r = r * 10 + (**p - '0');
        (*p)++;
    }
    *v = r;
    return 0;
}

/*
 * Parses ISO 8601 as JavaScript's Date.toISOString writes it (and a little
 * more): [±YY]YYYY-MM-DDTHH:MM[:SS[.fraction]](Z|±HH:MM). 0 or -1.
 */
int
mpjson__parse_date(const char *s, size_t len, int64_t *sec, uint32_t *nsec)
{
    const char *p = s, *end = s + len;
    int64_t y, mo, d, h, mi, se = 0, ns = 0, oh, om, days;
    int sign = 1, i;

    if (p < end && (*p == '+' || *p == '-')) {
        sign = *p == '-' ? -1 : 1;
        p++;
        if (mpjson__digits(&p, end, 6, &y) != 0)
            return -1;
    } else if (mpjson__digits(&p, end, 4, &y) != 0) {
        return -1;
    }
    y *= sign;
    if (p >= end || *p++ != '-' || mpjson__digits(&p, end, 2, &mo) != 0 ||
        p >= end || *p++ != '-' || mpjson__digits(&p, end, 2, &d) != 0)
        return -1;
    if (p >= end || (*p != 'T' && *p != 't' && *p != ' '))
        return -1;
    p++;
    if (mpjson__digits(&p, end, 2, &h) != 0 || p >= end || *p++ != ':' ||
        mpjson__digits(&p, end, 2, &mi) != 0)
        return -1;
    if (p < end && *p == ':') {
        p++;
        if (mpjson__digits(&p, end, 2, &se) != 0)
            return -1;
        if (p < end && *p == '.') {
            p++;
            if (p >= end || *p < '0' || *p > '9')
                return -1;
            for (i = 0; p < end && *p >= '0' && *p <= '9'; i++, p++)
                if (i < 9)
                    ns = ns * 10 + (*p - '0');
            for (; i < 9; i++)
                ns *= 10;
        }
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -1;
    days = mpjson__days_from_civil(y, (unsigned)mo, (unsigned)d);
    *sec = days * 86400 + h * 3600 + mi * 60 + se;
    if (p < end && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
        sign = *p++ == '-' ? -1 : 1;
        if (mpjson__digits(&p, end, 2, &oh) != 0 || p >= end || *p++ != ':' ||
            mpjson__digits(&p, end, 2, &om) != 0)
            return -1;
        *sec -= sign * (oh * 3600 + om * 60);
    } else {
        return -1; /* a time without a zone means nothing across machines */
    }
    if (p != end)
        return -1;
    *nsec = (uint32_t)ns;
    return 0;
}

/* "2026-11-21T23:30:46.123Z" as toISOString writes it; finer fractions get 6
 * or 9 digits so nothing is lost. buf >= 48 bytes. -1 (nothing written) for a
 * year past ±999999, which mpjson__parse_date could not read back. */
int
mpjson__format_date(int64_t sec, uint32_t nsec, char *buf, size_t size)
{
    int64_t days, rem, y;
    unsigned m, d;
    char year[24], frac[16];

    days = sec / 86400;
    rem = sec % 86400;
    if (rem < 0) {
        rem += 86400;
        days--;
    }
    mpjson__civil_from_days(days, &y, &m, &d);
    if (y < -999999 || y > 999999)
        return -1;
    if (y >= 0 && y <= 9999)
        snprintf(year, sizeof year, "%04" PRId64, y);
    else
        snprintf(year, sizeof year, "%c%06" PRId64, y < 0 ? '-' : '+',
                 y < 0 ? -y : y);
    if (nsec % 1000000 == 0)
        snprintf(frac, sizeof frac, "%03u", nsec / 1000000);
    else if (nsec % 1000 == 0)
        snprintf(frac, sizeof frac, "%06u", nsec / 1000);
    else
        snprintf(frac, sizeof frac, "%09u", nsec);
    snprintf(buf, size, "%s-%02u-%02uT%02u:%02u:%02u.%sZ", year, m, d,
             (unsigned)(rem / 3600), (unsigned)(rem / 60 % 60),
             (unsigned)(rem % 60), frac);
    return 0;
}

/* ----------------------------------------------------------- bigints */

/*
 * Decimal text → *neg and the magnitude, big-endian with no leading zero byte
 * (proto_ext_bigint_pack makes it an int or the bigint ext). *out malloc'd.
 * 0, -EINVAL (not a decimal integer), -ENOMEM.
 */
int
mpjson__bigint_from_dec(const char *s, size_t len, bool *neg,
                        unsigned char **out, size_t *outlen)
{
    unsigned char *mag;
    size_t cap, n = 0, i, j, start;
    unsigned carry;

    *neg = false;
    if (len > 0 && (s[0] == '-' || s[0] == '+')) {
        *neg = s[0] == '-';
        s++;
        len--;
    }
    if (len == 0)
        return -EINVAL;
    for (i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
    /* Each decimal digit needs under half a byte. */
    cap = len / 2 + 1;
    mag = calloc(cap, 1);
    if (mag == NULL)
        return -ENOMEM;
    /* mag holds the magnitude, little-endian, n bytes used. */
    for (i = 0; i < len; i++) {
        carry = (unsigned)(s[i] - '0');
        for (j = 0; j < n; j++) {
            carry += mag[j] * 10u;
            mag[j] = (unsigned char)carry;
            carry >>= 8;
        }
        if (carry != 0)
            mag[n++] = (unsigned char)carry;
    }
    /* Little-endian → big-endian, in place. */
    for (i = 0, start = n; n > 0 && i < --start; i++) {
        unsigned char t = mag[i];
        mag[i] = mag[start];
        mag[start] = t;
    }
    *out = mag;
    *outlen = n;
    return 0;
}

/* A magnitude (big-endian) → malloc'd decimal text, NULL on ENOMEM. mag is
 * used up. */
char *
mpjson__bigint_to_dec(bool neg, unsigned char *mag, size_t len)
{
    char *dec, *q;
    size_t i, first, cap;
    bool zero;
    unsigned rem;

    /* 256^len < 10^(2.41*len+1). */
    cap = len * 3 + 3;
    dec = malloc(cap);
    if (dec == NULL)
        return NULL;
    q = dec + cap - 1;
    *q = '\0';
    first = 0;
    do {
        rem = 0;
        zero = true;
        for (i = first; i < len; i++) {
            rem = (rem << 8) | mag[i];
            mag[i] = (unsigned char)(rem / 10);
            rem %= 10;
            if (mag[i] != 0)
                zero = false;
        }
        *--q = (char)('0' + rem);
        while (first < len && mag[first] == 0)
            first++;
    } while (!zero);
    if (neg)
        *--q = '-';
    memmove(dec, q, strlen(q) + 1);
    return dec;
}
