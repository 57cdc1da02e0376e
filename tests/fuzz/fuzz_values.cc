// libFuzzer target for the engine's value conversion (worker/js_value.cc).
//
// The input is msgpack bytes; what msgpack-c does not unpack as exactly one
// value is skipped. The value goes msgpack -> JS (jsv::FromMsgpack) -> msgpack
// (jsv::ToMsgpack) three times over, each time from the previous packing:
// - FromMsgpack gives kOk or kInvalid (with a message), never kException: the
//   data has no getters, nothing can throw. More than PROTO_VALUE_MAX_DEPTH
//   nested arrays and maps are kInvalid.
// - Whatever FromMsgpack made, ToMsgpack packs with kOk, and that packing
//   converts back with kOk.
// - The packings are canonical: the first, second and third are the same
//   bytes (msgpack -> JS may lose what JS cannot hold, but only once).
// - Packing in a context that keeps the original Object.keys (as
//   jsb::Install does; the engine's fast path) gives the same bytes as in one
//   without it (GetOwnPropertyNames).
// Anything inconsistent aborts, which libFuzzer reports as a crash.
//
// One isolate and two contexts serve the whole run: creating an isolate per
// input would cost more than the conversion.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include <libplatform/libplatform.h>
#include <msgpack.h>
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

namespace
{

v8::Isolate *g_isolate;
v8::Global<v8::Context> g_plain; // no Object.keys private
v8::Global<v8::Context> g_keys;  // with it

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
            d = std::max({d, Depth(o.via.map.ptr[i].key),
                          Depth(o.via.map.ptr[i].val)});
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

// msgpack -> JS -> msgpack in one context. kOk with the bytes in *packed, or
// kInvalid (FromMsgpack refused the value).
jsv::Status
RoundTrip(v8::Local<v8::Context> context, const msgpack_object &obj,
          std::string *packed)
{
    v8::HandleScope scope(g_isolate);
    v8::Context::Scope cscope(context);
    v8::TryCatch tc(g_isolate);
    v8::Local<v8::Value> v;
    std::string why;

    jsv::Status st = jsv::FromMsgpack(context, obj, &v, &why);
    CHECK(!tc.HasCaught());
    CHECK(st == jsv::kOk || st == jsv::kInvalid);
    if (st == jsv::kInvalid) {
        CHECK(why.compare(0, 5, "value") == 0);
        return st;
    }
    CHECK(!v.IsEmpty());

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
    jsv::Status st = RoundTrip(context, obj, &out);
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
              ->SetPrivate(keys,
                           v8::Private::ForApi(
                               g_isolate, v8::String::NewFromUtf8Literal(
                                              g_isolate,
                                              jsv::kObjectKeysPrivate)),
                           fn)
              .FromMaybe(false));
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
    CHECK(msgpack_zone_init(&zone, 2048));
    if (msgpack_unpack((const char *)data, size, &off, &zone, &obj) !=
        MSGPACK_UNPACK_SUCCESS) {
        msgpack_zone_destroy(&zone);
        return 0;
    }
    v8::HandleScope scope(g_isolate);
    v8::Local<v8::Context> plain = g_plain.Get(g_isolate);
    v8::Local<v8::Context> keys = g_keys.Get(g_isolate);

    std::string p1, p1k;
    jsv::Status st = RoundTrip(plain, obj, &p1);
    CHECK(RoundTrip(keys, obj, &p1k) == st);
    if (Depth(obj) > PROTO_VALUE_MAX_DEPTH)
        CHECK(st == jsv::kInvalid);
    if (st == jsv::kOk) {
        CHECK(p1 == p1k);
        std::string p2 = Again(plain, p1);
        std::string p3 = Again(plain, p2);
        if (p1 != p2 || p2 != p3)
            fprintf(stderr, "fuzz_values: not stable:\n  %s\n  %s\n  %s\n",
                    Hex(p1).c_str(), Hex(p2).c_str(), Hex(p3).c_str());
        CHECK(p2 == p3);
        CHECK(p1 == p2);
        CHECK(Again(keys, p2) == p3);
    }
    msgpack_zone_destroy(&zone);
    return 0;
}
