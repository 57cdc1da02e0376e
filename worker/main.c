/*
 * jshost-worker: one V8 isolate with a config loaded, serving msgpack-RPC on
 * the manager's socketpair (--fd) or on a socket of its own (--listen).
 * docs/protocol.md is the contract; exit statuses tell the manager what to
 * do.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "engine.h"
#include "jshost_defs.h"
#include "log.h"
#include "rpcstream.h"
#include "serve.h"
#include "spin_loop.h"

struct worker {
    uv_loop_t loop;
    uv_poll_t stop_poll; /* the read end of stop_pipe */
    uv_timer_t exit_timer;
    js_engine *engine;
    struct serve *serve;
    struct spin_loop *spin;
    int status;
    bool exiting;
};

struct args {
    int fd;                  /* -1 unless --fd */
    int env_fd;              /* -1 unless --env-fd */
    const char *listen_path; /* NULL unless --listen */
    uint32_t memory_mb;
    uint32_t timeout_ms;
    const char *cwd;
    const char *config;
    /* The direct socket's limits (docs/security.md). */
    unsigned long max_clients;
    unsigned long long max_partial_total;
    unsigned long partial_idle_ms;
};

/*
 * SIGTERM and SIGINT: the number in stop_signal (the engine's poll reads it
 * while JavaScript runs long, and terminates it), a byte in stop_pipe for
 * the loop.
 */
static volatile sig_atomic_t stop_signal;
static int stop_pipe[2] = {-1, -1};

static void
usage(FILE *f)
{
    fprintf(
        f,
        "usage: jshost-worker [--fd N] [--listen PATH] [--env-fd N] "
        "[--memory MB] [--timeout MS] [--cwd DIR]\n"
        "                     [--max-clients N] [--max-partial-total BYTES] "
        "[--partial-idle-ms MS] [CONFIG]\n"
        "       jshost-worker --version | --help\n"
        "\n"
        "  --fd N         serve the one connection on inherited fd N (the "
        "manager's)\n"
        "  --listen PATH  listen on a Unix socket at PATH (0600); with --fd, "
        "for the\n"
        "                 direct calls of the manager's clients\n"
        "  --env-fd N     the environment process.env takes its variables "
        "from,\n"
        "                 \"NAME=value\" strings each ending in a NUL, read "
        "from\n"
        "                 inherited fd N (default: this process's "
        "environment)\n"
        "  --memory MB    V8 heap limit (default: the config's memory, else "
        "%d)\n"
        "  --timeout MS   default call deadline (default: the config's "
        "timeout, else %d)\n"
        "  --cwd DIR      where contexts' require() starts (default: the "
        "working dir)\n"
        "  --max-clients N             --listen: connections open at once "
        "(%d)\n"
        "  --max-partial-total BYTES   --listen: bytes of unfinished messages "
        "across\n"
        "                              connections (%llu; 0: no limit)\n"
        "  --partial-idle-ms MS        --listen: an unfinished message with no "
        "byte\n"
        "                              for this long is refused (%d; 0: "
        "never)\n"
        "  CONFIG         the config file (.js or .mjs); none = a private VM\n",
        JSHOST_DEFAULT_MEMORY_MB, JSHOST_DEFAULT_TIMEOUT_MS,
        JSHOST_DEFAULT_MAX_CLIENTS, JSHOST_DEFAULT_MAX_PARTIAL_TOTAL,
        JSHOST_DEFAULT_PARTIAL_IDLE_MS);
}

static void
usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "jshost-worker: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    exit(2);
}

/* A decimal number in [min, max], else a usage error naming the option. */
static unsigned long
parse_number(const char *opt, const char *s, unsigned long min,
             unsigned long max)
{
    unsigned long v;
    char *end;

    errno = 0;
    if (s[0] < '0' || s[0] > '9')
        usage_error("%s: expected a number", opt);
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        usage_error("%s: expected a number in range", opt);
    return v;
}

static void
parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {
        {"fd", required_argument, NULL, 'f'},
        {"env-fd", required_argument, NULL, 'e'},
        {"listen", required_argument, NULL, 'l'},
        {"memory", required_argument, NULL, 'm'},
        {"timeout", required_argument, NULL, 't'},
        {"cwd", required_argument, NULL, 'c'},
        {"max-clients", required_argument, NULL, 'C'},
        {"max-partial-total", required_argument, NULL, 'P'},
        {"partial-idle-ms", required_argument, NULL, 'I'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int ch;

    memset(a, 0, sizeof(*a));
    a->fd = -1;
    a->env_fd = -1;
    a->max_clients = JSHOST_DEFAULT_MAX_CLIENTS;
    a->max_partial_total = JSHOST_DEFAULT_MAX_PARTIAL_TOTAL;
    a->partial_idle_ms = JSHOST_DEFAULT_PARTIAL_IDLE_MS;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
        switch (ch) {
        case 'f':
            a->fd = (int)parse_number("--fd", optarg, 0, INT_MAX);
            break;
        case 'l':
            a->listen_path = optarg;
            break;
        case 'e':
            a->env_fd = (int)parse_number("--env-fd", optarg, 0, INT_MAX);
            break;
        case 'm':
            a->memory_mb =
                (uint32_t)parse_number("--memory", optarg, 1, 1024 * 1024);
            break;
        case 't':
            a->timeout_ms =
                (uint32_t)parse_number("--timeout", optarg, 1, UINT32_MAX);
            break;
        case 'c':
            a->cwd = optarg;
            break;
        case 'C':
            a->max_clients =
                parse_number("--max-clients", optarg, 1, UINT32_MAX);
            break;
        case 'P':
            a->max_partial_total =
                parse_number("--max-partial-total", optarg, 0, SIZE_MAX);
            break;
        case 'I':
            a->partial_idle_ms =
                parse_number("--partial-idle-ms", optarg, 0, UINT32_MAX);
            break;
        case 'V':
            printf("jshost-worker %s\n", JSHOST_VERSION);
            exit(0);
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage_error("unknown or incomplete option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        a->config = argv[optind++];
    if (optind < argc)
        usage_error("unexpected argument %s", argv[optind]);
    if (a->fd < 0 && a->listen_path == NULL)
        usage_error("%s", "--fd N or --listen PATH (or both) is needed");
    if (a->config != NULL && a->config[0] == '\0')
        usage_error("%s", "the config path is empty");
}

static void
close_cb(uv_handle_t *h)
{
    (void)h;
}

/* Tears everything down on a fresh loop iteration (never inside an engine
 * callback), so that uv_run returns once the last handle closed. */
static void
exit_timer_cb(uv_timer_t *t)
{
    struct worker *w = t->data;

    serve_close(w->serve);
    js_engine_free(w->engine);
    w->engine = NULL;
    uv_close((uv_handle_t *)&w->stop_poll, close_cb);
    uv_close((uv_handle_t *)&w->exit_timer, close_cb);
    spin_loop_close(w->spin);
    w->spin = NULL;
}

static void
request_exit(struct worker *w, int status)
{
    if (w->exiting)
        return;
    w->exiting = true;
    w->status = status;
    uv_timer_start(&w->exit_timer, exit_timer_cb, 0, 0);
}

static void
serve_exit(void *arg, int status)
{
    request_exit(arg, status);
}

static void
on_stop_signal(int signum)
{
    int saved = errno;

    stop_signal = signum;
    if (write(stop_pipe[1], "", 1) < 0) {
        /* full: a byte is there already */
    }
    errno = saved;
}

static void
stop_poll_cb(uv_poll_t *h, int status, int events)
{
    char buf[16];

    (void)status;
    (void)events;
    while (read(stop_pipe[0], buf, sizeof buf) > 0)
        ;
    log_info("signal %d: exiting", (int)stop_signal);
    uv_poll_stop(h);
    request_exit(h->data, 0);
}

/* The handlers of SIGTERM and SIGINT, and the pipe that tells the loop. */
static int
stop_signals_setup(void)
{
    struct sigaction sa;

    if (pipe2(stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return -errno;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
        return -errno;
    return 0;
}

/*
 * The environment on fd (the client's, from the manager): NAME=value strings
 * each ending in a NUL, as a NULL-terminated array in one allocation. NULL
 * when it cannot be read (said in the log): process.env then has NODE_ENV's
 * default alone, never this process's environment.
 */
static char **
read_env(int fd)
{
    static char *empty[] = {NULL};
    char *buf = NULL, **list;
    size_t len = 0, cap = 0, n = 0, i, at;
    ssize_t r;

    for (;;) {
        if (len + 65536 > cap) {
            cap = (len + 65536) * 2;
            buf = realloc(buf, cap);
            if (buf == NULL) {
                log_error("--env-fd: out of memory");
                close(fd);
                return empty;
            }
        }
        r = read(fd, buf + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            log_error("--env-fd %d: %s", fd, strerror(errno));
            close(fd);
            free(buf);
            return empty;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    for (i = 0; i < len; i++)
        if (buf[i] == '\0')
            n++;
    if (n == 0) {
        free(buf);
        return empty;
    }
    list = malloc((n + 2) * sizeof *list + len + 1);
    if (list == NULL) {
        free(buf);
        return empty;
    }
    memcpy(list + n + 2, buf, len + 1);
    free(buf);
    buf = (char *)(list + n + 2);
    for (i = 0, at = 0, n = 0; i < len; i++)
        if (buf[i] == '\0') {
            list[n++] = buf + at;
            at = i + 1;
        }
    list[n] = NULL;
    return list;
}

/* Says why the config failed, in the form the mode needs, and exits 78. */
static void
config_failed(const struct args *a, const struct js_error *err)
{
    const char *file = err->file ? err->file : a->config;
    const char *message = serve_config_message(err);
    char where[PATH_MAX + 64];

    /* file:line:column first, unless the engine's words already say where. */
    if (file == NULL || strstr(message, file) != NULL)
        where[0] = '\0';
    else if (err->line > 0)
        snprintf(where, sizeof(where), "%s:%d:%d: ", file, err->line,
                 err->column);
    else
        snprintf(where, sizeof(where), "%s: ", file);
    if (a->fd >= 0) {
        int r = serve_write_config_error(a->fd, err);

        if (r < 0)
            log_error("cannot send config_error: %s", strerror(-r));
    } else {
        fprintf(stderr, "%s%s\n", where, message);
        /* The stack helps when it runs through the config (a throw at load),
         * not when it only shows the loader (a syntax error). */
        if (err->stack != NULL && file != NULL &&
            strstr(err->stack, file) != NULL)
            fprintf(stderr, "%s\n", err->stack);
    }
    log_error("config error: %s%s", where, message);
    log_info("exit: status %d", JSHOST_EXIT_CONFIG);
    exit(JSHOST_EXIT_CONFIG);
}

int
main(int argc, char **argv)
{
    struct js_engine_options eopts;
    struct serve_options sopts;
    struct worker w;
    struct js_error err;
    struct args a;
    char *real = NULL, *cause = NULL, **env;
    int r;

    parse_args(argc, argv, &a);
    /* A peer that vanishes must cost a write error, not the process. */
    signal(SIGPIPE, SIG_IGN);
    log_open(NULL, "jshost-worker");
    log_info("start: pid %d, version %s, fd %d, listen %s, config %s",
             (int)getpid(), JSHOST_VERSION, a.fd,
             a.listen_path ? a.listen_path : "-",
             a.config ? a.config : "(none: private VM)");

    memset(&w, 0, sizeof(w));
    r = uv_loop_init(&w.loop);
    if (r < 0) {
        log_error("uv_loop_init: %s", uv_strerror(r));
        return 1;
    }
    js_engine_global_init(argv[0]);

    memset(&eopts, 0, sizeof(eopts));
    eopts.config_path = a.config;
    eopts.memory_mb = a.memory_mb;
    eopts.timeout_ms = a.timeout_ms;
    eopts.cwd = a.cwd;
    env = a.env_fd >= 0 ? read_env(a.env_fd) : NULL;
    eopts.env = (const char *const *)env;
    memset(&err, 0, sizeof(err));
    r = js_engine_new(&w.loop, &eopts, &w.engine, &err);
    /* The engine keeps its own copy. */
    if (env != NULL && env[0] != NULL)
        free(env);
    if (r < 0) {
        if (r == -EINVAL || err.type == PROTO_ERR_CONFIG)
            config_failed(&a, &err);
        log_error("cannot start the engine: %s",
                  err.message ? err.message : strerror(-r));
        js_error_free(&err);
        uv_loop_close(&w.loop);
        return 1;
    }
    js_error_free(&err);
    if (a.config != NULL)
        real = realpath(a.config, NULL);

    memset(&sopts, 0, sizeof(sopts));
    sopts.engine = w.engine;
    sopts.config_realpath = real ? real : a.config;
    sopts.on_exit = serve_exit;
    sopts.arg = &w;
    sopts.stop_signal = &stop_signal;
    sopts.max_clients = (unsigned)a.max_clients;
    sopts.max_partial_total = (size_t)a.max_partial_total;
    sopts.partial_idle_ms = a.partial_idle_ms;
    if (serve_new(&w.loop, &sopts, &w.serve) < 0) {
        log_error("out of memory");
        return 1;
    }
    free(real);
    uv_timer_init(&w.loop, &w.exit_timer);
    w.spin = spin_loop_start(&w.loop, rpcstream_quiet);
    w.exit_timer.data = &w;
    r = stop_signals_setup();
    if (r < 0) {
        log_error("cannot set up the signal handlers: %s", strerror(-r));
        return 1;
    }
    uv_poll_init(&w.loop, &w.stop_poll, stop_pipe[0]);
    w.stop_poll.data = &w;
    uv_poll_start(&w.stop_poll, UV_READABLE, stop_poll_cb);

    /* Both: the manager's worker, with a socket of its own for the direct
     * calls of the host's clients; it listens before it says ready. */
    r = 0;
    if (a.listen_path != NULL)
        r = serve_listen(w.serve, a.listen_path, &cause);
    if (r == 0 && a.fd >= 0)
        r = serve_fd(w.serve, a.fd, &cause);
    if (r < 0) {
        log_error("cannot serve: %s", cause ? cause : strerror(-r));
        free(cause);
        /* The same teardown as any exit, so nothing is left behind. */
        request_exit(&w, 1);
    } else {
        const char *const *names;
        size_t n = js_engine_functions(w.engine, &names);

        if (a.fd >= 0)
            serve_notify_ready(w.serve);
        log_info("ready: %zu function%s", n, n == 1 ? "" : "s");
    }

    uv_run(&w.loop, UV_RUN_DEFAULT);
    r = uv_loop_close(&w.loop);
    if (r < 0)
        log_warn("uv_loop_close: %s", uv_strerror(r));
    close(stop_pipe[0]);
    close(stop_pipe[1]);
    serve_free(w.serve);
    log_info("exit: status %d", w.status);
    log_close();
    return w.status;
}
