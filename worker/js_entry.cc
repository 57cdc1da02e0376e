// Entries into JS from the loop: the deadline watchdog, the ticks and
// microtasks run as an entry ends, and what escapes JS: uncaught errors and
// unhandled promise rejections, which fail the call they belong to.
#include <chrono>
#include <exception>

#include "js_internal.h"

using v8::Context;
using v8::HandleScope;
using v8::Isolate;
using v8::Local;
using v8::Message;
using v8::Promise;
using v8::Value;

namespace jse
{

// ---------------------------------------------------------------------------
// The watchdog

void
Watchdog::Start(Isolate *isolate)
{
    isolate_ = isolate;
    thread_ = std::thread([this] { Loop(); });
}

void
Watchdog::Stop()
{
    {
        std::lock_guard<std::mutex> l(mu_);
        stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable())
        thread_.join();
}

void
Watchdog::Arm(uint64_t deadline_ns)
{
    bool wake;
    {
        std::lock_guard<std::mutex> l(mu_);
        armed_ = true;
        fired_ = false;
        deadline_ = deadline_ns;
        wake = deadline_ns < wake_at_;
    }
    if (wake)
        cv_.notify_one();
}

bool
Watchdog::Fired()
{
    std::lock_guard<std::mutex> l(mu_);
    return fired_;
}

bool
Watchdog::Disarm()
{
    std::lock_guard<std::mutex> l(mu_);
    armed_ = false;
    bool f = fired_;
    fired_ = false;
    return f;
}

void
Watchdog::Loop()
{
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
        uint64_t now = uv_hrtime();
        if (armed_ && now >= deadline_) {
            isolate_->TerminateExecution();
            fired_ = true;
            armed_ = false;
            continue;
        }
        if (armed_) {
            wake_at_ = deadline_;
            cv_.wait_for(l, std::chrono::nanoseconds(deadline_ - now));
        } else {
            wake_at_ = UINT64_MAX;
            cv_.wait(l);
        }
        wake_at_ = 0;
    }
}

uint64_t
DefaultDeadline(js_engine *e)
{
    return uv_hrtime() + (uint64_t)e->timeout_ms * 1000000ull;
}

// ---------------------------------------------------------------------------
// Entries

static void ReportRejections(js_engine *e);

Entry::Entry(js_engine *e, uint64_t deadline_ns)
    : e_(e), outer_(e->depth == 0), was_doomed_(e->doomed),
      uncaught_(std::uncaught_exceptions())
{
    e->depth++;
    if (outer_) {
        // One clock reading per macrotask: timers set during it count from the
        // same "now" (as in Node), so setTimeout(f, 0) after setTimeout(g, 10)
        // still fires first however long the JS in between takes; and a
        // loop whose clock went stale outside a turn does not fire them early.
        uv_update_time(e->loop);
        e->watchdog.Arm(deadline_ns);
    }
}

Entry::~Entry()
{
    if (left_)
        return;
    if (std::uncaught_exceptions() == uncaught_) {
        Leave();
        return;
    }
    // Unwound by a C++ exception (an allocation failed): no JS may run now,
    // nor anything that allocates. Ticks and microtasks wait for the next
    // entry; the caller answers the call (CallAbandon).
    left_ = true;
    e_->depth--;
    if (outer_ && (e_->watchdog.Disarm() || e_->doomed != was_doomed_))
        e_->isolate->CancelTerminateExecution();
}

Outcome
Entry::Leave()
{
    if (left_)
        return kFinished;
    left_ = true;
    // Once the deadline has fired nothing more runs here: the deadline is
    // spent, and queued microtasks wait for the next entry and its deadline.
    bool spent = outer_ && (e_->doomed || e_->watchdog.Fired());
    // As Node: the nextTick queue, then the promise microtasks, again until
    // both are empty; all under this entry's deadline.
    while (outer_ && !spent) {
        if (!WorldRunTicks(e_->world) || e_->doomed || e_->watchdog.Fired())
            break;
        e_->isolate->PerformMicrotaskCheckpoint();
        if (!WorldTicksPending(e_->world) || e_->doomed || e_->watchdog.Fired())
            break;
    }
    // Logging reads the errors' stacks (getters, maybe): still under the
    // deadline.
    if (outer_ && !spent && !e_->rejections.empty() && !e_->watchdog.Fired())
        ReportRejections(e_);
    e_->depth--;
    if (!outer_)
        return kFinished;
    bool fired = e_->watchdog.Disarm();
    bool oom = e_->doomed && !was_doomed_;
    // A termination requested while the entry was ending would hit the next
    // entry: clear it whatever it met.
    if (fired || oom)
        e_->isolate->CancelTerminateExecution();
    if (fired && !e_->doomed)
        WorldDropTicks(e_->world);
    if (oom)
        e_->rejections.clear();
    if (oom)
        return kOutOfMemory;
    if (fired)
        return kTimedOut;
    return kFinished;
}

// ---------------------------------------------------------------------------
// What escapes JS

void
OnUncaught(Local<Message> message, Local<Value> exception)
{
    Isolate *isolate = message->GetIsolate();
    HandleScope hs(isolate);
    Local<Context> context = isolate->GetCurrentContext();
    if (context.IsEmpty())
        return;
    LogException(isolate, context, "Uncaught", exception, message);
    // Thrown by a microtask of a waiting call: that call fails with it.
    js_engine *e = EngineOf(isolate);
    if (e != nullptr && e->current_call != 0)
        CallSettle(e, e->current_call, false, exception, message);
}

void
OnPromiseReject(v8::PromiseRejectMessage msg)
{
    Local<Promise> promise = msg.GetPromise();
    Isolate *isolate = promise->GetIsolate();
    js_engine *e = EngineOf(isolate);
    if (e == nullptr)
        return;
    if (msg.GetEvent() == v8::kPromiseRejectWithNoHandler) {
        Rejection r;
        r.promise.Reset(isolate, promise);
        Local<Value> v = msg.GetValue();
        if (!v.IsEmpty())
            r.value.Reset(isolate, v);
        r.call = e->current_call;
        e->rejections.push_back(std::move(r));
    } else if (msg.GetEvent() == v8::kPromiseHandlerAddedAfterReject) {
        for (auto it = e->rejections.begin(); it != e->rejections.end(); ++it) {
            if (it->promise.Get(isolate) == promise) {
                e->rejections.erase(it);
                break;
            }
        }
    }
}

// Rejections still without a handler when the entry ends: logged, and the
// call they were made in, still waiting, fails with them.
static void
ReportRejections(js_engine *e)
{
    Isolate *isolate = e->isolate;
    HandleScope hs(isolate);
    std::vector<Rejection> list;
    list.swap(e->rejections);
    for (Rejection &r : list) {
        Local<Promise> p = r.promise.Get(isolate);
        Local<Context> context;
        if (!p->GetCreationContext().ToLocal(&context))
            continue;
        Context::Scope cs(context);
        Local<Value> v = r.value.IsEmpty()
                             ? Local<Value>(v8::Undefined(isolate))
                             : r.value.Get(isolate);
        LogException(isolate, context, "Unhandled promise rejection:", v,
                     Local<Message>());
        if (r.call != 0)
            CallSettle(e, r.call, false, v, Local<Message>());
    }
}

} // namespace jse
