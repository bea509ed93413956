/* election.c: leader election (§5.2), PreVote (thesis §9.6), leader
 * stickiness (thesis §4.2.3), leadership transfer (thesis §3.10) and the
 * crash fast path (RAFT_EV_PEER_DOWN). */
#include "internal.h"

#include <assert.h>
#include <string.h>

/* raft__in_lease: whether a vote request must be ignored because a live
 * leader is known.  Tied to CheckQuorum as in etcd: without CheckQuorum a
 * leader that lost its quorum would never step down, and a lease would then
 * keep its followers from ever electing another. */
bool raft__in_lease(const struct raft *r)
{
    if (!r->o.check_quorum)
        return false;
    if (r->role == RAFT_LEADER)
        return true;
    return r->role == RAFT_FOLLOWER && r->leader_id != 0 &&
           r->now - r->leader_contact < r->o.election_min_ms;
}

/* log_cmp compares the log (last_index, last_term) with ours (§5.4.1:
 * last terms first, then lengths): < 0 it is behind ours, 0 as up to date,
 * > 0 more up to date. */
static int log_cmp(const struct raft *r, uint64_t last_index, uint64_t last_term)
{
    uint64_t my_term = raft__log_last_term(&r->log), my_last = raft__log_last(&r->log);
    if (last_term != my_term)
        return last_term > my_term ? 1 : -1;
    return last_index > my_last ? 1 : last_index < my_last ? -1 : 0;
}

static bool log_up_to_date(const struct raft *r, uint64_t last_index, uint64_t last_term)
{
    return log_cmp(r, last_index, last_term) >= 0;
}

/* raft__vote_ignored: whether a vote request whose term is above ours must be
 * dropped before it moves anything (the caller has checked the term).
 * - Stickiness (thesis §4.2.3): while a live leader is heard, no request is
 *   answered nor raises our term, except one sent because of TimeoutNow
 *   (§3.10).  This holds for every sender, member or not.
 * - A real vote request from a node that is not a voter of our latest
 *   configuration raises our term only if we are going to grant it: its log
 *   is at least as up to date as ours (§5.4.1).  Such a node is either a
 *   voter that we do not know as one yet (we missed its promotion, so our log
 *   is behind: it must be able to win), or a node removed from the
 *   configuration; a removed node's log lacks the entry that removed it, so
 *   it is behind every member that holds that entry, and its requests change
 *   nothing there even without CheckQuorum or PreVote.  A pre-vote never
 *   moves our term and is answered by the normal rules. */
bool raft__vote_ignored(struct raft *r, const struct raft_message *m)
{
    bool outsider = !raft__is_voter(r, m->from);
    if (!m->u.vote.transfer && raft__in_lease(r)) {
        if (outsider)
            r->counters.dropped_non_member++;
        else
            r->counters.ignored_in_lease++;
        return true;
    }
    if (outsider && !m->u.vote.pre_vote &&
        !log_up_to_date(r, m->u.vote.last_index, m->u.vote.last_term)) {
        r->counters.dropped_non_member++;
        return true;
    }
    return false;
}

/* yield_candidacy: m is a real vote request of our own term that we refuse
 * only because we voted for ourselves, and its candidate's log is strictly
 * more up to date than ours, so it is the better leader.  We give up our
 * candidacy: move to the next term as a follower with no vote, and wait one
 * more minimum election timeout than usual before we campaign again.  The
 * answer carries the new term, the candidate adopts it (a fresh timeout of
 * at most election_max_ms) and campaigns before we do; we grant that.
 * Without this, a candidate whose log is behind can keep its term one step
 * ahead of the only candidate that can win, refusing each of its requests
 * as already voted (sim seed 22650, scenario stale_candidate_yields.txt:
 * the stale candidate does not even know that candidate as a voter, so it
 * never asks it).  Raising a term without voting is always safe (§5.1). */
static bool yield_candidacy(struct raft *r, const struct raft_message *m)
{
    return r->role == RAFT_CANDIDATE && m->term == r->term && r->vote == r->o.id &&
           log_cmp(r, m->u.vote.last_index, m->u.vote.last_term) > 0;
}

static unsigned count_votes(struct raft *r, bool granted)
{
    unsigned n = 0;
    if (granted && raft__is_voter(r, r->o.id))
        n++; /* our own vote */
    for (unsigned i = 0; i < r->n_peers; i++) {
        const struct raft__peer *p = &r->peers[i];
        /* Only voters' answers reach here (sender_allowed, raft.c), and
         * the configuration does not change during a round. */
        if (p->voted && p->granted == granted)
            n++;
    }
    return n;
}

static void request_votes(struct raft *r, bool pre_vote, bool transfer)
{
    for (unsigned i = 0; i < r->config.n; i++) {
        const struct raft_member *mb = &r->config.members[i];
        if (mb->id == r->o.id || mb->role != RAFT_VOTER)
            continue;
        struct raft_message *m = raft__send(r, RAFT_MSG_VOTE, mb->id);
        if (m == NULL)
            return;
        /* A pre-vote asks "would you vote for me in term + 1?" and changes
         * nothing on either side (thesis §9.6). */
        m->term = pre_vote ? r->term + 1 : r->term;
        m->u.vote.last_index = raft__log_last(&r->log);
        m->u.vote.last_term = raft__log_last_term(&r->log);
        m->u.vote.pre_vote = pre_vote;
        m->u.vote.transfer = transfer;
    }
}

static void check_won(struct raft *r);

/* raft__campaign starts a pre-vote round (pre_vote) or a real election. */
void raft__campaign(struct raft *r, bool pre_vote, bool transfer)
{
    assert(r->started && r->role != RAFT_LEADER && r->role != RAFT_STOPPED);
    if (!raft__is_voter(r, r->o.id))
        return;
    raft__peers_sync(r);
    for (unsigned i = 0; i < r->n_peers; i++)
        r->peers[i].voted = r->peers[i].granted = false;
    r->transfer_to = 0;
    r->promote_id = 0;
    raft__set_leader(r, 0);
    raft__reset_election_timer(r);
    if (pre_vote) {
        r->role = RAFT_PRECANDIDATE;
        r->counters.pre_elections++;
    } else {
        /* §5.2: increment the term, vote for self, request votes. */
        r->role = RAFT_CANDIDATE;
        r->term++;
        r->vote = r->o.id;
        r->st_term_vote = true;
        r->counters.elections++;
    }
    request_votes(r, pre_vote, transfer);
    check_won(r);
}

static void check_won(struct raft *r)
{
    assert(r->role == RAFT_PRECANDIDATE || r->role == RAFT_CANDIDATE);
    unsigned q = raft__quorum(r);
    if (count_votes(r, true) >= q) {
        if (r->role == RAFT_PRECANDIDATE)
            raft__campaign(r, false, false);
        else
            raft__become_leader(r);
    } else if (count_votes(r, false) >= q) {
        /* A majority said no: wait for the next timeout as a follower. */
        raft__become_follower(r, r->term, 0);
    }
}

void raft__recv_vote(struct raft *r, const struct raft_message *m)
{
    assert(r->started && r->role != RAFT_STOPPED);
    bool grant;
    bool ok_log = log_up_to_date(r, m->u.vote.last_index, m->u.vote.last_term);
    if (m->u.vote.pre_vote) {
        /* Grant when a real election for that term could be granted; our
         * own term and vote do not move. */
        grant = m->term > r->term && ok_log;
    } else {
        /* Figure 2, RequestVote: at most one vote per term, first come. */
        grant = m->term == r->term && (r->vote == 0 || r->vote == m->from) && ok_log &&
                r->role != RAFT_LEADER;
        if (grant && r->vote != m->from) {
            r->vote = m->from;
            r->st_term_vote = true;
        }
        if (grant)
            raft__reset_election_timer(r);
        if (!grant && yield_candidacy(r, m)) {
            raft__become_follower(r, r->term + 1, 0);
            r->election_deadline += r->o.election_min_ms;
        }
    }
    struct raft_message *o = raft__send(r, RAFT_MSG_VOTE_RESULT, m->from);
    if (o == NULL)
        return;
    /* A granted pre-vote is answered in the asked term, so the candidate
     * does not take it for stale. */
    o->term = (m->u.vote.pre_vote && grant) ? m->term : r->term;
    o->u.vote_result.granted = grant;
    o->u.vote_result.pre_vote = m->u.vote.pre_vote;
}

void raft__recv_vote_result(struct raft *r, const struct raft_message *m)
{
    assert(r->started && r->role != RAFT_STOPPED);
    bool pre = m->u.vote_result.pre_vote;
    if (pre && r->role != RAFT_PRECANDIDATE)
        return;
    if (!pre && r->role != RAFT_CANDIDATE)
        return;
    if (pre && m->u.vote_result.granted && m->term != r->term + 1)
        return; /* answers an older round */
    struct raft__peer *p = raft__peer(r, m->from);
    if (p == NULL || p->voted)
        return;
    p->voted = true;
    p->granted = m->u.vote_result.granted;
    check_won(r);
}

void raft__recv_timeout_now(struct raft *r, const struct raft_message *m)
{
    /* Thesis §3.10: the target starts an election at once, skipping PreVote
     * and the stickiness of the others (transfer flag). */
    if (r->role != RAFT_FOLLOWER || m->from != r->leader_id)
        return;
    /* On standby the leader's choice is declined by silence: the leader's
     * transfer expires and, sent to any voter, tries the next one. */
    if (r->standby) {
        r->counters.standby_timeout_now++;
        return;
    }
    raft__campaign(r, false, true);
}

static void send_timeout_now(struct raft *r, struct raft__peer *p)
{
    assert(r->role == RAFT_LEADER && r->transfer_to == p->id);
    struct raft_message *m = raft__send(r, RAFT_MSG_TIMEOUT_NOW, p->id);
    if (m != NULL)
        r->counters.transfers++;
}

/* best_untried: the voter with the highest match index that a transfer to
 * any voter has not tried yet, or NULL. */
static struct raft__peer *best_untried(struct raft *r)
{
    struct raft__peer *best = NULL;
    for (unsigned i = 0; i < r->n_peers; i++) {
        struct raft__peer *p = &r->peers[i];
        if (raft__is_voter(r, p->id) && !p->departing && !p->transfer_tried &&
            (best == NULL || p->match > best->match))
            best = p;
    }
    return best;
}

/* transfer_start sends p TimeoutNow, or catches it up first. */
static void transfer_start(struct raft *r, struct raft__peer *p)
{
    r->transfer_to = p->id;
    r->transfer_deadline = r->now + r->o.election_min_ms;
    /* A lagging target is caught up first; TimeoutNow follows the append
     * result that shows it holds our whole log. */
    if (p->match == raft__log_last(&r->log))
        send_timeout_now(r, p);
    else
        raft__send_append(r, p);
}

int raft__transfer(struct raft *r, uint64_t to)
{
    if (r->role != RAFT_LEADER)
        return RAFT_ENOTLEADER;
    if (r->transfer_to != 0)
        return RAFT_EBUSY;
    r->transfer_any = to == 0;
    if (to == 0) {
        /* The most up-to-date voter first; one that does not take over
         * within an election timeout (on standby, or slow) is passed over
         * for the next (raft__transfer_expired). */
        for (unsigned i = 0; i < r->n_peers; i++)
            r->peers[i].transfer_tried = false;
        struct raft__peer *best = best_untried(r);
        if (best == NULL)
            return RAFT_ENOTFOUND;
        to = best->id;
    }
    if (to == r->o.id)
        return RAFT_EINVAL;
    const struct raft_member *mb = raft_config_find(&r->config, to);
    if (mb == NULL)
        return RAFT_ENOTFOUND;
    if (mb->role != RAFT_VOTER)
        return RAFT_ENOTVOTER;
    struct raft__peer *p = raft__peer(r, to);
    if (p == NULL)
        return RAFT_ENOTFOUND;
    p->transfer_tried = true;
    transfer_start(r, p);
    return 0;
}

void raft__transfer_expired(struct raft *r)
{
    assert(r->role == RAFT_LEADER && r->transfer_to != 0);
    r->transfer_to = 0;
    struct raft__peer *p = r->transfer_any ? best_untried(r) : NULL;
    if (p == NULL)
        return; /* give up; accept proposals again */
    p->transfer_tried = true;
    transfer_start(r, p);
}

void raft__standby(struct raft *r, bool on)
{
    r->standby = on;
    r->standby_skips = 0;
}

void raft__transfer_progress(struct raft *r, struct raft__peer *p)
{
    assert(r->role == RAFT_LEADER);
    if (r->transfer_to == p->id && p->match == raft__log_last(&r->log))
        send_timeout_now(r, p);
}

/* The crash fast path needs two signals before it acts: the transport
 * reported the leader's link down (refused, closed) and a heartbeat from
 * the leader is overdue.  One alone is not enough: a firewall REJECT or a
 * half-open route makes connections fail while the leader is alive and
 * still heard, and a follower that dropped its lease on that alone would
 * grant pre-votes and, with a majority seeing the same, depose a live
 * leader in two heartbeats.  A heartbeat is overdue FAST_MISSED_NUM /
 * FAST_MISSED_DEN heartbeat intervals after the last contact. */
#define FAST_MISSED_NUM 3
#define FAST_MISSED_DEN 2

static uint64_t missed_heartbeat_at(const struct raft *r)
{
    return r->leader_contact +
           (uint64_t)r->o.heartbeat_ms * FAST_MISSED_NUM / FAST_MISSED_DEN;
}

void raft__peer_down(struct raft *r, uint64_t id)
{
    assert(r->started && r->role != RAFT_STOPPED);
    /* First signal: note it, and look again once a heartbeat is overdue,
     * with a jitter of up to one heartbeat so that followers that all saw
     * the close do not split the vote.  Hearing the leader again withdraws
     * the signal (heard_from_leader). */
    if (r->role != RAFT_FOLLOWER || id == 0 || id != r->leader_id)
        return;
    r->down_leader = id;
    uint64_t at = missed_heartbeat_at(r);
    if (at < r->now)
        at = r->now;
    uint64_t d = at + 1 + raft__random_below(r, r->o.heartbeat_ms);
    if (r->fast_deadline == 0 || d < r->fast_deadline)
        r->fast_deadline = d;
}

/* raft__fast_path_tick: on a tick at or after fast_deadline, the second
 * signal: if the reported leader is still our leader and its heartbeat is
 * overdue, stop trusting it (drop the lease) and, with PreVote, pre-vote at
 * once instead of a whole election timeout later.  Safe: a pre-vote changes
 * no state, and peers that still hear the leader refuse it.  Without
 * PreVote only the lease goes (campaigning early could disrupt).  Returns
 * true when it started a pre-vote. */
bool raft__fast_path_tick(struct raft *r)
{
    assert(r->started && r->role != RAFT_LEADER && r->role != RAFT_STOPPED);
    if (r->fast_deadline == 0 || r->now < r->fast_deadline)
        return false;
    r->fast_deadline = 0;
    /* down_leader is our leader when set (raft__peer_down), and hearing a
     * leader clears it, fast_deadline with it: so leader_contact has not
     * moved since, and fast_deadline is past the missed heartbeat. */
    if (r->role != RAFT_FOLLOWER || r->down_leader == 0 || r->leader_id == 0)
        return false;
    r->down_leader = 0;
    r->leader_contact = 0;
    raft__set_leader(r, 0);
    /* On standby the lease still goes (so that this node grants others'
     * votes at once), but the campaign is left to the voters that may
     * lead (RAFT_EV_STANDBY). */
    if (!r->o.pre_vote || !raft__is_voter(r, r->o.id) || r->standby)
        return false;
    r->counters.fast_path_elections++;
    raft__campaign(r, true, false);
    return true;
}
