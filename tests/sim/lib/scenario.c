/* scenario.c: the interpreter of scenario files (see scenario.h). */
#include "scenario.h"

#include "cluster.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

struct out {
    char *s;
    size_t len;
    size_t cap;
};

static void out_add(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void out_add(struct out *o, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = sizeof line - 1;
    if (o->len + (size_t)n + 2 > o->cap) {
        o->cap = (o->len + (size_t)n + 2) * 2;
        o->s = realloc(o->s, o->cap);
        if (o->s == NULL)
            abort();
    }
    memcpy(o->s + o->len, line, (size_t)n);
    o->len += (size_t)n;
    o->s[o->len++] = '\n';
    o->s[o->len] = '\0';
}

static void out_raw(struct out *o, const char *p, size_t n)
{
    if (o->len + n + 2 > o->cap) {
        o->cap = (o->len + n + 2) * 2;
        o->s = realloc(o->s, o->cap);
        if (o->s == NULL)
            abort();
    }
    memcpy(o->s + o->len, p, n);
    o->len += n;
    o->s[o->len] = '\0';
}

struct scn {
    struct cluster c;
    bool have;
    struct out out;
};

static void on_trace(void *ud, const char *line)
{
    struct scn *s = ud;
    out_add(&s->out, "%s", line);
}

#define MAX_ARGS 16

static int split(char *line, char **argv)
{
    int n = 0;
    for (char *t = strtok(line, " \t"); t != NULL && n < MAX_ARGS;
         t = strtok(NULL, " \t"))
        argv[n++] = t;
    return n;
}

static const char *kv(int argc, char **argv, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], key, kl) == 0 && argv[i][kl] == '=')
            return argv[i] + kl + 1;
    return NULL;
}

static bool has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], flag) == 0)
            return true;
    return false;
}

/* slot of node id given as text, or -1 with an error line */
static int node(struct scn *s, const char *arg)
{
    int slot = arg ? cl_slot(&s->c, strtoull(arg, NULL, 10)) : -1;
    if (slot < 0)
        out_add(&s->out, "error: no node %s", arg ? arg : "(missing)");
    return slot;
}

static void result(struct scn *s, int rc, uint64_t index)
{
    if (rc != 0)
        out_add(&s->out, "error: %s", raft_errname(rc));
    else if (index != 0)
        out_add(&s->out, "ok index=%" PRIu64, index);
    else
        out_add(&s->out, "ok");
}

static void print_config(struct scn *s, const struct raft_config *c, char *buf,
                         size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < c->n && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%sn%" PRIu64 "%s", i ? "," : "",
                              c->members[i].id,
                              c->members[i].role == RAFT_VOTER ? "" : "(nonvoter)");
    (void)s;
}

static void cmd_status(struct scn *s)
{
    for (unsigned i = 0; i < s->c.n; i++) {
        struct cl_node *nd = &s->c.nodes[i];
        if (nd->r == NULL) {
            out_add(&s->out, "n%" PRIu64 " down", nd->id);
            continue;
        }
        struct raft_status st;
        raft_status(nd->r, &st);
        char cfg[512], leader[32] = "none";
        print_config(s, raft_get_config(nd->r), cfg, sizeof cfg);
        if (st.leader_id != 0)
            snprintf(leader, sizeof leader, "n%" PRIu64, st.leader_id);
        out_add(&s->out,
                "n%" PRIu64 " %s term=%" PRIu64 " leader=%s commit=%" PRIu64
                " last=%" PRIu64 " applied=%" PRIu64 " config=%s%s",
                nd->id, raft_role_name(st.role), st.term, leader, st.commit_index,
                st.last_index, nd->applied, cfg, st.removed ? " removed" : "");
    }
}

static void cmd_counters(struct scn *s, int slot)
{
    const struct raft_counters *k = raft_get_counters(s->c.nodes[slot].r);
#define CNT_(f)                                                                          \
    if (k->f != 0)                                                                       \
        out_add(&s->out, "%s=%" PRIu64, #f, k->f);
    CNT_(dropped_cluster)
    CNT_(dropped_misrouted)
    CNT_(dropped_non_member)
    CNT_(dropped_stale)
    CNT_(ignored_in_lease)
    CNT_(elections)
    CNT_(pre_elections)
    CNT_(leader_changes)
    CNT_(check_quorum_stepdowns)
    CNT_(snapshots_sent)
    CNT_(snapshots_installed)
    CNT_(transfers)
    CNT_(fast_path_elections)
    CNT_(standby_deferred)
    CNT_(standby_timeout_now)
    CNT_(standby_campaigns)
#undef CNT_
}

static int cmd_cluster(struct scn *s, int argc, char **argv)
{
    if (s->have)
        cl_free(&s->c);
    struct raft_options o;
    raft_options_default(&o);
    const char *v;
    if ((v = kv(argc, argv, "prevote")) != NULL)
        o.pre_vote = strcmp(v, "on") == 0;
    if ((v = kv(argc, argv, "checkquorum")) != NULL)
        o.check_quorum = strcmp(v, "on") == 0;
    if ((v = kv(argc, argv, "profile")) != NULL && strcmp(v, "fast") == 0)
        raft_options_fast_lan(&o);
    if ((v = kv(argc, argv, "trailing")) != NULL)
        o.snapshot_trailing = strtoull(v, NULL, 10);
    uint64_t seed = (v = kv(argc, argv, "seed")) ? strtoull(v, NULL, 10) : 1;
    unsigned n = argc > 1 ? (unsigned)atoi(argv[1]) : 3;
    int rc = cl_init(&s->c, n, seed, &o);
    s->have = rc == 0;
    s->c.trace = on_trace;
    s->c.trace_ud = s;
    s->c.trace_msgs = true;
    return rc;
}

static void cmd_inject(struct scn *s, int argc, char **argv)
{
    struct raft_message m;
    memset(&m, 0, sizeof m);
    const char *t = argv[1];
    if (strcmp(t, "vote") == 0)
        m.type = RAFT_MSG_VOTE;
    else if (strcmp(t, "append") == 0)
        m.type = RAFT_MSG_APPEND;
    else if (strcmp(t, "timeout_now") == 0)
        m.type = RAFT_MSG_TIMEOUT_NOW;
    else {
        out_add(&s->out, "error: unknown message type %s", t);
        return;
    }
    const char *v;
    m.cluster_id =
        (v = kv(argc, argv, "cluster")) ? strtoull(v, NULL, 0) : s->c.cluster_id;
    m.from = (v = kv(argc, argv, "from")) ? strtoull(v, NULL, 10) : 0;
    m.to = (v = kv(argc, argv, "to")) ? strtoull(v, NULL, 10) : 0;
    m.term = (v = kv(argc, argv, "term")) ? strtoull(v, NULL, 10) : 0;
    if (m.type == RAFT_MSG_VOTE) {
        m.u.vote.pre_vote = has_flag(argc, argv, "pre");
        m.u.vote.last_index = (v = kv(argc, argv, "last")) ? strtoull(v, NULL, 10) : 1000;
        m.u.vote.last_term = m.term;
    }
    if (m.type == RAFT_MSG_APPEND) {
        m.u.append.prev_index = (v = kv(argc, argv, "prev")) ? strtoull(v, NULL, 10) : 0;
        m.u.append.commit = 0;
    }
    cl_inject(&s->c, &m);
    out_add(&s->out, "ok");
}

static void cmd_change(struct scn *s, int argc, char **argv, int slot)
{
    struct raft_event ev = {.type = RAFT_EV_CHANGE};
    const char *c = argv[0];
    if (strcmp(c, "add") == 0 && argc >= 4) {
        ev.u.change.kind = RAFT_CHANGE_ADD;
        ev.u.change.id = strtoull(argv[2], NULL, 10);
        ev.u.change.address = argv[3];
    } else if (strcmp(c, "promote") == 0 && argc >= 3) {
        ev.u.change.kind = RAFT_CHANGE_PROMOTE;
        ev.u.change.id = strtoull(argv[2], NULL, 10);
    } else if (strcmp(c, "remove") == 0 && argc >= 3) {
        ev.u.change.kind = RAFT_CHANGE_REMOVE;
        ev.u.change.id = strtoull(argv[2], NULL, 10);
    } else if (strcmp(c, "replace") == 0 && argc >= 5) {
        ev.u.change.kind = RAFT_CHANGE_REPLACE;
        ev.u.change.old_id = strtoull(argv[2], NULL, 10);
        ev.u.change.id = strtoull(argv[3], NULL, 10);
        ev.u.change.address = argv[4];
    } else {
        out_add(&s->out, "error: usage");
        return;
    }
    struct cl_node *nd = &s->c.nodes[slot];
    int rc = cl_step(&s->c, (unsigned)slot, &ev);
    struct raft_status st;
    raft_status(nd->r, &st);
    result(s, rc, rc == 0 && ev.u.change.kind != RAFT_CHANGE_PROMOTE ? st.last_index : 0);
}

/* Command handlers: argv[0] is the command; the table below checks argc. */

static void c_trace(struct scn *s, int argc, char **argv)
{
    s->c.trace_msgs = argc > 1 && strcmp(argv[1], "msgs") == 0;
    out_add(&s->out, "ok");
}

static void c_timer(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot >= 0)
        cl_fire_timer(&s->c, (unsigned)slot);
}

static void c_stabilize(struct scn *s, int argc, char **argv)
{
    if (!cl_stabilize(&s->c, 100000))
        out_add(&s->out, "error: did not stabilize");
}

static void c_run(struct scn *s, int argc, char **argv)
{
    cl_run(&s->c, strtoull(argv[1], NULL, 10));
}

static void c_isolate(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot >= 0)
        cl_isolate(&s->c, (unsigned)slot);
    out_add(&s->out, "ok");
}

static void c_heal(struct scn *s, int argc, char **argv)
{
    cl_heal(&s->c);
    out_add(&s->out, "ok");
}

static void c_cut(struct scn *s, int argc, char **argv)
{
    int a = node(s, argv[1]), b = node(s, argv[2]);
    if (a >= 0 && b >= 0)
        cl_cut(&s->c, (unsigned)a, (unsigned)b, true);
    out_add(&s->out, "ok");
}

static void c_partition(struct scn *s, int argc, char **argv)
{
    int side[MAX_ARGS], grp[MAX_ARGS], n = 0, group = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "/") == 0) {
            group = 1;
            continue;
        }
        if ((side[n] = node(s, argv[i])) >= 0)
            grp[n++] = group;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (grp[i] != grp[j])
                cl_cut(&s->c, (unsigned)side[i], (unsigned)side[j], true);
    out_add(&s->out, "ok");
}

static void c_submit(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot < 0)
        return;
    uint64_t index = 0;
    int rc = cl_submit(&s->c, (unsigned)slot, argv[2], &index);
    result(s, rc, index);
}

static void c_change(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot >= 0)
        cmd_change(s, argc, argv, slot);
}

static void c_transfer(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot < 0)
        return;
    struct raft_event ev = {.type = RAFT_EV_TRANSFER};
    ev.u.transfer.to = strtoull(argv[2], NULL, 10);
    result(s, cl_step(&s->c, (unsigned)slot, &ev), 0);
}

static void c_standby(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot < 0)
        return;
    struct raft_event ev = {.type = RAFT_EV_STANDBY};
    ev.u.standby.on = strcmp(argv[2], "on") == 0;
    result(s, cl_step(&s->c, (unsigned)slot, &ev), 0);
}

static void c_crash(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot >= 0)
        cl_crash(&s->c, (unsigned)slot);
}

static void c_restart(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot >= 0)
        result(s, cl_restart(&s->c, (unsigned)slot), 0);
}

static void c_newnode(struct scn *s, int argc, char **argv)
{
    int rc = cl_add_node(&s->c, strtoull(argv[1], NULL, 10), argv[2]);
    result(s, rc < 0 ? rc : 0, 0);
}

static void c_peerdown(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot < 0)
        return;
    struct raft_event ev = {.type = RAFT_EV_PEER_DOWN};
    ev.u.peer_down.id = strtoull(argv[2], NULL, 10);
    result(s, cl_step(&s->c, (unsigned)slot, &ev), 0);
}

static void c_snapshot(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot < 0)
        return;
    char data[64];
    uint64_t idx = s->c.nodes[slot].applied;
    snprintf(data, sizeof data, "state@%" PRIu64, idx);
    struct raft_event ev = {.type = RAFT_EV_SNAPSHOT};
    ev.u.snapshot.index = idx;
    ev.u.snapshot.data.base = data;
    ev.u.snapshot.data.len = strlen(data);
    result(s, cl_step(&s->c, (unsigned)slot, &ev), idx);
}

static void c_status(struct scn *s, int argc, char **argv)
{
    cmd_status(s);
}

static void c_counters(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot >= 0 && s->c.nodes[slot].r != NULL)
        cmd_counters(s, slot);
}

static void c_config(struct scn *s, int argc, char **argv)
{
    int slot = node(s, argv[1]);
    if (slot >= 0 && s->c.nodes[slot].r != NULL) {
        char cfg[512];
        print_config(s, raft_get_config(s->c.nodes[slot].r), cfg, sizeof cfg);
        out_add(&s->out, "%s", cfg);
    }
}

static void c_check(struct scn *s, int argc, char **argv)
{
    cl_check_logs(&s->c);
    out_add(&s->out, "%s", cl_ok(&s->c) ? "ok" : s->c.violation);
}

static const struct {
    const char *name;
    int min_argc; /* including the command */
    void (*fn)(struct scn *s, int argc, char **argv);
} commands[] = {
    {"trace", 1, c_trace},
    {"campaign", 2, c_timer},
    {"tick", 2, c_timer},
    {"stabilize", 1, c_stabilize},
    {"run", 2, c_run},
    {"isolate", 2, c_isolate},
    {"heal", 1, c_heal},
    {"cut", 3, c_cut},
    {"partition", 2, c_partition},
    {"submit", 3, c_submit},
    {"add", 4, c_change},
    {"promote", 3, c_change},
    {"remove", 3, c_change},
    {"replace", 5, c_change},
    {"transfer", 3, c_transfer},
    {"standby", 3, c_standby},
    {"crash", 2, c_crash},
    {"restart", 2, c_restart},
    {"newnode", 3, c_newnode},
    {"peerdown", 3, c_peerdown},
    {"inject", 2, cmd_inject},
    {"snapshot", 2, c_snapshot},
    {"status", 1, c_status},
    {"counters", 2, c_counters},
    {"config", 2, c_config},
    {"check", 1, c_check},
};

/* exec runs one command line, appending its output to s->out. */
static void exec(struct scn *s, char *line)
{
    char *argv[MAX_ARGS];
    int argc = split(line, argv);
    if (argc == 0)
        return;
    if (strcmp(argv[0], "cluster") == 0) {
        result(s, cmd_cluster(s, argc, argv), 0);
        return;
    }
    if (!s->have) {
        out_add(&s->out, "error: no cluster");
        return;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[0], commands[i].name) != 0)
            continue;
        if (argc < commands[i].min_argc)
            out_add(&s->out, "error: %s needs %d arguments", argv[0],
                    commands[i].min_argc - 1);
        else
            commands[i].fn(s, argc, argv);
        return;
    }
    out_add(&s->out, "error: unknown command %s", argv[0]);
}

/* ---- the file format ------------------------------------------------------- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    struct out o = {0};
    char buf[4096];
    size_t n;
    o.s = calloc(1, 1);
    while (o.s != NULL && (n = fread(buf, 1, sizeof buf, f)) > 0) {
        o.s = realloc(o.s, o.len + n + 1);
        if (o.s == NULL)
            break;
        memcpy(o.s + o.len, buf, n);
        o.len += n;
        o.s[o.len] = '\0';
    }
    fclose(f);
    return o.s;
}

static void diff(FILE *report, const char *cmd, const char *want, const char *got)
{
    fprintf(report, "--- mismatch after: %s\n", cmd);
    const char *a = want, *b = got;
    while (*a || *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t la = ea ? (size_t)(ea - a) : strlen(a);
        size_t lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la == lb && memcmp(a, b, la) == 0) {
            fprintf(report, "  %.*s\n", (int)la, a);
        } else {
            if (*a)
                fprintf(report, "- %.*s\n", (int)la, a);
            if (*b)
                fprintf(report, "+ %.*s\n", (int)lb, b);
        }
        a = ea ? ea + 1 : a + la;
        b = eb ? eb + 1 : b + lb;
    }
}

int scn_run_file(const char *path, bool rewrite, FILE *report)
{
    char *text = read_all(path);
    if (text == NULL)
        return -1;
    struct scn *s = calloc(1, sizeof *s);
    struct out newfile = {0};
    int status = 0;
    char *p = text;
    while (*p) {
        char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char *next = nl ? nl + 1 : p + len;
        if (len == 0 || p[0] == '#') {
            out_raw(&newfile, p, len);
            out_raw(&newfile, "\n", 1);
            p = next;
            continue;
        }
        /* a command line, then "----", then expected lines to a blank line */
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%.*s", (int)len, p);
        p = next;
        struct out want = {0};
        if (strncmp(p, "----", 4) == 0 && (p[4] == '\n' || p[4] == '\0')) {
            p += p[4] ? 5 : 4;
            while (*p && *p != '\n') {
                nl = strchr(p, '\n');
                len = nl ? (size_t)(nl - p) : strlen(p);
                out_raw(&want, p, len);
                out_raw(&want, "\n", 1);
                p = nl ? nl + 1 : p + len;
            }
        }
        s->out.len = 0;
        if (s->out.s)
            s->out.s[0] = '\0';
        char copy[512];
        memcpy(copy, cmd, sizeof copy);
        exec(s, copy);
        const char *got = s->out.s ? s->out.s : "";
        const char *exp = want.s ? want.s : "";
        if (strcmp(got, exp) != 0) {
            if (!rewrite) {
                diff(report, cmd, exp, got);
                status = 1;
            }
        }
        out_raw(&newfile, cmd, strlen(cmd));
        out_raw(&newfile, "\n----\n", 6);
        out_raw(&newfile, s->out.s ? s->out.s : "", s->out.len);
        free(want.s);
        /* the blank line that ends the block */
        if (*p == '\n')
            p++;
        out_raw(&newfile, "\n", 1);
    }
    if (rewrite) {
        FILE *f = fopen(path, "wb");
        if (f == NULL) {
            status = -1;
        } else {
            /* drop the final blank line added after the last block */
            size_t n = newfile.len;
            while (n > 1 && newfile.s[n - 1] == '\n' && newfile.s[n - 2] == '\n')
                n--;
            fwrite(newfile.s, 1, n, f);
            fclose(f);
        }
    }
    if (s->have)
        cl_free(&s->c);
    free(s->out.s);
    free(s);
    free(newfile.s);
    free(text);
    return status;
}
