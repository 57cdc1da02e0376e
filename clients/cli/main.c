/* The jshost command (README.md; `jshost help`): dispatch, help, version and
 * the helpers the commands share. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "locate.h"

static const struct cli_cmd cmds[] = {
    {"call", "call CONFIG FUNCTION [JSON|-] [--timeout SECONDS]", cmd_call},
    {"eval", "eval [--config CONFIG] [--timeout SECONDS] SCRIPT|-", cmd_eval},
    {"start", "start CONFIG", cmd_start},
    {"stop", "stop CONFIG|--all", cmd_stop},
    {"restart", "restart CONFIG", cmd_restart},
    {"status", "status [--json]", cmd_status},
    {"logs", "logs CONFIG [-f]", cmd_logs},
    {"host", "host CONFIG --listen PATH", cmd_host},
    {"manager", "manager [--foreground] [--no-idle-exit]", cmd_manager},
    {"version", "version", NULL},
    {"help", "help", NULL},
};

static const char help_text[] =
    "jshost: call JavaScript functions of a config file, from anywhere.\n"
    "\n"
    "  jshost call CONFIG FUNCTION [JSON|-] [--timeout SECONDS]\n"
    "        call FUNCTION of CONFIG with JSON as its data (default {};\n"
    "        - reads it from stdin) and print the result as JSON\n"
    "  jshost eval [--config CONFIG] [--timeout SECONDS] SCRIPT|-\n"
    "        evaluate SCRIPT in a fresh context (on CONFIG's worker, else on "
    "a\n"
    "        private VM) and print its value as JSON\n"
    "  jshost start CONFIG          start CONFIG's host (it lingers, then "
    "stops)\n"
    "  jshost stop CONFIG|--all     stop one host or all of them\n"
    "  jshost restart CONFIG        restart a host (its state starts afresh)\n"
    "  jshost status [--json]       the manager, its hosts and their workers\n"
    "  jshost logs CONFIG [-f]      print a host's log file (-f: follow it)\n"
    "  jshost host CONFIG --listen PATH\n"
    "        run one worker in the foreground on socket PATH, no manager\n"
    "        (production, under a supervisor; clients set JSHOST_SOCKET=PATH)\n"
    "  jshost manager [--foreground] [--no-idle-exit]\n"
    "        run the manager (it daemonizes unless --foreground)\n"
    "  jshost version | help\n"
    "\n"
    "The manager and the hosts start by themselves on first use and stop when\n"
    "idle.\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  the JavaScript failed: it threw or rejected (JSError), ran past its\n"
    "     deadline (TimeoutError: the JS did not finish), hit its heap limit\n"
    "     (MemoryError), the function does not exist (NotFound), or a value\n"
    "     could not cross (InvalidArgument); type, message and stack on "
    "stderr\n"
    "  2  usage: unknown command or option, bad JSON\n"
    "  3  jshost itself could not: no manager, config error (with file and\n"
    "     line), a worker crash, an unusable runtime directory\n"
    "\n"
    "Environment:\n"
    "  JSHOST_RUNTIME_DIR  runtime dir (default $XDG_RUNTIME_DIR/jshost, else\n"
    "                      /tmp/jshost-UID)\n"
    "  JSHOST_SOCKET       talk to this socket (a manager or `jshost host`);\n"
    "                      never start anything\n"
    "  JSHOST_MANAGER, JSHOST_WORKER  the binaries to run\n";

void
cli_warn(const char *fmt, ...)
{
    va_list ap;

    fputs("jshost: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int
cli_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    size_t i;

    fputs("jshost: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    for (i = 0; cmd != NULL && i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(cmds[i].name, cmd) == 0)
            fprintf(stderr, "usage: jshost %s\n", cmds[i].usage);
    }
    if (cmd == NULL)
        fputs("try: jshost help\n", stderr);
    return CLI_USAGE;
}

jshost *
cli_connect(int spawn)
{
    struct jshost_options o;
    char manager[PATH_MAX];
    jshost *c;

    jshost_options_init(&o);
    o.spawn = spawn;
    o.client_name = "jshost-cli";
    /* The manager that belongs with this jshost (locate.h, from where this
     * executable is); if none is found, libjshost looks from where it is. */
    if (locate_daemon(LOCATE_MANAGER, NULL, manager, sizeof(manager)) == 0)
        o.manager_path = manager;
    c = jshost_connect(&o);
    if (c == NULL) {
        cli_warn("out of memory");
        return NULL;
    }
    if (c->err != 0) {
        cli_fail(c, "connect", 0);
        jshost_free(c);
        return NULL;
    }
    return c;
}

static int
js_failure(const char *type)
{
    static const char *const js[] = {"JSError", "TimeoutError", "MemoryError",
                                     "NotFound", "InvalidArgument"};
    size_t i;

    for (i = 0; type != NULL && i < sizeof(js) / sizeof(js[0]); i++) {
        if (strcmp(type, js[i]) == 0)
            return 1;
    }
    return 0;
}

int
cli_fail(jshost *c, const char *what, int js)
{
    const jshost_error *e = &c->remote;

    if (c->err != JSHOST_ERR_REMOTE) {
        cli_warn("%s: %s", what, c->errstr);
        return CLI_JSHOST;
    }
    if (e->name != NULL && e->type != NULL && strcmp(e->type, "JSError") == 0)
        cli_warn("%s: %s: %s: %s", what, e->type, e->name,
                 e->message ? e->message : "");
    else
        cli_warn("%s: %s: %s", what, e->type ? e->type : "Error",
                 e->message ? e->message : "");
    if (e->stack != NULL && e->stack[0] != '\0')
        fprintf(stderr, "%s\n", e->stack);
    if (e->logfile != NULL)
        fprintf(stderr, "log: %s\n", e->logfile);
    return js && js_failure(e->type) ? CLI_JS : CLI_JSHOST;
}

char *
cli_read_stdin(size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap), *nb;
    ssize_t got;

    while (buf != NULL) {
        if (n + 1 >= cap) {
            nb = realloc(buf, cap * 2);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
        got = read(0, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            break;
        if (got == 0) {
            buf[n] = '\0';
            *len = n;
            return buf;
        }
        n += (size_t)got;
    }
    free(buf);
    return NULL;
}

int
cli_print_value(const jshost_value *v, int pretty)
{
    char *s =
        jshost_json_dump(v->data, v->len, pretty ? JSHOST_JSON_PRETTY : 0);

    if (s == NULL) {
        cli_warn("cannot render the result as JSON");
        return CLI_JSHOST;
    }
    printf("%s\n", s);
    free(s);
    return fflush(stdout) == 0 ? CLI_OK : CLI_JSHOST;
}

int
cli_parse_seconds(const char *s, int *ms)
{
    char *end;
    double d;

    if (s == NULL)
        return -1;
    errno = 0;
    d = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(d > 0) || d > 2000000)
        return -1;
    *ms = (int)(d * 1000 + 0.5);
    if (*ms == 0)
        *ms = 1;
    return 0;
}

const msgpack_object *
cli_get(const msgpack_object *map, const char *key)
{
    uint32_t i;
    size_t n = strlen(key);

    if (map == NULL || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;

        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, key, n) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

const msgpack_object *
cli_get_any(const msgpack_object *map, ...)
{
    const msgpack_object *o = NULL;
    const char *key;
    va_list ap;

    va_start(ap, map);
    while (o == NULL && (key = va_arg(ap, const char *)) != NULL)
        o = cli_get(map, key);
    va_end(ap);
    return o;
}

int
main(int argc, char **argv)
{
    size_t i;

    if (argc < 2)
        return cli_usage(NULL, "no command given");
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        fputs(help_text, stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("jshost %s\n", jshost_version());
        return CLI_OK;
    }
    for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (cmds[i].exec != NULL && strcmp(argv[1], cmds[i].name) == 0)
            return cmds[i].exec(argc - 1, argv + 1);
    }
    return cli_usage(NULL, "unknown command '%s'", argv[1]);
}
