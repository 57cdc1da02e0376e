// The value conversion's insides, shared by its files (C++ only; the rest
// of the engine sees js_value.h):
//   js_value.cc         the choices beyond docs/values.md's table; paths in
//                       messages ("value.a[3].b"), for both directions
//   js_value_read.cc    msgpack -> V8 (FromMsgpack): the Reader
//   js_value_write.cc   V8 -> msgpack (ToMsgpack): the Writer
// Here: the limits both directions use, the Reader's key cache, and the
// msgpack forms the Writer writes in place (Out). The Writer itself stays one
// file: its functions, internal to it, inline into one another on the path
// every key takes; split across files they would not (more instructions per
// key).
#ifndef JSHOST_JS_VALUE_INTERNAL_H
#define JSHOST_JS_VALUE_INTERNAL_H

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <msgpack.h>
#include <v8.h>

#include "js_value.h"
#include "proto.h"

namespace jsv
{

using v8::Local;
using v8::MaybeLocal;
using v8::Value;

#define JSV_STR2(x) #x
#define JSV_STR(x) JSV_STR2(x)

constexpr int kMaxDepth = PROTO_VALUE_MAX_DEPTH;
constexpr uint32_t kMaxArrayLength = 1u << 26; // one nil each: 64 MiB

// ---------------------------------------------------------------------------
// Paths in messages ("value.a[3].b"), js_value.cc

// A key as `.name` or `["quoted"]`, cut to a readable length.
void AppendKey(std::string *out, const char *s, size_t n);
void AppendIndex(std::string *out, const char *prefix, uint64_t i);

// ---------------------------------------------------------------------------
// Keys seen before in the same conversion (msgpack -> V8)

// The maps in one value are mostly records with the same few keys ({i, s} a
// thousand times over): each such key is made once per conversion and found
// here after that. Only the
// keys of small maps are kept (a big map's keys seldom come again), and only
// short ones. Direct-mapped: a collision replaces the entry. The strings are
// Globals because the handle scope of the map that first held a key is gone
// by the time the next map needs it.
constexpr size_t kKeyCacheSize = 64;
constexpr uint32_t kMaxCachedKeyBytes = 32;
constexpr uint32_t kMaxCachedMapSize = 16;

struct CachedKey {
    v8::Global<v8::String> str;
    uint32_t hash = 0;
    uint32_t len = 0;               // bytes of UTF-8
    char bytes[kMaxCachedKeyBytes]; // the key in UTF-8
};

// ---------------------------------------------------------------------------
// msgpack bytes, written in place
//
// Used by js_value_write.cc alone, and in an anonymous namespace as they were
// in that file: GCC then inlines Out's members into the Writer as before
// (an inline function with external linkage it may leave out of line).

namespace
{

inline void
Store16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

inline void
Store32(char *p, uint32_t v)
{
    v = __builtin_bswap32(v);
    memcpy(p, &v, 4);
}

inline void
Store64(char *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, 8);
}

// Bytes a str header takes for an n-byte string.
inline size_t
StrHeaderSize(size_t n)
{
    return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

inline void
PutStrHeader(char *p, size_t n)
{
    if (n < 32) {
        p[0] = (char)(0xa0 | n);
    } else if (n < 256) {
        p[0] = (char)0xd9;
        p[1] = (char)n;
    } else if (n < 65536) {
        p[0] = (char)0xda;
        Store16(p + 1, (uint16_t)n);
    } else {
        p[0] = (char)0xdb;
        Store32(p + 1, (uint32_t)n);
    }
}

inline size_t
MapHeaderSize(size_t n)
{
    return n < 16 ? 1 : n < 65536 ? 3 : 5;
}

// A map or array header (`small` is 0x80 or 0x90; 16 and 32 bits follow it
// at 0xde/0xdc and 0xdf/0xdd).
inline void
PutContainerHeader(char *p, uint8_t small, uint8_t big16, size_t n)
{
    if (n < 16) {
        p[0] = (char)(small | n);
    } else if (n < 65536) {
        p[0] = (char)big16;
        Store16(p + 1, (uint16_t)n);
    } else {
        p[0] = (char)(big16 + 1);
        Store32(p + 1, (uint32_t)n);
    }
}

// An sbuffer written in place: one check for room per item and plain
// stores, instead of a packer call (and its writer callback) per header. The
// forms are msgpack-c's (the smallest), so that what round-trips stays byte
// for byte the same.
class Out
{
  public:
    // `fixed`: sb's memory is not sb's to realloc (the JavaScript encoder's
    // scratch); what does not fit in it fails.
    explicit Out(msgpack_sbuffer *sb, bool fixed = false)
        : sb_(sb), fixed_(fixed)
    {
    }

    // Room for n more bytes at Tail(); false when memory ran out.
    bool Reserve(size_t n)
    {
        return sb_->alloc - sb_->size >= n || Grow(n);
    }
    char *Tail()
    {
        return sb_->data + sb_->size;
    }
    char *At(size_t off)
    {
        return sb_->data + off;
    }
    size_t Size() const
    {
        return sb_->size;
    }
    void Advance(size_t n)
    {
        sb_->size += n;
    }
    void Shrink(size_t size)
    {
        sb_->size = size;
    }
    msgpack_sbuffer *Buffer()
    {
        return sb_;
    }

    bool Byte(uint8_t b)
    {
        if (!Reserve(1))
            return false;
        sb_->data[sb_->size++] = (char)b;
        return true;
    }

    bool Int(int64_t d)
    {
        if (!Reserve(9))
            return false;
        char *p = Tail();
        size_t n;
        if (d < -(1LL << 5)) {
            if (d < -(1LL << 15)) {
                if (d < -(1LL << 31)) {
                    p[0] = (char)0xd3;
                    Store64(p + 1, (uint64_t)d);
                    n = 9;
                } else {
                    p[0] = (char)0xd2;
                    Store32(p + 1, (uint32_t)(int32_t)d);
                    n = 5;
                }
            } else if (d < -(1 << 7)) {
                p[0] = (char)0xd1;
                Store16(p + 1, (uint16_t)(int16_t)d);
                n = 3;
            } else {
                p[0] = (char)0xd0;
                p[1] = (char)d;
                n = 2;
            }
        } else if (d < (1 << 7)) {
            p[0] = (char)d;
            n = 1;
        } else if (d < (1LL << 16)) {
            if (d < (1 << 8)) {
                p[0] = (char)0xcc;
                p[1] = (char)d;
                n = 2;
            } else {
                p[0] = (char)0xcd;
                Store16(p + 1, (uint16_t)d);
                n = 3;
            }
        } else if (d < (1LL << 32)) {
            p[0] = (char)0xce;
            Store32(p + 1, (uint32_t)d);
            n = 5;
        } else {
            p[0] = (char)0xcf;
            Store64(p + 1, (uint64_t)d);
            n = 9;
        }
        Advance(n);
        return true;
    }

    bool Double(double d)
    {
        if (!Reserve(9))
            return false;
        uint64_t bits;
        memcpy(&bits, &d, 8);
        char *p = Tail();
        p[0] = (char)0xcb;
        Store64(p + 1, bits);
        Advance(9);
        return true;
    }

    bool ArrayHeader(size_t n)
    {
        if (!Reserve(5))
            return false;
        PutContainerHeader(Tail(), 0x90, 0xdc, n);
        Advance(MapHeaderSize(n));
        return true;
    }

    bool MapHeader(size_t n)
    {
        if (!Reserve(5))
            return false;
        PutContainerHeader(Tail(), 0x80, 0xde, n);
        Advance(MapHeaderSize(n));
        return true;
    }

    // A str of n bytes: its header, then the bytes.
    bool Str(const void *s, size_t n)
    {
        if (!Reserve(5 + n))
            return false;
        PutStrHeader(Tail(), n);
        Advance(StrHeaderSize(n));
        if (n > 0)
            memcpy(Tail(), s, n);
        Advance(n);
        return true;
    }

    bool Bin(const void *p, size_t n)
    {
        if (!Reserve(5 + n))
            return false;
        char *h = Tail();
        if (n < 256) {
            h[0] = (char)0xc4;
            h[1] = (char)n;
            Advance(2);
        } else if (n < 65536) {
            h[0] = (char)0xc5;
            Store16(h + 1, (uint16_t)n);
            Advance(3);
        } else {
            h[0] = (char)0xc6;
            Store32(h + 1, (uint32_t)n);
            Advance(5);
        }
        if (n > 0)
            memcpy(Tail(), p, n);
        Advance(n);
        return true;
    }

  private:
    // Doubling, as msgpack_sbuffer_write grows it.
    bool Grow(size_t n)
    {
        if (fixed_)
            return false;
        size_t want = sb_->size + n;
        if (want < n)
            return false;
        size_t size = sb_->alloc ? sb_->alloc : 8192;
        while (size < want) {
            if (size > SIZE_MAX / 2)
                return false;
            size *= 2;
        }
        char *p = (char *)realloc(sb_->data, size);
        if (!p)
            return false;
        sb_->data = p;
        sb_->alloc = size;
        return true;
    }

    msgpack_sbuffer *sb_;
    bool fixed_;
};

} // namespace

} // namespace jsv

#endif
