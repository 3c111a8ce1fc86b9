//! The keys and values that overlay networks keep in etcd, shared by
//! [`EtcdNetworks`](super::EtcdNetworks) (the definitions and VNI claims) and
//! [`EtcdDiscovery`](super::EtcdDiscovery) (the hosts and endpoints under a lease).
//!
//! # Keys
//!
//! Under a prefix (default [`DEFAULT_PREFIX`], `/netplumb/overlay/`):
//!
//! | key | value | written by |
//! |---|---|---|
//! | `networks/NAME` | the definition, JSON | [`EtcdNetworks::create`] |
//! | `vni/VNI` (8 decimal digits) | the network's name: the VNI claim | [`EtcdNetworks::create`] |
//! | `peers/NAME/hosts/HOST` | `{"id", "underlay"}`, under HOST's lease | [`PeerDiscovery::join`] |
//! | `peers/NAME/endpoints/HOST/IP` | `{"host", "ip", "mac"}`, under HOST's lease | [`PeerDiscovery::publish`] |
//!
//! [`EtcdNetworks::create`]: super::EtcdNetworks::create
//! [`PeerDiscovery::join`]: super::PeerDiscovery::join
//! [`PeerDiscovery::publish`]: super::PeerDiscovery::publish

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{json, Value};

use super::config::OverlayNetwork;
use super::discovery::{PeerEndpoint, PeerHost};
use crate::error::{Error, Result};
use crate::etcd::EtcdError;
use crate::link::MacAddr;

/// The default key prefix of overlay definitions and peers.
pub const DEFAULT_PREFIX: &str = "/netplumb/overlay/";

/// The error of a stored value at `key` that lacks `what` or has a bad one.
fn corrupt(key: &[u8], what: &str) -> Error {
    EtcdError::Protocol {
        op: "overlay record",
        detail: format!(
            "key {}: bad or missing {what}",
            String::from_utf8_lossy(key)
        ),
    }
    .into()
}

/// A network definition as stored under `networks/NAME`.
pub(super) fn def_json(net: &OverlayNetwork) -> Value {
    json!({
        "name": net.name(),
        "subnet": net.subnet().to_string(),
        "gateway": net.gateway_ip().to_string(),
        "vni": net.vxlan_id(),
        "mtu": net.mtu,
    })
}

/// A stored overlay network definition (JSON), or an error naming `key`.
pub(crate) fn def_parse(key: &[u8], v: &[u8]) -> Result<OverlayNetwork> {
    let bad = |what: &str| corrupt(key, what);
    let v: Value = serde_json::from_slice(v).map_err(|e| bad(&e.to_string()))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| bad(k));
    let subnet: IpNet = s("subnet")?.parse().map_err(|_| bad("subnet"))?;
    let gateway: IpAddr = s("gateway")?.parse().map_err(|_| bad("gateway"))?;
    let vni = v
        .get("vni")
        .and_then(Value::as_u64)
        .and_then(|x| u32::try_from(x).ok())
        .ok_or_else(|| bad("vni"))?;
    let mut net = OverlayNetwork::new(s("name")?, subnet)
        .gateway(gateway)
        .vni(vni);
    if let Some(mtu) = v.get("mtu").and_then(Value::as_u64) {
        net = net.mtu(u32::try_from(mtu).map_err(|_| bad("mtu"))?);
    }
    Ok(net)
}

/// A host registration as stored under `peers/NAME/hosts/HOST`.
pub(super) fn host_json(h: &PeerHost) -> Value {
    json!({ "id": h.id, "underlay": h.underlay.to_string() })
}

/// An endpoint registration as stored under `peers/NAME/endpoints/HOST/IP`.
pub(super) fn ep_json(e: &PeerEndpoint) -> Value {
    json!({ "host": e.host, "ip": e.ip.to_string(), "mac": e.mac.to_string() })
}

/// A stored host registration (JSON), or an error naming `key`.
pub(crate) fn parse_host(key: &[u8], v: &[u8]) -> Result<PeerHost> {
    let bad = |what: &str| corrupt(key, what);
    let v: Value = serde_json::from_slice(v).map_err(|e| bad(&e.to_string()))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| bad(k));
    Ok(PeerHost {
        id: s("id")?.to_owned(),
        underlay: s("underlay")?.parse().map_err(|_| bad("underlay"))?,
    })
}

/// A stored endpoint registration (JSON), or an error naming `key`.
pub(crate) fn parse_ep(key: &[u8], v: &[u8]) -> Result<PeerEndpoint> {
    let bad = |what: &str| corrupt(key, what);
    let v: Value = serde_json::from_slice(v).map_err(|e| bad(&e.to_string()))?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).ok_or_else(|| bad(k));
    Ok(PeerEndpoint {
        host: s("host")?.to_owned(),
        ip: s("ip")?.parse().map_err(|_| bad("ip"))?,
        mac: s("mac")?.parse::<MacAddr>().map_err(|_| bad("mac"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let net = OverlayNetwork::new("ov1", "10.0.9.0/24".parse().unwrap())
            .gateway("10.0.9.1".parse().unwrap())
            .vni(4097)
            .mtu(1400);
        let v = def_json(&net).to_string();
        assert_eq!(def_parse(b"k", v.as_bytes()).unwrap(), net);
        let h = PeerHost {
            id: "h1".into(),
            underlay: "192.168.99.1".parse().unwrap(),
        };
        let v = host_json(&h).to_string();
        assert_eq!(parse_host(b"k", v.as_bytes()).unwrap(), h);
        let e = PeerEndpoint {
            host: "h1".into(),
            ip: "10.0.9.2".parse().unwrap(),
            mac: "02:42:0a:00:09:02".parse().unwrap(),
        };
        let v = ep_json(&e).to_string();
        assert_eq!(parse_ep(b"k", v.as_bytes()).unwrap(), e);
    }

    #[test]
    fn bad_records_name_the_key_and_field() {
        let e = parse_host(b"/p/peers/ov1/hosts/h1", br#"{"id":"h1"}"#).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/p/peers/ov1/hosts/h1"), "{text}");
        assert!(text.contains("underlay"), "{text}");
        assert!(def_parse(b"k", br#"{"name":"ov1","subnet":"x"}"#).is_err());
    }
}
