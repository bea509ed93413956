/* ws.c: a WebSocket connection's life: its steps and their update, the
 * frames (through wslay's event API over our own buffers), keep-alive
 * pings, the closing handshakes and their timers.  The HTTP request is in
 * ws_http.c, the RFC 7395 adapter in ws_xmpp.c. */
#include "ws.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ws_int.h"

#define WS_KEEP_BUF 4096 /* step buffers larger than this are freed, not kept */

static void ws_park(struct ws_conn *ws);

void ws_config_default(struct ws_config *c)
{
    memset(c, 0, sizeof *c);
    c->path = "/xmpp-websocket";
    c->max_request_line = 2048;
    c->max_header_bytes = 8192;
    c->max_headers = 64;
    c->handshake_timeout_ms = 10000;
    c->close_timeout_ms = 5000;
    c->max_message_bytes = 256 * 1024;
    c->max_out_bytes = 1024 * 1024;
    c->max_pending = 256;
}

/* ws_apply_defaults copies cfg into lim, zero fields taking the defaults. */
static void ws_apply_defaults(const struct ws_config *cfg, struct ws_config *lim)
{
    struct ws_config d;

    ws_config_default(&d);
    *lim = *cfg;
#define WS_DEF_(f)                                                                       \
    if (lim->f == 0)                                                                     \
    lim->f = d.f
    WS_DEF_(max_request_line);
    WS_DEF_(max_header_bytes);
    WS_DEF_(max_headers);
    WS_DEF_(handshake_timeout_ms);
    WS_DEF_(close_timeout_ms);
    WS_DEF_(max_message_bytes);
    WS_DEF_(max_out_bytes);
#undef WS_DEF_
    if (lim->path == NULL || lim->path[0] != '/')
        lim->path = d.path;
}

int ws_new(const struct ws_config *cfg, const char *peer_ip, uint64_t now_ms,
           struct ws_conn **out)
{
    struct ws_conn *ws;

    if (cfg == NULL || peer_ip == NULL)
        return XE_INVAL;
    ws = calloc(1, sizeof *ws);
    if (ws == NULL)
        return XE_NOMEM;
    ws->req = calloc(1, sizeof *ws->req);
    if (ws->req == NULL) {
        free(ws);
        return XE_NOMEM;
    }
    ws->cfg = cfg;
    ws_apply_defaults(cfg, &ws->lim);
    snprintf(ws->peer, sizeof ws->peer, "%s", peer_ip);
    memcpy(ws->client, ws->peer, sizeof ws->client);
    http_parser_init(&ws->req->hp, HTTP_REQUEST);
    ws->req->hp.data = ws;
    ws->state = WS_HTTP;
    ws->now_ms = now_ms;
    ws->deadline = now_ms + ws->lim.handshake_timeout_ms;
    *out = ws;
    return 0;
}

void ws_free(struct ws_conn *ws)
{
    if (ws == NULL)
        return;
    ws__req_free(ws->req);
    if (ws->wsl != NULL)
        wslay_event_context_free(ws->wsl);
    xs_free(ws->xs_out);
    buf_free(&ws->ctl);
    buf_free(&ws->wire);
    buf_free(&ws->stream);
    free(ws);
}

/* ---- steps ------------------------------------------------------------- */

/* ws_begin starts a step: the update is cleared and the buffers reused. */
static void ws_begin(struct ws_conn *ws, uint64_t now_ms, struct ws_update *up)
{
    memset(up, 0, sizeof *up);
    /* The previous update is void now: keep small buffers for reuse, give
     * back what one large message grew (an idle connection stays small). */
    if (ws->wire.cap > WS_KEEP_BUF)
        buf_free(&ws->wire);
    if (ws->stream.cap > WS_KEEP_BUF)
        buf_free(&ws->stream);
    buf_reset(&ws->wire);
    buf_reset(&ws->stream);
    ws->up = up;
    ws->now_ms = now_ms;
}

void ws__finish(struct ws_conn *ws, const char *why)
{
    if (ws->state == WS_CLOSED)
        return;
    ws->state = WS_CLOSED;
    ws->deadline = WS_NO_DEADLINE;
    ws->up->close = true;
    if (why != NULL && ws->up->why == NULL)
        ws->up->why = why;
}

/* ws_end fills the update from the step's buffers. */
static int ws_end(struct ws_conn *ws, int rc)
{
    struct ws_update *up = ws->up;

    ws_park(ws);
    up->wire = ws->wire.data;
    up->wire_len = ws->wire.len;
    up->stream = ws->stream.data;
    up->stream_len = ws->stream.len;
    up->deadline = ws->deadline;
    ws->stats.bytes_out += ws->wire.len;
    ws->up = NULL;
    return rc;
}

void ws__fail_stream(struct ws_conn *ws, enum xs_cond cond, const char *why)
{
    if (ws->in_failed)
        return;
    ws->in_failed = true;
    ws->up->stream_error = true;
    ws->up->cond = cond;
    if (ws->up->why == NULL)
        ws->up->why = why;
}

/* ---- frames ------------------------------------------------------------ */

/* wslay reads from the step's input; when it is used up, "would block". */
static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len,
                          int flags, void *ud)
{
    struct ws_conn *ws = ud;
    size_t n = len < ws->in_len ? len : ws->in_len;

    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, ws->in, n);
    ws->in += n;
    ws->in_len -= n;
    return (ssize_t)n;
}

/* wslay writes into the step's wire buffer, which takes everything. */
static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                          int flags, void *ud)
{
    struct ws_conn *ws = ud;

    if (buf_append(&ws->wire, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* A server never masks (RFC 6455 §5.1), so wslay never asks. */
static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
    memset(buf, 0, len);
    return 0;
}

/* ws_refuse_frame fails the connection at the start of a frame, before
 * its payload is buffered: our close with code and reason (static), and
 * nothing more is read (RFC 6455 §7.1.7). */
static void ws_refuse_frame(struct ws_conn *ws, wslay_event_context_ptr ctx,
                            uint16_t code, const char *reason, const char *why)
{
    wslay_event_queue_close(ctx, code, (const uint8_t *)reason, strlen(reason));
    wslay_event_shutdown_read(ctx);
    if (ws->up->why == NULL)
        ws->up->why = why;
}

/* Frames refused at their start: RFC 7395 §3.2, XMPP messages are text
 * frames, so a binary message gets close 1003 (unsupported data, RFC 6455
 * §7.4.1).  RFC 6455 §5.5.1: a close frame's body, if any, begins with a
 * 2-byte status code; wslay reads a 1-byte body as "no code" and would
 * echo it, so it is refused here with 1002 (protocol error). */
static void ws_frame_start_cb(wslay_event_context_ptr ctx,
                              const struct wslay_event_on_frame_recv_start_arg *arg,
                              void *ud)
{
    struct ws_conn *ws = ud;

    if (arg->opcode == WSLAY_BINARY_FRAME)
        ws_refuse_frame(ws, ctx, WSLAY_CODE_UNSUPPORTED_DATA,
                        "binary frame: XMPP uses text frames (RFC 7395 3.2)",
                        "binary frame refused (1003)");
    else if (arg->opcode == WSLAY_CONNECTION_CLOSE && arg->payload_length == 1)
        ws_refuse_frame(ws, ctx, WSLAY_CODE_PROTOCOL_ERROR,
                        "close frame of 1 byte (RFC 6455 5.5.1)",
                        "malformed close frame refused (1002)");
}

static void ws_msg_cb(wslay_event_context_ptr ctx,
                      const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    struct ws_conn *ws = ud;

    switch (arg->opcode) {
    case WSLAY_TEXT_FRAME:
        ws->stats.msgs_in++;
        if (ws__xmpp_in(ws, (const char *)arg->msg, arg->msg_length) < 0) {
            /* Out of memory: the connection cannot go on. */
            wslay_event_queue_close(ctx, WSLAY_CODE_INTERNAL_SERVER_ERROR, NULL, 0);
            wslay_event_shutdown_read(ctx);
            if (ws->up->why == NULL)
                ws->up->why = "out of memory";
        }
        break;
    case WSLAY_PONG:
        if (ws->ping_out) {
            ws->ping_out = false;
            ws->up->pong = true;
        }
        break;
    case WSLAY_CONNECTION_CLOSE:
        /* wslay queued the echo of the peer's close (RFC 6455 §5.5.1). */
        ws->stats.close_received = arg->status_code != 0 ? arg->status_code : 1005;
        if (ws->up->why == NULL)
            ws->up->why =
                wslay_event_get_close_sent(ctx) ? "closed" : "closed by the peer";
        break;
    default: /* ping: wslay queued the pong (RFC 6455 §5.5.2) */
        break;
    }
}

/* ws_flush writes what wslay has queued into the wire buffer, then ends
 * the connection when the close handshake is complete (both closes
 * exchanged), or when we closed after a protocol failure of the peer and
 * read no more (RFC 6455 §7.1.7: we may then drop the connection). */
static int ws_flush(struct ws_conn *ws)
{
    bool sent, rcvd;

    if (ws->in_recv)
        return 0; /* inside wslay_event_recv: ws_frames_input flushes after */
    if (wslay_event_want_write(ws->wsl) && wslay_event_send(ws->wsl) < 0) {
        /* Only our send callback fails, and only when out of memory. */
        ws__finish(ws, "out of memory");
        return XE_NOMEM;
    }
    sent = wslay_event_get_close_sent(ws->wsl);
    rcvd = wslay_event_get_close_received(ws->wsl);
    if (sent && ws->stats.close_sent == 0)
        ws->stats.close_sent = wslay_event_get_status_code_sent(ws->wsl);
    if (sent && (rcvd || !wslay_event_get_read_enabled(ws->wsl))) {
        ws__finish(ws, "closed");
    } else if (sent && ws->closing != WS_CL_WAIT_WS) {
        ws->closing = WS_CL_WAIT_WS;
        ws->state = WS_CLOSING;
        ws->deadline = ws->now_ms + ws->lim.close_timeout_ms;
    }
    return 0;
}

/* ws_wsl makes wslay's context when the connection has none (after the
 * upgrade, and again after ws_park freed it).  0 or XE_NOMEM. */
static int ws_wsl(struct ws_conn *ws)
{
    static const struct wslay_event_callbacks cb = {
        .recv_callback = ws_recv_cb,
        .send_callback = ws_send_cb,
        .genmask_callback = ws_genmask_cb,
        .on_frame_recv_start_callback = ws_frame_start_cb,
        .on_msg_recv_callback = ws_msg_cb,
    };

    if (ws->wsl != NULL)
        return 0;
    if (wslay_event_context_server_init(&ws->wsl, &cb, ws) != 0)
        return XE_NOMEM;
    /* wslay checks each frame's announced length against what the message
     * already holds, before buffering it: fragments are reassembled within
     * the limit, and more is refused with 1009 (RFC 6455 §7.4.1). */
    wslay_event_config_set_max_recv_msg_length(ws->wsl, ws->lim.max_message_bytes);
    ws->stats.parked = false;
    return 0;
}

/* ws_fscan_feed follows the client's bytes through the frame headers of
 * RFC 6455 §5.2 (FIN, opcode, the 7/16/64-bit length, the masking key)
 * and the payloads, so that ws_park knows when wslay is between frames
 * and outside a fragmented message (§5.4: control frames may come between
 * fragments and do not end the message), and ws_frames_input where a
 * control frame begins.  It takes up to n bytes and returns how many it
 * took: with stop_at_ctl, it stops before the first byte of a control
 * frame.  Malformed headers need no care: wslay refuses them and closes,
 * and a closing connection is not parked. */
static size_t ws_fscan_feed(struct ws_fscan *f, const uint8_t *p, size_t n,
                            bool stop_at_ctl)
{
    size_t n0 = n;

    while (n > 0) {
        size_t need, take;
        uint64_t len;

        if (f->payload_left > 0) {
            take = f->payload_left < n ? (size_t)f->payload_left : n;
            f->payload_left -= take;
            p += take;
            n -= take;
            continue;
        }
        if (stop_at_ctl && f->hdr_len == 0 && (*p & 0x08) != 0)
            break;
        f->hdr[f->hdr_len++] = *p++;
        n--;
        if (f->hdr_len < 2)
            continue;
        len = f->hdr[1] & 0x7f;
        need = 2 + (len == 126 ? 2 : len == 127 ? 8 : 0) + (f->hdr[1] & 0x80 ? 4 : 0);
        if (f->hdr_len < need)
            continue;
        if (len >= 126) {
            size_t ext = len == 126 ? 2 : 8;

            len = 0;
            for (size_t i = 2; i < 2 + ext; i++)
                len = len << 8 | f->hdr[i];
        }
        /* Data frames (continuation 0, text 1, binary 2) carry the
         * message's FIN; control frames (8 and above) are always whole. */
        if ((f->hdr[0] & 0x08) == 0)
            f->frag = (f->hdr[0] & 0x80) == 0;
        f->payload_left = len;
        f->hdr_len = 0;
    }
    return n0 - n;
}

/* ws_park frees wslay's contexts (some 8.6 KiB: its read and fragment
 * buffers) while the connection is idle: open, not closing, between
 * frames, nothing queued, no close seen.  wslay then holds nothing but
 * its configuration, which ws_wsl sets again on the next frame. */
static void ws_park(struct ws_conn *ws)
{
    const struct ws_fscan *f = &ws->fscan;

    if (ws->wsl == NULL || ws->state != WS_OPEN || ws->closing != WS_CL_NONE ||
        ws->in_recv || f->hdr_len != 0 || f->payload_left != 0 || f->frag)
        return;
    if (wslay_event_want_write(ws->wsl) || !wslay_event_get_read_enabled(ws->wsl) ||
        !wslay_event_get_write_enabled(ws->wsl) || wslay_event_get_close_sent(ws->wsl) ||
        wslay_event_get_close_received(ws->wsl))
        return;
    wslay_event_context_free(ws->wsl);
    ws->wsl = NULL;
    ws->stats.parked = true;
    ws->stats.parks++;
}

int ws__upgrade(struct ws_conn *ws)
{
    struct xs_limits lim;

    xs_limits_default(&lim);
    lim.max_stanza_bytes = ws->lim.max_out_bytes;
    if (ws_wsl(ws) < 0)
        return XE_NOMEM;
    if (xs_new(&lim, &ws->xs_out) < 0)
        return XE_NOMEM;
    /* Each outgoing stanza is written again with its own xmlns (RFC 7395
     * §3.3.3), its whole tree: built at once, not parsed twice. */
    xs_set_eager(ws->xs_out, true);
    ws->state = WS_OPEN;
    ws->deadline = WS_NO_DEADLINE;
    ws__req_free(ws->req);
    ws->req = NULL;
    return 0;
}

/* ws_wslay_input hands bytes to wslay: messages go to ws_msg_cb. */
static int ws_wslay_input(struct ws_conn *ws, const uint8_t *data, size_t len)
{
    int rv;

    if (ws_wsl(ws) < 0) {
        ws__finish(ws, "out of memory");
        return XE_NOMEM;
    }
    ws->in = data;
    ws->in_len = len;
    ws->in_recv = true;
    rv = wslay_event_recv(ws->wsl);
    ws->in_recv = false;
    ws->in = NULL;
    ws->in_len = 0;
    if (rv == WSLAY_ERR_CALLBACK_FAILURE) {
        /* A malformed frame (a control frame over 125 bytes or
         * fragmented, a length not in its shortest form; RFC 6455 §5.2,
         * §5.5): wslay queued a close without a code; send it and drop
         * the connection (§7.1.7). */
        if (wslay_event_want_write(ws->wsl))
            wslay_event_send(ws->wsl);
        ws__finish(ws, "malformed frame");
        return 0;
    }
    if (rv < 0) {
        ws__finish(ws, "out of memory");
        return XE_NOMEM;
    }
    return ws_flush(ws);
}

/* ws_ctl_size returns the size of the control frame whose first two bytes
 * are h (RFC 6455 §5.2: header, masking key, payload), once ws_ctl_bad
 * has let it through. */
static size_t ws_ctl_size(const uint8_t *h)
{
    return 2 + ((h[1] & 0x80) != 0 ? 4 : 0) + (h[1] & 0x7f);
}

/* ws_ctl_bad tells whether a control frame is malformed at its first two
 * bytes: fragmented, or a length over 125 (RFC 6455 §5.5).  wslay's frame
 * layer refuses these with a close without a code; we say 1002. */
static bool ws_ctl_bad(const uint8_t *h)
{
    return (h[0] & 0x80) == 0 || (h[1] & 0x7f) > 125;
}

/* ws_frames_input hands the client's bytes to wslay, each control frame
 * whole and in a step of its own (gathered in ws->ctl when it comes in
 * pieces).  Why: wslay 1.1.1 checks the UTF-8 of a close frame's reason
 * per piece, skipping two bytes of each as if each began with the status
 * code, so a reason split across reads was refused (1007) when valid and
 * echoed when not (RFC 6455 §5.5.1, §8.1).  A control frame is at most
 * 131 bytes; data frames go through as they come. */
static int ws_frames_input(struct ws_conn *ws, const uint8_t *data, size_t len)
{
    int rc = 0;

    while (len > 0 && rc == 0 && ws->state != WS_CLOSED) {
        size_t n, size = 0;

        if (ws->ctl.len == 0) {
            n = ws_fscan_feed(&ws->fscan, data, len, true);
            if (n > 0) {
                rc = ws_wslay_input(ws, data, n);
                data += n;
                len -= n;
                continue;
            }
        }
        /* a control frame: gather its first two bytes, then all of it */
        n = ws->ctl.len < 2 ? 2 - ws->ctl.len : 0;
        if (n == 0)
            size = ws_ctl_size((const uint8_t *)ws->ctl.data);
        if (n == 0 && size > ws->ctl.len)
            n = size - ws->ctl.len;
        if (n > len)
            n = len;
        if (n > 0 && buf_append(&ws->ctl, data, n) < 0) {
            ws__finish(ws, "out of memory");
            return XE_NOMEM;
        }
        data += n;
        len -= n;
        if (ws->ctl.len < 2)
            continue; /* the rest comes in a later read */
        if (ws_ctl_bad((const uint8_t *)ws->ctl.data)) {
            buf_free(&ws->ctl);
            if (ws_wsl(ws) < 0) {
                ws__finish(ws, "out of memory");
                return XE_NOMEM;
            }
            ws_refuse_frame(ws, ws->wsl, WSLAY_CODE_PROTOCOL_ERROR,
                            "control frame fragmented or over 125 bytes (RFC 6455 5.5)",
                            "malformed control frame refused (1002)");
            return ws_flush(ws);
        }
        size = ws_ctl_size((const uint8_t *)ws->ctl.data);
        if (ws->ctl.len < size)
            continue;
        ws_fscan_feed(&ws->fscan, (const uint8_t *)ws->ctl.data, ws->ctl.len, false);
        rc = ws_wslay_input(ws, (const uint8_t *)ws->ctl.data, ws->ctl.len);
        buf_free(&ws->ctl);
    }
    return rc;
}

int ws__send_text(struct ws_conn *ws, const char *data, size_t len)
{
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)data, len};
    int rv;

    if (ws_wsl(ws) < 0)
        return XE_NOMEM;
    rv = wslay_event_queue_msg(ws->wsl, &m);
    if (rv == WSLAY_ERR_NOMEM)
        return XE_NOMEM;
    if (rv != 0)
        return XE_CLOSED;
    ws->stats.msgs_out++;
    return ws_flush(ws);
}

int ws__close_frame(struct ws_conn *ws, uint16_t code)
{
    int rv;

    if (ws_wsl(ws) < 0)
        return XE_NOMEM;
    rv = wslay_event_queue_close(ws->wsl, code, (const uint8_t *)ws->close_reason,
                                 strlen(ws->close_reason));
    if (rv == WSLAY_ERR_NOMEM)
        return XE_NOMEM;
    ws->state = WS_CLOSING;
    return ws_flush(ws);
}

/* ---- the API ----------------------------------------------------------- */

int ws_input(struct ws_conn *ws, const void *data, size_t len, uint64_t now_ms,
             struct ws_update *up)
{
    size_t used = 0;
    int rc = 0;

    ws_begin(ws, now_ms, up);
    if (ws->state == WS_CLOSED)
        return ws_end(ws, XE_STATE);
    ws->stats.bytes_in += len;
    if (ws->state == WS_HTTP) {
        rc = ws__http_input(ws, data, len, &used);
        if (rc < 0 || ws->state != WS_OPEN)
            return ws_end(ws, rc);
        data = (const char *)data + used;
        len -= used;
        if (len == 0)
            return ws_end(ws, 0);
    }
    return ws_end(ws, ws_frames_input(ws, data, len));
}

int ws_send(struct ws_conn *ws, const void *data, size_t len, uint64_t now_ms,
            struct ws_update *up)
{
    ws_begin(ws, now_ms, up);
    if (ws->state == WS_HTTP)
        return ws_end(ws, XE_STATE);
    if (ws->state == WS_CLOSED || ws->out_closed)
        return ws_end(ws, XE_CLOSED);
    return ws_end(ws, ws__xmpp_out(ws, data, len));
}

int ws__send_ping(struct ws_conn *ws, bool track)
{
    uint8_t payload[4];
    struct wslay_event_msg m = {WSLAY_PING, payload, sizeof payload};
    int rv;

    ws->ping_seq++;
    payload[0] = (uint8_t)(ws->ping_seq >> 24);
    payload[1] = (uint8_t)(ws->ping_seq >> 16);
    payload[2] = (uint8_t)(ws->ping_seq >> 8);
    payload[3] = (uint8_t)ws->ping_seq;
    if (ws_wsl(ws) < 0)
        return XE_NOMEM;
    rv = wslay_event_queue_msg(ws->wsl, &m);
    if (rv != 0)
        return rv == WSLAY_ERR_NOMEM ? XE_NOMEM : XE_CLOSED;
    if (track)
        ws->ping_out = true;
    return ws_flush(ws);
}

int ws_ping(struct ws_conn *ws, uint64_t now_ms, struct ws_update *up)
{
    int rc;

    ws_begin(ws, now_ms, up);
    if (ws->state != WS_OPEN)
        return ws_end(ws, XE_STATE);
    if (ws->ping_out)
        return ws_end(ws, XE_TIMEOUT);
    rc = ws__send_ping(ws, true);
    return ws_end(ws, rc == XE_CLOSED ? XE_STATE : rc);
}

/* ws_start_close begins our side of the end (ws_close, ws_redirect): wait
 * for the peer's <close/> if we sent ours and its stream is open (RFC 7395
 * §3.6: the stream is closed when both sides sent <close/>), else send the
 * WebSocket close at once. */
static int ws_start_close(struct ws_conn *ws, uint16_t code, const char *reason)
{
    size_t n = reason != NULL ? strlen(reason) : 0;

    if (n > sizeof ws->close_reason - 1)
        n = sizeof ws->close_reason - 1;
    memcpy(ws->close_reason, reason != NULL ? reason : "", n);
    ws->close_reason[n] = '\0';
    ws->close_code = code;
    ws->state = WS_CLOSING;
    /* After a framing error the client's messages are dropped: its
     * <close/> would not be seen, so there is nothing to wait for. */
    if (ws->out_closed && ws->in_open && !ws->in_closed && !ws->in_failed) {
        ws->closing = WS_CL_WAIT_XMPP;
        ws->deadline = ws->now_ms + ws->lim.close_timeout_ms;
        return 0;
    }
    return ws__close_frame(ws, code);
}

int ws_close(struct ws_conn *ws, uint16_t code, const char *reason, uint64_t now_ms,
             struct ws_update *up)
{
    int rc;

    ws_begin(ws, now_ms, up);
    if (ws->state == WS_CLOSED || ws->closing != WS_CL_NONE)
        return ws_end(ws, 0);
    if (ws->state == WS_HTTP) {
        ws__finish(ws, "closed before the upgrade");
        return ws_end(ws, 0);
    }
    if (ws->out_open && !ws->out_closed && (rc = ws__xmpp_close(ws, NULL)) == XE_NOMEM)
        return ws_end(ws, rc);
    return ws_end(ws, ws_start_close(ws, code, reason));
}

int ws_redirect(struct ws_conn *ws, const char *uri, uint64_t now_ms,
                struct ws_update *up)
{
    int rc;

    ws_begin(ws, now_ms, up);
    if (uri == NULL || uri[0] == '\0')
        return ws_end(ws, XE_INVAL);
    if (ws->state == WS_CLOSED || ws->closing != WS_CL_NONE)
        return ws_end(ws, 0);
    if (ws->state == WS_HTTP)
        return ws_end(ws, ws__http_respond(ws, 503, NULL, "this node is draining"));
    if (!ws->out_closed && (rc = ws__xmpp_close(ws, uri)) == XE_NOMEM)
        return ws_end(ws, rc);
    ws->up->why = "redirected (see-other-uri)";
    return ws_end(ws, ws_start_close(ws, WSLAY_CODE_GOING_AWAY, "see-other-uri"));
}

int ws_busy(struct ws_conn *ws, uint64_t now_ms, struct ws_update *up)
{
    ws_begin(ws, now_ms, up);
    if (ws->state != WS_HTTP)
        return ws_end(ws, XE_STATE);
    /* RFC 9110 §15.6.4: 503 for a temporary overload, with Retry-After
     * (§10.2.3) so a well-behaved client waits a little. */
    return ws_end(ws, ws__http_respond(ws, 503, "Retry-After: 5\r\n",
                                       "too many pending WebSocket upgrades"));
}

int ws_tick(struct ws_conn *ws, uint64_t now_ms, struct ws_update *up)
{
    int rc = 0;

    ws_begin(ws, now_ms, up);
    if (ws->state == WS_CLOSED || now_ms < ws->deadline)
        return ws_end(ws, 0);
    if (ws->state == WS_HTTP) {
        rc = ws__http_respond(ws, 408, NULL, "request not complete in time");
    } else if (ws->closing == WS_CL_WAIT_XMPP) {
        ws->closing = WS_CL_NONE;
        ws->up->why = "no <close/> from the peer in time";
        rc = ws__close_frame(ws, ws->close_code);
    } else {
        ws__finish(ws, "no close frame from the peer in time");
    }
    return ws_end(ws, rc);
}

void ws_done(struct ws_conn *ws)
{
    assert(ws->up == NULL); /* not inside a step */
    buf_free(&ws->wire);
    buf_free(&ws->stream);
}

uint64_t ws_deadline(const struct ws_conn *ws)
{
    return ws->deadline;
}

enum ws_state ws_state(const struct ws_conn *ws)
{
    return ws->state;
}

const char *ws_client_addr(const struct ws_conn *ws)
{
    return ws->client;
}

void ws_get_stats(const struct ws_conn *ws, struct ws_stats *out)
{
    *out = ws->stats;
}
