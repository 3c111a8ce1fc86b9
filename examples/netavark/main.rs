//! A network tool for Podman on netplumb: the command line and JSON of netavark 1.4, which
//! Podman runs once per container to set its network up and to tear it down.
//!
//! ```text
//! cargo build --release --example netavark
//! # containers.conf:  [network] network_backend = "netavark"
//! #                   [engine]  helper_binaries_dir = ["/path/to/target/release/examples"]
//! netavark [--config DIR] [--rootless=false] [--aardvark-binary PATH] [-f FILE]
//!          [--firewall-driver nftables|iptables|none] setup|teardown NETNS_PATH
//! netavark version
//! ```
//!
//! `setup` reads the container and its networks (JSON, on stdin or from `--file`), makes
//! each network's bridge and rules when they are missing (Podman keeps no state for its
//! tool: every call describes the networks in full), connects the container with the
//! addresses and MAC Podman chose, publishes its ports, and prints one status object per
//! network. `teardown` disconnects it, and removes a network's bridge and rules with its
//! last container; it works when the namespace is gone already, and twice. Errors are
//! `{"error": "..."}` on stdout with exit status 1, and leave nothing half made.
//!
//! The tool's own state (netplumb's network definitions, leases and records) lives under
//! `--config DIR` (Podman passes `/run/containers/networks`, a tmpfs), in `netplumb/`.
//!
//! `dns_enabled` networks get names through aardvark-dns (`--aardvark-binary`), with the
//! configuration files and signals netavark uses; see `dns.rs`.
//!
//! `ipam_options.driver = none`: an interface on the bridge, no address, no route.
//!
//! The `no_default_route` option and a network's static `routes` (netavark ≥ 1.8) are
//! served. The firewall driver is `--firewall-driver`, else `NETAVARK_FW` (as netavark
//! reads it), else nftables. Failures that netavark's users match on are worded as
//! netavark words them.
//!
//! Not yet: `ipam_options.driver = dhcp`, drivers other than `bridge`. Each is refused
//! with an error naming it rather than ignored. Networks are always isolated from each other (netavark's `isolate`
//! option is accepted and changes nothing).

mod dns;
#[path = "../common/release.rs"]
mod release;
mod setup;
mod types;

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use netplumb::firewall::Backend;
use netplumb::network::{Host, HostOptions};
use netplumb::Netns;

/// The result of a command, with an error text for `{"error": ...}`.
pub type Res<T = ()> = Result<T, String>;

#[derive(Parser, Debug)]
#[command(
    name = "netavark",
    version = "1.4.0",
    about = "Podman's network tool on netplumb"
)]
struct Cli {
    /// Read the request from FILE instead of stdin.
    #[arg(short, long, global = true)]
    file: Option<PathBuf>,
    /// The tool's state folder (a tmpfs, e.g. /run/containers/networks).
    #[arg(short, long, global = true, default_value = "/run/containers/networks")]
    config: PathBuf,
    /// Whether the caller is rootless (`--rootless=true|false`). The setup is the same
    /// either way: a rootless Podman runs this tool inside its own user and network
    /// namespaces, where it has the capabilities it needs.
    #[arg(short, long, global = true, num_args = 0..=1, default_missing_value = "true")]
    rootless: Option<bool>,
    /// The aardvark-dns binary that serves names on `dns_enabled` networks.
    #[arg(short, long, global = true)]
    aardvark_binary: Option<PathBuf>,
    /// `nftables` (default), `iptables` or `none`; else the `NETAVARK_FW` environment
    /// variable, as netavark reads it.
    #[arg(long, global = true)]
    firewall_driver: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Sets up the container's networks in the namespace at NETNS_PATH.
    Setup {
        /// The container's network namespace.
        netns: PathBuf,
    },
    /// Undoes `setup`; the namespace may be gone already.
    Teardown {
        /// The container's network namespace.
        netns: PathBuf,
    },
    /// Sets the upstream DNS servers of a network's aardvark-dns.
    Update {
        /// The network.
        network: String,
        /// The servers (repeated or comma-separated; an empty value removes them).
        #[arg(long, required = true, value_delimiter = ',', num_args = 1..)]
        network_dns_servers: Vec<String>,
    },
    /// Prints the version as JSON.
    Version,
}

fn main() -> ExitCode {
    if release::is_release_process() {
        return ExitCode::SUCCESS;
    }
    // netavark's log format (no timestamps: Podman's journal has them).
    env_logger::Builder::from_default_env()
        .format_timestamp(None)
        .init();
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            println!("{}", serde_json::json!({ "error": e }));
            ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> Res {
    match &cli.cmd {
        Cmd::Version => {
            let v = serde_json::json!({
                "version": "1.4.0",
                "commit": format!("netplumb {}", env!("CARGO_PKG_VERSION")),
                "build_time": "",
                "target": std::env::consts::ARCH,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&v).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Cmd::Update {
            network,
            network_dns_servers,
        } => {
            let servers = network_dns_servers
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<std::net::IpAddr>()
                        .map_err(|_| format!("--network-dns-servers: {s:?} is not an address"))
                })
                .collect::<Res<Vec<_>>>()?;
            match aardvark(cli)? {
                Some(a) => a.set_network_servers(network, &servers),
                None => Ok(()),
            }
        }
        Cmd::Setup { netns } => {
            let opts = request(cli)?;
            // netavark's words, which its users match on.
            let ns = Netns::open(netns).map_err(|e| match e.errno() {
                Some(n) => format!(
                    "invalid namespace path: IO error: {}",
                    std::io::Error::from_raw_os_error(n.raw())
                ),
                None => format!("invalid namespace path {}: {e}", netns.display()),
            })?;
            let plan = setup::Plan::new(&opts)?;
            let mut host = host(cli)?;
            let dns = aardvark(cli)?;
            let status = plan.setup(&mut host, &ns, dns.as_ref())?;
            println!(
                "{}",
                serde_json::to_string(&status).map_err(|e| e.to_string())?
            );
            Ok(())
        }
        Cmd::Teardown { netns } => {
            let opts = request(cli)?;
            let mut host = host(cli)?;
            // Podman deletes the container's namespace right after: the veth goes with it,
            // so the teardown does not wait for the kernel to delete it (the host end is
            // down and out of the bridge at once; a later call or the namespace's
            // deletion removes it).
            host.leave_link_deletion(true);
            let dns = aardvark(cli)?;
            // The namespace may be gone: then there is nothing inside to check.
            let ns = Netns::open(netns).ok();
            let r = setup::teardown(&mut host, &opts, ns.as_ref(), dns.as_ref());
            release::hand_off_firewall(&mut host);
            r
        }
    }
}

/// The request, from `--file` or stdin.
fn request(cli: &Cli) -> Res<types::NetworkOptions> {
    let text = match &cli.file {
        Some(f) => std::fs::read_to_string(f)
            .map_err(|e| format!("failed to load network options: IO error: {e}"))?,
        None => {
            let mut s = String::new();
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| format!("reading the request from stdin: {e}"))?;
            s
        }
    };
    serde_json::from_str(&text).map_err(|e| format!("invalid network options: {e}"))
}

/// The DNS server of `--config`, from `--aardvark-binary` (netavark's default path when not
/// given); none when that binary does not exist.
fn aardvark(cli: &Cli) -> Res<Option<dns::Aardvark>> {
    // Where Fedora and Debian put it.
    let bin = cli.aardvark_binary.clone().unwrap_or_else(|| {
        [
            "/usr/libexec/podman/aardvark-dns",
            "/usr/lib/podman/aardvark-dns",
        ]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/usr/libexec/podman/aardvark-dns"))
    });
    dns::Aardvark::new(&cli.config, &bin)
}

/// netplumb's host handle, its state under `--config`.
fn host(cli: &Cli) -> Res<Host> {
    let env = std::env::var("NETAVARK_FW").ok().map(|v| v.to_lowercase());
    let backend = match cli.firewall_driver.as_deref().or(env.as_deref()) {
        None | Some("nftables") => Backend::Nftables,
        Some("iptables") => Backend::Iptables,
        Some("none") => Backend::Disabled,
        Some(other) => {
            return Err(format!(
                "firewall driver {other:?} is not supported (nftables, iptables or none)"
            ))
        }
    };
    // As netavark says it (its users grep for it).
    log::info!(target: "netavark::firewall", "Using {backend} firewall driver");
    let here = Netns::current().map_err(|e| e.to_string())?;
    HostOptions::new(cli.config.join("netplumb"))
        .backend(backend)
        .open(&here)
        .map_err(|e| format!("opening the host's network state: {e}"))
}
