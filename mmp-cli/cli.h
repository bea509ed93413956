/* cli.h: mmp-cli, the admin shell: shared types of its modules.
 *
 *   main.c   options, the interactive prompt (libedit), -c, exit status
 *   cmds.c   the command table: MMP syntax -> control requests, validation,
 *            help, printing results as text
 *   words.c  splitting a command line into words (quotes, escapes)
 *   conn.c   one request/response over the daemon's control socket
 *   input.c  reading a secret without echo, confirmations
 *   users.c  `xmpp user ...`: name checks, password read or generated
 *   print.c  text tables and key/value output */
#ifndef MMP_CLI_H
#define MMP_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#define CLI_DEFAULT_SOCKET "/var/lib/xmppd/control.sock"
#define CLI_MAX_WORDS 64
#define CLI_WHY_LEN 256      /* the why buffer of prepare functions */
#define CLI_GENERATED_LEN 20 /* characters of a generated password */

/* Exit statuses (documented in docs/admin.md). */
enum cli_status {
    CLI_OK = 0,
    CLI_FAILED = 1,      /* the daemon refused or the command failed */
    CLI_USAGE = 2,       /* bad command or arguments: nothing was sent */
    CLI_UNREACHABLE = 3, /* the control socket could not be reached */
};

struct cli {
    const char *socket_path; /* borrowed */
    bool json;               /* print JSON instead of text */
    bool interactive;        /* at the prompt (a tty) */
    long long next_id;       /* request ids */
};

/* ---- words.c ----------------------------------------------------------- */

/* cli_split splits line into at most max words (each a malloc'ed string in
 * words[], owned by the caller: cli_words_free).  Single and double quotes
 * group, a backslash escapes the next character.  Returns the number of
 * words, or -1 with *why set to a static message (unterminated quote, too
 * many words, no memory). */
int cli_split(const char *line, char **words, int max, const char **why);
void cli_words_free(char **words, int n);

/* ---- conn.c ------------------------------------------------------------ */

/* cli_call sends one request (cmd, args taken) to the daemon and waits for
 * its response.  Returns CLI_OK with *result (owned) on success; CLI_FAILED
 * with code/message (buffers of 32 and 256 bytes) when the daemon answered
 * with an error; CLI_UNREACHABLE with message when the socket could not be
 * reached or the answer could not be read. */
int cli_call(struct cli *cli, const char *cmd, json_t *args, json_t **result, char *code,
             char *message);

/* ---- intr.c ------------------------------------------------------------ */

/* Set when Ctrl-C was pressed at the interactive shell; the prompt loop
 * clears it before each line. */
extern volatile sig_atomic_t cli_interrupted;

/* cli_intr_setup makes Ctrl-C abandon the current line or command instead
 * of ending the shell: SIGINT is blocked except inside cli_wait, so it is
 * never lost between two waits.  Called once by the interactive shell,
 * before the line editor starts. */
void cli_intr_setup(void);

/* cli_wait waits until fd is readable or timeout_ms (-1: no limit) passes.
 * 1 readable, 0 timed out, -1 Ctrl-C (cli_interrupted set), -2 poll failed
 * (errno).  Without cli_intr_setup it is a plain poll. */
int cli_wait(int fd, int timeout_ms);

/* cli_getc is the line editor's read of one character (rl_getc_function):
 * EOF on Ctrl-C, which makes readline() return NULL. */
int cli_getc(FILE *f);

/* ---- input.c ----------------------------------------------------------- */

/* cli_read_secret reads a secret: on a terminal it prompts on the terminal
 * without echo (twice, and the two must match); otherwise it reads one line
 * from stdin.  The trailing newline is removed.  0, or -1 with why (static).
 * buf holds len bytes; the caller wipes it after use. */
int cli_read_secret(const char *prompt, char *buf, size_t len, const char **why);

/* cli_confirm asks question on the terminal and returns true when the
 * answer is "yes".  False when stdin is not a terminal. */
bool cli_confirm(const char *question);

/* ---- print.c ----------------------------------------------------------- */

/* cli_print_kv prints an object as "Key: value" lines (nested objects
 * indented, arrays of scalars joined with ", ", arrays of objects as
 * tables). */
void cli_print_kv(json_t *obj, int indent);

/* cli_print_table prints arr (objects) as a table with the given columns
 * (NULL-terminated list of keys) and headers (same length).  Missing values
 * print as "-".  Prints "(none)" for an empty array. */
void cli_print_table(json_t *arr, const char *const *keys, const char *const *headers);

/* cli_value_text formats a scalar (or array of scalars) into buf. */
void cli_value_text(json_t *v, char *buf, size_t len);

/* ---- users.c ----------------------------------------------------------- */

/* Prepare functions of the command table (cmds.c): check argv, fill args;
 * 0, or -1 with why (CLI_WHY_LEN bytes) filled. */
/* <name>: a user name as cl_user_explain accepts it. */
int cli_prep_user_name(struct cli *cli, int argc, char **argv, json_t *args, char *why);
/* <name> [--generate]: the name and a password: --generate makes one
 * (CLI_GENERATED_LEN characters, libsodium), otherwise cli_read_secret
 * reads it (twice without echo on a terminal, one line from a pipe). */
int cli_prep_user_password(struct cli *cli, int argc, char **argv, json_t *args,
                           char *why);
/* [<n>]: an iteration count, CL_ITER_MIN..CL_ITER_MAX. */
int cli_prep_user_iterations(struct cli *cli, int argc, char **argv, json_t *args,
                             char *why);

/* cli_user_finish runs after every command's call (a no-op unless
 * cli_prep_user_password generated a password): with the daemon's result
 * (borrowed; NULL when the call failed) it adds the generated password to
 * it, to be printed once; then it wipes the shell's copy. */
void cli_user_finish(json_t *result);

/* Printers of results as text. */
void cli_print_user_added(json_t *r);
void cli_print_user_passwd(json_t *r);
void cli_print_user_deleted(json_t *r);
void cli_print_users(json_t *r);
void cli_print_user_iterations(json_t *r);

/* ---- cmds.c ------------------------------------------------------------ */

/* cli_run runs one command line: splits it, finds the command, validates
 * its arguments, calls the daemon and prints the result (text or JSON).
 * Errors are one line on stderr.  Returns a cli_status.  An empty line is
 * CLI_OK.  "exit" and "quit" set *quit (interactive use). */
int cli_run(struct cli *cli, const char *line, bool *quit);

/* cli_complete returns the command words that can follow the complete words
 * words[0..n) and start with prefix, as a malloc'ed NULL-terminated array
 * of malloc'ed strings (owned), or NULL when there are none. */
char **cli_complete(char **words, int n, const char *prefix);

#endif
