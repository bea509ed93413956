/* ctl.h: the control protocol codec (docs/control-protocol.md), pure.
 *
 * mmp-cli and the daemon talk over a unix stream socket.  Each message is a
 * frame: a 4-byte big-endian length, then that many bytes of one JSON
 * object (UTF-8, no trailing NUL).  A request
 *
 *     {"v":1,"id":7,"cmd":"xmpp.callbridge.add","args":{"name":"cb1"}}
 *
 * is answered by exactly one response with the same id:
 *
 *     {"v":1,"id":7,"ok":true,"result":{...}}
 *     {"v":1,"id":7,"ok":false,"error":{"code":"not-found","message":"..."}}
 *
 * This module frames and unframes bytes, validates requests and dispatches
 * them to a command table; it owns no socket (xmppd/io/ctl_socket.c is the
 * edge, mmp-cli the client).  JSON values are jansson's json_t. */
#ifndef XMPPD_CTL_H
#define XMPPD_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "buf.h"

#define CTL_VERSION 1
/* Largest request the daemon accepts (frame body bytes).  A bigger frame is
 * answered with "too-large" and the connection is closed: its body is never
 * buffered. */
#define CTL_MAX_REQUEST (64u * 1024u)
/* Largest response a client accepts: lists may be long. */
#define CTL_MAX_RESPONSE (16u * 1024u * 1024u)
/* Command names: lowercase letters, digits, '.', '-', at most this long. */
#define CTL_MAX_CMD 64

/* Error codes on the wire ("code" of an error response).  Stable strings:
 * scripts may test them. */
#define CTL_E_BAD_REQUEST "bad-request"     /* frame or request malformed */
#define CTL_E_TOO_LARGE "too-large"         /* frame over the limit; closes */
#define CTL_E_VERSION "unsupported-version" /* "v" is not CTL_VERSION */
#define CTL_E_UNKNOWN_COMMAND "unknown-command"
#define CTL_E_INVALID_ARGUMENT "invalid-argument"
#define CTL_E_NOT_IMPLEMENTED "not-implemented"
#define CTL_E_INTERNAL "internal"

struct ctl_error {
    char code[32];     /* one of the CTL_E_ strings or another code of the table
                          in docs/control-protocol.md; "" when unset */
    char message[256]; /* one line: what was wrong and what to do */
};

/* ctl_error_set fills err with code and a printf-formatted message.  Line
 * breaks in the message become spaces (a message is one line).  err may be
 * NULL.  Returns XE_INVAL so handlers can `return ctl_error_set(...)`. */
int ctl_error_set(struct ctl_error *err, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ctl_error_code_for returns the wire code for an xmppd error (XE_NOTFOUND
 * -> "not-found", XE_INVAL -> "invalid-argument", ...); "internal" for codes
 * without a better name. */
const char *ctl_error_code_for(int xe);

/* ---- framing ---------------------------------------------------------- */

/* ctl_frame_encode appends msg (borrowed) as one frame to out: 4-byte length
 * and compact JSON.  0, XE_LIMIT if the JSON is longer than max bytes (out
 * unchanged), XE_NOMEM. */
int ctl_frame_encode(const json_t *msg, size_t max, struct buf *out);

/* An incremental frame decoder: bytes in, in any chunking, JSON objects out.
 * A zeroed struct is not ready: use ctl_dec_init. */
struct ctl_dec {
    struct buf in; /* received bytes not yet returned as frames */
    size_t max;    /* largest frame body accepted */
    bool failed;   /* a fatal error happened: nothing more is decoded */
};

/* ctl_dec_init prepares d for frames of at most max body bytes. */
void ctl_dec_init(struct ctl_dec *d, size_t max);
/* ctl_dec_free wipes and releases buffered bytes (a request may carry a
 * secret); d may be re-initialised. */
void ctl_dec_free(struct ctl_dec *d);

/* ctl_dec_feed buffers len bytes.  0, XE_NOMEM, XE_STATE after a fatal error.
 * Memory stays bounded: a frame whose header announces more than max bytes
 * fails in ctl_dec_next before its body is kept. */
int ctl_dec_feed(struct ctl_dec *d, const void *data, size_t len);

/* ctl_dec_next takes the next complete frame.
 *   1   *msg is the frame's JSON object (owned by the caller: json_decref)
 *   0   more bytes are needed
 *   XE_LIMIT    the next frame is longer than max: fatal (d->failed), the
 *               connection should be answered and closed
 *   XE_CORRUPT  the frame was empty, not UTF-8 JSON, or not an object; it
 *               is consumed and the stream stays usable
 *   XE_STATE    after a fatal error
 * err (may be NULL) is filled for the negative returns; its message never
 * quotes the frame's bytes (they may hold a password, and it is logged).
 * The bytes of a frame taken are wiped from the buffer. */
int ctl_dec_next(struct ctl_dec *d, json_t **msg, struct ctl_error *err);

/* ctl_dec_pending returns the number of buffered bytes (a connection that
 * closes with pending > 0 closed mid-request). */
size_t ctl_dec_pending(const struct ctl_dec *d);

/* ---- requests and responses ------------------------------------------- */

struct ctl_request {
    json_int_t id;   /* the client's request id, echoed in the response */
    bool has_id;     /* false when the request carried no usable id */
    const char *cmd; /* borrowed from the message */
    json_t *args;    /* borrowed from the message; NULL if absent */
};

/* ctl_request_parse validates a decoded request message (borrowed) and fills
 * req with pointers into it (borrowed: valid while msg lives).  Rules: "v" must be
 * CTL_VERSION
 * ("unsupported-version" otherwise), "id" an integer, "cmd" a command name,
 * "args" an object if present, no other fields.  0, or XE_PROTO with err
 * filled (req->id/has_id are still set when the id was readable, so the
 * error response can carry it). */
int ctl_request_parse(json_t *msg, struct ctl_request *req, struct ctl_error *err);

/* ctl_request_new returns a new request message (owned) for cmd with args
 * (taken: the reference is stolen; NULL for none), or NULL on no memory. */
json_t *ctl_request_new(json_int_t id, const char *cmd, json_t *args);

/* ctl_response_ok returns a success response (owned) with result (taken;
 * NULL becomes {}).  NULL on no memory. */
json_t *ctl_response_ok(json_int_t id, json_t *result);

/* ctl_response_error returns an error response (owned).  has_id false puts
 * "id":null (the request's id could not be read).  NULL on no memory. */
json_t *ctl_response_error(bool has_id, json_int_t id, const struct ctl_error *err);

/* ctl_response_parse validates a response message (borrowed), as a client
 * does.  Sets *id, *ok; on ok *result points into msg (borrowed), otherwise
 * err holds the server's code and message.  0, or XE_PROTO when msg is not
 * a well-formed response (err says why). */
int ctl_response_parse(json_t *msg, json_int_t *id, bool *ok, json_t **result,
                       struct ctl_error *err);

/* ---- arguments (for command handlers) --------------------------------- */

/* ctl_arg_str returns args[key] when it is a string (borrowed from args:
 * valid while args lives), NULL when args is NULL, key is absent, or its
 * value is not a string. */
const char *ctl_arg_str(const json_t *args, const char *key);

/* ctl_args_only refuses arguments a command does not know, so that a typo
 * is seen, not ignored (as for a request's top-level fields).  keys is a
 * NULL-terminated list of the names the command takes (borrowed); args may
 * be NULL (no arguments).  0, or XE_INVAL with err set to
 * "invalid-argument" naming the first unknown key. */
int ctl_args_only(json_t *args, const char *const *keys, struct ctl_error *err);

/* ---- results (for command handlers) ----------------------------------- */

/* ctl_time is the one form of a point in time in an answer: t (seconds
 * since the epoch) as an RFC 3339 UTC timestamp, "2026-12-07T13:34:17Z"
 * (RFC 3339 §5.6, time-offset "Z"), or JSON null for 0 (never).  Owned;
 * NULL when out of memory.  ctl_time_text writes the same text into out
 * (at least CTL_TIME_LEN bytes). */
#define CTL_TIME_LEN 21
json_t *ctl_time(int64_t t);
void ctl_time_text(int64_t t, char *out);

/* ---- dispatch --------------------------------------------------------- */

/* A handler's return value meaning "the answer comes later": the handler
 * took a deferral from its edge (ctl_socket_defer) and will finish it, e.g.
 * once a cluster write is committed. */
#define CTL_DEFERRED 1

/* One command the daemon serves.  fn gets args (borrowed, an object) and
 * returns 0 with *result set (owned by the dispatcher; NULL means {}), or a
 * negative XE_ code with err filled (an empty err->code is filled from the
 * XE code and an empty message from xe_strerror), or CTL_DEFERRED. */
struct ctl_command {
    const char *name; /* "xmpp.callbridge.add" */
    int (*fn)(void *ud, json_t *args, json_t **result, struct ctl_error *err);
};

/* ctl_dispatch answers one decoded request message (borrowed): validates it,
 * finds the command in table (n entries), calls it with ud, and returns the
 * response (owned) in *response.  Every request gets exactly one response:
 * invalid requests and unknown commands included.  0, XE_NOMEM, or
 * CTL_DEFERRED when the handler deferred (*response is NULL: the edge sends
 * the response later, with the request's id). */
int ctl_dispatch(const struct ctl_command *table, size_t n, void *ud, json_t *msg,
                 json_t **response);

#endif
