//! The CNI reference plugins, run the way libcni runs a network configuration list:
//! `bridge` (isGateway, ipMasq, host-local IPAM) then `portmap` (one `portMappings`
//! entry from `runtimeConfig`), one process per plugin per the CNI spec (`CNI_COMMAND`,
//! `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_PATH`, the plugin's config on
//! standard input with `name`, `cniVersion` and the previous plugin's result as
//! `prevResult`). DEL runs the list in reverse, each plugin given the cached ADD result.
//! As libcni does, the ADD result is cached in a file (here in the sandbox's `/run`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::world::{exec, Ctr, CONTAINER_PORT, GATEWAY, SUBNET};
use crate::Subject;

const NET: &str = "bench";
const VERSION: &str = "1.0.0";

/// Where the plugins are: Debian's folder, else the upstream one.
pub fn plugin_dir() -> Option<PathBuf> {
    ["/usr/lib/cni", "/opt/cni/bin"]
        .into_iter()
        .map(PathBuf::from)
        .find(|d| d.join("bridge").is_file() && d.join("portmap").is_file())
}

/// `CNI plugins VERSION`, from the Debian package when it is one.
pub fn label() -> String {
    let pkg = crate::world::first_line(Command::new("dpkg-query").args([
        "-W",
        "-f",
        "${Version}",
        "containernetworking-plugins",
    ]));
    match pkg.filter(|v| !v.is_empty()) {
        Some(v) => format!("CNI plugins {v} (bridge + host-local + portmap)"),
        None => "CNI plugins (bridge + host-local + portmap)".into(),
    }
}

/// A CNI network list executed by hand, with its data in `dir`.
pub struct Cni {
    plugins: PathBuf,
    dir: PathBuf,
    results: HashMap<String, String>,
}

impl Cni {
    /// Nothing to prepare: the bridge plugin creates the bridge on the first ADD.
    pub fn open(plugins: &Path) -> Result<Cni, String> {
        let dir = PathBuf::from("/run/peers-cni");
        std::fs::create_dir_all(dir.join("results")).map_err(|e| e.to_string())?;
        Ok(Cni {
            plugins: plugins.to_owned(),
            dir,
            results: HashMap::new(),
        })
    }

    fn bridge_conf(&self, prev: Option<&str>) -> String {
        let ipam = format!(
            r#"{{"type": "host-local", "ranges": [[{{"subnet": "{SUBNET}", "gateway": "{GATEWAY}"}}]],
                "routes": [{{"dst": "0.0.0.0/0"}}], "dataDir": "{}"}}"#,
            self.dir.join("ipam").display()
        );
        conf(
            &format!(
                r#""type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "ipam": {ipam}"#
            ),
            prev,
        )
    }

    fn portmap_conf(&self, c: &Ctr, prev: Option<&str>) -> String {
        conf(
            &format!(
                r#""type": "portmap", "capabilities": {{"portMappings": true}}, "snat": true,
                   "runtimeConfig": {{"portMappings": [{{"hostPort": {}, "containerPort": {CONTAINER_PORT}, "protocol": "tcp"}}]}}"#,
                c.host_port
            ),
            prev,
        )
    }

    fn invoke(&self, plugin: &str, command: &str, c: &Ctr, config: &str) -> Result<String, String> {
        run_plugin(
            &self.plugins.join(plugin),
            command,
            c,
            &self.plugins,
            config,
        )
    }

    fn cache(&self, c: &Ctr) -> PathBuf {
        cache_file(&self.dir, c)
    }
}

/// Runs CNI plugin `bin` as a runtime does: `command` for container `c` (interface
/// `eth0`), plugins looked for in `cni_path`, `config` on its standard input.
pub fn run_plugin(
    bin: &Path,
    command: &str,
    c: &Ctr,
    cni_path: &Path,
    config: &str,
) -> Result<String, String> {
    let mut cmd = Command::new(bin);
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &c.id)
        .env("CNI_NETNS", &c.path)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", cni_path);
    exec(&mut cmd, config)
}

/// Where the ADD result of container `c` is kept under `dir`, as libcni caches it.
pub fn cache_file(dir: &Path, c: &Ctr) -> PathBuf {
    dir.join("results").join(format!("{NET}-{}-eth0", c.id))
}

/// One plugin's configuration as libcni hands it over.
fn conf(plugin: &str, prev: Option<&str>) -> String {
    let prev = prev.map_or(String::new(), |p| format!(r#", "prevResult": {p}"#));
    format!(r#"{{"cniVersion": "{VERSION}", "name": "{NET}", {plugin}{prev}}}"#)
}

impl Subject for Cni {
    fn attach(&mut self, c: &Ctr) -> Result<(), String> {
        let r = self.invoke("bridge", "ADD", c, &self.bridge_conf(None))?;
        let r = self.invoke("portmap", "ADD", c, &self.portmap_conf(c, Some(&r)))?;
        std::fs::write(self.cache(c), &r).map_err(|e| e.to_string())?;
        self.results.insert(c.id.clone(), r);
        Ok(())
    }

    fn detach(&mut self, c: &Ctr) -> Result<(), String> {
        let cached = std::fs::read_to_string(self.cache(c)).map_err(|e| e.to_string())?;
        self.invoke("portmap", "DEL", c, &self.portmap_conf(c, Some(&cached)))?;
        self.invoke("bridge", "DEL", c, &self.bridge_conf(Some(&cached)))?;
        std::fs::remove_file(self.cache(c)).map_err(|e| e.to_string())?;
        self.results.remove(&c.id);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        if !self.results.is_empty() {
            return Err(format!("{} containers still added", self.results.len()));
        }
        let leases = std::fs::read_dir(self.dir.join("ipam").join(NET))
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().starts_with("10."))
            .count();
        match leases {
            0 => Ok(()),
            n => Err(format!("host-local kept {n} leases")),
        }
    }
}
