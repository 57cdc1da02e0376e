// Errors: js_error built from words or from a JS exception (name, message,
// stack, the position it points at), the config's error messages, and
// exceptions logged with their stack.
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "js_internal.h"
#include "log.h"

using v8::Context;
using v8::Isolate;
using v8::Local;
using v8::MaybeLocal;
using v8::Message;
using v8::Object;
using v8::String;
using v8::TryCatch;
using v8::Value;

namespace jse
{

char *
ErrorFormat(const char *fmt, va_list ap)
{
    va_list aq;
    va_copy(aq, ap);
    int n = vsnprintf(nullptr, 0, fmt, aq);
    va_end(aq);
    if (n < 0)
        return nullptr;
    char *s = static_cast<char *>(malloc((size_t)n + 1));
    if (s != nullptr)
        vsnprintf(s, (size_t)n + 1, fmt, ap);
    return s;
}

void
ErrorSet(struct js_error *err, enum proto_errtype type, const char *fmt, ...)
{
    if (err == nullptr)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *msg = ErrorFormat(fmt, ap);
    va_end(ap);
    js_error_free(err);
    err->type = type;
    err->message = msg;
}

static char *
Dup(const std::string &s)
{
    return strdup(s.c_str());
}

static bool
GetString(Isolate *isolate, Local<Context> context, Local<Object> obj,
          const char *key, std::string *out)
{
    Local<Value> v;
    Local<String> k;
    if (!String::NewFromUtf8(isolate, key).ToLocal(&k))
        return false;
    if (!obj->Get(context, k).ToLocal(&v) || v->IsUndefined() || v->IsNull())
        return false;
    if (!v->IsString()) {
        Local<String> s;
        if (!v->ToString(context).ToLocal(&s))
            return false;
        v = s;
    }
    *out = Utf8(isolate, v);
    return true;
}

// An Error (or an error-like object) keeps name, message and stack; any
// other value is an Error whose message is its string form. Position from
// `message` (or where the error was made).
void
ErrorFromException(Isolate *isolate, Local<Context> context,
                   Local<Value> exception, Local<Message> message,
                   enum proto_errtype type, struct js_error *out)
{
    TryCatch tc(isolate);
    std::string name = "Error", text, stack;
    bool have_stack = false;
    bool errorish = exception->IsNativeError();
    if (!errorish && exception->IsObject()) {
        Local<Object> o = exception.As<Object>();
        std::string tmp;
        errorish = GetString(isolate, context, o, "stack", &tmp) &&
                   GetString(isolate, context, o, "message", &tmp);
    }
    if (errorish) {
        Local<Object> o = exception.As<Object>();
        if (!GetString(isolate, context, o, "name", &name) || name.empty())
            name = "Error";
        GetString(isolate, context, o, "message", &text);
        have_stack = GetString(isolate, context, o, "stack", &stack);
    } else if (exception->IsString()) {
        text = Utf8(isolate, exception);
    } else {
        Local<String> s;
        // Plain objects read better as JSON than "[object Object]".
        if (exception->IsObject() && !exception->IsFunction() &&
            v8::JSON::Stringify(context, exception).ToLocal(&s))
            text = Utf8(isolate, s);
        else if (exception->ToDetailString(context).ToLocal(&s))
            text = Utf8(isolate, s);
        else
            text = "(unprintable value)";
    }
    tc.Reset();
    if (message.IsEmpty() && exception->IsObject())
        message = v8::Exception::CreateMessage(isolate, exception);
    std::string file;
    int line = 0, column = 0;
    if (!message.IsEmpty()) {
        if (message->GetScriptResourceName()->IsString())
            file = Utf8(isolate, message->GetScriptResourceName());
        line = message->GetLineNumber(context).FromMaybe(0);
        column = message->GetStartColumn(context).FromMaybe(-1) + 1;
    }
    // Rethrown by jshost's own code (require() passing on a SyntaxError of
    // the file it compiled): the place the error itself records.
    if ((file.empty() || IsOwnScript(file) ||
         file.compare(0, 5, "node:") == 0) &&
        exception->IsObject()) {
        Local<Message> m = v8::Exception::CreateMessage(isolate, exception);
        std::string f = m.IsEmpty() || !m->GetScriptResourceName()->IsString()
                            ? std::string()
                            : Utf8(isolate, m->GetScriptResourceName());
        if (!f.empty() && !IsOwnScript(f) && f.compare(0, 5, "node:") != 0) {
            file = f;
            line = m->GetLineNumber(context).FromMaybe(0);
            column = m->GetStartColumn(context).FromMaybe(-1) + 1;
        }
    }
    // Thrown by jshost's own code (require() failing): the place is the
    // user's code that called it.
    if (file.empty() || IsOwnScript(file) || file.compare(0, 5, "node:") == 0) {
        Local<v8::StackTrace> st = v8::Exception::GetStackTrace(exception);
        for (int i = 0; !st.IsEmpty() && i < st->GetFrameCount(); i++) {
            Local<v8::StackFrame> fr = st->GetFrame(isolate, i);
            std::string name = Utf8(isolate, fr->GetScriptName());
            if (name.empty() || IsOwnScript(name) ||
                name.compare(0, 5, "node:") == 0)
                continue;
            file = name;
            line = fr->GetLineNumber();
            column = fr->GetColumn();
            break;
        }
    }
    // Nothing but jshost's own code to point at: no position (the caller
    // names the file at fault).
    if (IsOwnScript(file)) {
        file.clear();
        line = column = 0;
    }
    if (!have_stack || stack.empty())
        stack = name + ": " + text;
    // A SyntaxError's stack has no frame: say where the code is wrong.
    if (!file.empty() && line > 0 &&
        stack.find("\n    at ") == std::string::npos)
        stack += "\n    at " + file + ":" + std::to_string(line) + ":" +
                 std::to_string(column);
    js_error_free(out);
    out->type = type;
    out->name = Dup(name);
    out->message = Dup(text);
    out->stack = Dup(stack);
    if (!file.empty())
        out->file = Dup(file);
    out->line = line;
    out->column = column;
}

int
ErrorConfig(struct js_error *err, const std::string &file, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = ErrorFormat(fmt, ap);
    va_end(ap);
    js_error_free(err);
    err->type = PROTO_ERR_CONFIG;
    err->message = msg;
    err->file = Dup(file);
    return -EINVAL;
}

int
ErrorConfigFromJs(Isolate *isolate, Local<Context> context, TryCatch &tc,
                  const std::string &path, struct js_error *err)
{
    if (!tc.HasCaught() || tc.HasTerminated())
        return ErrorConfig(err, path, "loading the config was terminated");
    ErrorFromException(isolate, context, tc.Exception(), tc.Message(),
                       PROTO_ERR_CONFIG, err);
    std::string where = err->file ? err->file : path;
    std::string msg = std::string(err->name ? err->name : "Error") + ": " +
                      (err->message ? err->message : "");
    if (err->line > 0)
        msg = where + ":" + std::to_string(err->line) + ":" +
              std::to_string(err->column) + ": " + msg;
    else
        msg = where + ": " + msg;
    free(err->message);
    err->message = Dup(msg);
    if (err->file == nullptr)
        err->file = Dup(path);
    return -EINVAL;
}

static bool
CallMethod(Local<Context> context, Local<Value> recv, const char *name,
           Local<Value> *out)
{
    Isolate *isolate = context->GetIsolate();
    Local<Value> fn;
    if (!recv->IsObject() ||
        !recv.As<Object>()
             ->Get(context, Str(isolate, name, strlen(name)))
             .ToLocal(&fn) ||
        !fn->IsFunction())
        return false;
    return fn.As<v8::Function>()->Call(context, recv, 0, nullptr).ToLocal(out);
}

// What Error.prototype.toString gives, computed here so that a replaced
// toString cannot fail the stack.
static std::string
ErrorHeader(Isolate *isolate, Local<Context> context, Local<Value> error)
{
    TryCatch tc(isolate);
    if (!error->IsObject()) {
        Local<String> s;
        return error->ToString(context).ToLocal(&s) ? Utf8(isolate, s)
                                                    : std::string("Error");
    }
    Local<Object> o = error.As<Object>();
    Local<Value> name, message;
    std::string n = "Error", m;
    Local<String> s;
    if (o->Get(context, String::NewFromUtf8Literal(isolate, "name"))
            .ToLocal(&name) &&
        !name->IsUndefined() && name->ToString(context).ToLocal(&s))
        n = Utf8(isolate, s);
    if (o->Get(context, String::NewFromUtf8Literal(isolate, "message"))
            .ToLocal(&message) &&
        !message->IsUndefined() && message->ToString(context).ToLocal(&s))
        m = Utf8(isolate, s);
    if (n.empty())
        return m;
    if (m.empty())
        return n;
    return n + ": " + m;
}

MaybeLocal<Value>
ErrorPrepareStackTrace(Local<Context> context, Local<Value> error,
                       Local<v8::Array> sites)
{
    Isolate *isolate = context->GetIsolate();
    Local<v8::Array> kept = v8::Array::New(isolate);
    uint32_t n = 0;
    for (uint32_t i = 0; i < sites->Length(); i++) {
        Local<Value> site, file;
        if (!sites->Get(context, i).ToLocal(&site))
            return MaybeLocal<Value>();
        {
            TryCatch tc(isolate);
            if (CallMethod(context, site, "getFileName", &file) &&
                file->IsString() && IsOwnScript(Utf8(isolate, file)))
                continue;
        }
        if (kept->Set(context, n++, site).IsNothing())
            return MaybeLocal<Value>();
    }
    // A program's own Error.prepareStackTrace (source-map-support, depd...)
    // formats, as in Node; with the frames jshost shows.
    Local<Value> ctor, custom;
    if (context->Global()
            ->Get(context, String::NewFromUtf8Literal(isolate, "Error"))
            .ToLocal(&ctor) &&
        ctor->IsObject() &&
        ctor.As<Object>()
            ->Get(context,
                  String::NewFromUtf8Literal(isolate, "prepareStackTrace"))
            .ToLocal(&custom) &&
        custom->IsFunction()) {
        Local<Value> argv[] = {error, kept};
        return custom.As<v8::Function>()->Call(context, ctor, 2, argv);
    }
    std::string text = ErrorHeader(isolate, context, error);
    for (uint32_t i = 0; i < n; i++) {
        Local<Value> site, line;
        Local<String> s;
        TryCatch tc(isolate);
        if (!kept->Get(context, i).ToLocal(&site) ||
            !CallMethod(context, site, "toString", &line) ||
            !line->ToString(context).ToLocal(&s))
            continue;
        text += "\n    at " + Utf8(isolate, s);
    }
    return Str(isolate, text);
}

// The exception's stack, or its string form and where it was thrown.
static std::string
StackOrString(Isolate *isolate, Local<Context> context, Local<Value> exception,
              Local<Message> message)
{
    TryCatch tc(isolate);
    std::string text;
    if (exception->IsObject()) {
        Local<Value> stack;
        if (exception.As<Object>()
                ->Get(context, String::NewFromUtf8Literal(isolate, "stack"))
                .ToLocal(&stack) &&
            stack->IsString())
            text = Utf8(isolate, stack);
    }
    if (text.empty()) {
        Local<String> s;
        if (exception->ToDetailString(context).ToLocal(&s))
            text = Utf8(isolate, s);
        if (!message.IsEmpty()) {
            std::string file = Utf8(isolate, message->GetScriptResourceName());
            int line = message->GetLineNumber(context).FromMaybe(0);
            text += "\n    at " + file + ":" + std::to_string(line);
        }
    }
    return text;
}

void
LogException(Isolate *isolate, Local<Context> context, const char *prefix,
             Local<Value> exception, Local<Message> message)
{
    std::string text = prefix;
    text += " ";
    text += StackOrString(isolate, context, exception, message);
    log_line(2, "error", text.data(), text.size());
}

} // namespace jse
