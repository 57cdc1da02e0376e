/* A call's life: made when a request (or the manager's own question) is
 * taken, freed once its answer went back (docs/lifecycle.md, "Calls"). */
#include <stdlib.h>

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
    if (c->has_msg)
        proto_msg_release(&c->msg);
    if (c->client != NULL)
        client_unref(c->client);
    free(c);
}
