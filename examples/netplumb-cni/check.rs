//! `CHECK`: the container's interface, addresses and routes against `prevResult`, and
//! the host side (the veth on the bridge, the network's rules, the published ports)
//! against netplumb's record. A drift is an error that names it.

use netplumb::firewall::Firewall;
use netplumb::{IpNet, Netns, Rtnl};
use serde_json::Value;

use crate::conf::Conf;
use crate::error::{CniError, Res, FAILED};
use crate::{host, lib_id, Env};

fn drift(msg: String) -> CniError {
    CniError::new(FAILED, msg, "")
}

/// Compares what `ADD` made with what the kernel and the firewall hold now.
pub fn check(env: &Env, conf: &Conf) -> Res {
    let (id, ifname) = env.attachment()?;
    let path = env.need(&env.netns, "CNI_NETNS")?;
    let prev = conf
        .prev
        .as_ref()
        .ok_or_else(|| CniError::new(7, "missing field prevResult", "CHECK needs ADD's result"))?;
    let mut host = host(conf)?;
    let name = conf.network.name();
    let key = lib_id(id, ifname);
    let att = host
        .attachments(Some(name))
        .map_err(|e| CniError::lib(&format!("network {name}"), &e))?
        .into_iter()
        .find(|a| a.container == key)
        .ok_or_else(|| {
            drift(format!(
                "{id} ({ifname}) is not connected to network {name}"
            ))
        })?;

    // The container's side, as the previous result lists it.
    let ns = Netns::open(path)
        .map_err(|e| CniError::new(3, format!("CNI_NETNS {path}"), e.to_string()))?;
    let mut inside =
        Rtnl::open_in(&ns).map_err(|e| CniError::lib("the container's namespace", &e))?;
    let ifaces = prev
        .get("interfaces")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let index = ifaces
        .iter()
        .position(|i| i["name"] == ifname && i.get("sandbox").is_some_and(|s| !s.is_null()))
        .ok_or_else(|| {
            CniError::new(
                7,
                format!("prevResult lists no interface {ifname} in a sandbox"),
                "",
            )
        })?;
    let link = inside
        .link(ifname)
        .map_err(|e| drift(format!("interface {ifname} in {path}: {e}")))?;
    let want_mac = ifaces[index]["mac"].as_str().unwrap_or_default();
    let has_mac = link.mac.map(|m| m.to_string()).unwrap_or_default();
    if !want_mac.is_empty() && !want_mac.eq_ignore_ascii_case(&has_mac) {
        return Err(drift(format!(
            "interface {ifname} has MAC {has_mac}, not {want_mac}"
        )));
    }
    if !link.is_up() {
        return Err(drift(format!("interface {ifname} is down")));
    }
    let addrs = inside
        .addrs(Some((&link).into()))
        .map_err(|e| CniError::lib("listing addresses", &e))?;
    for ip in prev
        .get("ips")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if ip.get("interface").and_then(Value::as_u64) != Some(index as u64) {
            continue;
        }
        let want: IpNet = ip["address"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                CniError::new(7, format!("prevResult: bad address {}", ip["address"]), "")
            })?;
        if !addrs.iter().any(|a| a.addr == want) {
            return Err(drift(format!("address {want} is missing from {ifname}")));
        }
    }
    let routes = inside
        .routes()
        .map_err(|e| CniError::lib("listing routes", &e))?;
    for r in prev
        .get("routes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let dst: IpNet = r["dst"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| CniError::new(7, format!("prevResult: bad route {r}"), ""))?;
        let gw = r
            .get("gw")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        let found = routes
            .iter()
            .any(|x| x.dst == dst && (gw.is_none() || x.via == gw));
        if !found {
            return Err(drift(format!("route to {dst} is missing from {path}")));
        }
    }

    // The host's side: the veth on the bridge, the network's rules, the ports.
    let net = host
        .network(name)
        .map_err(|e| CniError::lib(&format!("network {name}"), &e))?;
    let bridge = host
        .rtnl()
        .link(net.bridge.as_str())
        .map_err(|_| drift(format!("bridge {} of network {name} is gone", net.bridge)))?;
    let veth = host
        .rtnl()
        .link(att.host_veth.as_str())
        .map_err(|_| drift(format!("host veth {} is gone", att.host_veth)))?;
    if veth.controller != Some(bridge.index) {
        return Err(drift(format!(
            "host veth {} is not a port of {}",
            att.host_veth, net.bridge
        )));
    }
    let fw = host
        .firewall()
        .state()
        .map_err(|e| CniError::lib("reading the firewall", &e))?;
    let ruled = conf.backend != netplumb::firewall::Backend::Disabled && !net.subnets.is_empty();
    if ruled && !fw.networks.iter().any(|n| n == name) {
        return Err(drift(format!(
            "the firewall rules of network {name} are gone"
        )));
    }
    for p in &att.ports {
        let held = fw.ports.iter().any(|r| {
            r.proto == p.proto && r.host_port == p.host_port && r.container_port == p.container_port
        });
        if ruled && !held {
            return Err(drift(format!(
                "the rule of published port {}:{}/{} is gone",
                p.host_ip, p.host_port, p.proto
            )));
        }
    }
    Ok(())
}
