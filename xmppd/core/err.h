/* err.h: the one table of error codes used by xmppd (core, io, control).
 *
 * Functions return 0 on success or one of the negative codes below; results
 * come back through out-parameters.  Every code has a message for humans
 * (xe_strerror).  raft/ has its own table (raft.h) because it knows no XMPP. */
#ifndef XMPPD_ERR_H
#define XMPPD_ERR_H

#define XE_ERRORS(X)                                                                     \
    X(XE_NOMEM, -1, "out of memory")                                                     \
    X(XE_INVAL, -2, "invalid argument")                                                  \
    X(XE_NOTFOUND, -3, "not found")                                                      \
    X(XE_EXISTS, -4, "already exists")                                                   \
    X(XE_LIMIT, -5, "limit exceeded")                                                    \
    X(XE_XML, -6, "malformed XML")                                                       \
    X(XE_STATE, -7, "operation not allowed in this state")                               \
    X(XE_IO, -8, "input/output error")                                                   \
    X(XE_PERM, -9, "permission denied")                                                  \
    X(XE_CORRUPT, -10, "corrupt or malformed data")                                      \
    X(XE_AUTH, -11, "authentication failed")                                             \
    X(XE_TLS, -12, "TLS error")                                                          \
    X(XE_PROTO, -13, "protocol error")                                                   \
    X(XE_CLOSED, -14, "connection closed")                                               \
    X(XE_TIMEOUT, -15, "timed out")                                                      \
    X(XE_NOLEADER, -16, "no cluster leader")                                             \
    X(XE_BUSY, -17, "resource busy, try again")                                          \
    X(XE_UNSUPPORTED, -18, "not supported")                                              \
    X(XE_EXPIRED, -19, "request expired")

enum xe_code {
    XE_OK = 0,
#define XE_ENUM_(name, value, msg) name = value,
    XE_ERRORS(XE_ENUM_)
#undef XE_ENUM_
};

/* xe_strerror returns a static message for code (0 or an XE_ code); unknown
 * codes get "unknown error". */
const char *xe_strerror(int code);

/* xe_name returns the symbolic name ("XE_NOMEM") of code, or "XE_UNKNOWN". */
const char *xe_name(int code);

#endif
