//! The iptables backend (feature `iptables`): the same rule model written in Docker's
//! chain layout through `iptables-restore` / `ip6tables-restore`, for hosts whose admins
//! read `iptables -t nat -nL`, or that are already managed through iptables-legacy.
//!
//! Layout (prefix `DOCKER`, the default; `ip6tables` is the same with IPv6 addresses):
//!
//! ```text
//! *nat
//! -A PREROUTING ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
//! -A OUTPUT ! -d 127.0.0.0/8 -m addrtype --dst-type LOCAL -j DOCKER
//! -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE                      # per network
//! -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE  # per port
//! -A DOCKER -p tcp -m tcp --dport 32768 -j DNAT --to-destination 172.17.0.2:80    # per port
//! *filter
//! -A FORWARD -j DOCKER-USER                                                       # always first
//! -A FORWARD -j DOCKER-ISOLATION-STAGE-1
//! -A FORWARD -o docker0 -m conntrack --ctstate INVALID -j DROP                   # per network
//! -A FORWARD -i docker0 -m conntrack --ctstate INVALID -j DROP
//! -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
//! -A FORWARD -o docker0 -j DOCKER
//! -A FORWARD -i docker0 ! -o docker0 -j ACCEPT                                   # DROP if internal
//! -A FORWARD -i docker0 -o docker0 -j ACCEPT                                     # icc; DROP if off
//! -A DOCKER -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 32768 -j ACCEPT
//! -A DOCKER -s 172.17.0.3/32 -d 172.17.0.2/32 -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT  # --link
//! -A DOCKER -s 172.17.0.2/32 -d 172.17.0.3/32 -i docker0 -o docker0 -p tcp -m tcp --sport 80 -j ACCEPT
//! -A DOCKER ! -i docker0 -o docker0 -j DROP
//! -A DOCKER-ISOLATION-STAGE-1 -m conntrack --ctstate DNAT -j RETURN
//! -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2
//! -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP
//! ```
//!
//! Every rule of a network or port carries `-m comment --comment "netplumb net=NAME ..."`;
//! the jumps from built-in chains are recognised by their target. Where it differs from
//! Docker's default listing, and why:
//! - the DNAT has no `! -i docker0` (and there is no `-A DOCKER -i docker0 -j RETURN`):
//!   with no userland proxy, containers reach published ports through a host address by
//!   DNAT (hairpin), as with Docker's `--userland-proxy=false`;
//! - `PREROUTING` skips 127.0.0.0/8, so a loopback destination from outside is never
//!   DNATed; the loopback-ports option adds its own `OUTPUT -d 127.0.0.0/8` jump, the
//!   masquerade of `-s 127.0.0.0/8 -o BRIDGE` and, since `route_localnet` on the bridge
//!   would let containers reach the host's 127.0.0.1 services, a `filter INPUT` drop of
//!   new connections to 127.0.0.0/8 coming in on the bridge (CVE-2020-8558);
//! - the published-port accept checks that the connection was DNATed from that host
//!   port, and DNATed connections skip the isolation stages, as in the nf_tables backend.
//!
//! Each change reads the rules back with one `iptables-save` per family, and applies with
//! one `iptables-restore --noflush --wait` per family and change (nothing when nothing
//! changes), under a per-namespace file lock of ours, so that several processes can change
//! rules at once. Every process runs inside the backend's namespace.
//!
//! The last network takes our chains and the jumps to them (the lock keeps another
//! process from filling them meanwhile); `DOCKER-USER` stays while it holds rules, as
//! Docker leaves it. Unlike Docker, which leaves its chains for ever, nothing else of ours
//! stays. The built-in chains, and with iptables-nft the `nat` and `filter` tables that
//! hold them, belong to iptables and are left alone.

mod chains;
mod render;
mod repair;
mod save;
mod tool;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use render::{Family, Names, Table, Tag};
use save::{Edit, Ruleset};
pub use tool::IptablesVariant;

use crate::error::{Errno, Error, Op, Result};
use crate::firewall::backend::Firewall;
use crate::firewall::repair::{validate_all, Repaired};
use crate::firewall::rule::{check_network_name, NetworkRules, PortRule};
use crate::firewall::state::{legacy_tables_in_use, FirewallState};
use crate::netns::Netns;

/// The default folder of our lock files.
pub const DEFAULT_LOCK_DIR: &str = "/run/netplumb";

/// How to open an [`Iptables`] backend.
///
/// ```no_run
/// use netplumb::firewall::{Iptables, IptablesVariant};
/// let fw = Iptables::options().prefix("NETPLUMB").variant(IptablesVariant::Legacy).open_in(&netplumb::Netns::current()?)?;
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct IptablesOptions {
    prefix: String,
    variant: IptablesVariant,
    bin_dir: Option<PathBuf>,
    lock_dir: PathBuf,
    wait: Duration,
}

/// How long a change waits by default for the locks other programs hold
/// ([`IptablesOptions::wait`]).
pub const DEFAULT_IPTABLES_WAIT: Duration = Duration::from_secs(30);

impl Default for IptablesOptions {
    fn default() -> Self {
        IptablesOptions {
            prefix: "DOCKER".to_owned(),
            variant: IptablesVariant::Auto,
            bin_dir: None,
            lock_dir: PathBuf::from(DEFAULT_LOCK_DIR),
            wait: DEFAULT_IPTABLES_WAIT,
        }
    }
}

impl IptablesOptions {
    /// Chain prefix (`DOCKER` by default: `DOCKER`, `DOCKER-USER`,
    /// `DOCKER-ISOLATION-STAGE-1/2`). On a host where Docker itself runs, use another.
    pub fn prefix(mut self, prefix: &str) -> Self {
        self.prefix = prefix.to_owned();
        self
    }

    /// Which iptables binaries to run (default [`IptablesVariant::Auto`]).
    pub fn variant(mut self, v: IptablesVariant) -> Self {
        self.variant = v;
        self
    }

    /// Looks for the binaries in `dir` only (default: `PATH`, then `/usr/sbin`, `/sbin`).
    pub fn bin_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.bin_dir = Some(dir.into());
        self
    }

    /// The folder of our lock files (default `/run/netplumb`). Every process changing
    /// one namespace's rules must use the same.
    pub fn lock_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.lock_dir = dir.into();
        self
    }

    /// How long a change waits for the locks that other programs hold (default
    /// [`DEFAULT_IPTABLES_WAIT`], 30 s): our own lock file of the namespace, then the xtables lock
    /// (`iptables-restore --wait SECONDS`, rounded up to whole seconds). Past it the change
    /// fails with a timed-out error and changes nothing.
    ///
    /// ```
    /// use std::time::Duration;
    /// let opts = netplumb::firewall::Iptables::options().wait(Duration::from_secs(5));
    /// # let _ = opts;
    /// ```
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Opens the backend for namespace `ns`: finds the binaries and checks their version
    /// (inside `ns`). Changes nothing.
    pub fn open_in(self, ns: &Netns) -> Result<Iptables> {
        let p = &self.prefix;
        let ok = !p.is_empty()
            && p.len() <= 10
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
        if !ok {
            return Err(Error::invalid(
                "iptables chain prefix",
                p,
                "must be 1 to 10 of [A-Za-z0-9_-]",
            ));
        }
        let legacy = legacy_tables_in_use(ns)?;
        let tools = tool::Tools::find(ns, self.variant, self.bin_dir.as_deref(), legacy)?;
        log::debug!("iptables backend in {ns}: {}", tools.version);
        Ok(Iptables {
            names: Names::new(p),
            tools,
            netns: ns.clone(),
            lock_dir: self.lock_dir,
            wait: self.wait,
        })
    }
}

/// The iptables backend, bound to one network namespace.
///
/// ```no_run
/// use netplumb::firewall::{Firewall, Iptables, NetworkRules, PortRule, Proto};
/// let mut fw = Iptables::open_in(&netplumb::Netns::current()?)?;
/// fw.add_network(&NetworkRules::new("bridge", "docker0").subnet("172.17.0.0/16".parse().unwrap()))?;
/// fw.publish(&[PortRule::new("bridge", Proto::Tcp, 32768, "172.17.0.2".parse().unwrap(), 80)])?;
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug)]
pub struct Iptables {
    names: Names,
    tools: tool::Tools,
    netns: Netns,
    lock_dir: PathBuf,
    wait: Duration,
}

/// What a read-modify step does to one family's rules.
type Step<'a> = dyn FnMut(&Iptables, Family, &mut Edit) -> Result<()> + 'a;

impl Iptables {
    /// The backend for `ns` with the default options.
    pub fn open_in(ns: &Netns) -> Result<Iptables> {
        IptablesOptions::default().open_in(ns)
    }

    /// Options for [`IptablesOptions::open_in`].
    pub fn options() -> IptablesOptions {
        IptablesOptions::default()
    }

    /// The namespace this backend writes to.
    pub fn netns(&self) -> &Netns {
        &self.netns
    }

    /// The chain prefix.
    pub fn prefix(&self) -> &str {
        &self.names.docker
    }

    /// What `iptables-restore --version` said, e.g. `iptables-restore v1.8.9 (nf_tables)`.
    pub fn version(&self) -> &str {
        &self.tools.version
    }

    /// Removes everything of ours, the users' chain and its rules included.
    pub fn flush(&mut self) -> Result<()> {
        self.transact(&Family::BOTH, &mut |fw, _, e| {
            chains::delete_where(&fw.names, e, |_| true);
            chains::remove_skeleton(&fw.names, e, true);
            Ok(())
        })
    }

    /// Reads, edits and applies the rules of each family in `fams`, under our lock.
    fn transact(&self, fams: &[Family], step: &mut Step<'_>) -> Result<()> {
        let _lock = tool::lock(&self.lock_dir, &self.netns, self.wait)?;
        let mut edits = Vec::new();
        for &fam in fams {
            let mut e = Edit::new(self.read(fam)?);
            step(self, fam, &mut e)?;
            edits.push((fam, e));
        }
        for (fam, e) in edits {
            if let Some(input) = e.input() {
                if log::log_enabled!(log::Level::Trace) {
                    log::trace!(
                        "{}tables-restore --noflush --wait <<EOF\n{input}EOF",
                        if fam == Family::V4 { "ip" } else { "ip6" }
                    );
                }
                self.tools
                    .apply(&self.netns, fam, &input, self.wait, &|n| e.line(n))?;
            }
        }
        Ok(())
    }

    fn read(&self, fam: Family) -> Result<Ruleset> {
        Ok(Ruleset::parse(&self.tools.save(&self.netns, fam)?))
    }

    fn add_network_in(&self, e: &mut Edit, fam: Family, net: &NetworkRules) -> Result<()> {
        let want = render::network(&self.names, net, fam);
        let tag = self.names.net_tag(net);
        let mine = |t: Tag<'_>| matches!(t, Tag::Net { network, .. } if network == net.name);
        let have: Vec<String> = chains::tagged(&self.names, &e.now)
            .into_iter()
            .filter(|(.., cm)| self.names.parse_tag(cm).is_some_and(mine))
            .map(|(.., cm)| cm)
            .collect();
        if !want.is_empty() {
            chains::ensure_skeleton(&self.names, e, fam);
        }
        if have.len() == want.len() && have.iter().all(|cm| *cm == tag) {
            return Ok(()); // the same rules are there already
        }
        chains::delete_where(&self.names, e, mine);
        chains::add_rules(&self.names, e, &want);
        if want.is_empty() {
            chains::remove_skeleton(&self.names, e, false);
        }
        Ok(())
    }

    fn publish_in(&self, e: &mut Edit, fam: Family, ports: &[&PortRule]) -> Result<()> {
        /// A rule of ours: table, chain, rule, comment.
        type TaggedRule = (Table, String, String, String);
        chains::ensure_skeleton(&self.names, e, fam);
        // The port rules there now, by network and port key: read once, whatever the
        // number of ports. Each network has its own rules for a port (a container can
        // publish one host port on each of its networks, netavark's layout: the first
        // DNAT in the chain answers); within a network, a port has one target.
        let mut by_key: HashMap<(String, String), Vec<TaggedRule>> = HashMap::new();
        for (t, c, r, cm) in chains::tagged(&self.names, &e.now) {
            if let Some(Tag::Port { network, key }) = self.names.parse_tag(&cm) {
                by_key
                    .entry((network.to_owned(), key.to_owned()))
                    .or_default()
                    .push((t, c.to_owned(), r.to_owned(), cm));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for p in ports {
            let (tag, key) = (self.names.port_tag(p), render::port_key(p));
            let at = (p.network.clone(), key.clone());
            if !seen.insert(at.clone()) {
                continue; // the same port twice in one call
            }
            let have = by_key.remove(&at).unwrap_or_default();
            let dnat = have.iter().find(|(t, c, r, _)| {
                *t == Table::Nat && *c == self.names.docker && save::target(r) == Some("DNAT")
            });
            if let Some((.., r, _)) = dnat {
                if save::option(r, "--to-destination") != Some(render::dnat_target(p)) {
                    return Err(Error::Kernel {
                        op: Op::Firewall,
                        target: format!("iptables: publish {p}"),
                        errno: Errno::EEXIST,
                        extack: Some(format!(
                            "port {key} is already published to another target ({r})"
                        )),
                    });
                }
            }
            if have.len() == 3 && have.iter().all(|(.., cm)| *cm == tag) && dnat.is_some() {
                continue; // the same port is there already
            }
            for (t, c, r, _) in &have {
                e.delete(*t, c, r);
            }
            chains::add_rules(&self.names, e, &render::port(&self.names, p));
        }
        Ok(())
    }

    fn state_of(&self, fam: Family, rs: &Ruleset, st: &mut FirewallState) {
        state_of(&self.names, fam, rs, st)
    }
}

/// What `rs` (one family's `iptables-save` output) holds of ours, added to `st`.
fn state_of(names: &Names, fam: Family, rs: &Ruleset, st: &mut FirewallState) {
    if rs.chain(Table::Nat, &names.docker).is_none() {
        return;
    }
    st.families.push(fam.name());
    for (t, chain, rule, cm) in chains::tagged(names, rs) {
        match names.parse_tag(&cm) {
            Some(Tag::Net { network, .. }) => match st.networks.iter().position(|x| x == network) {
                Some(i) => st.rules[i] += 1,
                None => {
                    st.networks.push(network.to_owned());
                    st.rules.push(1);
                }
            },
            Some(Tag::Port { network, key }) if t == Table::Nat && chain == names.docker => {
                if let Some(p) = decode_port(network, key, rule) {
                    st.ports.push(p);
                }
            }
            _ => {}
        }
    }
}

/// Reads `iptables-save` output as the backend with chain prefix `DOCKER` reads it (for
/// the property tests and fuzzing).
pub(crate) fn state_from_save(text: &str) -> FirewallState {
    let mut st = FirewallState::default();
    state_of(
        &Names::new("DOCKER"),
        Family::V4,
        &Ruleset::parse(text),
        &mut st,
    );
    st
}

/// Rebuilds a published port from its DNAT rule.
fn decode_port(network: &str, key: &str, rule: &str) -> Option<PortRule> {
    let (proto, host_ip, host_port) = render::parse_port_key(key)?;
    let to = save::option(rule, "--to-destination")?;
    let (ip, port) = to.rsplit_once(':')?;
    Some(PortRule {
        network: network.to_owned(),
        proto,
        host_ip,
        host_port,
        container_ip: ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?,
        container_port: port.parse().ok()?,
    })
}

impl Firewall for Iptables {
    fn add_network(&mut self, net: &NetworkRules) -> Result<()> {
        net.validate()?;
        self.transact(&Family::BOTH, &mut |fw, fam, e| {
            fw.add_network_in(e, fam, net)
        })
    }

    fn remove_network(&mut self, name: &str) -> Result<()> {
        check_network_name(name)?;
        self.transact(&Family::BOTH, &mut |fw, _, e| {
            chains::delete_where(&fw.names, e, |t| t.network() == name);
            chains::remove_skeleton(&fw.names, e, false);
            Ok(())
        })
    }

    fn publish(&mut self, ports: &[PortRule]) -> Result<()> {
        for p in ports {
            p.validate()?;
        }
        let fams: Vec<Family> = Family::BOTH
            .into_iter()
            .filter(|f| ports.iter().any(|p| Family::of(&p.container_ip) == *f))
            .collect();
        self.transact(&fams, &mut |fw, fam, e| {
            let mine: Vec<&PortRule> = ports
                .iter()
                .filter(|p| Family::of(&p.container_ip) == fam)
                .collect();
            fw.publish_in(e, fam, &mine)
        })
    }

    fn unpublish(&mut self, ports: &[PortRule]) -> Result<()> {
        for p in ports {
            p.validate()?;
        }
        let fams: Vec<Family> = Family::BOTH
            .into_iter()
            .filter(|f| ports.iter().any(|p| Family::of(&p.container_ip) == *f))
            .collect();
        self.transact(&fams, &mut |fw, fam, e| {
            let keys: Vec<(&str, String)> = ports
                .iter()
                .filter(|p| Family::of(&p.container_ip) == fam)
                .map(|p| (p.network.as_str(), render::port_key(p)))
                .collect();
            chains::delete_where(&fw.names, e, |t| {
                matches!(t, Tag::Port { network, key } if keys.iter().any(|(n, k)| *n == network && k == key))
            });
            Ok(())
        })
    }

    fn state(&mut self) -> Result<FirewallState> {
        let mut st = FirewallState::default();
        for fam in Family::BOTH {
            let rs = self.read(fam)?;
            self.state_of(fam, &rs, &mut st);
        }
        st.sort();
        Ok(st)
    }

    fn repair(&mut self, networks: &[NetworkRules], ports: &[PortRule]) -> Result<Repaired> {
        validate_all(networks, ports)?;
        let mut rep = Repaired::default();
        if networks.is_empty() && ports.is_empty() {
            return Ok(rep);
        }
        self.transact(&Family::BOTH, &mut |fw, fam, e| {
            repair::family(&fw.names, e, fam, (networks, ports), &mut rep);
            Ok(())
        })?;
        rep.sort();
        Ok(rep)
    }
}
