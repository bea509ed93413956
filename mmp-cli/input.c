/* input.c: what mmp-cli reads besides command lines: secrets (without echo
 * on a terminal, RFC-free common sense: never on the command line, never in
 * history) and yes/no confirmations. */
#include <errno.h>
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

/* read_tty_line reads one line from the terminal on fd 0 a byte at a time
 * (stdio's buffer would take bytes the line editor reads next), through
 * cli_wait so that Ctrl-C ends it.  0, -1 at end of input or when the line
 * does not fit, -2 on Ctrl-C. */
static int read_tty_line(char *buf, size_t len)
{
    size_t n = 0;
    for (;;) {
        int w = cli_wait(STDIN_FILENO, -1);
        if (w == -1)
            return -2;
        if (w != 1)
            return -1;
        char c;
        ssize_t r = read(STDIN_FILENO, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r != 1)
            return -1;
        if (c == '\n' || c == '\r')
            break;
        if (n + 1 >= len)
            return -1;
        buf[n++] = c;
    }
    buf[n] = '\0';
    return 0;
}

/* prompt_noecho prints prompt to the terminal and reads a line with echo
 * off, restoring the terminal afterwards.  -2 on Ctrl-C. */
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
    int rc = read_tty_line(buf, len);
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
        int rc = prompt_noecho(prompt, buf, len);
        if (rc == 0)
            rc = prompt_noecho("Again: ", again, sizeof again);
        if (rc < 0) {
            sodium_memzero(again, sizeof again);
            *why = rc == -2 ? "interrupted; nothing was changed"
                            : "could not read the secret from the terminal";
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
    if (read_tty_line(answer, sizeof answer) < 0)
        return false;
    return strcmp(answer, "yes") == 0;
}
