/* Constants shared by the manager, the worker and the clients. */
#ifndef JSHOST_DEFS_H
#define JSHOST_DEFS_H

#ifndef JSHOST_VERSION
#define JSHOST_VERSION "0.0.0"
#endif

/* Worker exit statuses the manager acts on (sysexits.h numbers). */
#define JSHOST_EXIT_CONFIG 78 /* EX_CONFIG: the config failed; do not respawn  \
                               */
#define JSHOST_EXIT_RECYCLE                                                    \
    75 /* EX_TEMPFAIL: heap limit hit; replace me, not a crash */

/* The worker's end of the manager's socketpair. */
#define JSHOST_WORKER_FD 3

/* Defaults (docs/config.md, docs/lifecycle.md). */
#define JSHOST_DEFAULT_TIMEOUT_MS 10000
#define JSHOST_DEFAULT_MEMORY_MB 512
#define JSHOST_DEFAULT_LINGER_MS 5000
#define JSHOST_DEFAULT_IDLE_MS 5000
#define JSHOST_DEFAULT_WORKERS 1

/* Limits on what peers may hold (docs/security.md): connections open at
 * once on a socket, the bytes of unfinished messages across them, and how
 * long an unfinished message may go without a byte. */
#define JSHOST_DEFAULT_MAX_CLIENTS 1024
#define JSHOST_DEFAULT_MAX_PARTIAL_TOTAL ((unsigned long long)256 * 1024 * 1024)
#define JSHOST_DEFAULT_PARTIAL_IDLE_MS 30000

/* Names inside the runtime dir (docs/protocol.md, "Transport and security"). */
#define JSHOST_MANAGER_SOCK "manager.sock"
#define JSHOST_MANAGER_LOCK "manager.lock"
#define JSHOST_MANAGER_PID "manager.pid"
#define JSHOST_MANAGER_LOG "manager.log"
#define JSHOST_HOSTS_DIR "hosts"

#endif
