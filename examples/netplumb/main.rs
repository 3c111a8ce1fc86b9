//! `netplumb`: a Docker-like command line over the library, one process per command.
//!
//! ```text
//! cargo run --example netplumb -- demo                       # the whole tour, in throwaway namespaces
//! netplumb network create --subnet 10.123.0.0/24 mynet       # prints the network id
//! netplumb run --name a --network mynet -p 8080:80           # prints the container id
//! netplumb port a                                            # 80/tcp -> 0.0.0.0:8080
//! netplumb exec a -- ip addr                                 # a command inside a's namespace
//! netplumb network inspect mynet                             # Docker-shaped JSON
//! netplumb rm a; netplumb network rm mynet
//! ```
//!
//! Everything but `demo` acts on the namespace the command runs in (the host) and keeps
//! its records under `--state-dir` (default `/var/lib/netplumb`): the network definitions
//! in `networks/` (the library's durable state), and one folder per container made by
//! `run`, `containers/NAME/`, holding `config` (`key=value`
//! lines: id, name, network mode, namespace, hostname, DNS settings) and the container's
//! `hosts`, `hostname` and `resolv.conf`. A container's id is derived from its name (64
//! hex digits, stable), and its namespace is the named namespace NAME under `--netns-dir`
//! (default `/var/run/netns`, where `ip netns` looks), so `ip netns exec NAME` works too.
//! Addresses, published host ports and attachments, which a reboot ends, are in the
//! library's runtime database under `--run-dir` (default `/run/netplumb` with the default
//! `--state-dir`, else `STATE_DIR/run`).
//!
//! There is no daemon and no process in a container: `run` makes the namespace and
//! connects it; `exec` starts processes in it. Output follows Docker's formats; errors go
//! to stderr with exit status 1. Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN).

mod container;
mod demo;
mod network;
#[cfg(feature = "etcd")]
mod overlay;
mod records;
#[path = "../common/release.rs"]
mod release;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use netplumb::{Netns, NetnsDir};

/// What every command returns; errors print as `Error: ...` on stderr.
pub type Res<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Docker-grade container networking without a daemon.
#[derive(Parser, Debug)]
#[command(name = "netplumb", version)]
struct Cli {
    /// Where durable records are kept (network definitions, containers).
    #[arg(long, global = true, default_value = "/var/lib/netplumb")]
    state_dir: PathBuf,
    /// Where runtime state is kept (addresses, published ports, attachments); a tmpfs.
    /// Default: /run/netplumb with the default --state-dir, else STATE_DIR/run.
    #[arg(long, global = true)]
    run_dir: Option<PathBuf>,
    /// Where named namespaces are (as `ip netns`).
    #[arg(long, global = true, default_value = "/var/run/netns")]
    netns_dir: PathBuf,
    /// The firewall backend: nftables, iptables (built with the `iptables` feature) or auto.
    #[arg(long, global = true, default_value = "auto")]
    firewall: netplumb::firewall::Backend,
    /// The shared store of overlay networks: etcd://HOST:PORT, http://… or https://…,
    /// comma-separated (built with `etcd`).
    #[arg(long, global = true)]
    store: Option<String>,
    /// The CA certificate (PEM) that signs the store's certificates, as etcdctl's
    /// --cacert; with it, --store endpoints without http:// use TLS.
    #[arg(long = "store-cacert", global = true, value_name = "FILE")]
    store_cacert: Option<PathBuf>,
    /// A client certificate (PEM) for a store that asks for one (etcd's
    /// --client-cert-auth), as etcdctl's --cert; with --store-key.
    #[arg(
        long = "store-cert",
        global = true,
        value_name = "FILE",
        requires = "store_key"
    )]
    store_cert: Option<PathBuf>,
    /// The private key (PEM) of --store-cert, as etcdctl's --key.
    #[arg(
        long = "store-key",
        global = true,
        value_name = "FILE",
        requires = "store_cert"
    )]
    store_key: Option<PathBuf>,
    /// NAME:PASSWORD for a store with authentication on, as etcdctl's --user (the
    /// command line is visible to other users of the machine, as etcdctl's is).
    #[arg(long = "store-user", global = true, value_name = "NAME:PASSWORD")]
    store_user: Option<StoreUser>,
    /// This host's id among the hosts of overlay networks (default: the hostname).
    #[arg(long = "host-id", global = true)]
    host_id: Option<String>,
    /// This host's underlay address, where the other hosts send VXLAN packets.
    #[arg(long = "advertise-addr", global = true)]
    advertise_addr: Option<std::net::IpAddr>,
    /// Seconds this host's registration in the store outlives its last keep-alive (its
    /// etcd lease): how long the other hosts keep it after it died. Default 15.
    #[arg(long = "store-ttl", global = true, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    store_ttl: Option<u64>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Named network namespaces (`ip netns`).
    Netns {
        #[command(subcommand)]
        cmd: NetnsCmd,
    },
    /// Networks (`docker network`): `bridge` networks of this host, and `overlay`
    /// networks spanning the hosts of an etcd store (--store).
    Network {
        #[command(subcommand)]
        cmd: NetworkCmd,
    },
    /// Create a container's namespace and connect it (`docker run -d`, without a process).
    Run(RunArgs),
    /// Show containers as Docker-shaped JSON (`docker inspect`).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// List a container's published ports (`docker port`).
    Port {
        name: String,
        /// PORT or PORT/PROTO.
        port: Option<String>,
    },
    /// Run a command inside a container's namespace; exits with its status.
    Exec {
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
    /// Disconnect containers from every network and delete their namespaces (idempotent).
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove what dead containers left behind: attachments, veths, leases, records.
    Gc,
    /// Put back the firewall rules of every network and published port that someone
    /// removed (`nft flush ruleset`, a firewall reload): for hosts that run no agent.
    Repair,
    /// Run in the foreground as this host's overlay agent (needs --store, --advertise-addr):
    /// holds the host's registrations, follows every overlay network with containers
    /// here, announces them again, repairs the firewall; stops on SIGTERM or SIGINT.
    #[cfg(feature = "etcd")]
    Agent,
    /// The tour: a bridge network, two containers, a published port, outbound NAT.
    Demo,
}

#[derive(Subcommand, Debug)]
enum NetnsCmd {
    /// `ip netns add NAME`.
    Add { name: String },
    /// `ip netns del NAME`.
    #[command(alias = "delete")]
    Del { name: String },
    /// `ip netns list`.
    #[command(alias = "ls")]
    List,
    /// `ip netns exec NAME CMD...`.
    Exec {
        name: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        cmd: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum NetworkCmd {
    /// Create a network: `bridge` (the default) prints its id, `overlay` its name.
    Create(network::CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls,
    /// Show networks as Docker-shaped JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove networks.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Connect a container (or a named namespace) to a network.
    Connect {
        network: String,
        name: String,
        /// A specific IPv4 address.
        #[arg(long)]
        ip: Option<std::net::IpAddr>,
        /// Another name on the network.
        #[arg(long = "alias")]
        aliases: Vec<String>,
    },
    /// Disconnect a container from a network.
    Disconnect { network: String, name: String },
    /// Write this host's entries for the other hosts' containers of an overlay network.
    #[cfg(feature = "etcd")]
    Sync { network: String },
}

/// `netplumb run`'s options, Docker's names.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The container's name (its id and namespace name derive from it).
    #[arg(long)]
    pub name: String,
    /// NET, `host`, `none` or `container:OTHER`.
    #[arg(long, alias = "net", default_value = "bridge")]
    pub network: String,
    /// A specific IPv4 address on the network.
    #[arg(long)]
    pub ip: Option<std::net::IpAddr>,
    /// Publish a port: [IP:][HOSTPORT:]PORT[/PROTO].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish every exposed port to a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port: PORT[/PROTO].
    #[arg(long)]
    pub expose: Vec<String>,
    /// The hostname (default: the first 12 digits of the id).
    #[arg(long)]
    pub hostname: Option<String>,
    /// An extra /etc/hosts entry: HOST:IP (IP may be `host-gateway`).
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// A DNS server for resolv.conf (default: the host's, without loopback ones).
    #[arg(long)]
    pub dns: Vec<String>,
    /// A DNS search domain for resolv.conf.
    #[arg(long = "dns-search")]
    pub dns_search: Vec<String>,
    /// A resolver option for resolv.conf (`ndots:2`).
    #[arg(long = "dns-option")]
    pub dns_option: Vec<String>,
    /// A link to another container of the network: OTHER[:ALIAS].
    #[arg(long)]
    pub link: Vec<String>,
    /// Another name on the network.
    #[arg(long = "network-alias")]
    pub network_alias: Vec<String>,
}

/// `--store-user NAME:PASSWORD`. `Debug` shows the name only.
#[derive(Clone)]
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
pub struct StoreUser {
    /// The user name.
    pub name: String,
    /// The password.
    pub password: String,
}

impl std::str::FromStr for StoreUser {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some((name, password)) if !name.is_empty() => Ok(StoreUser {
                name: name.to_owned(),
                password: password.to_owned(),
            }),
            _ => Err("expected NAME:PASSWORD".into()),
        }
    }
}

impl std::fmt::Debug for StoreUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The global options every command shares.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// `--state-dir`.
    pub state_dir: PathBuf,
    /// `--run-dir`.
    pub run_dir: Option<PathBuf>,
    /// `--netns-dir`.
    pub netns: NetnsDir,
    /// `--firewall`.
    pub firewall: netplumb::firewall::Backend,
    /// `--store`.
    pub store: Option<String>,
    /// `--store-cacert`.
    pub store_cacert: Option<PathBuf>,
    /// `--store-cert` and `--store-key`.
    pub store_cert: Option<(PathBuf, PathBuf)>,
    /// `--store-user`.
    pub store_user: Option<StoreUser>,
    /// `--host-id`.
    pub host_id: Option<String>,
    /// `--advertise-addr`.
    pub advertise_addr: Option<std::net::IpAddr>,
    /// `--store-ttl`.
    pub store_ttl: Option<u64>,
}

impl Ctx {
    /// The library's context for the namespace this command runs in.
    pub fn host(&self) -> Res<netplumb::network::Host> {
        let mut opts = netplumb::network::HostOptions::new(&self.state_dir).backend(self.firewall);
        if let Some(d) = &self.run_dir {
            opts = opts.run_dir(d);
        }
        Ok(opts.open(&Netns::current()?)?)
    }
}

fn main() -> ExitCode {
    if release::is_release_process() {
        return ExitCode::SUCCESS;
    }
    // RUST_LOG=info prints one line per operation, debug every step (to stderr).
    env_logger::init();
    let cli = Cli::parse();
    let ctx = Ctx {
        state_dir: cli.state_dir,
        run_dir: cli.run_dir,
        netns: NetnsDir::new(cli.netns_dir),
        firewall: cli.firewall,
        store: cli.store,
        store_cacert: cli.store_cacert,
        store_cert: cli.store_cert.zip(cli.store_key),
        store_user: cli.store_user,
        host_id: cli.host_id,
        advertise_addr: cli.advertise_addr,
        store_ttl: cli.store_ttl,
    };
    match dispatch(&ctx, cli.cmd) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(ctx: &Ctx, cmd: Cmd) -> Res<ExitCode> {
    let ok = |r: Res| r.map(|()| ExitCode::SUCCESS);
    match cmd {
        Cmd::Netns { cmd } => netns(ctx, cmd),
        Cmd::Network { cmd } => match cmd {
            NetworkCmd::Create(a) => ok(network::create(ctx, &a)),
            NetworkCmd::Ls => ok(network::ls(ctx)),
            NetworkCmd::Inspect { names } => network::inspect(ctx, &names),
            NetworkCmd::Rm { names } => network::rm(ctx, &names),
            NetworkCmd::Connect {
                network,
                name,
                ip,
                aliases,
            } => ok(network::connect(ctx, &network, &name, ip, &aliases)),
            NetworkCmd::Disconnect { network, name } => {
                ok(network::disconnect(ctx, &network, &name))
            }
            #[cfg(feature = "etcd")]
            NetworkCmd::Sync { network } => {
                let c = overlay::Cluster::open(ctx)?;
                let net = c
                    .get(&network)?
                    .ok_or_else(|| format!("No such overlay network: {network}"))?;
                ok(c.sync(ctx, &net))
            }
        },
        Cmd::Run(a) => ok(container::run(ctx, &a)),
        Cmd::Inspect { names } => container::inspect(ctx, &names),
        Cmd::Port { name, port } => ok(container::port(ctx, &name, port.as_deref())),
        Cmd::Exec { name, cmd } => container::exec(&container::netns_of(ctx, &name)?, &cmd),
        Cmd::Rm { names } => {
            for n in &names {
                container::rm(ctx, n)?;
                println!("{n}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Gc => ok(container::gc(ctx)),
        Cmd::Repair => ok(container::repair(ctx)),
        #[cfg(feature = "etcd")]
        Cmd::Agent => ok(overlay::Cluster::open(ctx).and_then(|c| c.agent(ctx))),
        Cmd::Demo => demo::demo(),
    }
}

fn netns(ctx: &Ctx, cmd: NetnsCmd) -> Res<ExitCode> {
    match cmd {
        NetnsCmd::Add { name } => drop(ctx.netns.create(&name)?),
        NetnsCmd::Del { name } => ctx.netns.delete(&name)?,
        NetnsCmd::List => ctx.netns.list()?.iter().for_each(|n| println!("{n}")),
        NetnsCmd::Exec { name, cmd } => return container::exec(&ctx.netns.open(&name)?, &cmd),
    }
    Ok(ExitCode::SUCCESS)
}
