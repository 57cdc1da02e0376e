/*
 * rpcstream over a socketpair: this process's loop owns one end, the test
 * plays the peer on the other with blocking reads and writes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rpcstream.h"
#include "tu_loop.h"

struct fx {
    uv_loop_t loop;
    struct rpcstream *s;
    int peer;
    unsigned nmsg;
    uint32_t msgids[16];
    int ends;
    int end_err;
    bool end_closing;
    int closed;
    bool echo;         /* answer each request with its msgid */
    uint32_t pause_on; /* pause (owner bit) on this msgid */
    unsigned taken;    /* messages that came as bytes (no tree) */
};

static void
on_msg(void *owner, struct proto_msg *msg)
{
    struct fx *f = owner;
    msgpack_packer pk;

    if (f->nmsg < 16)
        f->msgids[f->nmsg] = msg->msgid;
    f->nmsg++;
    if (msg->raw.bytes != NULL && msg->zone == NULL &&
        proto_msg_is(msg, "ping") && proto_msg_nparams(msg) == 0)
        f->taken++;
    if (f->pause_on != 0 && msg->msgid == f->pause_on)
        rpcstream_pause(f->s, RPCSTREAM_PAUSE_OWNER);
    if (f->echo && rpcstream_begin(f->s, &pk)) {
        proto_write_result(&pk, msg->msgid);
        msgpack_pack_uint32(&pk, msg->msgid);
        rpcstream_commit(f->s);
    }
    proto_msg_release(msg);
}

static void
on_end(void *owner, int err, const char *cause)
{
    struct fx *f = owner;

    (void)cause;
    f->ends++;
    f->end_err = err;
    f->end_closing = rpcstream_closing(f->s);
}

static void
on_closed(void *owner)
{
    struct fx *f = owner;

    f->closed++;
    f->s = NULL;
}

static const struct rpcstream_cbs cbs = {
    .on_msg = on_msg,
    .on_end = on_end,
    .on_closed = on_closed,
};

/* The same owner, taking its messages as bytes. */
static const struct rpcstream_cbs cbs_bytes = {
    .on_msg = on_msg,
    .on_end = on_end,
    .on_closed = on_closed,
    .take_bytes = true,
};

static int
setup_with(void **state, const struct rpcstream_cbs *c)
{
    struct fx *f = calloc(1, sizeof(*f));
    int sv[2];

    assert_int_equal(uv_loop_init(&f->loop), 0);
    rpcstream_setup(&f->loop);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(rpcstream_new(&f->loop, 0, c, f, &f->s), 0);
    assert_int_equal(rpcstream_open(f->s, sv[0]), 0);
    f->peer = sv[1];
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    return setup_with(state, &cbs);
}

static int
setup_bytes(void **state)
{
    return setup_with(state, &cbs_bytes);
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    if (f->s != NULL)
        rpcstream_close(f->s);
    rpcstream_teardown();
    TU_LOOP_DRAIN(&f->loop, TU_WAIT_MS);
    assert_int_equal(f->closed, 1);
    /* Every handle closed, the flusher's included. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    close(f->peer);
    free(f);
    return 0;
}

static void
peer_send_request(struct fx *f, uint32_t msgid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_write_request(&pk, msgid, "ping", 0);
    assert_int_equal(write(f->peer, sb.data, sb.size), (ssize_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
}

/* Reads what the stream wrote until n messages or EOF; returns the count. */
static unsigned
peer_read(struct fx *f, unsigned n, struct proto_msg *out, bool *eof)
{
    struct proto_reader *r = proto_reader_new(0);
    char cause[PROTO_CAUSE_MAX], buf[4096];
    unsigned got = 0;
    ssize_t k;

    *eof = false;
    while (got < n) {
        int rc = proto_reader_next(r, &out[got], cause);

        assert_true(rc >= 0);
        if (rc > 0) {
            got++;
            continue;
        }
        if (!tu_readable(f->peer, TU_WAIT_MS))
            fail_msg("the stream wrote %u of %u messages, then nothing", got,
                     n);
        k = read(f->peer, buf, sizeof(buf));
        if (k <= 0) {
            *eof = true;
            break;
        }
        assert_int_equal(proto_reader_feed(r, buf, (size_t)k), 0);
    }
    proto_reader_free(r);
    return got;
}

/* Three requests reach the owner in order (taken as bytes or not, as the
 * stream's callbacks say); the replies go out by the loop's flush. */
static void
three_requests_answered(struct fx *f, unsigned taken)
{
    struct proto_msg m[3];
    bool eof;

    f->echo = true;
    assert_int_equal(rpcstream_start(f->s), 0);
    for (uint32_t i = 1; i <= 3; i++)
        peer_send_request(f, i);
    TU_LOOP_UNTIL(&f->loop, f->nmsg >= 3, TU_WAIT_MS);
    assert_int_equal(f->taken, taken);
    assert_int_equal(f->msgids[0], 1);
    assert_int_equal(f->msgids[2], 3);
    /* The flush runs by the end of the iteration that gathered them. */
    TU_LOOP_UNTIL(&f->loop, rpcstream_backlog(f->s) == 0, TU_WAIT_MS);
    assert_int_equal(peer_read(f, 3, m, &eof), 3);
    for (unsigned i = 0; i < 3; i++) {
        assert_int_equal(m[i].kind, PROTO_RESPONSE);
        assert_int_equal(m[i].msgid, i + 1);
        proto_msg_release(&m[i]);
    }
}

static void
test_messages_and_replies(void **state)
{
    struct fx *f = *state;

    three_requests_answered(f, 0);
    assert_int_equal(f->ends, 0);
}

/* An owner that takes bytes gets every message so, in order, and answers
 * as any other; a stream that breaks is refused the same way. */
static void
test_take_bytes(void **state)
{
    struct fx *f = *state;
    struct proto_msg m[3];
    bool eof;

    three_requests_answered(f, 3);
    /* An array32 that claims 4 Gi items: refused before it is whole. */
    assert_int_equal(
        write(f->peer, "\x94\x00\x04\xa1m\xdd\xff\xff\xff\xff", 10), 10);
    TU_LOOP_UNTIL(&f->loop, f->closed > 0, TU_WAIT_MS);
    assert_int_equal(f->ends, 1);
    assert_true(f->end_closing);
    assert_int_equal(f->nmsg, 3);
    assert_int_equal(peer_read(f, 2, m, &eof), 1);
    assert_true(proto_msg_is(&m[0], "error"));
    proto_msg_release(&m[0]);
}

/* A broken stream gets a ProtocolError notification, then is closed. */
static void
test_garbage_is_refused(void **state)
{
    struct fx *f = *state;
    struct proto_msg m[2];
    bool eof;

    assert_int_equal(rpcstream_start(f->s), 0);
    assert_int_equal(write(f->peer, "\xc1\xc1\xc1", 3), 3);
    TU_LOOP_UNTIL(&f->loop, f->closed > 0, TU_WAIT_MS);
    assert_int_equal(f->ends, 1);
    assert_true(f->end_err < 0);
    assert_true(f->end_closing);
    assert_int_equal(peer_read(f, 2, m, &eof), 1);
    assert_true(eof);
    assert_int_equal(m[0].kind, PROTO_NOTIFICATION);
    assert_true(proto_msg_is(&m[0], "error"));
    proto_msg_release(&m[0]);
}

/* A pause holds the messages already read; EOF is seen after them. */
static void
test_pause_holds_messages(void **state)
{
    struct fx *f = *state;
    msgpack_sbuffer sb;
    msgpack_packer pk;

    f->pause_on = 7;
    assert_int_equal(rpcstream_start(f->s), 0);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_write_request(&pk, 7, "ping", 0);
    proto_write_request(&pk, 8, "ping", 0);
    assert_int_equal(write(f->peer, sb.data, sb.size), (ssize_t)sb.size);
    msgpack_sbuffer_destroy(&sb);
    shutdown(f->peer, SHUT_WR);
    TU_LOOP_UNTIL(&f->loop, f->nmsg >= 1, TU_WAIT_MS);
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    assert_int_equal(f->nmsg, 1);
    assert_int_equal(f->ends, 0);
    rpcstream_resume(f->s, RPCSTREAM_PAUSE_OWNER);
    assert_int_equal(f->nmsg, 2);
    assert_int_equal(f->msgids[1], 8);
    TU_LOOP_UNTIL(&f->loop, f->ends > 0, TU_WAIT_MS);
    assert_int_equal(f->end_err, 0);
    assert_false(f->end_closing);
}

/* rpcstream_quiet: false while part of a message is held or a write waits
 * for the peer to read, true again once each is done. */
static void
test_quiet_between_messages(void **state)
{
    struct fx *f = *state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *big, buf[65536];
    size_t half, sent = 0, want;

    assert_int_equal(rpcstream_start(f->s), 0);
    assert_true(rpcstream_quiet());
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_write_request(&pk, 7, "ping", 0);
    half = sb.size / 2;
    assert_int_equal(write(f->peer, sb.data, half), (ssize_t)half);
    TU_LOOP_UNTIL(&f->loop, !rpcstream_quiet(), TU_WAIT_MS);
    assert_int_equal(f->nmsg, 0);
    assert_int_equal(write(f->peer, sb.data + half, sb.size - half),
                     (ssize_t)(sb.size - half));
    TU_LOOP_UNTIL(&f->loop, f->nmsg == 1, TU_WAIT_MS);
    assert_true(rpcstream_quiet());
    msgpack_sbuffer_destroy(&sb);

    /* 8 MiB to a peer that reads nothing yet: the socket fills, the rest
     * waits in a queued write. */
    want = (size_t)8 << 20;
    big = calloc(1, want);
    assert_non_null(big);
    assert_true(rpcstream_begin(f->s, &pk));
    proto_write_result(&pk, 1);
    msgpack_pack_bin(&pk, want);
    msgpack_pack_bin_body(&pk, big, want);
    rpcstream_commit(f->s);
    free(big);
    TU_LOOP_UNTIL(&f->loop, !rpcstream_quiet(), TU_WAIT_MS);
    assert_true(rpcstream_backlog(f->s) > 0);
    while (rpcstream_backlog(f->s) > 0) {
        ssize_t k;

        assert_true(tu_readable(f->peer, TU_WAIT_MS));
        k = read(f->peer, buf, sizeof(buf));
        assert_true(k > 0);
        sent += (size_t)k;
        uv_run(&f->loop, UV_RUN_NOWAIT);
    }
    assert_true(sent > 0);
    assert_true(rpcstream_quiet());
}

/* Packs [1, msgid, nil, bin of n zero bytes] on pk (msgid < 128). */
static void
pack_bin_result(msgpack_packer *pk, uint32_t msgid, size_t n)
{
    static const char body[4096];

    assert_true(n <= sizeof body);
    proto_write_result(pk, msgid);
    msgpack_pack_bin(pk, n);
    msgpack_pack_bin_body(pk, body, n);
}

/*
 * A stream that sends hints announces each message of RPCSTREAM_HINT_MIN
 * bytes or more and no smaller one, packed in place or sent whole; one begun
 * and never committed goes out behind a hint that says 0. The bytes on the
 * wire are exactly those.
 */
static void
test_hints_announce_big_messages(void **state)
{
    /* bin lengths: 7 bytes of head make 1016 one byte short of the least
     * size announced. */
    static const size_t bins[] = {8, 1016, 1017, 3000, 9, 2000};
    enum { SENT_WHOLE = 3, UNCOMMITTED = 4 };
    struct fx *f = *state;
    struct rpcstream_msg om;
    msgpack_sbuffer want, one;
    msgpack_packer pk, opk;
    char hint[PROTO_HINT_BYTES], buf[65536], *got;
    size_t have = 0;

    rpcstream_send_hints(f->s);
    assert_int_equal(rpcstream_start(f->s), 0);
    msgpack_sbuffer_init(&want);
    msgpack_sbuffer_init(&one);
    msgpack_packer_init(&opk, &one, msgpack_sbuffer_write);
    for (uint32_t i = 0; i < sizeof bins / sizeof bins[0]; i++) {
        msgpack_sbuffer_clear(&one);
        pack_bin_result(&opk, i, bins[i]);
        if (i == 1)
            assert_int_equal(one.size, RPCSTREAM_HINT_MIN - 1);
        if (i == UNCOMMITTED || one.size >= RPCSTREAM_HINT_MIN) {
            proto_size_hint(hint, i == UNCOMMITTED ? 0 : (uint32_t)one.size);
            msgpack_sbuffer_write(&want, hint, sizeof hint);
        }
        msgpack_sbuffer_write(&want, one.data, one.size);
        if (i == SENT_WHOLE) {
            rpcstream_msg_init(&om);
            pack_bin_result(&om.pk, i, bins[i]);
            rpcstream_send(f->s, &om);
            continue;
        }
        assert_true(rpcstream_begin(f->s, &pk));
        pack_bin_result(&pk, i, bins[i]);
        if (i != UNCOMMITTED)
            rpcstream_commit(f->s);
    }
    TU_LOOP_UNTIL(&f->loop, rpcstream_backlog(f->s) == 0, TU_WAIT_MS);
    got = malloc(want.size + sizeof buf);
    assert_non_null(got);
    while (have < want.size) {
        ssize_t k;

        assert_true(tu_readable(f->peer, TU_WAIT_MS));
        k = read(f->peer, got + have, sizeof buf);
        assert_true(k > 0);
        have += (size_t)k;
    }
    assert_int_equal(have, want.size);
    assert_memory_equal(got, want.data, want.size);
    free(got);
    msgpack_sbuffer_destroy(&one);
    msgpack_sbuffer_destroy(&want);
}

/* A response's body as a relay forwards it: nil error, then a bin of n
 * bytes of `fill`. Returns its length; *out is malloc'd. */
static size_t
response_body(size_t n, char fill, char **out)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *bin = malloc(n ? n : 1);

    assert_non_null(bin);
    memset(bin, fill, n);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_nil(&pk);
    msgpack_pack_bin(&pk, n);
    msgpack_pack_bin_body(&pk, bin, n);
    free(bin);
    *out = sb.data;
    return sb.size;
}

static void
forward_response(struct fx *f, uint32_t msgid, size_t n, char fill)
{
    struct proto_head head;
    char *body;
    size_t len = response_body(n, fill, &body);

    proto_response_head(&head, msgid);
    rpcstream_forward(f->s, head.bytes, head.len, body, len);
    /* The caller's bytes are its own again: what was not written is kept. */
    memset(body, 0xc1, len);
    free(body);
}

/*
 * rpcstream_forward: a big body with nothing queued is written from where it
 * is (nothing is left gathered); one the socket cannot take whole is
 * copied, and what follows it comes after it; the peer reads each message
 * whole and in order.
 */
static void
test_forward_in_order(void **state)
{
    size_t sizes[] = {100 * 1024, 0, 10, 70 * 1024};
    struct fx *f = *state;
    struct proto_reader *r = proto_reader_new(256 << 20);
    struct proto_msg m;
    char cause[PROTO_CAUSE_MAX], *buf;
    socklen_t optlen = sizeof(int);
    int fd, sndbuf;
    size_t room;
    unsigned got = 0;
    ssize_t k;

    /* More than the socket holds, however big the system lets it be. */
    assert_int_equal(rpcstream_fileno(f->s, &fd), 0);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, &optlen),
                     0);
    sizes[1] = (size_t)sndbuf + (1 << 20);
    assert_int_equal(rpcstream_start(f->s), 0);
    forward_response(f, 1, sizes[0], 'a');
    assert_int_equal(rpcstream_backlog(f->s), 0);
    forward_response(f, 2, sizes[1], 'b');
    assert_true(rpcstream_backlog(f->s) > 0); /* the socket was full */
    forward_response(f, 3, sizes[2], 'c');
    forward_response(f, 4, sizes[3], 'd');
    while (got < 4) {
        int rc = proto_reader_next(r, &m, cause);

        assert_true(rc >= 0);
        if (rc == 1) {
            assert_int_equal(m.kind, PROTO_RESPONSE);
            assert_int_equal(m.msgid, got + 1);
            assert_int_equal(m.error.type, MSGPACK_OBJECT_NIL);
            assert_int_equal(m.result.type, MSGPACK_OBJECT_BIN);
            assert_int_equal(m.result.via.bin.size, sizes[got]);
            assert_int_equal(m.result.via.bin.ptr[0], 'a' + (int)got);
            assert_int_equal(m.result.via.bin.ptr[sizes[got] - 1],
                             'a' + (int)got);
            proto_msg_release(&m);
            got++;
            continue;
        }
        uv_run(&f->loop, UV_RUN_NOWAIT);
        if (!tu_readable(f->peer, TU_WAIT_MS))
            fail_msg("%u of 4 forwarded messages arrived, then nothing", got);
        assert_int_equal(proto_reader_buffer(r, 1 << 20, &buf, &room), 0);
        k = read(f->peer, buf, room);
        assert_true(k > 0);
        proto_reader_fill(r, (size_t)k);
    }
    TU_LOOP_UNTIL(&f->loop, rpcstream_backlog(f->s) == 0, TU_WAIT_MS);
    proto_reader_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_messages_and_replies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_take_bytes, setup_bytes, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_is_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_quiet_between_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pause_holds_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hints_announce_big_messages, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_forward_in_order, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
