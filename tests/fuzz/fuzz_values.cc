// libFuzzer target for the engine's value conversion (worker/js_value.cc).
//
// The input is msgpack bytes, read by jsv::FromMsgpack straight from them
// as the worker reads a message's values: whatever the bytes are, it gives
// kOk or kInvalid and reads no byte past their end; bytes that end early or
// are not msgpack are kInvalid. Then what msgpack-c does not unpack as
// exactly one value is skipped. The value goes msgpack -> JS (jsv::FromMsgpack)
// -> msgpack (jsv::ToMsgpack) three times over, each time from the previous
// packing:
// - FromMsgpack gives kOk or kInvalid (with a message), never kException: the
//   data has no getters, nothing can throw. More than PROTO_VALUE_MAX_DEPTH
//   nested arrays and maps are kInvalid.
// - Whatever FromMsgpack made, ToMsgpack packs with kOk, and that packing
//   converts back with kOk.
// - The first packing holds the input's value as JS holds it, by
// docs/values.md's
//   table: integral Numbers as ints, BigInts that fit 64 bits as ints,
//   Dates to the millisecond, map keys as strings in JS's own order (array
//   indices first), a repeated key once with its last value.
// - The packings are canonical: the first, second and third are the same
//   bytes (msgpack -> JS may lose what JS cannot hold, but only once).
// - Packing in a context that keeps the original Object.keys (as
//   jsb::Install does) gives the same bytes as in one without it (the value
//   encoder made with the kept one, or with Object.keys as it is).
// - The same value rebuilt in JS as Maps, proxies, ArrayBuffers, DataViews,
//   boxed primitives, with skipped extra properties (kReshape) packs the
//   same bytes as the first packing.
// Anything inconsistent aborts, which libFuzzer reports as a crash.
//
// One isolate and two contexts serve the whole run: creating an isolate per
// input would cost more than the conversion.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <libplatform/libplatform.h>
#include <msgpack.h>
#include <msgpack/timestamp.h>
#include <v8.h>

#include "fuzz_msgpack.h"
#include "js_value.h"
#include "proto.h"

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "fuzz_values: check failed: %s (line %d)\n",       \
                    #cond, __LINE__);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

// Only js_value.cc is linked, not the engine: a callable (ext 2) is refused
// here as where no engine owns the conversion (js_callable.cc's answer then).
namespace jsv
{
Status
CallableFromId(v8::Local<v8::Context>, uint32_t, v8::Local<v8::Value> *,
               std::string *what)
{
    *what = "a callable cannot cross here";
    return kInvalid;
}
} // namespace jsv

namespace
{

v8::Isolate *g_isolate;
v8::Global<v8::Context> g_plain;    // no Object.keys private
v8::Global<v8::Context> g_keys;     // with it
v8::Global<v8::Function> g_reshape; // in g_keys

// Rebuilds a value from FromMsgpack in the other shapes ToMsgpack must pack
// the same way: objects as Maps of their entries, arrays behind a Proxy,
// Uint8Arrays as their ArrayBuffer, a DataView or a copy, primitives boxed,
// and extra properties that are skipped (undefined, a function). A seed picks
// which; no getter, toJSON or trap is involved, so nothing may throw.
const char kReshape[] = R"JS(
(function (value, seed) {
  let s = seed >>> 0;
  const pick = (n) => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return (s >>> 16) % n;
  };
  const define = (o, k, v) => Object.defineProperty(o, k,
      {value: v, enumerable: true, writable: true, configurable: true});
  const walk = (v) => {
    if (v === null) return v;
    switch (typeof v) {
      case 'number': return pick(4) === 0 ? new Number(v) : v;
      case 'string': return pick(4) === 0 ? new String(v) : v;
      case 'boolean': return pick(4) === 0 ? new Boolean(v) : v;
      case 'bigint': return pick(4) === 0 ? Object(v) : v;
    }
    if (v instanceof Date) return v;
    if (v instanceof Uint8Array) {
      switch (pick(4)) {
        case 0: return v.buffer;
        case 1: return new DataView(v.buffer);
        case 2: return new Uint8Array(v);
        default: return v;
      }
    }
    if (Array.isArray(v)) {
      const a = v.map(walk);
      return pick(4) === 0 ? new Proxy(a, {}) : a;
    }
    const keys = Object.keys(v);
    if (pick(3) === 0) {
      const m = new Map();
      for (const k of keys) m.set(k, walk(v[k]));
      return m;
    }
    const o = {};
    for (const k of keys) define(o, k, walk(v[k]));
    if (pick(3) === 0 && !Object.prototype.hasOwnProperty.call(o, '\0skip'))
      define(o, '\0skip', pick(2) === 0 ? undefined : () => 1);
    return o;
  };
  return walk(value);
})
)JS";

// Nesting of arrays and maps (a scalar is 0).
int
Depth(const msgpack_object &o)
{
    int d = 0;
    if (o.type == MSGPACK_OBJECT_ARRAY) {
        for (uint32_t i = 0; i < o.via.array.size; i++)
            d = std::max(d, Depth(o.via.array.ptr[i]));
        return d + 1;
    }
    if (o.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < o.via.map.size; i++)
            d = std::max(
                {d, Depth(o.via.map.ptr[i].key), Depth(o.via.map.ptr[i].val)});
        return d + 1;
    }
    return 0;
}

std::string
Hex(const std::string &s)
{
    std::string out;
    char b[4];
    for (unsigned char c : s) {
        snprintf(b, sizeof b, "%02x", c);
        out += b;
    }
    return out;
}

// ---------------------------------------------------------------------------
// What the first packing must say, given the input (docs/values.md): the same
// value, as JS holds it. Written from the table, not from js_value.cc.

// An integer (int or ext 1) as minimal two's complement big-endian bytes.
bool
IntBytes(const msgpack_object &o, std::vector<unsigned char> *out)
{
    out->clear();
    if (o.type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
        o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        uint64_t v = o.via.u64; // i64 shares the bits
        out->push_back(o.type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? 0xff : 0);
        for (int k = 8; k-- > 0;)
            out->push_back((unsigned char)(v >> (8 * k)));
    } else if (o.type == MSGPACK_OBJECT_EXT && o.via.ext.type == 1) {
        const unsigned char *b = (const unsigned char *)o.via.ext.ptr;
        out->assign(b, b + o.via.ext.size);
        if (out->empty())
            out->push_back(0);
    } else {
        return false;
    }
    while (out->size() > 1 && (((*out)[0] == 0 && !((*out)[1] & 0x80)) ||
                               ((*out)[0] == 0xff && ((*out)[1] & 0x80))))
        out->erase(out->begin());
    return true;
}

bool
Same(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

// The canonical decimal of an array index (0 .. 2^32-2): V8 lists those
// keys first, in numeric order.
bool
ArrayIndex(const std::string &k, uint32_t *idx)
{
    if (k.empty() || k.size() > 10 || (k.size() > 1 && k[0] == '0'))
        return false;
    uint64_t v = 0;
    for (char c : k) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (uint64_t)(c - '0');
    }
    if (v > 4294967294u)
        return false;
    *idx = (uint32_t)v;
    return true;
}

bool Equivalent(const msgpack_object &in, const msgpack_object &out);

bool
EquivalentMap(const msgpack_object &in, const msgpack_object &out)
{
    // Keys as strings, a repeated key keeping its first place and its last
    // value, then array indices first in numeric order.
    struct Entry {
        std::string key;
        const msgpack_object *val;
        bool index;
        uint32_t idx;
    };
    std::vector<Entry> want;
    for (uint32_t i = 0; i < in.via.map.size; i++) {
        const msgpack_object &k = in.via.map.ptr[i].key;
        std::string key;
        if (k.type == MSGPACK_OBJECT_STR)
            key.assign(k.via.str.ptr, k.via.str.size);
        else if (k.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            key = std::to_string(k.via.u64);
        else
            key = std::to_string(k.via.i64);
        bool found = false;
        for (Entry &e : want)
            if (e.key == key) {
                e.val = &in.via.map.ptr[i].val;
                found = true;
            }
        if (!found) {
            Entry e{key, &in.via.map.ptr[i].val, false, 0};
            e.index = ArrayIndex(key, &e.idx);
            want.push_back(e);
        }
    }
    std::stable_sort(want.begin(), want.end(),
                     [](const Entry &a, const Entry &b) {
                         if (a.index != b.index)
                             return a.index;
                         return a.index && a.idx < b.idx;
                     });
    if (out.via.map.size != want.size())
        return false;
    for (size_t i = 0; i < want.size(); i++) {
        const msgpack_object &k = out.via.map.ptr[i].key;
        if (k.type != MSGPACK_OBJECT_STR ||
            !Same(k.via.str.ptr, k.via.str.size, want[i].key.data(),
                  want[i].key.size()) ||
            !Equivalent(*want[i].val, out.via.map.ptr[i].val))
            return false;
    }
    return true;
}

bool
Equivalent(const msgpack_object &in, const msgpack_object &out)
{
    std::vector<unsigned char> a, b;
    switch (in.type) {
    case MSGPACK_OBJECT_NIL:
        return out.type == MSGPACK_OBJECT_NIL;
    case MSGPACK_OBJECT_BOOLEAN:
        return out.type == MSGPACK_OBJECT_BOOLEAN &&
               out.via.boolean == in.via.boolean;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return IntBytes(in, &a) && IntBytes(out, &b) && a == b &&
               out.type != MSGPACK_OBJECT_EXT;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: {
        double d = in.via.f64;
        if (out.type == MSGPACK_OBJECT_FLOAT64)
            return (std::isnan(d) && std::isnan(out.via.f64)) ||
                   memcmp(&d, &out.via.f64, sizeof d) == 0;
        // An integral Number within int64 goes out as an int (not -0).
        if (!std::isfinite(d) || d != std::trunc(d) ||
            (d == 0 && std::signbit(d)) || d < -9223372036854775808.0 ||
            d >= 9223372036854775808.0)
            return false;
        if (out.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return (double)out.via.u64 == d && out.via.u64 == (uint64_t)d;
        if (out.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return out.via.i64 == (int64_t)d;
        return false;
    }
    case MSGPACK_OBJECT_STR:
        return out.type == MSGPACK_OBJECT_STR &&
               Same(in.via.str.ptr, in.via.str.size, out.via.str.ptr,
                    out.via.str.size);
    case MSGPACK_OBJECT_BIN:
        return out.type == MSGPACK_OBJECT_BIN &&
               Same(in.via.bin.ptr, in.via.bin.size, out.via.bin.ptr,
                    out.via.bin.size);
    case MSGPACK_OBJECT_ARRAY:
        if (out.type != MSGPACK_OBJECT_ARRAY ||
            out.via.array.size != in.via.array.size)
            return false;
        for (uint32_t i = 0; i < in.via.array.size; i++)
            if (!Equivalent(in.via.array.ptr[i], out.via.array.ptr[i]))
                return false;
        return true;
    case MSGPACK_OBJECT_MAP:
        return out.type == MSGPACK_OBJECT_MAP && EquivalentMap(in, out);
    case MSGPACK_OBJECT_EXT:
        if (in.via.ext.type == 1) // a BigInt: as int when it fits 64 bits
            return IntBytes(in, &a) && IntBytes(out, &b) && a == b &&
                   (out.type == MSGPACK_OBJECT_EXT) ==
                       (a.size() > 9 || (a.size() == 9 && a[0] != 0));
        if (in.via.ext.type == -1) { // a Date: milliseconds, rounded down
            msgpack_timestamp ti, to;
            if (out.type != MSGPACK_OBJECT_EXT || out.via.ext.type != -1 ||
                !msgpack_object_to_timestamp(&in, &ti) ||
                !msgpack_object_to_timestamp(&out, &to))
                return false;
            return to.tv_nsec % 1000000 == 0 &&
                   to.tv_sec * 1000 + to.tv_nsec / 1000000 ==
                       ti.tv_sec * 1000 + ti.tv_nsec / 1000000;
        }
        return false;
    }
    return false;
}

// Checks the first packing against the input.
void
CheckFaithful(const msgpack_object &in, const std::string &packed)
{
    msgpack_zone zone;
    msgpack_object out;
    size_t off = 0;

    CHECK(msgpack_zone_init(&zone, 2048));
    CHECK(msgpack_unpack(packed.data(), packed.size(), &off, &zone, &out) ==
          MSGPACK_UNPACK_SUCCESS);
    if (!Equivalent(in, out))
        fprintf(stderr, "fuzz_values: packed as %s, not the same value\n",
                Hex(packed).c_str());
    CHECK(Equivalent(in, out));
    msgpack_zone_destroy(&zone);
}

// msgpack -> JS -> msgpack in one context. kOk with the bytes in *packed, or
// kInvalid (FromMsgpack refused the value).
jsv::Status
RoundTrip(v8::Local<v8::Context> context, const char *bytes, size_t len,
          std::string *packed)
{
    v8::HandleScope scope(g_isolate);
    v8::Context::Scope cscope(context);
    v8::TryCatch tc(g_isolate);
    v8::Local<v8::Value> v;
    std::string why;
    proto_cur cur;

    proto_cur_init(&cur, bytes, len);
    jsv::Status st = jsv::FromMsgpack(context, &cur, &v, &why);
    CHECK(!tc.HasCaught());
    CHECK(st == jsv::kOk || st == jsv::kInvalid);
    if (st == jsv::kInvalid) {
        CHECK(why.compare(0, 5, "value") == 0);
        return st;
    }
    CHECK(!v.IsEmpty());
    // One value read, exactly its bytes.
    CHECK((const char *)cur.p == bytes + len);

    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    why.clear();
    st = jsv::ToMsgpack(context, v, &pk, &why);
    if (st != jsv::kOk)
        fprintf(stderr, "fuzz_values: ToMsgpack: %d %s\n", (int)st,
                why.c_str());
    CHECK(st == jsv::kOk);
    CHECK(!tc.HasCaught());
    packed->assign(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return jsv::kOk;
}

// The input's value reshaped in JS (kReshape) packs as `want`.
void
CheckReshaped(const char *bytes, size_t len, uint32_t seed,
              const std::string &want)
{
    v8::Local<v8::Context> context = g_keys.Get(g_isolate);
    v8::HandleScope scope(g_isolate);
    v8::Context::Scope cscope(context);
    v8::TryCatch tc(g_isolate);
    v8::Local<v8::Value> v, args[2];
    std::string why;

    proto_cur cur;
    proto_cur_init(&cur, bytes, len);
    CHECK(jsv::FromMsgpack(context, &cur, &v, &why) == jsv::kOk);
    args[0] = v;
    args[1] = v8::Integer::NewFromUnsigned(g_isolate, seed);
    CHECK(g_reshape.Get(g_isolate)
              ->Call(context, v8::Undefined(g_isolate), 2, args)
              .ToLocal(&v));
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    jsv::Status st = jsv::ToMsgpack(context, v, &pk, &why);
    if (st != jsv::kOk)
        fprintf(stderr, "fuzz_values: reshaped (seed %u): %d %s\n", seed,
                (int)st, why.c_str());
    CHECK(st == jsv::kOk && !tc.HasCaught());
    std::string got(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (got != want)
        fprintf(stderr,
                "fuzz_values: reshaped (seed %u) packs as\n  %s\nnot\n  %s\n",
                seed, Hex(got).c_str(), Hex(want).c_str());
    CHECK(got == want);
}

// Unpacks bytes that must be exactly one value and round-trips them.
std::string
Again(v8::Local<v8::Context> context, const std::string &bytes)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;
    std::string out;

    CHECK(msgpack_zone_init(&zone, 2048));
    CHECK(msgpack_unpack(bytes.data(), bytes.size(), &off, &zone, &obj) ==
          MSGPACK_UNPACK_SUCCESS);
    CHECK(off == bytes.size());
    jsv::Status st = RoundTrip(context, bytes.data(), bytes.size(), &out);
    if (st != jsv::kOk)
        fprintf(stderr, "fuzz_values: our own packing %s is refused\n",
                Hex(bytes).c_str());
    CHECK(st == jsv::kOk);
    msgpack_zone_destroy(&zone);
    return out;
}

} // namespace

extern "C" int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    v8::V8::InitializeICUDefaultLocation((*argv)[0]);
    // Leaked on purpose: V8 lives as long as the process.
    v8::Platform *platform = v8::platform::NewDefaultPlatform(1).release();
    v8::V8::InitializePlatform(platform);
    v8::V8::Initialize();
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator =
        v8::ArrayBuffer::Allocator::NewDefaultAllocator();
    g_isolate = v8::Isolate::New(params);
    g_isolate->Enter();
    g_isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    v8::HandleScope scope(g_isolate);
    v8::Local<v8::Context> plain = v8::Context::New(g_isolate);
    v8::Local<v8::Context> keys = v8::Context::New(g_isolate);
    g_plain.Reset(g_isolate, plain);
    g_keys.Reset(g_isolate, keys);

    // What jsb::Install keeps: the context's own Object.keys.
    v8::Context::Scope cscope(keys);
    v8::Local<v8::Value> object, fn;
    CHECK(keys->Global()
              ->Get(keys, v8::String::NewFromUtf8Literal(g_isolate, "Object"))
              .ToLocal(&object));
    CHECK(object.As<v8::Object>()
              ->Get(keys, v8::String::NewFromUtf8Literal(g_isolate, "keys"))
              .ToLocal(&fn));
    CHECK(fn->IsFunction());
    CHECK(keys->Global()
              ->SetPrivate(
                  keys,
                  v8::Private::ForApi(g_isolate,
                                      v8::String::NewFromUtf8Literal(
                                          g_isolate, jsv::kObjectKeysPrivate)),
                  fn)
              .FromMaybe(false));

    v8::Local<v8::Script> script;
    v8::Local<v8::Value> reshape;
    CHECK(v8::Script::Compile(
              keys, v8::String::NewFromUtf8Literal(g_isolate, kReshape))
              .ToLocal(&script));
    CHECK(script->Run(keys).ToLocal(&reshape) && reshape->IsFunction());
    g_reshape.Reset(g_isolate, reshape.As<v8::Function>());
    return 0;
}

extern "C" int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msgpack_zone zone;
    msgpack_object obj;
    size_t off = 0;

    if (!fuzz_plausible(data, size))
        return 0;
    v8::HandleScope scope(g_isolate);
    v8::Local<v8::Context> plain = g_plain.Get(g_isolate);
    v8::Local<v8::Context> keys = g_keys.Get(g_isolate);
    {
        // Any bytes at all (a copy of just them, so that ASan sees a read
        // past their end): kOk or kInvalid, never more.
        std::vector<char> copy((const char *)data, (const char *)data + size);
        v8::HandleScope hs(g_isolate);
        v8::Context::Scope cscope(plain);
        v8::TryCatch tc(g_isolate);
        v8::Local<v8::Value> v;
        std::string why;
        proto_cur cur;
        proto_cur_init(&cur, copy.data(), copy.size());
        jsv::Status any = jsv::FromMsgpack(plain, &cur, &v, &why);
        CHECK(!tc.HasCaught());
        CHECK(any == jsv::kOk || (any == jsv::kInvalid && !why.empty()));
        CHECK(cur.p <= cur.end);
    }
    CHECK(msgpack_zone_init(&zone, 2048));
    if (msgpack_unpack((const char *)data, size, &off, &zone, &obj) !=
        MSGPACK_UNPACK_SUCCESS) {
        msgpack_zone_destroy(&zone);
        return 0;
    }

    std::string p1, p1k;
    jsv::Status st = RoundTrip(plain, (const char *)data, off, &p1);
    CHECK(RoundTrip(keys, (const char *)data, off, &p1k) == st);
    if (Depth(obj) > PROTO_VALUE_MAX_DEPTH)
        CHECK(st == jsv::kInvalid);
    if (st == jsv::kOk) {
        CHECK(p1 == p1k);
        CheckFaithful(obj, p1);
        std::string p2 = Again(plain, p1);
        std::string p3 = Again(plain, p2);
        if (p1 != p2 || p2 != p3)
            fprintf(stderr, "fuzz_values: not stable:\n  %s\n  %s\n  %s\n",
                    Hex(p1).c_str(), Hex(p2).c_str(), Hex(p3).c_str());
        CHECK(p2 == p3);
        CHECK(p1 == p2);
        CHECK(Again(keys, p2) == p3);
        uint32_t seed = 2166136261u;
        for (size_t i = 0; i < size; i++)
            seed = (seed ^ data[i]) * 16777619u;
        CheckReshaped((const char *)data, off, seed, p1);
    }
    msgpack_zone_destroy(&zone);
    return 0;
}
