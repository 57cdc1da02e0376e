/*
 * Finding the daemons (jshost-manager, jshost-worker): the one way libjshost,
 * the Python extension, the jshost command and the manager all use. Clients
 * may call it: it never exits, aborts or prints.
 *
 * In order, the first that names an executable file:
 *  1. the environment override, JSHOST_MANAGER or JSHOST_WORKER: a path is
 *     made absolute against the working directory now (a daemon moves to /);
 *     a bare name is looked up on PATH;
 *  2. relative to the calling binary or shared object (the "anchor"): in its
 *     own directory (a Python package that carries its daemons, an install
 *     with everything in bin/), then in each of up to four directories above
 *     it, the build tree's layout (BUILD/manager/jshost-manager,
 *     BUILD/worker/jshost-worker beside BUILD/clients/...) and an installed
 *     prefix's libexec/jshost/ (beside PREFIX/bin, PREFIX/lib,
 *     PREFIX/lib/<multiarch> or PREFIX/lib/pythonX/site-packages/jshost);
 *  3. the prefix jshost was configured with: PREFIX/libexec/jshost, then
 *     PREFIX/bin;
 *  4. PATH.
 */
#ifndef JSHOST_LOCATE_H
#define JSHOST_LOCATE_H

#include <stddef.h>

enum locate_daemon {
    LOCATE_MANAGER, /* jshost-manager, JSHOST_MANAGER */
    LOCATE_WORKER,  /* jshost-worker, JSHOST_WORKER */
};

/* "jshost-manager" or "jshost-worker". */
const char *locate_name(enum locate_daemon which);
/* "JSHOST_MANAGER" or "JSHOST_WORKER". */
const char *locate_env(enum locate_daemon which);

/*
 * Finds the daemon `which`. anchor is an address inside the calling binary or
 * shared object (one of its functions), found with dladdr; NULL means the
 * running executable (/proc/self/exe). out gets an absolute path (len bytes;
 * PATH_MAX is enough). 0 when found. Otherwise a negative errno and out holds
 * what was sought, for the caller's words: the override's path when it names
 * nothing usable (its errno), or the daemon's name when nothing was found
 * (-ENOENT).
 */
int locate_daemon(enum locate_daemon which, const void *anchor, char *out,
                  size_t len);

#endif
