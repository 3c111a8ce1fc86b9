//! netavark 1.4 (Podman's network backend): `netavark --config DIR setup NETNS_PATH` and
//! `teardown NETNS_PATH`, the network options JSON of that version on standard input,
//! firewall driver iptables (`NETAVARK_FW=iptables`; nftables came in later versions),
//! DNS off. As Podman does, the caller picks the address (Podman runs its own IPAM and
//! passes `static_ips`), so netavark's time holds no address allocation.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::world::{exec, first_line, Ctr, CONTAINER_PORT, GATEWAY, SUBNET};
use crate::Subject;

/// Where Debian, Fedora and upstream install it.
pub fn binary() -> Option<PathBuf> {
    [
        "/usr/lib/podman/netavark",
        "/usr/libexec/podman/netavark",
        "/usr/local/libexec/podman/netavark",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// `netavark VERSION (iptables driver)`.
pub fn label(bin: &Path) -> String {
    let v = first_line(Command::new(bin).arg("--version"));
    format!(
        "{} (iptables driver)",
        v.unwrap_or_else(|| "netavark".into())
    )
}

/// netavark with its config folder in the sandbox's `/run`.
pub struct Netavark {
    bin: PathBuf,
    config: PathBuf,
    attached: usize,
}

impl Netavark {
    /// Nothing to prepare: netavark creates the bridge and the network's chains on the
    /// first setup and removes them on the last teardown.
    pub fn open(bin: &Path) -> Result<Netavark, String> {
        let config = PathBuf::from("/run/peers-netavark");
        std::fs::create_dir_all(&config).map_err(|e| e.to_string())?;
        Ok(Netavark {
            bin: bin.to_owned(),
            config,
            attached: 0,
        })
    }

    fn run(&self, verb: &str, c: &Ctr) -> Result<String, String> {
        let mut cmd = Command::new(&self.bin);
        cmd.env("NETAVARK_FW", "iptables")
            .arg("--config")
            .arg(&self.config)
            .arg(verb)
            .arg(&c.path);
        exec(&mut cmd, &options(c))
    }
}

/// The network options of netavark 1.4 for one container on network `bench`.
fn options(c: &Ctr) -> String {
    format!(
        r#"{{
  "container_id": "{id}",
  "container_name": "{id}",
  "port_mappings": [{{"host_ip": "", "container_port": {CONTAINER_PORT}, "host_port": {port}, "range": 1, "protocol": "tcp"}}],
  "networks": {{"bench": {{"static_ips": ["{ip}"], "interface_name": "eth0"}}}},
  "network_info": {{"bench": {{
    "name": "bench",
    "id": "be9c000000000000000000000000000000000000000000000000000000000001",
    "driver": "bridge",
    "network_interface": "podman1",
    "subnets": [{{"subnet": "{SUBNET}", "gateway": "{GATEWAY}"}}],
    "ipv6_enabled": false,
    "internal": false,
    "dns_enabled": false,
    "ipam_options": {{"driver": "host-local"}}
  }}}}
}}"#,
        id = c.id,
        port = c.host_port,
        ip = c.ip,
    )
}

impl Subject for Netavark {
    fn attach(&mut self, c: &Ctr) -> Result<(), String> {
        self.run("setup", c)?;
        self.attached += 1;
        Ok(())
    }

    fn detach(&mut self, c: &Ctr) -> Result<(), String> {
        self.run("teardown", c)?;
        self.attached -= 1;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        match self.attached {
            0 => Ok(()),
            n => Err(format!("{n} containers still set up")),
        }
    }
}
