/* ctl_testd: a tiny stand-in daemon for testing mmp-cli: the real control
 * socket (xmppd/io/ctl_server.c), the real pki.* handlers (xmppd/io/pki.c)
 * and in-memory fakes of the xmpp.* commands with the result shapes of
 * docs/control-protocol.md.  Not the daemon: nothing here is persisted.
 *
 *   ctl_testd --socket PATH --pki DIR
 *
 * Prints "ready" on stdout once it listens; exits on SIGTERM or SIGINT. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "ctl_server.h"
#include "err.h"
#include "pki.h"

#define MAX_CB 64

struct state {
    const char *pki_dir;
    char domain[256];
    json_t *listen; /* array of strings */
    char key[256], cert[256], bundle[256];
    bool enabled;
    uint64_t started_ms;
    uv_loop_t *loop;
    struct {
        char name[65];
        char secret[128];
    } cb[MAX_CB];
    int ncb;
};

static struct state st;

/* ---- xmpp.* fakes -------------------------------------------------------- */

static int status(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    json_t *cert = json_null();
    if (st.cert[0]) {
        char path[512];
        struct pki_info info;
        if (pki_path(st.pki_dir, st.cert, path, sizeof path) == 0 &&
            pki_inspect(path, &info, NULL, 0) == 0) {
            json_t *j = pki_info_json(&info);
            cert = json_pack("{s:s, s:O, s:O}", "file", st.cert, "subject",
                             json_object_get(j, "subject"), "not_after",
                             json_object_get(j, "not_after"));
            json_decref(j);
        }
    }
    *result =
        json_pack("{s:b, s:s?, s:O, s:o, s:{s:i, s:i}, s:I}", "enabled", st.enabled,
                  "domain", st.domain[0] ? st.domain : NULL, "listen", st.listen,
                  "certificate", cert, "sessions", "components", 0, "clients", 0,
                  "uptime_s", (json_int_t)((uv_now(st.loop) - st.started_ms) / 1000));
    return 0;
}

static int domain_set(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    const char *d = json_string_value(json_object_get(args, "domain"));
    if (d == NULL || strlen(d) >= sizeof st.domain)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "\"domain\" is required");
    snprintf(st.domain, sizeof st.domain, "%s", d);
    return 0;
}

static int listen_set(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    json_t *a = json_object_get(args, "addresses");
    if (!json_is_array(a) || json_array_size(a) == 0)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "\"addresses\" must be a list");
    json_decref(st.listen);
    st.listen = json_deep_copy(a);
    return 0;
}

static int certs_set(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    const char *k = json_string_value(json_object_get(args, "key"));
    const char *c = json_string_value(json_object_get(args, "cert"));
    const char *b = json_string_value(json_object_get(args, "bundle"));
    char kp[512], cp[512], bp[512], why[256];
    if (k == NULL || c == NULL || pki_path(st.pki_dir, k, kp, sizeof kp) < 0 ||
        pki_path(st.pki_dir, c, cp, sizeof cp) < 0 ||
        (b != NULL && pki_path(st.pki_dir, b, bp, sizeof bp) < 0))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "key and cert must be file names in the pki directory");
    int rc = pki_check_certs(kp, cp, b != NULL ? bp : NULL, 0, why, sizeof why);
    if (rc < 0) {
        ctl_error_set(err, ctl_error_code_for(rc), "%s", why);
        return rc;
    }
    snprintf(st.key, sizeof st.key, "%s", k);
    snprintf(st.cert, sizeof st.cert, "%s", c);
    snprintf(st.bundle, sizeof st.bundle, "%s", b != NULL ? b : "");
    return 0;
}

static int enable(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    if (st.domain[0] == '\0')
        return ctl_error_set(err, "state",
                             "no XMPP domain is set; set one with: xmpp domain "
                             "<domain>");
    if (st.cert[0] == '\0')
        return ctl_error_set(err, "state",
                             "no certificate is set; set one with: xmpp certs "
                             "<key> <cert> [<bundle>]");
    st.enabled = true;
    return 0;
}

static int disable(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    st.enabled = false;
    return 0;
}

static int reset(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    st.enabled = false;
    st.domain[0] = st.key[0] = st.cert[0] = st.bundle[0] = '\0';
    json_array_clear(st.listen);
    sodium_memzero(st.cb, sizeof st.cb);
    st.ncb = 0;
    return 0;
}

static int find_cb(const char *name)
{
    for (int i = 0; i < st.ncb; i++)
        if (strcmp(st.cb[i].name, name) == 0)
            return i;
    return -1;
}

/* new_secret: 160 random bits as 32 base32 letters in groups of four,
 * easy to read out and type. */
static void new_secret(char *out)
{
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    unsigned char r[20];
    randombytes_buf(r, sizeof r);
    int k = 0;
    for (int i = 0; i < 32; i++) {
        int bit = i * 5;
        int v = ((r[bit / 8] << 8 | (bit / 8 + 1 < 20 ? r[bit / 8 + 1] : 0)) >>
                 (11 - bit % 8)) &
                31;
        if (i > 0 && i % 4 == 0)
            out[k++] = '-';
        out[k++] = b32[v];
    }
    out[k] = '\0';
    sodium_memzero(r, sizeof r);
}

static int cb_add(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    const char *name = json_string_value(json_object_get(args, "name"));
    const char *secret = json_string_value(json_object_get(args, "secret"));
    if (name == NULL || strlen(name) > 64)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "\"name\" is required");
    if (find_cb(name) >= 0)
        return ctl_error_set(err, "exists",
                             "call bridge %s already exists; delete it first with: xmpp "
                             "callbridge del %s",
                             name, name);
    if (st.ncb == MAX_CB)
        return ctl_error_set(err, "limit", "too many call bridges");
    if (secret != NULL && (secret[0] == '\0' || strlen(secret) >= sizeof st.cb[0].secret))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "the secret must be 1-127 bytes");
    snprintf(st.cb[st.ncb].name, sizeof st.cb[0].name, "%s", name);
    if (secret != NULL)
        snprintf(st.cb[st.ncb].secret, sizeof st.cb[0].secret, "%s", secret);
    else
        new_secret(st.cb[st.ncb].secret);
    /* The secret goes back only when it was generated here. */
    *result = json_pack("{s:s, s:s?}", "name", name, "secret",
                        secret == NULL ? st.cb[st.ncb].secret : NULL);
    st.ncb++;
    return 0;
}

static int cb_del(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    const char *name = json_string_value(json_object_get(args, "name"));
    int i = name != NULL ? find_cb(name) : -1;
    if (i < 0)
        return ctl_error_set(err, "not-found",
                             "no call bridge \"%s\"; see xmpp callbridge list",
                             name != NULL ? name : "");
    st.cb[i] = st.cb[--st.ncb];
    sodium_memzero(&st.cb[st.ncb], sizeof st.cb[0]);
    return 0;
}

static int cb_list(void *ud, json_t *args, json_t **result, struct ctl_error *err)
{
    json_t *a = json_array();
    for (int i = 0; i < st.ncb; i++) {
        char dom[400];
        snprintf(dom, sizeof dom, "%s.%s", st.cb[i].name, st.domain[0] ? st.domain : "-");
        json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:b}", "name", st.cb[i].name,
                                           "domain", dom, "secret", st.cb[i].secret,
                                           "connected", 0));
    }
    *result = json_pack("{s:o}", "callbridges", a);
    return 0;
}

/* ---- pki.*: the real handlers ------------------------------------------------ */

static int p_list(void *ud, json_t *a, json_t **r, struct ctl_error *e)
{
    return pki_cmd_list(st.pki_dir, a, r, e);
}
static int p_inspect(void *ud, json_t *a, json_t **r, struct ctl_error *e)
{
    return pki_cmd_inspect(st.pki_dir, a, r, e);
}
static int p_csr(void *ud, json_t *a, json_t **r, struct ctl_error *e)
{
    return pki_cmd_csr(st.pki_dir, a, r, e);
}
static int p_verify(void *ud, json_t *a, json_t **r, struct ctl_error *e)
{
    return pki_cmd_verify(st.pki_dir, a, r, e);
}

static const struct ctl_command commands[] = {
    {"xmpp.status", status},
    {"xmpp.domain.set", domain_set},
    {"xmpp.listen.set", listen_set},
    {"xmpp.certs.set", certs_set},
    {"xmpp.enable", enable},
    {"xmpp.disable", disable},
    {"xmpp.reset", reset},
    {"xmpp.callbridge.add", cb_add},
    {"xmpp.callbridge.del", cb_del},
    {"xmpp.callbridge.list", cb_list},
    {"pki.list", p_list},
    {"pki.inspect", p_inspect},
    {"pki.csr", p_csr},
    {"pki.verify", p_verify},
};

/* ---- main ------------------------------------------------------------------ */

static struct ctl_server *srv;
static uv_signal_t sigterm, sigint;

static void on_signal(uv_signal_t *h, int signum)
{
    ctl_server_close(srv, NULL, NULL);
    uv_close((uv_handle_t *)&sigterm, NULL);
    uv_close((uv_handle_t *)&sigint, NULL);
}

static void log_line(void *ud, enum log_level level, const char *line)
{
    fprintf(stderr, "ctl_testd %s: %s\n", log_level_name(level), line);
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--socket") == 0)
            sock = argv[i + 1];
        else if (strcmp(argv[i], "--pki") == 0)
            st.pki_dir = argv[i + 1];
    }
    if (sock == NULL || st.pki_dir == NULL) {
        fprintf(stderr, "usage: ctl_testd --socket PATH --pki DIR\n");
        return 2;
    }
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    st.loop = loop;
    st.listen = json_array();
    st.started_ms = uv_now(loop);
    struct log_sink log = {.level = LOG_DEBUG, .write = log_line};
    struct ctl_server_config cfg = {.path = sock,
                                    .table = commands,
                                    .ncommands = sizeof commands / sizeof commands[0],
                                    .log = &log};
    char err[256];
    if (ctl_server_start(loop, &cfg, &srv, err, sizeof err) != 0) {
        fprintf(stderr, "ctl_testd: %s\n", err);
        return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    printf("ready\n");
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    json_decref(st.listen);
    uv_loop_close(loop);
    return 0;
}
