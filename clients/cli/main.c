/* The jshost command (docs/cli.md): dispatch, help, version and the helpers
 * the commands share. */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "locate.h"
#include "cli-help.h"

/* The commands; their usage lines and help come from docs/cli.md
 * (cli-help.h, generated at build time). */
static const struct cli_cmd cmds[] = {
    {"call", cmd_call},       {"eval", cmd_eval},
    {"start", cmd_start},     {"stop", cmd_stop},
    {"restart", cmd_restart}, {"status", cmd_status},
    {"logs", cmd_logs},       {"shutdown", cmd_shutdown},
    {"host", cmd_host},       {"manager", cmd_manager},
    {"version", cmd_version}, {"help", cmd_help},
};

static const struct cli_doc *
find_doc(const char *cmd)
{
    size_t i;

    for (i = 0; cmd != NULL && i < sizeof(cli_docs) / sizeof(cli_docs[0]);
         i++) {
        if (strcmp(cli_docs[i].name, cmd) == 0)
            return &cli_docs[i];
    }
    return NULL;
}

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
    const struct cli_doc *doc = find_doc(cmd);
    va_list ap;

    fputs("jshost: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    if (doc != NULL)
        fprintf(stderr, "usage: jshost %s\n(more: jshost %s --help)\n",
                doc->usage, doc->name);
    else
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

jshost *
cli_connect_running(int *none)
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

/* A JS stack without its first line when that line is "name: message",
 * which the line above it has said already. */
static const char *
stack_frames(const jshost_error *e)
{
    size_t n = e->name != NULL ? strlen(e->name) : 0;
    const char *s = e->stack;

    if (n == 0 || e->message == NULL || strncmp(s, e->name, n) != 0 ||
        strncmp(s + n, ": ", 2) != 0)
        return s;
    s += n + 2;
    if (strncmp(s, e->message, strlen(e->message)) != 0 ||
        s[strlen(e->message)] != '\n')
        return e->stack;
    return s + strlen(e->message) + 1;
}

static volatile sig_atomic_t interrupted;

static void
on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int
interrupt_check(void *user)
{
    (void)user;
    return interrupted;
}

void
cli_interruptible(jshost *c)
{
    struct sigaction sa;

    /* No SA_RESTART: the signal ends libjshost's wait, which then asks. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    jshost_set_interrupt_check(c, interrupt_check, NULL);
}

int
cli_fail(jshost *c, const char *what, int js)
{
    const jshost_error *e = &c->remote;

    if (c->err == JSHOST_ERR_CANCELLED && e->type == NULL) {
        cli_warn("%s: interrupted: the call was cancelled", what);
        return CLI_INTERRUPTED;
    }
    if (c->err != JSHOST_ERR_REMOTE && c->err != JSHOST_ERR_CANCELLED) {
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
        fprintf(stderr, "%s\n", stack_frames(e));
    /* the message often names the log already ("... (see LOG)") */
    if (e->logfile != NULL && e->logfile[0] != '\0' &&
        (e->message == NULL || strstr(e->message, e->logfile) == NULL))
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

int
cli_attach(jshost *c, const char *config, char **host, jshost_value *info)
{
    jshost_value own = {0};
    jshost_value *v = info != NULL ? info : &own;
    msgpack_unpacked u;
    const msgpack_object *w;
    uint32_t i;

    if (jshost_attach(c, config, host, v) < 0)
        return -1;
    msgpack_unpacked_init(&u);
    if (v->data != NULL && msgpack_unpack_next(&u, v->data, v->len, NULL) ==
                               MSGPACK_UNPACK_SUCCESS) {
        w = cli_get(&u.data, "warnings");
        for (i = 0; w != NULL && w->type == MSGPACK_OBJECT_ARRAY &&
                    i < w->via.array.size;
             i++) {
            if (w->via.array.ptr[i].type == MSGPACK_OBJECT_STR)
                cli_warn("warning: %.*s", (int)w->via.array.ptr[i].via.str.size,
                         w->via.array.ptr[i].via.str.ptr);
        }
    }
    msgpack_unpacked_destroy(&u);
    jshost_value_free(&own);
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

/* Prints cmd's help on stdout. */
static int
print_help(const char *cmd)
{
    const struct cli_doc *doc = find_doc(cmd);

    if (doc == NULL)
        return cli_usage(NULL, "no command '%s'", cmd);
    fputs(doc->help, stdout);
    return fflush(stdout) == 0 ? CLI_OK : CLI_JSHOST;
}

int
cmd_help(int argc, char **argv)
{
    if (argc > 2)
        return cli_usage("help", "too many arguments");
    if (argc == 2)
        return print_help(argv[1]);
    fputs(cli_help_text, stdout);
    return fflush(stdout) == 0 ? CLI_OK : CLI_JSHOST;
}

int
cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1)
        return cli_usage("version", "too many arguments");
    printf("jshost %s\n", jshost_version());
    return fflush(stdout) == 0 ? CLI_OK : CLI_JSHOST;
}

/* Whether argv asks for help (--help or -h, before any "--"). */
static int
wants_help(int argc, char **argv)
{
    int i;

    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return 1;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    size_t i;

    if (argc < 2)
        return cli_usage(NULL, "no command given");
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
        return cmd_help(1, argv + 1);
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(1, argv + 1);
    for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[1], cmds[i].name) != 0)
            continue;
        if (wants_help(argc - 1, argv + 1))
            return print_help(cmds[i].name);
        return cmds[i].exec(argc - 1, argv + 1);
    }
    return cli_usage(NULL, "unknown command '%s'", argv[1]);
}
