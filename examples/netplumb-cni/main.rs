//! A CNI plugin on netplumb: a bridge network with host-local's address configuration,
//! published ports and masquerade, in one plugin that runtimes (containerd, CRI-O,
//! Kubernetes, Podman's CNI backend) run per operation instead of the reference
//! `bridge` + `host-local` + `portmap` chain.
//!
//! ```text
//! cargo build --release --example netplumb-cni
//! cp target/release/examples/netplumb-cni /opt/cni/bin/
//! # /etc/cni/net.d/10-mynet.conflist: a plugin of "type": "netplumb-cni"
//! ```
//!
//! Commands (`CNI_COMMAND`): `ADD`, `DEL`, `CHECK`, `GC`, `STATUS` and `VERSION` of CNI
//! 1.1.0; configurations of versions 0.3.0, 0.3.1, 0.4.0 and 1.0.0 get their own result
//! format. The configuration takes the reference `bridge` plugin's fields and
//! `host-local`'s `ipam`, plus a `netplumb` section:
//!
//! ```json
//! { "cniVersion": "1.1.0", "name": "mynet", "type": "netplumb-cni",
//!   "bridge": "cni0", "isGateway": true, "isDefaultGateway": true, "ipMasq": true,
//!   "ipam": { "type": "host-local",
//!             "ranges": [[{ "subnet": "10.22.0.0/16", "gateway": "10.22.0.1" }]] },
//!   "capabilities": { "portMappings": true, "ips": true, "mac": true },
//!   "netplumb": { "firewall": "nftables", "icc": true, "hostIP": "0.0.0.0",
//!                 "stateDir": "/var/lib/netplumb/cni", "runDir": "/run/netplumb/cni" } }
//! ```
//!
//! Addresses, published ports and attachment records live in netplumb's store under
//! `stateDir` and `runDir` (crash-safe, shared by concurrent plugin processes). An
//! attachment is the pair (`CNI_CONTAINERID`, `CNI_IFNAME`). Errors are the
//! specification's error result on stdout with exit status 1.

mod check;
mod conf;
mod delegate;
mod error;
mod result;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::process::ExitCode;

use netplumb::network::{Container, Host, HostOptions};
use netplumb::Netns;
use serde_json::{json, Value};

use crate::conf::Conf;
use crate::error::{CniError, Res};

fn main() -> ExitCode {
    env_logger::init();
    if let Ok(dirs) = std::env::var(REAP) {
        return reap(&dirs);
    }
    let mut input = String::new();
    let read = std::io::stdin().read_to_string(&mut input);
    let version = conf::version_of(&input).unwrap_or_else(|| "1.1.0".to_owned());
    let out = match read {
        Ok(_) => run(&input),
        Err(e) => Err(CniError::new(
            5,
            "reading the configuration from stdin",
            e.to_string(),
        )),
    };
    match out {
        Ok(Some(v)) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{}", e.to_json(&version));
            ExitCode::FAILURE
        }
    }
}

/// The plugin's environment (`CNI_*`).
pub(crate) struct Env {
    command: String,
    container: Option<String>,
    netns: Option<String>,
    ifname: Option<String>,
    args: BTreeMap<String, String>,
}

impl Env {
    fn read() -> Res<Env> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let command =
            var("CNI_COMMAND").ok_or_else(|| CniError::new(4, "CNI_COMMAND is not set", ""))?;
        Ok(Env {
            command,
            container: var("CNI_CONTAINERID"),
            netns: var("CNI_NETNS"),
            ifname: var("CNI_IFNAME"),
            args: cni_args(&var("CNI_ARGS").unwrap_or_default())?,
        })
    }

    fn need<'a>(&self, v: &'a Option<String>, name: &str) -> Res<&'a str> {
        v.as_deref()
            .ok_or_else(|| CniError::new(4, format!("{name} is required for {}", self.command), ""))
    }

    /// The container id and interface name, checked.
    fn attachment(&self) -> Res<(&str, &str)> {
        let id = self.need(&self.container, "CNI_CONTAINERID")?;
        let ok = id.starts_with(|c: char| c.is_ascii_alphanumeric())
            && id
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c));
        if !ok {
            return Err(CniError::new(
                4,
                format!("CNI_CONTAINERID {id:?} is not a valid container id"),
                "[A-Za-z0-9][A-Za-z0-9_.-]*",
            ));
        }
        let ifname = self.need(&self.ifname, "CNI_IFNAME")?;
        if ifname.is_empty()
            || ifname.len() > 15
            || !ifname
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
        {
            return Err(CniError::new(
                4,
                format!("CNI_IFNAME {ifname:?} is not an interface name this plugin can use"),
                "[A-Za-z0-9_.-]{1,15}",
            ));
        }
        Ok((id, ifname))
    }
}

/// `CNI_ARGS`: `K=V;K=V`. Unknown keys are an error unless `IgnoreUnknown` is true.
fn cni_args(s: &str) -> Res<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| CniError::new(4, format!("CNI_ARGS: {pair:?} is not KEY=VALUE"), ""))?;
        out.insert(k.to_owned(), v.to_owned());
    }
    let ignore = out
        .get("IgnoreUnknown")
        .is_some_and(|v| matches!(v.to_lowercase().as_str(), "1" | "true"));
    const KNOWN: [&str; 7] = [
        "IgnoreUnknown",
        "K8S_POD_NAMESPACE",
        "K8S_POD_NAME",
        "K8S_POD_INFRA_CONTAINER_ID",
        "K8S_POD_UID",
        "IP",
        "MAC",
    ];
    if !ignore {
        if let Some(k) = out.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(CniError::new(
                4,
                format!("CNI_ARGS: unknown key {k}"),
                "set IgnoreUnknown=1 to pass keys this plugin does not know",
            ));
        }
    }
    Ok(out)
}

/// netplumb's id of an attachment: the container and its interface.
pub fn lib_id(container: &str, ifname: &str) -> String {
    format!("{container}.{ifname}")
}

fn run(input: &str) -> Res<Option<Value>> {
    let env = Env::read()?;
    if env.command == "VERSION" {
        let version = conf::version_of(input).unwrap_or_else(|| "1.1.0".to_owned());
        return Ok(Some(
            json!({ "cniVersion": version, "supportedVersions": conf::SUPPORTED }),
        ));
    }
    let conf = conf::parse(input)?;
    let at_least = |min: &str| version_key(&conf.version) >= version_key(min);
    match env.command.as_str() {
        "ADD" => delegate::add(&env, &conf, input).map(Some),
        "DEL" => {
            del(&env, &conf)?;
            delegate::pass(&conf, "DEL", input)
        }
        "CHECK" if at_least("0.4.0") => {
            check::check(&env, &conf)?;
            delegate::pass(&conf, "CHECK", input)
        }
        "GC" | "STATUS" if at_least("1.1.0") => {
            if env.command == "GC" {
                gc(&conf)?;
            } else {
                host(&conf).map_err(|e| CniError::new(50, "netplumb cannot serve ADD", e.msg))?;
            }
            delegate::pass(&conf, &env.command, input)
        }
        "CHECK" | "GC" | "STATUS" => Err(CniError::new(
            1,
            format!(
                "{} needs a newer cniVersion than {}",
                env.command, conf.version
            ),
            "",
        )),
        other => Err(CniError::new(
            4,
            format!("unknown CNI_COMMAND {other:?}"),
            "",
        )),
    }
}

fn version_key(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// netplumb's host handle for the configuration's state folders and firewall.
fn host(conf: &Conf) -> Res<Host> {
    for dir in [&conf.state_dir, &conf.run_dir] {
        std::fs::create_dir_all(dir).map_err(|e| {
            CniError::new(5, format!("netplumb.stateDir/runDir {dir}"), e.to_string())
        })?;
    }
    let here = Netns::current().map_err(|e| CniError::lib("the plugin's namespace", &e))?;
    HostOptions::new(&conf.state_dir)
        .run_dir(&conf.run_dir)
        .backend(conf.backend)
        .open(&here)
        .map_err(|e| CniError::lib("opening netplumb's state", &e))
}

/// `ADD` with the addresses of netplumb's IPAM (or, with a delegated IPAM, those it gave,
/// already in `conf`).
pub(crate) fn add(env: &Env, conf: &Conf) -> Res<Value> {
    let (id, ifname) = env.attachment()?;
    let path = env.need(&env.netns, "CNI_NETNS")?;
    let ns = Netns::open(path).map_err(|e| {
        let code = if e.is_not_found() { 3 } else { 4 };
        CniError::new(code, format!("CNI_NETNS {path}"), e.to_string())
    })?;
    let mut c = Container::new(&lib_id(id, ifname), &ns).ifname(ifname);
    let mut ips = conf.ips.clone();
    if let Some(ip) = env.args.get("IP") {
        for one in ip.split(',') {
            ips.push(conf::ip_of(one, "CNI_ARGS IP")?);
        }
    }
    let (mut v4, mut v6) = (None, None);
    for ip in ips {
        let slot = if ip.is_ipv4() { &mut v4 } else { &mut v6 };
        if slot.replace(ip).is_some() {
            return Err(CniError::new(
                7,
                "invalid field runtimeConfig.ips",
                "one address per family",
            ));
        }
    }
    if let Some(ip) = v4 {
        c = c.ip(ip);
    }
    if let Some(ip) = v6 {
        c = c.ip6(ip);
    }
    let mac = match env.args.get("MAC") {
        Some(m) => Some(
            m.parse()
                .map_err(|e: netplumb::Error| CniError::new(4, "CNI_ARGS MAC", e.to_string()))?,
        ),
        None => conf.mac,
    };
    if let Some(m) = mac {
        c = c.mac(m);
    }
    c = c.default_route(conf.default_gateway);
    for (dst, gw) in &conf.routes {
        if dst.prefix_len() == 0 && gw.is_none() {
            // The default route through the subnet's gateway.
            c = c.default_route(true);
            continue;
        }
        let gw = gw
            .or_else(|| gateway_for(conf, dst.addr()))
            .expect("checked: a subnet of its family");
        c = c.route(*dst, gw);
    }
    for p in &conf.ports {
        c = c.publish(*p);
    }
    let mut host = host(conf)?;
    host.ensure_network(&conf.network)
        .map_err(|e| CniError::lib(&format!("network {}", conf.network.name()), &e))?;
    let att = host
        .ensure_connected(conf.network.name(), &c)
        .map_err(|e| CniError::lib(&format!("connecting {id} ({ifname})"), &e))?;
    result::of(&mut host, conf, &att, path)
}

/// The gateway of `conf`'s subnet of `addr`'s family.
fn gateway_for(conf: &Conf, addr: IpAddr) -> Option<IpAddr> {
    conf.subnets
        .iter()
        .find(|(s, _)| s.addr().is_ipv4() == addr.is_ipv4())
        .map(|(_, g)| *g)
}

pub(crate) fn del(env: &Env, conf: &Conf) -> Res {
    let (id, ifname) = env.attachment()?;
    let mut host = host(conf)?;
    let name = conf.network.name();
    match host.network(name) {
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(CniError::lib(&format!("network {name}"), &e)),
        Ok(_) => {}
    }
    // Everything but the kernel's deletion of the veth pair (an RCU grace period, tens
    // of milliseconds) is done before DEL returns: the records, address, ports and rules
    // go, the interface goes down and off the bridge. The pair is then deleted by a
    // detached process of ours, or with the namespace, which runtimes delete next, or by
    // the next ADD that needs the interface name, whichever comes first.
    let key = lib_id(id, ifname);
    let connected = host
        .attachments(Some(name))
        .map_err(|e| CniError::lib(&format!("network {name}"), &e))?
        .iter()
        .any(|a| a.container == key);
    if !connected {
        // Never added, deleted already, or an ADD killed halfway: what such an ADD made
        // (its veth, its published ports) goes.
        host.clear_interrupted(name, &key)
            .map_err(|e| CniError::lib(&format!("clearing {id} ({ifname})"), &e))?;
        return Ok(());
    }
    host.leave_link_deletion(true);
    host.disconnect(name, &key)
        .map_err(|e| CniError::lib(&format!("disconnecting {id} ({ifname})"), &e))?;
    // The last close of the nf_tables socket that deleted the port's rules waits for an
    // RCU grace period: the detached process gets a copy, so that our exit does not.
    if let netplumb::firewall::AnyFirewall::Nftables(fw) = host.firewall() {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        let _ = fcntl(fw.as_fd(), FcntlArg::F_SETFD(FdFlag::empty()));
    }
    reap_later(conf);
    Ok(())
}

/// The variable that makes this binary delete the veths DEL left, and nothing else.
const REAP: &str = "NETPLUMB_CNI_REAP";

/// Starts a detached process of this binary (stdio closed, not waited for) that deletes
/// the veths left by DEL; a failure to start it is harmless (see `del`).
fn reap_later(conf: &Conf) {
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    let _ = std::process::Command::new(me)
        .env(REAP, format!("{}\n{}", conf.state_dir, conf.run_dir))
        .env_remove("CNI_COMMAND")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn();
}

/// The detached process of `reap_later`. It waits a little first: the namespace (and
/// the veth with it) often goes meanwhile, the DELs of a burst are deleted in one
/// request, and the deletion, which holds the kernel's rtnl lock for a grace period,
/// keeps off the ADDs and DELs that follow at once.
fn reap(dirs: &str) -> ExitCode {
    std::thread::sleep(std::time::Duration::from_millis(250));
    let (state, run) = dirs.split_once('\n').unwrap_or((dirs, dirs));
    let done = Netns::current().and_then(|here| {
        let mut host = HostOptions::new(state).run_dir(run).open(&here)?;
        host.leave_link_deletion(true);
        host.flush_link_deletions()
    });
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// `GC`: every attachment of the network not in the valid list goes, with its address,
/// ports and links.
fn gc(conf: &Conf) -> Res {
    let valid: Vec<String> = conf
        .valid
        .iter()
        .flatten()
        .map(|(id, ifname)| lib_id(id, ifname))
        .collect();
    let mut host = host(conf)?;
    let name = conf.network.name();
    let atts = match host.attachments(Some(name)) {
        Ok(a) => a,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(CniError::lib(&format!("network {name}"), &e)),
    };
    let stale: Vec<&str> = atts
        .iter()
        .map(|a| a.container.as_str())
        .filter(|c| !valid.iter().any(|v| v == c))
        .collect();
    if stale.is_empty() {
        return Ok(());
    }
    host.disconnect_many(name, &stale)
        .map_err(|e| CniError::lib(&format!("removing {} stale attachments", stale.len()), &e))
}
