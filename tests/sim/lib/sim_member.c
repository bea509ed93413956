/* sim_member.c: requests to the simulated cluster's leader: client
 * entries, membership changes (single-server, thesis §4.2.1) and
 * leadership transfer, and the views of membership the test needs. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sim_int.h"

static int leader_step(struct sim *s, struct raft_event *ev)
{
    int l = sim_leader(s);

    if (l < 0)
        return RAFT_ENOTLEADER;
    return sim__node_step(s, (unsigned)l, ev);
}

int sim_submit(struct sim *s)
{
    struct raft_event ev;
    char data[32];

    memset(&ev, 0, sizeof ev);
    snprintf(data, sizeof data, "e%" PRIu64, s->submitted++);
    ev.type = RAFT_EV_SUBMIT;
    ev.u.submit.type = RAFT_ENTRY_NORMAL;
    ev.u.submit.data.base = data;
    ev.u.submit.data.len = strlen(data);
    return leader_step(s, &ev);
}

int sim_add(struct sim *s)
{
    struct raft_event ev;
    char addr[RAFT_ADDR_MAX];
    uint64_t id;
    int rc;

    if (s->n >= SIM_MAX_NODES)
        return RAFT_ETOOMANY;
    id = s->next_id;
    snprintf(addr, sizeof addr, "10.0.0.%" PRIu64 ":5224", id);
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.kind = RAFT_CHANGE_ADD;
    ev.u.change.id = id;
    ev.u.change.address = addr;
    rc = leader_step(s, &ev);
    if (rc != 0)
        return rc;
    s->next_id++;
    sim__node_start(s, sim__new_node(s, id, addr));
    s->faults[SIM_F_ADD]++;
    sim_trace(s, "n%" PRIx64 " added as non-voter", id);
    return 0;
}

int sim_promote(struct sim *s, uint64_t id)
{
    struct raft_event ev;

    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.kind = RAFT_CHANGE_PROMOTE;
    ev.u.change.id = id;
    /* A promote is accepted at once and appended later (raft.h). */
    return leader_step(s, &ev);
}

int sim_remove(struct sim *s, uint64_t id)
{
    struct raft_event ev;
    int rc;

    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.kind = RAFT_CHANGE_REMOVE;
    ev.u.change.id = id;
    rc = leader_step(s, &ev);
    if (rc == 0) {
        s->faults[SIM_F_REMOVE]++;
        sim_trace(s, "n%" PRIx64 " removal requested", id);
    }
    return rc;
}

int sim_replace(struct sim *s, unsigned old_slot)
{
    struct sim_node *old = &s->nodes[old_slot];
    struct raft_event ev;
    char addr[RAFT_ADDR_MAX];
    uint64_t id;
    int rc;

    if (s->n >= SIM_MAX_NODES)
        return RAFT_ETOOMANY;
    id = s->next_id;
    snprintf(addr, sizeof addr, "%s", old->address);
    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_CHANGE;
    ev.u.change.kind = RAFT_CHANGE_REPLACE;
    ev.u.change.id = id;
    ev.u.change.address = addr;
    ev.u.change.old_id = old->id;
    rc = leader_step(s, &ev);
    if (rc != 0)
        return rc;
    /* The machine was reset: the old identity is gone for good. */
    sim_crash(s, old_slot, 0);
    old->removed = true;
    s->next_id++;
    sim__node_start(s, sim__new_node(s, id, addr));
    s->faults[SIM_F_REPLACE]++;
    sim_trace(s, "n%" PRIx64 " replaces n%" PRIx64 " at %s", id, old->id, addr);
    return 0;
}

int sim_transfer(struct sim *s, uint64_t id)
{
    struct raft_event ev;
    int rc;

    memset(&ev, 0, sizeof ev);
    ev.type = RAFT_EV_TRANSFER;
    ev.u.transfer.to = id;
    rc = leader_step(s, &ev);
    if (rc == 0)
        s->faults[SIM_F_TRANSFER]++;
    return rc;
}

bool sim_is_member(const struct sim *s, uint64_t id)
{
    for (unsigned i = 0; i < s->config.n; i++)
        if (s->config.members[i].id == id)
            return true;
    return false;
}

void sim_stop_removed(struct sim *s)
{
    int l = sim_leader(s);
    const struct raft_config *c;

    if (l < 0)
        return;
    c = raft_config_committed(s->nodes[l].r);
    for (unsigned i = 0; i < s->n; i++) {
        struct sim_node *nd = &s->nodes[i];
        if (!nd->used || nd->removed || raft_config_find(c, nd->id) != NULL)
            continue;
        /* Only nodes that were members once: a node still joining is not in
         * the committed configuration yet either. */
        if (raft_config_find(&s->config, nd->id) != NULL)
            continue;
        nd->removed = true;
        sim_crash(s, i, 0);
    }
}
