//! netplumb's CNI plugin (`examples/netplumb-cni`), run as libcni runs a network list of
//! one plugin: one process per ADD and DEL, the same bridge, host-local ranges, default
//! route, masquerade and published port (`portMappings` in `runtimeConfig`) as the
//! reference chain, the ADD result cached in a file and given back as `prevResult` on
//! DEL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cni::{cache_file, run_plugin};
use crate::world::{Ctr, CONTAINER_PORT, GATEWAY, SUBNET};
use crate::Subject;

const NET: &str = "bench";
const VERSION: &str = "1.0.0";

/// The plugin built beside this bench (`cargo build --release --example netplumb-cni`,
/// which benches/peers/run.sh does).
pub fn binary() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let profile = exe.parent()?.parent()?;
    let bin = profile.join("examples").join("netplumb-cni");
    bin.is_file().then_some(bin)
}

/// The plugin, as a CNI network list.
pub struct OursCni {
    bin: PathBuf,
    dir: PathBuf,
    results: HashMap<String, String>,
}

impl OursCni {
    /// Nothing to prepare: the first ADD makes the network.
    pub fn open(bin: &Path) -> Result<OursCni, String> {
        let dir = PathBuf::from("/run/peers-netplumb-cni");
        std::fs::create_dir_all(dir.join("results")).map_err(|e| e.to_string())?;
        Ok(OursCni {
            bin: bin.to_owned(),
            dir,
            results: HashMap::new(),
        })
    }

    fn conf(&self, c: &Ctr, prev: Option<&str>) -> String {
        let prev = prev.map_or(String::new(), |p| format!(r#", "prevResult": {p}"#));
        format!(
            r#"{{"cniVersion": "{VERSION}", "name": "{NET}", "type": "netplumb-cni",
                "bridge": "cni0", "isGateway": true, "ipMasq": true,
                "ipam": {{"type": "host-local", "ranges": [[{{"subnet": "{SUBNET}", "gateway": "{GATEWAY}"}}]],
                          "routes": [{{"dst": "0.0.0.0/0"}}]}},
                "runtimeConfig": {{"portMappings": [{{"hostPort": {port}, "containerPort": {CONTAINER_PORT}, "protocol": "tcp"}}]}},
                "netplumb": {{"stateDir": "{dir}/state", "runDir": "{dir}/run"}}{prev}}}"#,
            dir = self.dir.display(),
            port = c.host_port,
        )
    }

    fn invoke(&self, command: &str, c: &Ctr, config: &str) -> Result<String, String> {
        let cni_path = self.bin.parent().unwrap_or(Path::new("/"));
        run_plugin(&self.bin, command, c, cni_path, config)
    }

    fn cache(&self, c: &Ctr) -> PathBuf {
        cache_file(&self.dir, c)
    }
}

impl Subject for OursCni {
    fn attach(&mut self, c: &Ctr) -> Result<(), String> {
        let r = self.invoke("ADD", c, &self.conf(c, None))?;
        std::fs::write(self.cache(c), &r).map_err(|e| e.to_string())?;
        self.results.insert(c.id.clone(), r);
        Ok(())
    }

    fn detach(&mut self, c: &Ctr) -> Result<(), String> {
        let cached = std::fs::read_to_string(self.cache(c)).map_err(|e| e.to_string())?;
        self.invoke("DEL", c, &self.conf(c, Some(&cached)))?;
        std::fs::remove_file(self.cache(c)).map_err(|e| e.to_string())?;
        self.results.remove(&c.id);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        if !self.results.is_empty() {
            return Err(format!("{} containers still added", self.results.len()));
        }
        let here = netplumb::Netns::current().map_err(|e| e.to_string())?;
        let mut host = netplumb::network::HostOptions::new(self.dir.join("state"))
            .run_dir(self.dir.join("run"))
            .open(&here)
            .map_err(|e| e.to_string())?;
        // The veths DEL left to the plugin's detached process (untimed, as the
        // reference's are gone when its DEL returns).
        host.leave_link_deletion(true);
        host.flush_link_deletions().map_err(|e| e.to_string())?;
        let left = host.attachments(None).map_err(|e| e.to_string())?;
        let leases = host.ipam().leases(NET).map_err(|e| e.to_string())?;
        match (left.len(), leases.len()) {
            (0, 0) => Ok(()),
            (a, l) => Err(format!("{a} attachments and {l} leases left")),
        }
    }
}
