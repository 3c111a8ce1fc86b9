#!/bin/sh
# Side by side with the peers (benches/peers/main.rs): installs the peers if they are
# missing, snapshots the host's network state, runs the harness, and fails if the host's
# links, nf_tables ruleset, iptables rules (nft and legacy) or named namespaces changed.
#
#   benches/peers/run.sh                                   # counts 1, 50, 500
#   NETPLUMB_PEERS_COUNTS=1,50 benches/peers/run.sh        # quick run
#   NETPLUMB_PEERS_SLOW_MAX=50 benches/peers/run.sh        # CNI and netavark up to 50 only
#
# Needs root (the harness works in throwaway namespaces; the install needs apt-get).
# Results: target/bench-results/peers.json; the table goes to standard output.
set -eu
cd "$(dirname "$0")/../.."

missing=""
dpkg -s containernetworking-plugins >/dev/null 2>&1 || missing="$missing containernetworking-plugins"
dpkg -s netavark >/dev/null 2>&1 || missing="$missing netavark"
dpkg -s iptables >/dev/null 2>&1 || missing="$missing iptables"
command -v nft >/dev/null 2>&1 || missing="$missing nftables"
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y $missing
fi

# The host's network state, without counters (traffic must not count as a change).
snapshot() {
    echo "## ip link"
    ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort
    echo "## nft list ruleset"
    nft list ruleset 2>&1 | sed -E 's/packets [0-9]+ bytes [0-9]+//'
    echo "## iptables-save"
    iptables-save 2>&1 | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//'
    echo "## iptables-legacy-save"
    if command -v iptables-legacy-save >/dev/null 2>&1; then
        iptables-legacy-save 2>&1 | grep -v '^#' | sed -E 's/\[[0-9]+:[0-9]+\]//'
    fi
    echo "## named namespaces, CNI and netavark state"
    ls /run/netns /var/lib/cni /run/netavark /run/cni 2>/dev/null || true
}

# netplumb's CNI plugin, a subject beside the reference chain.
cargo build --release --quiet --example netplumb-cni

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
snapshot >"$tmp/before"
status=0
cargo bench --bench peers "$@" || status=$?
snapshot >"$tmp/after"
if diff -u "$tmp/before" "$tmp/after"; then
    echo "host unchanged: ip link, nft list ruleset, iptables-save, iptables-legacy-save, /run/netns"
else
    echo "the host's network state changed (diff above)" >&2
    status=1
fi
exit "$status"
