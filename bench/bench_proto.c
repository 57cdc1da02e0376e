/*
 * The proto reader against its floors, in the same run. Call requests: bare
 * msgpack-c streaming unpacking of the same bytes (the reader's cost is what
 * its scanner and validation add). Responses carrying a 1000-key object, read
 * as the manager forwards them (scan, peek the header, skip), and again as
 * it forwards its workers' answers, announced by size hints (no scan):
 * memcpy of the same bytes, what forwarding cannot do without.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "bench_scale.h"
#include "proto.h"

#define CHUNK 65536

/* Call requests, responses, and rounds (best of): 200000, 2000 and 5 at
 * JSHOST_BENCH_SCALE 1 (set in main). */
static long nmsg, nresp, rounds;

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
pack_requests(msgpack_sbuffer *sb)
{
    msgpack_packer pk;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    for (uint32_t i = 0; i < nmsg; i++) {
        proto_write_request(&pk, i, "call", 4);
        proto_pack_cstr(&pk, "0123456789abcdef");
        proto_pack_cstr(&pk, "render");
        msgpack_pack_map(&pk, 2);
        proto_pack_cstr(&pk, "number");
        msgpack_pack_uint32(&pk, i);
        proto_pack_cstr(&pk, "name");
        proto_pack_cstr(&pk, "World");
        msgpack_pack_map(&pk, 1);
        proto_pack_cstr(&pk, "timeout_ms");
        msgpack_pack_uint32(&pk, 1000);
    }
}

/* Responses whose result is bench_cpu's nested_out: {k0: {i, s}, ...};
 * each behind a size hint when `hinted`, as a worker sends them. */
static void
pack_responses(msgpack_sbuffer *sb, bool hinted)
{
    msgpack_sbuffer one;
    msgpack_packer pk;
    char key[16], str[16], hint[PROTO_HINT_BYTES];

    msgpack_sbuffer_init(&one);
    msgpack_packer_init(&pk, &one, msgpack_sbuffer_write);
    for (uint32_t m = 0; m < nresp; m++) {
        msgpack_sbuffer_clear(&one);
        msgpack_pack_array(&pk, 4);
        msgpack_pack_uint32(&pk, 1);
        msgpack_pack_uint32(&pk, m);
        msgpack_pack_nil(&pk);
        msgpack_pack_map(&pk, 1000);
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof key, "k%d", i);
            snprintf(str, sizeof str, "s%d", i);
            proto_pack_cstr(&pk, key);
            msgpack_pack_map(&pk, 2);
            proto_pack_cstr(&pk, "i");
            msgpack_pack_int(&pk, i);
            proto_pack_cstr(&pk, "s");
            proto_pack_cstr(&pk, str);
        }
        if (hinted) {
            proto_size_hint(hint, (uint32_t)one.size);
            msgpack_sbuffer_write(sb, hint, sizeof hint);
        }
        msgpack_sbuffer_write(sb, one.data, one.size);
    }
    msgpack_sbuffer_destroy(&one);
}

/* Copies the bytes in CHUNK pieces into one buffer: the floor of forwarding. */
static double
run_memcpy(const msgpack_sbuffer *sb)
{
    char *buf = malloc(CHUNK);
    size_t off = 0;
    double t0 = now();

    if (buf == NULL)
        exit(1);
    while (off < sb->size) {
        size_t len = sb->size - off < CHUNK ? sb->size - off : CHUNK;

        memcpy(buf, sb->data + off, len);
        __asm__ volatile("" : : "r"(buf) : "memory");
        off += len;
    }
    free(buf);
    return now() - t0;
}

static double
run_msgpack(const msgpack_sbuffer *sb)
{
    msgpack_unpacker up;
    msgpack_unpacked res;
    size_t off = 0, n = 0;
    double t0 = now();

    msgpack_unpacker_init(&up, CHUNK);
    msgpack_unpacked_init(&res);
    while (off < sb->size) {
        size_t len = sb->size - off < CHUNK ? sb->size - off : CHUNK;

        msgpack_unpacker_reserve_buffer(&up, len);
        memcpy(msgpack_unpacker_buffer(&up), sb->data + off, len);
        msgpack_unpacker_buffer_consumed(&up, len);
        off += len;
        while (msgpack_unpacker_next(&up, &res) == MSGPACK_UNPACK_SUCCESS)
            n++;
    }
    msgpack_unpacked_destroy(&res);
    msgpack_unpacker_destroy(&up);
    if (n != (size_t)nmsg) {
        fprintf(stderr, "bench_proto: msgpack-c read %zu of %ld\n", n, nmsg);
        exit(1);
    }
    return now() - t0;
}

/* The reader fed in CHUNK pieces, as a server's reads feed it, taking every
 * message: unpacked (`forward` false: the worker's path) or as the manager
 * forwards them (the header validated by peek, the bytes skipped), taking
 * size hints when `hints`. */
static double
run_proto(const msgpack_sbuffer *sb, size_t expect, bool forward, bool hints)
{
    struct proto_reader *r = proto_reader_new(0);
    struct proto_msg msg;
    struct proto_raw raw;
    char cause[PROTO_CAUSE_MAX];
    size_t off = 0, n = 0;
    double t0 = now();
    int rc;

    if (hints)
        proto_reader_take_hints(r);
    while (off < sb->size) {
        size_t len = sb->size - off < CHUNK ? sb->size - off : CHUNK;
        char *buf;
        size_t room;

        if (proto_reader_buffer(r, len, &buf, &room) != 0)
            exit(1);
        memcpy(buf, sb->data + off, len);
        proto_reader_fill(r, len);
        off += len;
        for (;;) {
            if (forward) {
                if ((rc = proto_reader_peek(r, &raw, cause)) == 1)
                    proto_reader_skip(r);
            } else if ((rc = proto_reader_next(r, &msg, cause)) == 1) {
                proto_msg_release(&msg);
            }
            if (rc != 1)
                break;
            n++;
        }
        if (rc < 0) {
            fprintf(stderr, "bench_proto: %s\n", cause);
            exit(1);
        }
    }
    proto_reader_free(r);
    if (n != expect) {
        fprintf(stderr, "bench_proto: read %zu of %zu\n", n, expect);
        exit(1);
    }
    return now() - t0;
}

/* Best of `rounds` interleaved rounds of the floor and the reader: best[0] the
 * floor's seconds, best[1] the reader's. */
static void
compare(const msgpack_sbuffer *sb, size_t n, bool forward, bool hints,
        double best[2])
{
    best[0] = best[1] = 1e9;
    for (long i = 0; i < rounds; i++) {
        double a = forward ? run_memcpy(sb) : run_msgpack(sb);
        double b = run_proto(sb, n, forward, hints);

        best[0] = a < best[0] ? a : best[0];
        best[1] = b < best[1] ? b : best[1];
    }
}

/* The responses in sb forwarded (read through, or taking their hints)
 * against memcpy, printed. */
static void
forwarding(const msgpack_sbuffer *sb, bool hints)
{
    double best[2];

    compare(sb, (size_t)nresp, true, hints, best);
    printf("  memcpy (floor)              %7.2f us/msg\n",
           best[0] * 1e6 / nresp);
    printf("  %-27s %7.2f us/msg\n",
           hints ? "hint + peek + skip" : "scan + peek + skip",
           best[1] * 1e6 / nresp);
    printf("  ratio %-21s %7.2f\n", hints ? "hinted/floor" : "scan/floor",
           best[1] / best[0]);
}

int
main(void)
{
    msgpack_sbuffer sb;
    double best[2];

    nmsg = bench_scaled(200000, 100);
    nresp = bench_scaled(2000, 10);
    rounds = bench_scaled(5, 1);
    msgpack_sbuffer_init(&sb);
    pack_requests(&sb);
    compare(&sb, (size_t)nmsg, false, false, best);
    printf("proto reader: %ld call requests (%zu bytes each), best of %ld\n",
           nmsg, sb.size / (size_t)nmsg, rounds);
    printf("  msgpack-c unpacker (floor)  %7.1f ns/msg\n",
           best[0] * 1e9 / nmsg);
    printf("  proto_reader + validation   %7.1f ns/msg\n",
           best[1] * 1e9 / nmsg);
    printf("  ratio proto/floor           %7.2f\n", best[1] / best[0]);
    msgpack_sbuffer_destroy(&sb);

    msgpack_sbuffer_init(&sb);
    pack_responses(&sb, false);
    printf("forwarding: %ld responses with a 1000-key object (%zu bytes each), "
           "best of %ld\n",
           nresp, sb.size / (size_t)nresp, rounds);
    forwarding(&sb, false);
    msgpack_sbuffer_destroy(&sb);

    msgpack_sbuffer_init(&sb);
    pack_responses(&sb, true);
    printf("forwarding a worker's answers: the same, each announced by a size "
           "hint\n");
    forwarding(&sb, true);
    msgpack_sbuffer_destroy(&sb);
    return 0;
}
