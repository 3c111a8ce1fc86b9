//! The durable half of the state: one file per network definition in
//! `STATE_DIR/networks/NAME.net`, written only by `create_network` and `remove_network`.
//!
//! A file holds the [`NetworkInfo`] record as `key=value` lines (unknown keys are
//! ignored, so the format can grow) and one `ipam=` line per IPAM network: what
//! re-creates it after a reboot, when the runtime database starts empty:
//!
//! ```text
//! ipam=NAME SUBNET GATEWAY|- RANGE RESERVED,RESERVED,…
//! ```
//!
//! A file is created whole or not at all (written to a temporary file, synced, then
//! hard-linked to its name, which fails if the name is taken: two processes creating the
//! same network cannot both succeed) and removed by unlinking it; the folder is synced
//! after each change, so a definition survives a power cut.

use std::fs::{self, File};
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::state::NetworkInfo;
use crate::error::{Error, Object, Result};
use crate::ipam::Network;

/// The folder of definitions under the state folder.
const NETWORKS: &str = "networks";
const EXT: &str = ".net";

/// The network definitions of one state folder.
#[derive(Debug, Clone)]
pub(crate) struct Definitions {
    dir: PathBuf,
}

/// An IPAM network's definition as an `ipam=` value.
fn ipam_line(n: &Network) -> String {
    let gw = n.gateway.map_or_else(|| "-".to_owned(), |g| g.to_string());
    let reserved: Vec<String> = n.reserved.iter().map(IpAddr::to_string).collect();
    format!(
        "{} {} {gw} {} {}",
        n.name,
        n.subnet,
        n.range,
        reserved.join(",")
    )
}

fn parse_ipam(v: &str) -> Option<Network> {
    let f: Vec<&str> = v.split(' ').collect();
    let [name, subnet, gw, range, reserved] = f.as_slice() else {
        return None;
    };
    Some(Network {
        name: (*name).to_owned(),
        subnet: subnet.parse::<IpNet>().ok()?,
        gateway: (*gw != "-").then(|| gw.parse().ok()).flatten(),
        range: range.parse().ok()?,
        reserved: reserved
            .split(',')
            .filter(|s| !s.is_empty())
            .filter_map(|s| s.parse().ok())
            .collect(),
        cursor: None,
        last_released: None,
        revision: 0,
    })
}

impl Definitions {
    pub(crate) fn new(state_dir: &Path) -> Definitions {
        Definitions {
            dir: state_dir.join(NETWORKS),
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}{EXT}"))
    }

    /// The text of network `name`'s file, if there is one.
    fn read(&self, name: &str) -> Result<Option<String>> {
        let path = self.file(name);
        match fs::read_to_string(&path) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Network `name`.
    pub(crate) fn get(&self, name: &str) -> Result<Option<NetworkInfo>> {
        Ok(self.read(name)?.map(|t| NetworkInfo::decode(name, &t)))
    }

    /// The IPAM networks network `name` was created with.
    pub(crate) fn ipam_of(&self, name: &str) -> Result<Vec<Network>> {
        Ok(self.read(name)?.map(|t| ipam_nets(&t)).unwrap_or_default())
    }

    /// Every network, by name, with its IPAM networks.
    pub(crate) fn all(&self) -> Result<Vec<(NetworkInfo, Vec<Network>)>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.dir, e)),
        };
        let mut out = Vec::new();
        for e in entries {
            let e = e.map_err(|e| Error::io(&self.dir, e))?;
            let file = e.file_name();
            let Some(name) = file.to_str().and_then(|f| f.strip_suffix(EXT)) else {
                continue; // a temporary file, or not ours
            };
            // Removed meanwhile by another process: not listed.
            if let Some(t) = self.read(name)? {
                out.push((NetworkInfo::decode(name, &t), ipam_nets(&t)));
            }
        }
        out.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        Ok(out)
    }

    /// Every network, by name.
    pub(crate) fn list(&self) -> Result<Vec<NetworkInfo>> {
        Ok(self.all()?.into_iter().map(|(n, _)| n).collect())
    }

    /// Writes a new definition; "exists" if the name is taken.
    pub(crate) fn create(&self, info: &NetworkInfo, ipam: &[Network]) -> Result<()> {
        let mut text = info.encode();
        for n in ipam {
            text.push_str(&format!("ipam={}\n", ipam_line(n)));
        }
        let tmp = self.write_tmp(&info.name, &text)?;
        let linked = fs::hard_link(&tmp, self.file(&info.name));
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => self.sync_dir(),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::exists(Object::Network, &info.name))
            }
            Err(e) => Err(Error::io(self.file(&info.name), e)),
        }
    }

    /// Removes network `name`'s definition; returns its text (for [`Definitions::restore`]).
    pub(crate) fn remove(&self, name: &str) -> Result<Option<String>> {
        let Some(text) = self.read(name)? else {
            return Ok(None);
        };
        let path = self.file(name);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path, e)),
        }
        self.sync_dir()?;
        Ok(Some(text))
    }

    /// Puts back a definition [`Definitions::remove`] took, as it was.
    pub(crate) fn restore(&self, name: &str, text: &str) -> Result<()> {
        let tmp = self.write_tmp(name, text)?;
        fs::rename(&tmp, self.file(name)).map_err(|e| Error::io(self.file(name), e))?;
        self.sync_dir()
    }

    /// Writes `text` to a synced temporary file in the folder (created if needed).
    fn write_tmp(&self, name: &str, text: &str) -> Result<PathBuf> {
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        let tmp = self.dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
        };
        write().map_err(|e| Error::io(&tmp, e))?;
        Ok(tmp)
    }

    fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(&self.dir, e))
    }
}

/// The `ipam=` lines of a definition.
fn ipam_nets(text: &str) -> Vec<Network> {
    text.lines()
        .filter_map(|l| l.strip_prefix("ipam="))
        .filter_map(parse_ipam)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipam_line_round_trip() {
        let n = Network {
            name: "n".into(),
            subnet: "10.1.0.0/24".parse().unwrap(),
            gateway: Some("10.1.0.1".parse().unwrap()),
            range: "10.1.0.128/25".parse().unwrap(),
            reserved: vec!["10.1.0.5".parse().unwrap(), "10.1.0.6".parse().unwrap()],
            cursor: None,
            last_released: None,
            revision: 0,
        };
        assert_eq!(parse_ipam(&ipam_line(&n)), Some(n.clone()));
        let bare = Network {
            gateway: None,
            reserved: vec![],
            ..n
        };
        assert_eq!(parse_ipam(&ipam_line(&bare)), Some(bare));
    }
}
