/* jshost start, stop, restart and shutdown: the lifecycle of hosts and of the
 * manager (docs/cli.md). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

/* "<before>host ID for CONFIG<after>", then the host's workers, functions
 * and log file. */
static void
print_attach(const char *before, const char *after, const jshost_value *info)
{
    msgpack_unpacked u;
    const msgpack_object *root = unpack(info, &u), *fns, *n;
    uint32_t i;

    printf("%shost ", before);
    put_str(cli_get(root, "host"));
    printf(" for ");
    put_str(cli_get(root, "config"));
    fputs(after, stdout);
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
    if (cli_attach(c, argv[1], &host, &info) < 0)
        r = cli_fail(c, what, 0);
    else
        print_attach("started ", "", &info);
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
    c = cli_connect_running(&none);
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
        /* not running: restarting it is starting it, and we say so */
        if (cli_attach(c, argv[1], &host, &v) < 0)
            r = cli_fail(c, what, 0);
        else
            print_attach("", " was not running: started it", &v);
    } else {
        r = cli_fail(c, what, 0);
    }
    jshost_value_free(&v);
    free(host);
    jshost_free(c);
    return r;
}

/* The manager's pid from its status; 0 when it does not say. */
static pid_t
manager_pid(jshost *c)
{
    jshost_value v = {0};
    msgpack_unpacked u;
    const msgpack_object *pid;
    pid_t r = 0;

    if (jshost_status(c, NULL, &v) < 0)
        return 0;
    pid = cli_get(cli_get(unpack(&v, &u), "manager"), "pid");
    if (pid != NULL && pid->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
        pid->via.u64 > 0 && pid->via.u64 < (uint64_t)1 << 31)
        r = (pid_t)pid->via.u64;
    msgpack_unpacked_destroy(&u);
    jshost_value_free(&v);
    return r;
}

/* Whether pid has exited (a zombie has: only its parent has not looked). */
static int
pid_gone(pid_t pid)
{
    char path[64], buf[512], *p;
    FILE *f;
    int zombie = 0;

    if (kill(pid, 0) < 0 && errno == ESRCH)
        return 1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    /* "pid (comm) S ...": the state follows the last ')' */
    if (fgets(buf, sizeof(buf), f) != NULL && (p = strrchr(buf, ')')) != NULL)
        zombie = p[1] == ' ' && p[2] == 'Z';
    fclose(f);
    return zombie;
}

/* How long shutdown waits for the manager: its hosts get SIGTERM, then
 * SIGKILL after a grace (3 s by default). */
#define SHUTDOWN_WAIT_MS 30000

int
cmd_shutdown(int argc, char **argv)
{
    struct timespec tick = {0, 20 * 1000000L};
    int none, waited;
    pid_t pid;
    jshost *c;

    (void)argv;
    if (argc != 1)
        return cli_usage("shutdown", "too many arguments");
    c = cli_connect_running(&none);
    if (c == NULL) {
        if (!none)
            return CLI_JSHOST;
        printf("no manager running\n");
        return CLI_OK;
    }
    pid = manager_pid(c);
    if (jshost_shutdown(c) < 0) {
        int r = cli_fail(c, "shutdown", 0);

        jshost_free(c);
        return r;
    }
    jshost_free(c);
    /* Gone means its socket and pid file are gone too: a script may go on. */
    for (waited = 0; pid > 0 && !pid_gone(pid); waited += 20) {
        if (waited >= SHUTDOWN_WAIT_MS) {
            cli_warn("shutdown: the manager (pid %d) is still stopping after "
                     "%d s",
                     (int)pid, SHUTDOWN_WAIT_MS / 1000);
            return CLI_JSHOST;
        }
        nanosleep(&tick, NULL);
    }
    if (pid > 0)
        printf("manager stopped (pid %d)\n", (int)pid);
    else
        printf("manager stopped\n");
    return fflush(stdout) == 0 ? CLI_OK : CLI_JSHOST;
}
