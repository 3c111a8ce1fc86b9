//! `setup` and `teardown`: the request checked in full first, then applied network by
//! network; a failure undoes the networks already set up in this call.

use std::collections::BTreeMap;
use std::net::IpAddr;

use netplumb::link::MacAddr;
use netplumb::network::{Attachment, Container, Host, NetworkConfig};
use netplumb::ports::PortMapping;
use netplumb::{IpNet, Netns};

use crate::dns::{self, Aardvark};
use crate::types::{NetAddress, NetInterface, NetworkOptions, StatusBlock};
use crate::Res;

/// One network of the request, checked.
struct Join {
    cfg: NetworkConfig,
    ifname: String,
    ips: Vec<IpAddr>,
    mac: Option<MacAddr>,
    aliases: Vec<String>,
    /// The subnets with their gateways, for the status.
    subnets: Vec<(IpNet, Option<IpAddr>)>,
    internal: bool,
    dns: bool,
    dns_servers: Vec<IpAddr>,
    metric: u32,
    default_route: bool,
    routes: Vec<(IpNet, IpAddr, Option<u32>)>,
}

/// A checked request.
pub struct Plan {
    id: String,
    name: String,
    joins: Vec<(String, Join)>,
    ports: Vec<PortMapping>,
    dns_servers: Vec<IpAddr>,
}

impl Plan {
    /// Checks everything before anything is changed; the error names the bad part.
    pub fn new(o: &NetworkOptions) -> Res<Plan> {
        if o.container_id.is_empty() {
            return Err("container_id is empty".into());
        }
        let mut joins = Vec::new();
        for (name, per) in &o.networks {
            let net = o
                .network_info
                .get(name)
                .ok_or_else(|| format!("network options for network {name} not found"))?;
            joins.push((name.clone(), join(name, net, per)?));
        }
        if joins.is_empty() {
            return Err("no networks given".into());
        }
        let mut ports = Vec::new();
        for p in o.port_mappings.iter().flatten() {
            ports.extend(mappings(p)?);
        }
        Ok(Plan {
            id: o.container_id.clone(),
            name: o.container_name.clone(),
            joins,
            ports,
            dns_servers: o.dns_servers.clone().unwrap_or_default(),
        })
    }

    /// Sets up every network, in name order, each with the ports; then the names on the
    /// `dns_enabled` ones. On a failure the networks set up so far are torn
    /// down again.
    pub fn setup(
        &self,
        host: &mut Host,
        ns: &Netns,
        dns: Option<&Aardvark>,
    ) -> Res<BTreeMap<String, StatusBlock>> {
        let mut out = BTreeMap::new();
        let mut done: Vec<&str> = Vec::new();
        let mut entries = Vec::new();
        let undo = |host: &mut Host, done: &[&str]| {
            for n in done {
                let _ = disconnect(host, n, &self.id);
            }
        };
        for (name, j) in &self.joins {
            match self.setup_one(host, ns, j) {
                Ok(att) => {
                    done.push(name);
                    let serves = j.dns && dns.is_some();
                    out.insert(name.clone(), status(j, &att, serves));
                    if serves {
                        let mut names = vec![self.name.clone()];
                        names.extend(j.aliases.iter().cloned());
                        entries.push(dns::Entry {
                            network: name.clone(),
                            gateways: j.subnets.iter().filter_map(|(_, g)| *g).collect(),
                            id: self.id.clone(),
                            ips: att.addrs.iter().map(IpNet::addr).collect(),
                            names,
                            network_dns: j.dns_servers.clone(),
                            container_dns: self.dns_servers.clone(),
                        });
                    }
                }
                Err(e) => {
                    undo(host, &done);
                    return Err(e);
                }
            }
        }
        if let Some(a) = dns {
            // A repeated setup lists the container once.
            let nets: Vec<&str> = entries.iter().map(|e| e.network.as_str()).collect();
            let r = a.remove(&self.id, &nets).and_then(|()| a.add(&entries));
            if let Err(e) = r {
                let _ = a.remove(&self.id, &nets);
                undo(host, &done);
                return Err(format!("DNS: {e}"));
            }
        }
        Ok(out)
    }

    /// Sets up one network; the error is netavark's text where its users match on it,
    /// else ours, naming the network.
    fn setup_one(&self, host: &mut Host, ns: &Netns, j: &Join) -> Res<Attachment> {
        let name = j.cfg.name();
        let text = |e: netplumb::Error| netavark_text(&e).unwrap_or(format!("network {name}: {e}"));
        host.ensure_network(&j.cfg).map_err(text)?;
        let mut c = Container::new(&self.id, ns)
            .ifname(&j.ifname)
            .route_metric(j.metric)
            .default_route(j.default_route);
        for (dst, gw, metric) in &j.routes {
            c = match metric {
                Some(m) => c.route_with_metric(*dst, *gw, *m),
                None => c.route(*dst, *gw),
            };
        }
        if !self.name.is_empty() {
            c = c.name(&self.name);
        }
        for ip in &j.ips {
            c = if ip.is_ipv4() { c.ip(*ip) } else { c.ip6(*ip) };
        }
        if let Some(m) = j.mac {
            c = c.mac(m);
        }
        for a in &j.aliases {
            c = c.alias(a);
        }
        // As netavark: the ports on every network (one host port, each network's rule to
        // the container's address on it).
        for p in &self.ports {
            c = c.publish(*p);
        }
        let r = host.ensure_connected(name, &c);
        r.map_err(|e| {
            // A network this call made and nobody uses goes again.
            let _ = remove_if_unused(host, name);
            text(e)
        })
    }
}

/// `teardown`: each network of the request loses the container (its names too), and
/// its bridge and rules with its last container. Nothing connected is not an error; a
/// container interface that is gone from a namespace still there is (as netavark
/// reports it), after everything else was removed.
pub fn teardown(
    host: &mut Host,
    o: &NetworkOptions,
    ns: Option<&Netns>,
    dns: Option<&Aardvark>,
) -> Res {
    let mut first = None;
    if let Some(a) = dns {
        let nets: Vec<&str> = o
            .network_info
            .values()
            .filter(|n| n.dns_enabled)
            .map(|n| n.name.as_str())
            .collect();
        if let Err(e) = a.remove(&o.container_id, &nets) {
            first = Some(format!("DNS: {e}"));
        }
    }
    let mut errors = Vec::new();
    for name in o.networks.keys() {
        if let Some(gone) = ns.and_then(|ns| veth_gone(host, name, &o.container_id, ns)) {
            errors.push(format!(
                "failed to delete container veth {gone}: Netlink error: {}",
                std::io::Error::from_raw_os_error(netplumb::error::Errno::ENODEV.raw())
            ));
        }
        if let Err(e) = disconnect(host, name, &o.container_id) {
            first.get_or_insert(format!("network {name}: {e}"));
        }
    }
    errors.extend(first);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// The container's interface on `network` when it is connected there and the interface
/// is missing from `ns`.
fn veth_gone(host: &mut Host, network: &str, id: &str, ns: &Netns) -> Option<String> {
    let att = host
        .attachments(Some(network))
        .ok()?
        .into_iter()
        .find(|a| a.container == id)?;
    let mut inside = netplumb::Rtnl::open_in(ns).ok()?;
    match inside.link(att.ifname.as_str()) {
        Err(e) if e.is_not_found() => Some(att.ifname),
        _ => None,
    }
}

fn disconnect(host: &mut Host, network: &str, id: &str) -> Res {
    match host.network(network) {
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.to_string()),
        Ok(_) => {}
    }
    let atts = host.attachments(Some(network)).map_err(|e| e.to_string())?;
    if atts.iter().any(|a| a.container == id) {
        host.disconnect(network, id).map_err(|e| e.to_string())?;
    } else {
        // Not connected: a setup killed halfway may have left its veth and ports.
        host.clear_interrupted(network, id)
            .map_err(|e| e.to_string())?;
    }
    remove_if_unused(host, network)
}

fn remove_if_unused(host: &mut Host, network: &str) -> Res {
    let left = host.attachments(Some(network)).map_err(|e| e.to_string())?;
    if left.is_empty() {
        host.remove_network(network, false)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// One network of the request, checked and turned into netplumb's terms.
fn join(name: &str, net: &crate::types::Network, per: &crate::types::PerNetwork) -> Res<Join> {
    if net.name != name {
        return Err(format!(
            "network {name}: network_info names it {:?}",
            net.name
        ));
    }
    if net.driver != "bridge" {
        return Err(format!(
            "network {name}: driver {:?} is not supported (bridge only)",
            net.driver
        ));
    }
    // `none`: no addresses at all, only the interface on the bridge.
    let no_ipam = match net
        .ipam_options
        .as_ref()
        .and_then(|o| o.get("driver"))
        .map(String::as_str)
    {
        None | Some("host-local") => false,
        Some("none") => true,
        // netavark's words, which its users match on.
        Some(d) => return Err(format!("IO error: unsupported ipam driver {d}")),
    };
    let mut cfg = NetworkConfig::new(name).internal(net.internal && !no_ipam);
    if let Some(b) = &net.network_interface {
        cfg = cfg.bridge(b);
    }
    let mut subnets = Vec::new();
    let given = if no_ipam { None } else { net.subnets.as_ref() };
    for s in given.into_iter().flatten() {
        cfg = cfg.subnet(s.subnet);
        if let Some(g) = s.gateway {
            if !s.subnet.contains(&g) {
                return Err(format!(
                    "network {name}: gateway {g} is not in subnet {}",
                    s.subnet
                ));
            }
            cfg = cfg.gateway(g);
        }
        subnets.push((s.subnet, s.gateway));
    }
    if subnets.is_empty() && !no_ipam {
        return Err(format!("network {name}: no subnets"));
    }
    let v6 = subnets.iter().any(|(s, _)| !s.addr().is_ipv4());
    let v4 = subnets.iter().any(|(s, _)| s.addr().is_ipv4());
    // `ipv6_enabled` says what the subnets say; netavark goes by the subnets too.
    cfg = cfg.ipv6(v6).ipv4(v4);
    // netavark's default metric of a container's default routes.
    let mut metric = 100;
    let mut default_route = true;
    for (k, v) in net.options.iter().flatten() {
        match k.as_str() {
            "no_default_route" => {
                default_route = match v.as_str() {
                    "true" | "1" => false,
                    "false" | "0" => true,
                    _ => {
                        return Err(format!(
                            "network {name}: option no_default_route {v:?} (true or false)"
                        ))
                    }
                };
            }
            "metric" => {
                metric = v
                    .parse()
                    .map_err(|_| format!("network {name}: option metric {v:?} is not a number"))?;
            }
            "mtu" => {
                let mtu: u32 =
                    v.parse().ok().filter(|m| *m > 0).ok_or_else(|| {
                        format!("network {name}: option mtu {v:?} is not a number")
                    })?;
                cfg = cfg.mtu(mtu);
            }
            // Networks are isolated from each other already.
            "isolate" => {
                if !matches!(v.as_str(), "true" | "false" | "strict") {
                    return Err(format!(
                        "network {name}: option isolate {v:?} (true, false or strict)"
                    ));
                }
            }
            other => return Err(format!("network {name}: option {other:?} is not supported")),
        }
    }
    let ips = per.static_ips.clone().unwrap_or_default();
    if no_ipam && !ips.is_empty() {
        return Err(format!(
            "network {name}: static_ips with IPAM driver \"none\""
        ));
    }
    for ip in &ips {
        if !subnets.iter().any(|(s, _)| s.contains(ip)) {
            return Err(format!(
                "network {name}: static ip {ip} is in none of its subnets"
            ));
        }
    }
    let mut routes = Vec::new();
    for r in net.routes.iter().flatten() {
        if r.destination.addr().is_ipv4() != r.gateway.is_ipv4() {
            return Err(format!(
                "network {name}: route to {} via {}: the gateway is of another address family",
                r.destination, r.gateway
            ));
        }
        routes.push((r.destination, r.gateway, r.metric));
    }
    let mac = match &per.static_mac {
        Some(m) if !m.is_empty() => Some(
            m.parse::<MacAddr>()
                .map_err(|e| format!("network {name}: static_mac {m:?}: {e}"))?,
        ),
        _ => None,
    };
    if per.interface_name.is_empty() {
        return Err(format!("network {name}: interface_name is empty"));
    }
    Ok(Join {
        cfg,
        ifname: per.interface_name.clone(),
        ips,
        mac,
        aliases: per.aliases.clone().unwrap_or_default(),
        subnets,
        internal: net.internal,
        dns: net.dns_enabled,
        dns_servers: net.network_dns_servers.clone().unwrap_or_default(),
        metric,
        default_route,
        routes,
    })
}

/// netplumb's port mappings of one of the contract's (one per protocol).
fn mappings(p: &crate::types::PortMapping) -> Res<Vec<PortMapping>> {
    let n = p.range.max(1);
    let last = |first: u16, what: &str| {
        first
            .checked_add(n - 1)
            .ok_or_else(|| format!("port mapping: {what} {first} + range {n} is above 65535"))
    };
    let (hl, cl) = (
        last(p.host_port, "host_port")?,
        last(p.container_port, "container_port")?,
    );
    let host = match p.host_ip.as_str() {
        "" => String::new(),
        ip => match ip.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]:"),
            Ok(v4) => format!("{v4}:"),
            Err(_) => return Err(format!("port mapping: host_ip {ip:?} is not an address")),
        },
    };
    let range = |a: u16, b: u16| {
        if a == b {
            a.to_string()
        } else {
            format!("{a}-{b}")
        }
    };
    let protos = if p.protocol.is_empty() {
        "tcp"
    } else {
        &p.protocol
    };
    protos
        .split(',')
        .map(|proto| {
            let spec = format!(
                "{host}{}:{}/{}",
                range(p.host_port, hl),
                range(p.container_port, cl),
                proto.trim()
            );
            PortMapping::parse(&spec).map_err(|e| format!("port mapping: {e}"))
        })
        .collect()
}

/// The status of one network: the interface, its MAC and its addresses with gateways;
/// with DNS, the gateways as name servers and Podman's search domain.
fn status(j: &Join, att: &Attachment, dns: bool) -> StatusBlock {
    let subnets = att
        .addrs
        .iter()
        .map(|a| NetAddress {
            gateway: if j.internal {
                None
            } else {
                j.subnets
                    .iter()
                    .find(|(s, _)| s.contains(&a.addr()))
                    .and_then(|(_, g)| *g)
            },
            ipnet: *a,
        })
        .collect();
    let mut interfaces = BTreeMap::new();
    interfaces.insert(
        att.ifname.clone(),
        NetInterface {
            mac_address: att.mac.map(|m| m.to_string()).unwrap_or_default(),
            subnets,
        },
    );
    let (domains, servers) = if dns {
        let gws = j.subnets.iter().filter_map(|(_, g)| *g).collect();
        (vec![dns::SEARCH_DOMAIN.to_owned()], gws)
    } else {
        (Vec::new(), Vec::new())
    };
    StatusBlock {
        dns_search_domains: domains,
        dns_server_ips: servers,
        interfaces,
    }
}

/// netavark's own text for the failures its users (and its test suite) match on: a
/// sysctl that cannot be written, an IPv6 address the kernel refuses on the bridge.
pub fn netavark_text(e: &netplumb::Error) -> Option<String> {
    use netplumb::error::{Errno, Op};
    use netplumb::Error;
    match e {
        Error::RolledBack { original, .. } => netavark_text(original),
        Error::Batch { source, .. } => netavark_text(source),
        Error::Io { path, source } if path.starts_with("/proc/sys") => {
            Some(format!("Sysctl error: IO Error: {source}"))
        }
        Error::Kernel {
            op: Op::AddAddr,
            target,
            errno: Errno::EACCES,
            ..
        } if target.contains(':') => Some(format!(
            "add ip addr to bridge: failed to add ipv6 address, is ipv6 enabled in the kernel?: Netlink error: {}",
            std::io::Error::from_raw_os_error(Errno::EACCES.raw())
        )),
        _ => None,
    }
}
