/* conn.c: one request and its response over the daemon's control socket
 * (docs/control-protocol.md).  A connection per command: the socket is
 * local and cheap, and a restarted daemon is simply found again. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "ctl.h"
#include "err.h"

/* How long to wait for an answer.  The daemon answers every command within
 * its own deadline: a cluster write within 5 s, a join within 40 s (10 s to
 * reach the member, 30 s to be promoted).  The shell waits longer than any
 * of them, so that a slow join under faults is answered, not abandoned
 * while it goes on (a retry then only said "a join is already in
 * progress"). */
#define CLI_TIMEOUT_MS 60000

static int unreachable(char *message, const char *fmt, const char *a, const char *b)
{
    snprintf(message, 256, fmt, a, b);
    return CLI_UNREACHABLE;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* connect_daemon returns a socket connected to path, or -1 with message. */
static int connect_daemon(const char *path, char *message)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        unreachable(message, "socket path %s is too long%s", path, "");
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        unreachable(message, "cannot make a socket: %s%s", strerror(errno), "");
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            unreachable(message,
                        "permission denied on %s; run mmp-cli as root or as the xmppd "
                        "user%s",
                        path, "");
        else
            unreachable(message,
                        "cannot reach xmppd at %s (%s); is it running? set the socket "
                        "with --socket or XMPPD_SOCKET",
                        path, strerror(e));
        close(fd);
        return -1;
    }
    return fd;
}

/* dec_wipe_free wipes and frees the decoder's buffer: responses may carry
 * secrets, and consumed bytes stay in the allocation. */
static void dec_wipe_free(struct ctl_dec *dec)
{
    if (dec->in.data != NULL)
        sodium_memzero(dec->in.data, dec->in.cap);
    ctl_dec_free(dec);
}

/* read_response waits for one response frame on fd: 0 and *msg (owned), or
 * -1 with message. */
static int read_response(int fd, json_t **msg, char *message)
{
    struct ctl_dec dec;
    struct ctl_error err = {{0}, {0}};
    char chunk[65536];
    int rc = -1;
    ctl_dec_init(&dec, CTL_MAX_RESPONSE);
    for (;;) {
        int r = ctl_dec_next(&dec, msg, &err);
        if (r == 1) {
            rc = 0;
            break;
        }
        if (r < 0) {
            snprintf(message, 256, "unreadable answer from the daemon: %.200s",
                     err.message);
            break;
        }
        int pr = cli_wait(fd, CLI_TIMEOUT_MS);
        if (pr == -1) {
            snprintf(message, 256,
                     "interrupted; the daemon may still carry the command out (check "
                     "with a list or status command)");
            break;
        }
        if (pr == -2) {
            snprintf(message, 256, "cannot wait for the daemon's answer: %s",
                     strerror(errno));
            break;
        }
        if (pr == 0) {
            snprintf(message, 256,
                     "no answer from the daemon within %d s; it may be overloaded, try "
                     "again",
                     CLI_TIMEOUT_MS / 1000);
            break;
        }
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(message, 256, "the daemon closed the connection before answering");
            break;
        }
        ctl_dec_feed(&dec, chunk, (size_t)n);
    }
    sodium_memzero(chunk, sizeof chunk);
    dec_wipe_free(&dec);
    return rc;
}

int cli_call(struct cli *cli, const char *cmd, json_t *args, json_t **result, char *code,
             char *message)
{
    *result = NULL;
    code[0] = message[0] = '\0';

    json_int_t id = cli->next_id++;
    json_t *req = ctl_request_new(id, cmd, args);
    struct buf out = {0};
    if (req == NULL || ctl_frame_encode(req, CTL_MAX_REQUEST, &out) < 0) {
        json_decref(req);
        buf_free(&out);
        snprintf(message, 256, "the request is too large (over %u bytes)",
                 CTL_MAX_REQUEST);
        return CLI_USAGE;
    }
    json_decref(req);

    int rc = CLI_UNREACHABLE;
    json_t *msg = NULL;
    int fd = connect_daemon(cli->socket_path, message);
    if (fd < 0)
        goto out;
    if (send_all(fd, out.data, out.len) < 0) {
        unreachable(message, "the daemon closed the connection (%s) at %s",
                    strerror(errno), cli->socket_path);
        goto out;
    }
    if (read_response(fd, &msg, message) < 0)
        goto out;

    json_int_t rid;
    bool ok;
    json_t *res;
    struct ctl_error err = {{0}, {0}};
    if (ctl_response_parse(msg, &rid, &ok, &res, &err) < 0) {
        snprintf(message, 256, "unreadable answer from the daemon: %.200s", err.message);
    } else if (ok && rid != id) {
        snprintf(message, 256,
                 "the daemon answered another request (id %" JSON_INTEGER_FORMAT
                 " instead of %" JSON_INTEGER_FORMAT ")",
                 rid, id);
    } else if (ok) {
        *result = json_incref(res);
        rc = CLI_OK;
    } else {
        snprintf(code, 32, "%s", err.code);
        snprintf(message, 256, "%s", err.message);
        rc = CLI_FAILED;
    }
out:
    json_decref(msg);
    if (fd >= 0)
        close(fd);
    if (out.data != NULL)
        sodium_memzero(out.data, out.len); /* the request may carry a secret */
    buf_free(&out);
    return rc;
}
