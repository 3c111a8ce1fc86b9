#!/bin/sh
# The cold CLI path a runtime pays: a fresh `netplumb` process per `run` and per `rm`.
# Usage, as root, in private network and mount namespaces (nothing on the host changes):
#   unshare -n -m sh benches/cold_cli.sh target/release/examples/netplumb 30
# Prints one line per sample: `run MICROSECONDS`, `rm MICROSECONDS`, `start MICROSECONDS`.
set -e
BIN=$1; N=${2:-30}
mount --make-rprivate /
mount -t tmpfs tmpfs /run
D=$(mktemp -d); R=/run/netplumb
trap 'rm -rf "$D"' EXIT
ip link set lo up
$BIN --state-dir "$D" --run-dir $R network create b0 >/dev/null
# A warm-up container, removed again.
$BIN --state-dir "$D" --run-dir $R run --name w --network b0 -p 18000:80 >/dev/null
$BIN --state-dir "$D" --run-dir $R rm w
for i in $(seq 1 "$N"); do
  s=$(date +%s%N); $BIN --state-dir "$D" --run-dir $R run --name c"$i" --network b0 -p $((20000+i)):80 >/dev/null; e=$(date +%s%N)
  echo run $(( (e-s)/1000 ))
  sleep 0.05
  s=$(date +%s%N); $BIN --state-dir "$D" --run-dir $R rm c"$i"; e=$(date +%s%N)
  echo rm $(( (e-s)/1000 ))
  sleep 0.05
  s=$(date +%s%N); $BIN --version >/dev/null; e=$(date +%s%N)
  echo start $(( (e-s)/1000 ))
done
