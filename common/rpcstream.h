/*
 * rpcstream: a msgpack-RPC connection over a uv_pipe_t, for the daemons (the
 * manager's clients and workers, the worker's manager and direct clients).
 * Bytes are read straight into a proto_reader and whole messages go to the
 * owner; outgoing bytes are gathered and written once per loop iteration (or
 * early inside a long batch of messages), counted so that a peer that does not
 * read can be noticed and paused for.
 *
 * The struct is freed by the stream itself once its handle is closed, right
 * after on_closed: the owner must not touch it afterwards.
 */
#ifndef JSHOST_RPCSTREAM_H
#define JSHOST_RPCSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>
#include <uv.h>

#include "proto.h"

struct rpcstream;

/* Why reading is paused, a mask; reading resumes when it is 0 again. The
 * stream sets BACKLOG itself; owners use bits from RPCSTREAM_PAUSE_OWNER on. */
#define RPCSTREAM_PAUSE_BACKLOG 0x1u
#define RPCSTREAM_PAUSE_OWNER 0x2u

struct rpcstream_cbs {
    /*
     * May be NULL. Sees each whole message as bytes first (its head
     * validated): true when the owner has dealt with it (forwarded it; the
     * bytes are only valid during the call), false to have it unpacked and
     * handed to on_msg.
     */
    bool (*on_raw)(void *owner, const struct proto_raw *raw);
    /* A whole, validated message; the callee owns it (proto_msg_release). */
    void (*on_msg)(void *owner, struct proto_msg *msg);
    /*
     * on_msg gets every message taken as bytes (proto_reader_take: no tree,
     * no zone) rather than unpacked. Its bytes live in the stream's buffer:
     * valid during on_msg until the stream reads again (rpcstream_read_now).
     */
    bool take_bytes;
    /*
     * Called once: the peer finished sending (err 0; the stream stays open
     * for replies and messages already read are still handed out), reading
     * or writing failed (a negative errno), or the stream broke
     * (rpcstream_closing is then true: the ProtocolError notification is
     * queued and the stream closes once it is written).
     */
    void (*on_end)(void *owner, int err, const char *cause);
    /* A write completed (the backlog fell); may be NULL. */
    void (*on_drain)(void *owner);
    /* The handle is closed and the stream gone: the owner may free itself. */
    void (*on_closed)(void *owner);
};

/* An outgoing message packed apart, then handed over with rpcstream_send. */
struct rpcstream_msg {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

/* The loop-wide write flusher: set up once before any stream. */
void rpcstream_setup(uv_loop_t *loop);
/* Closes the flusher's handles (unless already closing) and forgets the
 * pending list; streams still open may no longer send. */
void rpcstream_teardown(void);

/* max_message 0 = the proto default. 0 or -ENOMEM / a libuv error. */
int rpcstream_new(uv_loop_t *loop, size_t max_message,
                  const struct rpcstream_cbs *cbs, void *owner,
                  struct rpcstream **out);
int rpcstream_open(struct rpcstream *s, int fd);
int rpcstream_accept(struct rpcstream *s, uv_stream_t *server);
int rpcstream_fileno(const struct rpcstream *s, int *fd);
/* Pause reading once the backlog passes high, resume at low (0: never). */
void rpcstream_set_backlog(struct rpcstream *s, size_t high, size_t low);

/*
 * Loop-wide limits on the unfinished messages of the streams that take them
 * (rpcstream_limit_partial: a server's peers): once the bytes they hold in
 * unfinished messages pass `total`, the stream whose bytes passed it is
 * refused (an error notification, then closed at once); so is one whose
 * unfinished message gets no byte for idle_ms. 0: no such limit.
 */
void rpcstream_set_partial_limits(size_t total, uint64_t idle_ms);
void rpcstream_limit_partial(struct rpcstream *s);
/* Bytes held in unfinished messages by the streams that take the limits. */
size_t rpcstream_partial_total(void);
int rpcstream_start(struct rpcstream *s);

/* Stops reading and handing out messages for a reason (see the PAUSE bits). */
void rpcstream_pause(struct rpcstream *s, unsigned why);
/* Hands out what is buffered at once if nothing else holds the stream. */
void rpcstream_resume(struct rpcstream *s, unsigned why);

/*
 * For an owner busy inside one message's handling (a worker running
 * JavaScript for it) that must still see what its peer sent since (a cancel):
 * reads what the socket holds now into the buffer, up to `max` bytes
 * buffered, handing out nothing; the messages read are handed out as usual
 * afterwards (the stream schedules that itself). 0, or 1 when the peer has
 * closed the connection entirely (not merely finished sending), or a
 * negative errno.
 */
int rpcstream_read_now(struct rpcstream *s, size_t max);
/* proto_reader_scan over the messages buffered and not yet handed out. */
size_t rpcstream_scan(struct rpcstream *s, proto_scan_fn fn, void *arg);
/* Whether the peer has closed the connection entirely (POLLHUP), not merely
 * shut down its sending side. */
bool rpcstream_peer_gone(const struct rpcstream *s);

/*
 * Size hints (proto.h): a worker announces each message of RPCSTREAM_HINT_MIN
 * bytes or more to the manager, which takes them and forwards such messages
 * without reading their items. Set once, before anything is sent or read.
 */
#define RPCSTREAM_HINT_MIN ((size_t)1024)
void rpcstream_send_hints(struct rpcstream *s);
void rpcstream_take_hints(struct rpcstream *s);

void rpcstream_msg_init(struct rpcstream_msg *m);
/* Queues m's bytes (taking them over) for the peer. */
void rpcstream_send(struct rpcstream *s, struct rpcstream_msg *m);
/*
 * Packs straight into the outgoing bytes: false when nothing more is sent on
 * s. Every message packed on pk is followed by rpcstream_commit.
 */
bool rpcstream_begin(struct rpcstream *s, msgpack_packer *pk);
void rpcstream_commit(struct rpcstream *s);
/*
 * Sends one message made of head then body, both the caller's and valid for
 * this call only (body typically a forwarded message's bytes, still in a
 * reader's buffer). A body of RPCSTREAM_DIRECT_MIN bytes or more with nothing
 * queued before it is written from where it is, and only what the socket
 * does not take is copied; otherwise it is gathered as rpcstream_begin's.
 */
#define RPCSTREAM_DIRECT_MIN ((size_t)64 * 1024)
void rpcstream_forward(struct rpcstream *s, const char *head, size_t head_len,
                       const char *body, size_t body_len);
/* Hands what is gathered to libuv now instead of at the end of the
 * iteration. */
void rpcstream_flush(struct rpcstream *s);

/* Closes now: gathered bytes are dropped, written ones cancelled. */
void rpcstream_close(struct rpcstream *s);
/* Stops reading, closes once every queued byte is written (or the peer is
 * gone). */
void rpcstream_close_flushed(struct rpcstream *s);
/* Sends a ProtocolError notification, then closes. */
void rpcstream_refuse(struct rpcstream *s, const char *cause);

/* Bytes queued (gathered or written) not yet written. */
size_t rpcstream_backlog(const struct rpcstream *s);
/* on_end was called, or the stream is closing. */
bool rpcstream_ended(const struct rpcstream *s);
/* Closing or closing once flushed: nothing more is sent or handed out. */
bool rpcstream_closing(const struct rpcstream *s);

/*
 * No stream is in the middle of a transfer: none holds part of a message, and
 * no write waits for a full socket. The daemons poll before sleeping only then
 * (spin_loop): the end of a transfer comes at the pace of the peer's copying,
 * which polling does not hasten.
 */
bool rpcstream_quiet(void);

#endif
