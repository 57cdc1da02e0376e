// Values across the boundary (docs/values.md), converted directly between
// msgpack bytes and V8 values. The ext types' bytes are proto/ext.h's.
//
// Choices beyond the table, so that they are written down once:
// - JS -> msgpack follows JSON.stringify (SerializeJSONProperty) except where
//   msgpack can say more: Date, ArrayBuffer and its views, Map, Set, BigInt,
//   NaN/±Infinity/-0. Dates and ArrayBuffer views never consult toJSON (Node's
//   Buffer.prototype.toJSON would otherwise turn a Buffer into {type, data}).
// - An Error is a map {name, message, stack} (each a string, or nil), then
//   its own enumerable string keys; a RegExp is its source string, /x/g.
//   Promise, WeakMap, ... are plain objects: their own enumerable string
//   keys, {} mostly, exactly as JSON.stringify.
// - Boxed primitives are unwrapped through their internal slot (no user
//   valueOf/toString is called, unlike JSON.stringify's ToNumber/ToString).
// - Map entries are all kept (an undefined or function value is nil there); a
//   Map key is converted as a value, whatever its type (msgpack allows it).
// - An object's values are read, passed through toJSON and converted one
//   key after the other, in JSON.stringify's order (getters with side effects
//   see the same sequence of calls). That runs in a JavaScript encoder
//   (worker/js/values-encode.js): an error a getter throws has
//   `walk (jshost:values:...)` frames under the getter's in its stack, which
//   the worker's stack filter (js_error.cc) leaves out of what users see.
// - An object is told apart by its prototype first: one whose prototype is
//   Object.prototype or null is walked as a plain object whatever its
//   internal slots (a Date or a typed array whose prototype a script set to
//   null crosses as {}, as JSON.stringify has it), and reading the prototype
//   of a Proxy runs its getPrototypeOf trap. toJSON is read before that (a
//   revoked proxy fails there, as in JSON.stringify); a Date's or a view's is
//   read but never called.
// - BigInt.prototype.toJSON is not consulted: a BigInt always goes out as an
//   int or ext 1 (JSON.stringify would call it, or throw without it).
// - An invalid Date is kInvalid (JSON.stringify would write null).
// - Arrays longer than kMaxArrayLength (2^26) are kInvalid both ways: no
//   message within the default limit could carry them, filling a packer with
//   billions of nils cannot be interrupted, and V8 aborts on arrays near 2^27
//   elements.
//
// js_value_internal.h lists the files that do it; this one keeps what both
// directions share: the paths that messages give ("value.a[3].b").
#include "js_value_internal.h"

#include <cstdint>
#include <cstdio>
#include <string>

namespace jsv
{
namespace
{

// ---------------------------------------------------------------------------
// Paths in messages ("value.a[3].b")

bool
IsIdentifier(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                     c == '_' || c == '$';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

// How much of a UTF-8 string to show: at most `max` bytes, never cutting a
// character (the message itself must stay valid UTF-8).
size_t
ShownLength(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xc0) == 0x80)
        cut--;
    return cut;
}

} // namespace

void
AppendKey(std::string *out, const char *s, size_t n)
{
    constexpr size_t kMaxShown = 64;
    if (IsIdentifier(s, n) && n <= kMaxShown) {
        out->push_back('.');
        out->append(s, n);
        return;
    }
    out->append("[\"");
    size_t shown = ShownLength(s, n, kMaxShown);
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out->push_back('\\');
            out->push_back((char)c);
        } else if (c < 0x20 || c == 0x7f) {
            char buf[8];
            snprintf(buf, sizeof buf, "\\x%02x", c);
            out->append(buf);
        } else {
            out->push_back((char)c);
        }
    }
    if (shown < n)
        out->append("...");
    out->append("\"]");
}

void
AppendIndex(std::string *out, const char *prefix, uint64_t i)
{
    out->append(prefix);
    out->append(std::to_string(i));
    out->push_back(']');
}

} // namespace jsv
