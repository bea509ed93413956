/* main.c: the xmppd daemon: parse the command line, start the node, run.
 *
 *     xmppd --state-dir DIR [--name n1] [--log-level error|warn|info|debug|trace]
 *           [--log auto|stderr|syslog]
 *     xmppd --version
 *
 * DIR is all a node needs (node.h lists what it holds).  Startup errors
 * print one line "xmppd: <what is wrong>" and exit 1; usage errors exit 2; a
 * clean shutdown (SIGTERM, SIGINT) exits 0.  Under systemd (Type=notify) it
 * says READY=1 once started and STOPPING=1 at shutdown (io/service.h); log
 * lines carry syslog priorities when stderr is the journal or with --log
 * syslog (io/logsink.h). */
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>
#include <sodium.h>

#include "logging.h"
#include "logsink.h"
#include "node.h"
#include "peer.h"
#include "rnode.h"
#include "service.h"

/* A build capped at an older peer frame version (cmake: the xmppd_v2
 * target, XMPPD_PFRAME_MAX=2) speaks XMPPD_PFRAME_MIN..XMPPD_PFRAME_MAX,
 * as a node of that version would; one with the oldest raised
 * (xmppd_v3only, XMPPD_PFRAME_MIN=3; xmppd_v4only, 4) is what a later
 * build that dropped version 2 (and 3) would be.  xmppd_v3 is the build
 * before sessions: frames up to 3 and, XMPPD_ENTRY_MAX=2, no version 3
 * entries (it stops at the first, as that build's decoder does).  The
 * rolling-upgrade test runs them (docs/cluster.md "Rolling upgrade"). */
#ifndef XMPPD_PFRAME_MIN
#define XMPPD_PFRAME_MIN PFRAME_VERSION_MIN
#endif
#ifndef XMPPD_PFRAME_MAX
#define XMPPD_PFRAME_MAX PFRAME_VERSION_MAX
#endif

/* Control answers may carry a call-bridge secret (xmpp callbridge add,
 * list): what jansson frees is wiped first. */
static void wiping_free(void *p)
{
    if (p == NULL)
        return;
    sodium_memzero(p, malloc_usable_size(p));
    free(p);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: xmppd --state-dir DIR [--name NAME] "
               "[--log-level error|warn|info|debug|trace]\n"
               "             [--log auto|stderr|syslog]\n"
               "       xmppd --version\n");
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"state-dir", required_argument, NULL, 'd'},
        {"name", required_argument, NULL, 'n'},
        {"log-level", required_argument, NULL, 'l'},
        {"log", required_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct node_opts opts = {
        .state_dir = NULL, .name = "n1", .level = LOG_INFO, .log_mode = LOGSINK_AUTO};
    enum logsink_mode mode;
    struct node *node;
    char err[1024];
    int ch, rc;

    while ((ch = getopt_long(argc, argv, "d:n:l:L:Vh", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            opts.state_dir = optarg;
            break;
        case 'n':
            opts.name = optarg;
            break;
        case 'l':
            if (log_level_parse(optarg, &opts.level) < 0) {
                fprintf(stderr, "xmppd: unknown log level '%s'\n", optarg);
                usage(stderr);
                return 2;
            }
            break;
        case 'L':
            if (logsink_mode_parse(optarg, &mode) < 0) {
                fprintf(stderr, "xmppd: --log must be auto, stderr or syslog, not '%s'\n",
                        optarg);
                usage(stderr);
                return 2;
            }
            opts.log_mode = (int)mode;
            break;
        case 'V':
            printf("xmppd %s (peer protocol versions %d..%d)\n", XMPPD_VERSION,
                   XMPPD_PFRAME_MIN, XMPPD_PFRAME_MAX);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (opts.state_dir == NULL || optind != argc) {
        fprintf(stderr, "xmppd: %s\n",
                opts.state_dir == NULL ? "--state-dir is required"
                                       : "unexpected argument");
        usage(stderr);
        return 2;
    }
    if (peer_build_versions(XMPPD_PFRAME_MIN, XMPPD_PFRAME_MAX) < 0) {
        fprintf(stderr,
                "xmppd: built for peer protocol versions %d..%d, which this codec "
                "does not speak\n",
                XMPPD_PFRAME_MIN, XMPPD_PFRAME_MAX);
        return 1;
    }
#ifdef XMPPD_ENTRY_MAX
    rnode_build_entries(XMPPD_ENTRY_MAX);
#endif
    json_set_alloc_funcs(malloc, wiping_free);
    rc = node_start(&opts, &node, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "xmppd: %s\n", err);
        return 1;
    }
    service_notify_ready("control socket up; see xmpp status");
    rc = node_run(node);
    node_free(node);
    return rc;
}
