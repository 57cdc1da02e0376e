/* A call's life: made when a request (or the manager's own question) is
 * taken, freed once its answer went back (docs/lifecycle.md, "Calls"). */
#include <stdlib.h>
#include <string.h>

#include "manager.h"
#include "xmalloc.h"

struct call *
call_new(enum call_kind kind, struct client *client, uint32_t cid)
{
    struct call *c = xcalloc(1, sizeof *c);

    c->kind = kind;
    c->cid = cid;
    c->client = client;
    if (client != NULL)
        client_ref(client);
    c->start_ns = uv_hrtime();
    return c;
}

void
call_free(struct call *c)
{
    if (c == NULL)
        return;
    deadline_disarm(&c->deadline);
    if (c->in_client)
        TAILQ_REMOVE(&c->client->calls, c, centry);
    free(c->params_owned);
    if (c->client != NULL)
        client_unref(c->client);
    free(c);
}

void
call_set_params(struct call *c, const char *method,
                const msgpack_object *params)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    uint32_t n = params->via.array.size;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, n);
    for (uint32_t i = 0; i < n; i++) {
        if (i == 1)
            c->rest_at = sb.size;
        msgpack_pack_object(&pk, params->via.array.ptr[i]);
    }
    if (n < 2)
        c->rest_at = sb.size;
    free(c->params_owned);
    c->method = method;
    c->nparams = n;
    c->params_len = sb.size;
    c->params_owned = msgpack_sbuffer_release(&sb);
    c->params = c->params_owned;
}

void
call_keep(struct call *c)
{
    if (c->params == NULL || c->params == c->params_owned)
        return;
    c->params_owned = xmalloc(c->params_len ? c->params_len : 1);
    memcpy(c->params_owned, c->params, c->params_len);
    c->params = c->params_owned;
}
