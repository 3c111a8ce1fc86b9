//! Docker's network modes (`--network bridge|host|none|container:NAME`): which namespace a
//! container gets.

use std::fmt;
use std::str::FromStr;

use super::config::DEFAULT_NETWORK;
use super::host::Host;
use crate::error::{Error, Object, Result};
use crate::link::LinkSet;
use crate::netns::{Netns, NetnsDir};

/// A container's network mode.
///
/// ```
/// use netplumb::network::NetworkMode;
/// assert_eq!("container:web".parse::<NetworkMode>()?, NetworkMode::Container("web".into()));
/// assert_eq!("mybr0".parse::<NetworkMode>()?, NetworkMode::Bridge("mybr0".into()));
/// # Ok::<(), netplumb::Error>(())
/// ```
///
/// With feature `serde`: its text form, as `--network` takes it (`"host"`, `"none"`,
/// `"container:web"`, `"mybr0"`); deserializing parses it as [`str::parse`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkMode {
    /// Its own namespace, connected to a bridge network (`--network NET`; `bridge` is the
    /// default network).
    Bridge(String),
    /// The host's namespace: nothing is created (`--network host`).
    Host,
    /// Its own namespace with only `lo`, up (`--network none`).
    None,
    /// Another container's namespace: same addresses, `127.0.0.1` between them
    /// (`--network container:NAME`).
    Container(String),
}

impl FromStr for NetworkMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<NetworkMode> {
        Ok(match s {
            "" => return Err(Error::invalid("network mode", s, "empty")),
            "host" => NetworkMode::Host,
            "none" => NetworkMode::None,
            "default" => NetworkMode::Bridge(DEFAULT_NETWORK.to_owned()),
            _ => match s.strip_prefix("container:") {
                Some("") => {
                    return Err(Error::invalid("network mode", s, "container: needs a name"))
                }
                Some(other) => NetworkMode::Container(other.to_owned()),
                None => NetworkMode::Bridge(s.to_owned()),
            },
        })
    }
}

impl fmt::Display for NetworkMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkMode::Bridge(n) => f.write_str(n),
            NetworkMode::Host => f.write_str("host"),
            NetworkMode::None => f.write_str("none"),
            NetworkMode::Container(c) => write!(f, "container:{c}"),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for NetworkMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for NetworkMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Host {
    /// The namespace a container named `name` gets in `mode`: the host's (host mode),
    /// another container's (container mode: found among the attachments by name or id, or
    /// as a named namespace of `dir`), or a new one with `lo` up — named `name` in `dir`
    /// when `dir` is given (as `ip netns add`), else unnamed. For a bridge mode, connect
    /// the returned namespace with [`Host::connect`].
    pub fn container_netns(
        &mut self,
        mode: &NetworkMode,
        name: &str,
        dir: Option<&NetnsDir>,
    ) -> Result<Netns> {
        match mode {
            NetworkMode::Host => Ok(self.netns.clone()),
            NetworkMode::Container(other) => self.netns_of(other, dir),
            NetworkMode::None | NetworkMode::Bridge(_) => {
                let ns = match dir {
                    Some(d) => d.create(name)?,
                    None => Netns::new()?,
                };
                let up = self
                    .rtnl_in(&ns)
                    .and_then(|mut r| r.execute(&LinkSet::new("lo").up()));
                if let Err(e) = up {
                    if let Some(d) = dir {
                        let _ = d.delete(name);
                    }
                    return Err(e);
                }
                Ok(ns)
            }
        }
    }

    /// The namespace of container `other` (by name or id).
    fn netns_of(&self, other: &str, dir: Option<&NetnsDir>) -> Result<Netns> {
        let found = super::state::rows::attachments(&self.db(), None)?
            .into_iter()
            .find(|a| (a.name == other || a.container == other) && !a.netns.as_os_str().is_empty());
        match (found, dir) {
            (Some(a), _) => Netns::open(&a.netns),
            (None, Some(d)) => d.open(other),
            (None, None) => Err(Error::not_found(Object::Container, other)),
        }
    }
}
