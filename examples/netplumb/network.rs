//! `netplumb network create|ls|inspect|rm|connect|disconnect`.

use std::net::IpAddr;
use std::process::ExitCode;

use clap::{ArgAction, Args};
use netplumb::error::Object;
use netplumb::ipam::{parse_subnet, IpamError};
use netplumb::network::inspect::to_json_pretty;
use netplumb::network::{Container, NetworkConfig};
use netplumb::IpNet;

use crate::container::{find, netns_of, with_files};
use crate::{Ctx, Res};

/// `--subnet`, parsed so that the error says what is wrong ("host bits are set").
fn subnet_arg(s: &str) -> Result<IpNet, IpamError> {
    parse_subnet("subnet", s)
}

/// `--ip-range`, likewise.
fn ip_range_arg(s: &str) -> Result<IpNet, IpamError> {
    parse_subnet("ip-range", s)
}

/// `docker network create`'s options.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// The driver: `bridge` (this host: a Linux bridge with NAT; prints the network's id)
    /// or `overlay` (every host of the store: a VXLAN network defined in etcd, with
    /// --store and built with the `etcd` feature; prints its name).
    #[arg(short = 'd', long, default_value = "bridge")]
    driver: String,
    /// A subnet (one IPv4, and one IPv6 with --ipv6); default: the next free pool.
    #[arg(long, value_parser = subnet_arg)]
    subnet: Vec<IpNet>,
    /// The gateway of the subnet of its family (default: the first address).
    #[arg(long)]
    gateway: Vec<IpAddr>,
    /// The range container addresses come from.
    #[arg(long = "ip-range", value_parser = ip_range_arg)]
    ip_range: Option<IpNet>,
    /// The bridge's name (default: br- and 12 digits of the id; docker0 for `bridge`).
    #[arg(long)]
    bridge: Option<String>,
    /// The MTU of the bridge and the container links.
    #[arg(long)]
    mtu: Option<u32>,
    /// No outbound traffic, no published ports.
    #[arg(long)]
    internal: bool,
    /// Inter-container communication (--icc=false to forbid).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    icc: bool,
    /// Outbound masquerade (--masquerade=false to turn off).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    masquerade: bool,
    /// The host address of published ports that name none (default: every address of
    /// each family the network has; 0.0.0.0 keeps them IPv4-only).
    #[arg(long = "host-binding")]
    host_binding: Option<IpAddr>,
    /// IPv4 (--ipv4=false, with --ipv6, for an IPv6-only network).
    #[arg(long, default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set)]
    ipv4: bool,
    /// IPv6 (needs an IPv6 --subnet).
    #[arg(long)]
    ipv6: bool,
    /// A label KEY=VALUE.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// The network's name.
    name: String,
}

/// Prints the new network's id.
pub fn create(ctx: &Ctx, a: &CreateArgs) -> Res {
    if a.driver == "overlay" {
        return create_overlay(ctx, a);
    }
    if a.driver != "bridge" {
        return Err(format!(
            "plugin \"{}\" not found: only the bridge driver is built in",
            a.driver
        )
        .into());
    }
    // As Docker: a network needs one of the two families (the library also makes
    // networks without addresses, which Docker's command line does not offer).
    if !a.ipv4 && !a.ipv6 {
        return Err("--ipv4=false needs --ipv6: IPv4 or IPv6 must be enabled".into());
    }
    let mut cfg = NetworkConfig::new(&a.name)
        .internal(a.internal)
        .icc(a.icc)
        .masquerade(a.masquerade)
        .ipv4(a.ipv4)
        .ipv6(a.ipv6);
    for s in &a.subnet {
        cfg = cfg.subnet(*s);
    }
    for g in &a.gateway {
        cfg = cfg.gateway(*g);
    }
    if let Some(r) = a.ip_range {
        cfg = cfg.ip_range(r);
    }
    if let Some(b) = &a.bridge {
        cfg = cfg.bridge(b);
    }
    if let Some(m) = a.mtu {
        cfg = cfg.mtu(m);
    }
    if let Some(h) = a.host_binding {
        cfg = cfg.host_binding(h);
    }
    for l in &a.labels {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        cfg = cfg.label(k, v);
    }
    cfg.validate()?;
    let info = ctx.host()?.create_network(&cfg)?;
    println!("{}", info.id);
    Ok(())
}

#[cfg(feature = "etcd")]
fn create_overlay(ctx: &Ctx, a: &CreateArgs) -> Res {
    if a.subnet.len() > 1 || a.gateway.len() > 1 || a.ipv6 || !a.ipv4 {
        return Err("overlay networks take one IPv4 --subnet and --gateway".into());
    }
    let c = crate::overlay::Cluster::open(ctx)?;
    let net = c.create(
        &a.name,
        a.subnet.first().copied(),
        a.gateway.first().copied(),
        a.mtu,
    )?;
    println!("{}", net.name());
    eprintln!(
        "subnet {}, gateway {}, vni {}",
        net.subnet(),
        net.gateway_ip(),
        net.vxlan_id()
    );
    Ok(())
}

#[cfg(not(feature = "etcd"))]
fn create_overlay(_: &Ctx, _: &CreateArgs) -> Res {
    Err("the overlay driver needs a build with the `etcd` feature".into())
}

/// Rows padded as Docker's tables (`tabwriter`: cells at least 10 wide, 3 spaces apart).
fn table(rows: &[[String; 4]]) -> Vec<String> {
    let width = |c: usize| {
        rows.iter()
            .map(|r| r[c].chars().count() + 3)
            .max()
            .unwrap_or(0)
            .max(10)
    };
    let w = [width(0), width(1), width(2)];
    rows.iter()
        .map(|r| {
            format!(
                "{:<w0$}{:<w1$}{:<w2$}{}",
                r[0],
                r[1],
                r[2],
                r[3],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2]
            )
        })
        .collect()
}

/// `NETWORK ID     NAME      DRIVER    SCOPE`.
pub fn ls(ctx: &Ctx) -> Res {
    let mut rows = vec![["NETWORK ID", "NAME", "DRIVER", "SCOPE"].map(String::from)];
    for n in ctx.host()?.networks()? {
        rows.push([
            n.id.chars().take(12).collect(),
            n.name,
            "bridge".into(),
            "local".into(),
        ]);
    }
    #[cfg(feature = "etcd")]
    if ctx.store.is_some() {
        for n in crate::overlay::Cluster::open(ctx)?.list()? {
            rows.push([
                n.id().chars().take(12).collect(),
                n.name().to_owned(),
                "overlay".into(),
                "global".into(),
            ]);
        }
    }
    table(&rows).iter().for_each(|l| println!("{l}"));
    Ok(())
}

/// A JSON list of the networks found; unknown names are errors after it.
pub fn inspect(ctx: &Ctx, names: &[String]) -> Res<ExitCode> {
    let host = ctx.host()?;
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for n in names {
        match host.inspect_network(n) {
            Ok(i) => found.push(i),
            Err(e) if e.is_not_found() => missing.push(n),
            Err(e) => return Err(e.into()),
        }
    }
    #[cfg(feature = "etcd")]
    if ctx.store.is_some() && !missing.is_empty() {
        let c = crate::overlay::Cluster::open(ctx)?;
        let mut values: Vec<serde_json::Value> = found
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        let mut still = Vec::new();
        for n in missing {
            match c.get(n)? {
                Some(net) => values.push(c.inspect(&net)?),
                None => still.push(n),
            }
        }
        println!("{}", to_json_pretty(&values));
        for n in &still {
            eprintln!("Error: No such network: {n}");
        }
        return Ok(if still.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    println!("{}", to_json_pretty(&found));
    for n in &missing {
        eprintln!("Error: No such network: {n}");
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Removes each network (refused while containers are attached), printing its name.
pub fn rm(ctx: &Ctx, names: &[String]) -> Res<ExitCode> {
    let mut host = ctx.host()?;
    let mut code = ExitCode::SUCCESS;
    for n in names {
        #[cfg(feature = "etcd")]
        if ctx.store.is_some() && host.network(n).is_err() {
            let c = crate::overlay::Cluster::open(ctx)?;
            if c.get(n)?.is_some() {
                match c.remove(n) {
                    Ok(()) => println!("{n}"),
                    Err(e) => {
                        eprintln!("Error: {e}");
                        code = ExitCode::FAILURE;
                    }
                }
                continue;
            }
        }
        match host.network(n).and_then(|_| host.remove_network(n, false)) {
            Ok(()) => println!("{n}"),
            Err(e) => {
                eprintln!("Error: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

/// Connects a container made by `run`, or a named namespace, to a network.
pub fn connect(ctx: &Ctx, net: &str, name: &str, ip: Option<IpAddr>, aliases: &[String]) -> Res {
    let mut host = ctx.host()?;
    #[cfg(feature = "etcd")]
    if ctx.store.is_some() && host.network(net).is_err() {
        let c = crate::overlay::Cluster::open(ctx)?;
        if let Some(ov) = c.get(net)? {
            let t = find(ctx, name)?;
            let ns = netns_of(ctx, name)?;
            let mut ctr = Container::new(&t.id, &ns).name(&t.name);
            if let Some(ip) = ip {
                ctr = ctr.ip(ip);
            }
            drop(host);
            return c.connect(ctx, &ov, &ctr);
        }
    }
    host.network(net)?;
    let t = find(ctx, name)?;
    if let Some(r) = &t.record {
        if r.mode == "host" || r.mode.starts_with("container:") {
            return Err("container sharing network namespace with another container or host cannot be connected to any other network".into());
        }
    }
    if host
        .attachments(Some(net))?
        .iter()
        .any(|a| a.container == t.id)
    {
        return Err(format!(
            "endpoint with name {} already exists in network {net}",
            t.name
        )
        .into());
    }
    let ns = netns_of(ctx, name)?;
    let mut c = Container::new(&t.id, &ns).name(&t.name);
    if let Some(r) = &t.record {
        c = with_files(
            ctx,
            c,
            &t.name,
            &r.add_hosts,
            [&r.dns, &r.dns_search, &r.dns_options],
        )?;
        if let Some(h) = &r.hostname {
            c = c.hostname(h);
        }
    }
    if let Some(ip) = ip {
        c = c.ip(ip);
    }
    for a in aliases {
        c = c.alias(a);
    }
    host.connect(net, &c)
        .map_err(|e| docker_text(e, &t.name, net))?;
    Ok(())
}

/// A connect's error in Docker's words where Docker has words for it: a name another
/// container of the network has, or this container's own stale endpoint (its record and
/// namespace lost, not yet collected by `gc`), is "endpoint with name web already exists
/// in network n". Container ids here are made from names, so the two are one case.
pub fn docker_text(
    e: netplumb::Error,
    name: &str,
    net: &str,
) -> Box<dyn std::error::Error + Send + Sync> {
    match e {
        netplumb::Error::Exists {
            object: Object::Endpoint,
            ..
        }
        | netplumb::Error::Conflict { .. } => {
            format!("endpoint with name {name} already exists in network {net}").into()
        }
        e => e.into(),
    }
}

/// Disconnects a container from a network.
pub fn disconnect(ctx: &Ctx, net: &str, name: &str) -> Res {
    let mut host = ctx.host()?;
    #[cfg(feature = "etcd")]
    if ctx.store.is_some() && host.network(net).is_err() {
        let c = crate::overlay::Cluster::open(ctx)?;
        if let Some(ov) = c.get(net)? {
            let t = find(ctx, name)?;
            drop(host);
            return c.disconnect(ctx, &ov, &t.id);
        }
    }
    host.network(net)?;
    let t = find(ctx, name)?;
    if !host
        .attachments(Some(net))?
        .iter()
        .any(|a| a.container == t.id)
    {
        return Err(format!("container {name} is not connected to network {net}").into());
    }
    host.disconnect(net, &t.id)?;
    Ok(())
}
