# shellcheck shell=bash
# scripts/lib/cluster.sh: forming a local xmppd cluster with the admin shell
# (mmp-cli), as an admin would (docs/cluster.md, "Commands").  Sourced by
# scripts/demo and scripts/bench, which start and stop the processes
# themselves.
#
# The caller defines, before calling these:
#   XC_N                 number of nodes (1..XC_N)
#   XC_DOMAIN            the XMPP domain
#   xc_name I            prints node I's name (its certificate's name)
#   xc_addr I            prints node I's address (also its peer address)
#   xc_state I           prints node I's state directory
#   xc_cmd I COMMAND     runs one admin command on node I; exits on failure
#                        (the demo shows it, the bench keeps quiet)
#   xc_out I COMMAND     runs one admin command on node I and prints its
#                        output as mmp-cli does; fails when the command does

# xc_pki DIR CA-NAME: a CA, a key and certificate per node (SANs: its name,
# its address, the domain and *.domain), and the CA bundle, all in DIR
# (certs/mkca, certs/mknode, certs/mkbundle).
xc_pki() {
  local dir=$1 ca=$2 i certs
  certs="$(dirname "${BASH_SOURCE[0]}")/../../certs"
  "$certs/mkca" "$dir" "$ca" >/dev/null
  for i in $(seq "$XC_N"); do
    "$certs/mknode" "$dir" "$(xc_name "$i")" --domain "$XC_DOMAIN" --dns "*.$XC_DOMAIN" \
      --ip "$(xc_addr "$i")" >/dev/null
  done
  "$certs/mkbundle" "$dir" >/dev/null
}

# xc_install_pki DIR I: copies node I's key and certificate and the CA bundle
# from DIR into its state directory's pki/ (mode 0600), as the admin does.
xc_install_pki() {
  local dir=$1 i=$2 f
  for f in "$(xc_name "$i").key" "$(xc_name "$i").crt" ca-bundle.pem; do
    install -m 0600 "$dir/$f" "$(xc_state "$i")/pki/$f"
  done
}

# xc_form: the admin commands on every node, in order: listen, certs, trust,
# cluster enable; the first node sets the domain and initializes the
# cluster, the others join it through the first, each with a one-time
# token that the first makes (xmpp cluster invite); then xmpp enable.
xc_form() {
  local i name tok
  for i in $(seq "$XC_N"); do
    name=$(xc_name "$i")
    xc_cmd "$i" "xmpp listen $(xc_addr "$i")"
    xc_cmd "$i" "xmpp certs $name.key $name.crt ca-bundle.pem"
    xc_cmd "$i" "xmpp cluster trust ca-bundle.pem"
    xc_cmd "$i" "xmpp cluster enable"
    if [ "$i" -eq 1 ]; then
      xc_cmd 1 "xmpp domain $XC_DOMAIN"
      xc_cmd 1 "xmpp cluster initialize"
    else
      tok=$(xc_out 1 "xmpp cluster invite" | sed -n 's/^Token: *//p')
      if [ -z "$tok" ]; then
        echo "$(xc_name 1): xmpp cluster invite printed no token" >&2
        exit 1
      fi
      xc_cmd "$i" "xmpp cluster join $(xc_addr 1) $tok"
    fi
    xc_cmd "$i" "xmpp enable"
  done
}
