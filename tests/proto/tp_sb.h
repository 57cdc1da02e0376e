/* The proto tests' packer over a fresh sbuffer (sb_done frees it). */
#ifndef JSHOST_TP_SB_H
#define JSHOST_TP_SB_H

#include <msgpack.h>

struct sb {
    msgpack_sbuffer buf;
    msgpack_packer pk;
};

static inline void
sb_init(struct sb *s)
{
    msgpack_sbuffer_init(&s->buf);
    msgpack_packer_init(&s->pk, &s->buf, msgpack_sbuffer_write);
}

static inline void
sb_done(struct sb *s)
{
    msgpack_sbuffer_destroy(&s->buf);
}

#endif
