// Values across the boundary (docs/values.md): every row both ways, every error
// path, JSON.stringify parity and byte-identical round trips, through
// jsv::FromMsgpack / jsv::ToMsgpack on an isolate of the test's own.
#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "v8env.h"

#include "js_builtins.h"
#include "js_value.h"
#include "proto.h"

namespace
{

// --- msgpack helpers -------------------------------------------------------

std::string
Unhex(const char *hex)
{
    std::string out;
    int hi = -1;
    for (const char *p = hex; *p; p++) {
        int v;
        if (*p >= '0' && *p <= '9')
            v = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            v = *p - 'A' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out.push_back((char)(hi << 4 | v));
            hi = -1;
        }
    }
    return out;
}

std::string
Hex(const std::string &b)
{
    static const char d[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : b) {
        out.push_back(d[c >> 4]);
        out.push_back(d[c & 15]);
    }
    return out;
}

// A readable and exact view of a msgpack object: ints in decimal, floats
// marked (f: float64, f32:), strings quoted with non-ASCII bytes escaped, bin
// as b'hex', ext as ext(type,hex).
std::string
View(const msgpack_object &o)
{
    char buf[64];
    switch (o.type) {
    case MSGPACK_OBJECT_NIL:
        return "nil";
    case MSGPACK_OBJECT_BOOLEAN:
        return o.via.boolean ? "true" : "false";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return std::to_string(o.via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return std::to_string(o.via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        const char *tag = o.type == MSGPACK_OBJECT_FLOAT32 ? "f32:" : "f:";
        double d = o.via.f64;
        if (std::isnan(d))
            snprintf(buf, sizeof buf, "%snan", tag);
        else if (std::isinf(d))
            snprintf(buf, sizeof buf, "%s%sinf", tag, d < 0 ? "-" : "");
        else if (d == 0 && std::signbit(d))
            snprintf(buf, sizeof buf, "%s-0", tag);
        else
            snprintf(buf, sizeof buf, "%s%.17g", tag, d);
        return buf;
    }
    case MSGPACK_OBJECT_STR: {
        std::string s = "\"";
        for (uint32_t i = 0; i < o.via.str.size; i++) {
            unsigned char c = (unsigned char)o.via.str.ptr[i];
            if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
                snprintf(buf, sizeof buf, "\\x%02x", c);
                s += buf;
            } else {
                s.push_back((char)c);
            }
        }
        return s + "\"";
    }
    case MSGPACK_OBJECT_BIN:
        return "b'" + Hex(std::string(o.via.bin.ptr, o.via.bin.size)) + "'";
    case MSGPACK_OBJECT_EXT:
        return "ext(" + std::to_string(o.via.ext.type) + "," +
               Hex(std::string(o.via.ext.ptr, o.via.ext.size)) + ")";
    case MSGPACK_OBJECT_ARRAY: {
        std::string s = "[";
        for (uint32_t i = 0; i < o.via.array.size; i++)
            s += (i ? "," : "") + View(o.via.array.ptr[i]);
        return s + "]";
    }
    case MSGPACK_OBJECT_MAP: {
        std::string s = "{";
        for (uint32_t i = 0; i < o.via.map.size; i++)
            s += (i ? "," : "") + View(o.via.map.ptr[i].key) + ":" +
                 View(o.via.map.ptr[i].val);
        return s + "}";
    }
    }
    return "?";
}

std::string
ViewBytes(const std::string &bytes)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return r =
        msgpack_unpack_next(&u, bytes.data(), bytes.size(), &off);
    std::string v = r == MSGPACK_UNPACK_SUCCESS ? View(u.data) : "<unparsable>";
    if (r == MSGPACK_UNPACK_SUCCESS && off != bytes.size())
        v += "<trailing bytes>";
    msgpack_unpacked_destroy(&u);
    return v;
}

// --- JS -> msgpack ---------------------------------------------------------

struct Packed {
    jsv::Status st;
    std::string why;
    std::string bytes;
    bool threw; // an exception reached the TryCatch around the conversion
    std::string exception;
};

Packed
Pack(v8::Local<v8::Context> context, v8::Local<v8::Value> v)
{
    v8::Isolate *isolate = context->GetIsolate();
    Packed p;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    v8::TryCatch tc(isolate);
    p.st = jsv::ToMsgpack(context, v, &pk, &p.why);
    p.threw = tc.HasCaught() || tc.HasTerminated();
    if (tc.HasCaught() && !tc.HasTerminated()) {
        v8::String::Utf8Value s(isolate, tc.Exception());
        p.exception = *s ? *s : "";
    }
    p.bytes.assign(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return p;
}

// Pack while a watchdog thread, from 100 ms on, terminates what runs (as the
// worker's does past a deadline) until the conversion has ended.
Packed
PackTerminated(v8::Local<v8::Context> context, v8::Local<v8::Value> v)
{
    v8::Isolate *isolate = context->GetIsolate();
    std::atomic<bool> done{false};
    std::thread watchdog([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        while (!done.load()) {
            isolate->TerminateExecution();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    });
    Packed p = Pack(context, v);
    done.store(true);
    watchdog.join();
    return p;
}

// The view of what src evaluates to, once packed; "!invalid: why" or
// "!exception: message" when it did not pack.
std::string
PackView(v8::Local<v8::Context> context, const char *src)
{
    v8::HandleScope scope(context->GetIsolate());
    Packed p = Pack(context, Eval(context, src));
    if (p.st == jsv::kOk) {
        if (p.threw)
            return "<ok but an exception is pending>";
        return ViewBytes(p.bytes);
    }
    if (p.st == jsv::kInvalid)
        return std::string(p.threw ? "<invalid with exception>"
                                   : "!invalid: ") +
               p.why;
    return std::string(p.threw ? "!exception: " : "<exception not thrown>") +
           p.exception;
}

#define EXPECT_PACK(src, want) EXPECT_EQ_STR(PackView(context, src), want, src)
// src packs as the JSON round trip of its value does.
#define EXPECT_AS_JSON(src)                                                    \
    EXPECT_EQ_STR(                                                             \
        PackView(context, src),                                                \
        PackView(                                                              \
            context,                                                           \
            ("JSON.parse(JSON.stringify(" + std::string(src) + "))").c_str()), \
        src)

// --- msgpack -> JS ---------------------------------------------------------

// A JS function describing a value exactly (types included), to compare what
// FromMsgpack made with what was meant.
const char kDescribe[] = R"JS(
globalThis.desc = function desc(v) {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  switch (typeof v) {
    case 'boolean': return String(v);
    case 'number': return Object.is(v, -0) ? '-0' : String(v);
    case 'bigint': return v + 'n';
    case 'string': return JSON.stringify(v);
  }
  if (v instanceof Date) return 'Date(' + (isNaN(v) ? 'NaN' : v.toISOString()) + ')';
  if (v instanceof Uint8Array) return 'u8[' + Array.from(v).join(',') + ']';
  if (Array.isArray(v)) {
    const s = [];
    for (let i = 0; i < v.length; i++) s.push(i in v ? desc(v[i]) : 'hole');
    return '[' + s.join(',') + ']';
  }
  if (Object.getPrototypeOf(v) === Object.prototype)
    return '{' + Object.keys(v).map(k => JSON.stringify(k) + ':' + desc(v[k])).join(',') + '}';
  return '?' + Object.prototype.toString.call(v);
};
)JS";

// Converts the msgpack given in hex into the global `v`: "ok", or
// "!invalid: why" or "!exception" when it did not convert.
std::string
FromToGlobal(v8::Local<v8::Context> context, const char *hex)
{
    v8::Isolate *isolate = context->GetIsolate();
    v8::HandleScope scope(isolate);
    std::string bytes = Unhex(hex);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, bytes.data(), bytes.size(), &off) !=
        MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&u);
        return "<test input does not parse>";
    }
    msgpack_unpacked_destroy(&u);
    v8::Local<v8::Value> v;
    std::string why;
    v8::TryCatch tc(isolate);
    proto_cur c;
    proto_cur_init(&c, bytes.data(), bytes.size());
    jsv::Status st = jsv::FromMsgpack(context, &c, &v, &why);
    if (st == jsv::kOk && c.p != c.end)
        return "<ok but not every byte was read>";
    if (st == jsv::kInvalid)
        return "!invalid: " + why;
    if (st == jsv::kException)
        return "!exception";
    if (tc.HasCaught())
        return "<ok but an exception is pending>";
    context->Global()
        ->Set(context, v8::String::NewFromUtf8Literal(isolate, "v"), v)
        .Check();
    return "ok";
}

// Converts the msgpack given in hex and describes the result.
std::string
FromView(v8::Local<v8::Context> context, const char *hex)
{
    std::string r = FromToGlobal(context, hex);
    return r == "ok" ? EvalString(context, "desc(v)") : r;
}

#define EXPECT_FROM(hex, want) EXPECT_EQ_STR(FromView(context, hex), want, hex)

// --- msgpack -> JS rows
// -------------------------------------------------------

void
from_scalars(void **state)
{
    V8_SCOPE(state);
    Eval(context, kDescribe);
    EXPECT_FROM("c0", "null");
    EXPECT_FROM("c2", "false");
    EXPECT_FROM("c3", "true");
    EXPECT_FROM("00", "0");
    EXPECT_FROM("7f", "127");
    EXPECT_FROM("ff", "-1");
    EXPECT_FROM("cc ff", "255");
    EXPECT_FROM("d0 80", "-128");
    EXPECT_FROM("ce ffffffff", "4294967295");
    EXPECT_FROM("cf 0020000000000000", "9007199254740992");  // 2^53: Number
    EXPECT_FROM("cf 0020000000000001", "9007199254740993n"); // beyond: BigInt
    EXPECT_FROM("d3 ffe0000000000000", "-9007199254740992");
    EXPECT_FROM("d3 ffdfffffffffffff", "-9007199254740993n");
    EXPECT_FROM("cf ffffffffffffffff", "18446744073709551615n");
    EXPECT_FROM("d3 8000000000000000", "-9223372036854775808n");
    EXPECT_FROM("ca 3fc00000", "1.5"); // float32
    EXPECT_FROM("cb 3ff8000000000000", "1.5");
    EXPECT_FROM("cb 8000000000000000", "-0");
    EXPECT_FROM("cb 7ff8000000000000", "NaN");
    EXPECT_FROM("cb 7ff0000000000000", "Infinity");
    EXPECT_FROM("cb fff0000000000000", "-Infinity");
    EXPECT_FROM("a0", "\"\"");
    EXPECT_FROM("a3 616263", "\"abc\"");
    EXPECT_FROM("a2 c3a9", "\"\xc3\xa9\"");
    EXPECT_FROM("a3 e282ac", "\"\xe2\x82\xac\"");
    EXPECT_FROM("a4 f09f9880", "\"\xf0\x9f\x98\x80\"");
    EXPECT_FROM("d9 0a 30313233343536373839", "\"0123456789\"");
    EXPECT_FROM("c4 00", "u8[]");
    EXPECT_FROM("c4 03 0102ff", "u8[1,2,255]");
}

void
from_containers(void **state)
{
    V8_SCOPE(state);
    Eval(context, kDescribe);
    EXPECT_FROM("90", "[]");
    EXPECT_FROM("93 01 a1 78 c0", "[1,\"x\",null]");
    EXPECT_FROM("80", "{}");
    EXPECT_FROM("82 a1 61 01 a1 62 c0", "{\"a\":1,\"b\":null}");
    EXPECT_FROM("82 01 a1 61 ff a1 62",
                "{\"1\":\"a\",\"-1\":\"b\"}"); // int keys
    EXPECT_FROM("81 a1 61 92 90 81 a1 62 c4 01 07",
                "{\"a\":[[],{\"b\":u8[7]}]}");
    // A duplicate key: the last one wins, as in JSON.parse.
    EXPECT_FROM("82 a1 61 01 a1 61 02", "{\"a\":2}");
    // "__proto__" is an own data property; the prototype is untouched.
    EXPECT_FROM("81 a9 5f5f70726f746f5f5f 01", "{\"__proto__\":1}");
    // Setters on Object.prototype never see the data (properties are
    // defined, as JSON.parse does), and nothing on the prototype leaks in.
    Eval(context,
         "Object.defineProperty(Object.prototype, 'trap',"
         " {set(v) { throw new Error('setter ran'); }, configurable: true});"
         "globalThis.savedPush = Array.prototype.push;"
         "Array.prototype.push = () => { throw new Error('push ran'); };");
    EXPECT_EQ_STR(FromToGlobal(context, "82 a4 74726170 01 a1 61 91 02"), "ok",
                  "with traps");
    Eval(context,
         "Array.prototype.push = savedPush; delete Object.prototype.trap");
    EXPECT_EQ_STR(EvalString(context, "desc(v)"), "{\"trap\":1,\"a\":[2]}",
                  "with traps");
    // The bin is a copy: changing the Uint8Array does not touch the input.
    EXPECT_FROM("c4 02 0102", "u8[1,2]");
    EXPECT_EQ_STR(
        EvalString(context,
                   "v[0] = 9; v.buffer.byteLength + ':' + v.byteOffset"),
        "2:0", "bin buffer");
}

void
from_ext(void **state)
{
    V8_SCOPE(state);
    Eval(context, kDescribe);
    EXPECT_FROM("d6 ff 00000000", "Date(1970-01-01T00:00:00.000Z)");
    EXPECT_FROM("d6 ff 5f5e1000", "Date(2020-09-13T12:26:40.000Z)");
    EXPECT_FROM("d7 ff 1d6f345400000001",
                "Date(1970-01-01T00:00:01.123Z)"); // 1.123456789 s
    EXPECT_FROM("d7 ff 003d090000000000", "Date(1970-01-01T00:00:00.001Z)");
    EXPECT_FROM("c7 0c ff 00000000ffffffffffffffff",
                "Date(1969-12-31T23:59:59.000Z)");
    EXPECT_FROM("c7 0c ff 3b8b87c0ffffffffffffffff",
                "Date(1969-12-31T23:59:59.999Z)");
    EXPECT_FROM("c7 0c ff 000000000000000400000000",
                "Date(2514-05-30T01:53:04.000Z)");
    EXPECT_FROM("d4 01 00", "0n");
    EXPECT_FROM("d4 01 7f", "127n");
    EXPECT_FROM("d4 01 80", "-128n");
    EXPECT_FROM("d5 01 ff7f", "-129n");
    EXPECT_FROM("c7 09 01 010000000000000000", "18446744073709551616n");
    EXPECT_FROM("c7 09 01 ff0000000000000000", "-18446744073709551616n");
    EXPECT_FROM("c7 09 01 ff7fffffffffffffff", "-9223372036854775809n");
    EXPECT_FROM("c7 11 01 0100000000000000000000000000000000",
                "340282366920938463463374607431768211456n"); // 2^128
}

void
from_errors(void **state)
{
    V8_SCOPE(state);
    Eval(context, kDescribe);
    EXPECT_FROM("a2 c328", "!invalid: value: invalid UTF-8");
    EXPECT_FROM("81 a1 61 94 01 02 03 a1 ff",
                "!invalid: value.a[3]: invalid UTF-8");
    EXPECT_FROM("a3 eda080", "!invalid: value: invalid UTF-8"); // a surrogate
    EXPECT_FROM("a2 c080", "!invalid: value: invalid UTF-8");   // overlong
    EXPECT_FROM("a4 f4900000",
                "!invalid: value: invalid UTF-8");            // past U+10FFFF
    EXPECT_FROM("a2 e282", "!invalid: value: invalid UTF-8"); // cut short
    EXPECT_FROM("81 a2 c328 01", "!invalid: value: invalid UTF-8 in a map key");
    EXPECT_FROM("81 c3 01", "!invalid: value: map key of type boolean (keys "
                            "must be strings or integers)");
    EXPECT_FROM("81 a1 61 81 c0 01", "!invalid: value.a: map key of type nil "
                                     "(keys must be strings or integers)");
    EXPECT_FROM("81 a1 61 81 91 01 01",
                "!invalid: value.a: map key of type array (keys must be "
                "strings or integers)");
    EXPECT_FROM("81 a1 61 81 cb 3ff8000000000000 01",
                "!invalid: value.a: map key of type float64 (keys must be "
                "strings or integers)");
    EXPECT_FROM("92 00 d4 05 00", "!invalid: value[1]: unknown ext type 5");
    EXPECT_FROM("d4 80 00", "!invalid: value: unknown ext type -128");
    // A callable becomes a function only where the engine owns the
    // conversion (a call's data, a context's args); here it cannot cross.
    EXPECT_FROM("81 a1 66 d6 02 00000007",
                "!invalid: value.f: a callable cannot cross here");
    EXPECT_FROM("d5 02 0007",
                "!invalid: value: callable of a size other than 4 bytes");
    EXPECT_FROM(
        "d5 ff 0000",
        "!invalid: value: timestamp of a size other than 4, 8 or 12 bytes");
    EXPECT_FROM(
        "c7 0c ff 3b9aca0000000000000000000",
        "!invalid: value: timestamp with more than 999999999 nanoseconds");
    EXPECT_FROM("c7 0c ff 000000007fffffffffffffff",
                "!invalid: value: timestamp out of the range of Date");
    EXPECT_FROM("d5 01 0005",
                "!invalid: value: bigint with a redundant sign byte");
    EXPECT_FROM("92 00 d6 01 ffff8000",
                "!invalid: value[1]: bigint with a redundant sign byte");
    EXPECT_FROM("81 a4 6120622e 81 a1 63 a1 ff",
                "!invalid: value[\"a b.\"].c: invalid UTF-8");
    EXPECT_FROM("81 05 91 a1 ff", "!invalid: value[5][0]: invalid UTF-8");
}

std::string
Nested(const char *open, int n, const char *leaf)
{
    std::string s;
    for (int i = 0; i < n; i++)
        s += open;
    return s + leaf;
}

void
from_depth(void **state)
{
    V8_SCOPE(state);
    Eval(context, kDescribe);
    std::string ok = Nested("91", 30, "c0");
    std::string deep = Nested("91", 31, "c0");
    EXPECT_EQ_STR(FromView(context, ok.c_str()),
                  Nested("[", 30, "null") + std::string(30, ']'), "30 arrays");
    std::string want = "!invalid: value" + Nested("[0]", 30, "") +
                       ": nested deeper than 30 levels";
    EXPECT_EQ_STR(FromView(context, deep.c_str()), want, "31 arrays");
    std::string okm = Nested("81a161", 30, "c0");
    std::string deepm = Nested("81a161", 31, "c0");
    EXPECT_EQ_STR(FromView(context, okm.c_str()),
                  Nested("{\"a\":", 30, "null") + std::string(30, '}'),
                  "30 maps");
    EXPECT_EQ_STR(FromView(context, deepm.c_str()),
                  "!invalid: value" + Nested(".a", 30, "") +
                      ": nested deeper than 30 levels",
                  "31 maps");
}

// --- JS -> msgpack rows
// -------------------------------------------------------

void
to_scalars(void **state)
{
    V8_SCOPE(state);
    EXPECT_PACK("null", "nil");
    EXPECT_PACK("undefined", "nil");
    EXPECT_PACK("(function(){})", "nil"); // JSON.stringify: undefined
    EXPECT_PACK("Symbol('s')", "nil");
    EXPECT_PACK("true", "true");
    EXPECT_PACK("false", "false");
    EXPECT_PACK("0", "0");
    EXPECT_PACK("-0", "f:-0");
    EXPECT_PACK("-1", "-1");
    EXPECT_PACK("1.5", "f:1.5");
    EXPECT_PACK("0.1", "f:0.10000000000000001");
    EXPECT_PACK("NaN", "f:nan");
    EXPECT_PACK("Infinity", "f:inf");
    EXPECT_PACK("-Infinity", "f:-inf");
    EXPECT_PACK("2**53", "9007199254740992");
    EXPECT_PACK("2**63 - 1024", "9223372036854774784");
    EXPECT_PACK("2**63", "f:9.2233720368547758e+18");
    EXPECT_PACK("-(2**63)", "-9223372036854775808");
    EXPECT_PACK("-(2**63) - 2048", "f:-9.2233720368547779e+18");
    EXPECT_PACK("1e300", "f:1.0000000000000001e+300");
    EXPECT_PACK("4294967296", "4294967296");
    EXPECT_PACK("123n", "123");
    EXPECT_PACK("-5n", "-5");
    EXPECT_PACK("2n**63n - 1n", "9223372036854775807");
    EXPECT_PACK("-(2n**63n)", "-9223372036854775808");
    EXPECT_PACK("2n**64n - 1n", "18446744073709551615");
    EXPECT_PACK("2n**64n", "ext(1,010000000000000000)");
    EXPECT_PACK("-(2n**64n)", "ext(1,ff0000000000000000)");
    EXPECT_PACK("-(2n**63n) - 1n", "ext(1,ff7fffffffffffffff)");
    EXPECT_PACK("2n**127n", "ext(1,0080000000000000000000000000000000)");
    EXPECT_PACK("-(2n**127n)", "ext(1,80000000000000000000000000000000)");
    EXPECT_PACK("''", "\"\"");
    EXPECT_PACK("'abc'", "\"abc\"");
    EXPECT_PACK("'\\u00e9\\u00ff'",
                "\"\\xc3\\xa9\\xc3\\xbf\"");         // Latin-1 string
    EXPECT_PACK("'\\u20ac'", "\"\\xe2\\x82\\xac\""); // two-byte string
    EXPECT_PACK("'a\\ud83d\\ude00b'", "\"a\\xf0\\x9f\\x98\\x80b\""); // a pair
    EXPECT_PACK("'\\u0000'", "\"\\x00\"");
    EXPECT_PACK("'x'.repeat(40) + '\\u0101'",
                "\"" + std::string(40, 'x') + "\\xc4\\x81\"");
}

void
to_binary_and_dates(void **state)
{
    V8_SCOPE(state);
    EXPECT_PACK("new Uint8Array([1, 2, 3])", "b'010203'");
    EXPECT_PACK("new Uint8Array(0)", "b''");
    EXPECT_PACK("new Uint16Array([1, 0x203])", "b'01000302'");
    EXPECT_PACK("new Uint8Array([1, 2, 3, 4]).subarray(1, 3)", "b'0203'");
    EXPECT_PACK("new DataView(new Uint8Array([1, 2, 3, 4]).buffer, 1, 2)",
                "b'0203'");
    EXPECT_PACK("new Uint8Array([5, 6]).buffer", "b'0506'");
    EXPECT_PACK("new Float64Array([1])", "b'000000000000f03f'");
    EXPECT_PACK("new BigInt64Array([-1n])", "b'ffffffffffffffff'");
    EXPECT_PACK("new Uint8ClampedArray([300])", "b'ff'");
    EXPECT_PACK("(() => { const s = new SharedArrayBuffer(2); new "
                "Uint8Array(s)[1] = 9; return s; })()",
                "b'0009'");
    // A Node-style Buffer is a Uint8Array whose prototype has toJSON: it
    // still goes out as bin.
    EXPECT_PACK(
        "(() => { class Buffer extends Uint8Array { toJSON() { return 'no'; } }"
        " return Buffer.from([7, 8]); })()",
        "b'0708'");
    EXPECT_PACK("[new Uint8Array([1]), {b: new ArrayBuffer(1)}]",
                "[b'01',{\"b\":b'00'}]");
    EXPECT_PACK("(() => { const b = new ArrayBuffer(8); return new "
                "Uint8Array(b, 8); })()",
                "b''");
    EXPECT_PACK("new Date(0)", "ext(-1,00000000)");
    EXPECT_PACK("new Date(1600000000000)", "ext(-1,5f5e1000)");
    EXPECT_PACK("new Date(1123)", "ext(-1,1d53530000000001)");
    EXPECT_PACK("new Date(1)", "ext(-1,003d090000000000)");
    EXPECT_PACK("new Date(-1000)", "ext(-1,00000000ffffffffffffffff)");
    EXPECT_PACK("new Date(-1)", "ext(-1,3b8b87c0ffffffffffffffff)");
    EXPECT_PACK("new Date(2**34 * 1000)", "ext(-1,000000000000000400000000)");
    EXPECT_PACK("new Date(2**32 * 1000)", "ext(-1,0000000100000000)");
    EXPECT_PACK("new Date(8.64e15)", "ext(-1,00000000000007dba8218000)");
    EXPECT_PACK(
        "(() => { const d = new Date(0); d.toJSON = () => 'x'; return d; })()",
        "ext(-1,00000000)");
}

void
to_containers(void **state)
{
    V8_SCOPE(state);
    EXPECT_PACK("[]", "[]");
    EXPECT_PACK("[1, 'a', [true]]", "[1,\"a\",[true]]");
    EXPECT_PACK("[1, undefined, function(){}, Symbol(), , null]",
                "[1,nil,nil,nil,nil,nil]");
    EXPECT_PACK("new Array(3)", "[nil,nil,nil]");
    EXPECT_PACK("({})", "{}");
    EXPECT_PACK(
        "({a: 1, b: undefined, c() {}, [Symbol()]: 1, d: Symbol(), e: null})",
        "{\"a\":1,\"e\":nil}");
    EXPECT_PACK("({b: 1, a: 2, 2: 'x', 1: 'y'})",
                "{\"1\":\"y\",\"2\":\"x\",\"b\":1,\"a\":2}");
    EXPECT_PACK("Object.assign(Object.create(null), {a: 1})", "{\"a\":1}");
    EXPECT_PACK("Object.create({inherited: 1}, {own: {value: 2, enumerable: "
                "true}, hidden: {value: 3}})",
                "{\"own\":2}");
    EXPECT_PACK("new (class P { constructor() { this.x = 1; } get y() { return "
                "2; } m() {} })",
                "{\"x\":1}");
    EXPECT_PACK("({get a() { return [this.b]; }, b: 2})",
                "{\"a\":[2],\"b\":2}");
    EXPECT_PACK(
        "new Map([[1, 'a'], ['b', undefined], [{x: 1}, 2], [null, () => 1]])",
        "{1:\"a\",\"b\":nil,{\"x\":1}:2,nil:nil}");
    EXPECT_PACK("new Map()", "{}");
    EXPECT_PACK("new Set([1, 'a', {b: []}])", "[1,\"a\",{\"b\":[]}]");
    EXPECT_PACK("({m: new Map([['k', new Set([new Date(0)])]])})",
                "{\"m\":{\"k\":[ext(-1,00000000)]}}");
    EXPECT_PACK("[new Number(3), new String('s'), new Boolean(false), "
                "Object(5n), new Number(-0)]",
                "[3,\"s\",false,5,f:-0]");
    EXPECT_PACK("new String('top')", "\"top\"");
    /* An Error crosses as {name, message, stack} and its own enumerable
     * keys; a RegExp as its source string (docs/values.md). */
    EXPECT_PACK("/re/g", "\"/re/g\"");
    EXPECT_PACK("new RegExp('a/b', 'ysmigd')", "\"/a\\x5c/b/dgimsy\"");
    EXPECT_PACK("Object.assign(new Error('boom'), {stack: 'S'})",
                "{\"name\":\"Error\",\"message\":\"boom\",\"stack\":\"S\"}");
    EXPECT_PACK(
        "Object.assign(new TypeError('boom'), {code: 'E1', stack: 'S'})",
        "{\"name\":\"TypeError\",\"message\":\"boom\",\"stack\":"
        "\"S\",\"code\":\"E1\"}");
    EXPECT_PACK("Promise.resolve(1)", "{}");
    EXPECT_PACK("new WeakMap()", "{}");
    EXPECT_PACK("Object(Symbol())", "{}");
    EXPECT_PACK("(function() { return arguments; })(1, 'b')",
                "{\"0\":1,\"1\":\"b\"}");
    EXPECT_PACK("new Proxy({a: 1}, {})", "{\"a\":1}");
    EXPECT_PACK("new Proxy([1, [2]], {})", "[1,[2]]");
    EXPECT_PACK("new Proxy({}, {ownKeys: () => ['x', 'y'],"
                " getOwnPropertyDescriptor: (t, k) => ({value: k, enumerable: "
                "k === 'x', configurable: true}),"
                " get: (t, k) => k + '!'})",
                "{\"x\":\"x!\"}");
    EXPECT_PACK("new Proxy(function() {}, {})", "nil");
    // Shared references that are not cycles are fine.
    EXPECT_PACK("(() => { const s = {z: 1}; return {a: s, b: [s, s]}; })()",
                "{\"a\":{\"z\":1},\"b\":[{\"z\":1},{\"z\":1}]}");
}

void
to_json_method(void **state)
{
    V8_SCOPE(state);
    EXPECT_PACK("({toJSON(k) { return 'k=' + k; }})", "\"k=\"");
    EXPECT_PACK("({a: {toJSON(k) { return k + '!'; }}})", "{\"a\":\"a!\"}");
    EXPECT_PACK("[{toJSON(k) { return typeof k + k; }}, 0, {toJSON(k) { return "
                "typeof k + k; }}]",
                "[\"string0\",0,\"string2\"]");
    EXPECT_PACK("({a: {toJSON() { return undefined; }}, b: 1})", "{\"b\":1}");
    EXPECT_PACK("[{toJSON() { return undefined; }}]", "[nil]");
    EXPECT_PACK("({toJSON() { return {x: [1]}; }})", "{\"x\":[1]}");
    EXPECT_PACK("({toJSON() { return new Number(4); }})", "4");
    EXPECT_PACK("({toJSON() { return new Uint8Array([1]); }})", "b'01'");
    EXPECT_PACK("({toJSON() { return this; }, a: 1})", "{\"a\":1}");
    EXPECT_PACK("({toJSON: 5, a: 1})", "{\"toJSON\":5,\"a\":1}");
    EXPECT_PACK("new Map([['k', {toJSON(k) { return k + '?'; }}]])",
                "{\"k\":\"k?\"}");
    EXPECT_PACK("(() => { class T { constructor() { this.v = 2; } toJSON() { "
                "return this.v * 10; } }"
                " return [new T, {t: new T}]; })()",
                "[20,{\"t\":20}]");
}

void
to_errors(void **state)
{
    V8_SCOPE(state);
    EXPECT_PACK("({a: [1, 2, 3, '\\ud800']})",
                "!invalid: value.a[3]: string has a lone surrogate (U+D800 at "
                "index 0)");
    EXPECT_PACK(
        "'ab\\udc00'",
        "!invalid: value: string has a lone surrogate (U+DC00 at index 2)");
    EXPECT_PACK(
        "'\\ude00\\ud83d'",
        "!invalid: value: string has a lone surrogate (U+DE00 at index 0)");
    EXPECT_PACK(
        "'\\ud83d'",
        "!invalid: value: string has a lone surrogate (U+D83D at index 0)");
    EXPECT_PACK("({'a b': {c: 'x\\ud800'}})",
                "!invalid: value[\"a b\"].c: string has a lone surrogate "
                "(U+D800 at index 1)");
    EXPECT_PACK("({['k\\ud800']: 1})",
                "!invalid: value[\"k\xef\xbf\xbd\"]: string has a lone "
                "surrogate (U+D800 at index 1)");
    EXPECT_PACK("new Map([['k', '\\ud800']])",
                "!invalid: value.get(\"k\"): string has a lone surrogate "
                "(U+D800 at index 0)");
    EXPECT_PACK("({['\\u00e9'.repeat(40)]: '\\ud800'})",
                "!invalid: value[\"" + Nested("\xc3\xa9", 32, "") +
                    "...\"]: string has a lone surrogate (U+D800 at index 0)");
    EXPECT_PACK("({['x' + '\\u00e9'.repeat(40)]: '\\ud800'})",
                "!invalid: value[\"x" + Nested("\xc3\xa9", 31, "") +
                    "...\"]: string has a lone surrogate (U+D800 at index 0)");
    EXPECT_PACK("new Map([['a\\\"b', '\\ud800']])",
                "!invalid: value.get(\"a\\\"b\"): string has a lone surrogate "
                "(U+D800 at index 0)");
    EXPECT_PACK("new Map([['\\ud800', 1]])",
                "!invalid: value.keys()[0]: string has a lone surrogate "
                "(U+D800 at index 0)");
    EXPECT_PACK("(() => { const a = {}; a.b = {c: a}; return a; })()",
                "!invalid: value.b.c: cycle (an object contains itself)");
    EXPECT_PACK("(() => { const a = []; a.push(1, a); return a; })()",
                "!invalid: value[1]: cycle (an object contains itself)");
    EXPECT_PACK("(() => { const m = new Map(); m.set(7, [m]); return m; })()",
                "!invalid: value.get(7)[0]: cycle (an object contains itself)");
    EXPECT_PACK(
        "(() => { const o = {}; o.t = {toJSON() { return o; }}; return o; })()",
        "!invalid: value.t: cycle (an object contains itself)");
    EXPECT_PACK("new Date(NaN)", "!invalid: value: invalid Date");
    EXPECT_PACK("({d: [new Date('x')]})", "!invalid: value.d[0]: invalid Date");
    EXPECT_PACK("(() => { const a = []; a.length = 2 ** 31; return a; })()",
                "!invalid: value: array longer than 67108864 elements");
    EXPECT_PACK("({get a() { throw new Error('getter'); }})",
                "!exception: Error: getter");
    EXPECT_PACK("[{toJSON() { throw new TypeError('tj'); }}]",
                "!exception: TypeError: tj");
    EXPECT_PACK("new Proxy({}, {ownKeys() { throw new Error('keys'); }})",
                "!exception: Error: keys");
    EXPECT_PACK("(() => { const p = Proxy.revocable({}, {}); p.revoke(); "
                "return p.proxy; })()",
                "!exception: TypeError: Cannot perform 'get' on a proxy that "
                "has been revoked");
    EXPECT_PACK(
        "({a: new Proxy({}, {get() { throw new RangeError('get'); }})})",
        "!exception: RangeError: get");
}

void
to_depth(void **state)
{
    V8_SCOPE(state);
    auto nest = [](const char *open, const char *close, int n) {
        std::string s = "(";
        for (int i = 0; i < n; i++)
            s += open;
        s += "0";
        for (int i = 0; i < n; i++)
            s += close;
        return s + ")";
    };
    std::string a30 = nest("[", "]", 30), a31 = nest("[", "]", 31);
    EXPECT_EQ_STR(PackView(context, a30.c_str()),
                  Nested("[", 30, "0") + std::string(30, ']'), "30 arrays");
    EXPECT_EQ_STR(PackView(context, a31.c_str()),
                  "!invalid: value" + Nested("[0]", 30, "") +
                      ": nested deeper than 30 levels",
                  "31 arrays");
    std::string o30 = nest("{a:", "}", 30), o31 = nest("{a:", "}", 31);
    EXPECT_EQ_STR(PackView(context, o30.c_str()),
                  Nested("{\"a\":", 30, "0") + std::string(30, '}'),
                  "30 objects");
    EXPECT_EQ_STR(PackView(context, o31.c_str()),
                  "!invalid: value" + Nested(".a", 30, "") +
                      ": nested deeper than 30 levels",
                  "31 objects");
    // A self-referencing chain too long to be a cycle inside the limit is
    // still refused, never a hang.
    EXPECT_PACK("(() => { let o = {}; const top = o; for (let i = 0; i < 100; "
                "i++) o = o.n = {}; o.n = top; return top; })()",
                "!invalid: value" + Nested(".n", 30, "") +
                    ": nested deeper than 30 levels");
}

// A getter that never returns, in a huge array: the watchdog's
// TerminateExecution ends the conversion with kException, and the isolate
// serves again once the termination is cancelled.
void
to_terminated(void **state)
{
    V8_SCOPE(state);
    v8::Local<v8::Value> big = Eval(
        context, "const big = new Array(1000000).fill(0).map((_, i) => ({i}));"
                 "big.push({get x() { for (;;) {} }}); big");
    Packed p = PackTerminated(context, big);
    assert_int_equal(p.st, jsv::kException);
    assert_true(p.threw);
    EXPECT_EQ_STR(p.why, "execution terminated while converting a value",
                  "why");
    isolate->CancelTerminateExecution();
    EXPECT_PACK("[1, {a: 2}]", "[1,{\"a\":2}]");
}

// What JSON.stringify says and what we pack agree wherever JSON can say it.
void
json_parity(void **state)
{
    V8_SCOPE(state);
    static const char *const cases[] = {
        "({a: [1, {b: 2}], c: 'x', d: null, e: true})",
        "({u: undefined, f() {}, s: Symbol('x'), n: null})",
        "[undefined, function() {}, Symbol('q'), , 5]",
        "({toJSON() { return {x: 1}; }})",
        "({a: {toJSON(key) { return key + '!'; }}})",
        "[{toJSON(key) { return typeof key + key; }}]",
        "Object.create({inherited: 1}, {own: {value: 2, enumerable: true}, "
        "hidden: {value: 3}})",
        "new (class P { constructor() { this.x = 1; } get y() { return 2; } })",
        "({'2': 'b', '1': 'a', z: 1, a: 2})",
        "({nested: {deep: {deeper: [1, 2, [3, [4]]]}}})",
        "[new Number(1), new String('s'), new Boolean(true)]",
        "[Promise.resolve(1), new WeakMap(), Math]",
        "Object.assign(Object.create(null), {a: 1})",
        "(function() { return arguments; })(1, 2)",
        "({get g() { return {h: 1}; }})",
        "({'': 1, '__proto__x': 2})",
        "JSON.parse('{\"__proto__\": 1}')",
        "({a: 1.5, b: -1e21, c: 1e-7, d: 2 ** 40})",
        "'string top'",
        "42",
        "null",
        "true",
        "'\\u00e9\\u20ac\\ud83d\\ude00'",
        "({a: {toJSON() { return undefined; }}, b: [{toJSON() { return "
        "undefined; }}]})",
        "({x: {toJSON() { return [this.y, 'z']; }, y: 3}})",
        "Object.defineProperty({a: 1}, 'b', {get() { return 2; }, enumerable: "
        "true})",
        "new Proxy({a: [1, 2]}, {})",
        "(() => { const s = {z: 1}; return [s, {s}]; })()",
    };
    for (const char *src : cases)
        EXPECT_AS_JSON(src);
}

// Canonical msgpack (smallest forms) survives msgpack -> JS -> msgpack byte
// for byte.
void
round_trip(void **state)
{
    V8_SCOPE(state);
    static const char *const cases[] = {
        "c0",
        "c2",
        "c3",
        "00",
        "7f",
        "cc80",
        "ccff",
        "cd0100",
        "ce00010000",
        "cf0000000100000000",
        "cf0020000000000001",
        "cfffffffffffffffff",
        "ff",
        "e0",
        "d0df",
        "d080",
        "d1ff7f",
        "d18000",
        "d2ffff7fff",
        "d280000000",
        "d3ffffffff7fffffff",
        "d38000000000000000",
        "d3ffdfffffffffffff",
        "cb3ff8000000000000",
        "cb8000000000000000",
        "cb7ff8000000000000",
        "cb7ff0000000000000",
        "cbfff0000000000000",
        "cb3fb999999999999a",
        "cb43e0000000000000",
        "a0",
        "a3616263",
        "a2c3a9",
        "a4f09f9880",
        "d9206161616161616161616161616161616161616161616161616161616161616161",
        "c400",
        "c403010203",
        "90",
        "9301a178c0",
        "80",
        "82a16101a162c0",
        "81a16192c3c2",
        "d6ff00000000",
        "d6ff5f5e1000",
        "d7ff003d090000000000",
        "c70cff00000000ffffffffffffffff",
        "c70cff3b8b87c0ffffffffffffffff",
        "c70cff000000000000000400000000",
        "c70901010000000000000000",
        "c70901ff0000000000000000",
        "c71101"
        "0080"
        "000000000000000000000000000000", // 2^127
        "d801"
        "80"
        "000000000000000000000000000000", // -(2^127)
        "92c0d6ff00000000",
        "dc0010000102030405060708090a0b0c0d0e0f",
    };
    for (const char *hex : cases) {
        v8::HandleScope scope(isolate);
        std::string bytes = Unhex(hex);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        bool parsed = msgpack_unpack_next(&u, bytes.data(), bytes.size(),
                                          &off) == MSGPACK_UNPACK_SUCCESS;
        EXPECT_EQ_STR(parsed ? "parsed" : "not parsed", "parsed", hex);
        v8::Local<v8::Value> v;
        std::string why;
        msgpack_unpacked_destroy(&u);
        proto_cur c;
        proto_cur_init(&c, bytes.data(), bytes.size());
        jsv::Status st = jsv::FromMsgpack(context, &c, &v, &why);
        EXPECT_EQ_STR(st == jsv::kOk ? "ok" : why, "ok", hex);
        Packed p = Pack(context, v);
        EXPECT_EQ_STR(p.st == jsv::kOk ? Hex(p.bytes) : p.why, Hex(bytes), hex);
    }
}

// A msgpack array longer than V8 can hold is refused before it is read.
void
from_huge_array(void **state)
{
    V8_SCOPE(state);
    // array32 of 2^26 + 1 items, and none of them: refused on the count
    static const char head[] = "\xdd\x04\x00\x00\x01";
    proto_cur c;
    proto_cur_init(&c, head, sizeof head - 1);
    v8::Local<v8::Value> v;
    std::string why;
    assert_int_equal(jsv::FromMsgpack(context, &c, &v, &why), jsv::kInvalid);
    EXPECT_EQ_STR(why, "value: array longer than 67108864 elements", "why");
    // Counts the bytes cannot hold, and bytes that end early, are refused
    // as not msgpack, never read past the end.
    static const char *const lies[] = {
        "\xdd\x00\x10\x00\x00\x01",         // 1 Mi items, 1 byte
        "\xdf\x00\x00\x00\x02\xa1\x61\x01", // 2 pairs, 1 there
        "\x92\x01",                         // 2 items, 1 there
        "\xa5\x61\x62",                     // a 5-byte str, 2 there
        "\xc1",                             // never used
    };
    for (const char *lie : lies) {
        v8::HandleScope scope(isolate);
        proto_cur_init(&c, lie, strlen(lie));
        why.clear();
        assert_int_equal(jsv::FromMsgpack(context, &c, &v, &why),
                         jsv::kInvalid);
        if (why.find("not msgpack") == std::string::npos)
            fail_msg("%s", why.c_str());
    }
}

// A writer that fails (out of memory) after `room` bytes.
struct Tight {
    size_t room;
};

int
TightWrite(void *data, const char *buf, size_t len)
{
    (void)buf;
    Tight *t = static_cast<Tight *>(data);
    if (len > t->room)
        return -1;
    t->room -= len;
    return 0;
}

// A packer that cannot write is kInvalid with words, never a crash.
void
to_packer_full(void **state)
{
    V8_SCOPE(state);
    v8::Local<v8::Value> v =
        Eval(context, "({a: 'x'.repeat(100), b: [1, 2, 3]})");
    for (size_t room : {0, 1, 3, 50, 104, 106}) {
        Tight t{room};
        msgpack_packer pk;
        msgpack_packer_init(&pk, &t, TightWrite);
        std::string why;
        assert_int_equal(jsv::ToMsgpack(context, v, &pk, &why), jsv::kInvalid);
        EXPECT_EQ_STR(why, "out of memory while packing a value", "why");
    }
    Tight t{1000};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &t, TightWrite);
    std::string why;
    assert_int_equal(jsv::ToMsgpack(context, v, &pk, &why), jsv::kOk);
}

// The why string is optional.
void
null_why(void **state)
{
    V8_SCOPE(state);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    v8::Local<v8::Value> v = Eval(context, "'\\ud800'");
    assert_int_equal(jsv::ToMsgpack(context, v, &pk, nullptr), jsv::kInvalid);
    msgpack_sbuffer_destroy(&sb);
    std::string bytes = Unhex("a1ff");
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, bytes.data(), bytes.size(), &off),
                     MSGPACK_UNPACK_SUCCESS);
    msgpack_unpacked_destroy(&u);
    proto_cur c;
    proto_cur_init(&c, bytes.data(), bytes.size());
    assert_int_equal(jsv::FromMsgpack(context, &c, &v, nullptr), jsv::kInvalid);
}

// The packed bytes of what src evaluates to, in hex ("!" and why if not).
std::string
PackHex(v8::Local<v8::Context> context, const char *src)
{
    v8::HandleScope scope(context->GetIsolate());
    Packed p = Pack(context, Eval(context, src));
    return p.st == jsv::kOk ? Hex(p.bytes) : "!" + p.why;
}

std::string
Repeat(const std::string &s, int n)
{
    std::string out;
    for (int i = 0; i < n; i++)
        out += s;
    return out;
}

// Headers written before their size was known: a Latin-1 string widened to
// UTF-8 past a header's reach, and an object whose skipped values bring its
// map under one.
void
to_header_sizes(void **state)
{
    V8_SCOPE(state);
    EXPECT_EQ_STR(PackHex(context, "'\\u00e9'.repeat(15)"),
                  "be" + Repeat("c3a9", 15), "30 bytes");
    EXPECT_EQ_STR(PackHex(context, "'\\u00e9'.repeat(16)"),
                  "d920" + Repeat("c3a9", 16), "32 bytes");
    EXPECT_EQ_STR(PackHex(context, "'x'.repeat(31) + '\\u00ff'"),
                  "d921" + Repeat("78", 31) + "c3bf", "33 bytes");
    EXPECT_EQ_STR(PackHex(context, "'\\u00e9'.repeat(128)"),
                  "da0100" + Repeat("c3a9", 128), "256 bytes");
    EXPECT_EQ_STR(PackHex(context, "'\\u00e9'.repeat(32768)"),
                  "db00010000" + Repeat("c3a9", 32768), "65536 bytes");
    EXPECT_EQ_STR(PackHex(context, "'\\u20ac'.repeat(11)"),
                  "d921" + Repeat("e282ac", 11), "two-byte, 33 bytes");
    EXPECT_EQ_STR(PackHex(context, "'a\\u00e9\\u20ac'"), "a661c3a9e282ac",
                  "mixed");
    // 16 keys, one undefined: a fixmap of 15 after all.
    EXPECT_EQ_STR(PackHex(context,
                          "(() => { const o = {}; for (let i = 0; i < 16; i++)"
                          " o[String.fromCharCode(97 + i)] = i;"
                          " o.c = undefined; return o; })()"),
                  "8f"
                  "a16100"
                  "a16201"
                  "a16403"
                  "a16504"
                  "a16605"
                  "a16706"
                  "a16807"
                  "a16908"
                  "a16a09"
                  "a16b0a"
                  "a16c0b"
                  "a16d0c"
                  "a16e0d"
                  "a16f0e"
                  "a1700f",
                  "16 keys, 15 values");
    EXPECT_EQ_STR(PackHex(context,
                          "(() => { const o = {}; for (let i = 0; i < 17; i++)"
                          " o[String.fromCharCode(97 + i)] = i;"
                          " o.q = () => 1; return o; })()")
                      .substr(0, 6),
                  "de0010", "17 keys, 16 values");
    EXPECT_EQ_STR(PackHex(context, "({a: undefined, b: Symbol()})"), "80",
                  "nothing left");
    EXPECT_EQ_STR(PackHex(context,
                          "(() => { const o = {}; for (let i = 0; i < 65536;"
                          " i++) o['k' + i] = i; return o; })()")
                      .substr(0, 10),
                  "df00010000", "65536 keys");
    v8::HandleScope scope(isolate);
    Packed p = Pack(context,
                    Eval(context, "(() => { const o = {}; for (let i = 0; i < "
                                  "65536; i++) o['k' + i] = i;"
                                  " o.k5 = undefined; return o; })()"));
    assert_int_equal(p.st, jsv::kOk);
    EXPECT_EQ_STR(Hex(p.bytes.substr(0, 3)), "deffff",
                  "65536 keys, 65535 values");
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(
        msgpack_unpack_next(&u, p.bytes.data(), p.bytes.size(), &off),
        MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(off, p.bytes.size());
    assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
    assert_int_equal(u.data.via.map.size, 65535);
    EXPECT_EQ_STR(View(u.data.via.map.ptr[5].key), "\"k6\"", "after the gap");
    msgpack_unpacked_destroy(&u);
}

// Getters run in JSON.stringify's order: each value is converted before the
// next key is read.
void
to_getter_order(void **state)
{
    V8_SCOPE(state);
    Eval(context, "globalThis.log = [];"
                  "globalThis.g = {get a() { log.push('a'); return {get c() {"
                  " log.push('c'); return [{get d() { log.push('d'); return "
                  "1; }}]; }}; },"
                  " get b() { log.push('b'); return {toJSON() { "
                  "log.push('tj'); return 2; }}; }};");
    std::string json = EvalString(context, "JSON.stringify(g); log.join()");
    EXPECT_EQ_STR(json, "a,c,d,b,tj", "JSON.stringify's order");
    Eval(context, "log.length = 0");
    EXPECT_EQ_STR(PackView(context, "g"), "{\"a\":{\"c\":[{\"d\":1}]},\"b\":2}",
                  "packed");
    EXPECT_EQ_STR(EvalString(context, "log.join()"), json, "the same order");
}

// The keys of small maps are made once per conversion and found again (both
// ways): many maps with the same keys, keys that share a cache slot, keys too
// long to be kept, non-ASCII keys and integer keys, across more than one
// handle-scope chunk of a long array. Byte for byte what came in goes out.
void
key_caches(void **state)
{
    V8_SCOPE(state);
    Eval(context, kDescribe);
    // the empty key, twice (msgpack-c gives its bytes as a null pointer)
    EXPECT_FROM("92 81 a0 01 81 a0 02", "[{\"\":1},{\"\":2}]");
    EXPECT_PACK("[{'': 1}, {'': 2}]", "[{\"\":1},{\"\":2}]");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    const int n = 700;
    msgpack_pack_array(&pk, n);
    std::string want = "[";
    for (int i = 0; i < n; i++) {
        std::string k1, k2;
        switch (i % 4) {
        case 0: // the same two keys every time
            k1 = "id";
            k2 = "name";
            break;
        case 1: // many different keys, colliding in the cache
            k1 = "k" + std::to_string(i);
            k2 = "k" + std::to_string(i + 1);
            break;
        case 2: // too long to be kept, or not ASCII
            k1 = std::string(40, 'L') + std::to_string(i % 3);
            k2 = "\xc3\xa9t\xc3\xa9"; // "été"
            break;
        default: // a Latin-1 and a two-byte key of the same length
            k1 = "\xc3\xa9";
            k2 = "\xe2\x82\xac";
            break;
        }
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, k1.data(), k1.size());
        msgpack_pack_int(&pk, i);
        msgpack_pack_str_with_body(&pk, k2.data(), k2.size());
        msgpack_pack_str_with_body(&pk, "v", 1);
        msgpack_pack_int(&pk, -7);
        msgpack_pack_nil(&pk);
        want += std::string(i ? "," : "") + "{" + "\"" + k1 +
                "\":" + std::to_string(i) + ",\"" + k2 +
                "\":\"v\",\"-7\":null}";
    }
    want += "]";
    std::string bytes(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, bytes.data(), bytes.size(), &off),
                     MSGPACK_UNPACK_SUCCESS);
    v8::Local<v8::Value> v;
    std::string why;
    msgpack_unpacked_destroy(&u);
    proto_cur c;
    proto_cur_init(&c, bytes.data(), bytes.size());
    assert_int_equal(jsv::FromMsgpack(context, &c, &v, &why), jsv::kOk);
    context->Global()
        ->Set(context, v8::String::NewFromUtf8Literal(isolate, "v"), v)
        .Check();
    EXPECT_EQ_STR(EvalString(context, "JSON.stringify(v)"), want, "from");
    // An integer key comes in as its string and goes out as that str; every
    // other byte is as it came.
    Packed p = Pack(context, v);
    assert_int_equal(p.st, jsv::kOk);
    std::string back = bytes;
    for (size_t at = 0;
         (at = back.find("\xa1v\xf9\xc0", at)) != std::string::npos; at += 6)
        back.replace(at, 4, "\xa1v\xa2-7\xc0");
    EXPECT_EQ_STR(Hex(p.bytes), Hex(back), "to");
}

// A getter that converts another value in the middle of a conversion (as a
// host function may): each conversion writes its own bytes.
void
PackInner(const v8::FunctionCallbackInfo<v8::Value> &info)
{
    v8::Isolate *isolate = info.GetIsolate();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    std::string why;
    jsv::Status st =
        jsv::ToMsgpack(isolate->GetCurrentContext(), info[0], &sb, &why);
    std::string hex =
        st == jsv::kOk ? Hex(std::string(sb.data, sb.size)) : "!" + why;
    msgpack_sbuffer_destroy(&sb);
    info.GetReturnValue().Set(
        v8::String::NewFromUtf8(isolate, hex.c_str()).ToLocalChecked());
}

// packInner(value) for the test's script: the hex of value's msgpack, made
// by a conversion nested in the one running.
void
InstallPackInner(v8::Local<v8::Context> context)
{
    context->Global()
        ->Set(
            context,
            v8::String::NewFromUtf8Literal(context->GetIsolate(), "packInner"),
            v8::Function::New(context, PackInner).ToLocalChecked())
        .Check();
}

void
to_nested_conversion(void **state)
{
    V8_SCOPE(state);
    InstallPackInner(context);
    EXPECT_PACK("({a: 1, get b() { return packInner({x: [1, {y: 2}]}); },"
                " c: {d: 3}})",
                "{\"a\":1,\"b\":\"81a178920181a17902\",\"c\":{\"d\":3}}");
    EXPECT_PACK("[{get b() { return packInner({x: '\\ud800'}); }}, {c: 1}]",
                "[{\"b\":\"!value.x: string has a lone surrogate (U+D800 at "
                "index 0)\"},{\"c\":1}]");
}

// Once the walk over objects is made, what scripts change afterwards does
// not reach it: it holds the original Object.keys and reads only own
// elements of the array that gives.
void
walk_after_tampering(void **state)
{
    V8_SCOPE(state);
    EXPECT_PACK("({a: {b: 1}})", "{\"a\":{\"b\":1}}"); // the walk is made
    Eval(context,
         "Object.keys = () => ['zzz'];"
         "Object.defineProperty(Array.prototype, '0', {get() { throw new "
         "Error('element getter'); }, configurable: true});"
         "Object.defineProperty(Object.prototype, 'length', {get() { throw new "
         "Error('length getter'); }, configurable: true});"
         "Function.prototype.call = Function.prototype.apply = () => { throw "
         "new Error('call'); };");
    EXPECT_PACK("({a: {b: [1, 2]}, c: 'd'})",
                "{\"a\":{\"b\":[1,2]},\"c\":\"d\"}");
    Eval(context, "delete Array.prototype[0]; delete Object.prototype.length");
}

// A getter that throws while an object is walked: its error's stack names
// the walk, jshost's own frames (docs/values.md says so).
void
walk_in_stacks(void **state)
{
    V8_SCOPE(state);
    v8::Local<v8::Value> v =
        Eval(context, "({a: {get b() { throw new Error('x'); }}})");
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    std::string why;
    v8::TryCatch tc(isolate);
    assert_int_equal(jsv::ToMsgpack(context, v, &sb, &why), jsv::kException);
    msgpack_sbuffer_destroy(&sb);
    assert_true(tc.HasCaught());
    v8::Local<v8::Value> stack;
    assert_true(tc.StackTrace(context).ToLocal(&stack));
    v8::String::Utf8Value text(isolate, stack);
    std::string st = *text ? *text : "";
    if (st.find("Error: x\n") != 0 ||
        st.find("at walk (jshost:values:") == std::string::npos) {
        print_error("stack: %s\n", st.c_str());
        fail();
    }
}

// Numbers and strings inside an object or array (written by the encoder,
// worker/js/values-encode.js) come out byte for byte as at the top (written
// by native code): every int form and its edges, floats, -0, and strings
// each side of the fixstr, str8 and native lengths, ASCII or not.
void
to_nested_forms(void **state)
{
    V8_SCOPE(state);
    static const char *const cases[] = {
        "0",
        "-0",
        "1",
        "-1",
        "31",
        "32",
        "127",
        "128",
        "255",
        "256",
        "65535",
        "65536",
        "-32",
        "-33",
        "-128",
        "-129",
        "-32768",
        "-32769",
        "2**31 - 1",
        "2**31",
        "-(2**31)",
        "-(2**31) - 1",
        "2**32 - 1",
        "2**32",
        "2**53",
        "-(2**53)",
        "2**53 + 2",
        "2**63 - 1024",
        "2**63",
        "-(2**63)",
        "-(2**63) - 2048",
        "2**64",
        "1.5",
        "-1.5",
        "0.1",
        "NaN",
        "Infinity",
        "-Infinity",
        "1e300",
        "5e-324",
        "-5e-324",
        "1e21",
        "-1e21",
        "4294967295.5",
        "123n",
        "-(2n**63n)",
        "2n**64n",
        "true",
        "false",
        "null",
        "''",
        "'a'",
        "'x'.repeat(31)",
        "'x'.repeat(32)",
        "'x'.repeat(85)",
        "'x'.repeat(86)",
        "'x'.repeat(300)",
        "'\\u00e9'.repeat(15)",
        "'\\u00e9'.repeat(16)",
        "'\\u00e9'.repeat(42)",
        "'\\u00e9'.repeat(43)",
        "'\\u20ac'.repeat(10)",
        "'\\u20ac'.repeat(11)",
        "'\\u20ac'.repeat(85)",
        "'\\u20ac'.repeat(86)",
        "'x'.repeat(30) + '\\u20ac'",
        "'a\\ud83d\\ude00b'",
        "'\\ud83d\\ude00'.repeat(20)",
        "'\\ud83d\\ude00'.repeat(43)",
        "'a\\u0000b'",
        "'\\u007f\\u0080\\u07ff\\u0800\\uffff\\ud7ff\\ue000'",
        "'k' + '\\u00ff'.repeat(100)",
        "new Date(1123)",
        "/x/g",
        "new Uint8Array([1, 2])",
        "new Number(-0)",
        "new String('s')",
    };
    for (const char *src : cases) {
        std::string top = PackHex(context, src);
        std::string in_array = "[" + std::string(src) + "]";
        std::string in_object = "({k: " + std::string(src) + "})";
        EXPECT_EQ_STR(PackHex(context, in_array.c_str()), "91" + top, src);
        EXPECT_EQ_STR(PackHex(context, in_object.c_str()), "81a16b" + top, src);
        std::string as_key = "({[" + std::string(src) + "]: 1})";
        if (src[0] == '\'')
            EXPECT_EQ_STR(PackHex(context, as_key.c_str()), "81" + top + "01",
                          as_key.c_str());
    }
}

// Failures found by the encoder carry the path and the words native code
// gave them before: lone surrogates in short and long (native) strings, in
// keys and values, under Maps, Sets, arrays and Errors; cycles and depth
// reached through toJSON.
void
to_error_paths(void **state)
{
    V8_SCOPE(state);
    EXPECT_PACK("({a: {b: [0, {c: 'ok', d: 'x\\ud800'}]}})",
                "!invalid: value.a.b[1].d: string has a lone surrogate "
                "(U+D800 at index 1)");
    EXPECT_PACK("({a: {b: ['y'.repeat(100) + '\\udc00']}})",
                "!invalid: value.a.b[0]: string has a lone surrogate (U+DC00 "
                "at index 100)");
    EXPECT_PACK("({a: [{['\\u20ac\\ud800']: 1}]})",
                "!invalid: value.a[0][\"\xe2\x82\xac\xef\xbf\xbd\"]: string "
                "has a lone surrogate (U+D800 at index 1)");
    EXPECT_PACK("({a: {['z'.repeat(90) + '\\ud800']: 1}})",
                "!invalid: value.a[\"" + std::string(64, 'z') +
                    "...\"]: string has a lone surrogate (U+D800 at index "
                    "90)");
    EXPECT_PACK("({a: '\\ud83d\\ud83d'})",
                "!invalid: value.a: string has a lone surrogate (U+D83D at "
                "index 0)");
    EXPECT_PACK("[new Set([1, new Map([[2, ['\\udfff']]])])]",
                "!invalid: value[0][1].get(2)[0]: string has a lone "
                "surrogate (U+DFFF at index 0)");
    EXPECT_PACK("({e: Object.assign(new Error('m\\ud800'), {stack: 's'})})",
                "!invalid: value.e.message: string has a lone surrogate "
                "(U+D800 at index 1)");
    EXPECT_PACK("({e: Object.assign(new Error('m'), {stack: 's', x: "
                "[['\\ud800']]})})",
                "!invalid: value.e.x[0][0]: string has a lone surrogate "
                "(U+D800 at index 0)");
    EXPECT_PACK("(() => { const a = {}; a.m = new Map([['k', [1, {a}]]]);"
                " return [a]; })()",
                "!invalid: value[0].m.get(\"k\")[1].a: cycle (an object "
                "contains itself)");
    EXPECT_PACK("(() => { const s = new Set(); s.add({t: {toJSON() { return "
                "s; }}}); return {s}; })()",
                "!invalid: value.s[0].t: cycle (an object contains itself)");
    EXPECT_PACK("(() => { let o = {toJSON() { return [this.n]; }}; o.n = {x: "
                "o}; return {o}; })()",
                "!invalid: value.o[0].x[0]: cycle (an object contains itself)");
    EXPECT_PACK("(() => { const f = (n) => n ? {toJSON: () => [f(n - 1)]} : "
                "0; return f(31); })()",
                "!invalid: value" + Nested("[0]", 30, "") +
                    ": nested deeper than 30 levels");
    EXPECT_PACK("({d: {e: new Date(NaN)}})",
                "!invalid: value.d.e: invalid Date");
    EXPECT_PACK("({a: new Proxy([], {get: (t, k) => k === 'length' ? 2 ** 27 "
                ": undefined})})",
                "!invalid: value.a: array longer than 67108864 elements");
}

// toJSON gets the key JSON.stringify passes: the property name, the index
// as a string in arrays and Sets, the Map's key itself for its values; it is
// called once (what it returns is not asked again), on functions too.
void
to_json_keys(void **state)
{
    V8_SCOPE(state);
    Eval(context, "globalThis.tk = {toJSON(k) { return typeof k + ':' + k; "
                  "}};");
    EXPECT_PACK("({a: {b: [0, tk]}})", "{\"a\":{\"b\":[0,\"string:1\"]}}");
    EXPECT_PACK("new Set([0, 0, tk])", "[0,\"string:1\"]");
    EXPECT_PACK("new Map([[7, tk], [tk, 1], ['s', tk]])",
                "{7:\"number:7\",\"string:1\":1,\"s\":\"string:s\"}");
    EXPECT_PACK("({f: Object.assign(() => 1, {toJSON(k) { return k; }})})",
                "{\"f\":\"f\"}");
    EXPECT_PACK("({a: {toJSON() { return {toJSON() { return 1; }, b: 2}; "
                "}}})",
                "{\"a\":{\"b\":2}}");
    EXPECT_PACK("[{toJSON() { return new Date(0); }}, {toJSON() { return "
                "Object(2n); }}]",
                "[ext(-1,00000000),2]");
    EXPECT_PACK("({r: Object.assign(/x/, {toJSON(k) { return k + 1; }})})",
                "{\"r\":\"r1\"}");
    EXPECT_PACK("({v: Object.assign(new Uint8Array([1]), {toJSON() { return "
                "1; }})})",
                "{\"v\":b'01'}");
}

// A getter that changes what is being walked: the bytes stay well-formed
// msgpack and say what JSON.stringify says.
void
to_mutation_during_walk(void **state)
{
    V8_SCOPE(state);
    static const char *const cases[] = {
        "(() => { const o = {get a() { delete o.b; delete o.c; o.z = 1;"
        " return 1; }, b: 2, c: 3, d: 4}; return o; })()",
        "(() => { const o = {}; for (let i = 0; i < 20; i++) o['k' + i] = i;"
        " Object.defineProperty(o, 'k0', {enumerable: true, get() {"
        " for (let i = 1; i < 20; i++) delete o['k' + i]; return 0; }});"
        " return o; })()",
        "(() => { const a = [1, 2, 3, 4]; Object.defineProperty(a, 0, {get() "
        "{ a.length = 1; return 0; }}); return a; })()",
        "(() => { const a = [1, {get x() { a.push(9); a[3] = 'r'; return 1; "
        "}}, 3, 4]; return a; })()",
        "(() => { const o = {a: {b: 1}, get c() { o.a.b = 2; o.d = 5; return "
        "3; }, d: 4}; return o; })()",
    };
    for (const char *src : cases)
        EXPECT_AS_JSON(src);
}

// Proxies, as JSON.stringify sees them: Array.isArray sees through them
// (through a proxy of a proxy too), elements and keys come from the traps.
void
to_proxies(void **state)
{
    V8_SCOPE(state);
    EXPECT_PACK("new Proxy(new Proxy([1, [2]], {}), {})", "[1,[2]]");
    EXPECT_PACK("({p: new Proxy([5, 6, 7], {get: (t, k) => k === 'length' ? "
                "'2' : t[k] * 10})})",
                "{\"p\":[50,60]}");
    EXPECT_PACK("[new Proxy({b: 1, a: 2}, {get: (t, k) => typeof k === "
                "'string' ? k + t[k] : undefined})]",
                "[{\"b\":\"b1\",\"a\":\"a2\"}]");
    EXPECT_PACK("new Proxy({}, {get: (t, k) => k === 'toJSON' ? (() => "
                "'tj') : undefined})",
                "\"tj\"");
    Eval(context,
         "globalThis.plog = [];"
         "globalThis.pv = {x: new Proxy({a: [1]}, {"
         " get(t, k) { plog.push('get ' + String(k)); return t[k]; },"
         " ownKeys(t) { plog.push('ownKeys'); return Reflect.ownKeys(t); }"
         "})};");
    EXPECT_PACK("pv", "{\"x\":{\"a\":[1]}}");
    EXPECT_EQ_STR(EvalString(context, "plog.join()"),
                  "get toJSON,ownKeys,get a", "traps");
}

// Scripts replace what the encoder calls after the context was made and
// before its first conversion: what is packed, and how it fails, stay the
// same.
void
to_hostile_builtins(void **state)
{
    V8_SCOPE(state);
    static const char *const cases[] = {
        "({a: [1, -2, 3.5, -0, 2**40, 'x', '\\u00e9\\u20ac\\ud83d\\ude00', "
        "'y'.repeat(200), null, true], b: {c: new Map([[1, new Set([2])]])}})",
        "(() => { const o = {}; for (let i = 0; i < 40; i++) o['k' + i] = i % "
        "3 ? {i, s: 's' + i} : undefined; return o; })()",
        "[new Date(5), new Uint8Array([1, 2]), new Number(4), /r/g, 5n, "
        "Object.assign(new Error('e'), {stack: 's'}), {toJSON(k) { return k; "
        "}}]",
        "Array.from({length: 3000}, (_, i) => ({i, f: i / 3, s: 'v' + i}))",
        // (a handler without a prototype: the script's getters on
        // Object.prototype would be its traps)
        "[new Proxy([1, 2], {__proto__: null}), new Proxy({a: 1}, "
        "{__proto__: null})]",
        "(() => { const a = {b: {}}; a.b.c = [a]; return a; })()",
        "({k: [0, {['\\ud800']: 1}]})",
        "({k: ['z'.repeat(100) + '\\ud800']})",
    };
    // What each packs to in a context of its own that no script touched.
    std::vector<std::string> names, before;
    {
        v8::Local<v8::Context> clean = v8::Context::New(isolate);
        v8::Context::Scope scope(clean);
        for (const char *src : cases)
            before.push_back(PackHex(clean, src));
    }
    // Here the builtins are kept when the context is made (as RealmNew does;
    // again for the context without them), and the encoder is first made
    // after the script has replaced them.
    assert_true(jsv::EncoderInstall(context));
    for (const char *src : cases) {
        names.push_back("hv" + std::to_string(names.size()));
        std::string set = "globalThis." + names.back() + " = " + src;
        Eval(context, set.c_str());
    }
    Eval(context, R"JS(
      const thrower = () => { throw new Error('tampered'); };
      String.prototype.charCodeAt = () => 0x41;
      Object.keys = () => ['zzz'];
      Array.isArray = () => false;
      Object.getPrototypeOf = () => Date.prototype;
      Reflect.apply = thrower;
      Math.floor = () => 0;
      DataView.prototype.setFloat64 = thrower;
      Function.prototype.call = Function.prototype.apply = thrower;
      Function.prototype.bind = thrower;
      const ta = Object.getPrototypeOf(Uint8Array.prototype);
      for (const m of ['set', 'copyWithin', 'subarray', 'fill', 'slice'])
        ta[m] = thrower;
      for (const g of ['length', 'buffer', 'byteLength', 'byteOffset'])
        Object.defineProperty(ta, g, {__proto__: null, get: thrower, configurable: true});
      globalThis.Uint8Array = globalThis.ArrayBuffer = thrower;
      globalThis.Float64Array = globalThis.DataView = thrower;
      for (let i = 0; i < 100; i++) {
        Object.defineProperty(Array.prototype, i,
          {__proto__: null, get: thrower, set: thrower, configurable: true});
        Object.defineProperty(Object.prototype, i,
          {__proto__: null, get: thrower, set: thrower, configurable: true});
      }
      for (const k of ['get', 'set', 'value', 'length'])
        Object.defineProperty(Object.prototype, k,
          {__proto__: null, get: thrower, set: thrower, configurable: true});
      Array.prototype[Symbol.iterator] = thrower;
      Map.prototype.entries = Map.prototype.forEach = thrower;
      Set.prototype.values = Set.prototype.forEach = thrower;
    )JS");
    for (size_t i = 0; i < before.size(); i++)
        EXPECT_EQ_STR(PackHex(context, names[i].c_str()), before[i], cases[i]);
}

// Conversions started by a getter in the middle of another one (as a host
// function may): each writes its own bytes, whatever the other's scratch
// does (grows, is dropped for being big), and an inner one that fails or
// throws leaves the outer one as it was.
void
to_nested_scratch(void **state)
{
    V8_SCOPE(state);
    InstallPackInner(context);
    Eval(context, "globalThis.big = (n) => Array.from({length: n}, (_, i) =>"
                  " ({i, s: 'x'.repeat(i % 50)}));"
                  "globalThis.len = (h) => h.length / 2;");
    // The outer value has grown its scratch before the getter runs, and
    // goes on growing it after; the inner ones grow theirs past the size
    // that is kept, and nest once more. JSON.stringify of the same (which
    // runs the same inner conversions) says what to expect.
    static const char *const cases[] = {
        "({a: big(2000), get b() { return [len(packInner(big(30000))),"
        " len(packInner({s: 'y'.repeat(3 << 20)})),"
        " packInner([1, {get c() { return packInner({q: [2]}); }}])]; },"
        " c: 'z', d: big(300)})",
        "[{get x() { try { packInner({get y() { throw new Error('inner'); "
        "}}); } catch (e) { return e.message; } }}, 'after', {z: [1, 2]}, "
        "big(500)]",
    };
    for (const char *src : cases) {
        std::string json =
            "JSON.parse(JSON.stringify(" + std::string(src) + "))";
        std::string want = PackView(context, json.c_str());
        assert_true(want[0] == '[' || want[0] == '{');
        EXPECT_EQ_STR(PackView(context, src), want, src);
    }
    EXPECT_PACK("({a: [1, 2], get b() { return packInner([[[{c: "
                "'\\ud800'}]]]); }, d: {e: 'f'}})",
                "{\"a\":[1,2],\"b\":\"!value[0][0][0].c: string has a lone "
                "surrogate (U+D800 at index 0)\",\"d\":{\"e\":\"f\"}}");
}

// A getter's conversion that the watchdog cuts short in the middle of
// another one: both end with kException, and the next conversion starts
// from a whole scratch and packs right.
void
to_terminated_nested(void **state)
{
    V8_SCOPE(state);
    InstallPackInner(context);
    v8::Local<v8::Value> v =
        Eval(context, "({a: 'x'.repeat(100), b: [1, 2], get c() {"
                      " return packInner({d: [3], get e() { for (;;) {} }});"
                      " }, f: 4})");
    Packed p = PackTerminated(context, v);
    assert_int_equal(p.st, jsv::kException);
    assert_true(p.threw);
    isolate->CancelTerminateExecution();
    EXPECT_PACK("[1, {a: 'yy', b: [2.5]}, 'z'.repeat(90)]",
                "[1,{\"a\":\"yy\",\"b\":[f:2.5]},\"" + std::string(90, 'z') +
                    "\"]");
    EXPECT_PACK("({get c() { return packInner([{d: 1}]); }})",
                "{\"c\":\"9181a16401\"}");
}

// A value bigger than the scratch kept between conversions, then small ones:
// each packs right.
void
to_scratch_sizes(void **state)
{
    V8_SCOPE(state);
    std::string x = Repeat("78", 1 << 21);
    EXPECT_EQ_STR(PackHex(context, "({a: 'x'.repeat(2 ** 21), b: [1, 2]})"),
                  "82a161db00200000" + x + "a162920102", "2 MiB string");
    EXPECT_EQ_STR(PackHex(context, "({a: 1})"), "81a16101", "small after");
    EXPECT_EQ_STR(PackHex(context, "[new Uint8Array(2 ** 21).fill(120), {}]"),
                  "92c6"
                  "00200000" +
                      x + "80",
                  "2 MiB of bytes");
    EXPECT_EQ_STR(PackHex(context, "[[]]"), "9190", "small after bytes");
    Packed p = Pack(context, Eval(context, "(() => { const o = {}; for (let i "
                                           "= 0; i < 70000; i++) o['k' + i] "
                                           "= i % 2 ? i : undefined; return "
                                           "o; })()"));
    assert_int_equal(p.st, jsv::kOk);
    EXPECT_EQ_STR(Hex(p.bytes.substr(0, 3)), "de88b8", "35000 of 70000 kept");
    EXPECT_EQ_STR(ViewBytes(p.bytes).substr(0, 19), "{\"k1\":1,\"k3\":3,\"k5\"",
                  "after the header");
}

// The sbuffer form appends to what the buffer held.
void
to_sbuffer_appends(void **state)
{
    V8_SCOPE(state);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_sbuffer_write(&sb, "\x01\x02", 2);
    std::string why;
    assert_int_equal(
        jsv::ToMsgpack(context, Eval(context, "({a: [1, 'b']})"), &sb, &why),
        jsv::kOk);
    EXPECT_EQ_STR(Hex(std::string(sb.data, sb.size)), "010281a1619201a162",
                  "appended");
    msgpack_sbuffer_destroy(&sb);
}

// With the builtins installed, ToMsgpack lists keys with the original
// Object.keys: a script that replaces it changes nothing.
void
keys_after_tampering(void **state)
{
    V8_SCOPE(state);
    // Install kept the original where ToMsgpack looks for it.
    v8::Local<v8::Value> kept;
    assert_true(
        context->Global()
            ->GetPrivate(context,
                         v8::Private::ForApi(
                             isolate, v8::String::NewFromUtf8Literal(
                                          isolate, jsv::kObjectKeysPrivate)))
            .ToLocal(&kept));
    assert_true(kept->IsFunction());
    Eval(context, "Object.keys = () => ['zzz']; Object.prototype.zzz = 1;"
                  "Object.defineProperty(Object.prototype, 'zzz', "
                  "{enumerable: false})");
    EXPECT_PACK("({a: 1, b: {c: [2]}})", "{\"a\":1,\"b\":{\"c\":[2]}}");
    EXPECT_PACK(
        "new Proxy({p: 1}, {ownKeys: () => ['p', 'q'],"
        " getOwnPropertyDescriptor: (t, k) => k === 'p' ?"
        " {value: 1, enumerable: true, configurable: true} : undefined})",
        "{\"p\":1}");
}

// Each test again on a context set up as the worker's realms are (the
// builtins, then the value encoder made before any script ran): the same
// results as with an encoder made on first use.
int
SetupWithBuiltins(void **state)
{
    V8EnvSetup(state);
    V8Env *env = static_cast<V8Env *>(*state);
    v8::Isolate::Scope iscope(env->isolate);
    v8::HandleScope hscope(env->isolate);
    v8::Local<v8::Context> context = env->context.Get(env->isolate);
    v8::Context::Scope cscope(context);
    return jsb::Install(context) && jsv::EncoderInstall(context) ? 0 : -1;
}

} // namespace

int
main(int argc, char **argv)
{
    (void)argc;
    V8EnvInitPlatform(argv[0]);
#define PLAIN(t)                                                               \
    {                                                                          \
#t, t, V8EnvSetup, V8EnvTeardown, nullptr                              \
    }
#define BUILTINS(t)                                                            \
    {                                                                          \
#t "+builtins", t, SetupWithBuiltins, V8EnvTeardown, nullptr           \
    }
    const struct CMUnitTest tests[] = {
        PLAIN(from_scalars),
        PLAIN(from_containers),
        PLAIN(from_ext),
        PLAIN(from_errors),
        PLAIN(from_depth),
        PLAIN(to_scalars),
        PLAIN(to_binary_and_dates),
        PLAIN(to_containers),
        PLAIN(to_json_method),
        PLAIN(to_errors),
        PLAIN(to_depth),
        PLAIN(to_terminated),
        PLAIN(json_parity),
        PLAIN(round_trip),
        PLAIN(from_huge_array),
        PLAIN(to_packer_full),
        PLAIN(null_why),
        PLAIN(to_header_sizes),
        PLAIN(to_getter_order),
        PLAIN(key_caches),
        PLAIN(to_sbuffer_appends),
        PLAIN(to_nested_conversion),
        PLAIN(to_nested_forms),
        PLAIN(to_error_paths),
        PLAIN(to_json_keys),
        PLAIN(to_mutation_during_walk),
        PLAIN(to_proxies),
        PLAIN(to_hostile_builtins),
        PLAIN(to_nested_scratch),
        PLAIN(to_scratch_sizes),
        PLAIN(to_terminated_nested),
        BUILTINS(from_scalars),
        BUILTINS(from_containers),
        BUILTINS(from_ext),
        BUILTINS(from_errors),
        BUILTINS(from_depth),
        BUILTINS(to_scalars),
        BUILTINS(to_binary_and_dates),
        BUILTINS(to_containers),
        BUILTINS(to_json_method),
        BUILTINS(to_errors),
        BUILTINS(to_depth),
        BUILTINS(to_terminated),
        BUILTINS(json_parity),
        BUILTINS(round_trip),
        BUILTINS(from_huge_array),
        BUILTINS(to_packer_full),
        BUILTINS(null_why),
        BUILTINS(keys_after_tampering),
        BUILTINS(to_header_sizes),
        BUILTINS(to_getter_order),
        BUILTINS(key_caches),
        BUILTINS(to_nested_conversion),
        BUILTINS(walk_after_tampering),
        BUILTINS(walk_in_stacks),
        BUILTINS(to_nested_forms),
        BUILTINS(to_error_paths),
        BUILTINS(to_json_keys),
        BUILTINS(to_mutation_during_walk),
        BUILTINS(to_proxies),
        BUILTINS(to_hostile_builtins),
        BUILTINS(to_nested_scratch),
        BUILTINS(to_scratch_sizes),
        BUILTINS(to_terminated_nested),
    };
    int failed = cmocka_run_group_tests(tests, nullptr, nullptr);
    V8EnvShutdown();
    return failed;
}
