// Realms: a v8::Context with jshost's globals installed (the builtins, the
// settle glue, the world, require()), and the running of the embedded
// preludes (worker/js/*.js) that install most of them.
#include "js_builtins.h"
#include "js_internal.h"
#include "js_value.h"

using v8::Context;
using v8::Function;
using v8::HandleScope;
using v8::Isolate;
using v8::Local;
using v8::TryCatch;
using v8::Value;

namespace jse
{

Realm *
RealmOf(Local<Context> context)
{
    return static_cast<Realm *>(
        context->GetAlignedPointerFromEmbedderData(kRealmSlot));
}

bool
RunPrelude(Local<Context> context, const jsp::Source &source,
           const char *origin, int argc, Local<Value> argv[],
           Local<Value> *result)
{
    Isolate *isolate = context->GetIsolate();
    Local<v8::String> text, name;
    if (!v8::String::NewFromUtf8(isolate,
                                 reinterpret_cast<const char *>(source.text),
                                 v8::NewStringType::kNormal, (int)source.len)
             .ToLocal(&text) ||
        !v8::String::NewFromUtf8(isolate, origin).ToLocal(&name))
        return false;
    v8::ScriptOrigin script_origin(isolate, name);
    // Every realm runs the same preludes: the first compiles them, the others
    // take V8's code cache of that (a context is made in a fraction of the
    // time it takes to parse them again).
    js_engine *e = EngineOf(isolate);
    auto cached = e->prelude_cache.find(&source);
    bool have = cached != e->prelude_cache.end();
    v8::ScriptCompiler::CachedData *data =
        have ? new v8::ScriptCompiler::CachedData(
                   reinterpret_cast<const uint8_t *>(cached->second.data()),
                   (int)cached->second.size())
             : nullptr;
    // (the Source owns and frees `data`)
    v8::ScriptCompiler::Source src(text, script_origin, data);
    Local<v8::Script> script;
    Local<Value> fn;
    if (!v8::ScriptCompiler::Compile(
             context, &src,
             have ? v8::ScriptCompiler::kConsumeCodeCache
                  : v8::ScriptCompiler::kNoCompileOptions)
             .ToLocal(&script) ||
        !script->Run(context).ToLocal(&fn) || !fn->IsFunction() ||
        !fn.As<Function>()
             ->Call(context, v8::Undefined(isolate), argc, argv)
             .ToLocal(result))
        return false;
    if (!have || (data != nullptr && data->rejected)) {
        // After the run: the functions it compiled are in the cache too.
        std::unique_ptr<v8::ScriptCompiler::CachedData> made(
            v8::ScriptCompiler::CreateCodeCache(script->GetUnboundScript()));
        if (made != nullptr)
            e->prelude_cache[&source].assign(
                reinterpret_cast<const char *>(made->data), made->length);
    }
    return true;
}

Realm *
RealmNew(js_engine *e, uint32_t id, const std::string &cwd, bool global_require,
         struct js_error *err)
{
    Isolate *isolate = e->isolate;
    HandleScope hs(isolate);
    Local<Context> context = Context::New(isolate);
    if (context.IsEmpty()) {
        ErrorSet(err, PROTO_ERR_MEMORY, "cannot create a V8 context");
        return nullptr;
    }
    Realm *realm = new Realm();
    realm->engine = e;
    realm->id = id;
    realm->cwd = cwd;
    realm->context.Reset(isolate, context);
    context->SetAlignedPointerInEmbedderData(kRealmSlot, realm);
    Context::Scope cs(context);
    // Every realm's stacks leave jshost's own frames out.
    isolate->SetPrepareStackTraceCallback(ErrorPrepareStackTrace);
    bool ok;
    Outcome out;
    try {
        Entry en(e, DefaultDeadline(e));
        TryCatch tc(isolate);
        // Before any script: the value encoder's builtins are kept as
        // they were made.
        ok = jsb::Install(context) && jsv::EncoderInstall(context) &&
             CallSettleInstall(realm, context) &&
             WorldInstall(realm, context) &&
             ModulesInstall(realm, context, global_require);
        if (!ok && tc.HasCaught() && !tc.HasTerminated())
            ErrorFromException(isolate, context, tc.Exception(), tc.Message(),
                               PROTO_ERR_JS, err);
        out = en.Leave();
    } catch (...) {
        RealmFree(e, realm);
        throw;
    }
    if (!ok || out != kFinished) {
        if (err != nullptr && err->message == nullptr)
            ErrorSet(err, PROTO_ERR_MEMORY, "cannot set up a V8 context");
        RealmFree(e, realm);
        return nullptr;
    }
    return realm;
}

void
RealmFree(js_engine *e, Realm *realm)
{
    if (realm == nullptr)
        return;
    WorldClearRealm(e->world, realm);
    realm->esm.clear();
    realm->esm_synthetic.clear();
    realm->loader.Reset();
    realm->read_file.Reset();
    realm->make_callback.Reset();
    realm->await_call.Reset();
    realm->run_ticks.Reset();
    realm->context.Reset();
    delete realm;
}

} // namespace jse
