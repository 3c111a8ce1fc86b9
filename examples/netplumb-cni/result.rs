//! The specification's result of `ADD`: the bridge, the host's veth and the container's
//! interface; its addresses with their gateways; its routes; the configured DNS. Laid
//! out as the reference `bridge` + `host-local` chain lays it out, and appended to a
//! `prevResult` when the plugin is not the first of its chain.

use netplumb::network::{Attachment, Host};
use serde_json::{json, Value};

use crate::conf::Conf;
use crate::error::{CniError, Res};

/// Whether `version` writes `"version": "4"` in each address (before 1.0.0).
fn old(version: &str) -> bool {
    version.starts_with("0.")
}

/// The result of connecting `att`, in `conf`'s version.
pub fn of(host: &mut Host, conf: &Conf, att: &Attachment, netns: &str) -> Res<Value> {
    let name = conf.network.name();
    let net = host
        .network(name)
        .map_err(|e| CniError::lib(&format!("network {name}"), &e))?;
    let mut mac_of = |link: &str| -> String {
        host.rtnl()
            .link(link)
            .ok()
            .and_then(|l| l.mac)
            .map(|m| m.to_string())
            .unwrap_or_default()
    };
    let (bridge_mac, veth_mac) = (mac_of(&net.bridge), mac_of(&att.host_veth));
    let prev = conf.prev.clone().unwrap_or(Value::Null);
    let list = |k: &str| {
        prev.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut interfaces = list("interfaces");
    let mut ips = list("ips");
    let mut routes = list("routes");
    let base = interfaces.len();
    interfaces.push(json!({ "name": net.bridge, "mac": bridge_mac }));
    interfaces.push(json!({ "name": att.host_veth, "mac": veth_mac }));
    interfaces.push(json!({
        "name": att.ifname,
        "mac": att.mac.map(|m| m.to_string()).unwrap_or_default(),
        "sandbox": netns,
    }));
    for a in &att.addrs {
        let gw = conf
            .subnets
            .iter()
            .find(|(s, _)| s.contains(&a.addr()))
            .map(|(_, g)| g.to_string());
        let mut ip = json!({ "address": a.to_string(), "interface": base + 2 });
        if let Some(g) = gw {
            ip["gateway"] = json!(g);
        }
        if old(&conf.version) {
            ip["version"] = json!(if a.addr().is_ipv4() { "4" } else { "6" });
        }
        ips.push(ip);
    }
    for (dst, gw) in &conf.routes {
        let mut r = json!({ "dst": dst.to_string() });
        if let Some(g) = gw {
            r["gw"] = json!(g.to_string());
        }
        routes.push(r);
    }
    if conf.default_gateway {
        // As the reference plugin: the IPAM's default route gets the gateway, or one is
        // added.
        for (s, g) in &conf.subnets {
            let dst = if s.addr().is_ipv4() {
                "0.0.0.0/0"
            } else {
                "::/0"
            };
            match routes
                .iter_mut()
                .find(|r| r["dst"] == dst && r.get("gw").is_none())
            {
                Some(r) => r["gw"] = json!(g.to_string()),
                None => routes.push(json!({ "dst": dst, "gw": g.to_string() })),
            }
        }
    }
    let mut out = json!({
        "cniVersion": conf.version,
        "interfaces": interfaces,
        "ips": ips,
        "dns": conf.dns.clone().or_else(|| prev.get("dns").cloned()).unwrap_or(json!({})),
    });
    if !routes.is_empty() {
        out["routes"] = json!(routes);
    }
    Ok(out)
}
