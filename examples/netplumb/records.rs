//! Container records: `STATE/containers/NAME/config`, one `key=value` per line, written
//! atomically (temporary file and rename). The library keeps networks and attachments; this
//! file keeps what it does not: the network mode, which namespace the container uses and
//! whether it owns it, and the options of its files.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// One container made by `netplumb run`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// 64 hex digits, derived from the name ([`container_id`]).
    pub id: String,
    /// The name.
    pub name: String,
    /// `--network` as given: NET, `host`, `none`, `container:OTHER`.
    pub mode: String,
    /// The namespace file; empty for `--network host` (the host's own).
    pub netns: PathBuf,
    /// Whether `rm` deletes the namespace (made by `run`: bridge and none modes).
    pub owns_netns: bool,
    /// `--hostname`, if given.
    pub hostname: Option<String>,
    /// `--add-host` entries, `HOST:IP`.
    pub add_hosts: Vec<String>,
    /// `--dns` servers.
    pub dns: Vec<String>,
    /// `--dns-search` domains.
    pub dns_search: Vec<String>,
    /// `--dns-option` options.
    pub dns_options: Vec<String>,
}

/// A container's id: a stable 64-hex-digit digest of its name (four FNV-1a lanes), so
/// that every command finds the same id without a lookup.
pub fn container_id(name: &str) -> String {
    (0u64..4)
        .map(|lane| {
            let seed = 0xcbf2_9ce4_8422_2325u64 ^ lane.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let h = format!("container\0{name}").bytes().fold(seed, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            format!("{h:016x}")
        })
        .collect()
}

/// Docker's characters for names (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, one character is
/// enough), which also makes them safe as file names in the state and netns folders.
pub fn check_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 128
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed"
        ))
    }
}

fn words(v: &[String]) -> String {
    v.join(" ")
}

fn split(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

impl Record {
    /// The folder of container `name`: its `config` and its `hosts`, `hostname`,
    /// `resolv.conf`.
    pub fn dir(state: &Path, name: &str) -> PathBuf {
        state.join("containers").join(name)
    }

    /// The record of `name`, if there is one.
    pub fn load(state: &Path, name: &str) -> io::Result<Option<Record>> {
        if check_name(name).is_err() {
            return Ok(None);
        }
        let text = match fs::read_to_string(Self::dir(state, name).join("config")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut r = Record {
            name: name.to_owned(),
            ..Record::default()
        };
        for (k, v) in text.lines().filter_map(|l| l.split_once('=')) {
            match k {
                "id" => r.id = v.to_owned(),
                "mode" => r.mode = v.to_owned(),
                "netns" => r.netns = PathBuf::from(v),
                "owns_netns" => r.owns_netns = v == "true",
                "hostname" => r.hostname = Some(v.to_owned()).filter(|h| !h.is_empty()),
                "add_hosts" => r.add_hosts = split(v),
                "dns" => r.dns = split(v),
                "dns_search" => r.dns_search = split(v),
                "dns_options" => r.dns_options = split(v),
                _ => {}
            }
        }
        Ok(Some(r))
    }

    /// Every record, by name.
    pub fn list(state: &Path) -> io::Result<Vec<Record>> {
        let rd = match fs::read_dir(state.join("containers")) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for e in rd {
            if let Some(r) = e?
                .file_name()
                .to_str()
                .map(|n| Record::load(state, n))
                .transpose()?
                .flatten()
            {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Writes the record (its folder is created).
    pub fn save(&self, state: &Path) -> io::Result<()> {
        let dir = Self::dir(state, &self.name);
        fs::create_dir_all(&dir)?;
        let text = format!(
            "id={}\nmode={}\nnetns={}\nowns_netns={}\nhostname={}\nadd_hosts={}\ndns={}\ndns_search={}\ndns_options={}\n",
            self.id,
            self.mode,
            self.netns.display(),
            self.owns_netns,
            self.hostname.as_deref().unwrap_or(""),
            words(&self.add_hosts),
            words(&self.dns),
            words(&self.dns_search),
            words(&self.dns_options),
        );
        let tmp = dir.join("config.tmp");
        fs::write(&tmp, text)?;
        fs::rename(tmp, dir.join("config"))
    }

    /// Removes the folder of `name`; a missing one is fine.
    pub fn remove(state: &Path, name: &str) -> io::Result<()> {
        if check_name(name).is_err() {
            return Ok(());
        }
        match fs::remove_dir_all(Self::dir(state, name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
