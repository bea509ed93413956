/* err.c: messages for the xmppd error table. */
#include "err.h"

const char *xe_strerror(int code)
{
    switch (code) {
    case XE_OK:
        return "success";
#define XE_MSG_(name, value, msg)                                                        \
    case name:                                                                           \
        return msg;
        XE_ERRORS(XE_MSG_)
#undef XE_MSG_
    }
    return "unknown error";
}

const char *xe_name(int code)
{
    switch (code) {
    case XE_OK:
        return "XE_OK";
#define XE_NAME_(name, value, msg)                                                       \
    case name:                                                                           \
        return #name;
        XE_ERRORS(XE_NAME_)
#undef XE_NAME_
    }
    return "XE_UNKNOWN";
}
