/* jshost status: the manager, its hosts and their workers (docs/cli.md), as
 * a table or as JSON. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static int
num(const msgpack_object *o, double *v)
{
    if (o == NULL)
        return 0;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *v = (double)o->via.u64;
        return 1;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *v = (double)o->via.i64;
        return 1;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *v = o->via.f64;
        return 1;
    default:
        return 0;
    }
}

/* A figure as text: plain, bytes, seconds or milliseconds. */
enum unit { U_PLAIN, U_BYTES, U_SECONDS, U_MS };

static const char *
fmt(char *buf, size_t len, const msgpack_object *o, enum unit unit)
{
    double v;

    if (o != NULL && o->type == MSGPACK_OBJECT_STR) {
        snprintf(buf, len, "%.*s", (int)o->via.str.size, o->via.str.ptr);
        return buf;
    }
    if (!num(o, &v))
        return "-";
    switch (unit) {
    case U_BYTES:
        if (v >= 1024.0 * 1024 * 1024)
            snprintf(buf, len, "%.1fG", v / (1024.0 * 1024 * 1024));
        else if (v >= 1024.0 * 1024)
            snprintf(buf, len, "%.1fM", v / (1024.0 * 1024));
        else if (v >= 1024)
            snprintf(buf, len, "%.0fK", v / 1024);
        else
            snprintf(buf, len, "%.0f", v);
        break;
    case U_SECONDS:
        if (v >= 86400)
            snprintf(buf, len, "%.0fd%02.0fh", floor(v / 86400),
                     floor(fmod(v, 86400) / 3600));
        else if (v >= 3600)
            snprintf(buf, len, "%.0fh%02.0fm", floor(v / 3600),
                     floor(fmod(v, 3600) / 60));
        else if (v >= 60)
            snprintf(buf, len, "%.0fm%02.0fs", floor(v / 60), fmod(v, 60));
        else
            snprintf(buf, len, "%.0fs", v);
        break;
    case U_MS:
        if (v >= 1000)
            snprintf(buf, len, "%.2fs", v / 1000);
        else
            snprintf(buf, len, "%.2fms", v);
        break;
    default:
        snprintf(buf, len, "%.15g", v);
    }
    return buf;
}

/* A worker figure: on the worker map itself or in its "stats" map. */
static const msgpack_object *
wget(const msgpack_object *w, const char *k1, const char *k2)
{
    const msgpack_object *o = cli_get_any(w, k1, k2, NULL);

    return o != NULL ? o : cli_get_any(cli_get(w, "stats"), k1, k2, NULL);
}

static void
print_worker(const msgpack_object *w)
{
    char a[64], b[64], c[64], d[64], e[140], f[64], g[64], h[64], i[64], j[64],
        k[64];

    snprintf(e, sizeof(e), "%s/%s",
             fmt(f, sizeof(f), wget(w, "heap_used", "heap"), U_BYTES),
             fmt(g, sizeof(g), wget(w, "heap_limit", "heap_max"), U_BYTES));
    printf("    %-8s %-9s %-8s %-8s %-15s %-7s %-6s %-8s %-9s %s\n",
           fmt(a, sizeof(a), wget(w, "pid", NULL), U_PLAIN),
           fmt(b, sizeof(b), wget(w, "state", NULL), U_PLAIN),
           fmt(c, sizeof(c), wget(w, "uptime_s", "uptime"), U_SECONDS),
           fmt(d, sizeof(d), wget(w, "rss", "rss_bytes"), U_BYTES), e,
           fmt(h, sizeof(h), wget(w, "calls", "calls_done"), U_PLAIN),
           fmt(i, sizeof(i), wget(w, "errors", NULL), U_PLAIN),
           fmt(j, sizeof(j), wget(w, "in_flight", "inflight"), U_PLAIN),
           fmt(k, sizeof(k), wget(w, "p50_ms", "p50"), U_MS),
           fmt(f, sizeof(f), wget(w, "p99_ms", "p99"), U_MS));
}

static void
print_host(const msgpack_object *h)
{
    char a[512], b[64], c[64], d[64];
    const msgpack_object *workers = cli_get(h, "workers");
    const msgpack_object *linger =
        cli_get_any(h, "linger_left_ms", "linger_ms", "linger_left", NULL);
    uint32_t i;

    printf("host %s  %s\n",
           fmt(b, sizeof(b), cli_get_any(h, "id", "host", NULL), U_PLAIN),
           fmt(a, sizeof(a), cli_get(h, "config"), U_PLAIN));
    double holders = 0, crashes = 0;

    printf("  state %s  holders %s",
           fmt(b, sizeof(b), cli_get(h, "state"), U_PLAIN),
           fmt(c, sizeof(c), cli_get(h, "holders"), U_PLAIN));
    /* the linger timer only runs once the last holder has left */
    if (num(cli_get(h, "holders"), &holders) && holders == 0)
        printf("  linger left %s", fmt(d, sizeof(d), linger, U_MS));
    if (num(cli_get(h, "crashes"), &crashes) && crashes > 0) {
        printf("  crashes %.0f", crashes);
        if (cli_get(h, "last_crash") != NULL &&
            cli_get(h, "last_crash")->type == MSGPACK_OBJECT_STR)
            printf(" (last: %s)",
                   fmt(a, sizeof(a), cli_get(h, "last_crash"), U_PLAIN));
    }
    printf("\n");
    printf("  log %s\n", fmt(a, sizeof(a), cli_get(h, "logfile"), U_PLAIN));
    if (workers == NULL || workers->type != MSGPACK_OBJECT_ARRAY ||
        workers->via.array.size == 0) {
        printf("    (no workers)\n");
        return;
    }
    printf("    %-8s %-9s %-8s %-8s %-15s %-7s %-6s %-8s %-9s %s\n", "PID",
           "STATE", "UPTIME", "RSS", "HEAP", "CALLS", "ERRORS", "INFLIGHT",
           "P50", "P99");
    for (i = 0; i < workers->via.array.size; i++)
        print_worker(&workers->via.array.ptr[i]);
}

static void
print_table(const msgpack_object *root)
{
    const msgpack_object *m = cli_get(root, "manager");
    const msgpack_object *hosts = cli_get(root, "hosts");
    char a[64], b[64], c[64], d[64];
    uint32_t i;

    printf("manager pid %s  up %s  clients %s  version %s\n",
           fmt(a, sizeof(a), cli_get(m, "pid"), U_PLAIN),
           fmt(b, sizeof(b), cli_get_any(m, "uptime_s", "uptime", NULL),
               U_SECONDS),
           fmt(c, sizeof(c), cli_get(m, "clients"), U_PLAIN),
           fmt(d, sizeof(d), cli_get(m, "version"), U_PLAIN));
    if (hosts == NULL || hosts->type != MSGPACK_OBJECT_ARRAY ||
        hosts->via.array.size == 0) {
        printf("no hosts\n");
        return;
    }
    for (i = 0; i < hosts->via.array.size; i++) {
        printf("\n");
        print_host(&hosts->via.array.ptr[i]);
    }
}

/* {"manager": null, "hosts": []}, printed as a running manager's status is. */
static int
print_no_manager(void)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    jshost_value v;
    int r;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "manager", 7);
    msgpack_pack_nil(&pk);
    msgpack_pack_str_with_body(&pk, "hosts", 5);
    msgpack_pack_array(&pk, 0);
    v.data = sb.data;
    v.len = sb.size;
    r = cli_print_value(&v, 1);
    msgpack_sbuffer_destroy(&sb);
    return r;
}

int
cmd_status(int argc, char **argv)
{
    jshost_value v = {0};
    msgpack_unpacked u;
    int json = 0, none, r = CLI_OK, i;
    jshost *c;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else
            return cli_usage("status", "unknown argument '%s'", argv[i]);
    }
    /* status never starts a manager: "none running" is an answer */
    if ((c = cli_connect_running(&none)) == NULL) {
        if (!none)
            return CLI_JSHOST;
        if (json)
            return print_no_manager();
        printf("no manager running\n");
        return fflush(stdout) == 0 ? CLI_OK : CLI_JSHOST;
    }
    if (jshost_status(c, NULL, &v) < 0) {
        r = cli_fail(c, "status", 0);
    } else if (json) {
        r = cli_print_value(&v, 1);
    } else {
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, v.data, v.len, NULL) ==
            MSGPACK_UNPACK_SUCCESS)
            print_table(&u.data);
        msgpack_unpacked_destroy(&u);
    }
    jshost_value_free(&v);
    jshost_free(c);
    return r;
}
