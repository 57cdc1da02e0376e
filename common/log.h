/*
 * Logging for the daemons (manager and worker): one line per event, with a
 * timestamp and the pid, to a file or stderr. fatal() belongs to daemons only.
 */
#ifndef JSHOST_LOG_H
#define JSHOST_LOG_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Appends to `path` (created 0600); NULL = stderr. 0 or negative errno. */
int log_open(const char *path, const char *progname);
void log_close(void);
void log_set_level(enum log_level level);
/* The fd log lines go to (for handing to children as stdout/stderr). */
int log_fd(void);

void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_vwrite(enum log_level level, const char *fmt, va_list ap);

/* Logs and exits(1); fatal() appends strerror(errno). */
__attribute__((noreturn, format(printf, 1, 2))) void fatal(const char *fmt, ...);
__attribute__((noreturn, format(printf, 1, 2))) void fatalx(const char *fmt, ...);

/* "2026-11-21T23:30:46.123Z" into buf (at least 32 bytes). */
void log_timestamp(char *buf, unsigned long size);
/* Writes one event in the format of every jshost log file: "<timestamp>
 * [<pid>] <LEVEL> <text>", continuation lines indented, in one write(). level
 * is upper-cased ("info" -> "INFO"). Errors are dropped. */
void log_line(int fd, const char *level, const char *text, size_t len);
/* Room log_format needs for a text of len bytes. */
#define LOG_LINE_ROOM(len) ((len)*3 + 96)
/* The line log_line writes, into buf (LOG_LINE_ROOM(len) bytes); its
 * length. */
size_t log_format(char *buf, const char *level, const char *text, size_t len);

#ifdef __cplusplus
}
#endif

#endif
