#!/bin/bash
# Podman's network tool contract, timed as Podman pays it: one fresh process per
# `setup` and per `teardown`, the request on stdin (a bridge network, one published
# port per container, Podman's static address). netplumb's `netavark` example and
# Debian's netavark 1.4 (the baseline), one after the other in the same run, each in
# fresh private network and mount namespaces (nothing on the host changes).
#
# Usage, as root, from the repository:
#   cargo build --release --example netavark
#   benches/podman.sh [ROUNDS]        # ROUNDS of the one-container case (20)
# Writes target/bench-results/podman.json (../shared/BENCH.md's format: baseline = the
# baseline tool, ratio = baseline median / ours) and prints a table. With Podman
# installed, also `podman run --rm localhost/bb true` (ROUNDS times, wall time) with each
# tool, in the environment tests/podman.sh uses.
set -euo pipefail

if [ "${1:-}" = "--podman" ]; then
  tool_dir=$2 rounds=$3 out=$4
  # shellcheck source=tests/podman_env.sh
  . "$(dirname "$0")/../tests/podman_env.sh"
  podman_env "$tool_dir"
  podman run --rm localhost/bb true  # the first run sets up storage
  for _ in $(seq 1 "$rounds"); do
    s=$(date +%s%N)
    podman run --rm localhost/bb true
    e=$(date +%s%N)
    echo "podman_run $(((e - s) / 1000))" >> "$out"
  done
  exit 0
fi

if [ "${1:-}" = "--inner" ]; then
  bin=$2 rounds=$3 out=$4
  mount -t tmpfs tmpfs /run
  mkdir -p /run/netns /run/cfg
  ip link set lo up
  req() {  # container k of the network
    local k=$1
    printf '{"container_id":"%064d","container_name":"c%d","port_mappings":[{"host_ip":"","container_port":80,"host_port":%d,"range":1,"protocol":"tcp"}],"networks":{"podman":{"interface_name":"eth0","static_ips":["10.88.%d.%d"]}},"network_info":{"podman":{"name":"podman","id":"2f259bab93aaaaa2542ba43ef33eb990d0999ee1b9924b557b7be53c0b7a1bb9","driver":"bridge","network_interface":"podman0","subnets":[{"subnet":"10.88.0.0/16","gateway":"10.88.0.1"}],"ipv6_enabled":false,"internal":false,"dns_enabled":false,"ipam_options":{"driver":"host-local"}}}}' \
      "$k" "$k" $((20000 + k)) $(((k + 2) / 256)) $(((k + 2) % 256))
  }
  call() {  # CMD k: prints the microseconds of one call
    local cmd=$1 k=$2 s e
    req "$k" > /run/req
    s=$(date +%s%N)
    "$bin" --config /run/cfg "$cmd" "/run/netns/c$k" < /run/req > /dev/null
    e=$(date +%s%N)
    echo $(((e - s) / 1000))
  }
  for k in $(seq 0 49); do ip netns add "c$k"; done
  # One container, set up and torn down ROUNDS times.
  for _ in $(seq 1 "$rounds"); do
    echo "setup_1 $(call setup 0)" >> "$out"
    echo "teardown_1 $(call teardown 0)" >> "$out"
  done
  # 50 containers on one network, then all torn down.
  for k in $(seq 0 49); do echo "setup_50 $(call setup "$k")" >> "$out"; done
  for k in $(seq 0 49); do echo "teardown_50 $(call teardown "$k")" >> "$out"; done
  exit 0
fi

cd "$(dirname "$0")/.."
rounds=${1:-20}
ours=target/release/examples/netavark
theirs=/usr/lib/podman/netavark
[ -x "$ours" ] || { echo "build it first: cargo build --release --example netavark"; exit 2; }
[ -x "$theirs" ] || { echo "missing $theirs (Debian package netavark)"; exit 2; }
# Not under /tmp: the Podman stage mounts a tmpfs there.
mkdir -p target
tmp=$(mktemp -d -p "$PWD/target")
trap 'rm -rf "$tmp"' EXIT
ops="setup_1 teardown_1 setup_50 teardown_50"
mkdir -p "$tmp/ours-bin"
cp "$ours" "$tmp/ours-bin/netavark"
for who in ours theirs; do
  bin=$ours; [ $who = theirs ] && bin=$theirs
  unshare -n -m --propagation private "$PWD/benches/podman.sh" --inner "$(realpath "$bin")" "$rounds" "$tmp/$who"
  if command -v podman >/dev/null; then
    dir=$tmp/ours-bin; [ $who = theirs ] && dir=/usr/lib/podman
    unshare --net --mount --pid --fork --mount-proc --propagation private \
      "$PWD/benches/podman.sh" --podman "$dir" "$rounds" "$tmp/$who" >/dev/null 2>&1
  fi
done
command -v podman >/dev/null && ops="$ops podman_run"
stats() {  # NAME FILE: "median min max n"
  grep "^$1 " "$2" | awk '{print $2}' | sort -n | awk '{v[NR]=$1} END {
    m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; print m, v[1], v[NR], NR }'
}
mkdir -p target/bench-results
json=target/bench-results/podman.json
echo "[" > $json
printf '| call (fresh process, µs) | netplumb median | netavark 1.4 median | netavark / netplumb |\n|---|---:|---:|---:|\n'
first=1
for op in $ops; do
  read -r m lo hi n < <(stats $op "$tmp/ours")
  read -r bm _ _ _ < <(stats $op "$tmp/theirs")
  ratio=$(awk -v a="$bm" -v b="$m" 'BEGIN {printf "%.2f", a / b}')
  [ $first = 1 ] || echo "," >> $json
  first=0
  printf '{"name": "%s", "unit": "us", "median": %s, "min": %s, "max": %s, "n": %s, "baseline": "netavark 1.4 (Debian)", "baseline_median": %s, "ratio": %s}' \
    "$op" "$m" "$lo" "$hi" "$n" "$bm" "$ratio" >> $json
  printf '| %s | %s | %s | %s× |\n' "$op" "$m" "$bm" "$ratio"
done
echo "]" >> $json
