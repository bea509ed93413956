/* names.c: error messages, enum names and the timing profiles. */
#include "raft.h"

#include <string.h>

const char *raft_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
#define RAFT_MSG_(name, value, msg)                                                      \
    case value:                                                                          \
        return msg;
        RAFT_ERRORS(RAFT_MSG_)
#undef RAFT_MSG_
    }
    return "unknown error";
}

const char *raft_errname(int code)
{
    switch (code) {
    case 0:
        return "RAFT_OK";
#define RAFT_NAME_(name, value, msg)                                                     \
    case value:                                                                          \
        return #name;
        RAFT_ERRORS(RAFT_NAME_)
#undef RAFT_NAME_
    }
    return "RAFT_EUNKNOWN";
}

const char *raft_role_name(enum raft_role role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRECANDIDATE:
        return "precandidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    case RAFT_STOPPED:
        return "stopped";
    }
    return "unknown";
}

const char *raft_msg_type_name(enum raft_msg_type t)
{
    switch (t) {
    case RAFT_MSG_APPEND:
        return "append";
    case RAFT_MSG_APPEND_RESULT:
        return "append_result";
    case RAFT_MSG_VOTE:
        return "vote";
    case RAFT_MSG_VOTE_RESULT:
        return "vote_result";
    case RAFT_MSG_SNAPSHOT:
        return "snapshot";
    case RAFT_MSG_TIMEOUT_NOW:
        return "timeout_now";
    }
    return "unknown";
}

void raft_options_default(struct raft_options *o)
{
    memset(o, 0, sizeof *o);
    o->heartbeat_ms = 100;
    o->election_min_ms = 1000;
    o->election_max_ms = 2000;
    o->pre_vote = true;
    o->check_quorum = true;
    o->max_append_entries = 64;
    o->snapshot_trailing = 128;
}

void raft_options_fast_lan(struct raft_options *o)
{
    o->heartbeat_ms = 50;
    o->election_min_ms = 300;
    o->election_max_ms = 600;
}
