// ArrayBuffer memory for one isolate, capped: ArrayBuffers live outside the
// V8 heap, so the heap limit alone would let typed arrays take any amount.
// Built without RTTI (its own static library) because libnode has no
// typeinfo for v8::ArrayBuffer::Allocator.
#ifndef JSHOST_JS_ALLOC_H
#define JSHOST_JS_ALLOC_H

#include <cstddef>

#include <v8.h>

namespace jsa
{

// An allocator refusing (nullptr: JS sees a RangeError) past cap bytes live.
v8::ArrayBuffer::Allocator *NewCapped(size_t cap);

} // namespace jsa

#endif
