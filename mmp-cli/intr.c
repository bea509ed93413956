/* intr.c: Ctrl-C at the interactive shell.
 *
 * The terminal, not the shell, turns Ctrl-C into SIGINT, so the signal can
 * arrive at any moment: while the line editor waits in read(), but also
 * while it echoes the characters typed just before it.  A handler that only
 * sets a flag loses the second case: the editor goes back to read() and
 * waits for a line that never comes (seen in CI).  So SIGINT is blocked
 * while the shell works and unblocked only inside ppoll(2), atomically with
 * the wait (the pselect pattern): a Ctrl-C that came while the shell was busy
 * is taken at the next wait, never lost.  Every wait of the interactive
 * shell goes through cli_wait: the line editor (cli_getc), the answer of the
 * daemon (conn.c) and the secret prompts (input.c).
 *
 * libedit's own signal handling is off (rl_catch_signals = 0): it re-raises
 * SIGINT with kill(0, ...) and swaps handlers, which the blocked mask would
 * turn into a second, pending Ctrl-C.  Its one other job, following a
 * resized window, is done here (SIGWINCH, same pattern). */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include <editline/readline.h>

#include "cli.h"

volatile sig_atomic_t cli_interrupted;
static volatile sig_atomic_t resized;
static sigset_t wait_mask; /* the mask inside ppoll: SIGINT, SIGWINCH open */
static bool set_up;

static void on_sigint(int sig)
{
    (void)sig;
    cli_interrupted = 1;
}

static void on_sigwinch(int sig)
{
    (void)sig;
    resized = 1;
}

void cli_intr_setup(void)
{
    struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_sigwinch;
    sigaction(SIGWINCH, &sa, NULL);

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGWINCH);
    sigprocmask(SIG_BLOCK, &block, &wait_mask);
    sigdelset(&wait_mask, SIGINT);
    sigdelset(&wait_mask, SIGWINCH);
    set_up = true;

    rl_catch_signals = 0;
    rl_getc_function = cli_getc;
}

int cli_wait(int fd, int timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    for (;;) {
        if (cli_interrupted)
            return -1;
        struct timespec ts = {.tv_sec = timeout_ms / 1000,
                              .tv_nsec = (long)(timeout_ms % 1000) * 1000000};
        /* Outside the interactive shell nothing is blocked: plain poll. */
        int r = ppoll(&pfd, 1, timeout_ms < 0 ? NULL : &ts, set_up ? &wait_mask : NULL);
        if (r > 0)
            return 1;
        if (r == 0)
            return 0;
        if (errno != EINTR)
            return -2;
        if (resized) {
            resized = 0;
            rl_resize_terminal();
        }
        /* The loop's top answers a Ctrl-C; any other signal waits on
         * (a resize restarts the whole timeout, which only lengthens a
         * wait of the daemon's answer by the time of one resize). */
    }
}

int cli_getc(FILE *f)
{
    unsigned char c;
    for (;;) {
        if (cli_wait(fileno(f), -1) != 1)
            return EOF; /* readline() then returns NULL; the loop sees why */
        ssize_t n = read(fileno(f), &c, 1);
        if (n == 1)
            return c;
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return EOF;
    }
}
