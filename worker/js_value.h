// Values across the boundary (docs/values.md): msgpack bytes <-> V8 values,
// directly, never through JSON. Internal to the engine (C++ only).
#ifndef JSHOST_JS_VALUE_H
#define JSHOST_JS_VALUE_H

#include <string>

#include <msgpack.h>
#include <v8.h>

struct proto_cur; // proto.h: the pull reader over msgpack bytes

namespace jsv
{

// jsb::Install keeps the context's original Object.keys under this private
// name (v8::Private::ForApi) on the global object; the value encoder lists
// an object's own enumerable keys with it (EncoderInstall keeps it too).
constexpr char kObjectKeysPrivate[] = "jshost.Object.keys";

// Keeps, as they are now, the builtins that the context's JavaScript encoder
// (worker/js/values-encode.js) calls: call it before any script of the
// context runs (RealmNew does), so that what a script replaces later does
// not reach the encoder. ToMsgpack makes the encoder from them on the first
// conversion of an object; in a context made without EncoderInstall it keeps
// the builtins as they are then. False with an exception pending if it
// failed.
bool EncoderInstall(v8::Local<v8::Context> context);

// Outcomes of a conversion.
enum Status {
    kOk = 0,
    kInvalid, // InvalidArgument: cycle, too deep, lone surrogate, bad UTF-8,
              // unknown ext, ...; *why says where and what ("value.a[3]: ...")
    kException, // JS threw (a getter, toJSON) or execution was terminated
                // (deadline, heap limit): the caller's TryCatch holds it
};

// msgpack -> V8, one whole item read from the bytes at cur (straight from a
// message's bytes, no msgpack-c tree), moving cur past it. Ints within ±2^53
// become Numbers, beyond BigInts; bin a Uint8Array; ext -1 a Date; ext 1 a
// BigInt; maps plain Objects (int keys are stringified, other non-str keys
// are kInvalid); nil null. Nesting limit: PROTO_VALUE_MAX_DEPTH. Bytes that
// end early or are not msgpack are kInvalid. Runs no JS.
Status FromMsgpack(v8::Local<v8::Context> context, proto_cur *cur,
                   v8::Local<v8::Value> *out, std::string *why);

// ext 2 (a callable, callback `id`): the engine's async function for it
// (worker/js_callable.cc), owned as the engine says at the time; kInvalid
// with *what where a callable cannot cross.
Status CallableFromId(v8::Local<v8::Context> context, uint32_t id,
                      v8::Local<v8::Value> *out, std::string *what);

// V8 -> msgpack, appended to sb. JSON.stringify's rules for functions,
// symbols and undefined (skipped in objects, null in arrays) and toJSON(); Map
// as map; every ArrayBuffer view and ArrayBuffer as bin; Date as ext -1;
// BigInt as int when it fits int64/uint64, else ext 1; -0, NaN, ±Infinity as
// float64. A top-level undefined packs as nil. Cycles and nesting past
// PROTO_VALUE_MAX_DEPTH are kInvalid. On kInvalid or kException sb may hold a
// partial value after what it held before: pack into a scratch buffer and
// discard it. Runs JS (getters, toJSON, proxy traps): under
// MicrotasksPolicy::kAuto microtasks could run in the middle of it; keep the
// isolate on kExplicit.
Status ToMsgpack(v8::Local<v8::Context> context, v8::Local<v8::Value> value,
                 msgpack_sbuffer *sb, std::string *why);

// The same, handed to pk's writer in one write once the whole value is packed
// (a writer that fails is kInvalid, "out of memory while packing a value").
// Packing into an sbuffer directly saves that copy.
Status ToMsgpack(v8::Local<v8::Context> context, v8::Local<v8::Value> value,
                 msgpack_packer *pk, std::string *why);

} // namespace jsv

#endif
