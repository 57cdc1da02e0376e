// The capped ArrayBuffer allocator (see js_alloc.h).
#include <atomic>
#include <cstdlib>
#include <cstring>

#include "js_alloc.h"

namespace
{

class Capped : public v8::ArrayBuffer::Allocator
{
  public:
    explicit Capped(size_t cap) : cap_(cap)
    {
    }

    void *Allocate(size_t length) override
    {
        if (!Reserve(length))
            return nullptr;
        void *p = calloc(length ? length : 1, 1);
        if (p == nullptr)
            used_ -= length;
        return p;
    }

    void *AllocateUninitialized(size_t length) override
    {
        if (!Reserve(length))
            return nullptr;
        void *p = malloc(length ? length : 1);
        if (p == nullptr)
            used_ -= length;
        return p;
    }

    // May be called from V8's background threads.
    void Free(void *data, size_t length) override
    {
        free(data);
        used_ -= length;
    }

  private:
    bool Reserve(size_t length)
    {
        size_t now = used_.load();
        do {
            if (length > cap_ || now > cap_ - length)
                return false;
        } while (!used_.compare_exchange_weak(now, now + length));
        return true;
    }

    const size_t cap_;
    std::atomic<size_t> used_{0};
};

} // namespace

namespace jsa
{

v8::ArrayBuffer::Allocator *
NewCapped(size_t cap)
{
    return new Capped(cap);
}

} // namespace jsa
