#!/usr/bin/env bash
# Captures the binary seeds of netlink_reply and nft_dump from the kernel, inside a
# throwaway network namespace (nothing on the host changes). Needs root, ip, bridge, nft
# and python3. Usage: fuzz/seeds/capture/capture.sh  (writes fuzz/seeds/{netlink_reply,nft_dump})
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(dirname "$here")
cd "$here"
timeout 60 unshare -n sh -ec '
ip link set lo up
ip link add br0 type bridge
ip link add veth0 type veth peer name eth0
ip link set veth0 master br0 up
ip link set br0 up mtu 1400
ip addr add 172.17.0.1/16 dev br0
ip addr add fd00::1/64 dev br0 nodad
ip link add vx-000100 type vxlan id 256 dstport 4789 local 127.0.0.1 nolearning
ip link set vx-000100 master br0 up
bridge fdb append 00:00:00:00:00:00 dev vx-000100 dst 10.0.0.2
ip neigh add 172.17.0.9 lladdr 02:42:ac:11:00:09 dev br0
ip route add 10.9.0.0/24 via 172.17.0.9 metric 5
ip -6 route add fd01::/64 via fd00::9 dev br0
python3 rtnl.py "$1"
nft -f rules.nft
python3 nft.py "$2"
' sh "$out/netlink_reply" "$out/nft_dump"
# A datagram holding only NLMSG_DONE (20 bytes) seeds nothing.
find "$out/netlink_reply" "$out/nft_dump" -type f -size 20c -delete
