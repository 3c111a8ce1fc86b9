//! Container commands: `run`, `rm`, `inspect`, `port`, `exec`, `gc`.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use netplumb::network::files::{parse_add_host, DnsConfig};
use netplumb::network::inspect::{to_json_pretty, ContainerNetworks};
use netplumb::network::{Attachment, Container, Host, NetworkConfig, NetworkMode, DEFAULT_NETWORK};
use netplumb::ports::{port_lines, port_lines_for, PortMapping, Proto, PublishedPort};
use netplumb::{Netns, NetnsDir};
use serde::Serialize;

use crate::records::{check_name, container_id, Record};
use crate::{Ctx, Res, RunArgs};

/// A container as the commands find it: by its record, or by name alone (a named namespace
/// connected with `network connect`, whose id derives from the name too).
pub struct Target {
    /// The container id.
    pub id: String,
    /// The name.
    pub name: String,
    /// The record `run` wrote, if any.
    pub record: Option<Record>,
}

/// Finds `name`: a record's name, a record's id (12 hex digits or more), else a bare name.
pub fn find(ctx: &Ctx, name: &str) -> Res<Target> {
    if let Some(r) = Record::load(&ctx.state_dir, name)? {
        return Ok(Target {
            id: r.id.clone(),
            name: name.to_owned(),
            record: Some(r),
        });
    }
    if name.len() >= 12 {
        let mut by_id: Vec<Record> = Record::list(&ctx.state_dir)?
            .into_iter()
            .filter(|r| r.id.starts_with(name))
            .collect();
        if by_id.len() == 1 {
            let r = by_id.remove(0);
            return Ok(Target {
                id: r.id.clone(),
                name: r.name.clone(),
                record: Some(r),
            });
        }
    }
    Ok(Target {
        id: container_id(name),
        name: name.to_owned(),
        record: None,
    })
}

fn no_such(name: &str) -> Box<dyn std::error::Error + Send + Sync> {
    format!("No such container: {name}").into()
}

/// The namespace of container `name`: its record's, the host's for `--network host`, else
/// the named namespace `name`.
pub fn netns_of(ctx: &Ctx, name: &str) -> Res<Netns> {
    match find(ctx, name)?.record {
        Some(r) if r.netns.as_os_str().is_empty() => Ok(Netns::current()?),
        Some(r) => Ok(Netns::open(&r.netns)?),
        None => ctx.netns.open(name).map_err(|e| {
            if e.is_not_found() {
                no_such(name)
            } else {
                e.into()
            }
        }),
    }
}

/// `PORT[/PROTO]`, TCP by default.
pub fn parse_port(s: &str) -> Res<(Proto, u16)> {
    let (port, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("invalid port {s:?}"))?;
    Ok((proto.parse()?, port))
}

/// `netplumb run`: the record, the namespace, the connection; undone on failure. Prints the id.
pub fn run(ctx: &Ctx, a: &RunArgs) -> Res {
    check_name(&a.name)?;
    let id = container_id(&a.name);
    if Record::load(&ctx.state_dir, &a.name)?.is_some() {
        return Err(format!(
            "Conflict. The container name \"/{}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.",
            a.name
        )
        .into());
    }
    let mode: NetworkMode = a.network.parse()?;
    let _parsed = container(ctx, a, &id, &Netns::current()?)?; // every option checked before anything is made
    if !matches!(mode, NetworkMode::Bridge(_)) && (!a.publish.is_empty() || a.publish_all) {
        return Err(
            "conflicting options: port publishing and the container type network mode".into(),
        );
    }
    let mut host = ctx.host()?;
    if let NetworkMode::Bridge(net) = &mode {
        if overlay_named(ctx, &host, net)?.is_none() {
            ensure_network(&mut host, net)?;
        }
    }
    let owns = matches!(mode, NetworkMode::Bridge(_) | NetworkMode::None);
    let mut rec = Record {
        id,
        name: a.name.clone(),
        mode: mode.to_string(),
        netns: if owns {
            ctx.netns.path(&a.name)
        } else {
            PathBuf::new()
        },
        owns_netns: owns,
        hostname: a.hostname.clone(),
        add_hosts: a.add_host.clone(),
        dns: a.dns.clone(),
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
    };
    // The record first, so that `rm` can clean up after a crash half-way.
    rec.save(&ctx.state_dir)?;
    match start(ctx, &mut host, &mode, a, &mut rec) {
        Ok(()) => {
            println!("{}", rec.id);
            Ok(())
        }
        Err(e) => {
            let _ = Record::remove(&ctx.state_dir, &a.name);
            Err(e)
        }
    }
}

fn start(ctx: &Ctx, host: &mut Host, mode: &NetworkMode, a: &RunArgs, rec: &mut Record) -> Res {
    let ns = host.container_netns(mode, &a.name, Some(&ctx.netns))?;
    if let NetworkMode::Container(_) = mode {
        rec.netns = ns.path().to_path_buf();
        rec.save(&ctx.state_dir)?;
    }
    let ctr = container(ctx, a, &rec.id, &ns)?;
    let NetworkMode::Bridge(net) = mode else {
        // host, none and container:NAME get their files without a network.
        if !matches!(mode, NetworkMode::Container(_)) {
            host.write_files(&ctr)?;
        }
        return Ok(());
    };
    #[cfg(feature = "etcd")]
    if let Some((cluster, ov)) = overlay_named(ctx, host, net)? {
        // An overlay network: its driver connects (the way out and the published ports
        // through the gateway bridge); the container's files as for a bridge network.
        if let Err(e) = cluster.connect(ctx, &ov, &ctr) {
            let _ = ctx.netns.delete(&a.name);
            return Err(e);
        }
        host.write_files(&ctr)?;
        return Ok(());
    }
    if let Err(e) = host.connect(net, &ctr) {
        let _ = ctx.netns.delete(&a.name);
        return Err(crate::network::docker_text(e, &a.name, net));
    }
    Ok(())
}

/// The overlay network `net` names, when it names no bridge network of this host and
/// the store (`--store`) has an overlay network of that name.
#[cfg(feature = "etcd")]
fn overlay_named(
    ctx: &Ctx,
    host: &Host,
    net: &str,
) -> Res<Option<(crate::overlay::Cluster, netplumb::overlay::OverlayNetwork)>> {
    if ctx.store.is_none() || host.network(net).is_ok() {
        return Ok(None);
    }
    let cluster = crate::overlay::Cluster::open(ctx)?;
    Ok(cluster.get(net)?.map(|ov| (cluster, ov)))
}

/// Without the `etcd` feature there are no overlay networks.
#[cfg(not(feature = "etcd"))]
fn overlay_named(_: &Ctx, _: &Host, _: &str) -> Res<Option<()>> {
    Ok(None)
}

/// The default network comes into being on first use, as Docker's daemon makes it at start.
fn ensure_network(host: &mut Host, net: &str) -> Res {
    match host.network(net) {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() && net == DEFAULT_NETWORK => {
            host.create_network(&NetworkConfig::new(DEFAULT_NETWORK))?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The library's container from `run`'s options.
fn container(ctx: &Ctx, a: &RunArgs, id: &str, ns: &Netns) -> Res<Container> {
    let mut c = Container::new(id, ns).name(&a.name);
    if let Some(h) = &a.hostname {
        c = c.hostname(h);
    }
    if let Some(ip) = a.ip {
        c = c.ip(ip);
    }
    for p in &a.publish {
        c = c.publish(PortMapping::parse(p)?);
    }
    for e in &a.expose {
        let (proto, port) = parse_port(e)?;
        c = c.expose(proto, port);
    }
    if a.publish_all {
        c = c.publish_all();
    }
    for l in &a.link {
        let (other, alias) = l.split_once(':').unwrap_or((l.as_str(), l.as_str()));
        check_name(other)?;
        c = c.link_as(other, alias);
    }
    for alias in &a.network_alias {
        c = c.alias(alias);
    }
    with_files(
        ctx,
        c,
        &a.name,
        &a.add_host,
        [&a.dns, &a.dns_search, &a.dns_option],
    )
}

/// `c` with its files (`hostname`, `hosts`, `resolv.conf`) in the container's folder:
/// `--add-host` entries and `[--dns, --dns-search, --dns-option]`.
pub fn with_files(
    ctx: &Ctx,
    mut c: Container,
    name: &str,
    add_hosts: &[String],
    dns: [&[String]; 3],
) -> Res<Container> {
    c = c.files(Record::dir(&ctx.state_dir, name));
    for h in add_hosts {
        c = c.add_host(parse_add_host(h)?);
    }
    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    Ok(c.dns(DnsConfig::from_flags(
        &strs(dns[0]),
        &strs(dns[1]),
        &strs(dns[2]),
    )?))
}

/// `netplumb rm NAME`: disconnects from every network, deletes the namespace it owns and its
/// record. Nothing there is not an error.
pub fn rm(ctx: &Ctx, name: &str) -> Res {
    let t = find(ctx, name)?;
    let mut host = ctx.host()?;
    // The namespace is deleted next and takes the veths along: no waiting for the kernel
    // to delete each one.
    let owned = t
        .record
        .as_ref()
        .is_some_and(|r| r.owns_netns && r.netns.exists());
    host.leave_link_deletion(owned);
    // Overlay networks first: their driver also takes the container off the gateway
    // bridge, and releases its address in the store.
    #[cfg(feature = "etcd")]
    if ctx.store.is_some() {
        crate::overlay::Cluster::open(ctx)?.disconnect_all(ctx, &t.id)?;
    }
    let mut removed = false;
    for a in host.attachments(None)? {
        if a.container == t.id {
            host.disconnect(&a.network, &t.id)?;
            removed = true;
        }
    }
    if removed {
        crate::release::hand_off_firewall(&mut host);
    }
    if let Some(r) = t
        .record
        .as_ref()
        .filter(|r| r.owns_netns && r.netns.exists())
    {
        let (dir, file) = (
            r.netns.parent().unwrap_or(Path::new("/")),
            r.netns.file_name().and_then(|f| f.to_str()),
        );
        if let Some(file) = file {
            NetnsDir::new(dir).delete(file)?;
        }
    }
    Record::remove(&ctx.state_dir, &t.name)?;
    Ok(())
}

fn attachments_of(host: &Host, id: &str) -> Res<Vec<Attachment>> {
    Ok(host
        .attachments(None)?
        .into_iter()
        .filter(|a| a.container == id)
        .collect())
}

/// `netplumb port NAME [PORT[/PROTO]]`, Docker's lines.
pub fn port(ctx: &Ctx, name: &str, spec: Option<&str>) -> Res {
    let t = find(ctx, name)?;
    let atts = attachments_of(&ctx.host()?, &t.id)?;
    if t.record.is_none() && atts.is_empty() {
        return Err(no_such(name));
    }
    let ports: Vec<PublishedPort> = atts.iter().flat_map(|a| a.ports.iter().copied()).collect();
    let lines = match spec {
        None => port_lines(&ports),
        Some(s) => {
            let (proto, port) = parse_port(s)?;
            let lines = port_lines_for(&ports, port, proto);
            if lines.is_empty() {
                return Err(format!("No public port '{port}/{proto}' published for {name}").into());
            }
            lines
        }
    };
    lines.iter().for_each(|l| println!("{l}"));
    Ok(())
}

/// Runs `argv` in `ns` and returns its exit status (126 when it cannot start, 127 when it
/// is not found, 128+N when killed by signal N, as a shell).
pub fn exec(ns: &Netns, argv: &[String]) -> Res<ExitCode> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let mut child = match ns.spawn(&mut cmd) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("Error: exec {}: {e}", argv[0]);
            return Ok(ExitCode::from(if e.is_not_found() { 127 } else { 126 }));
        }
    };
    let st = child.wait()?;
    let code = st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0));
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// `docker inspect C`, the parts netplumb knows.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerInspect {
    id: String,
    resolv_conf_path: String,
    hostname_path: String,
    hosts_path: String,
    name: String,
    host_config: HostConfig,
    config: Config,
    network_settings: ContainerNetworks,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HostConfig {
    network_mode: String,
    dns: Vec<String>,
    dns_options: Vec<String>,
    dns_search: Vec<String>,
    extra_hosts: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Config {
    hostname: String,
}

fn inspect_one(ctx: &Ctx, host: &Host, name: &str) -> Res<Option<ContainerInspect>> {
    let t = find(ctx, name)?;
    let atts = attachments_of(host, &t.id)?;
    if t.record.is_none() && atts.is_empty() {
        return Ok(None);
    }
    let rec = t.record.unwrap_or_default();
    let dir = Record::dir(&ctx.state_dir, &t.name);
    let file = |f: &str| {
        Some(dir.join(f))
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let hostname = rec
        .hostname
        .clone()
        .or_else(|| atts.first().map(|a| a.hostname.clone()))
        .filter(|h| !h.is_empty());
    let mode = if rec.mode.is_empty() {
        atts.first().map(|a| a.network.clone()).unwrap_or_default()
    } else {
        rec.mode
    };
    Ok(Some(ContainerInspect {
        resolv_conf_path: file("resolv.conf"),
        hostname_path: file("hostname"),
        hosts_path: file("hosts"),
        name: format!("/{}", t.name),
        host_config: HostConfig {
            network_mode: mode,
            dns: rec.dns,
            dns_options: rec.dns_options,
            dns_search: rec.dns_search,
            extra_hosts: Some(rec.add_hosts).filter(|h| !h.is_empty()),
        },
        config: Config {
            hostname: hostname.unwrap_or_else(|| t.id[..12].to_owned()),
        },
        network_settings: host.inspect_container(&t.id)?,
        id: t.id,
    }))
}

/// `netplumb inspect NAME...`: a JSON list; unknown names are errors after the list.
pub fn inspect(ctx: &Ctx, names: &[String]) -> Res<ExitCode> {
    let host = ctx.host()?;
    let (mut found, mut missing) = (Vec::new(), Vec::new());
    for n in names {
        match inspect_one(ctx, &host, n)? {
            Some(c) => found.push(c),
            None => missing.push(n),
        }
    }
    println!("{}", to_json_pretty(&found));
    for n in &missing {
        eprintln!("Error: No such object: {n}");
    }
    Ok(if missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `netplumb gc`: attachments whose namespace is gone are disconnected (with their veths,
/// rules and leases), stray veths on our bridges deleted, and records of containers whose
/// namespace is gone forgotten.
/// `netplumb repair`: the firewall objects of every recorded network and published
/// port, put back where missing (`Host::reconcile`); prints what was restored.
pub fn repair(ctx: &Ctx) -> Res {
    let report = ctx.host()?.reconcile()?;
    if !report.firewall.is_empty() {
        println!("{}", report.firewall);
    }
    for n in &report.skipped {
        println!("skipped network {n}: its rules are in another firewall backend");
    }
    Ok(())
}

pub fn gc(ctx: &Ctx) -> Res {
    let mut host = ctx.host()?;
    let live: Vec<String> = host
        .attachments(None)?
        .into_iter()
        .filter(|a| a.netns.as_os_str().is_empty() || Netns::open(&a.netns).is_ok())
        .map(|a| a.container)
        .collect();
    let report = host.gc(&live.iter().map(String::as_str).collect::<Vec<_>>())?;
    report
        .disconnected
        .iter()
        .for_each(|x| println!("disconnected {x}"));
    report
        .stray_links
        .iter()
        .for_each(|x| println!("deleted link {x}"));
    report.leases.iter().for_each(|x| println!("released {x}"));
    // This host's containers on overlay networks whose namespace is gone.
    #[cfg(feature = "etcd")]
    if ctx.store.is_some() && ctx.advertise_addr.is_some() {
        drop(host);
        let cluster = crate::overlay::Cluster::open(ctx)?;
        let nets = cluster.list()?;
        if !nets.is_empty() {
            let mut ov = cluster.driver(ctx)?;
            for net in &nets {
                for id in ov.gc(net)? {
                    println!("disconnected {}/{id}", net.name());
                }
            }
        }
    }
    for r in Record::list(&ctx.state_dir)? {
        if r.owns_netns && Netns::open(&r.netns).is_err() {
            // A `run` killed while it made the namespace leaves its file half made.
            if let (Some(dir), Some(file)) = (r.netns.parent(), r.netns.file_name()) {
                if let Err(e) = NetnsDir::new(dir).delete(&file.to_string_lossy()) {
                    if !e.is_not_found() {
                        eprintln!("namespace of {}: {e}", r.name);
                    }
                }
            }
            Record::remove(&ctx.state_dir, &r.name)?;
            println!("forgot container {}", r.name);
        }
    }
    for name in ctx.netns.gc()? {
        println!("removed half-made namespace {name}");
    }
    Ok(())
}
