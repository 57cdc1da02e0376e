// Entries into JS from the loop: the deadline watchdog, the ticks and
// microtasks run as an entry ends, what escapes JS (uncaught errors and
// unhandled promise rejections, which fail the call they belong to), and
// the embedder's poll while an entry runs long: JS that runs blocks the
// loop, so a cancel, a context's destruction or a stop can only reach it
// from a V8 interrupt, which then terminates it.
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
Watchdog::SetPoll(v8::InterruptCallback cb, void *data)
{
    std::lock_guard<std::mutex> l(mu_);
    poll_cb_ = cb;
    poll_data_ = data;
}

void
Watchdog::Arm(uint64_t deadline_ns, uint64_t now_ns)
{
    bool wake;
    {
        std::lock_guard<std::mutex> l(mu_);
        armed_ = true;
        fired_.store(false, std::memory_order_relaxed);
        deadline_ = deadline_ns;
        uint64_t next = deadline_ns;
        if (poll_cb_ != nullptr) {
            // The first poll comes only once the entry has run a while: most
            // end long before, and cost no interrupt. From the loop's time,
            // just updated (Entry): a clock read less per entry.
            next_poll_ = now_ns + kPollNs;
            if (next_poll_ < next)
                next = next_poll_;
        }
        wake = next < wake_at_;
    }
    if (wake)
        cv_.notify_one();
}

// Asked a few times per entry: no lock. The thread sets fired_ before it
// terminates, so JS that stopped for the deadline always reads it set.
bool
Watchdog::Fired()
{
    return fired_.load(std::memory_order_acquire);
}

bool
Watchdog::Disarm()
{
    std::lock_guard<std::mutex> l(mu_);
    armed_ = false;
    bool f = fired_.exchange(false, std::memory_order_acq_rel);
    return f;
}

void
Watchdog::Loop()
{
    std::unique_lock<std::mutex> l(mu_);
    while (!stop_) {
        uint64_t now = uv_hrtime();
        if (armed_ && now >= deadline_) {
            fired_.store(true, std::memory_order_release);
            isolate_->TerminateExecution();
            armed_ = false;
            continue;
        }
        bool polling = armed_ && poll_cb_ != nullptr;
        if (polling && now >= next_poll_) {
            next_poll_ = now + kPollNs;
            isolate_->RequestInterrupt(poll_cb_, poll_data_);
            continue;
        }
        if (armed_) {
            uint64_t until =
                polling && next_poll_ < deadline_ ? next_poll_ : deadline_;
            wake_at_ = until;
            cv_.wait_for(l, std::chrono::nanoseconds(until - now));
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
// Termination from inside (the embedder's poll)

void
Terminate(js_engine *e, Termination why)
{
    if (e->depth == 0)
        return;
    if (why > e->terminated)
        e->terminated = why;
    e->isolate->TerminateExecution();
}

Realm *
RunningRealm(js_engine *e)
{
    if (e->depth == 0)
        return nullptr;
    HandleScope hs(e->isolate);
    Local<Context> context = e->isolate->GetEnteredOrMicrotaskContext();
    if (context.IsEmpty())
        return nullptr;
    return RealmOf(context);
}

void
PollInterrupt(Isolate *isolate, void *data)
{
    (void)isolate;
    js_engine *e = static_cast<js_engine *>(data);
    // Asked for while an entry ran, it may come in a later one, or while JS
    // runs outside any (a realm being set up): only inside an entry.
    if (e->depth == 0 || e->polling || e->freeing || e->hooks.poll == nullptr)
        return;
    e->polling = true;
    e->hooks.poll(e->hooks.arg);
    e->polling = false;
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
        e->watchdog.Arm(deadline_ns, uv_now(e->loop) * 1000000ull);
        e->terminated = kTermNone;
        // Stopping: whatever JS is left runs no further than its first
        // instruction.
        if (e->stopping)
            Terminate(e, kTermStop);
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
    if (outer_ && (e_->watchdog.Disarm() || e_->doomed != was_doomed_ ||
                   e_->terminated != kTermNone)) {
        e_->isolate->CancelTerminateExecution();
        e_->terminated = kTermNone;
    }
}

Outcome
Entry::Leave()
{
    if (left_)
        return kFinished;
    left_ = true;
    // Once the deadline has fired nothing more runs here: the deadline is
    // spent, and queued microtasks wait for the next entry and its deadline.
    // Terminated from inside (the poll), the entry is spent too.
    auto stopped = [this] {
        return e_->doomed || e_->watchdog.Fired() ||
               e_->terminated != kTermNone;
    };
    bool spent = outer_ && stopped();
    // As Node: the nextTick queue, then the promise microtasks, again until
    // both are empty; all under this entry's deadline.
    while (outer_ && !spent) {
        if (!WorldRunTicks(e_->world) || stopped())
            break;
        e_->isolate->PerformMicrotaskCheckpoint();
        if (!WorldTicksPending(e_->world) || stopped())
            break;
    }
    // Logging reads the errors' stacks (getters, maybe): still under the
    // deadline.
    if (outer_ && !spent && !e_->rejections.empty() && !stopped())
        ReportRejections(e_);
    e_->depth--;
    if (!outer_)
        return kFinished;
    bool fired = e_->watchdog.Disarm();
    bool oom = e_->doomed && !was_doomed_;
    int term = e_->terminated;
    e_->terminated = kTermNone;
    e_->term_reason = term;
    // A termination requested while the entry was ending would hit the next
    // entry: clear it whatever it met.
    if (fired || oom || term != kTermNone)
        e_->isolate->CancelTerminateExecution();
    if ((fired || term != kTermNone) && !e_->doomed)
        WorldDropTicks(e_->world);
    if (oom)
        e_->rejections.clear();
    if (oom)
        return kOutOfMemory;
    if (fired)
        return kTimedOut;
    if (term != kTermNone)
        return kTerminated;
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
