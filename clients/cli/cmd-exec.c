/* jshost host and jshost manager: become the worker or the manager (exec), for
 * supervisors and for production (docs/lifecycle.md). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli.h"
#include "locate.h"

/* Becomes the daemon, found the one way (locate.h): the override, then
 * relative to this jshost (its build tree, its install prefix), the configured
 * prefix, PATH. */
static int
exec_daemon(enum locate_daemon which, char **argv)
{
    char path[PATH_MAX];
    int r = locate_daemon(which, NULL, path, sizeof(path));

    if (r == 0) {
        execv(path, argv);
        r = -errno;
    }
    cli_warn("cannot run %s: %s (set %s)", path, strerror(-r),
             locate_env(which));
    return CLI_JSHOST;
}

int
cmd_host(int argc, char **argv)
{
    const char *config = NULL, *listen = NULL;
    char *args[5];
    int i;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen = argv[++i];
        else if (strncmp(argv[i], "--listen=", 9) == 0)
            listen = argv[i] + 9;
        else if (argv[i][0] == '-')
            return cli_usage("host", "unknown option '%s'", argv[i]);
        else if (config == NULL)
            config = argv[i];
        else
            return cli_usage("host", "too many arguments");
    }
    if (config == NULL || listen == NULL || listen[0] == '\0')
        return cli_usage("host", "host needs a CONFIG and --listen PATH");
    if (strlen(listen) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        cli_warn("host: socket path %s is too long (%zu bytes; at most %zu)",
                 listen, strlen(listen),
                 sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return CLI_JSHOST;
    }
    args[0] = "jshost-worker";
    args[1] = "--listen";
    args[2] = (char *)listen;
    args[3] = (char *)config;
    args[4] = NULL;
    return exec_daemon(LOCATE_WORKER, args);
}

int
cmd_manager(int argc, char **argv)
{
    char *args[6];
    int i, n = 1;

    args[0] = "jshost-manager";
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--foreground") == 0 ||
            strcmp(argv[i], "--no-idle-exit") == 0 ||
            strcmp(argv[i], "--reload") == 0 ||
            strcmp(argv[i], "--no-reload") == 0) {
            if (n < 5)
                args[n++] = argv[i];
        } else {
            return cli_usage("manager", "unknown option '%s'", argv[i]);
        }
    }
    args[n] = NULL;
    return exec_daemon(LOCATE_MANAGER, args);
}
