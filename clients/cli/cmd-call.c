/* jshost call and jshost eval: run JavaScript, print the value as JSON. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Splits argv into positionals and the options call/eval know. Returns
 * CLI_OK or the usage status (already said). */
static int
parse(const char *cmd, int argc, char **argv, char **pos, int maxpos, int *npos,
      int *timeout_ms, char **config)
{
    int i;
    const char *val;

    *npos = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (*npos == maxpos)
                    return cli_usage(cmd, "too many arguments");
                pos[(*npos)++] = argv[i];
            }
            break;
        }
        if (strncmp(a, "--timeout", 9) == 0 && (a[9] == '\0' || a[9] == '=')) {
            val = a[9] == '=' ? a + 10 : (i + 1 < argc ? argv[++i] : NULL);
            if (cli_parse_seconds(val, timeout_ms) < 0)
                return cli_usage(cmd,
                                 "--timeout wants a number of seconds > 0");
            continue;
        }
        if (config != NULL && strncmp(a, "--config", 8) == 0 &&
            (a[8] == '\0' || a[8] == '=')) {
            val = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
            if (val == NULL || val[0] == '\0')
                return cli_usage(cmd, "--config wants a config file");
            *config = (char *)val;
            continue;
        }
        /* "-5" is JSON (or a script), not an option */
        if (a[0] == '-' && a[1] != '\0' && !isdigit((unsigned char)a[1]) &&
            a[1] != '.')
            return cli_usage(cmd, "unknown option '%s'", a);
        if (*npos == maxpos)
            return cli_usage(cmd, "too many arguments");
        pos[(*npos)++] = (char *)a;
    }
    return CLI_OK;
}

int
cmd_call(int argc, char **argv)
{
    char *pos[3], *json, *host = NULL, *input = NULL, err[256], what[600];
    const char *config, *function;
    jshost_value data = {0}, result = {0};
    int npos, timeout_ms = 0, r;
    size_t len;
    jshost *c;

    if ((r = parse("call", argc, argv, pos, 3, &npos, &timeout_ms, NULL)) != 0)
        return r;
    if (npos < 2)
        return cli_usage("call", "call needs CONFIG and FUNCTION");
    config = pos[0];
    function = pos[1];
    json = npos == 3 ? pos[2] : "{}";
    if (strcmp(json, "-") == 0) {
        if ((input = cli_read_stdin(&len)) == NULL) {
            cli_warn("call: cannot read the data from stdin");
            return CLI_JSHOST;
        }
        json = input;
    } else {
        len = strlen(json);
    }
    if (jshost_json_pack(json, len, &data, err, sizeof(err)) < 0) {
        free(input);
        return cli_usage("call", "bad JSON data: %s", err);
    }
    free(input);
    if ((c = cli_connect(1)) == NULL) {
        jshost_value_free(&data);
        return CLI_JSHOST;
    }
    cli_interruptible(c);
    snprintf(what, sizeof(what), "attach %s", config);
    if (cli_attach(c, config, &host, NULL) < 0) {
        r = cli_fail(c, what, 0);
        goto out;
    }
    if (jshost_call(c, host, function, data.data, data.len, timeout_ms,
                    &result) < 0) {
        snprintf(what, sizeof(what), "call %s in %s", function, config);
        r = cli_fail(c, what, 1);
        goto out;
    }
    r = cli_print_value(&result, 0);
out:
    jshost_value_free(&data);
    jshost_value_free(&result);
    free(host);
    jshost_free(c);
    return r;
}

/* The script's console output, as Node prints it, on stderr: stdout is the
 * result's. */
static void
eval_console(void *user, uint64_t ctx, const char *level, const char *text,
             size_t len)
{
    (void)user;
    (void)ctx;
    (void)level;
    fwrite(text, 1, len, stderr);
    fputc('\n', stderr);
    fflush(stderr);
}

int
cmd_eval(int argc, char **argv)
{
    char *pos[1], *config = NULL, *host = NULL, *input = NULL, what[600];
    const char *script;
    jshost_value result = {0};
    uint64_t ctx = 0;
    int npos, timeout_ms = 0, r;
    size_t len;
    jshost *c;

    if ((r = parse("eval", argc, argv, pos, 1, &npos, &timeout_ms, &config)) !=
        0)
        return r;
    if (npos != 1)
        return cli_usage("eval", "eval needs a SCRIPT (or - for stdin)");
    script = pos[0];
    if (strcmp(script, "-") == 0) {
        if ((input = cli_read_stdin(&len)) == NULL) {
            cli_warn("eval: cannot read the script from stdin");
            return CLI_JSHOST;
        }
        script = input;
    }
    if ((c = cli_connect(1)) == NULL) {
        free(input);
        return CLI_JSHOST;
    }
    cli_interruptible(c);
    jshost_set_console_handler(c, eval_console, NULL);
    if (config != NULL) {
        snprintf(what, sizeof(what), "attach %s", config);
        if (cli_attach(c, config, &host, NULL) < 0) {
            r = cli_fail(c, what, 0);
            goto out;
        }
    }
    /* on the host's worker, or (host NULL) on a private VM of ours */
    if (jshost_context_create(c, host, NULL, 0, 0, &ctx) < 0) {
        r = cli_fail(c, config ? "create a context" : "start a private VM", 0);
        goto out;
    }
    if (jshost_context_eval(c, ctx, script, "<eval>", timeout_ms, &result) <
        0) {
        r = cli_fail(c, "eval", 1);
        goto out;
    }
    r = cli_print_value(&result, 0);
    jshost_context_destroy(c, ctx);
out:
    jshost_value_free(&result);
    free(host);
    free(input);
    jshost_free(c);
    return r;
}
