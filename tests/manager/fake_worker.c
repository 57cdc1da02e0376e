/*
 * A scripted stand-in for jshost-worker: it speaks the worker protocol
 * (docs/protocol.md) on --fd N and misbehaves on demand, so that the
 * manager's tests can force faults a real worker seldom shows. Its CONFIG is a
 * text file of key=value lines:
 *
 *   workers=N linger=MS timeout=MS    the config figures sent in `ready`
 *   config_error=1        send config_error (file:3:7) and exit 78
 *   exit78=1              exit 78 before ready, without a word
 *   crash_before_ready=1  die by SIGKILL before ready
 *   crash_after_ready_ms=MS  die by SIGKILL MS after ready
 *   crash_on_call=N       die by SIGKILL on the Nth call
 *   no_pong=1             never answer ping
 *   slow_ms=MS            every call takes MS (blocking, one at a time)
 *   ready_delay_ms=MS     wait before ready
 *   ignore_term=1         ignore SIGTERM (the manager must SIGKILL it)
 *   garbage_on_call=N     answer the Nth call with bytes that are not
 * msgpack-RPC
 *   recycle_after_ready_ms=MS  exit 75 (a heap-limit recycle) MS after ready
 *
 * Functions: echo (data back), pid, sleep (data ms), fail (a JSError),
 * exit75 (a MemoryError, then exit 75), crash (SIGKILL itself), print (data
 * lines of 100 bytes on stdout, as console.log would write them).
 * With no CONFIG it is a private VM: contexts only.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "methods.h"
#include "proto.h"

static int fd = 3;
static const char *config;
static long workers = 1, linger = 5000, timeout = 10000;
static long config_error, exit78, crash_before_ready, crash_after_ready_ms;
static long crash_on_call, no_pong, slow_ms, ready_delay_ms, ignore_term;
static long garbage_on_call, recycle_after_ready_ms;
static long ncalls, nerrors, next_ctx = 1;
static struct timespec ready_at;

static void
msleep(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void
die(void)
{
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

static void
send_sb(msgpack_sbuffer *sb)
{
    size_t off = 0;
    ssize_t n;

    while (off < sb->size) {
        n = write(fd, sb->data + off, sb->size - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            exit(0);
        off += (size_t)n;
    }
    msgpack_sbuffer_clear(sb);
}

static void
read_config(void)
{
    FILE *f = fopen(config, "r");
    char line[256], key[64];
    long v;

    if (f == NULL) {
        fprintf(stderr, "fake worker: cannot open %s\n", config);
        exit(78);
    }
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "%63[a-z_0-9]=%ld", key, &v) != 2)
            continue;
#define KEY(name)                                                              \
    if (strcmp(key, #name) == 0)                                               \
    name = v
        KEY(workers);
        KEY(linger);
        KEY(timeout);
        KEY(config_error);
        KEY(exit78);
        KEY(crash_before_ready);
        KEY(crash_after_ready_ms);
        KEY(crash_on_call);
        KEY(no_pong);
        KEY(slow_ms);
        KEY(ready_delay_ms);
        KEY(ignore_term);
        KEY(garbage_on_call);
        KEY(recycle_after_ready_ms);
#undef KEY
    }
    fclose(f);
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
    proto_pack_cstr(pk, s);
}

static void
send_ready(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    static const char *fns[] = {"echo",   "pid",   "sleep", "fail",
                                "exit75", "crash", "print"};
    unsigned i, nf = config != NULL ? 7 : 0;

    proto_write_notification(pk, PROTO_N_READY, 1);
    msgpack_pack_map(pk, 4);
    pack_str(pk, PROTO_K_PID);
    msgpack_pack_int(pk, (int)getpid());
    pack_str(pk, PROTO_K_FUNCTIONS);
    msgpack_pack_array(pk, nf);
    for (i = 0; i < nf; i++)
        pack_str(pk, fns[i]);
    pack_str(pk, PROTO_K_EXTRAS);
    msgpack_pack_map(pk, 1);
    pack_str(pk, "fake");
    msgpack_pack_true(pk);
    pack_str(pk, PROTO_K_CONFIG);
    msgpack_pack_map(pk, 4);
    pack_str(pk, PROTO_K_WORKERS);
    msgpack_pack_long(pk, workers);
    pack_str(pk, PROTO_K_TIMEOUT);
    msgpack_pack_long(pk, timeout);
    pack_str(pk, PROTO_K_MEMORY);
    msgpack_pack_long(pk, 512);
    pack_str(pk, PROTO_K_LINGER);
    msgpack_pack_long(pk, linger);
    send_sb(sb);
}

static void
send_config_error(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    proto_write_notification(pk, PROTO_N_CONFIG_ERROR, 1);
    msgpack_pack_map(pk, 8);
    pack_str(pk, PROTO_K_TYPE);
    pack_str(pk, proto_errtype_name(PROTO_ERR_CONFIG));
    pack_str(pk, PROTO_K_MESSAGE);
    pack_str(pk, "SyntaxError: Unexpected token '}'");
    pack_str(pk, PROTO_K_NAME);
    msgpack_pack_nil(pk);
    pack_str(pk, PROTO_K_STACK);
    msgpack_pack_nil(pk);
    pack_str(pk, PROTO_K_LOGFILE);
    msgpack_pack_nil(pk);
    pack_str(pk, PROTO_K_FILE);
    pack_str(pk, config);
    pack_str(pk, PROTO_K_LINE);
    msgpack_pack_int(pk, 3);
    pack_str(pk, PROTO_K_COLUMN);
    msgpack_pack_int(pk, 7);
    send_sb(sb);
}

static void
reply_error(msgpack_packer *pk, uint32_t msgid, enum proto_errtype type,
            const char *msg)
{
    struct proto_error e;

    memset(&e, 0, sizeof e);
    e.type = type;
    e.message = msg;
    e.name = type == PROTO_ERR_JS ? "Error" : NULL;
    proto_write_error(pk, msgid, &e);
    nerrors++;
}

static void
serve_call(msgpack_sbuffer *sb, msgpack_packer *pk, struct proto_msg *m)
{
    const msgpack_object *p = m->params.via.array.ptr;
    uint32_t n = m->params.via.array.size;
    char fn[32] = "";

    ncalls++;
    if (crash_on_call != 0 && ncalls == crash_on_call)
        die();
    if (garbage_on_call != 0 && ncalls == garbage_on_call) {
        msgpack_sbuffer_write(sb, "\xc1\xc1\xc1\xc1", 4);
        return;
    }
    if (slow_ms > 0)
        msleep(slow_ms);
    if (n >= 2 && p[1].type == MSGPACK_OBJECT_STR &&
        p[1].via.str.size < sizeof fn)
        memcpy(fn, p[1].via.str.ptr, p[1].via.str.size);
    if (strcmp(fn, "echo") == 0) {
        proto_write_result(pk, m->msgid);
        if (n >= 3)
            msgpack_pack_object(pk, p[2]);
        else
            msgpack_pack_nil(pk);
    } else if (strcmp(fn, "pid") == 0) {
        proto_write_result(pk, m->msgid);
        msgpack_pack_int(pk, (int)getpid());
    } else if (strcmp(fn, "sleep") == 0) {
        if (n >= 3 && p[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            msleep((long)p[2].via.u64);
        proto_write_result(pk, m->msgid);
        msgpack_pack_int(pk, (int)getpid());
    } else if (strcmp(fn, "fail") == 0) {
        reply_error(pk, m->msgid, PROTO_ERR_JS, "boom");
    } else if (strcmp(fn, "exit75") == 0) {
        reply_error(pk, m->msgid, PROTO_ERR_MEMORY, "heap limit reached");
        send_sb(sb);
        exit(75);
    } else if (strcmp(fn, "crash") == 0) {
        die();
    } else if (strcmp(fn, "print") == 0) {
        long k, lines = n >= 3 && p[2].type == MSGPACK_OBJECT_POSITIVE_INTEGER
                            ? (long)p[2].via.u64
                            : 0;

        for (k = 0; k < lines; k++)
            printf(
                "fake worker %d: line %08ld %*s\n", (int)getpid(), k, 60,
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        fflush(stdout);
        proto_write_result(pk, m->msgid);
        msgpack_pack_long(pk, lines);
    } else {
        reply_error(pk, m->msgid, PROTO_ERR_NOT_FOUND, "no such function");
    }
}

static void
serve(msgpack_sbuffer *sb, msgpack_packer *pk, struct proto_msg *m)
{
    const msgpack_object *p = m->params.via.array.ptr;
    uint32_t n = m->params.via.array.size;

    if (m->kind == PROTO_NOTIFICATION && proto_msg_is(m, PROTO_N_DRAIN)) {
        /* No direct clients here: drained at once. */
        proto_write_notification(pk, PROTO_N_DRAINED, 0);
        send_sb(sb);
        return;
    }
    if (m->kind != PROTO_REQUEST)
        return;
    if (proto_msg_is(m, PROTO_M_CALL)) {
        serve_call(sb, pk, m);
    } else if (proto_msg_is(m, PROTO_M_PING)) {
        if (no_pong)
            return;
        proto_write_result(pk, m->msgid);
        pack_str(pk, PROTO_PONG);
    } else if (proto_msg_is(m, PROTO_M_STATS)) {
        proto_write_result(pk, m->msgid);
        msgpack_pack_map(pk, 6);
        pack_str(pk, PROTO_K_PID);
        msgpack_pack_int(pk, (int)getpid());
        pack_str(pk, PROTO_K_HEAP_USED);
        msgpack_pack_int(pk, 1000000);
        pack_str(pk, PROTO_K_HEAP_LIMIT);
        msgpack_pack_int(pk, 512 * 1024 * 1024);
        pack_str(pk, PROTO_K_CALLS);
        msgpack_pack_long(pk, ncalls);
        pack_str(pk, PROTO_K_ERRORS);
        msgpack_pack_long(pk, nerrors);
        pack_str(pk, PROTO_K_RSS);
        msgpack_pack_int(pk, 20000000);
    } else if (proto_msg_is(m, PROTO_M_CONTEXT_CREATE)) {
        proto_write_result(pk, m->msgid);
        msgpack_pack_long(pk, next_ctx++);
    } else if (proto_msg_is(m, PROTO_M_CONTEXT_EVAL)) {
        /* Answers [worker pid, its context id, the source]. */
        proto_write_result(pk, m->msgid);
        msgpack_pack_array(pk, 3);
        msgpack_pack_int(pk, (int)getpid());
        msgpack_pack_object(pk, n > 0 ? p[0] : (msgpack_object){0});
        msgpack_pack_object(pk, n > 1 ? p[1] : (msgpack_object){0});
    } else if (proto_msg_is(m, PROTO_M_CONTEXT_DESTROY) ||
               proto_msg_is(m, PROTO_M_CONTEXT_LOAD) ||
               proto_msg_is(m, PROTO_M_CONTEXT_CALL)) {
        proto_write_result(pk, m->msgid);
        msgpack_pack_nil(pk);
    } else {
        reply_error(pk, m->msgid, PROTO_ERR_NOT_FOUND, "unknown method");
    }
    send_sb(sb);
}

static long
ms_since(const struct timespec *t)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t->tv_sec) * 1000 +
           (now.tv_nsec - t->tv_nsec) / 1000000;
}

int
main(int argc, char **argv)
{
    struct proto_reader *r;
    struct proto_msg m;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char cause[PROTO_CAUSE_MAX];
    int i, rc;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc)
            fd = atoi(argv[++i]);
        else if (argv[i][0] == '-' && argv[i][1] == '-' && i + 1 < argc)
            i++;
        else
            config = argv[i];
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    if (config != NULL)
        read_config();
    printf("fake worker %d: starting (%s)\n", (int)getpid(),
           config ? config : "private VM");
    if (ignore_term)
        signal(SIGTERM, SIG_IGN);
    if (ready_delay_ms > 0)
        msleep(ready_delay_ms);
    if (crash_before_ready)
        die();
    if (exit78)
        return 78;
    if (config_error) {
        send_config_error(&sb, &pk);
        return 78;
    }
    send_ready(&sb, &pk);
    clock_gettime(CLOCK_MONOTONIC, &ready_at);
    r = proto_reader_new(0);
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        char *buf;
        size_t len;
        ssize_t n;
        int wait = -1;

        if (crash_after_ready_ms > 0) {
            wait = (int)(crash_after_ready_ms - ms_since(&ready_at));
            if (wait <= 0)
                die();
        }
        if (recycle_after_ready_ms > 0) {
            wait = (int)(recycle_after_ready_ms - ms_since(&ready_at));
            if (wait <= 0) {
                /* Freed first: a leak report would change the status. */
                proto_reader_free(r);
                msgpack_sbuffer_destroy(&sb);
                return 75;
            }
        }
        rc = poll(&pfd, 1, wait);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc == 0)
            continue;
        if (proto_reader_buffer(r, 65536, &buf, &len) != 0)
            return 1;
        n = read(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0; /* the manager is gone */
        proto_reader_fill(r, (size_t)n);
        while ((rc = proto_reader_next(r, &m, cause)) == 1) {
            serve(&sb, &pk, &m);
            proto_msg_release(&m);
        }
        if (rc < 0) {
            fprintf(stderr, "fake worker: %s\n", cause);
            return 1;
        }
    }
}
