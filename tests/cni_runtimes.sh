#!/bin/bash
# Real runtimes driving netplumb's CNI plugin (`examples/netplumb-cni`): containerd
# (`ctr run --cni`) and Podman with its CNI backend; the same checks run with the
# reference `bridge` + `host-local` + `portmap` chain as the baseline that proves the
# test itself.
#
# Usage (root): tests/cni_runtimes.sh
# Installs what it needs from Debian's packages when missing (containerd, podman, crun,
# conmon, catatonit, containernetworking-plugins, busybox-static), builds the plugin,
# then runs each check inside private network, mount and pid namespaces, with tmpfs on
# /run, /var/lib, /tmp, /dev/shm, /opt and /etc/cni/net.d: nothing on the host changes.
# Images come from `podman import` of a busybox-static root (no registry is needed).
#
# Checks, for each plugin set:
# - containerd: a busybox httpd started with `ctr run --cni` gets an address of the
#   network, and another container started the same way reaches it.
# - Podman (`network_backend = "cni"`): `podman run -p 8080:80 --network NET` of a
#   busybox httpd answers on the bridge address's port 8080 from the host and on the
#   container's address from another container; `podman rm -f` leaves no veth.
set -euo pipefail

conflist() { # NAME PLUGINS_JSON
  echo "{\"cniVersion\": \"1.0.0\", \"name\": \"$1\", \"plugins\": $2}"
}
ipam='{"type": "host-local", "ranges": [[{"subnet": "10.66.0.0/24"}]], "dataDir": "/run/host-local"}'
ours=$(conflist cninet "[{\"type\": \"netplumb-cni\", \"bridge\": \"cni9\", \"isGateway\": true,
  \"isDefaultGateway\": true, \"ipMasq\": true, \"ipam\": $ipam,
  \"capabilities\": {\"portMappings\": true},
  \"netplumb\": {\"stateDir\": \"/run/np/state\", \"runDir\": \"/run/np/run\"}}]")
reference=$(conflist cninet "[{\"type\": \"bridge\", \"bridge\": \"cni9\", \"isGateway\": true,
  \"isDefaultGateway\": true, \"ipMasq\": true, \"ipam\": $ipam},
  {\"type\": \"portmap\", \"capabilities\": {\"portMappings\": true}}]")

if [ "${1:-}" = "--inner" ]; then
  runtime=$2 label=$3 plugin_dir=$4
  fail() { echo "FAIL [$runtime, $label]: $*"; exit 1; }
  # shellcheck source=tests/podman_env.sh
  . "$(dirname "$0")/podman_env.sh"
  # The plugins first: their folder may be under /tmp, which podman_env hides.
  mount -t tmpfs tmpfs /opt
  mkdir -p /opt/cni/bin
  cp -a "$plugin_dir"/. /opt/cni/bin/
  podman_env /usr/lib/podman
  mount -t tmpfs tmpfs /etc/cni/net.d
  if [ "$label" = netplumb ]; then conf=$ours; else conf=$reference; fi
  echo "$conf" > /etc/cni/net.d/10-cninet.conflist
  # The plugins under test are the ones that ran: ours writes nf_tables tables of its
  # own (and no iptables rules), the reference chain iptables chains CNI-*.
  ran_ours() {
    if [ "$label" = netplumb ]; then
      nft list tables 2>/dev/null | grep -q netplumb || fail "our plugin did not run (no netplumb table)"
      ! iptables -t nat -S 2>/dev/null | grep -q -- '-N CNI-' || fail "CNI-* chains: the reference plugins ran"
    else
      iptables -t nat -S 2>/dev/null | grep -q -- '-N CNI-' || fail "the reference plugins did not run"
    fi
  }
  get() { # URL, a few tries (busybox-static 1.35's wget crashes with -T)
    local out
    for _ in $(seq 1 25); do
      out=$(busybox wget -q -O - "$1" 2>/dev/null) && { echo "$out"; return; }
      sleep 0.2
    done
  }

  if [ "$runtime" = containerd ]; then
    mkdir -p /run/ctd
    cat > /run/ctd/config.toml <<CONF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "/run/ctd/containerd.sock"
CONF
    containerd --config /run/ctd/config.toml >/run/ctd/log 2>&1 &
    for _ in $(seq 1 50); do [ -S /run/ctd/containerd.sock ] && break; sleep 0.1; done
    ctr() { command ctr -a /run/ctd/containerd.sock "$@"; }
    podman save -q --format oci-archive -o /tmp/bb.oci localhost/bb
    ctr images import --all-platforms /tmp/bb.oci >/dev/null
    img=$(ctr images ls -q | head -1)
    [ -n "$img" ] || fail "no image imported"
    # The image's root, mounted by containerd; run by runc with a spec without cgroup
    # resources (in this namespace cgroup2 has no controllers: the host's are on v1).
    mkdir -p /tmp/rootfs
    ctr images mount --rw "$img" /tmp/rootfs >/dev/null
    spec() { # NAME ARGS_JSON
      ctr oci spec | jq -c --argjson args "$2" --arg name "$1" \
        'del(.linux.resources) | .linux.cgroupsPath = "" | .hostname = $name
         | .process.args = $args | .root = {"path": "/tmp/rootfs", "readonly": false}' \
        >"/run/ctd/$1.json"
      echo "/run/ctd/$1.json"
    }
    ctr run -d --cni --config "$(spec web '["/bin/busybox", "httpd", "-f", "-p", "80", "-h", "/www"]')" web >/dev/null
    ip=""
    for _ in $(seq 1 25); do
      ip=$(ctr tasks exec --exec-id ip web /bin/busybox ip -4 -o addr show eth0 2>/dev/null | awk '{print $4}' | cut -d/ -f1) && [ -n "$ip" ] && break
      sleep 0.2
    done
    case $ip in 10.66.0.*) ;; *) fail "web's address ${ip:-none} is not in 10.66.0.0/24" ;; esac
    out=""
    for _ in $(seq 1 10); do
      c=client$RANDOM
      out=$(ctr run --rm --cni --config "$(spec $c "[\"/bin/busybox\", \"wget\", \"-q\", \"-O\", \"-\", \"http://$ip/\"]")" $c 2>/dev/null) && [ "$out" = hello ] && break
      sleep 0.2
    done
    [ "$out" = hello ] || fail "web ($ip) from another container: ${out:-no answer}"
    ran_ours
    echo "ok [containerd, $label]: ctr run --cni gives $ip, reached from another container"
    # The client ran with --rm: its DEL came, its veth went; web's stays.
    veths=$(ip -o link | grep -c ': veth' || true)
    [ "$veths" = 1 ] || fail "$veths veths after the client's removal (1 expected)"
    echo "ok [containerd, $label]: the client's removal (DEL) left web's veth only"
    ctr tasks kill -s KILL web >/dev/null 2>&1 || true
    exit 0
  fi

  # Podman with its CNI backend, plugins from /opt/cni/bin (ours or the reference chain)
  # and the configuration above.
  sed -i 's/^network_backend = .*/network_backend = "cni"\ncni_plugin_dirs = ["\/opt\/cni\/bin", "\/usr\/lib\/cni"]\nnetwork_config_dir = "\/etc\/cni\/net.d"/' \
    /etc/containers/containers.conf
  podman run -d --name web --network cninet -p 8080:80 localhost/bb httpd -f -p 80 -h /www >/dev/null
  ip=$(podman inspect -f '{{(index .NetworkSettings.Networks "cninet").IPAddress}}' web)
  case $ip in 10.66.0.*) ;; *) fail "web's address ${ip:-none} is not in 10.66.0.0/24" ;; esac
  gw=$(ip -4 -o addr show cni9 | awk '{print $4}' | cut -d/ -f1)
  [ "$(get "http://$gw:8080/")" = hello ] || fail "$gw:8080 from the host"
  out=""
  for _ in $(seq 1 5); do
    out=$(podman run --rm --network cninet localhost/bb wget -q -O - "http://$ip/" 2>/dev/null) && [ "$out" = hello ] && break
    sleep 0.2
  done
  [ "$out" = hello ] || fail "web ($ip) from another container"
  ran_ours
  echo "ok [podman-cni, $label]: -p 8080:80 answers on $gw:8080, and $ip from another container"
  podman rm -f -t 0 web >/dev/null
  left=$(ip -o link | awk -F': ' '{print $2}' | sed 's/@.*//' | grep '^veth' || true)
  [ -z "$left" ] || fail "veths left: $left"
  echo "ok [podman-cni, $label]: nothing left after podman rm -f"
  exit 0
fi

need=()
for pair in podman:podman crun:crun conmon:conmon catatonit:catatonit busybox:busybox-static \
  containerd:containerd ctr:containerd /usr/lib/cni/bridge:containernetworking-plugins jq:jq; do
  bin=${pair%%:*} pkg=${pair#*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "$bin" ] || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "tests/cni_runtimes.sh: installing ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cd "$(dirname "$0")/.."
cargo build --quiet --release --example netplumb-cni
# Under target/: the checks mount a tmpfs on /tmp.
dirs=$PWD/target/cni-runtimes
rm -rf "$dirs"
trap 'rm -rf "$dirs"' EXIT
mkdir -p "$dirs/netplumb" "$dirs/reference"
cp target/release/examples/netplumb-cni "$dirs/netplumb/"
# What the runtimes need beside the network plugin (Podman's default network uses these).
cp /usr/lib/cni/loopback "$dirs/netplumb/"
cp /usr/lib/cni/{bridge,host-local,portmap,loopback} "$dirs/reference/"
status=0
for runtime in ${RUNTIMES:-containerd podman}; do
  for label in netplumb reference; do
    unshare --net --mount --pid --fork --mount-proc --propagation private \
      "$PWD/tests/cni_runtimes.sh" --inner "$runtime" "$label" "$dirs/$label" || status=1
  done
done
exit $status
