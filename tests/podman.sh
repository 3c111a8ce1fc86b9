#!/bin/bash
# Podman 4 driving netplumb's `netavark` example, and the same checks with Debian's
# netavark as the baseline that proves the test itself.
#
# Usage (root): tests/podman.sh
# Installs what it needs from Debian's packages when missing (podman, crun, conmon,
# catatonit, netavark, aardvark-dns, busybox-static), builds the example, then for each
# network tool runs the checks inside private network, mount and pid namespaces with
# tmpfs on /run, /var/lib, /tmp and /dev/shm, and a containers.conf of its own: nothing on
# the host changes. An image is made with `podman import` from busybox-static (no
# registry is needed).
#
# Checks, for each tool: `podman run -d -p 8080:80` of a busybox httpd answers on
# 127.0.0.1:8080 and on the bridge's address from the host, and from another container;
# a user network (`--subnet`) carries traffic by address; an `--ipv6` network gives the
# container an address of its subnet; on a network with DNS, containers resolve each
# other's names and aliases; a container on two networks keeps the second's default route
# when the first is disconnected; after `podman rm -f` and `podman network rm` no bridge or
# veth is left (and, for netplumb's tool, none of its nf_tables tables).
set -euo pipefail

if [ "${1:-}" = "--inner" ]; then
  tool_dir=$2 label=$3
  fail() { echo "FAIL [$label]: $*"; exit 1; }
  # shellcheck source=tests/podman_env.sh
  . "$(dirname "$0")/podman_env.sh"
  podman_env "$tool_dir"
  # A server just started may not listen yet: a few tries, 0.2 s apart. (No `-T`:
  # busybox-static 1.35's wget crashes with it.)
  get() {
    local out
    for _ in $(seq 1 25); do
      out=$(busybox wget -q -O - "$1" 2>/dev/null) && { echo "$out"; return; }
      sleep 0.2
    done
  }
  inside() { podman run --rm "$@" 2>/dev/null || true; }
  # `wget URL` from a new container on network $1, a few tries.
  get_from() {
    local out
    for _ in $(seq 1 5); do
      out=$(podman run --rm --network "$1" localhost/bb wget -q -O - "$2" 2>/dev/null) && { echo "$out"; return; }
      sleep 0.2
    done
  }

  podman run -d --name web -p 8080:80 localhost/bb httpd -f -p 80 -h /www >/dev/null
  # The tool under test is the one that ran: ours writes nf_tables tables of its own,
  # Debian's netavark 1.4 iptables rules.
  if [ "$label" = netplumb ]; then
    nft list tables 2>/dev/null | grep -q netplumb || fail "our tool did not run (no netplumb table)"
  else
    iptables -t nat -S 2>/dev/null | grep -q NETAVARK || fail "netavark did not run (no NETAVARK chain)"
  fi
  [ "$(get http://127.0.0.1:8080/)" = hello ] || fail "127.0.0.1:8080 from the host"
  gw=$(ip -4 -o addr show podman0 | awk '{print $4}' | cut -d/ -f1)
  [ "$(get "http://$gw:8080/")" = hello ] || fail "$gw:8080 from the host"
  ip=$(podman inspect -f '{{.NetworkSettings.IPAddress}}' web)
  [ "$(get_from podman "http://$ip/")" = hello ] || fail "$ip:80 from another container"
  echo "ok [$label]: -p 8080:80 from the host (127.0.0.1, $gw) and from another container"

  podman network create --subnet 10.77.0.0/24 un1 >/dev/null
  podman run -d --name a1 --network un1 localhost/bb httpd -f -p 80 -h /www >/dev/null
  a1=$(podman inspect -f '{{(index .NetworkSettings.Networks "un1").IPAddress}}' a1)
  case $a1 in 10.77.0.*) ;; *) fail "a1's address $a1 is not in 10.77.0.0/24" ;; esac
  [ "$(get_from un1 "http://$a1/")" = hello ] || fail "a1 by address"
  [ "$(get_from un1 http://a1/)" = hello ] || fail "a1 by name"
  podman run -d --name a2 --network un1 --network-alias www localhost/bb httpd -f -p 80 -h /www >/dev/null
  [ "$(get_from un1 http://www/)" = hello ] || fail "a2 by its alias"
  echo "ok [$label]: user network: by address, by name, by alias"

  # On two networks, each gives a default route: the second's stays when the first is
  # disconnected.
  podman run -d --name m --network podman,un1 localhost/bb sleep 600 >/dev/null
  podman network disconnect podman m
  podman exec m ip -4 route | grep -q "^default via 10.77.0.1 " || fail "no default route via un1 after disconnecting podman: $(podman exec m ip -4 route)"
  echo "ok [$label]: two networks: the second's default route stays when the first goes"

  podman network create --ipv6 --subnet fd00:77::/64 un6 >/dev/null
  inside --network un6 localhost/bb ip -6 addr | grep -q "inet6 fd00:77::" || fail "no address of fd00:77::/64"
  echo "ok [$label]: IPv6 network"

  podman rm -f web a1 a2 m >/dev/null 2>&1
  podman network rm un1 un6 >/dev/null
  left=$(ip -o link | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -v '^lo$' || true)
  [ -z "$left" ] || fail "links left: $left"
  if [ "$label" = netplumb ] && nft list tables 2>/dev/null | grep -q netplumb; then
    fail "tables left: $(nft list tables)"
  fi
  echo "ok [$label]: nothing left"
  exit 0
fi

need=()
for pair in podman:podman crun:crun conmon:conmon catatonit:catatonit busybox:busybox-static \
  /usr/lib/podman/netavark:netavark /usr/lib/podman/aardvark-dns:aardvark-dns nft:nftables; do
  bin=${pair%%:*} pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "$bin" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "tests/podman.sh: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cd "$(dirname "$0")/.."
cargo build --quiet --release --example netavark
ours=$(mktemp -d)
trap 'rm -rf "$ours"' EXIT
cp target/release/examples/netavark "$ours/"
status=0
for run in "netplumb:$ours" "debian-netavark:/usr/lib/podman"; do
  label=${run%%:*} dir=${run#*:}
  unshare --net --mount --pid --fork --mount-proc --propagation private \
    "$PWD/tests/podman.sh" --inner "$dir" "$label" || status=1
done
exit $status
