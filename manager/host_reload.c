/*
 * The development reload (docs/lifecycle.md, "Reload"): the manager watches
 * the config and every file its workers loaded (the `files` of `ready`) and,
 * when one changes, restarts the host the way `restart` does: new workers
 * ready first, in-flight calls finishing on the old ones, a config error
 * leaving the old ones serving (said in the host's log and to the next
 * attach). On by default for a manager started by a client (idle exit), off
 * under --no-idle-exit unless --reload; the config's `reload` decides over
 * both.
 *
 * Each file's directory is watched rather than the file itself: an editor
 * that saves by writing a new file and renaming it over the old one replaces
 * the inode a file watch would follow. Events are gathered for a short while
 * (an editor's save is several of them) before one reload.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "manager.h"
#include "xmalloc.h"

/* How long events gather before the reload. */
#define HOST_RELOAD_SETTLE_MS 100

/* A watched directory and the names in it that matter. */
struct host_watch {
    uv_fs_event_t ev;
    struct host_reload *r;
    char *dir;
    char **names;
    size_t nnames;
};

/* A host's watches, freed once every handle of it has closed (the host may
 * be gone by then: nothing here is reached from it any more). */
struct host_reload {
    struct host *host; /* NULL once stopped */
    uv_timer_t settle;
    struct host_watch **watches;
    size_t nwatches;
    unsigned handles;
    char *changed; /* the first file seen changing, for the log */
};

static void
host_reload_handle_closed(struct host_reload *r)
{
    if (--r->handles > 0)
        return;
    free(r->watches);
    free(r->changed);
    free(r);
}

static void
host_reload_watch_closed_cb(uv_handle_t *handle)
{
    struct host_watch *w = handle->data;
    struct host_reload *r = w->r;
    size_t i;

    for (i = 0; i < w->nnames; i++)
        free(w->names[i]);
    free(w->names);
    free(w->dir);
    free(w);
    host_reload_handle_closed(r);
}

static void
host_reload_timer_closed_cb(uv_handle_t *handle)
{
    host_reload_handle_closed(handle->data);
}

void
host_reload_stop(struct host *h)
{
    struct host_reload *r = h->reload;
    size_t i;

    if (r == NULL)
        return;
    h->reload = NULL;
    r->host = NULL;
    for (i = 0; i < r->nwatches; i++)
        uv_close((uv_handle_t *)&r->watches[i]->ev,
                 host_reload_watch_closed_cb);
    r->nwatches = 0;
    uv_close((uv_handle_t *)&r->settle, host_reload_timer_closed_cb);
}

static void
host_reload_settled_cb(uv_timer_t *t)
{
    struct host_reload *r = t->data;

    if (r->host == NULL)
        return;
    host__reload(r->host, r->changed != NULL ? r->changed : "a file");
    free(r->changed);
    r->changed = NULL;
}

static void
host_reload_event_cb(uv_fs_event_t *ev, const char *filename, int events,
                     int status)
{
    struct host_watch *w = ev->data;
    struct host_reload *r = w->r;
    size_t i;

    (void)events;
    if (r->host == NULL)
        return;
    if (status < 0) {
        log_warn("host %s: watching %s: %s", r->host->id, w->dir,
                 uv_strerror(status));
        return;
    }
    for (i = 0; i < w->nnames; i++) {
        if (filename == NULL || strcmp(filename, w->names[i]) == 0)
            break;
    }
    if (i == w->nnames)
        return;
    if (r->changed == NULL)
        r->changed = xasprintf("%s/%s", w->dir,
                               filename != NULL ? filename : w->names[0]);
    uv_timer_start(&r->settle, host_reload_settled_cb, HOST_RELOAD_SETTLE_MS,
                   0);
}

/* The watch of dir, made and started when new; NULL when it cannot be. */
static struct host_watch *
host_reload_dir(struct host_reload *r, const char *dir)
{
    struct host_watch *w;
    size_t i;
    int rc;

    for (i = 0; i < r->nwatches; i++)
        if (strcmp(r->watches[i]->dir, dir) == 0)
            return r->watches[i];
    w = xcalloc(1, sizeof *w);
    w->r = r;
    w->dir = xstrdup(dir);
    w->ev.data = w;
    uv_fs_event_init(mgr.loop, &w->ev);
    r->handles++;
    rc = uv_fs_event_start(&w->ev, host_reload_event_cb, dir, 0);
    if (rc != 0) {
        host_log(r->host, 0, "cannot watch %s for the reload: %s", dir,
                 uv_strerror(rc));
        uv_close((uv_handle_t *)&w->ev, host_reload_watch_closed_cb);
        return NULL;
    }
    r->watches = xrealloc(r->watches, (r->nwatches + 1) * sizeof *r->watches);
    r->watches[r->nwatches++] = w;
    return w;
}

static void
host_reload_add(struct host_reload *r, const char *path, size_t len)
{
    struct host_watch *w;
    char *file = xstrndup(path, len), *slash = strrchr(file, '/');

    if (slash != NULL && slash[1] != '\0') {
        *slash = '\0';
        w = host_reload_dir(r, slash == file ? "/" : file);
        if (w != NULL) {
            w->names = xrealloc(w->names, (w->nnames + 1) * sizeof *w->names);
            w->names[w->nnames++] = xstrdup(slash + 1);
        }
    }
    free(file);
}

bool
host_reload_enabled(const struct host *h)
{
    if (h->is_private)
        return false;
    if (h->reload_setting >= 0)
        return h->reload_setting != 0;
    return mgr.reload;
}

void
host_reload_watch(struct host *h, const msgpack_object *files)
{
    struct host_reload *r;
    size_t nfiles = 0;
    uint32_t i;

    host_reload_stop(h);
    if (!host_reload_enabled(h))
        return;
    r = xcalloc(1, sizeof *r);
    r->host = h;
    uv_timer_init(mgr.loop, &r->settle);
    r->settle.data = r;
    r->handles = 1;
    h->reload = r;
    /* The config at least, whatever the worker said. */
    host_reload_add(r, h->config, strlen(h->config));
    if (files != NULL && files->type == MSGPACK_OBJECT_ARRAY) {
        for (i = 0; i < files->via.array.size; i++) {
            const msgpack_object *f = &files->via.array.ptr[i];

            if (f->type == MSGPACK_OBJECT_STR && f->via.str.size > 0 &&
                f->via.str.ptr[0] == '/' &&
                (f->via.str.size != strlen(h->config) ||
                 memcmp(f->via.str.ptr, h->config, f->via.str.size) != 0))
                host_reload_add(r, f->via.str.ptr, f->via.str.size);
        }
    }
    for (i = 0; i < r->nwatches; i++)
        nfiles += r->watches[i]->nnames;
    host_log(h, 0, "reload on: watching %zu files in %zu directories", nfiles,
             r->nwatches);
}

void
host_reload_finished(struct host *h, const char *words)
{
    if (words == NULL) {
        free(h->reload_error);
        h->reload_error = NULL;
        if (h->reloading)
            host_log(h, 0, "reloaded: the new workers serve");
    } else if (h->reloading) {
        free(h->reload_error);
        h->reload_error = xasprintf("the reload after a change failed, the "
                                    "previous workers serve on: %s",
                                    words);
        host_log(h, 0, "%s", h->reload_error);
    }
    h->reloading = false;
    if (h->reload_pending) {
        h->reload_pending = false;
        host__reload(h, "a file changed during the reload");
    }
}
