//! The values of [`EtcdStore`](super::EtcdStore)'s keys: network records and owners as
//! JSON, held addresses as text.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::super::{IpamError, Network, Owner};
use super::keys::corrupt;

/// A [`Network`] as stored: addresses and prefixes as text.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    name: String,
    subnet: String,
    gateway: Option<String>,
    range: String,
    reserved: Vec<String>,
    cursor: Option<String>,
    last_released: Option<String>,
    revision: u64,
}

impl From<&Network> for Record {
    fn from(n: &Network) -> Self {
        let text = |a: &IpAddr| a.to_string();
        Record {
            name: n.name.clone(),
            subnet: n.subnet.to_string(),
            gateway: n.gateway.as_ref().map(text),
            range: n.range.to_string(),
            reserved: n.reserved.iter().map(text).collect(),
            cursor: n.cursor.as_ref().map(text),
            last_released: n.last_released.as_ref().map(text),
            revision: n.revision,
        }
    }
}

impl TryFrom<Record> for Network {
    type Error = String;
    fn try_from(r: Record) -> Result<Self, String> {
        fn addr(s: &str) -> Result<IpAddr, String> {
            s.parse().map_err(|_| format!("bad address {s:?}"))
        }
        fn net(s: &str) -> Result<IpNet, String> {
            s.parse().map_err(|_| format!("bad prefix {s:?}"))
        }
        Ok(Network {
            subnet: net(&r.subnet)?,
            gateway: r.gateway.as_deref().map(addr).transpose()?,
            range: net(&r.range)?,
            reserved: r
                .reserved
                .iter()
                .map(|s| addr(s))
                .collect::<Result<_, _>>()?,
            cursor: r.cursor.as_deref().map(addr).transpose()?,
            last_released: r.last_released.as_deref().map(addr).transpose()?,
            revision: r.revision,
            name: r.name,
        })
    }
}

/// An [`Owner`] as stored.
#[derive(Debug, Serialize, Deserialize)]
struct OwnerRecord {
    container: String,
    ifname: String,
}

/// A stored network record (JSON), or [`IpamError::Corrupt`] naming `key`.
pub(crate) fn parse_network(key: &[u8], value: &[u8]) -> Result<Network, IpamError> {
    let r: Record = serde_json::from_slice(value).map_err(|e| corrupt(key, e.to_string()))?;
    Network::try_from(r).map_err(|e| corrupt(key, e))
}

/// The record of `network` stored under `key`, with its revision set to `revision`.
pub(super) fn network_value(
    key: &[u8],
    network: &Network,
    revision: u64,
) -> Result<Vec<u8>, IpamError> {
    let mut rec = Record::from(network);
    rec.revision = revision;
    serde_json::to_vec(&rec).map_err(|e| corrupt(key, e.to_string()))
}

/// A stored lease's owner (JSON).
pub(super) fn parse_owner(key: &[u8], value: &[u8]) -> Result<Owner, IpamError> {
    let o: OwnerRecord = serde_json::from_slice(value).map_err(|e| corrupt(key, e.to_string()))?;
    Ok(Owner::new(o.container, o.ifname))
}

/// The value of a lease key held by `owner`.
pub(super) fn owner_value(key: &[u8], owner: &Owner) -> Result<Vec<u8>, IpamError> {
    let rec = OwnerRecord {
        container: owner.container.clone(),
        ifname: owner.ifname.clone(),
    };
    serde_json::to_vec(&rec).map_err(|e| corrupt(key, e.to_string()))
}

/// The address stored under an owner key.
pub(super) fn parse_address(key: &[u8], value: &[u8]) -> Result<IpAddr, IpamError> {
    let a = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
    a.ok_or_else(|| corrupt(key, "value is not an address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let n = Network {
            name: "n".into(),
            subnet: "fd00::/64".parse().unwrap(),
            gateway: Some("fd00::1".parse().unwrap()),
            range: "fd00::/80".parse().unwrap(),
            reserved: vec!["fd00::5".parse().unwrap()],
            cursor: None,
            last_released: Some("fd00::9".parse().unwrap()),
            revision: 7,
        };
        let json = serde_json::to_vec(&Record::from(&n)).unwrap();
        assert_eq!(parse_network(b"k", &json).unwrap(), n);
        let bad = br#"{"name":"n","subnet":"nope","range":"fd00::/80","reserved":[],"revision":1}"#;
        assert!(matches!(
            parse_network(b"k", bad),
            Err(IpamError::Corrupt { .. })
        ));
    }

    #[test]
    fn owners_round_trip() {
        let o = Owner::new("3f2a1c0", "eth0");
        let v = owner_value(b"k", &o).unwrap();
        assert_eq!(parse_owner(b"k", &v).unwrap(), o);
        assert_eq!(
            parse_address(b"k", b"10.0.0.2").unwrap(),
            "10.0.0.2".parse::<IpAddr>().unwrap()
        );
        assert!(parse_address(b"k", b"nope").is_err());
    }
}
