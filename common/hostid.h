/*
 * A host's id and log file: the manager names each config's host by a short
 * hash of the config's real path, and keeps its log in <runtime>/hosts/<id>.log
 * (docs/cli.md, "Files"). The manager and `jshost logs` (which reads a log
 * without asking the manager) both compute them here.
 */
#ifndef JSHOST_HOSTID_H
#define JSHOST_HOSTID_H

#include <stddef.h>

/* Characters in an id, without its NUL. */
#define HOSTID_LEN 12

/* Writes the id of the config at `realpath` (already resolved) into id, which
 * holds HOSTID_LEN + 1 bytes. Stable across restarts of the manager. */
void hostid_make(const char *realpath, char *id);

/*
 * Writes <rundir>/hosts/<id>.log for the config at `realpath` into buf (len
 * bytes). 0, or -ENAMETOOLONG when it does not fit.
 */
int hostid_logfile(char *buf, size_t len, const char *rundir,
                   const char *realpath);

#endif
