/*
 * libjshost from C: a blocking call, a JS error, then many calls pipelined on
 * one connection with poll(), as an event loop would. Build:
 *
 *   cc hello.c $(pkg-config --cflags --libs jshost) -o hello
 *   ./hello ../hello/host.config.js
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jshost.h>

/* Calls fn with JSON data and prints the JSON result or the error. */
static int
call(jshost *c, const char *host, const char *fn, const char *json)
{
    jshost_value data, result;
    char where[128], *out;
    int r;

    if (jshost_json_pack(json, strlen(json), &data, where, sizeof(where)) < 0) {
        fprintf(stderr, "bad JSON: %s\n", where);
        return -1;
    }
    r = jshost_call(c, host, fn, data.data, data.len, 5000, &result);
    jshost_value_free(&data);
    if (r < 0) {
        if (c->err == JSHOST_ERR_REMOTE)
            printf("%s(%s) -> %s: %s\n%s\n", fn, json, c->remote.type,
                   c->remote.message, c->remote.stack ? c->remote.stack : "");
        else
            printf("%s(%s) -> %s\n", fn, json, c->errstr);
        return -1;
    }
    out = jshost_json_dump(result.data, result.len, 0);
    printf("%s(%s) -> %s\n", fn, json, out);
    free(out);
    jshost_value_free(&result);
    return 0;
}

/* 1000 calls of double, at most 100 in flight, replies taken as they come. */
static int
pipelined(jshost *c, const char *host)
{
    int sent = 0, got = 0, n = 1000, r;
    long long sum = 0;
    char json[128];
    jshost_value params;
    jshost_reply reply;

    while (got < n) {
        while (sent < n && jshost_in_flight(c) < 100) {
            /* params of "call": [host, function, data, options] */
            snprintf(json, sizeof(json),
                     "[\"%s\", \"double\", {\"number\": %d}, {}]", host, sent);
            if (jshost_json_pack(json, strlen(json), &params, NULL, 0) < 0 ||
                jshost_send(c, "call", params.data, params.len, NULL) < 0)
                return -1;
            jshost_value_free(&params);
            sent++;
        }
        /* what an event loop does: wait until the fd is ready */
        struct pollfd pfd = {jshost_fd(c), POLLIN, 0};

        if (jshost_pending_write(c) > 0)
            pfd.events |= POLLOUT;
        poll(&pfd, 1, 5000);
        if (pfd.revents & POLLOUT)
            jshost_flush(c);
        while ((r = jshost_read(c, &reply, 0)) == 1) {
            char *out = jshost_json_dump(reply.value.data, reply.value.len, 0);

            if (reply.ok && out != NULL)
                sum += atoll(out);
            free(out);
            jshost_reply_free(&reply);
            got++;
        }
        if (r < 0) {
            fprintf(stderr, "%s\n", c->errstr);
            return -1;
        }
    }
    printf("pipelined: %d calls, sum of results %lld\n", n, sum);
    return 0;
}

int
main(int argc, char **argv)
{
    const char *config = argc > 1 ? argv[1] : "examples/hello/host.config.js";
    char *host = NULL;
    jshost *c;
    int r = 1;

    c = jshost_connect(NULL); /* starts the manager if none runs */
    if (c == NULL || c->err != 0) {
        fprintf(stderr, "connect: %s\n", c ? c->errstr : "out of memory");
        jshost_free(c);
        return 1;
    }
    if (jshost_attach(c, config, &host, NULL) < 0) {
        fprintf(stderr, "attach %s: %s\n", config, c->errstr);
        goto out;
    }
    if (call(c, host, "hello_world", "{\"name\": \"C\"}") < 0 ||
        call(c, host, "double", "{\"number\": 21}") < 0)
        goto out;
    call(c, host, "fail", "{\"message\": \"on purpose\"}"); /* a JSError */
    if (pipelined(c, host) < 0)
        goto out;
    r = 0;
out:
    free(host);
    jshost_free(c); /* the host lingers a little, then stops */
    return r;
}
