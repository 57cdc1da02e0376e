// Globals beyond ECMAScript that need no event loop: TextEncoder, TextDecoder
// (UTF-8), atob, btoa, structuredClone, crypto. Internal to the engine (C++ only).
#ifndef JSHOST_JS_BUILTINS_H
#define JSHOST_JS_BUILTINS_H

#include <v8.h>

namespace jsb {

// Installs them on the context's global object. false with a JS exception
// pending when something failed.
bool Install(v8::Local<v8::Context> context);

} // namespace jsb

#endif
