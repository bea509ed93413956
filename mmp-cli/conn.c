/* conn.c: one request and its response over the daemon's control socket
 * (docs/control-protocol.md).  A connection per command: the socket is
 * local and cheap, and a restarted daemon is simply found again. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <sodium.h>

#include "cli.h"
#include "ctl.h"
#include "err.h"

volatile sig_atomic_t cli_interrupted;

/* How long to wait for an answer: cluster writes wait for a commit. */
#define CLI_TIMEOUT_MS 30000

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

int cli_call(struct cli *cli, const char *cmd, json_t *args, json_t **result, char *code,
             char *message)
{
    *result = NULL;
    code[0] = message[0] = '\0';
    const char *path = cli->socket_path;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        json_decref(args);
        return unreachable(message, "socket path %s is too long%s", path, "");
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);

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
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        unreachable(message, "cannot make a socket: %s%s", strerror(errno), "");
        goto out;
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
        goto out;
    }
    if (send_all(fd, out.data, out.len) < 0) {
        unreachable(message, "the daemon closed the connection (%s) at %s",
                    strerror(errno), path);
        goto out;
    }

    struct ctl_dec dec;
    ctl_dec_init(&dec, CTL_MAX_RESPONSE);
    json_t *msg = NULL;
    struct ctl_error err = {{0}, {0}};
    for (;;) {
        int r = ctl_dec_next(&dec, &msg, &err);
        if (r == 1)
            break;
        if (r < 0) {
            snprintf(message, 256, "unreadable answer from the daemon: %.200s",
                     err.message);
            ctl_dec_free(&dec);
            goto out;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int pr = poll(&pfd, 1, CLI_TIMEOUT_MS);
        if (pr < 0 && errno == EINTR && cli_interrupted) {
            snprintf(
                message, 256,
                "interrupted; the daemon may still carry the command out (check with a "
                "list or status command)");
            ctl_dec_free(&dec);
            goto out;
        }
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0) {
            snprintf(message, 256,
                     "no answer from the daemon within %d s; it may be overloaded, try "
                     "again",
                     CLI_TIMEOUT_MS / 1000);
            ctl_dec_free(&dec);
            goto out;
        }
        char chunk[65536];
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(message, 256, "the daemon closed the connection before answering");
            ctl_dec_free(&dec);
            goto out;
        }
        ctl_dec_feed(&dec, chunk, (size_t)n);
        sodium_memzero(chunk, (size_t)n); /* responses may carry secrets */
    }
    ctl_dec_free(&dec);

    json_int_t rid;
    bool ok;
    json_t *res;
    if (ctl_response_parse(msg, &rid, &ok, &res, &err) < 0) {
        snprintf(message, 256, "unreadable answer from the daemon: %.200s", err.message);
    } else if (ok) {
        *result = json_incref(res);
        rc = CLI_OK;
    } else {
        snprintf(code, 32, "%s", err.code);
        snprintf(message, 256, "%s", err.message);
        rc = CLI_FAILED;
    }
    json_decref(msg);
out:
    if (fd >= 0)
        close(fd);
    if (out.data != NULL)
        sodium_memzero(out.data, out.len); /* the request may carry a secret */
    buf_free(&out);
    return rc;
}
