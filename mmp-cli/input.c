/* input.c: what mmp-cli reads besides command lines: secrets (without echo
 * on a terminal, RFC-free common sense: never on the command line, never in
 * history) and yes/no confirmations. */
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"

/* read_line reads one line from f into buf, without its newline.  0, or -1
 * at end of input or when the line does not fit. */
static int read_line(FILE *f, char *buf, size_t len)
{
    if (fgets(buf, (int)len, f) == NULL)
        return -1;
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    else if (!feof(f))
        return -1; /* longer than the buffer */
    if (n > 0 && buf[n - 1] == '\r')
        buf[--n] = '\0';
    return 0;
}

/* prompt_noecho prints prompt to the terminal and reads a line with echo
 * off, restoring the terminal afterwards. */
static int prompt_noecho(const char *prompt, char *buf, size_t len)
{
    struct termios old, quiet;
    if (tcgetattr(STDIN_FILENO, &old) != 0)
        return -1;
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    /* Echo goes off before the prompt shows, so nothing typed after it is
     * ever echoed; type-ahead is kept (TCSANOW, not TCSAFLUSH). */
    if (tcsetattr(STDIN_FILENO, TCSANOW, &quiet) != 0)
        return -1;
    fputs(prompt, stderr);
    fflush(stderr);
    int rc = read_line(stdin, buf, len);
    tcsetattr(STDIN_FILENO, TCSANOW, &old);
    return rc;
}

int cli_read_secret(const char *prompt, char *buf, size_t len, const char **why)
{
    if (!isatty(STDIN_FILENO)) {
        if (read_line(stdin, buf, len) < 0) {
            *why = "no secret on standard input (give it as one line)";
            return -1;
        }
    } else {
        char again[512];
        if (prompt_noecho(prompt, buf, len) < 0) {
            *why = "could not read the secret from the terminal";
            return -1;
        }
        if (prompt_noecho("Again: ", again, sizeof again) < 0) {
            sodium_memzero(again, sizeof again);
            *why = "could not read the secret from the terminal";
            return -1;
        }
        int same = strcmp(buf, again) == 0;
        sodium_memzero(again, sizeof again);
        if (!same) {
            *why = "the two secrets differ; nothing was changed, try again";
            return -1;
        }
    }
    if (buf[0] == '\0') {
        *why = "the secret is empty";
        return -1;
    }
    return 0;
}

bool cli_confirm(const char *question)
{
    if (!isatty(STDIN_FILENO))
        return false;
    char answer[16];
    fputs(question, stderr);
    fflush(stderr);
    if (read_line(stdin, answer, sizeof answer) < 0)
        return false;
    return strcmp(answer, "yes") == 0;
}
