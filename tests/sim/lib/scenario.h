/* scenario.h: scripted Raft scenarios over the in-memory cluster.
 *
 * A scenario file is a list of blocks, in the manner of etcd's testdata:
 *
 *     # comments (kept as they are)
 *     <command> <args...>
 *     ----
 *     <expected output lines>
 *     <blank line>
 *
 * Each command drives the cluster (cluster.h) and its output is what the
 * nodes did (role, term and leader changes; messages when "trace msgs" is
 * on) followed by the command's own result.  The runner compares the output
 * with the expected lines and reports a diff; with rewrite set it writes the
 * actual output back into the file instead.
 *
 * Commands (N, M: raft node ids):
 *   cluster <n> [prevote=on|off] [checkquorum=on|off] [seed=S] [profile=fast]
 *                             [trailing=N]
 *   trace msgs|state          print delivered messages, or only state changes
 *   campaign N                fire N's election timer now
 *   tick N                    fire N's timer (a leader's heartbeat)
 *   stabilize                 deliver messages until none is in flight
 *   run <ms>                  advance the clock, firing timers and delivering
 *   isolate N | heal | cut N M (one way N -> M) | partition N.. / M..
 *   submit N <data>           propose an entry at N
 *   add N <id> <addr> | promote N <id> | remove N <id>
 *   replace N <old> <id> <addr> | transfer N <to>
 *   crash N | restart N | newnode <id> <addr>
 *   peerdown N M              N's transport reports M's link closed for good
 *   inject <type> from=F to=T term=X [cluster=C] [pre]   queue a crafted message
 *   snapshot N                N snapshots at its applied index
 *   status | counters N | config N | check */
#ifndef SIM_SCENARIO_H
#define SIM_SCENARIO_H

#include <stdbool.h>
#include <stdio.h>

/* scn_run_file runs the scenario at path.  Returns 0 when every block's
 * output matched (or was rewritten), 1 on a mismatch (a diff is written to
 * report), or -1 when the file cannot be read or written. */
int scn_run_file(const char *path, bool rewrite, FILE *report);

#endif
