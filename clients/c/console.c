/* Console lines of the client's contexts: [2, "console", [level, text, ctx]]
 * handed to jshost_set_console_handler's handler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jshost_priv.h"
#include "methods.h"

/* [2, "console", [level, text, ctx]]: to the handler, if any (lock held). */
void
jshost__handle_console(jshost_priv *p, const struct proto_msg *m)
{
    const msgpack_object *a = m->params.via.array.ptr;
    char level[16], *text;

    if (p->console_fn == NULL || m->params.via.array.size < 3 ||
        a[0].type != MSGPACK_OBJECT_STR || a[1].type != MSGPACK_OBJECT_STR ||
        a[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return;
    snprintf(level, sizeof(level), "%.*s", (int)a[0].via.str.size,
             a[0].via.str.ptr);
    text = malloc(a[1].via.str.size + 1);
    if (text == NULL)
        return; /* out of memory: the line is lost, the log has it */
    if (a[1].via.str.size > 0)
        memcpy(text, a[1].via.str.ptr, a[1].via.str.size);
    text[a[1].via.str.size] = '\0';
    p->console_fn(p->console_user, a[2].via.u64, level, text,
                  a[1].via.str.size);
    free(text);
}

void
jshost_set_console_handler(jshost *c, jshost_console_fn fn, void *user)
{
    jshost__enter(c);
    c->priv->console_fn = fn;
    c->priv->console_user = user;
    jshost__leave(c);
}
