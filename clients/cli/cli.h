/* The jshost command: what its cmd-*.c files share. */
#ifndef JSHOST_CLI_H
#define JSHOST_CLI_H

#include <stddef.h>

#include <msgpack.h>

#include "jshost.h"

/* Exit statuses (docs/cli.md, "Exit status"). */
enum {
    CLI_OK = 0,
    CLI_JS = 1,     /* the JavaScript failed (JSError, TimeoutError, ...) */
    CLI_USAGE = 2,  /* bad command line, bad JSON */
    CLI_JSHOST = 3, /* jshost itself could not: no manager, config, crash */
    CLI_INTERRUPTED = 130, /* Ctrl-C: the call was cancelled (128 + SIGINT) */
};

struct cli_cmd {
    const char *name;
    int (*exec)(int argc, char **argv);
};

/* Prints "jshost: " + words on stderr and returns CLI_USAGE after the usage
 * line of `cmd` (docs/cli.md). */
int cli_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prints "jshost: " + words on stderr. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Connects with the CLI's options (spawn as asked; JSHOST_SOCKET wins).
 * NULL after printing the failure. */
jshost *cli_connect(int spawn);
/* From now on SIGINT (Ctrl-C) stops c's blocking call and cancels it on the
 * server (cli_fail then says so and returns CLI_INTERRUPTED). */
void cli_interruptible(jshost *c);
/* Connects to a running manager only, never starting one. NULL with *none = 1
 * (nothing printed) when none runs; NULL with *none = 0 after printing any
 * other failure. */
jshost *cli_connect_running(int *none);
/*
 * Prints c's failure of `what` on stderr (for JS errors: type, name, message,
 * stack; the log file when known) and returns the exit status for it. With
 * `js`, errors of the JavaScript run exit 1, else 3.
 */
int cli_fail(jshost *c, const char *what, int js);
/* jshost_attach, then the config's warnings (a setting that looks
 * misspelt, a reload that failed) on stderr. info may be NULL. */
int cli_attach(jshost *c, const char *config, char **host, jshost_value *info);
/* Reads all of stdin; NULL on failure. */
char *cli_read_stdin(size_t *len);
/* Prints a packed value as JSON and a newline; CLI_OK or CLI_JSHOST. */
int cli_print_value(const jshost_value *v, int pretty);
/* Parses "--timeout SECONDS" at argv[*i] (advances *i). -1 on bad input. */
int cli_parse_seconds(const char *s, int *ms);

/* Object helpers for results. */
const msgpack_object *cli_get(const msgpack_object *map, const char *key);
/* The first of the keys present (NULL-terminated list). */
const msgpack_object *cli_get_any(const msgpack_object *map, ...);

int cmd_call(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_restart(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_host(int argc, char **argv);
int cmd_manager(int argc, char **argv);
int cmd_shutdown(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_help(int argc, char **argv);

#endif
