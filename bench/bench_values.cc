// The worker's value conversion (worker/js_value_*.cc) against JSON in the
// same isolate: JS -> msgpack (jsv::ToMsgpack) against JSON.stringify of the
// same value, msgpack -> JS (jsv::FromMsgpack) against JSON.parse of the same
// value's JSON. The context is set up as the worker's (jsb::Install). Each
// figure is the best of nine interleaved rounds, in microseconds per
// conversion; "x JSON" is JSON's time over ours (>= 1: at least as fast as
// JSON).
//
// "cold" is the first conversion of the 1000-key object in a fresh isolate
// (a fresh worker: nothing compiled, no type feedback; the value encoder is
// compiled by it), against the first JSON.stringify of it in another, the
// median of seven. JSHOST_BENCH_SCALE (bench_scale.h) scales the
// rounds and their length.
//
// FromMsgpack reads the value's bytes as the worker does, straight from the
// message (no msgpack-c tree): the whole cost from the wire.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <libplatform/libplatform.h>
#include <msgpack.h>
#include <v8.h>

#include "bench_scale.h"
#include "js_builtins.h"
#include "js_value.h"
#include "proto.h"

namespace
{

// At JSHOST_BENCH_SCALE 1; main scales them.
int rounds = 9;
int cold_rounds = 7;
double round_seconds = 0.04; // per contender per round

struct Case {
    const char *name;
    const char *make; // JS that builds the value
    // JS that gives what stands for the value on the JSON side, given the
    // value as `value` (nullptr: the value itself)
    const char *json;
    const char *json_note;
};

const Case kCases[] = {
    {"1000-key object",
     "(() => { const o = {}; for (let i = 0; i < 1000; i++)"
     " o['k' + i] = {i: i + 7, s: 's' + i}; return o; })()",
     nullptr, nullptr},
    {"1000-element array",
     "Array.from({length: 1000}, (_, i) => ({i: i + 7, s: 's' + i}))", nullptr,
     nullptr},
    {"1 MiB string", "'x'.repeat(1024 * 1024)", nullptr, nullptr},
    {"1 MiB bytes",
     "(() => { const u = new Uint8Array(1024 * 1024);"
     " for (let i = 0; i < u.length; i++) u[i] = i * 7; return u; })()",
     // JSON has no bytes: the CLI's {"$bin": base64} form (docs/values.md)
     "({$bin: btoa((() => { let s = '';"
     " for (let i = 0; i < value.length; i += 8192)"
     " s += String.fromCharCode.apply(null, value.subarray(i, i + 8192));"
     " return s; })())})",
     "JSON side: {\"$bin\": base64}, made once"},
};

double
Now()
{
    return std::chrono::duration<double>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

v8::Local<v8::Value>
Run(v8::Local<v8::Context> context, const char *src)
{
    v8::Isolate *isolate = context->GetIsolate();
    v8::EscapableHandleScope scope(isolate);
    v8::TryCatch tc(isolate);
    v8::Local<v8::Script> script;
    v8::Local<v8::Value> out;
    if (!v8::Script::Compile(
             context, v8::String::NewFromUtf8(isolate, src).ToLocalChecked())
             .ToLocal(&script) ||
        !script->Run(context).ToLocal(&out)) {
        v8::String::Utf8Value msg(isolate, tc.Exception());
        fprintf(stderr, "bench_values: %s\n  in: %s\n", *msg ? *msg : "?", src);
        exit(1);
    }
    return scope.Escape(out);
}

// Calls fn() in a loop for about round_seconds; seconds per call.
template <typename F>
double
Time(F fn, long *iters)
{
    if (*iters == 0) { // calibrate once, then keep the count
        long n = 1;
        for (;;) {
            double t0 = Now();
            for (long i = 0; i < n; i++)
                fn();
            double dt = Now() - t0;
            if (dt > round_seconds / 4) {
                *iters = std::max(1L, (long)(n * round_seconds / dt));
                break;
            }
            n *= 2;
        }
    }
    double t0 = Now();
    for (long i = 0; i < *iters; i++)
        fn();
    return (Now() - t0) / *iters;
}

struct Best {
    double t = 1e9;
    long iters = 0;
    void Take(double x)
    {
        t = std::min(t, x);
    }
};

void
Fail(const char *what, const std::string &why)
{
    fprintf(stderr, "bench_values: %s: %s\n", what, why.c_str());
    exit(1);
}

void
Bench(v8::Isolate *isolate, v8::Local<v8::Context> context, const Case &c)
{
    v8::HandleScope hs(isolate);
    v8::Local<v8::Value> value = Run(context, c.make);
    context->Global()
        ->Set(context, v8::String::NewFromUtf8Literal(isolate, "value"), value)
        .Check();
    v8::Local<v8::Value> json_value = c.json ? Run(context, c.json) : value;
    v8::Local<v8::String> json =
        v8::JSON::Stringify(context, json_value).ToLocalChecked();

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    std::string why;
    if (jsv::ToMsgpack(context, value, &sb, &why) != jsv::kOk)
        Fail(c.name, why);
    std::string bytes(sb.data, sb.size);
    // One value from the bytes, as the worker reads a call's data.
    auto from_bytes = [&](v8::Local<v8::Value> *v) {
        proto_cur cur;
        proto_cur_init(&cur, bytes.data(), bytes.size());
        return jsv::FromMsgpack(context, &cur, v, &why) == jsv::kOk;
    };

    // BENCH_VALUES_LOOP=to|from|stringify|parse: that conversion alone,
    // BENCH_VALUES_N times (default: for 3 s), for a profiler or callgrind
    // (--toggle-collect=jsv::ToMsgpack* counts only the conversions).
    if (const char *loop = getenv("BENCH_VALUES_LOOP")) {
        const char *n_env = getenv("BENCH_VALUES_N");
        long n = n_env ? atol(n_env) : -1;
        double t0 = Now();
        for (long i = 0; n >= 0 ? i < n : Now() - t0 < 3; i++) {
            v8::HandleScope s(isolate);
            v8::Local<v8::Value> v;
            msgpack_sbuffer_clear(&sb);
            bool ok = true;
            if (strcmp(loop, "to") == 0)
                ok = jsv::ToMsgpack(context, value, &sb, &why) == jsv::kOk;
            else if (strcmp(loop, "from") == 0)
                ok = from_bytes(&v);
            else if (strcmp(loop, "stringify") == 0)
                ok = !v8::JSON::Stringify(context, json_value).IsEmpty();
            else if (strcmp(loop, "parse") == 0)
                ok = !v8::JSON::Parse(context, json).IsEmpty();
            if (!ok)
                Fail(c.name, why);
        }
        msgpack_sbuffer_destroy(&sb);
        return;
    }

    Best stringify, to, parse, from;
    for (int r = 0; r < rounds; r++) {
        stringify.Take(Time(
            [&] {
                v8::HandleScope s(isolate);
                if (v8::JSON::Stringify(context, json_value).IsEmpty())
                    Fail(c.name, "JSON.stringify");
            },
            &stringify.iters));
        to.Take(Time(
            [&] {
                msgpack_sbuffer_clear(&sb); // the worker reuses its buffer
                if (jsv::ToMsgpack(context, value, &sb, &why) != jsv::kOk)
                    Fail(c.name, why);
            },
            &to.iters));
        parse.Take(Time(
            [&] {
                v8::HandleScope s(isolate);
                if (v8::JSON::Parse(context, json).IsEmpty())
                    Fail(c.name, "JSON.parse");
            },
            &parse.iters));
        from.Take(Time(
            [&] {
                v8::HandleScope s(isolate);
                v8::Local<v8::Value> v;
                if (!from_bytes(&v))
                    Fail(c.name, why);
            },
            &from.iters));
    }
    msgpack_sbuffer_destroy(&sb);

    printf("%s (msgpack %zu bytes, JSON %d chars)%s%s\n", c.name, bytes.size(),
           json->Length(), c.json_note ? "; " : "",
           c.json_note ? c.json_note : "");
    printf("  JS -> msgpack  %9.1f   JSON.stringify %9.1f   %5.2fx JSON\n",
           to.t * 1e6, stringify.t * 1e6, stringify.t / to.t);
    printf("  msgpack -> JS  %9.1f   JSON.parse     %9.1f   %5.2fx JSON\n",
           from.t * 1e6, parse.t * 1e6, parse.t / from.t);
}

// A context as the worker's realms have it: the builtins, then the value
// encoder.
v8::Local<v8::Context>
NewContext(v8::Isolate *isolate)
{
    v8::Local<v8::Context> context = v8::Context::New(isolate);
    v8::Context::Scope cs(context);
    if (!jsb::Install(context) || !jsv::EncoderInstall(context))
        Fail("setup", "jsb::Install, jsv::EncoderInstall");
    return context;
}

// The first conversion (JSON.stringify if `json`) of c's value in a fresh
// isolate, in microseconds.
double
ColdOnce(v8::ArrayBuffer::Allocator *allocator, const Case &c, bool json)
{
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator = allocator;
    v8::Isolate *isolate = v8::Isolate::New(params);
    isolate->SetMicrotasksPolicy(v8::MicrotasksPolicy::kExplicit);
    double t;
    {
        v8::Isolate::Scope is(isolate);
        v8::HandleScope hs(isolate);
        v8::Local<v8::Context> context = NewContext(isolate);
        v8::Context::Scope cs(context);
        v8::Local<v8::Value> value = Run(context, c.make);
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        std::string why;
        double t0 = Now();
        bool ok = json ? !v8::JSON::Stringify(context, value).IsEmpty()
                       : jsv::ToMsgpack(context, value, &sb, &why) == jsv::kOk;
        t = Now() - t0;
        msgpack_sbuffer_destroy(&sb);
        if (!ok)
            Fail(c.name, "cold conversion");
    }
    isolate->Dispose();
    return t * 1e6;
}

void
Cold(v8::ArrayBuffer::Allocator *allocator, const Case &c)
{
    std::vector<double> to, json;
    for (int r = 0; r < cold_rounds; r++) {
        json.push_back(ColdOnce(allocator, c, true));
        to.push_back(ColdOnce(allocator, c, false));
    }
    std::sort(to.begin(), to.end());
    std::sort(json.begin(), json.end());
    double t = to[to.size() / 2], j = json[json.size() / 2];
    printf("  cold, fresh isolate: JS -> msgpack %9.1f   JSON.stringify %9.1f"
           "   %5.2fx JSON\n",
           t, j, j / t);
}

} // namespace

int
main(int argc, char **argv)
{
    (void)argc;
    rounds = (int)bench_scaled(rounds, 1);
    cold_rounds = (int)bench_scaled(cold_rounds, 1);
    round_seconds = bench_scaled_seconds(round_seconds, 0.001);
    v8::V8::InitializeICUDefaultLocation(argv[0]);
    std::unique_ptr<v8::Platform> platform = v8::platform::NewDefaultPlatform();
    v8::V8::InitializePlatform(platform.get());
    v8::V8::Initialize();
    v8::ArrayBuffer::Allocator *allocator =
        v8::ArrayBuffer::Allocator::NewDefaultAllocator();
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator = allocator;
    v8::Isolate *isolate = v8::Isolate::New(params);
    isolate->SetMicrotasksPolicy(
        v8::MicrotasksPolicy::kExplicit); // as the worker
    {
        v8::Isolate::Scope is(isolate);
        v8::HandleScope hs(isolate);
        v8::Local<v8::Context> context = NewContext(isolate);
        v8::Context::Scope cs(context);
        printf("bench_values: the worker's value conversion against JSON in "
               "the same isolate,\nus per value, best of %d interleaved "
               "rounds (x JSON: JSON's time / ours, >= 1 is the target)\n",
               rounds);
        const char *only = getenv("BENCH_VALUES_CASE");
        for (const Case &c : kCases) {
            if (!only || strstr(c.name, only))
                Bench(isolate, context, c);
            if (&c == &kCases[0] && (!only || strstr(c.name, only)) &&
                !getenv("BENCH_VALUES_LOOP"))
                Cold(allocator, c);
        }
    }
    isolate->Dispose();
    delete allocator;
    v8::V8::Dispose();
    v8::V8::DisposePlatform();
    return 0;
}
