/* jshost start, stop and restart: a host's lifecycle (docs/lifecycle.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Prints a str object (or "-"). */
static void
put_str(const msgpack_object *o)
{
    if (o != NULL && o->type == MSGPACK_OBJECT_STR)
        printf("%.*s", (int)o->via.str.size, o->via.str.ptr);
    else
        fputs("-", stdout);
}

/* Unpacks v into u; the root object or NULL. */
static const msgpack_object *
unpack(const jshost_value *v, msgpack_unpacked *u)
{
    msgpack_unpacked_init(u);
    if (v->data == NULL ||
        msgpack_unpack_next(u, v->data, v->len, NULL) != MSGPACK_UNPACK_SUCCESS)
        return NULL;
    return &u->data;
}

static void
print_attach(const char *verb, const jshost_value *info)
{
    msgpack_unpacked u;
    const msgpack_object *root = unpack(info, &u), *fns, *n;
    uint32_t i;

    printf("%s host ", verb);
    put_str(cli_get(root, "host"));
    printf(" for ");
    put_str(cli_get(root, "config"));
    n = cli_get(root, "workers");
    if (n != NULL && n->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        printf("\n  workers:   %llu", (unsigned long long)n->via.u64);
    fns = cli_get(root, "functions");
    if (fns != NULL && fns->type == MSGPACK_OBJECT_ARRAY) {
        printf("\n  functions: ");
        for (i = 0; i < fns->via.array.size; i++) {
            if (i > 0)
                fputs(", ", stdout);
            put_str(&fns->via.array.ptr[i]);
        }
    }
    printf("\n  log:       ");
    put_str(cli_get(root, "logfile"));
    printf("\n");
    msgpack_unpacked_destroy(&u);
}

/* Connects to a running manager only. *none = 1 (and NULL, nothing printed)
 * when there is none. */
static jshost *
connect_running(int *none)
{
    struct jshost_options o;
    jshost *c;

    *none = 0;
    jshost_options_init(&o);
    o.spawn = 0;
    o.client_name = "jshost-cli";
    c = jshost_connect(&o);
    if (c == NULL) {
        cli_warn("out of memory");
        return NULL;
    }
    if (c->err == JSHOST_ERR_IO && strstr(c->errstr, "no manager running")) {
        *none = 1;
        jshost_free(c);
        return NULL;
    }
    if (c->err != 0) {
        cli_fail(c, "connect", 0);
        jshost_free(c);
        return NULL;
    }
    return c;
}

int
cmd_start(int argc, char **argv)
{
    jshost_value info = {0};
    char *host = NULL, what[600];
    jshost *c;
    int r = CLI_OK;

    if (argc != 2 || argv[1][0] == '-')
        return cli_usage("start",
                         argc < 2 ? "start needs a CONFIG" : "bad arguments");
    if ((c = cli_connect(1)) == NULL)
        return CLI_JSHOST;
    snprintf(what, sizeof(what), "start %s", argv[1]);
    if (jshost_attach(c, argv[1], &host, &info) < 0)
        r = cli_fail(c, what, 0);
    else
        print_attach("started", &info);
    jshost_value_free(&info);
    free(host);
    jshost_free(c);
    return r;
}

static int
stop_one(jshost *c, const char *what)
{
    jshost_value v = {0};
    char words[600];

    if (jshost_stop(c, what, &v) < 0) {
        if (c->err == JSHOST_ERR_REMOTE && c->remote.type != NULL &&
            strcmp(c->remote.type, "NotFound") == 0) {
            printf("%s: not running\n", what);
            return CLI_OK;
        }
        snprintf(words, sizeof(words), "stop %s", what);
        return cli_fail(c, words, 0);
    }
    printf("stopped %s\n", what);
    jshost_value_free(&v);
    return CLI_OK;
}

int
cmd_stop(int argc, char **argv)
{
    jshost_value v = {0};
    msgpack_unpacked u;
    const msgpack_object *hosts, *id;
    char name[512];
    int none, r = CLI_OK, all;
    uint32_t i;
    jshost *c;

    if (argc != 2)
        return cli_usage("stop", "stop needs a CONFIG or --all");
    all = strcmp(argv[1], "--all") == 0;
    if (!all && argv[1][0] == '-')
        return cli_usage("stop", "unknown option '%s'", argv[1]);
    c = connect_running(&none);
    if (c == NULL) {
        if (!none)
            return CLI_JSHOST;
        printf("no manager running: nothing to stop\n");
        return CLI_OK;
    }
    if (!all) {
        r = stop_one(c, argv[1]);
        jshost_free(c);
        return r;
    }
    if (jshost_status(c, NULL, &v) < 0) {
        r = cli_fail(c, "status", 0);
        jshost_free(c);
        return r;
    }
    hosts = cli_get(unpack(&v, &u), "hosts");
    for (i = 0; hosts != NULL && hosts->type == MSGPACK_OBJECT_ARRAY &&
                i < hosts->via.array.size;
         i++) {
        id = cli_get_any(&hosts->via.array.ptr[i], "id", "host", NULL);
        if (id == NULL || id->type != MSGPACK_OBJECT_STR)
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)id->via.str.size,
                 id->via.str.ptr);
        if (stop_one(c, name) != CLI_OK)
            r = CLI_JSHOST;
    }
    if (hosts == NULL || hosts->type != MSGPACK_OBJECT_ARRAY ||
        hosts->via.array.size == 0)
        printf("no hosts running\n");
    msgpack_unpacked_destroy(&u);
    jshost_value_free(&v);
    jshost_free(c);
    return r;
}

int
cmd_restart(int argc, char **argv)
{
    jshost_value v = {0};
    char *host = NULL, what[600];
    jshost *c;
    int r = CLI_OK;

    if (argc != 2 || argv[1][0] == '-')
        return cli_usage("restart",
                         argc < 2 ? "restart needs a CONFIG" : "bad arguments");
    if ((c = cli_connect(1)) == NULL)
        return CLI_JSHOST;
    snprintf(what, sizeof(what), "restart %s", argv[1]);
    if (jshost_restart(c, argv[1], &v) == 0) {
        printf("restarted %s\n", argv[1]);
    } else if (c->err == JSHOST_ERR_REMOTE && c->remote.type != NULL &&
               strcmp(c->remote.type, "NotFound") == 0) {
        /* not running: restarting it is starting it */
        if (jshost_attach(c, argv[1], &host, &v) < 0)
            r = cli_fail(c, what, 0);
        else
            print_attach("started", &v);
    } else {
        r = cli_fail(c, what, 0);
    }
    jshost_value_free(&v);
    free(host);
    jshost_free(c);
    return r;
}
