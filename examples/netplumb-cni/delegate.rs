//! A delegated IPAM (any `ipam.type` but `host-local`), run as the specification's
//! delegation protocol says: the plugin found in `CNI_PATH`, this process's environment,
//! the whole configuration on stdin. Its `ADD` result gives the addresses, gateways,
//! routes and DNS; the network's subnets follow from the addresses. Every other command
//! is passed on to it after ours.

use std::io::Write;
use std::net::IpAddr;
use std::process::{Command, Stdio};

use netplumb::IpNet;
use serde_json::Value;

use crate::conf::{self, Conf, Subnet};
use crate::error::{CniError, Res, FAILED};
use crate::Env;

/// Runs the delegated plugin with `command`; its result (if it printed one), or its
/// error passed on.
fn exec(kind: &str, command: &str, input: &str) -> Res<Option<Value>> {
    let path = std::env::var("CNI_PATH").unwrap_or_default();
    let bin = std::env::split_paths(&path)
        .map(|d| d.join(kind))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            CniError::new(
                4,
                format!("IPAM plugin {kind} not found in CNI_PATH {path:?}"),
                "",
            )
        })?;
    let mut child = Command::new(&bin)
        .env("CNI_COMMAND", command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| {
            CniError::new(
                5,
                format!("running IPAM plugin {}", bin.display()),
                e.to_string(),
            )
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A plugin that exits without reading is judged by its exit status.
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| CniError::new(5, format!("IPAM plugin {kind}"), e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let v: Option<Value> = serde_json::from_str(text.trim()).ok();
    if out.status.success() {
        return Ok(v);
    }
    let code = v
        .as_ref()
        .and_then(|e| e["code"].as_u64())
        .unwrap_or(FAILED as u64);
    let msg = v
        .as_ref()
        .and_then(|e| e["msg"].as_str())
        .unwrap_or("failed");
    let details = v.as_ref().and_then(|e| e["details"].as_str()).unwrap_or("");
    Err(CniError::new(
        code as u32,
        format!("IPAM plugin {kind}: {msg}"),
        details,
    ))
}

/// `command` passed on to the delegated IPAM, if there is one.
pub fn pass(conf: &Conf, command: &str, input: &str) -> Res<Option<Value>> {
    match &conf.delegate {
        Some(kind) => exec(kind, command, input).map(|_| None),
        None => Ok(None),
    }
}

/// `ADD`: with a delegated IPAM, its addresses first (released again when the rest
/// fails).
pub fn add(env: &Env, conf: &Conf, input: &str) -> Res<Value> {
    let Some(kind) = &conf.delegate else {
        return crate::add(env, conf);
    };
    let r = exec(kind, "ADD", input)?.ok_or_else(|| {
        CniError::new(FAILED, format!("IPAM plugin {kind} printed no result"), "")
    })?;
    let done = apply(conf, &r).and_then(|c| crate::add(env, &c));
    if done.is_err() {
        let _ = exec(kind, "DEL", input);
    }
    done
}

/// `conf` with the delegated IPAM's result: its addresses (one per family), their
/// subnets and gateways, its routes, its DNS unless the configuration has one.
fn apply(conf: &Conf, r: &Value) -> Res<Conf> {
    let bad = |what: String| CniError::new(FAILED, format!("IPAM result: {what}"), r.to_string());
    let mut c = conf.clone();
    let mut subnets: Vec<Subnet> = Vec::new();
    c.ips.clear();
    for ip in r["ips"].as_array().into_iter().flatten() {
        let a: IpNet = ip["address"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("address {}", ip["address"])))?;
        let gw: Option<IpAddr> = ip["gateway"].as_str().and_then(|s| s.parse().ok());
        let net = a.trunc();
        if subnets
            .iter()
            .any(|(s, _)| s.addr().is_ipv4() == net.addr().is_ipv4())
        {
            return Err(bad(format!("two addresses of one family ({a})")));
        }
        subnets.push((net, gw.unwrap_or_else(|| conf::first_host(net))));
        c.ips.push(a.addr());
    }
    if subnets.is_empty() {
        return Err(bad("no address".into()));
    }
    c.routes.clear();
    for rt in r["routes"].as_array().into_iter().flatten() {
        let dst: IpNet = rt["dst"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("route {rt}")))?;
        let gw: Option<IpAddr> = rt["gw"].as_str().and_then(|s| s.parse().ok());
        c.routes.push((dst.trunc(), gw));
    }
    if c.dns.is_none() {
        c.dns = r.get("dns").cloned();
    }
    c.network = conf::with_subnets(c.network.clone(), &subnets);
    c.network
        .validate()
        .map_err(|e| CniError::new(7, "the network from the IPAM's addresses", e.to_string()))?;
    c.subnets = subnets;
    Ok(c)
}
