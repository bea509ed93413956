/* users.c: `xmpp user ...` in the shell: the name checked before anything
 * is asked, the password read (never from the command line) or generated,
 * and the answers printed.  The daemon prepares the name and makes the
 * credentials (xmppd/io/cmds_user.c); the shell only carries the password
 * over the control socket and wipes its copies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "repl.h"
#include "cli.h"

#define PASSWORD_BUF 512 /* cli_read_secret's limit (its second read) */

/* A generated password, kept (in sodium_malloc memory) from the prepare
 * step until cli_user_finish prints it once or forgets it. */
static char *generated;

static void forget_generated(void)
{
    sodium_free(generated); /* wipes; NULL is fine */
    generated = NULL;
}

/* generate fills out (len + 1 bytes) with len characters drawn uniformly
 * from an alphabet without look-alikes (0 O o 1 l I): 56 symbols, so 20
 * characters carry 116 bits. */
static void generate(char *out, size_t len)
{
    static const char alphabet[] =
        "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[randombytes_uniform((uint32_t)(sizeof alphabet - 1))];
    out[len] = '\0';
}

int cli_prep_user_name(struct cli *cli, int argc, char **argv, json_t *args, char *why)
{
    /* The syntax rule the daemon applies too (xmppd/core/repl.c); the daemon
     * then prepares the name (RFC 7622 §3.3.1). */
    if (!cl_user_explain(argv[0], why, CLI_WHY_LEN))
        return -1;
    json_object_set_new(args, "name", json_string(argv[0]));
    return 0;
}

int cli_prep_user_password(struct cli *cli, int argc, char **argv, json_t *args,
                           char *why)
{
    const char *name = NULL;
    bool gen = false;
    char *pw;
    const char *w = NULL;
    int rc = 0;

    forget_generated();
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--generate") == 0) {
            gen = true;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            snprintf(why, CLI_WHY_LEN,
                     "unknown option \"%.100s\"; the option is --generate", argv[i]);
            return -1;
        } else if (name != NULL) {
            snprintf(why, CLI_WHY_LEN,
                     "give one user name (the password is asked for, never given on "
                     "the command line)");
            return -1;
        } else {
            name = argv[i];
        }
    }
    if (name == NULL) {
        snprintf(why, CLI_WHY_LEN, "give the user name");
        return -1;
    }
    if (cli_prep_user_name(cli, 1, (char **)&name, args, why) < 0)
        return -1;
    pw = sodium_malloc(PASSWORD_BUF);
    if (pw == NULL) {
        snprintf(why, CLI_WHY_LEN, "out of memory");
        return -1;
    }
    if (gen) {
        generate(pw, CLI_GENERATED_LEN);
    } else if (cli_read_secret("Password: ", pw, PASSWORD_BUF, &w) < 0) {
        snprintf(why, CLI_WHY_LEN, "%s", w);
        rc = -1;
    }
    if (rc == 0)
        json_object_set_new(args, "password", json_string(pw));
    if (rc == 0 && gen)
        generated = pw; /* shown once the daemon has taken it */
    else
        sodium_free(pw);
    return rc;
}

int cli_prep_user_iterations(struct cli *cli, int argc, char **argv, json_t *args,
                             char *why)
{
    char *end;
    unsigned long v;

    if (argc == 0)
        return 0;
    v = argv[0][0] >= '0' && argv[0][0] <= '9' ? strtoul(argv[0], &end, 10) : 0;
    if (v == 0 || *end != '\0' || v < CL_ITER_MIN || v > CL_ITER_MAX) {
        snprintf(why, CLI_WHY_LEN,
                 "the iteration count \"%.40s\" must be a number from %d (RFC 7677 §4) "
                 "to %d",
                 argv[0], CL_ITER_MIN, CL_ITER_MAX);
        return -1;
    }
    json_object_set_new(args, "iterations", json_integer((json_int_t)v));
    return 0;
}

void cli_user_finish(json_t *result)
{
    /* The generated password goes into the answer this shell prints (text
     * or --json), once; the daemon never sends it back. */
    if (result != NULL && generated != NULL)
        json_object_set_new(result, "password", json_string(generated));
    forget_generated();
}

static const char *str(json_t *r, const char *k)
{
    const char *s = json_string_value(json_object_get(r, k));
    return s != NULL ? s : "?";
}

static void print_password(json_t *r)
{
    const char *pw = json_string_value(json_object_get(r, "password"));

    if (pw != NULL)
        printf("Password: %s\n(shown once: give it to the user now)\n", pw);
}

void cli_print_user_added(json_t *r)
{
    printf("User %s added (%s, created %s).\n", str(r, "name"), str(r, "jid"),
           str(r, "created"));
    print_password(r);
}

void cli_print_user_passwd(json_t *r)
{
    printf("Password of %s changed.\n", str(r, "name"));
    print_password(r);
}

void cli_print_user_deleted(json_t *r)
{
    printf("User %s deleted.\n", str(r, "name"));
}

/* sessions_text writes u's sessions as "res (node, priority p)" or
 * "res (node, unavailable)", comma separated, into u's "sessions_text". */
static void sessions_text(json_t *u)
{
    json_t *l = json_object_get(u, "sessions"), *e;
    char text[1024] = "";
    size_t i, n = 0;

    json_array_foreach(l, i, e)
    {
        const char *node = json_string_value(json_object_get(e, "node"));
        const char *ws =
            json_is_true(json_object_get(e, "available")) ? "" : "unavailable";
        int k;
        if (node == NULL)
            node = json_string_value(json_object_get(e, "node_id"));
        if (*ws != '\0')
            k = snprintf(text + n, sizeof text - n, "%s%s (%s, %s%s)", i ? ", " : "",
                         str(e, "resource"), node ? node : "?", ws,
                         strcmp(str(e, "transport"), "websocket") == 0 ? ", websocket"
                                                                       : "");
        else
            k = snprintf(text + n, sizeof text - n, "%s%s (%s, priority %lld%s)",
                         i ? ", " : "", str(e, "resource"), node ? node : "?",
                         (long long)json_integer_value(json_object_get(e, "priority")),
                         strcmp(str(e, "transport"), "websocket") == 0 ? ", websocket"
                                                                       : "");
        if (k < 0 || (size_t)k >= sizeof text - n)
            break;
        n += (size_t)k;
    }
    json_object_set_new(u, "sessions_text", json_string(n > 0 ? text : "-"));
}

void cli_print_users(json_t *r)
{
    static const char *const keys[] = {"name",   "jid",           "created",
                                       "online", "sessions_text", NULL};
    static const char *const heads[] = {"Name",   "JID",      "Created",
                                        "Online", "Sessions", NULL};
    json_t *users = json_object_get(r, "users"), *u;
    size_t i;

    /* --json prints the daemon's answer as it is: this text column is
     * only for the table */
    json_array_foreach(users, i, u) sessions_text(u);
    cli_print_table(users, keys, heads);
}

void cli_print_user_iterations(json_t *r)
{
    json_t *def = json_object_get(r, "default");

    printf("New SCRAM credentials use %lld iterations",
           (long long)json_integer_value(json_object_get(r, "iterations")));
    if (json_is_integer(def))
        printf(" (default %lld).\n", (long long)json_integer_value(def));
    else
        printf(" from now on; existing accounts keep theirs until xmpp user passwd.\n");
}
