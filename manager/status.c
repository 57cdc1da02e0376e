/*
 * The status method (docs/lifecycle.md, "Status"). Heap and RSS figures come
 * from the workers' own `stats` answers, gathered asynchronously: the reply
 * goes out when every worker answered or after a short wait, whichever comes
 * first, so a busy worker never holds status up. Call counts and p50/p99 are
 * the manager's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "manager.h"
#include "xmalloc.h"

#define STATUS_WAIT_MS 500

struct status_req {
    struct client *client; /* referenced */
    uint32_t msgid;
    char only[32]; /* a host id, or "" for all */
    unsigned pending;
    bool replied;
    bool timer_closed;
    uv_timer_t timer;
};

static void
pack_kv_u64(msgpack_packer *pk, const char *k, uint64_t v)
{
    proto_pack_cstr(pk, k);
    msgpack_pack_uint64(pk, v);
}

/* A float figure of a stats map; 0 when absent. */
static double
status_double(const msgpack_object *map, const char *key)
{
    const msgpack_object *o = proto_map_get(map, key);

    if (o == NULL)
        return 0;
    if (o->type == MSGPACK_OBJECT_FLOAT64 || o->type == MSGPACK_OBJECT_FLOAT32)
        return o->via.f64;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        return (double)o->via.u64;
    return 0;
}

static void
status_pack_worker(msgpack_packer *pk, struct worker *w)
{
    uint64_t now = manager_now();

    msgpack_pack_map(pk, 13);
    pack_kv_u64(pk, PROTO_K_PID, (uint64_t)w->pid);
    proto_pack_cstr(pk, PROTO_K_STATE);
    proto_pack_cstr(pk, worker_state_name(w->state));
    pack_kv_u64(pk, PROTO_K_UPTIME_S, (now - w->start_ms) / 1000);
    pack_kv_u64(pk, PROTO_K_RSS, w->rss);
    pack_kv_u64(pk, PROTO_K_HEAP_USED, w->heap_used);
    pack_kv_u64(pk, PROTO_K_HEAP_LIMIT, w->heap_limit);
    pack_kv_u64(pk, PROTO_K_CALLS, w->ncalls);
    pack_kv_u64(pk, PROTO_K_ERRORS, w->nerrors);
    pack_kv_u64(pk, PROTO_K_IN_FLIGHT,
                w->wire_inflight > w->inflight ? w->wire_inflight
                                               : w->inflight);
    proto_pack_cstr(pk, PROTO_K_P50_MS);
    msgpack_pack_double(pk, w->p50_ms);
    proto_pack_cstr(pk, PROTO_K_P99_MS);
    msgpack_pack_double(pk, w->p99_ms);
    proto_pack_cstr(pk, PROTO_K_DIRECT);
    proto_pack_cstr(pk, w->direct_path);
    pack_kv_u64(pk, PROTO_K_FORWARDED_UNREAD, w->forwarded_unread);
}

void
status_pack_host(msgpack_packer *pk, struct host *h)
{
    struct worker *w;
    unsigned n = 0;
    uint64_t now = manager_now(), left = 0, qleft = 0;

    if (h->lingering && h->linger_deadline > now)
        left = h->linger_deadline - now;
    if (h->state == HOST_QUARANTINED && h->quarantine_until_ms > now)
        qleft = h->quarantine_until_ms - now;
    TAILQ_FOREACH(w, &h->workers, entry)
    n++;
    msgpack_pack_map(pk, 14);
    proto_pack_cstr(pk, PROTO_K_ID);
    proto_pack_cstr(pk, h->id);
    proto_pack_cstr(pk, PROTO_K_CONFIG);
    proto_pack_cstr(pk, h->config);
    proto_pack_cstr(pk, PROTO_K_LOGFILE);
    proto_pack_cstr(pk, h->logfile);
    pack_kv_u64(pk, PROTO_K_HOLDERS, h->nholders);
    pack_kv_u64(pk, PROTO_K_LINGER_LEFT_MS, left);
    proto_pack_cstr(pk, PROTO_K_STATE);
    proto_pack_cstr(pk, host_state_name(h->state));
    pack_kv_u64(pk, PROTO_K_POOL, h->nworkers);
    pack_kv_u64(pk, PROTO_K_QUEUED, h->inflight);
    pack_kv_u64(pk, PROTO_K_CRASHES, h->total_crashes);
    proto_pack_cstr(pk, PROTO_K_LAST_CRASH);
    proto_pack_cstr(pk, h->last_crash);
    pack_kv_u64(pk, PROTO_K_QUARANTINE_LEFT_MS, qleft);
    pack_kv_u64(pk, PROTO_K_LOG_DROPPED,
                h->log != NULL ? logfile_dropped(h->log) : 0);
    proto_pack_cstr(pk, PROTO_K_RELOAD);
    if (host_reload_enabled(h))
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    proto_pack_cstr(pk, PROTO_K_WORKERS);
    msgpack_pack_array(pk, n);
    TAILQ_FOREACH(w, &h->workers, entry)
    status_pack_worker(pk, w);
}

static void
status_reply(struct status_req *r)
{
    struct rpcstream_msg om;
    struct host *h;
    unsigned n = 0;

    r->replied = true;
    if (r->client->closed)
        return;
    client_reply_begin(&om, r->msgid);
    if (r->only[0] != '\0') {
        h = host_find(r->only);
        if (h == NULL) {
            msgpack_sbuffer_destroy(&om.sb);
            client_reply_error(r->client, r->msgid, PROTO_ERR_NOT_FOUND, NULL,
                               "host %s is gone", r->only);
            return;
        }
        status_pack_host(&om.pk, h);
        client_send(r->client, &om);
        return;
    }
    msgpack_pack_map(&om.pk, 2);
    proto_pack_cstr(&om.pk, PROTO_K_MANAGER);
    msgpack_pack_map(&om.pk, 5);
    pack_kv_u64(&om.pk, PROTO_K_PID, (uint64_t)getpid());
    pack_kv_u64(&om.pk, PROTO_K_UPTIME_S,
                (manager_now() - mgr.start_ms) / 1000);
    pack_kv_u64(&om.pk, PROTO_K_CLIENTS, mgr.nclients);
    pack_kv_u64(&om.pk, PROTO_K_PARTIAL_BYTES, rpcstream_partial_total());
    proto_pack_cstr(&om.pk, PROTO_K_VERSION);
    proto_pack_cstr(&om.pk, JSHOST_VERSION);
    proto_pack_cstr(&om.pk, PROTO_K_HOSTS);
    TAILQ_FOREACH(h, &mgr.hosts, entry)
    n++;
    msgpack_pack_array(&om.pk, n);
    TAILQ_FOREACH(h, &mgr.hosts, entry)
    status_pack_host(&om.pk, h);
    client_send(r->client, &om);
}

static void
status_timer_closed_cb(uv_handle_t *handle)
{
    struct status_req *r = handle->data;

    r->timer_closed = true;
    if (r->pending == 0) {
        client_unref(r->client);
        free(r);
    }
}

static void
status_finish(struct status_req *r)
{
    if (!r->replied) {
        status_reply(r);
        uv_close((uv_handle_t *)&r->timer, status_timer_closed_cb);
    } else if (r->pending == 0 && r->timer_closed) {
        client_unref(r->client);
        free(r);
    }
}

static void
status_timer_cb(uv_timer_t *t)
{
    status_finish(t->data);
}

void
status__stats_reply(struct call *c, struct worker *w,
                    const struct proto_msg *msg)
{
    struct status_req *r = c->sreq;
    uint64_t v;

    if (msg != NULL && msg->error.type == MSGPACK_OBJECT_NIL &&
        msg->result.type == MSGPACK_OBJECT_MAP) {
        if (proto_opt_uint(&msg->result, PROTO_K_RSS, &v, NULL) == 0)
            w->rss = v;
        if (proto_opt_uint(&msg->result, PROTO_K_HEAP_USED, &v, NULL) == 0)
            w->heap_used = v;
        if (proto_opt_uint(&msg->result, PROTO_K_HEAP_LIMIT, &v, NULL) == 0)
            w->heap_limit = v;
        if (proto_opt_uint(&msg->result, PROTO_K_CALLS, &v, NULL) == 0)
            w->ncalls = v;
        /* Direct calls count as served too (the manager never sees them). */
        if (w->ncalls > 0)
            w->served = true;
        if (proto_opt_uint(&msg->result, PROTO_K_ERRORS, &v, NULL) == 0)
            w->nerrors = v;
        if (proto_opt_uint(&msg->result, PROTO_K_IN_FLIGHT, &v, NULL) == 0)
            w->wire_inflight = v;
        w->p50_ms = status_double(&msg->result, PROTO_K_P50_MS);
        w->p99_ms = status_double(&msg->result, PROTO_K_P99_MS);
    }
    c->sreq = NULL;
    r->pending--;
    if (r->pending == 0)
        status_finish(r);
}

void
status_request(struct client *c, uint32_t msgid, struct host *only)
{
    struct status_req *r = xcalloc(1, sizeof *r);
    struct host *h;
    struct worker *w;
    struct call *call;

    r->client = c;
    client_ref(c);
    r->msgid = msgid;
    if (only != NULL)
        snprintf(r->only, sizeof r->only, "%s", only->id);
    uv_timer_init(mgr.loop, &r->timer);
    r->timer.data = r;
    TAILQ_FOREACH(h, &mgr.hosts, entry)
    {
        if (only != NULL && h != only)
            continue;
        TAILQ_FOREACH(w, &h->workers, entry)
        {
            if (w->state != WORKER_READY && w->state != WORKER_DRAINING)
                continue;
            call = call_new(CALL_STATS, NULL, 0);
            call->host = h;
            call->sreq = r;
            r->pending++;
            worker_request(w, call, PROTO_M_STATS, 0);
        }
    }
    if (r->pending == 0)
        status_finish(r);
    else
        uv_timer_start(&r->timer, status_timer_cb, STATUS_WAIT_MS, 0);
}
