/*
 * The names on the wire (docs/protocol.md): methods, notifications and the
 * keys of their maps. The manager, the worker and the tests' fake worker
 * write and read them through these, so that a name is spelled once.
 */
#ifndef JSHOST_PROTO_METHODS_H
#define JSHOST_PROTO_METHODS_H

/* ---- methods (requests) ---- */

/* A client to the manager, or to a worker run with --listen. */
#define PROTO_M_HELLO "hello"
#define PROTO_M_ATTACH "attach"
#define PROTO_M_DETACH "detach"
/* The host's direct sockets and default deadline, as attach gives them. */
#define PROTO_M_DIRECT "direct"
#define PROTO_M_STATUS "status"
/* The manager only. */
#define PROTO_M_RESTART "restart"
#define PROTO_M_STOP "stop"
#define PROTO_M_SHUTDOWN "shutdown"
/* The calls: forwarded by the manager to a worker. */
#define PROTO_M_CALL "call"
#define PROTO_M_CONTEXT_CREATE "context.create"
#define PROTO_M_CONTEXT_EVAL "context.eval"
#define PROTO_M_CONTEXT_CALL "context.call"
#define PROTO_M_CONTEXT_LOAD "context.load"
#define PROTO_M_CONTEXT_DESTROY "context.destroy"
/* Both servers answer ping; stats is the manager's question to a worker. */
#define PROTO_M_PING "ping"
#define PROTO_M_STATS "stats"
/* A reverse call: a worker (through the manager) asks the client that owns a
 * callable to run it. */
#define PROTO_M_INVOKE "invoke"

/* ---- notifications ---- */

/* worker -> manager, once: the config loaded ({pid, functions, extras,
 * config}). */
#define PROTO_N_READY "ready"
/* worker -> manager, instead of ready: the config failed (an error map plus
 * file, line, column); the worker then exits JSHOST_EXIT_CONFIG. */
#define PROTO_N_CONFIG_ERROR "config_error"
/* either way, before closing a connection whose stream broke. */
#define PROTO_N_ERROR "error"
/* manager -> worker: a restart, a stop or a recycle is under way: take no new
 * direct client, tell those there are to send no new calls, answer what they
 * sent. */
#define PROTO_N_DRAIN "drain"
/* worker -> direct client: send no new calls on this connection; it closes
 * once the calls sent on it are answered. */
#define PROTO_N_DRAINING "draining"
/* worker -> manager, after drain: no direct client is left. */
#define PROTO_N_DRAINED "drained"
/* worker -> the connection that made a context (the manager passes it on to
 * its client): [level, text, context id], a line the context's code logged. */
#define PROTO_N_CONSOLE "console"
/* client -> manager -> worker: stop the call of that msgid. */
#define PROTO_N_CANCEL "cancel"
/* client -> manager -> worker: withdraw those callables. */
#define PROTO_N_RELEASE "release"
/* worker -> manager: [2, "size", [n]], the next message is n bytes
 * (proto_size_hint). */
#define PROTO_N_SIZE "size"

/* ---- keys ---- */

/* An error map (the `error` of a response, the param of error/config_error). */
#define PROTO_K_TYPE "type"
#define PROTO_K_MESSAGE "message"
#define PROTO_K_NAME "name"
#define PROTO_K_STACK "stack"
#define PROTO_K_LOGFILE "logfile"
/* config_error's place of the fault. */
#define PROTO_K_FILE "file"
#define PROTO_K_LINE "line"
#define PROTO_K_COLUMN "column"

/* ready; also attach's and status's results. */
#define PROTO_K_PID "pid"
#define PROTO_K_FUNCTIONS "functions"
#define PROTO_K_EXTRAS "extras"
#define PROTO_K_CONFIG "config"
/* attach's result: the sockets of the host's ready workers, for calls that
 * skip the manager (docs/protocol.md, "Direct connections"). */
#define PROTO_K_DIRECT "direct"
/* The direct method's result: how the latest workers with a direct socket
 * ended, by socket ({path: "worker N killed by signal 9 (SIGKILL)"}). */
#define PROTO_K_EXITS "exits"
/* ready's config map: the config's figures. */
#define PROTO_K_WORKERS "workers"
#define PROTO_K_TIMEOUT "timeout"
#define PROTO_K_MEMORY "memory"
#define PROTO_K_LINGER "linger"

/* hello: params and result. */
#define PROTO_K_CLIENT "client"
#define PROTO_K_PROTOCOL "protocol"
#define PROTO_K_SERVER "server"

/* attach's result (with config, functions, workers, logfile, extras). */
#define PROTO_K_HOST "host"
/* detach's result. */
#define PROTO_K_LINGER_MS "linger_ms"

/* Options maps of call, context.* (and memory, above). */
#define PROTO_K_TIMEOUT_MS "timeout_ms"
#define PROTO_K_CWD "cwd"
#define PROTO_K_VM "vm"
/* ready: the files the config loaded, its warnings; config's `reload`. Also
 * attach's result: "warnings". */
#define PROTO_K_FILES "files"
#define PROTO_K_WARNINGS "warnings"
#define PROTO_K_RELOAD "reload"
/* context.eval: the value crosses as JavaScript's String(value). */
#define PROTO_K_STRING "string"

/* stats's result, a worker's own figures. */
#define PROTO_K_HEAP_USED "heap_used"
#define PROTO_K_HEAP_LIMIT "heap_limit"
#define PROTO_K_CALLS "calls"
#define PROTO_K_ERRORS "errors"
#define PROTO_K_IN_FLIGHT "in_flight"
#define PROTO_K_CONTEXTS "contexts"
#define PROTO_K_UPTIME_S "uptime_s"
#define PROTO_K_RSS "rss"

/* status's result: a worker's ({pid, config, functions, stats}) and the
 * manager's ({manager, hosts}, a host map, worker maps). */
#define PROTO_K_STATS "stats"
#define PROTO_K_MANAGER "manager"
#define PROTO_K_HOSTS "hosts"
#define PROTO_K_CLIENTS "clients"
#define PROTO_K_VERSION "version"
#define PROTO_K_ID "id"
#define PROTO_K_HOLDERS "holders"
#define PROTO_K_LINGER_LEFT_MS "linger_left_ms"
#define PROTO_K_STATE "state"
#define PROTO_K_POOL "pool"
#define PROTO_K_QUEUED "queued"
#define PROTO_K_CRASHES "crashes"
#define PROTO_K_LAST_CRASH "last_crash"
#define PROTO_K_QUARANTINE_LEFT_MS "quarantine_left_ms"
#define PROTO_K_LOG_DROPPED "log_dropped"
#define PROTO_K_PARTIAL_BYTES "partial_bytes"
#define PROTO_K_P50_MS "p50_ms"
#define PROTO_K_P99_MS "p99_ms"
/* status: a worker's messages the manager forwarded as their size hints
 * announced them, unread. */
#define PROTO_K_FORWARDED_UNREAD "forwarded_unread"

/* invoke's owner param (manager <-> worker only): the call or the context
 * the callable belongs to. */
#define PROTO_K_CALL "call"
#define PROTO_K_CONTEXT "context"

/* ping's result. */
#define PROTO_PONG "pong"

#endif
