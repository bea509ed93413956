/* main.c: mmp-cli's entry: options, the interactive prompt, -c.
 *
 *   mmp-cli [--socket PATH] [--json] [-c 'command' | command words...]
 *
 * With -c (as sshd runs a login shell for `ssh admin@node 'xmpp status'`)
 * or command words it runs one command and exits with its status.  Without,
 * on a terminal it shows a `<hostname>> ` prompt with line editing, history
 * and completion of command words (libedit); with stdin not a terminal it
 * runs one command per line and exits with the status of the last failure.
 * The socket is --socket, else $XMPPD_SOCKET, else the default. */
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <editline/readline.h>
#include <sodium.h>
#include <sys/stat.h>

#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mmp-cli [--socket PATH] [--json] [-c 'command' | command...]\n"
            "       mmp-cli --version\n"
            "  --socket PATH  the daemon's control socket (default $XMPPD_SOCKET, else "
            "%s)\n"
            "  --json         print results as JSON\n"
            "  --version      print mmp-cli's version and exit\n"
            "  -c 'command'   run one command and exit (as an SSH login shell does)\n"
            "Without a command: an interactive prompt; type help there.\n",
            CLI_DEFAULT_SOCKET);
}

/* Secrets pass through jansson (requests and responses): every block it
 * frees is wiped first, so no secret outlives its use in this process. */
static void *wiping_malloc(size_t n)
{
    return malloc(n);
}

static void wiping_free(void *p)
{
    if (p != NULL) {
        sodium_memzero(p, malloc_usable_size(p));
        free(p);
    }
}

/* ---- completion (libedit's readline interface) -------------------------- */

static char **cands;
static size_t cand_next;

static char *cand_gen(const char *text, int state)
{
    (void)text;
    if (cands == NULL || cands[cand_next] == NULL)
        return NULL;
    char *c = cands[cand_next];
    cands[cand_next++] = NULL; /* ownership passes to libedit */
    return c;
}

static char **complete(const char *text, int start, int end)
{
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    if (cands != NULL) {
        for (size_t i = 0; cands[i] != NULL || i < cand_next; i++)
            free(cands[i]);
        free(cands);
        cands = NULL;
    }
    char *head = strndup(rl_line_buffer, (size_t)start);
    char *w[CLI_MAX_WORDS];
    const char *why;
    int n = head != NULL ? cli_split(head, w, CLI_MAX_WORDS, &why) : -1;
    free(head);
    if (n < 0)
        return NULL;
    int skip = n > 0 && strcmp(w[0], "--json") == 0 ? 1 : 0;
    cands = cli_complete(w + skip, n - skip, text);
    cli_words_free(w, n);
    cand_next = 0;
    if (cands == NULL)
        return NULL;
    return rl_completion_matches(text, cand_gen);
}

/* ---- the loops ------------------------------------------------------------ */

/* At the prompt, Ctrl-C abandons the line (or the command being waited
 * for) instead of ending the shell, which over SSH would log the admin out
 * (intr.c). */
static int interactive(struct cli *cli)
{
    cli_intr_setup();

    char host[HOST_NAME_MAX + 1] = "xmppd";
    gethostname(host, sizeof host);
    host[sizeof host - 1] = '\0';
    char prompt[HOST_NAME_MAX + 4];
    snprintf(prompt, sizeof prompt, "%s> ", host);

    char hist[PATH_MAX] = "";
    const char *home = getenv("HOME");
    if (home != NULL && home[0] != '\0')
        snprintf(hist, sizeof hist, "%s/.mmp-cli_history", home);

    rl_readline_name = "mmp-cli";
    rl_attempted_completion_function = complete;
    using_history();
    stifle_history(1000);
    if (hist[0])
        read_history(hist);

    cli->interactive = true;
    for (;;) {
        cli_interrupted = 0;
        char *line = readline(prompt);
        if (line == NULL || cli_interrupted) {
            putchar('\n');
            if (cli_interrupted) {
                free(line);
                continue;
            }
            break;
        }
        bool quit = false;
        if (line[strspn(line, " \t")] != '\0')
            add_history(line);
        cli_run(cli, line, &quit);
        free(line);
        fflush(stdout);
        if (quit)
            break;
    }
    if (hist[0]) {
        /* History may name call bridges and hosts: keep it private. */
        mode_t old = umask(077);
        write_history(hist);
        umask(old);
        chmod(hist, 0600);
    }
    return CLI_OK;
}

static int batch(struct cli *cli)
{
    char line[8192];
    int worst = CLI_OK;
    while (fgets(line, sizeof line, stdin) != NULL) {
        bool quit = false;
        int rc = cli_run(cli, line, &quit);
        if (rc != CLI_OK)
            worst = rc;
        fflush(stdout);
        if (quit)
            break;
    }
    return worst;
}

int main(int argc, char **argv)
{
    struct cli cli = {.socket_path = CLI_DEFAULT_SOCKET, .next_id = 1};
    if (sodium_init() < 0) {
        fprintf(stderr, "mmp-cli: libsodium failed to initialise\n");
        return CLI_FAILED;
    }
    json_set_alloc_funcs(wiping_malloc, wiping_free);
    const char *env = getenv("XMPPD_SOCKET");
    if (env != NULL && env[0] != '\0')
        cli.socket_path = env;
    const char *command = NULL;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--socket") == 0 || strcmp(a, "-s") == 0) {
            if (++i == argc) {
                fprintf(stderr, "mmp-cli: --socket needs a path\n");
                return CLI_USAGE;
            }
            cli.socket_path = argv[i];
        } else if (strncmp(a, "--socket=", 9) == 0) {
            cli.socket_path = a + 9;
        } else if (strcmp(a, "--json") == 0) {
            cli.json = true;
        } else if (strcmp(a, "-c") == 0) {
            if (++i == argc) {
                fprintf(stderr, "mmp-cli: -c needs a command, e.g. -c 'xmpp status'\n");
                return CLI_USAGE;
            }
            command = argv[i];
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("mmp-cli %s\n", XMPPD_VERSION);
            return CLI_OK;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(a, "--") == 0) {
            i++;
            break;
        } else if (a[0] == '-') {
            fprintf(stderr, "mmp-cli: unknown option %s (see mmp-cli --help)\n", a);
            return CLI_USAGE;
        } else {
            break;
        }
    }
    if (command != NULL && i < argc) {
        fprintf(stderr,
                "mmp-cli: give the command either with -c or as words, not both\n");
        return CLI_USAGE;
    }

    bool quit = false;
    if (command != NULL)
        return cli_run(&cli, command, &quit);
    if (i < argc) {
        /* Words after the options: quote each so spaces inside survive. */
        size_t len = 1;
        for (int k = i; k < argc; k++)
            len += 2 * strlen(argv[k]) + 3;
        char *line = malloc(len), *p = line;
        if (line == NULL)
            return CLI_FAILED;
        for (int k = i; k < argc; k++) {
            *p++ = '\'';
            for (const char *s = argv[k]; *s; s++) {
                if (*s == '\'' || *s == '\\')
                    *p++ = '\\';
                *p++ = *s;
            }
            *p++ = '\'';
            *p++ = ' ';
        }
        *p = '\0';
        int rc = cli_run(&cli, line, &quit);
        free(line);
        return rc;
    }
    if (isatty(STDIN_FILENO))
        return interactive(&cli);
    return batch(&cli);
}
