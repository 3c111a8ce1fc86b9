# Sourced by tests/podman.sh, tests/cni_runtimes.sh and benches/podman.sh, inside private
# network, mount and pid namespaces: `podman_env TOOL_DIR` gives Podman a world of its own
# there (tmpfs on /run, /var/lib, /dev/shm, /tmp and /mnt; its own containers.conf with
# the network tool taken from a copy of TOOL_DIR in /mnt/tools; cgroups off) and imports `localhost/bb`, a busybox-static root with an httpd
# page `hello` in /www. Nothing outside the namespaces changes.
podman_env() {
  local tool_dir=$1 root=/tmp/bb c
  # The tool's folder may be under /tmp or /run, which the mounts below hide: it is
  # copied first to a tmpfs of its own on /mnt, and Podman is pointed there.
  mount -t tmpfs tmpfs /mnt
  mkdir -p /mnt/tools
  cp -a "$tool_dir"/. /mnt/tools/
  tool_dir=/mnt/tools
  mount -t tmpfs tmpfs /run
  mount -t tmpfs tmpfs /var/lib
  mount -t tmpfs tmpfs /dev/shm
  mount -t tmpfs tmpfs /tmp
  mkdir -p /run/etc-containers
  cat > /run/etc-containers/containers.conf <<CONF
[containers]
cgroups = "disabled"
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "crun"
helper_binaries_dir = ["$tool_dir", "/usr/lib/podman"]
[network]
network_backend = "netavark"
CONF
  cat > /run/etc-containers/storage.conf <<CONF
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
CONF
  echo '{"default":[{"type":"insecureAcceptAnything"}]}' > /run/etc-containers/policy.json
  mount --bind /run/etc-containers /etc/containers
  if [ "$(stat -fc %T /sys/fs/cgroup)" != cgroup2fs ]; then
    mount -t cgroup2 none /sys/fs/cgroup 2>/dev/null || true
  fi
  ip link set lo up
  mkdir -p $root/bin $root/etc $root/www
  cp "$(command -v busybox)" $root/bin/busybox
  for c in sh httpd wget cat sleep ip true; do ln -s busybox $root/bin/$c; done
  echo hello > $root/www/index.html
  echo "root:x:0:0:root:/:/bin/sh" > $root/etc/passwd
  tar -C $root -cf /tmp/bb.tar .
  podman import -q /tmp/bb.tar localhost/bb >/dev/null
}
