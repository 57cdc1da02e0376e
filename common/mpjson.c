/*
 * JSON <-> msgpack. JSON text is parsed by jansson (which gives us UTF-8
 * checks, escapes and line/column errors); the msgpack → JSON direction is a
 * small emitter of our own, because jansson's integers stop at int64 and its
 * strings refuse invalid UTF-8, and msgpack carries both.
 *
 * jansson cannot hold integers between INT64_MAX and UINT64_MAX either. So a
 * pre-scan of the text (which also measures nesting) finds such literals and,
 * before jansson sees the text, swaps each for a marker string of exactly the
 * same length ("\u0000#<index>"), so line and column numbers of later errors
 * stay true; the walk that packs the tree turns markers back into uint64.
 */
#include "mpjson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ext.h"

#define MPJSON_DUMP_MAX_DEPTH 64
#define MPJSON_CAUSE_MAX 256

__attribute__((format(printf, 2, 3))) static void
mpjson__cause(char *cause, const char *fmt, ...)
{
    va_list ap;

    if (cause == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(cause, MPJSON_CAUSE_MAX, fmt, ap);
    va_end(ap);
}

/* ---------------------------------------------------------------- base64 */

static const char mpjson__b64[] =
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
static int
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
static int
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
static int
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
static int
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
static char *
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

/* ------------------------------------------------------ JSON → msgpack */

struct mpjson__big {
    size_t off;
    size_t len;
    uint64_t value;
};

struct mpjson__scan {
    struct mpjson__big *bigs;
    size_t nbigs;
    size_t capbigs;
    bool marker_clash; /* a user string starts like our markers */
    size_t clash_off;
    bool too_deep;
    size_t deep_off; /* byte offset of the first too-deep bracket */
    int deep_line;
    int deep_col;
    int max_depth;
};

/* Whether the text of a string (after its opening quote) starts with what a
 * marker decodes to, NUL then '#', however the '#' is written. */
static bool
mpjson__marker_like(const char *s, size_t len)
{
    if (len < 7 || memcmp(s, "\\u0000", 6) != 0)
        return false;
    return s[6] == '#' || (len >= 12 && memcmp(s + 6, "\\u0023", 6) == 0);
}

/* The lexical pre-scan: strings are skipped, numbers and brackets looked at.
 * Invalid JSON is not its business (jansson reports that); it only must not
 * misread valid JSON. */
static int
mpjson__prescan(const char *s, size_t len, struct mpjson__scan *sc)
{
    size_t i = 0, j;
    int depth = 0, line = 1, col = 0;
    uint64_t v;
    bool ok;

    while (i < len) {
        unsigned char c = (unsigned char)s[i];

        if (c == '\n') {
            line++;
            col = 0;
            i++;
            continue;
        }
        if ((c & 0xc0) != 0x80)
            col++;
        if (c == '"') {
            if (mpjson__marker_like(s + i + 1, len - i - 1) &&
                !sc->marker_clash) {
                sc->marker_clash = true;
                sc->clash_off = i;
            }
            for (i++; i < len && s[i] != '"'; i++) {
                if (s[i] == '\\')
                    i++;
                else if (s[i] == '\n')
                    break; /* invalid anyway; keep line counts sane */
                else if (((unsigned char)s[i] & 0xc0) != 0x80)
                    col++;
            }
            if (i < len && s[i] == '"') {
                col++;
                i++;
            }
            continue;
        }
        if (c == '[' || c == '{') {
            if (++depth > sc->max_depth && !sc->too_deep) {
                sc->too_deep = true;
                sc->deep_off = i;
                sc->deep_line = line;
                sc->deep_col = col;
            }
        } else if (c == ']' || c == '}') {
            if (depth > 0)
                depth--;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            /* A whole number token, so no digit run inside "-1…" or "1.…"
             * is mistaken for one. Only a plain integer of 19-20 digits may
             * be a uint64 past INT64_MAX; a leading zero is invalid JSON and
             * left to jansson. */
            ok = c != '0' && c != '-';
            for (j = i; j < len && strchr("0123456789+-.eE", s[j]) != NULL &&
                        s[j] != '\0';
                 j++)
                if (s[j] < '0' || s[j] > '9')
                    ok = false;
            if (ok && (j - i == 19 || j - i == 20)) {
                size_t k;
                v = 0;
                for (k = i; k < j && ok; k++) {
                    unsigned d = (unsigned)(s[k] - '0');
                    if (v > (UINT64_MAX - d) / 10)
                        ok = false;
                    else
                        v = v * 10 + d;
                }
                /* Not where a key goes: a marker would make a string of
                 * it, and turn invalid JSON ({1…0: 1}) into valid. */
                for (k = j; k < len && strchr(" \t\r\n", s[k]) != NULL &&
                            s[k] != '\0';
                     k++)
                    ;
                if (k < len && s[k] == ':')
                    ok = false;
                if (ok && v > (uint64_t)INT64_MAX) {
                    if (sc->nbigs == sc->capbigs) {
                        size_t nc = sc->capbigs ? sc->capbigs * 2 : 8;
                        void *nb = realloc(sc->bigs, nc * sizeof *sc->bigs);
                        if (nb == NULL)
                            return -ENOMEM;
                        sc->bigs = nb;
                        sc->capbigs = nc;
                    }
                    sc->bigs[sc->nbigs].off = i;
                    sc->bigs[sc->nbigs].len = j - i;
                    sc->bigs[sc->nbigs].value = v;
                    sc->nbigs++;
                }
            }
            col += (int)(j - i) - 1;
            i = j;
            continue;
        }
        i++;
    }
    return 0;
}

struct mpjson__packer {
    msgpack_packer *pk;
    const struct mpjson__scan *sc;
    char *cause;
};

#define MPJSON__TRY(expr)                                                      \
    do {                                                                       \
        if ((expr) != 0)                                                       \
            return -ENOMEM;                                                    \
    } while (0)

/* A marker string put in place of a big literal: its uint64, or false. */
static bool
mpjson__marker(const struct mpjson__scan *sc, const char *s, size_t len,
               uint64_t *v)
{
    size_t idx = 0, i;

    if (sc->nbigs == 0 || len < 3 || s[0] != '\0' || s[1] != '#')
        return false;
    for (i = 2; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        idx = idx * 10 + (size_t)(s[i] - '0');
    }
    if (idx >= sc->nbigs)
        return false;
    *v = sc->bigs[idx].value;
    return true;
}

static int mpjson__pack_json(struct mpjson__packer *p, json_t *j);

/* {"$bin": b64}, {"$date": iso}, {"$bigint": dec}, {"$ext": [type, b64]}:
 * 1 when j was one of them (and is packed), 0 when it is a plain object,
 * negative errno with cause when the special form is malformed. */
static int
mpjson__pack_special(struct mpjson__packer *p, json_t *j)
{
    const char *key, *s;
    json_t *v;
    unsigned char *bytes;
    size_t n, len;
    bool neg;
    int r;

    if (json_object_size(j) != 1)
        return 0;
    key = json_object_iter_key(json_object_iter(j));
    v = json_object_iter_value(json_object_iter(j));
    if (key[0] != '$')
        return 0;

    if (strcmp(key, "$bin") == 0) {
        if (!json_is_string(v)) {
            mpjson__cause(p->cause, "{\"$bin\": ...} needs a base64 string");
            return -EINVAL;
        }
        r = mpjson__b64decode(json_string_value(v), json_string_length(v),
                              &bytes, &n);
        if (r == -EINVAL)
            mpjson__cause(p->cause, "{\"$bin\": \"%.64s\"}: not valid base64",
                          json_string_value(v));
        if (r != 0)
            return r;
        r = msgpack_pack_bin_with_body(p->pk, bytes, n);
        free(bytes);
        return r == 0 ? 1 : -ENOMEM;
    }
    if (strcmp(key, "$date") == 0) {
        int64_t sec;
        uint32_t nsec;
        if (!json_is_string(v) ||
            mpjson__parse_date(json_string_value(v), json_string_length(v),
                               &sec, &nsec) != 0) {
            mpjson__cause(p->cause,
                          "{\"$date\": ...} needs an ISO 8601 string such as "
                          "\"2026-11-21T23:30:46.123Z\"");
            return -EINVAL;
        }
        return proto_ext_timestamp_pack(p->pk, sec, nsec) == 0 ? 1 : -ENOMEM;
    }
    if (strcmp(key, "$bigint") == 0) {
        if (json_is_integer(v)) {
            MPJSON__TRY(msgpack_pack_int64(p->pk, json_integer_value(v)));
            return 1;
        }
        s = json_is_string(v) ? json_string_value(v) : "";
        len = json_is_string(v) ? json_string_length(v) : 0;
        r = mpjson__bigint_from_dec(s, len, &neg, &bytes, &n);
        if (r == -EINVAL)
            mpjson__cause(p->cause,
                          "{\"$bigint\": ...} needs a decimal integer string");
        if (r != 0)
            return r;
        /* What fits 64 bits travels as a plain int (docs/values.md). */
        r = proto_ext_bigint_pack(p->pk, neg, bytes, n);
        free(bytes);
        return r == 0 ? 1 : -ENOMEM;
    }
    if (strcmp(key, "$ext") == 0) {
        json_t *t = json_array_get(v, 0), *d = json_array_get(v, 1);
        json_int_t type = json_is_integer(t) ? json_integer_value(t) : 999;
        if (json_array_size(v) != 2 || type < -128 || type > 127 ||
            !json_is_string(d) ||
            mpjson__b64decode(json_string_value(d), json_string_length(d),
                              &bytes, &n) != 0) {
            mpjson__cause(p->cause,
                          "{\"$ext\": ...} needs [type (-128..127), base64]");
            return -EINVAL;
        }
        r = msgpack_pack_ext_with_body(p->pk, bytes, n, (int8_t)type);
        free(bytes);
        return r == 0 ? 1 : -ENOMEM;
    }
    return 0;
}

static int
mpjson__pack_json(struct mpjson__packer *p, json_t *j)
{
    const char *key, *s;
    json_t *v;
    size_t i, n;
    uint64_t u;
    int r;

    switch (json_typeof(j)) {
    case JSON_NULL:
        MPJSON__TRY(msgpack_pack_nil(p->pk));
        return 0;
    case JSON_TRUE:
        MPJSON__TRY(msgpack_pack_true(p->pk));
        return 0;
    case JSON_FALSE:
        MPJSON__TRY(msgpack_pack_false(p->pk));
        return 0;
    case JSON_INTEGER:
        MPJSON__TRY(msgpack_pack_int64(p->pk, json_integer_value(j)));
        return 0;
    case JSON_REAL:
        MPJSON__TRY(msgpack_pack_double(p->pk, json_real_value(j)));
        return 0;
    case JSON_STRING:
        s = json_string_value(j);
        n = json_string_length(j);
        if (mpjson__marker(p->sc, s, n, &u)) {
            MPJSON__TRY(msgpack_pack_uint64(p->pk, u));
            return 0;
        }
        MPJSON__TRY(msgpack_pack_str_with_body(p->pk, s, n));
        return 0;
    case JSON_ARRAY:
        n = json_array_size(j);
        MPJSON__TRY(msgpack_pack_array(p->pk, n));
        for (i = 0; i < n; i++) {
            r = mpjson__pack_json(p, json_array_get(j, i));
            if (r != 0)
                return r;
        }
        return 0;
    case JSON_OBJECT:
        r = mpjson__pack_special(p, j);
        if (r != 0)
            return r < 0 ? r : 0;
        MPJSON__TRY(msgpack_pack_map(p->pk, json_object_size(j)));
        /* jansson keeps insertion order, so the map keeps the text's. Keys
         * with NUL in them are cut at the NUL by jansson's object API. */
        json_object_foreach(j, key, v)
        {
            MPJSON__TRY(msgpack_pack_str_with_body(p->pk, key, strlen(key)));
            r = mpjson__pack_json(p, v);
            if (r != 0)
                return r;
        }
        return 0;
    }
    return -EINVAL;
}

/* Line and column (1-based, in characters, as jansson counts) of a byte offset.
 */
static void
mpjson__linecol(const char *s, size_t off, int *line, int *col)
{
    size_t i;

    *line = 1;
    *col = 0;
    for (i = 0; i <= off && s[i] != '\0'; i++) {
        if (s[i] == '\n') {
            (*line)++;
            *col = 0;
        } else if (((unsigned char)s[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

int
mpjson_pack_depth(msgpack_packer *pk, const char *json, size_t len,
                  int max_depth, char *cause)
{
    struct mpjson__scan sc;
    struct mpjson__packer p;
    json_error_t jerr;
    json_t *root;
    char *text = NULL, marker[32];
    const char *src = json;
    size_t i;
    int r, line, col;

    if (cause != NULL)
        cause[0] = '\0';
    memset(&sc, 0, sizeof sc);
    sc.max_depth = max_depth;
    r = mpjson__prescan(json, len, &sc);
    if (r != 0)
        goto out;

    if (sc.nbigs > 0) {
        if (sc.marker_clash) {
            text = strndup(json, len);
            if (text == NULL) {
                r = -ENOMEM;
                goto out;
            }
            mpjson__linecol(text, sc.clash_off, &line, &col);
            mpjson__cause(cause,
                          "line %d, column %d: a string starting with "
                          "\"\\u0000#\" cannot be read together with integers "
                          "above INT64_MAX",
                          line, col);
            r = -EINVAL;
            goto out;
        }
        text = malloc(len + 1);
        if (text == NULL) {
            r = -ENOMEM;
            goto out;
        }
        memcpy(text, json, len);
        text[len] = '\0';
        for (i = 0; i < sc.nbigs; i++) {
            /* "\u0000#" + zero-padded index: as long as the literal. */
            snprintf(marker, sizeof marker, "\"\\u0000#%0*zu\"",
                     (int)sc.bigs[i].len - 9, i);
            memcpy(text + sc.bigs[i].off, marker, sc.bigs[i].len);
        }
        src = text;
    }

    root = json_loadb(src, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        if (sc.too_deep && sc.deep_off < (size_t)jerr.position) {
            mpjson__cause(cause,
                          "line %d, column %d: nesting deeper than %d "
                          "levels",
                          sc.deep_line, sc.deep_col, max_depth);
        } else if (json_error_code(&jerr) == json_error_numeric_overflow &&
                   strstr(jerr.text, "real") != NULL) {
            mpjson__cause(
                cause,
                "line %d, column %d: real number out of range (beyond "
                "a double)",
                jerr.line, jerr.column);
        } else if (json_error_code(&jerr) == json_error_numeric_overflow) {
            mpjson__cause(cause,
                          "line %d, column %d: integer out of range (JSON "
                          "integers must fit int64 or uint64)",
                          jerr.line, jerr.column);
        } else {
            mpjson__cause(cause, "line %d, column %d: %s", jerr.line,
                          jerr.column, jerr.text);
        }
        r = -EINVAL;
        goto out;
    }
    if (sc.too_deep) {
        json_decref(root);
        mpjson__cause(cause,
                      "line %d, column %d: nesting deeper than %d levels",
                      sc.deep_line, sc.deep_col, max_depth);
        r = -EINVAL;
        goto out;
    }
    p.pk = pk;
    p.sc = &sc;
    p.cause = cause;
    r = mpjson__pack_json(&p, root);
    if (r == -ENOMEM && cause != NULL && cause[0] == '\0')
        mpjson__cause(cause, "out of memory");
    json_decref(root);
out:
    free(text);
    free(sc.bigs);
    return r;
}

int
mpjson_pack(msgpack_packer *pk, const char *json, size_t len, char *cause)
{
    return mpjson_pack_depth(pk, json, len, MPJSON_MAX_DEPTH, cause);
}

/* ------------------------------------------------------ msgpack → JSON */

struct mpjson__out {
    char *buf;
    size_t len;
    size_t cap;
    bool failed;
    int flags;
    int key_depth; /* how many non-str keys this text is inside */
};

static void
mpjson__put(struct mpjson__out *o, const char *s, size_t n)
{
    char *nb;
    size_t nc;

    if (o->failed)
        return;
    if (o->len + n + 1 > o->cap) {
        nc = o->cap ? o->cap : 64;
        while (nc < o->len + n + 1)
            nc *= 2;
        nb = realloc(o->buf, nc);
        if (nb == NULL) {
            o->failed = true;
            return;
        }
        o->buf = nb;
        o->cap = nc;
    }
    memcpy(o->buf + o->len, s, n);
    o->len += n;
    o->buf[o->len] = '\0';
}

static void
mpjson__puts(struct mpjson__out *o, const char *s)
{
    mpjson__put(o, s, strlen(s));
}

/* Length of a valid UTF-8 sequence at s (max n bytes), 0 if invalid. */
static size_t
mpjson__utf8_len(const unsigned char *s, size_t n)
{
    uint32_t cp;
    size_t len, i;

    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* A JSON string; bytes that are not UTF-8 become U+FFFD. */
static void
mpjson__put_string(struct mpjson__out *o, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run, k;
    char esc[8];

    mpjson__put(o, "\"", 1);
    while (i < n) {
        run = i;
        while (run < n && s[run] >= 0x20 && s[run] < 0x80 && s[run] != '"' &&
               s[run] != '\\')
            run++;
        mpjson__put(o, str + i, run - i);
        i = run;
        if (i >= n)
            break;
        if (s[i] >= 0x80) {
            k = mpjson__utf8_len(s + i, n - i);
            if (k == 0) {
                mpjson__puts(o, "\\ufffd");
                i++;
            } else {
                mpjson__put(o, str + i, k);
                i += k;
            }
            continue;
        }
        switch (s[i]) {
        case '"':
            mpjson__puts(o, "\\\"");
            break;
        case '\\':
            mpjson__puts(o, "\\\\");
            break;
        case '\n':
            mpjson__puts(o, "\\n");
            break;
        case '\r':
            mpjson__puts(o, "\\r");
            break;
        case '\t':
            mpjson__puts(o, "\\t");
            break;
        case '\b':
            mpjson__puts(o, "\\b");
            break;
        case '\f':
            mpjson__puts(o, "\\f");
            break;
        default:
            snprintf(esc, sizeof esc, "\\u%04x", s[i]);
            mpjson__puts(o, esc);
        }
        i++;
    }
    mpjson__put(o, "\"", 1);
}

static void
mpjson__put_b64(struct mpjson__out *o, const unsigned char *p, size_t n)
{
    char q[4];
    size_t i;
    uint32_t v;

    for (i = 0; i + 2 < n; i += 3) {
        v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        q[0] = mpjson__b64[v >> 18];
        q[1] = mpjson__b64[(v >> 12) & 63];
        q[2] = mpjson__b64[(v >> 6) & 63];
        q[3] = mpjson__b64[v & 63];
        mpjson__put(o, q, 4);
    }
    if (n - i == 1) {
        v = (uint32_t)p[i] << 16;
        q[0] = mpjson__b64[v >> 18];
        q[1] = mpjson__b64[(v >> 12) & 63];
        q[2] = q[3] = '=';
        mpjson__put(o, q, 4);
    } else if (n - i == 2) {
        v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        q[0] = mpjson__b64[v >> 18];
        q[1] = mpjson__b64[(v >> 12) & 63];
        q[2] = mpjson__b64[(v >> 6) & 63];
        q[3] = '=';
        mpjson__put(o, q, 4);
    }
}

/* The shortest %g form that reads back as the same double, always with a '.'
 * or an exponent so it reads back as a real, not an integer. */
static void
mpjson__put_double(struct mpjson__out *o, double d, bool single)
{
    char buf[40];
    int prec;

    if (isnan(d) || isinf(d)) {
        mpjson__puts(o, "null");
        return;
    }
    for (prec = single ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (single ? (float)strtod(buf, NULL) == (float)d
                   : strtod(buf, NULL) == d)
            break;
    }
    if (strpbrk(buf, ".e") == NULL)
        strcat(buf, ".0");
    mpjson__puts(o, buf);
}

static void
mpjson__newline(struct mpjson__out *o, int depth)
{
    int i;

    if (!(o->flags & MPJSON_PRETTY))
        return;
    mpjson__put(o, "\n", 1);
    for (i = 0; i < depth; i++)
        mpjson__put(o, "  ", 2);
}

static int mpjson__dump(struct mpjson__out *o, const msgpack_object *obj,
                        int depth);

static int
mpjson__dump_ext(struct mpjson__out *o, const msgpack_object *obj)
{
    const char *p = obj->via.ext.ptr;
    size_t n = obj->via.ext.size;
    unsigned char *mag;
    char buf[64], *dec;
    int64_t sec;
    uint32_t nsec;
    bool neg;

    /* A timestamp no date text can say, or an ext its codec refuses, goes
     * out as {"$ext": ...}, which packs back to the same bytes. */
    if (obj->via.ext.type == PROTO_EXT_TIMESTAMP &&
        proto_ext_timestamp_decode(p, n, &sec, &nsec, NULL) == 0 &&
        mpjson__format_date(sec, nsec, buf, sizeof buf) == 0) {
        mpjson__puts(o, "{\"$date\":");
        if (o->flags & MPJSON_PRETTY)
            mpjson__put(o, " ", 1);
        mpjson__put_string(o, buf, strlen(buf));
        mpjson__puts(o, "}");
        return 0;
    }
    if (obj->via.ext.type == PROTO_EXT_BIGINT) {
        mag = malloc(n + 1);
        if (mag == NULL)
            return -ENOMEM;
        if (proto_ext_bigint_decode(p, n, &neg, mag, &n, NULL) == 0) {
            dec = mpjson__bigint_to_dec(neg, mag, n);
            free(mag);
            if (dec == NULL)
                return -ENOMEM;
            mpjson__puts(o, (o->flags & MPJSON_PRETTY) ? "{\"$bigint\": "
                                                       : "{\"$bigint\":");
            mpjson__put_string(o, dec, strlen(dec));
            mpjson__puts(o, "}");
            free(dec);
            return 0;
        }
        free(mag);
        n = obj->via.ext.size;
    }
    snprintf(buf, sizeof buf,
             (o->flags & MPJSON_PRETTY) ? "{\"$ext\": [%d, \""
                                        : "{\"$ext\":[%d,\"",
             obj->via.ext.type);
    mpjson__puts(o, buf);
    mpjson__put_b64(o, (const unsigned char *)p, n);
    mpjson__puts(o, "\"]}");
    return 0;
}

/* A map key: str as it is, anything else as its compact JSON text. That text
 * is escaped once more for each key it sits in, which doubles its length: a
 * map keyed by a map keyed by a map ... would make 40 bytes of msgpack into
 * gigabytes of JSON. So keys inside keys stop at MPJSON_DUMP_MAX_KEY_DEPTH
 * (at most 2^8 times the input). */
#define MPJSON_DUMP_MAX_KEY_DEPTH 8
static int
mpjson__dump_key(struct mpjson__out *o, const msgpack_object *key, int depth)
{
    struct mpjson__out k = {0};
    int r;

    if (key->type == MSGPACK_OBJECT_STR) {
        mpjson__put_string(o, key->via.str.ptr, key->via.str.size);
        return 0;
    }
    if (o->key_depth >= MPJSON_DUMP_MAX_KEY_DEPTH)
        return -ELOOP;
    k.key_depth = o->key_depth + 1;
    r = mpjson__dump(&k, key, depth);
    if (r == 0 && k.failed)
        r = -ENOMEM;
    if (r == 0)
        mpjson__put_string(o, k.buf, k.len);
    free(k.buf);
    return r;
}

static int
mpjson__dump(struct mpjson__out *o, const msgpack_object *obj, int depth)
{
    char buf[32];
    uint32_t i;
    int r;

    switch (obj->type) {
    case MSGPACK_OBJECT_NIL:
        mpjson__puts(o, "null");
        return 0;
    case MSGPACK_OBJECT_BOOLEAN:
        mpjson__puts(o, obj->via.boolean ? "true" : "false");
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(buf, sizeof buf, "%" PRIu64, obj->via.u64);
        mpjson__puts(o, buf);
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(buf, sizeof buf, "%" PRId64, obj->via.i64);
        mpjson__puts(o, buf);
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
        mpjson__put_double(o, obj->via.f64, true);
        return 0;
    case MSGPACK_OBJECT_FLOAT64:
        mpjson__put_double(o, obj->via.f64, false);
        return 0;
    case MSGPACK_OBJECT_STR:
        mpjson__put_string(o, obj->via.str.ptr, obj->via.str.size);
        return 0;
    case MSGPACK_OBJECT_BIN:
        mpjson__puts(o, (o->flags & MPJSON_PRETTY) ? "{\"$bin\": \""
                                                   : "{\"$bin\":\"");
        mpjson__put_b64(o, (const unsigned char *)obj->via.bin.ptr,
                        obj->via.bin.size);
        mpjson__puts(o, "\"}");
        return 0;
    case MSGPACK_OBJECT_EXT:
        return mpjson__dump_ext(o, obj);
    case MSGPACK_OBJECT_ARRAY:
        if (depth >= MPJSON_DUMP_MAX_DEPTH)
            return -ELOOP;
        mpjson__put(o, "[", 1);
        for (i = 0; i < obj->via.array.size; i++) {
            if (i > 0)
                mpjson__put(o, ",", 1);
            mpjson__newline(o, depth + 1);
            r = mpjson__dump(o, &obj->via.array.ptr[i], depth + 1);
            if (r != 0)
                return r;
        }
        if (obj->via.array.size > 0)
            mpjson__newline(o, depth);
        mpjson__put(o, "]", 1);
        return 0;
    case MSGPACK_OBJECT_MAP:
        if (depth >= MPJSON_DUMP_MAX_DEPTH)
            return -ELOOP;
        mpjson__put(o, "{", 1);
        for (i = 0; i < obj->via.map.size; i++) {
            if (i > 0)
                mpjson__put(o, ",", 1);
            mpjson__newline(o, depth + 1);
            r = mpjson__dump_key(o, &obj->via.map.ptr[i].key, depth + 1);
            if (r != 0)
                return r;
            mpjson__puts(o, (o->flags & MPJSON_PRETTY) ? ": " : ":");
            r = mpjson__dump(o, &obj->via.map.ptr[i].val, depth + 1);
            if (r != 0)
                return r;
        }
        if (obj->via.map.size > 0)
            mpjson__newline(o, depth);
        mpjson__put(o, "}", 1);
        return 0;
    }
    return -EINVAL;
}

char *
mpjson_dump(const msgpack_object *obj, int flags)
{
    struct mpjson__out o = {0};

    o.flags = flags;
    if (mpjson__dump(&o, obj, 0) != 0 || o.failed) {
        free(o.buf);
        return NULL;
    }
    return o.buf;
}

static uint64_t
mpjson__be(const unsigned char *p, unsigned n)
{
    uint64_t v = 0;
    unsigned i;

    for (i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * Whether buf can hold one msgpack value: every container's count fits in
 * the bytes left after its header (each element takes at least one byte).
 * msgpack-c reserves room for a container's elements as soon as it reads the
 * count, so without this a 5-byte array32 header asks for ~100 GB. No
 * allocation, no recursion: one count of the items still due.
 */
static bool
mpjson__plausible(const unsigned char *p, size_t len)
{
    size_t pos = 0;
    uint64_t due = 1, items, skip;
    unsigned c, head, n;

    while (due > 0) {
        if (pos >= len)
            return false;
        c = p[pos++];
        due--;
        items = skip = 0;
        head = 0;
        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
            ; /* fixint, nil, bool */
        else if (c <= 0x8f)
            items = 2u * (c & 0x0f); /* fixmap */
        else if (c <= 0x9f)
            items = c & 0x0f; /* fixarray */
        else if (c <= 0xbf)
            skip = c & 0x1f;                          /* fixstr */
        else if (c == 0xc4 || c == 0xc5 || c == 0xc6) /* bin 8/16/32 */
            head = 1u << (c - 0xc4);
        else if (c == 0xd9 || c == 0xda || c == 0xdb) /* str 8/16/32 */
            head = 1u << (c - 0xd9);
        else if (c == 0xc7 || c == 0xc8 || c == 0xc9) { /* ext: + type */
            head = 1u << (c - 0xc7);
            skip = 1;
        } else if (c == 0xca || c == 0xcb) /* float 32/64 */
            skip = c == 0xca ? 4 : 8;
        else if (c >= 0xcc && c <= 0xd3) /* uint, int 8..64 */
            skip = 1u << ((c - 0xcc) & 3);
        else if (c >= 0xd4 && c <= 0xd8) /* fixext 1..16: + type */
            skip = 1 + (1u << (c - 0xd4));
        else if (c >= 0xdc && c <= 0xdf) { /* array, map 16/32 */
            n = (c & 1) ? 4 : 2;
            if (len - pos < n)
                return false;
            items = mpjson__be(p + pos, n) * (c >= 0xde ? 2 : 1);
            pos += n;
        } else
            return false; /* 0xc1, never used */
        if (head > 0) {
            if (len - pos < head)
                return false;
            skip += mpjson__be(p + pos, head);
            pos += head;
        }
        if (skip > len - pos)
            return false;
        pos += (size_t)skip;
        due += items;
        if (due > len - pos)
            return false;
    }
    return pos == len;
}

char *
mpjson_dump_bytes(const char *buf, size_t len, int flags)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    char *s = NULL;

    if (!mpjson__plausible((const unsigned char *)buf, len))
        return NULL;
    if (!msgpack_zone_init(&zone, 2048))
        return NULL;
    if (msgpack_unpack(buf, len, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS)
        s = mpjson_dump(&obj, flags);
    msgpack_zone_destroy(&zone);
    return s;
}
