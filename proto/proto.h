/*
 * proto: msgpack-RPC for jshost (docs/protocol.md). Bytes in, messages out;
 * never touches a socket, so manager, worker and clients share it and it can be
 * tested and fuzzed byte by byte. methods.h names the methods, notifications
 * and keys; check.h checks each method's params.
 *
 *   request       [0, msgid:u32, method:str, params:array]
 *   response      [1, msgid:u32, error:map|nil, result:any]
 *   notification  [2, method:str, params:array]
 *
 * Functions return 0 (or a count) on success and a negative errno on failure;
 * where the caller needs words, a `char *cause` buffer of PROTO_CAUSE_MAX bytes
 * is filled. Nothing here prints, exits or aborts.
 */
#ifndef JSHOST_PROTO_H
#define JSHOST_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PROTO_VERSION 1

/* Default limit on one message's encoded size (docs/protocol.md), settable per
 * reader. */
#define PROTO_MAX_MESSAGE_DEFAULT ((size_t)64 * 1024 * 1024)

/*
 * msgpack-c 4.0's unpacker holds 32 levels of containers
 * (MSGPACK_EMBED_STACK_SIZE) and reports a 33rd as NOMEM; the reader turns that
 * into -EPROTO. A whole message may nest PROTO_MAX_DEPTH levels. A value placed
 * inside a message (call data, a result) may nest PROTO_VALUE_MAX_DEPTH levels,
 * which is what still fits when it sits at the deepest place the protocol puts
 * values (request params[2]).
 */
#define PROTO_MAX_DEPTH 32
#define PROTO_VALUE_MAX_DEPTH 30

/* Room for an error's words (`cause`). */
#define PROTO_CAUSE_MAX 256

enum proto_kind {
    PROTO_REQUEST = 0,
    PROTO_RESPONSE = 1,
    PROTO_NOTIFICATION = 2,
};

/* Error types (docs/protocol.md, "Errors"), in its order. The wire form is the
 * name string. */
enum proto_errtype {
    PROTO_ERR_NONE = 0,
    PROTO_ERR_JS,               /* "JSError" */
    PROTO_ERR_TIMEOUT,          /* "TimeoutError" */
    PROTO_ERR_MEMORY,           /* "MemoryError" */
    PROTO_ERR_NOT_FOUND,        /* "NotFound" */
    PROTO_ERR_INVALID_ARGUMENT, /* "InvalidArgument" */
    PROTO_ERR_CONFIG,           /* "ConfigError" */
    PROTO_ERR_HOST_CRASHED,     /* "HostCrashed" */
    PROTO_ERR_HOST_UNAVAILABLE, /* "HostUnavailable" */
    PROTO_ERR_OVERLOADED,       /* "Overloaded" */
    PROTO_ERR_PROTOCOL,         /* "ProtocolError" */
    PROTO_ERR_CANCELLED,        /* "Cancelled" */
};

/* "JSError", ... ; NULL for PROTO_ERR_NONE or out of range. */
const char *proto_errtype_name(enum proto_errtype type);
/* The type named by a wire string; PROTO_ERR_NONE when unknown. */
enum proto_errtype proto_errtype_parse(const char *s, size_t len);

/*
 * An error object (the `error` of a response). Strings need not be
 * NUL-terminated when read from a message (lengths given); NULL pointer = nil.
 * When packing, a NULL string packs as nil and a _len of 0 with a non-NULL
 * pointer means strlen().
 */
struct proto_error {
    enum proto_errtype type;
    const char *message;
    size_t message_len;
    const char *name;
    size_t name_len;
    const char *stack;
    size_t stack_len;
    const char *logfile;
    size_t logfile_len;
};

/*
 * A message's head and where its parts start in its bytes, for a message not
 * unpacked: one a relay forwards (proto_reader_peek) or one taken as bytes
 * (proto_reader_take). The head is validated as proto_reader_next validates
 * it; the params, error and result are only known to be well-formed msgpack
 * within the limits. Offsets count from `bytes`.
 */
#define PROTO_RAW_PARAMS 6
struct proto_raw {
    enum proto_kind kind;
    uint32_t msgid;
    const char *method; /* request and notification, not NUL-terminated */
    size_t method_len;
    const char *bytes; /* the whole message, in the reader's buffer */
    size_t size;
    /* Request and notification: the params array's head, its item count and
     * where its first PROTO_RAW_PARAMS items start. Response: error_at and
     * result_at. */
    size_t params_at;
    uint32_t nparams;
    size_t param_at[PROTO_RAW_PARAMS];
    size_t error_at, result_at;
    /* Announced by a size hint: taken whole, its items unread (they are
     * read through if it is ever unpacked). */
    bool hinted;
};

/* One whole msgpack item inside a message's bytes; len 0 = absent. */
struct proto_span {
    const char *ptr;
    size_t len;
};

/*
 * One message as read, validated: kind, msgid range, method is a str, params
 * an array, a response's error is nil or a map. proto_reader_next unpacks it:
 * every pointer (method, objects) points into the message's zone and is valid
 * until proto_msg_release(). proto_reader_take leaves it as bytes: `raw` holds
 * them, the objects stay nil, and the params are read from the bytes by the
 * same proto_param_* helpers and checkers (check.h).
 */
struct proto_msg {
    enum proto_kind kind;
    uint32_t msgid;     /* request and response */
    const char *method; /* request and notification, not NUL-terminated */
    size_t method_len;
    msgpack_object params; /* request and notification: always an array */
    msgpack_object error;  /* response: nil or map */
    msgpack_object result; /* response */
    msgpack_object root;   /* the whole message */
    size_t size;           /* encoded size in bytes */
    msgpack_zone *zone;    /* owned; freed by proto_msg_release() (may be
                              NULL when the message needed no memory) */
    struct proto_raw raw;  /* taken as bytes: raw.bytes is set */
};

void proto_msg_release(struct proto_msg *msg);
/* True when msg->method equals the NUL-terminated name. */
bool proto_msg_is(const struct proto_msg *msg, const char *method);

/*
 * The streaming reader: one per connection, wrapping one msgpack_unpacker.
 * Bytes go in either by copy (proto_reader_feed) or, with no copy, by reading
 * straight into the reader's buffer (proto_reader_buffer + proto_reader_fill,
 * as a libuv alloc_cb/read_cb pair would).
 */
struct proto_reader;

/* max_message 0 = PROTO_MAX_MESSAGE_DEFAULT. NULL when out of memory. */
struct proto_reader *proto_reader_new(size_t max_message);
void proto_reader_free(struct proto_reader *r);

/*
 * Copies len bytes in. 0, or -ENOMEM. Bytes are checked as they arrive: once
 * the stream has broken (a message too big, too deep, not msgpack) further
 * bytes are dropped, so a peer cannot make the buffer grow; proto_reader_next
 * reports it after handing out the whole messages that came before the break.
 */
int proto_reader_feed(struct proto_reader *r, const char *buf, size_t len);
/* Room for at least `want` bytes at *buf (*len may be larger). 0, or -ENOMEM.
 */
int proto_reader_buffer(struct proto_reader *r, size_t want, char **buf,
                        size_t *len);
/* Declares that n bytes were written at the place proto_reader_buffer gave. */
void proto_reader_fill(struct proto_reader *r, size_t n);

/*
 * Takes the next whole message.
 *   1  a message is in *msg (release it with proto_msg_release)
 *   0  more bytes are needed
 *  <0  the stream is broken and the connection must be closed (after an error
 *      notification, see proto_write_protocol_error):
 *      -EPROTO    not msgpack, too deep, or not a msgpack-RPC message
 *      -EMSGSIZE  a message grew past the size limit
 *      -ENOMEM    out of memory
 *      `cause` (PROTO_CAUSE_MAX bytes, may be NULL) says what was wrong.
 * After an error every further call returns the same error.
 */
int proto_reader_next(struct proto_reader *r, struct proto_msg *msg,
                      char *cause);

/*
 * Takes the next whole message without unpacking it: as proto_reader_next,
 * but *msg is left as bytes (msg->raw), with no tree and no zone. Its bytes
 * stay in the reader's buffer, valid until bytes are next added to r
 * (proto_reader_feed, _buffer, _fill) or r is freed.
 */
int proto_reader_take(struct proto_reader *r, struct proto_msg *msg,
                      char *cause);
/* A response taken as bytes: its error and its result, each one item. */
struct proto_span proto_msg_error_bytes(const struct proto_msg *msg);
struct proto_span proto_msg_result_bytes(const struct proto_msg *msg);
/* The number of params of a request or notification, either form. */
uint32_t proto_msg_nparams(const struct proto_msg *msg);

/*
 * Size hints: a peer that packs each message whole before sending it can say
 * how long the next one is, with [2, "size", [n]] in one fixed form
 * (PROTO_HINT_BYTES, n as a uint32). A reader told to take them
 * (proto_reader_take_hints) then files the next n bytes as one message
 * without reading them: the manager forwards a worker's big results at the
 * cost of a copy, however many items they hold. Only for a peer that is
 * trusted to be right (the manager's own workers): the bytes are not
 * checked until someone unpacks them (proto_reader_next checks them whole
 * first), so a relay passes on what the peer wrote, and a wrong n breaks the
 * stream. A hint that arrives split across reads, or announces 0 bytes, is
 * dropped and the message after it read as usual; a reader not taking hints
 * hands them out as notifications.
 */
#define PROTO_HINT_BYTES 13
void proto_size_hint(char hint[PROTO_HINT_BYTES], uint32_t n);
void proto_reader_take_hints(struct proto_reader *r);

/* Bytes buffered and not yet handed out as messages. */
size_t proto_reader_pending(const struct proto_reader *r);
/* Of those, the bytes of the message still arriving (0 between messages,
 * and once the stream has broken). */
size_t proto_reader_partial(const struct proto_reader *r);

/*
 * Looks at the next whole message seen as bytes, without unpacking it: what
 * a relay needs to forward it with a new header and the rest untouched (the
 * manager's calls). 1 and *raw filled (its bytes stay valid
 * until the next call on r), 0 when more bytes are needed, <0 as
 * proto_reader_next when the stream is broken or the head is not a
 * msgpack-RPC message. The message stays in the reader: proto_reader_skip
 * drops it, proto_reader_next unpacks it.
 */
int proto_reader_peek(struct proto_reader *r, struct proto_raw *raw,
                      char *cause);
/* Drops the message proto_reader_peek returned. */
void proto_reader_skip(struct proto_reader *r);

/*
 * Looks at every whole message buffered and not yet handed out, in order,
 * taking none: fn(arg, raw) for each (raw's bytes valid during the call only)
 * until fn returns false or a message's head is not msgpack-RPC (that one is
 * reported by proto_reader_next when it is reached). For a server busy with
 * one message that must still see what came after it (a cancel). Returns how
 * many messages fn saw.
 */
typedef bool (*proto_scan_fn)(void *arg, const struct proto_raw *raw);
size_t proto_reader_scan(struct proto_reader *r, proto_scan_fn fn, void *arg);

/*
 * A pull reader over msgpack bytes: one item's head at a time (a container's
 * count, not its items), no allocation. Signed encodings of values >= 0 read
 * as PROTO_T_UINT, as msgpack-c reads them.
 */
enum proto_item_type {
    PROTO_T_NIL,
    PROTO_T_BOOL,
    PROTO_T_UINT,
    PROTO_T_INT, /* negative */
    PROTO_T_FLOAT32,
    PROTO_T_FLOAT64,
    PROTO_T_STR,
    PROTO_T_BIN,
    PROTO_T_ARRAY,
    PROTO_T_MAP,
    PROTO_T_EXT,
};

struct proto_item {
    enum proto_item_type type;
    union {
        bool b;
        uint64_t u;
        int64_t i;
        double f;
    } v;
    const char *ptr; /* str, bin, ext: the payload */
    uint32_t len;    /* str, bin, ext: bytes; array: items; map: pairs */
    int8_t ext_type;
};

struct proto_cur {
    const uint8_t *p, *end;
};

void proto_cur_init(struct proto_cur *c, const char *buf, size_t len);
/* proto_cur_next's decoder; call proto_cur_next. */
int proto__cur_next(struct proto_cur *c, struct proto_item *it);
/*
 * Reads the next item's head and moves past it (past a str's bytes, not past
 * a container's items). 0, or -EPROTO when the bytes end first or are not
 * msgpack. Inline for the one-byte heads most values are made of (fixints,
 * fixstr, fixmap, fixarray, nil, booleans), which a worker converting a call's
 * data reads once per item.
 */
static inline int
proto_cur_next(struct proto_cur *c, struct proto_item *it)
{
    uint8_t b;

    if (c->p >= c->end)
        return proto__cur_next(c, it);
    b = *c->p;
    it->v.u = 0;
    it->ptr = NULL;
    it->len = 0;
    it->ext_type = 0;
    if (b <= 0x7f) {
        it->type = PROTO_T_UINT;
        it->v.u = b;
    } else if (b >= 0xe0) {
        it->type = PROTO_T_INT;
        it->v.i = (int8_t)b;
    } else if (b <= 0x8f) {
        it->type = PROTO_T_MAP;
        it->len = b & 0x0fu;
    } else if (b <= 0x9f) {
        it->type = PROTO_T_ARRAY;
        it->len = b & 0x0fu;
    } else if (b <= 0xbf) {
        uint32_t n = b & 0x1fu;

        if ((size_t)(c->end - c->p) <= n)
            return proto__cur_next(c, it); /* says it ends early */
        it->type = PROTO_T_STR;
        it->ptr = (const char *)c->p + 1;
        it->len = n;
        c->p += n;
    } else if (b == 0xc0) {
        it->type = PROTO_T_NIL;
    } else if (b == 0xc2 || b == 0xc3) {
        it->type = PROTO_T_BOOL;
        it->v.b = b == 0xc3;
    } else {
        return proto__cur_next(c, it);
    }
    c->p++;
    return 0;
}
/* Moves past one whole item, containers included. 0 or -EPROTO. */
int proto_cur_skip(struct proto_cur *c);
/* "a string", "an integer", ... for words about what was found. */
const char *proto_item_kind(const struct proto_item *it);

/*
 * Validation helpers for a request's params, each filling `cause` with words
 * that name the parameter, e.g. "params[1] (function): expected a string, got
 * an integer". They return 0 or -EINVAL. `index` counts from 0; `what` names
 * it.
 */
int proto_params_count(const struct proto_msg *msg, uint32_t min, uint32_t max,
                       char *cause);
int proto_param_str(const struct proto_msg *msg, uint32_t index,
                    const char *what, const char **s, size_t *len, char *cause);
/* A str, or nil (then *s = NULL, *len = 0). */
int proto_param_str_or_nil(const struct proto_msg *msg, uint32_t index,
                           const char *what, const char **s, size_t *len,
                           char *cause);
int proto_param_uint(const struct proto_msg *msg, uint32_t index,
                     const char *what, uint64_t *v, char *cause);
/*
 * The three below hand out an unpacked message's objects; a message taken as
 * bytes has none, and gets a stand-in of the same type (nil, an empty map or
 * array): read its values through the checkers' spans (check.h).
 */
/* The object itself, any type; a missing trailing param gives nil. */
int proto_param_any(const struct proto_msg *msg, uint32_t index,
                    const msgpack_object **o, char *cause);
/* A map or nil/missing (then *o points to a static nil object). */
int proto_param_map(const struct proto_msg *msg, uint32_t index,
                    const char *what, const msgpack_object **o, char *cause);
int proto_param_array(const struct proto_msg *msg, uint32_t index,
                      const char *what, const msgpack_object **o, char *cause);

/*
 * Looks up a str key in a map object. NULL when absent or `map` is not a map.
 */
const msgpack_object *proto_map_get(const msgpack_object *map, const char *key);
/* An options map's unsigned integer, e.g. {"timeout_ms": n}: 0 and *v set,
 * 1 when absent (or nil), -EINVAL with cause when of another type. */
int proto_opt_uint(const msgpack_object *map, const char *key, uint64_t *v,
                   char *cause);

/*
 * Looks up a str key in the map whose bytes are `map` (one whole item): 1 and
 * *val set to that key's value (one whole item), 0 when absent or `map` is not
 * a map, -EPROTO when the bytes end first or are not msgpack.
 */
int proto_span_map_get(struct proto_span map, const char *key,
                       struct proto_span *val);

/* True when `o` is a str equal to the NUL-terminated `s`. */
bool proto_obj_streq(const msgpack_object *o, const char *s);
/* A newly malloc'd NUL-terminated copy of a str/bin object; NULL if not one or
 * out of memory. */
char *proto_obj_strdup(const msgpack_object *o);

/*
 * Reads a response's error map into *err (pointing into the message). Unknown
 * or missing "type" gives PROTO_ERR_PROTOCOL with the map's message. 0 or
 * -EPROTO when error is not a map.
 */
int proto_error_from_object(const msgpack_object *obj, struct proto_error *err);

/*
 * Writers. Each packs with a msgpack_packer, so the bytes land wherever the
 * packer writes (a msgpack_sbuffer, a libuv write buffer). They cannot fail
 * except as the packer's write callback fails; they return its result (0 or
 * <0).
 *
 * proto_write_request/_notification pack the message head including the params
 * array header for `nparams` elements: the caller then packs exactly nparams
 * objects. proto_write_result packs [1, msgid, nil, ] and the caller packs the
 * result object.
 */
int proto_write_request(msgpack_packer *pk, uint32_t msgid, const char *method,
                        uint32_t nparams);
int proto_write_notification(msgpack_packer *pk, const char *method,
                             uint32_t nparams);
int proto_write_result(msgpack_packer *pk, uint32_t msgid);
/* A message's head up to what a relay forwards as it came: `[1, msgid` of a
 * response (its error and result follow), `[0, msgid, method` of a request
 * (its params follow). proto_request_head: 0, or -ENOSPC for a method name
 * too long for the room (pack the request whole instead). */
struct proto_head {
    char bytes[48];
    size_t len;
};
void proto_response_head(struct proto_head *h, uint32_t msgid);
int proto_request_head(struct proto_head *h, uint32_t msgid,
                       const char *method);
int proto_write_error(msgpack_packer *pk, uint32_t msgid,
                      const struct proto_error *err);
/* Packs just the error map {"type","message","name","stack","logfile"}; all
 * five keys are always there (nil where NULL; PROTO_ERR_NONE packs a nil type).
 */
int proto_pack_error(msgpack_packer *pk, const struct proto_error *err);
/* A whole response with an error of `type` and printf-style message. */
int proto_write_errorf(msgpack_packer *pk, uint32_t msgid,
                       enum proto_errtype type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/*
 * The notification sent before closing a connection whose stream broke:
 * [2, "error", [{"type": "ProtocolError", "message": cause, ...}]].
 */
int proto_write_protocol_error(msgpack_packer *pk, const char *cause);

/* Packs a str from a NUL-terminated string (nil for NULL). */
int proto_pack_cstr(msgpack_packer *pk, const char *s);
/* Packs a str of len bytes. */
int proto_pack_strn(msgpack_packer *pk, const char *s, size_t len);
/* Appends bytes that are already msgpack (values forwarded as they came). */
int proto_pack_raw(msgpack_packer *pk, const char *bytes, size_t len);

#ifdef __cplusplus
}
#endif

#endif
