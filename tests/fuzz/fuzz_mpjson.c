/*
 * libFuzzer target for common/mpjson.c, both ways, on every input:
 *
 * As JSON text: mpjson_pack must not crash, must accept only what jansson
 * accepts (integers beyond int64 aside, which mpjson reads itself), and must
 * give a cause when it refuses. What it packs is dumped (compact and pretty)
 * and packed again: that must succeed and give the same bytes.
 *
 * As msgpack: mpjson_dump_bytes gives NULL exactly when the bytes are not one
 * whole value (or nest past the dump's limit); its text packs back to the same
 * bytes as msgpack_pack_object re-packs the value, whenever the value is one
 * JSON can carry. Where it cannot (see `exact` below for the list) the text
 * must still pack, or be refused with a cause, and what it packs is stable.
 *
 * Exceptions to the byte-for-byte round trip (documented, not bugs):
 * - float32 comes back as float64 (same value); NaN and ±Infinity as nil;
 * - non-str map keys are stringified, keys with a NUL byte are refused by
 *   jansson, duplicate keys collapse to the last;
 * - strings that are not UTF-8 come back with U+FFFD;
 * - a one-key map whose key is "$bin", "$date", "$bigint" or "$ext" is read
 *   as that special form;
 * - a timestamp ext not in its shortest form comes back in it; a bigint ext
 *   that fits 64 bits comes back as an int, one with a redundant sign byte
 *   (which the codec refuses) as {"$ext": ...}, the same bytes;
 * - a string starting with "\0#" next to an integer above INT64_MAX is
 *   refused (the pre-scan's marker strings);
 * - more than MPJSON_MAX_DEPTH levels of brackets in the text are refused
 *   (a $bin, $date or $bigint is one level, a $ext two);
 * - more than 8 non-str keys inside each other do not dump at all (NULL).
 * Anything inconsistent aborts, which libFuzzer reports as a crash.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>
#include <msgpack/timestamp.h>

#include "fuzz_msgpack.h"
#include "mpjson.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_mpjson: check failed: %s (line %d)\n",       \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

#define CAUSE_MAX 256

/* Packs JSON text; 0 or the error, the bytes in *out (reset first). */
static int
pack_text(const char *text, size_t len, msgpack_sbuffer *out)
{
    msgpack_packer pk;
    char cause[CAUSE_MAX];
    int r;

    msgpack_sbuffer_clear(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    memset(cause, 'x', sizeof cause);
    r = mpjson_pack(&pk, text, len, cause);
    CHECK(r == 0 || r == -EINVAL);
    CHECK(memchr(cause, '\0', sizeof cause) != NULL);
    if (r == 0)
        CHECK(out->size > 0);
    else
        CHECK(cause[0] != '\0');
    return r;
}

static bool
same(const msgpack_sbuffer *a, const msgpack_sbuffer *b)
{
    return a->size == b->size && memcmp(a->data, b->data, a->size) == 0;
}

/* Whether a timestamp or bigint ext is in the one form mpjson packs it in
 * (anything else reaches msgpack only through {"$ext": ...}). */
static bool
ext_canonical(const msgpack_object *o)
{
    const unsigned char *b = (const unsigned char *)o->via.ext.ptr;
    uint32_t n = o->via.ext.size;
    msgpack_timestamp ts;

    if (o->via.ext.type == -1 && msgpack_object_to_timestamp(o, &ts) &&
        ts.tv_nsec < 1000000000u) {
        uint32_t want;
        if ((ts.tv_sec >> 34) == 0)
            want = (((uint64_t)ts.tv_nsec << 34 | (uint64_t)ts.tv_sec) >> 32)
                       ? 8
                       : 4;
        else
            want = 12;
        return n == want;
    }
    if (o->via.ext.type == 1) {
        if (n == 0)
            return false;
        if (n > 1 && ((b[0] == 0 && !(b[1] & 0x80)) ||
                      (b[0] == 0xff && (b[1] & 0x80))))
            return false; /* a redundant sign byte */
        return n > 9 || (n == 9 && b[0] != 0);
    }
    return true;
}

static bool
valid_utf8(const unsigned char *s, size_t n)
{
    size_t i = 0, need, k;
    uint32_t cp;

    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if ((s[i] & 0xe0) == 0xc0) {
            need = 1;
            cp = s[i] & 0x1f;
        } else if ((s[i] & 0xf0) == 0xe0) {
            need = 2;
            cp = s[i] & 0x0f;
        } else if ((s[i] & 0xf8) == 0xf0) {
            need = 3;
            cp = s[i] & 0x07;
        } else {
            return false;
        }
        if (n - i - 1 < need)
            return false;
        for (k = 1; k <= need; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) ||
            (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += need + 1;
    }
    return true;
}

static bool
is_special_key(const msgpack_object *k)
{
    static const char *const names[] = {"$bin", "$date", "$bigint", "$ext"};
    size_t i;

    for (i = 0; i < sizeof names / sizeof names[0]; i++)
        if (k->via.str.size == strlen(names[i]) && k->via.str.size > 0 &&
            memcmp(k->via.str.ptr, names[i], k->via.str.size) == 0)
            return true;
    return false;
}

struct facts {
    bool exact;        /* no exception of the list above applies */
    bool canonical;    /* every ext in the form mpjson packs it in */
    bool marker_str;   /* a string starts with "\0#" */
    bool big_uint;     /* an integer above INT64_MAX */
    bool low;          /* survey: count the fewest brackets possible */
    int keys_in_keys;  /* longest chain of non-str keys inside such keys */
};

/* Walks a value, noting which exceptions apply; returns the bracket depth. */
static int
survey(const msgpack_object *o, struct facts *f, int in_keys)
{
    int d = 0, c;
    uint32_t i, j;

    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX)
            f->big_uint = true;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
        f->exact = false;
        return 0;
    case MSGPACK_OBJECT_FLOAT64:
        if (o->via.f64 != o->via.f64 || o->via.f64 - o->via.f64 != 0)
            f->exact = false; /* NaN, ±Infinity */
        return 0;
    case MSGPACK_OBJECT_STR:
        if (!valid_utf8((const unsigned char *)o->via.str.ptr,
                        o->via.str.size))
            f->exact = false;
        if (o->via.str.size >= 2 && o->via.str.ptr[0] == '\0' &&
            o->via.str.ptr[1] == '#')
            f->marker_str = true;
        return 0;
    case MSGPACK_OBJECT_BIN:
        return 1;
    case MSGPACK_OBJECT_EXT:
        if (!ext_canonical(o)) {
            f->exact = false;
            f->canonical = false;
        }
        /* {"$date": ...} or {"$bigint": ...} is one level, {"$ext": [...]}
         * two; which one a timestamp gets is the dump's business. */
        if (o->via.ext.type == 1)
            return 1;
        return o->via.ext.type == -1 && f->low ? 1 : 2;
    case MSGPACK_OBJECT_ARRAY:
        for (i = 0; i < o->via.array.size; i++)
            if ((c = survey(&o->via.array.ptr[i], f, in_keys)) > d)
                d = c;
        return d + 1;
    case MSGPACK_OBJECT_MAP:
        for (i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR ||
                (k->via.str.size > 0 &&
                 memchr(k->via.str.ptr, '\0', k->via.str.size) != NULL) ||
                (o->via.map.size == 1 && is_special_key(k))) {
                f->exact = false;
            } else {
                for (j = 0; j < i; j++) {
                    const msgpack_object *e = &o->via.map.ptr[j].key;
                    if (e->type == MSGPACK_OBJECT_STR &&
                        e->via.str.size == k->via.str.size &&
                        (k->via.str.size == 0 ||
                         memcmp(e->via.str.ptr, k->via.str.ptr,
                                k->via.str.size) == 0))
                        f->exact = false;
                }
            }
            /* A key that is not a str is a string of its own dump. */
            if (k->type != MSGPACK_OBJECT_STR && in_keys + 1 > f->keys_in_keys)
                f->keys_in_keys = in_keys + 1;
            (void)survey(k, f, in_keys + (k->type != MSGPACK_OBJECT_STR));
            if ((c = survey(&o->via.map.ptr[i].val, f, in_keys)) > d)
                d = c;
        }
        return d + 1;
    default:
        return 0;
    }
}

/* The facts about packed bytes (exactly one value). */
static struct facts
facts_of(const msgpack_sbuffer *b)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    struct facts f = {true, true, false, false, false, 0};

    CHECK(msgpack_zone_init(&zone, 2048));
    CHECK(msgpack_unpack(b->data, b->size, &off, &zone, &obj) ==
          MSGPACK_UNPACK_SUCCESS);
    (void)survey(&obj, &f, 0);
    msgpack_zone_destroy(&zone);
    return f;
}

/*
 * Bytes mpjson packed: dumping them and packing the dump gives them back
 * (the same bytes when their exts are canonical, else at least the same
 * text), compact or pretty.
 */
static void
check_stable(const msgpack_sbuffer *packed)
{
    msgpack_sbuffer again, third;
    struct facts f = facts_of(packed);
    char *text, *pretty, *text2;
    int r;

    msgpack_sbuffer_init(&again);
    msgpack_sbuffer_init(&third);
    text = mpjson_dump_bytes(packed->data, packed->size, 0);
    pretty = mpjson_dump_bytes(packed->data, packed->size, MPJSON_PRETTY);
    CHECK(text != NULL && pretty != NULL);
    r = pack_text(text, strlen(text), &again);
    if (r != 0 && f.marker_str && f.big_uint) {
        /* The known refusal: a "\u0000#" string next to a big integer
         * (which may have come from a {"$bigint": ...} the first time). */
        goto out;
    }
    if (r != 0)
        fprintf(stderr, "fuzz_mpjson: the dump %.300s does not pack back\n",
                text);
    CHECK(r == 0);
    if (f.canonical) {
        if (!same(packed, &again))
            fprintf(stderr, "fuzz_mpjson: %.300s packs differently\n", text);
        CHECK(same(packed, &again));
    } else {
        /* Normalized once ({"$bigint": "5"} packs as 5), then stable. */
        text2 = mpjson_dump_bytes(again.data, again.size, 0);
        CHECK(text2 != NULL);
        r = pack_text(text2, strlen(text2), &third);
        free(text2);
        if (r != 0) {
            struct facts g = facts_of(&again);
            CHECK(g.marker_str && g.big_uint); /* the known refusal */
            goto out;
        }
        CHECK(same(&again, &third));
    }
    CHECK(pack_text(pretty, strlen(pretty), &third) == 0);
    CHECK(same(&again, &third));
out:
    free(text);
    free(pretty);
    msgpack_sbuffer_destroy(&again);
    msgpack_sbuffer_destroy(&third);
}

/* The input as JSON text. */
static void
fuzz_text(const char *data, size_t size)
{
    msgpack_sbuffer out;
    json_error_t jerr;
    json_t *root;
    int r;

    msgpack_sbuffer_init(&out);
    r = pack_text(data, size, &out);
    root = json_loadb(data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (r == 0) {
        /* jansson refuses integers past int64; mpjson reads those up to
         * UINT64_MAX itself. Nothing else it refuses may pass. */
        if (root == NULL)
            fprintf(stderr, "fuzz_mpjson: accepted what jansson refuses: %s\n",
                    jerr.text);
        CHECK(root != NULL ||
              json_error_code(&jerr) == json_error_numeric_overflow);
        check_stable(&out);
    }
    json_decref(root);
    msgpack_sbuffer_destroy(&out);
}

/* The input as msgpack. */
static void
fuzz_msgpack(const char *data, size_t size)
{
    msgpack_zone zone;
    msgpack_object obj;
    msgpack_sbuffer canon, out;
    msgpack_packer pk;
    size_t off = 0;
    msgpack_unpack_return ur;
    struct facts f = {true, true, false, false, false, 0};
    char *text;
    int r, most, least;

    text = mpjson_dump_bytes(data, size, 0);
    if (!fuzz_plausible(data, size)) {
        CHECK(text == NULL);
        return;
    }
    CHECK(msgpack_zone_init(&zone, 2048));
    ur = msgpack_unpack(data, size, &off, &zone, &obj);
    if (ur != MSGPACK_UNPACK_SUCCESS) {
        CHECK(text == NULL);
        msgpack_zone_destroy(&zone);
        return;
    }
    most = survey(&obj, &f, 0);
    f.low = true;
    least = survey(&obj, &f, 0);
    /* The dump refuses more than 64 levels of arrays and maps (msgpack-c
     * does not unpack that deep anyway) and more than 8 non-str keys inside
     * each other (each one doubles the escaping of the text inside it). */
    if (f.keys_in_keys > 8) {
        CHECK(text == NULL);
        msgpack_zone_destroy(&zone);
        return;
    }
    CHECK(text != NULL);
    if (f.marker_str && f.big_uint)
        f.exact = false;

    msgpack_sbuffer_init(&canon);
    msgpack_sbuffer_init(&out);
    msgpack_packer_init(&pk, &canon, msgpack_sbuffer_write);
    CHECK(msgpack_pack_object(&pk, obj) == 0);
    r = pack_text(text, strlen(text), &out);
    if (least > MPJSON_MAX_DEPTH) {
        CHECK(r == -EINVAL);
    } else if (f.exact && most <= MPJSON_MAX_DEPTH) {
        if (r != 0 || !same(&canon, &out))
            fprintf(stderr, "fuzz_mpjson: %.300s does not pack back (%d)\n",
                    text, r);
        CHECK(r == 0);
        CHECK(same(&canon, &out));
    }
    if (r == 0)
        check_stable(&out);
    free(text);
    msgpack_sbuffer_destroy(&canon);
    msgpack_sbuffer_destroy(&out);
    msgpack_zone_destroy(&zone);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_text((const char *)data, size);
    fuzz_msgpack((const char *)data, size);
    return 0;
}
