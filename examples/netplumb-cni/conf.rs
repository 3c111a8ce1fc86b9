//! The network configuration on stdin, checked field by field: each bad field is an error
//! naming it, with the code the specification gives (2 unsupported, 6 decode, 7 invalid).

use std::net::IpAddr;

use netplumb::firewall::Backend;
use netplumb::link::MacAddr;
use netplumb::network::NetworkConfig;
use netplumb::IpNet;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{CniError, Res};

/// The CNI versions this plugin speaks; `VERSION` lists them.
pub const SUPPORTED: [&str; 5] = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// A subnet and its gateway.
pub type Subnet = (IpNet, IpAddr);

/// The configuration, as netplumb's terms.
#[derive(Debug, Clone)]
pub struct Conf {
    /// The configuration's `cniVersion`; the result is written in it.
    pub version: String,
    /// The network (its `name`).
    pub network: NetworkConfig,
    /// `isDefaultGateway`: default routes through the gateways.
    pub default_gateway: bool,
    /// The IPAM's `routes`: destination and gateway (the subnet's gateway when not given).
    pub routes: Vec<(IpNet, Option<IpAddr>)>,
    /// The subnets and their gateways, for the result.
    pub subnets: Vec<Subnet>,
    /// `dns`, passed through to the result.
    pub dns: Option<Value>,
    /// `runtimeConfig.portMappings`.
    pub ports: Vec<netplumb::ports::PortMapping>,
    /// `runtimeConfig.ips`.
    pub ips: Vec<IpAddr>,
    /// `runtimeConfig.mac`.
    pub mac: Option<MacAddr>,
    /// `prevResult`.
    pub prev: Option<Value>,
    /// GC's list of attachments still valid: container id and interface name.
    pub valid: Option<Vec<(String, String)>>,
    /// The netplumb section: where the state lives, and the firewall backend.
    pub state_dir: String,
    /// The runtime folder (leases, ports, records).
    pub run_dir: String,
    /// The firewall backend.
    pub backend: Backend,
    /// The IPAM plugin the addresses come from, when it is not host-local's
    /// configuration (served by netplumb's own IPAM).
    pub delegate: Option<String>,
}

/// A field of `v` as `T`: absent or null is `None`; a value of the wrong shape is code 7
/// naming the field.
fn get<T: DeserializeOwned>(v: &Value, key: &str, path: &str) -> Res<Option<T>> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(x) => serde_json::from_value(x.clone())
            .map(Some)
            .map_err(|e| CniError::new(7, format!("invalid field {path}{key}"), e.to_string())),
    }
}

/// The `cniVersion` of a configuration text, for `VERSION` and error results.
pub fn version_of(text: &str) -> Option<String> {
    let v: Value = serde_json::from_str(text).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_owned)
}

/// Parses and checks the whole configuration.
pub fn parse(text: &str) -> Res<Conf> {
    let v: Value = serde_json::from_str(text).map_err(|e| {
        CniError::new(
            6,
            "failed to decode the network configuration",
            e.to_string(),
        )
    })?;
    if !v.is_object() {
        return Err(CniError::new(
            6,
            "the network configuration is not a JSON object",
            "",
        ));
    }
    let version: String = get(&v, "cniVersion", "")?
        .ok_or_else(|| CniError::new(7, "missing field cniVersion", ""))?;
    if !SUPPORTED.contains(&version.as_str()) {
        return Err(CniError::new(
            1,
            format!("incompatible CNI version {version}"),
            format!("supported: {}", SUPPORTED.join(", ")),
        ));
    }
    let name: String =
        get(&v, "name", "")?.ok_or_else(|| CniError::new(7, "missing field name", ""))?;
    let bridge: String = get(&v, "bridge", "")?.unwrap_or_else(|| "cni0".to_owned());
    // isGateway: the bridge holds the gateway address either way (netplumb's networks
    // route through it); isDefaultGateway implies it, as in the reference plugin.
    let _is_gateway: Option<bool> = get(&v, "isGateway", "")?;
    let default_gateway = get(&v, "isDefaultGateway", "")?.unwrap_or(false);
    let _force: Option<bool> = get(&v, "forceAddress", "")?;
    let masq = get(&v, "ipMasq", "")?.unwrap_or(false);
    let mtu: Option<u32> = get(&v, "mtu", "")?;
    // Hairpin is always on (a container reaches its own published ports); spoofed source
    // MACs and addresses are always dropped.
    let _hairpin: Option<bool> = get(&v, "hairpinMode", "")?;
    let _spoof: Option<bool> = get(&v, "macspoofchk", "")?;
    if get(&v, "promiscMode", "")?.unwrap_or(false) {
        return Err(CniError::new(
            2,
            "unsupported field promiscMode: true",
            "the bridge is never promiscuous",
        ));
    }
    if get(&v, "enabledad", "")?.unwrap_or(false) {
        return Err(CniError::new(
            2,
            "unsupported field enabledad: true",
            "IPv6 addresses are added without duplicate address detection",
        ));
    }
    for key in ["vlan", "vlanTrunk"] {
        if v.get(key).is_some_and(|x| !x.is_null()) {
            return Err(CniError::new(2, format!("unsupported field {key}"), ""));
        }
    }

    let mut network = NetworkConfig::new(&name).bridge(&bridge).masquerade(masq);
    if let Some(m) = mtu {
        network = network.mtu(m);
    }
    let np = v.get("netplumb").cloned().unwrap_or(Value::Null);
    let backend = match get::<String>(&np, "firewall", "netplumb.")?.as_deref() {
        None => Backend::Auto,
        Some(b) => b.parse().map_err(|e: netplumb::Error| {
            CniError::new(7, "invalid field netplumb.firewall", e.to_string())
        })?,
    };
    if let Some(icc) = get::<bool>(&np, "icc", "netplumb.")? {
        network = network.icc(icc);
    }
    if let Some(ip) = get::<IpAddr>(&np, "hostIP", "netplumb.")? {
        network = network.host_binding(ip);
    }
    let state_dir =
        get(&np, "stateDir", "netplumb.")?.unwrap_or_else(|| "/var/lib/netplumb/cni".to_owned());
    let run_dir =
        get(&np, "runDir", "netplumb.")?.unwrap_or_else(|| "/run/netplumb/cni".to_owned());

    let ipam = v.get("ipam").cloned().unwrap_or(Value::Null);
    let kind: String = get(&ipam, "type", "ipam.")?.ok_or_else(|| {
        CniError::new(
            7,
            "missing field ipam.type",
            "netplumb-cni needs host-local's configuration",
        )
    })?;
    // Any other IPAM is delegated: its plugin, found in CNI_PATH, answers ADD with the
    // addresses, and the network's subnets follow from them.
    let delegate = (kind != "host-local").then(|| kind.clone());
    if delegate.is_some()
        && !kind
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
    {
        return Err(CniError::new(
            7,
            format!("invalid field ipam.type: {kind:?}"),
            "not a plugin name",
        ));
    }
    let (subnets, range) = match delegate {
        Some(_) => (Vec::new(), None),
        None => ranges(&ipam)?,
    };
    network = with_subnets(network, &subnets);
    if let Some(r) = range {
        network = network.ip_range(r);
    }
    let mut routes = Vec::new();
    let own_routes = match delegate {
        Some(_) => None,
        None => get::<Vec<Value>>(&ipam, "routes", "ipam.")?,
    };
    for (i, r) in own_routes.unwrap_or_default().iter().enumerate() {
        let at = format!("ipam.routes[{i}].");
        let dst: IpNet = get(r, "dst", &at)?
            .ok_or_else(|| CniError::new(7, format!("missing field {at}dst"), ""))?;
        let gw: Option<IpAddr> = get(r, "gw", &at)?;
        if gw.is_some_and(|g| g.is_ipv4() != dst.addr().is_ipv4()) {
            return Err(CniError::new(
                7,
                format!("invalid field {at}gw"),
                "another address family than dst",
            ));
        }
        if !subnets
            .iter()
            .any(|(s, _)| s.addr().is_ipv4() == dst.addr().is_ipv4())
        {
            return Err(CniError::new(
                7,
                format!("invalid field {at}dst"),
                "no subnet of its address family",
            ));
        }
        routes.push((dst.trunc(), gw));
    }

    let rc = v.get("runtimeConfig").cloned().unwrap_or(Value::Null);
    let mut ports = Vec::new();
    for (i, p) in get::<Vec<Value>>(&rc, "portMappings", "runtimeConfig.")?
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        ports.push(port(p, &format!("runtimeConfig.portMappings[{i}]."))?);
    }
    let mut ips = Vec::new();
    for s in get::<Vec<String>>(&rc, "ips", "runtimeConfig.")?.unwrap_or_default() {
        ips.push(ip_of(&s, "runtimeConfig.ips")?);
    }
    let mac = match get::<String>(&rc, "mac", "runtimeConfig.")? {
        Some(m) => Some(m.parse().map_err(|e: netplumb::Error| {
            CniError::new(7, "invalid field runtimeConfig.mac", e.to_string())
        })?),
        None => None,
    };
    let valid = get::<Vec<Value>>(&v, "cni.dev/valid-attachments", "")?
        .or(get::<Vec<Value>>(&v, "cni.dev/attachments", "")?)
        .map(|list| {
            list.iter()
                .map(|a| {
                    let id: String =
                        get(a, "containerID", "cni.dev/valid-attachments[].")?.unwrap_or_default();
                    let ifname: String =
                        get(a, "ifname", "cni.dev/valid-attachments[].")?.unwrap_or_default();
                    Ok((id, ifname))
                })
                .collect::<Res<Vec<_>>>()
        })
        .transpose()?;
    if delegate.is_none() {
        network
            .validate()
            .map_err(|e| CniError::new(7, "invalid network configuration", e.to_string()))?;
    }
    Ok(Conf {
        version,
        network,
        default_gateway,
        routes,
        subnets,
        dns: v.get("dns").cloned(),
        ports,
        ips,
        mac,
        prev: v.get("prevResult").cloned().filter(|p| !p.is_null()),
        valid,
        state_dir,
        run_dir,
        backend,
        delegate,
    })
}

/// `network` with `subnets` and their gateways, and the address families they make.
pub fn with_subnets(mut network: NetworkConfig, subnets: &[Subnet]) -> NetworkConfig {
    let (mut v4, mut v6) = (false, false);
    for (s, g) in subnets {
        network = network.subnet(*s).gateway(*g);
        v4 |= s.addr().is_ipv4();
        v6 |= s.addr().is_ipv6();
    }
    network.ipv4(v4).ipv6(v6)
}

/// An address, with or without a prefix length (`runtimeConfig.ips`, `CNI_ARGS` `IP`).
pub fn ip_of(s: &str, what: &str) -> Res<IpAddr> {
    let bare = s.split('/').next().unwrap_or(s);
    bare.parse().map_err(|_| {
        CniError::new(
            7,
            format!("invalid field {what}: {s:?} is not an address"),
            "",
        )
    })
}

/// host-local's ranges (`ranges`, or the older `subnet`/`rangeStart`/`rangeEnd`/`gateway`
/// of one range): the subnets with their gateways (the first address when not given),
/// and the IPv4 allocation range when one is set.
fn ranges(ipam: &Value) -> Res<(Vec<Subnet>, Option<IpNet>)> {
    let sets: Vec<Vec<Value>> = match get(ipam, "ranges", "ipam.")? {
        Some(s) => s,
        None => match ipam.get("subnet") {
            Some(_) => vec![vec![ipam.clone()]],
            None => {
                return Err(CniError::new(
                    7,
                    "missing field ipam.ranges",
                    "host-local needs a subnet",
                ))
            }
        },
    };
    if sets.is_empty() {
        return Err(CniError::new(
            7,
            "invalid field ipam.ranges",
            "no range set",
        ));
    }
    let mut subnets = Vec::new();
    let mut ip_range = None;
    for (i, set) in sets.iter().enumerate() {
        if set.len() != 1 {
            return Err(CniError::new(
                2,
                format!("unsupported field ipam.ranges[{i}]"),
                "one range per range set",
            ));
        }
        let at = format!("ipam.ranges[{i}][0].");
        let r = &set[0];
        let subnet: IpNet = get(r, "subnet", &at)?
            .ok_or_else(|| CniError::new(7, format!("missing field {at}subnet"), ""))?;
        let subnet = subnet.trunc();
        let gw: IpAddr = match get(r, "gateway", &at)? {
            Some(g) => g,
            None => first_host(subnet),
        };
        if !subnet.contains(&gw) {
            return Err(CniError::new(
                7,
                format!("invalid field {at}gateway"),
                format!("{gw} is not in {subnet}"),
            ));
        }
        if subnets
            .iter()
            .any(|(s, _): &Subnet| s.addr().is_ipv4() == subnet.addr().is_ipv4())
        {
            return Err(CniError::new(
                2,
                format!("unsupported field {at}subnet"),
                "one subnet per address family",
            ));
        }
        let start: Option<IpAddr> = get(r, "rangeStart", &at)?;
        let end: Option<IpAddr> = get(r, "rangeEnd", &at)?;
        if start.is_some() || end.is_some() {
            let (s, e) = (
                start.unwrap_or(subnet.network()),
                end.unwrap_or(subnet.broadcast()),
            );
            match cidr_of(s, e).filter(|c| subnet.contains(c)) {
                Some(c) if c.addr().is_ipv4() => ip_range = Some(c),
                _ => {
                    return Err(CniError::new(
                        2,
                        format!("unsupported field {at}rangeStart/rangeEnd"),
                        format!(
                            "{s}-{e}: only an IPv4 range that is one CIDR block inside the subnet"
                        ),
                    ))
                }
            }
        }
        subnets.push((subnet, gw));
    }
    Ok((subnets, ip_range))
}

/// The subnet's first host address (host-local's default gateway).
pub fn first_host(n: IpNet) -> IpAddr {
    match n.network() {
        IpAddr::V4(a) => IpAddr::V4((u32::from(a) + 1).into()),
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) + 1).into()),
    }
}

/// The CIDR block that is exactly `start..=end`, if there is one (the block's network and
/// broadcast addresses may be left out, as host-local's defaults do).
fn cidr_of(start: IpAddr, end: IpAddr) -> Option<IpNet> {
    let (s, e, bits) = match (start, end) {
        (IpAddr::V4(s), IpAddr::V4(e)) => (u32::from(s) as u128, u32::from(e) as u128, 32),
        (IpAddr::V6(s), IpAddr::V6(e)) => (u128::from(s), u128::from(e), 128),
        _ => return None,
    };
    for len in 0..=bits {
        let size: u128 = if bits - len >= 128 {
            u128::MAX
        } else {
            1u128 << (bits - len)
        };
        let net = s & !(size.wrapping_sub(1));
        let last = net | size.wrapping_sub(1);
        let inner = size > 2 && s == net + 1 && e == last - 1;
        if (s == net && e == last) || inner {
            let addr = if bits == 32 {
                IpAddr::V4((net as u32).into())
            } else {
                IpAddr::V6(net.into())
            };
            return IpNet::new(addr, len as u8).ok();
        }
    }
    None
}

/// One `portMappings` entry as netplumb's `-p` mapping.
fn port(p: &Value, at: &str) -> Res<netplumb::ports::PortMapping> {
    let host: u16 = get(p, "hostPort", at)?
        .ok_or_else(|| CniError::new(7, format!("missing field {at}hostPort"), ""))?;
    let ctr: u16 = get(p, "containerPort", at)?
        .ok_or_else(|| CniError::new(7, format!("missing field {at}containerPort"), ""))?;
    let proto: String = get(p, "protocol", at)?.unwrap_or_else(|| "tcp".to_owned());
    let ip: String = get(p, "hostIP", at)?.unwrap_or_default();
    let host_part = match ip.as_str() {
        "" => String::new(),
        s => match s.parse::<IpAddr>() {
            Ok(IpAddr::V6(a)) => format!("[{a}]:"),
            Ok(a) => format!("{a}:"),
            Err(_) => {
                return Err(CniError::new(
                    7,
                    format!("invalid field {at}hostIP"),
                    format!("{s:?} is not an address"),
                ))
            }
        },
    };
    let spec = format!("{host_part}{host}:{ctr}/{}", proto.to_lowercase());
    spec.parse().map_err(|e: netplumb::ports::PortSpecError| {
        CniError::new(7, format!("invalid field {at}"), e.to_string())
    })
}
