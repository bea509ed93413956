/* cserve.c: which cluster requests this node serves, and how (contract in
 * cserve.h). */
#include "cserve.h"

#include <stdio.h>
#include <string.h>

#include "addr.h"
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
