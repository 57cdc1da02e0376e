/* A host's id and log file (hostid.h). */
#include "hostid.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>

#include "jshost_defs.h"

/* FNV-1a of the real path: short, stable across restarts of the manager. */
void
hostid_make(const char *realpath, char *id)
{
    uint64_t x = 0xcbf29ce484222325ULL;

    for (; *realpath != '\0'; realpath++) {
        x ^= (unsigned char)*realpath;
        x *= 0x100000001b3ULL;
    }
    snprintf(id, HOSTID_LEN + 1, "%012llx",
             (unsigned long long)(x & 0xffffffffffffULL));
}

int
hostid_logfile(char *buf, size_t len, const char *rundir, const char *realpath)
{
    char id[HOSTID_LEN + 1];
    int n;

    hostid_make(realpath, id);
    n = snprintf(buf, len, "%s/%s/%s.log", rundir, JSHOST_HOSTS_DIR, id);
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
