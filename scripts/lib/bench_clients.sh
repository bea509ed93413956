# shellcheck shell=bash
# shellcheck disable=SC2154,SC2034  # globals (status, node_pid, ...) are scripts/bench's
# scripts/lib/bench_clients.sh: the client (c2s) and WebSocket rows of
# scripts/bench (docs/benchmarks.md "Clients and WebSocket"), run by xmppd-loginbench.
# Sourced by scripts/bench; uses its globals: src, tmp, xmppd_bin, mmp_bin,
# node_pid (for the exit trap), status, notes.
#
# One node on $XMPPD_BENCH_CLIENT_ADDR (default 127.0.1.1, so that it never
# meets another server on 127.0.0.1:5222), started with an xmppd.conf
# (domain, limits raised for the idle rows, certificates from certs/), and
# $bc_users accounts bench1..benchN added with `xmpp user add` (password
# from stdin).  Rows:
#   login   $bc_logins logins, 50 at a time, SCRAM-SHA-256 and SCRAM-SHA-1,
#           with the ECDSA P-256 certificate (certs/ default) and an
#           RSA-2048 one (certs/mknode --rsa)
#   idle    $bc_idle connections on 5222 at each stage (stream; STARTTLS;
#           STARTTLS + SCRAM + bind), $bc_ws_idle on WebSocket (ws stream;
#           wss stream; wss + SCRAM + bind); a fresh process for each row,
#           so that one row's freed heap does not hide the next one's growth
#   msg     client to client on the node (bc_msg_one_node), and client to
#           a call bridge (XEP-0114 component) over 5222 and wss;
#           the same across two followers of the 3-node cluster
#           (bc_msg_cluster, from the cluster part of scripts/bench)
# Every message is numbered: the rows print lost, duplicated and reordered
# ones beside the rate.  The byte-rate shaper (`xmpp client rate`) is off
# and sessions per account unlimited for these rows: the rows measure the
# server, not its per-connection limits (docs/admin.md "Clients").
# The tool prints the numbers; nothing is compared with a threshold.

bc_users=${bc_users:-50}
bc_logins=${bc_logins:-1000}
bc_idle=${bc_idle:-2000}
bc_ws_idle=${bc_ws_idle:-5000}
bc_addr=${XMPPD_BENCH_CLIENT_ADDR:-127.0.1.1}
bc_domain=clients.bench.example
bc_dir="$tmp/clients"
bc_cb=bench-cb1 # the call bridge the component rows send to
bc_cb_secret=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
lb_bin="$bdir/tests/bench/xmppd-loginbench"

# bc_start: (re)starts the clients node n0 from its state directory and
# waits for its client listener.
bc_start() {
  "$xmppd_bin" --state-dir "$bc_dir/state" --name n0 --log-level warn \
    2>>"$bc_dir/log" &
  node_pid["n0"]=$!
  for _ in $(seq 100); do
    [ -S "$bc_dir/state/control.sock" ] && (exec 3<>"/dev/tcp/$bc_addr/5222") 2>/dev/null &&
      return 0
    kill -0 "${node_pid["n0"]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "bench: the clients node did not start:" >&2
  tail -n 20 "$bc_dir/log" >&2
  exit 1
}

bc_stop() {
  local pid=${node_pid["n0"]:-}
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  unset 'node_pid["n0"]'
}

bc_mmp() {
  timeout 30 "$mmp_bin" --socket "$bc_dir/state/control.sock" -c "$1" </dev/null >/dev/null 2>&1
}

# bc_setup: PKI (ECDSA and RSA node certificates from one CA), the state
# directory with its xmppd.conf, the node, the accounts.
bc_setup() {
  local i certs="$src/certs"
  mkdir -m 700 "$bc_dir" "$bc_dir/state" "$bc_dir/state/pki"
  "$certs/mkca" "$bc_dir/pki" "xmppd bench clients CA" >/dev/null
  "$certs/mknode" "$bc_dir/pki" n0 --domain "$bc_domain" --ip "$bc_addr" >/dev/null
  "$certs/mkbundle" "$bc_dir/pki" >/dev/null
  # The RSA certificate: the same CA (copied), the same names.
  mkdir -m 700 "$bc_dir/pki-rsa"
  cp "$bc_dir/pki/ca.key" "$bc_dir/pki/ca.crt" "$bc_dir/pki-rsa/"
  "$certs/mknode" "$bc_dir/pki-rsa" n0 --domain "$bc_domain" --ip "$bc_addr" --rsa >/dev/null
  install -m 0600 "$bc_dir/pki/n0.key" "$bc_dir/state/pki/n0.key"
  install -m 0600 "$bc_dir/pki/n0.crt" "$bc_dir/state/pki/n0.crt"
  install -m 0600 "$bc_dir/pki/ca-bundle.pem" "$bc_dir/state/pki/ca-bundle.pem"
  install -m 0600 "$bc_dir/pki-rsa/n0.key" "$bc_dir/state/pki/n0-rsa.key"
  install -m 0600 "$bc_dir/pki-rsa/n0.crt" "$bc_dir/state/pki/n0-rsa.crt"
  # Limits above the idle rows' connection counts (docs/admin.md "Limits");
  # auth-timeout and keepalive long enough that a held, unauthenticated
  # connection is not closed while the others are being opened.
  (
    umask 077
    cat >"$bc_dir/state/xmppd.conf" <<EOF
# written by scripts/bench (clients)
domain $bc_domain
component-listen $bc_addr:$(free_port)
max-connections 20000
max-connections-per-address 20000
auth-timeout 600
keepalive 600
certs n0.key n0.crt ca-bundle.pem
callbridge $bc_cb $bc_cb_secret
EOF
  )
  bc_start
  # Node-local settings (node.state): they survive bc_start.
  bc_mmp "xmpp client rate off" || status=1
  bc_mmp "xmpp client max-sessions 0" || status=1
  for i in $(seq "$bc_users"); do
    printf 'benchpw%s\n' "$i" |
      timeout 30 "$mmp_bin" --socket "$bc_dir/state/control.sock" -c "xmpp user add bench$i" \
        >/dev/null 2>>"$notes" || {
      echo "bench: xmpp user add bench$i failed" >&2
      exit 1
    }
  done
}

# bc_lb ARGS...: one xmppd-loginbench row against the clients node; its
# stdout is the row, its complaints go to the notes.
bc_lb() {
  "$lb_bin" --domain "$bc_domain" --ca "$bc_dir/pki/ca-bundle.pem" --users "$bc_users" \
    --user-prefix bench --password-prefix benchpw --server-pid "${node_pid["n0"]}" \
    --sources 32 "$@" 2>>"$notes" || status=1
}

bc_login_rows() {
  local key mech
  echo
  echo "clients: $bc_logins logins per row, 50 at a time: STARTTLS + SCRAM + bind + presence +" \
       "ping + close; client_ms = the load tool's own CPU, server_ms = xmppd's CPU, per login"
  "$lb_bin" --mode login --header
  for key in ECDSA RSA; do
    if [ "$key" = RSA ]; then
      bc_mmp "xmpp certs n0-rsa.key n0-rsa.crt ca-bundle.pem" || status=1
    else
      bc_mmp "xmpp certs n0.key n0.crt ca-bundle.pem" || status=1
    fi
    sleep 0.5
    for mech in sha256 sha1; do
      bc_lb --mode login --target "$bc_addr:5222" --logins "$bc_logins" --concurrency 50 \
        --mech "$mech" --label "xmppd $key SCRAM-$([ $mech = sha1 ] && echo SHA-1 || echo SHA-256)"
    done
  done
  bc_mmp "xmpp certs n0.key n0.crt ca-bundle.pem" || status=1
}

# bc_idle_row LABEL K STAGE [SETTING] -- TRANSPORT-ARGS: one idle row on a
# fresh process (SETTING: an admin command first, e.g. TLS optional).
bc_idle_row() {
  local label=$1 k=$2 stage=$3 setting=$4
  shift 5
  bc_stop
  bc_start
  [ -z "$setting" ] || bc_mmp "$setting" || status=1
  sleep 1
  bc_lb --mode idle --conns "$k" --stage "$stage" --concurrency 100 --settle 2 \
    --label "$label" "$@"
  [ -z "$setting" ] || bc_mmp "xmpp tls client required" || status=1
}

bc_idle_rows() {
  local ws="$bc_addr:5280/xmpp-websocket" wss="$bc_addr:5281/xmpp-websocket"
  echo
  echo "clients: idle connections held at a stage; the server's memory growth per connection" \
       "(KiB, smaps_rollup Rss, Pss, private); a fresh xmppd per row"
  "$lb_bin" --mode idle --header
  bc_idle_row "xmppd 5222" "$bc_idle" stream "" -- --target "$bc_addr:5222"
  bc_idle_row "xmppd 5222" "$bc_idle" tls "" -- --target "$bc_addr:5222"
  bc_idle_row "xmppd 5222" "$bc_idle" bind "" -- --target "$bc_addr:5222"
  # Plain ws is only open to clients with TLS optional (docs/websocket.md).
  bc_idle_row "xmppd ws" "$bc_ws_idle" stream "xmpp tls client optional" -- --ws "ws://$ws"
  bc_idle_row "xmppd wss" "$bc_ws_idle" stream "" -- --ws "wss://$wss"
  bc_idle_row "xmppd wss" "$bc_ws_idle" bind "" -- --ws "wss://$wss"
}

# bc_msg_one_node: client-to-client messages, both ends on the node; then
# clients to the call bridge $bc_cb on the node's component listener.
bc_msg_one_node() {
  local w conf="$bc_dir/state/xmppd.conf"
  local -a cb=(--component "$bc_cb" --secrets-file "$conf"
    --component-target "$(sed -n 's/^component-listen //p' "$conf")")
  echo
  echo "clients: messages client to client (full JID), 4 pairs, both ends on one node;" \
       "lost/dup/ooo/bad: numbered messages lost, duplicated, reordered, unreadable"
  "$lb_bin" --mode msg --header
  for w in 1 16; do
    bc_lb --mode msg --target "$bc_addr:5222" --target "$bc_addr:5222" --pairs 4 \
      --window "$w" --size 200 --duration "$duration" --label "xmppd 1 node"
  done
  bc_lb --mode msg --ws "wss://$bc_addr:5281/xmpp-websocket" --pairs 4 --window 16 \
    --size 200 --duration "$duration" --label "xmppd 1 node wss"
  echo
  echo "clients: messages from 4 clients to one call bridge (XEP-0114 component), one node"
  "$lb_bin" --mode msg --header
  for w in 1 16; do
    bc_lb --mode msg --target "$bc_addr:5222" "${cb[@]}" --pairs 4 --window "$w" \
      --size 200 --duration "$duration" --label "xmppd 5222 to bridge"
  done
  bc_lb --mode msg --ws "wss://$bc_addr:5281/xmpp-websocket" "${cb[@]}" --pairs 4 \
    --window 16 --size 200 --duration "$duration" --label "xmppd wss to bridge"
}

# bc_clients: the one-node client rows (login, idle, msg), then stops the
# node.
bc_clients() {
  local hard
  # The idle rows hold thousands of sockets in xmppd and in the tool.
  hard=$(ulimit -Hn)
  if [ "$hard" != unlimited ] && [ "$hard" -lt $((bc_ws_idle + 512)) ]; then
    echo "bench: ulimit -Hn is $hard; the idle rows want $((bc_ws_idle + 512))" >&2
  fi
  ulimit -n "$hard" 2>/dev/null || true
  bc_setup
  bc_login_rows
  bc_msg_one_node
  bc_idle_rows
  bc_stop
  if [ -s "$bc_dir/log" ]; then
    echo
    echo "xmppd clients node log (warnings and errors, last 5 lines):"
    tail -n 5 "$bc_dir/log" | sed 's/^/  /'
  fi
}

# bc_msg_cluster DOMAIN CA F1 F2 SECRETS CB PID...: messages from clients
# on follower F1 (address) to clients on follower F2, then to the call
# bridge CB (its secret in the file SECRETS) connected to F2; accounts
# bench1..bench8 must exist, the shaper be off on every node.
bc_msg_cluster() {
  local dom=$1 ca=$2 f1=$3 f2=$4 secrets=$5 cbn=$6 w
  shift 6
  local -a pids=()
  for p in "$@"; do pids+=(--server-pid "$p"); done
  local -a acc=(--domain "$dom" --ca "$ca" --users 8 --user-prefix bench
    --password-prefix benchpw)
  echo
  echo "clients: messages client to client across two followers (sender on one, receiver" \
       "on the other); server% sums the three nodes"
  "$lb_bin" --mode msg --header
  for w in 1 16; do
    "$lb_bin" --mode msg "${acc[@]}" --target "$f1:5222" --target "$f2:5222" --pairs 4 \
      --window "$w" --size 200 --duration "$duration" --settle 1 "${pids[@]}" \
      --label "xmppd 2 followers" 2>>"$notes" || status=1
  done
  echo
  echo "clients: messages to a call bridge across two followers (clients on one, the" \
       "bridge on the other); server% sums the three nodes"
  "$lb_bin" --mode msg --header
  for w in 1 16; do
    "$lb_bin" --mode msg "${acc[@]}" --target "$f1:5222" --component "$cbn" \
      --secrets-file "$secrets" --component-target "$f2:5223" --pairs 4 --window "$w" \
      --size 200 --duration "$duration" --settle 1 "${pids[@]}" \
      --label "xmppd 2 followers bridge" 2>>"$notes" || status=1
  done
  "$lb_bin" --mode msg "${acc[@]}" --ws "wss://$f1:5281/xmpp-websocket" --component "$cbn" \
    --secrets-file "$secrets" --component-target "$f2:5223" --pairs 4 --window 16 \
    --size 200 --duration "$duration" --settle 1 "${pids[@]}" \
    --label "xmppd 2 fol. wss bridge" 2>>"$notes" || status=1
}

# ---- the same rows on another server (scripts/anchors) ----------------------
# bc_anchor_rows SERVER: the login, msg and idle rows on SERVER (prosody,
# ejabberd), started by scripts/anchors (from the anchors branch: `start
# SERVER DIR [--rsa] --accounts N --password P` prints its target as shell
# assignments in DIR/target.env; `stop DIR`).  A fresh server for each idle
# row and for the RSA login rows, as for xmppd.  Does nothing when
# scripts/anchors is absent.
bc_anchor_start() { # SERVER DIR [OPTIONS]: start, then load DIR/target.env
  local server=$1 dir=$2
  shift 2
  "$src/scripts/anchors" start "$server" "$dir" --accounts "$bc_users" \
    --password bench-anchor-pw "$@" >/dev/null 2>>"$notes" || return 1
  # shellcheck disable=SC1091  # written by scripts/anchors
  . "$dir/target.env"
  bc_apids=()
  # shellcheck disable=SC2153  # PIDS comes from target.env
  for p in $PIDS; do
    bc_apids+=(--server-pid "$p")
    node_pid["anchor$p"]=$p # the exit trap stops it if the bench dies
  done
}

bc_anchor_stop() { # DIR
  local p
  "$src/scripts/anchors" stop "$1" >/dev/null 2>>"$notes" || true
  for p in $PIDS; do unset "node_pid[anchor$p]"; done
}

bc_alb() { # xmppd-loginbench against the anchor loaded last
  "$lb_bin" --domain "$DOMAIN" --ca "$CA_FILE" --user-prefix "$ACCOUNT_PREFIX" \
    --users "$ACCOUNTS" --password "$PASSWORD" "${bc_apids[@]}" "$@" 2>>"$notes" || status=1
}

bc_anchor_rows() {
  local server=$1 dir base key mech m ver row label stage k how
  local -a rsa
  [ -x "$src/scripts/anchors" ] || return 0
  # The servers run as their packages' users: their directory must be
  # reachable by them ($tmp is 0700), as scripts/bench does for --anchors.
  base=$(mktemp -d "${TMPDIR:-/tmp}/xmppd-anchors.XXXXXX")
  chmod 711 "$base"
  anchor_dirs+=("$base")
  dir="$base/$server"
  ver=$("$src/scripts/anchors" version "$server" 2>/dev/null || echo "$server")
  echo
  echo "clients on $ver (scripts/anchors), the same rows"
  "$lb_bin" --mode login --header
  for key in ECDSA RSA; do
    rsa=()
    [ "$key" = RSA ] && rsa=(--rsa)
    bc_anchor_start "$server" "$dir" "${rsa[@]}" || {
      echo "  ($server did not start; see the notes)"
      return 0
    }
    for mech in $SASL; do
      case "$mech" in SCRAM-SHA-1) m=sha1 ;; SCRAM-SHA-256) m=sha256 ;; *) continue ;; esac
      bc_alb --mode login --target "$C2S_HOST:$C2S_PORT" --logins "$bc_logins" \
        --concurrency 50 --mech "$m" --label "$server $key $mech"
    done
    if [ "$key" = ECDSA ]; then
      "$lb_bin" --mode msg --header
      bc_alb --mode msg --target "$C2S_HOST:$C2S_PORT" --target "$C2S_HOST:$C2S_PORT" \
        --pairs 4 --window 16 --size 200 --duration "$duration" --label "$server 1 node"
      bc_alb --mode msg --ws "$WSS_URL" --pairs 4 --window 16 --size 200 \
        --duration "$duration" --label "$server 1 node wss"
      # The first component of scripts/anchors (bench-a1) as the bridge.
      # shellcheck disable=SC2153  # from target.env
      set -- --component "${COMPONENTS%% *}" --secrets-file "$SECRETS_FILE" \
        --component-target "${COMPONENT_TARGETS%% *}"
      for w in 1 16; do
        bc_alb --mode msg --target "$C2S_HOST:$C2S_PORT" "$@" --pairs 4 --window "$w" \
          --size 200 --duration "$duration" --label "$server 5222 to bridge"
      done
      bc_alb --mode msg --ws "$WSS_URL" "$@" --pairs 4 --window 16 --size 200 \
        --duration "$duration" --label "$server wss to bridge"
    fi
    bc_anchor_stop "$dir"
  done
  "$lb_bin" --mode idle --header
  for row in "5222 stream $bc_idle c2s" "5222 tls $bc_idle c2s" "5222 bind $bc_idle c2s" \
    "ws stream $bc_ws_idle ws" "wss stream $bc_ws_idle wss" "wss bind $bc_ws_idle wss"; do
    read -r label stage k how <<<"$row"
    bc_anchor_start "$server" "$dir" || continue
    case "$how" in
      c2s) set -- --target "$C2S_HOST:$C2S_PORT" ;;
      ws) set -- --ws "$WS_URL" ;;
      wss) set -- --ws "$WSS_URL" ;;
    esac
    bc_alb --mode idle --conns "$k" --stage "$stage" --concurrency 100 --settle 2 \
      --sources 32 --label "$server $label" "$@"
    bc_anchor_stop "$dir"
  done
}
