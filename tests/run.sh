#!/usr/bin/env bash
# The test command of README.md: checks that the programs the tests run are installed,
# installs the missing Debian packages when it may, runs the whole suite, and lists the
# tests that could not run.
#
#   tests/run.sh [--skip-missing] [--setup-only] [CARGO TEST ARGS...]
#
# - Needs: see `tools` below (each program, its Debian package, and what runs it).
# - Installs the missing packages with apt-get when run as root on a machine that has
#   apt-get, unless NETPLUMB_TEST_NO_INSTALL=1. Otherwise it names what is missing and
#   stops (exit 2), unless --skip-missing (or NETPLUMB_TEST_SKIP_MISSING=1) says to go on
#   with the tests that need them skipped.
# - --setup-only: check and install, then stop (what .ci/run does before its snapshot).
# - Runs `cargo test --features iptables,etcd,_fault-injection --no-fail-fast ARGS...`.
# - Every test that cannot run logs `SKIPPED <test>: <why>` to the file named by
#   NETPLUMB_SKIP_LOG (tests/common/skip.rs); at the end this prints those lines and
#   `skipped: N`. Under CI=true a skip fails its test, and any skip fails the run.
# Exit status: cargo's when the tests fail, 1 for skips under CI=true, 2 when programs
# are missing, else 0.
set -euo pipefail
cd "$(dirname "$0")/.."

skip_missing=${NETPLUMB_TEST_SKIP_MISSING:-0}
setup_only=0
args=()
while (($#)); do
  case $1 in
    --skip-missing) skip_missing=1 ;;
    --setup-only) setup_only=1 ;;
    -h | --help) sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 0 ;;
    --) args+=("$@"); break ;;
    *) args+=("$1") ;;
  esac
  shift
done

# The tests look programs up on PATH; the sbin folders, where Debian puts ip, nft and
# iptables, are often missing from a user's PATH (the iptables backend looks there too).
for d in /usr/sbin /sbin; do
  case ":$PATH:" in *":$d:"*) ;; *) PATH=$PATH:$d ;; esac
done
export PATH

# program  Debian package  who runs it
tools=(
  "ip iproute2 tests/{bad_input,cli,network,network_faults,overlay}.rs"
  "bridge iproute2 tests/{network_faults,overlay}.rs (fdb listings)"
  "nft nftables witness of the firewall tests (load, network_faults, reconcile, security, vxlan_guard, firewall)"
  "iptables-restore iptables the iptables backend (feature iptables)"
  "ip6tables-restore iptables the iptables backend (feature iptables)"
  "iptables-save iptables the iptables backend and its tests"
  "ip6tables-save iptables the iptables backend and its tests"
  "iptables iptables tests/{firewall,reconcile,security}.rs"
  "ip6tables iptables tests/security.rs"
  "iptables-legacy-restore iptables the iptables_legacy:: tests of tests/firewall.rs"
  "iptables-legacy-save iptables the iptables_legacy:: tests of tests/firewall.rs"
  "etcd etcd-server tests/{etcd,ipam_etcd,overlay_etcd,overlay_hosts,cli}.rs (feature etcd)"
  "kill procps tests/etcd.rs (freezes its etcd)"
  "openssl openssl tests/etcd_tls.rs (makes the CA and certificates of its etcd)"
  "/usr/lib/cni/tuning containernetworking-plugins tests/cni.rs (reference plugins: chained after ours, and compared)"
  "go golang-go tests/cni.rs (builds tests/libcni, a runtime over libcni)"
  "/usr/share/gocode/src/github.com/containernetworking/cni/libcni/api.go golang-github-appc-cni-dev tests/cni.rs (libcni)"
)

# Whether $1 is an executable file in a folder of PATH (as the tests look it up).
have() {
  local d
  local IFS=:
  case $1 in /*) [ -f "$1" ]; return ;; esac
  for d in $PATH; do
    [ -f "${d:-.}/$1" ] && [ -x "${d:-.}/$1" ] && return 0
  done
  return 1
}

missing() {
  local t bin pkg why
  for t in "${tools[@]}"; do
    read -r bin pkg why <<<"$t"
    have "$bin" || echo "$bin $pkg $why"
  done
}

have cargo || { echo "tests/run.sh: cargo is not on PATH" >&2; exit 2; }

lacking=$(missing)
if [ -n "$lacking" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
    && [ "${NETPLUMB_TEST_NO_INSTALL:-0}" != 1 ]; then
    mapfile -t pkgs < <(awk '{print $2}' <<<"$lacking" | sort -u)
    echo "tests/run.sh: installing ${pkgs[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
    lacking=$(missing)
  fi
fi
if [ -n "$lacking" ]; then
  echo "tests/run.sh: missing programs (program: Debian package, what runs it):" >&2
  while read -r bin pkg why; do echo "  $bin: $pkg, $why" >&2; done <<<"$lacking"
  pkgs=$(awk '{print $2}' <<<"$lacking" | sort -u | tr '\n' ' ')
  echo "  install them: apt-get install ${pkgs% }" >&2
  if [ "${CI:-}" = true ] || [ "$skip_missing" != 1 ]; then
    echo "  or run tests/run.sh --skip-missing to run the suite with the tests that need them skipped (not under CI=true)" >&2
    exit 2
  fi
  echo "  going on: the tests that need them are skipped" >&2
fi
((setup_only)) && exit 0

[ "$(id -u)" = 0 ] || echo "tests/run.sh: not root: the privileged tests will be skipped" >&2

log=$(mktemp)
trap 'rm -f "$log"' EXIT
export NETPLUMB_SKIP_LOG=$log

status=0
cargo test --features iptables,etcd,_fault-injection --no-fail-fast "${args[@]}" || status=$?

sort -u "$log" -o "$log"
n_na=$(grep -c '^NOT APPLICABLE ' "$log" || true)
n_skip=$(grep -c '^SKIPPED ' "$log" || true)
echo
grep '^NOT APPLICABLE ' "$log" || true
grep '^SKIPPED ' "$log" || true
echo "not applicable: $n_na"
echo "skipped: $n_skip"
if ((status == 0)) && ((n_skip > 0)) && [ "${CI:-}" = true ]; then
  echo "tests/run.sh: $n_skip skipped under CI=true" >&2
  status=1
fi
exit "$status"
