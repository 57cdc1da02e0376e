// A V8 isolate and context per test, for the value and builtin tests. The
// platform is made once per process (V8 allows no second one); each test gets
// a fresh isolate so that a failed or terminated test cannot leak into the
// next. Apart from tests/support (tu) because it is C++ on V8 itself, which
// the other suites neither compile as nor link; these tests need nothing of
// tu's (no files, processes or waits).
#ifndef JSHOST_TESTS_V8ENV_H
#define JSHOST_TESTS_V8ENV_H

#include <cstdarg>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <memory>
#include <setjmp.h>
#include <string>

#include <libplatform/libplatform.h>
#include <msgpack.h>
#include <v8.h>

extern "C" {
#include <cmocka.h>
}

struct V8Env {
    v8::Isolate *isolate = nullptr;
    v8::ArrayBuffer::Allocator *allocator = nullptr;
    v8::Global<v8::Context> context;
};

inline std::unique_ptr<v8::Platform> &
V8EnvPlatform()
{
    static std::unique_ptr<v8::Platform> platform;
    return platform;
}

inline void
V8EnvInitPlatform(const char *argv0)
{
    if (V8EnvPlatform())
        return;
    v8::V8::InitializeICUDefaultLocation(argv0);
    V8EnvPlatform() = v8::platform::NewDefaultPlatform(1);
    v8::V8::InitializePlatform(V8EnvPlatform().get());
    v8::V8::Initialize();
}

// After the last isolate is gone: V8 first, then its platform.
inline void
V8EnvShutdown()
{
    v8::V8::Dispose();
    v8::V8::DisposePlatform();
    V8EnvPlatform().reset();
}

inline int
V8EnvSetup(void **state)
{
    V8Env *env = new V8Env;
    env->allocator = v8::ArrayBuffer::Allocator::NewDefaultAllocator();
    v8::Isolate::CreateParams params;
    params.array_buffer_allocator = env->allocator;
    env->isolate = v8::Isolate::New(params);
    {
        v8::Isolate::Scope iscope(env->isolate);
        v8::HandleScope hscope(env->isolate);
        env->context.Reset(env->isolate, v8::Context::New(env->isolate));
    }
    *state = env;
    return 0;
}

inline int
V8EnvTeardown(void **state)
{
    V8Env *env = static_cast<V8Env *>(*state);
    // A failed assertion longjmps out of the test past its scopes' destructors.
    while (v8::Isolate::GetCurrent() == env->isolate)
        env->isolate->Exit();
    env->context.Reset();
    env->isolate->Dispose();
    delete env->allocator;
    delete env;
    return 0;
}

// Enters the test's isolate and context for the rest of the block.
#define V8_SCOPE(state)                                                        \
    V8Env *env = static_cast<V8Env *>(*(state));                               \
    v8::Isolate *isolate = env->isolate;                                       \
    v8::Isolate::Scope isolate_scope(isolate);                                 \
    v8::HandleScope handle_scope(isolate);                                     \
    v8::Local<v8::Context> context = env->context.Get(isolate);                \
    v8::Context::Scope context_scope(context);                                 \
    (void)context

// Compiles and runs src; fails the test on an exception (printing it).
inline v8::Local<v8::Value>
Eval(v8::Local<v8::Context> context, const char *src)
{
    v8::Isolate *isolate = context->GetIsolate();
    v8::EscapableHandleScope scope(isolate);
    v8::TryCatch tc(isolate);
    v8::Local<v8::String> code =
        v8::String::NewFromUtf8(isolate, src).ToLocalChecked();
    v8::Local<v8::Script> script;
    v8::Local<v8::Value> result;
    if (!v8::Script::Compile(context, code).ToLocal(&script) ||
        !script->Run(context).ToLocal(&result)) {
        v8::String::Utf8Value msg(isolate, tc.Exception());
        print_error("JS failed: %s\n  in: %s\n", *msg ? *msg : "?", src);
        fail();
    }
    return scope.Escape(result);
}

// Evaluates src and returns the result as a UTF-8 string (String(result)).
inline std::string
EvalString(v8::Local<v8::Context> context, const char *src)
{
    v8::Isolate *isolate = context->GetIsolate();
    v8::HandleScope scope(isolate);
    v8::String::Utf8Value s(isolate, Eval(context, src));
    return *s ? std::string(*s, s.length()) : std::string("<null>");
}

inline void
ExpectEq(const std::string &got, const std::string &want, const char *what,
         const char *file, int line)
{
    if (got != want) {
        print_error("%s:%d: %s\n  got:  %s\n  want: %s\n", file, line, what,
                    got.c_str(), want.c_str());
        fail();
    }
}
#define EXPECT_EQ_STR(got, want, what)                                         \
    ExpectEq((got), (want), (what), __FILE__, __LINE__)

#endif
