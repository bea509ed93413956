/* cserve.c: which cluster requests this node serves, and how (contract in
 * cserve.h). */
#include "cserve.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "creq.h"
#include "err.h"

static bool is_member(const struct cserve_in *in, uint64_t id)
{
    for (size_t i = 0; i < in->n_members; i++)
        if (in->members[i] == id)
            return true;
    return false;
}

static void refuse(struct cserve_out *out, int rc, const char *msg)
{
    out->verdict = CSERVE_REFUSE;
    out->rc = rc;
    snprintf(out->msg, sizeof out->msg, "%s", msg);
}

int cserve_decide(const struct cserve_in *in, struct cserve_out *out)
{
    const struct pframe_req *req = in->req;
    char hid[17];

    memset(out, 0, sizeof *out);
    out->left_ms = in->expires > in->wall + CSERVE_MIN_LEFT_MS ? in->expires - in->wall
                                                               : CSERVE_MIN_LEFT_MS;
    if (!in->running) {
        refuse(out, XE_CLOSED, "the node is stopping");
        return 0;
    }
    /* A request that waited out its sender's deadline (a partition: the
     * sender already reported failure) is not applied late. */
    if (in->wall > in->expires) {
        refuse(out, XE_TIMEOUT,
               "the request reached the leader after its deadline and was not applied");
        return 0;
    }
    /* A write goes to Raft here: on a follower the Raft driver forwards it
     * to the leader, and follows a leader change (rreq.h). */
    if (req->kind == PFRAME_REQ_CMD) {
        out->verdict = CSERVE_SUBMIT;
        return 0;
    }
    if (req->kind != PFRAME_REQ_JOIN && req->kind != PFRAME_REQ_REMOVE) {
        refuse(out, XE_PROTO, "malformed request");
        return 0;
    }
    /* Membership changes are made on the leader (Raft thesis §4.1). */
    if (!in->leading) {
        out->verdict = CSERVE_PASS_ON;
        return 0;
    }
    if (req->kind == PFRAME_REQ_JOIN) {
        out->verdict = CSERVE_JOIN;
        return 0;
    }
    if (!is_member(in, req->u.node_id)) {
        addr_node_id_hex(req->u.node_id, hid);
        out->verdict = CSERVE_REFUSE;
        out->rc = XE_NOTFOUND;
        snprintf(out->msg, sizeof out->msg,
                 "node %s is not a member; see xmpp cluster status", hid);
        return 0;
    }
    out->verdict = CSERVE_REMOVE;
    return 0;
}

int cserve_peer(const struct cserve_peer_in *in, struct cserve_peer_out *out)
{
    const struct pframe_req *req = in->req;

    memset(out, 0, sizeof *out);
    /* The deadline is in the sender's wall clock: read it in ours, so that
     * a clock that is off neither refuses every request (behind) nor keeps
     * stale ones (ahead). */
    out->expires = req->expires;
    if (in->clock_known)
        out->expires = (uint64_t)((int64_t)req->expires - in->clock_offset_ms);
    if (req->kind == PFRAME_REQ_NOTE_REMOVED) {
        /* sent only by the leader that removed us, on a member link */
        out->verdict = in->guest ? CSERVE_PEER_PROTO : CSERVE_PEER_NOTE;
        return 0;
    }
    if (!in->guest) {
        out->verdict = CSERVE_PEER_SERVE;
        return 0;
    }
    /* A joining node may ask to join, for itself only. */
    if (req->kind != PFRAME_REQ_JOIN || req->u.join.node_id != in->from) {
        out->verdict = CSERVE_PEER_PROTO;
        return 0;
    }
    out->verdict = CSERVE_PEER_GUEST_JOIN;
    return 0;
}

int cserve_alone(const struct cserve_alone_in *in, struct cserve_alone_out *out)
{
    memset(out, 0, sizeof *out);
    if (in->leading && in->to == 0) {
        out->verdict = CSERVE_ALONE_SERVE;
        out->expires =
            in->wall + (in->timeout_ms ? in->timeout_ms : CREQ_TIMEOUT_DEFAULT_MS);
        return 0;
    }
    out->verdict = CSERVE_ALONE_REFUSE;
    out->rc = XE_STATE;
    snprintf(out->msg, sizeof out->msg,
             "clustering is not enabled on this node (xmpp cluster enable)");
    return 0;
}
