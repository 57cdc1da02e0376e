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
#include "mpjson_internal.h"

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
                for (k = j;
                     k < len && strchr(" \t\r\n", s[k]) != NULL && s[k] != '\0';
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
