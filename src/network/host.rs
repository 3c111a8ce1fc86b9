//! [`Host`]: the context every network operation runs in — the host namespace, its
//! rtnetlink handle and firewall, IPAM, the port allocator and the records.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::durable::Definitions;
use super::reaper::Reaper;
use super::runtime;
use super::state::{rows, Attachment, NetworkInfo};
use crate::error::{Error, Object, Result, ResultExt};
use crate::firewall::{self, AnyFirewall, Backend, LinkAllow, NetworkRules};
use crate::ipam::Ipam;
use crate::link::LinkDel;
use crate::netns::{Netns, Worker};
use crate::ports::PortAllocator;
use crate::rtnl::Rtnl;

/// The default durable folder: the network definitions (`/var/lib/netplumb`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/netplumb";

/// The default runtime folder: leases, published ports and attachment records, which die
/// with the boot (`/run/netplumb`, a tmpfs).
pub const DEFAULT_RUN_DIR: &str = "/run/netplumb";

/// Where a [`Host`] keeps its state, and its firewall backend.
///
/// - The **state folder** (durable, default [`DEFAULT_STATE_DIR`]) holds one file per
///   network definition (`networks/NAME.net`: the [`NetworkInfo`] and what re-creates its
///   IPAM networks), written and synced only by `create_network` and `remove_network`.
/// - The **runtime folder** (default [`DEFAULT_RUN_DIR`] with the default state folder,
///   else `STATE_DIR/run`, so that two state folders never share one) holds one SQLite
///   database per boot, `netplumb-BOOT_ID.db`: the IPAM allocation state and leases, the
///   published host ports and the attachment records, written without syncs. A
///   connect, disconnect or gc writes all of them in one transaction.
///
/// After a reboot (or with the runtime folder emptied) the first open finds no database
/// for this boot and makes one with each defined network's IPAM networks and nothing
/// else: no stale lease, port or record. A state folder in the old layout (`ipam.db`,
/// `ports/`) is migrated by that first open.
///
/// ```no_run
/// use netplumb::network::HostOptions;
/// let host = HostOptions::new("/var/lib/netplumb")
///     .run_dir("/run/netplumb")
///     .open(&netplumb::Netns::current()?)?;
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct HostOptions {
    state_dir: PathBuf,
    run_dir: Option<PathBuf>,
    backend: Backend,
    busy_timeout: Duration,
}

/// How long a [`Host`] waits by default for another process's transaction of the
/// runtime database ([`HostOptions::busy_timeout`]).
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(30);

impl HostOptions {
    /// The durable folder `state_dir`, the runtime folder derived from it, and the
    /// firewall backend chosen automatically ([`Backend::detect`]).
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        HostOptions {
            state_dir: state_dir.into(),
            run_dir: None,
            backend: Backend::Auto,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
        }
    }

    /// How long an operation waits for another process's transaction of the runtime
    /// database before it fails with the store's "busy" error (default
    /// [`DEFAULT_BUSY_TIMEOUT`]). Transactions last one operation (about a millisecond),
    /// so a long wait means a stuck process.
    pub fn busy_timeout(mut self, timeout: Duration) -> Self {
        self.busy_timeout = timeout;
        self
    }

    /// The runtime folder (`--run-dir`); best on a tmpfs.
    pub fn run_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.run_dir = Some(dir.into());
        self
    }

    /// The firewall backend (`--firewall`).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The durable folder.
    pub fn state_dir_path(&self) -> &Path {
        &self.state_dir
    }

    /// The runtime folder: the one set, else [`DEFAULT_RUN_DIR`] with the default state
    /// folder, else `STATE_DIR/run`.
    pub fn run_dir_path(&self) -> PathBuf {
        match &self.run_dir {
            Some(d) => d.clone(),
            None if self.state_dir == Path::new(DEFAULT_STATE_DIR) => DEFAULT_RUN_DIR.into(),
            None => self.state_dir.join("run"),
        }
    }

    /// Opens the context for namespace `ns` ([`Host::open_in`]).
    pub fn open(&self, ns: &Netns) -> Result<Host> {
        let (state_dir, run_dir) = (self.state_dir.clone(), self.run_dir_path());
        let defs = Definitions::new(&state_dir);
        // The dynamic port range is read once, not on every connect.
        let ports = PortAllocator::new(ns);
        let ports = ports.clone().range(ports.dynamic_range()?);
        let fw = firewall::open(self.backend, ns)?;
        let opts = HostOptions {
            state_dir: state_dir.clone(),
            run_dir: Some(run_dir.clone()),
            backend: fw.backend(),
            busy_timeout: self.busy_timeout,
        };
        Ok(Host {
            netns: ns.clone(),
            rtnl: Rtnl::open_in(ns)?,
            fw,
            ipam: Arc::new(runtime::open(
                &state_dir,
                &run_dir,
                &defs,
                self.busy_timeout,
            )?),
            ports,
            defs,
            opts,
            bridges: Default::default(),
            reaper: None,
            worker: None,
            leave: false,
            left: false,
        })
    }
}

/// The handle that owns one host's container networks: their bridges, the containers'
/// endpoints on them, the firewall rules, the address leases and host ports, and the
/// records of all of them.
///
/// Its state lives in two folders
/// ([`HostOptions`]): the network definitions in the durable state folder
/// ([`DEFAULT_STATE_DIR`]), everything that dies with the boot (leases, published ports,
/// attachment records) in one database in the runtime folder ([`DEFAULT_RUN_DIR`]).
/// After a reboot the networks are still defined and usable (the next connect makes a
/// network's bridge and firewall rules again when they are gone), with no lease, port or
/// record left over.
///
/// # Threads and processes
///
/// Any number of `Host`s may be open on the same host namespace and folders at once: on
/// several threads (a `Host` is `Send`), in several processes, or both. Each operation is
/// one transaction of the runtime database, and the nf_tables changes are checked against
/// the ruleset generation they were built on, so concurrent operations never see each
/// other half done. `&mut self` serialises the calls made on one handle only; there is no
/// need to wrap a `Host` in a `Mutex` to keep separate handles apart. Open one per worker
/// thread rather than sharing one: a connect holds the database's write lock from its
/// first step to its last, so connects run one after another either way, but the reads
/// (`attachments`, `network`, inspect) of other handles go on meanwhile.
///
/// # What blocks, and for how long
///
/// Every call is synchronous and runs on the caller's thread; the waits are:
/// - **The runtime database's lock**, held by another process's operation (one
///   transaction per connect, disconnect or gc, about a millisecond): waited for up to
///   [`HostOptions::busy_timeout`] (default [`DEFAULT_BUSY_TIMEOUT`], 30 s), then the
///   operation fails with the store's "busy" error and changes nothing.
/// - **The kernel's requests** (rtnetlink, nf_tables): each returns when the kernel has
///   applied it, in well under a millisecond, except the deletion of a veth, which waits
///   for an RCU grace period (~15–20 ms; one wait for all the links of one disconnect,
///   removal or gc). [`Host::defer_link_deletion`] moves that wait to a background thread
///   (and to [`Host::flush_link_deletions`] and the `Host`'s drop);
///   [`Host::leave_link_deletion`] lets the caller skip it (the namespace's deletion or a
///   later call deletes the links).
/// - **The helper thread** that makes a socket inside a container's namespace: the
///   caller waits for its answer, a few microseconds of work.
/// - **The firewall**: nf_tables takes no lock beyond the kernel's own. The `iptables`
///   backend waits for its lock file of the namespace, then runs `iptables-restore
///   --noflush --wait 30`, which waits for the xtables lock another program holds: each
///   up to 30 s (`firewall::DEFAULT_IPTABLES_WAIT`; `IptablesOptions::wait` for a
///   backend opened by hand), then the change fails.
/// - **The standalone port registry** ([`crate::ports::PortAllocator::publish`], not used
///   by a `Host`): its file lock is waited for up to 10 s.
///
/// ```no_run
/// use netplumb::network::{Container, Host, NetworkConfig};
/// let mut host = Host::open_in(&netplumb::Netns::current()?, "/var/lib/netplumb")?;
/// host.create_network(&NetworkConfig::new("mybr0").subnet("172.26.0.0/16".parse().unwrap()))?;
/// let ctr = netplumb::NetnsDir::default().create("web")?;
/// let att = host.connect("mybr0", &Container::new("3f2a1c0d9e8b", &ctr).name("web"))?;
/// println!("{} on {}", att.addrs[0], att.host_veth);
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug)]
pub struct Host {
    pub(crate) netns: Netns,
    pub(crate) rtnl: Rtnl,
    pub(crate) fw: AnyFirewall,
    /// Shared with the undo records, which so open no database file of their own.
    pub(crate) ipam: Arc<Ipam>,
    pub(crate) ports: PortAllocator,
    /// The network definitions (the durable folder).
    pub(crate) defs: Definitions,
    /// The folders and backend, resolved (to open another `Host` on the same state).
    pub(crate) opts: HostOptions,
    /// Bridge indexes by name, looked up once (a connect needs the index).
    pub(crate) bridges: std::collections::HashMap<String, u32>,
    /// Deferred link deletion, when on ([`Host::defer_link_deletion`]).
    pub(crate) reaper: Option<Reaper>,
    /// The thread that makes sockets inside containers' namespaces, started on first use.
    pub(crate) worker: Option<Worker>,
    /// Disconnects leave veths for later ([`Host::leave_link_deletion`]).
    pub(crate) leave: bool,
    /// Links were left in [`LEFT_GROUP`] by this context.
    pub(crate) left: bool,
}

/// The interface group of the veths that disconnects left for later
/// ([`Host::leave_link_deletion`]): shared by every process, deleted as one.
pub(crate) const LEFT_GROUP: u32 = 0x6e8f_ffff;

impl Host {
    /// Opens the context for namespace `ns`, with the network definitions in `state_dir`,
    /// the runtime state in the folder [`HostOptions::run_dir_path`] derives from it, and
    /// the firewall backend chosen automatically ([`Backend::detect`]).
    pub fn open_in(ns: &Netns, state_dir: impl Into<PathBuf>) -> Result<Host> {
        HostOptions::new(state_dir).open(ns)
    }

    /// As [`Host::open_in`], with the firewall backend `backend` (`--firewall`).
    pub fn open_with(ns: &Netns, state_dir: impl Into<PathBuf>, backend: Backend) -> Result<Host> {
        HostOptions::new(state_dir).backend(backend).open(ns)
    }

    /// The host namespace.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The address manager (for leases and standalone use).
    pub fn ipam(&self) -> &Ipam {
        &self.ipam
    }

    /// The firewall backend.
    pub fn firewall(&mut self) -> &mut AnyFirewall {
        &mut self.fw
    }

    /// The rtnetlink handle of the host namespace.
    pub fn rtnl(&mut self) -> &mut Rtnl {
        &mut self.rtnl
    }

    /// The durable folder (network definitions).
    pub fn state_dir(&self) -> &Path {
        &self.opts.state_dir
    }

    /// The runtime folder (leases, published ports, attachment records).
    pub fn run_dir(&self) -> PathBuf {
        self.opts.run_dir_path()
    }

    /// The folders and the firewall backend this context was opened with (resolved).
    pub fn options(&self) -> &HostOptions {
        &self.opts
    }

    /// The runtime database's connection, for reads (each statement its own).
    pub(crate) fn db(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        self.ipam.store().conn()
    }

    /// The published host ports of the runtime database, by protocol and host port.
    pub fn published_ports(&self) -> Result<Vec<crate::ports::PublishedPort>> {
        super::port_rows::published(&self.db())
    }

    /// An rtnetlink handle on namespace `ns` (a container's), its socket made on this
    /// context's helper thread (started on first use) rather than on a new thread each time.
    pub(crate) fn rtnl_in(&mut self, ns: &Netns) -> Result<Rtnl> {
        let worker = match &mut self.worker {
            Some(w) => w,
            w => w.insert(Worker::start(&self.netns)?),
        };
        Rtnl::open_on(worker, ns)
    }

    /// The index of bridge `name`, from the cache unless `fresh`.
    pub(crate) fn bridge_index(&mut self, name: &str, fresh: bool) -> Result<u32> {
        if let (false, Some(&i)) = (fresh, self.bridges.get(name)) {
            return Ok(i);
        }
        let i = self.rtnl.link(name)?.index;
        self.bridges.insert(name.to_owned(), i);
        Ok(i)
    }

    /// The networks, by name.
    pub fn networks(&self) -> Result<Vec<NetworkInfo>> {
        self.defs.list()
    }

    /// One network; [`Error::NotFound`] when there is none of that name.
    pub fn network(&self, name: &str) -> Result<NetworkInfo> {
        self.defs
            .get(name)?
            .ok_or_else(|| Error::not_found(Object::Network, name))
    }

    /// The containers attached to network `name` (every network with `None`).
    pub fn attachments(&self, name: Option<&str>) -> Result<Vec<Attachment>> {
        rows::attachments(&self.db(), name)
    }

    /// The firewall rules of a network with its current attachments (`--link`s included).
    pub(crate) fn rules(&self, net: &NetworkInfo, atts: &[Attachment]) -> NetworkRules {
        let mut r = NetworkRules::new(&net.name, &net.bridge)
            .masquerade(net.masquerade)
            .icc(net.icc)
            .internal(net.internal)
            .loopback_ports(!net.internal);
        for s in &net.subnets {
            r = r.subnet(*s);
        }
        r.addressless = net.subnets.is_empty();
        // Anti-spoofing (enforced with ICC off): each container's addresses belong to
        // its own bridge port.
        for a in atts {
            for addr in &a.addrs {
                r = r.endpoint(&a.host_veth, addr.addr());
            }
        }
        for a in atts {
            for link in &a.links {
                let target = link.split_once(':').map_or(link.as_str(), |(t, _)| t);
                let Some(b) = atts
                    .iter()
                    .find(|b| b.name == target || b.aliases.iter().any(|x| x == target))
                else {
                    continue;
                };
                for (from, to) in a.addrs.iter().zip(b.addrs.iter()) {
                    for (proto, port) in &b.expose {
                        r = r.link(LinkAllow {
                            from: from.addr(),
                            to: to.addr(),
                            proto: *proto,
                            port: *port,
                        });
                    }
                }
            }
        }
        r
    }
}

impl Host {
    /// Defers the deletion of veths on disconnect (off by default; see below).
    ///
    /// Deleting a veth waits in the kernel for an RCU barrier, ~15–20 ms on most machines,
    /// which dwarfs the rest of a disconnect. With deferral on, [`Host::disconnect`] and
    /// [`Host::disconnect_many`] do everything else as before (records, firewall, leases,
    /// ports, files), take the container's veth down (no carrier: nothing goes in or out
    /// from then on) and leave its deletion to a background thread, which deletes all the
    /// links waiting in one request. A container's interface thus stays, down and without
    /// a bridge, for that long after the call returns.
    ///
    /// Pending deletions end with [`Host::flush_link_deletions`], with `defer(false)`, and
    /// when the `Host` is dropped. A connect that finds the container's interface name
    /// still taken waits for them. Removing a network deletes its links at once.
    ///
    /// ```no_run
    /// # use netplumb::network::Host;
    /// let mut host = Host::open_in(&netplumb::Netns::current()?, "/run/netplumb")?;
    /// host.defer_link_deletion(true)?;
    /// host.disconnect("web", "c1")?;  // returns before the veth is deleted
    /// host.flush_link_deletions()?;   // now it is
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn defer_link_deletion(&mut self, on: bool) -> Result<()> {
        match (on, self.reaper.is_some()) {
            (true, false) => self.reaper = Some(Reaper::start(&self.netns)?),
            (false, true) => {
                let r = self.flush_link_deletions();
                self.reaper = None;
                r?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Waits until every deferred link deletion is done (see
    /// [`Host::defer_link_deletion`]), and deletes the links disconnects left for later
    /// ([`Host::leave_link_deletion`]; those of any process); returns the first failure
    /// since the last flush. Without either there is nothing to wait for.
    pub fn flush_link_deletions(&mut self) -> Result<()> {
        let r = match &self.reaper {
            Some(r) => r.flush(),
            None => Ok(()),
        };
        if self.left || self.leave {
            self.rtnl.execute(&LinkDel::group(LEFT_GROUP)).or_gone()?;
            self.left = false;
        }
        r
    }

    /// Leaves the deletion of veths on disconnect for later (off by default), for a
    /// caller that deletes the container's namespace next, as a runtime's `rm` does.
    ///
    /// With it on, [`Host::disconnect`] and [`Host::disconnect_many`] do everything else
    /// as before, then cut the container off (its veth down: no carrier, and a bridge
    /// port that is down forwards nothing) and put the veth in one interface group shared
    /// by every process, without waiting for the kernel to delete it (~15–20 ms each).
    /// The veth goes when the container's namespace is deleted (the kernel deletes it in
    /// the background), or when anyone deletes the group in one request:
    /// [`Host::flush_link_deletions`] (of this or any later `Host`), a connect that finds
    /// the container's interface name still taken, and [`Host::gc`] (a down veth on a
    /// network's bridge with no record). Crash-safe: the group lives in the kernel.
    ///
    /// Not the default: a container whose namespace stays would keep its interface (down,
    /// with its address) until then, where a waiting disconnect removes it at once.
    ///
    /// ```no_run
    /// # use netplumb::network::Host;
    /// let mut host = Host::open_in(&netplumb::Netns::current()?, "/var/lib/netplumb")?;
    /// host.leave_link_deletion(true);
    /// host.disconnect("web", "c1")?; // returns at once; c1's veth is down
    /// netplumb::NetnsDir::default().delete("c1")?; // takes the veth along
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn leave_link_deletion(&mut self, on: bool) {
        self.leave = on;
    }
}
