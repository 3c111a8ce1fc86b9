//! `/etc/hosts`: [`HostsFile`], its entries ([`HostEntry`]) and `--add-host`
//! ([`parse_add_host`]).

use std::fmt;
use std::net::IpAddr;

use super::name::{check_hosts_name, Hostname};
use crate::error::{Error, Result};

/// One `/etc/hosts` entry: an address and its names, the canonical name first.
///
/// `Display` is the line Docker writes: the address, a tab, the names separated by spaces.
///
/// ```
/// use netplumb::network::files::HostEntry;
/// let e = HostEntry::new("172.18.0.3".parse().unwrap(), &["db", "database"])?;
/// assert_eq!(e.to_string(), "172.18.0.3\tdb database");
/// assert!(HostEntry::new("172.18.0.3".parse().unwrap(), &["two words"]).is_err());
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostEntry {
    addr: IpAddr,
    names: Vec<String>,
}

impl HostEntry {
    /// An entry with at least one name; names with whitespace, `#`, control or non-ASCII
    /// characters are refused (they would change the meaning of the line).
    pub fn new<S: AsRef<str>>(addr: IpAddr, names: &[S]) -> Result<HostEntry> {
        if names.is_empty() {
            return Err(Error::invalid("hosts entry", addr, "has no name"));
        }
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            check_hosts_name("hosts name", name.as_ref())?;
            out.push(name.as_ref().to_owned());
        }
        Ok(HostEntry { addr, names: out })
    }

    /// The address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The names, canonical name first.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The entry on a hosts-file line (`ADDR NAME...`, `#` to the end is a comment), if any.
    fn parse_line(line: &str) -> Option<HostEntry> {
        let data = line.split('#').next().unwrap_or_default();
        let mut words = data.split_whitespace();
        let addr = words.next()?.parse().ok()?;
        let names: Vec<String> = words.map(str::to_owned).collect();
        (!names.is_empty()).then_some(HostEntry { addr, names })
    }

    fn has_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for HostEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}\t{}", self.addr, self.names.join(" "))
    }
}

/// The `--add-host` value that stands for the host's address as seen from the container.
pub const HOST_GATEWAY: &str = "host-gateway";

/// Where an `--add-host` name points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddHostTarget {
    /// A literal address.
    Addr(IpAddr),
    /// `host-gateway`: the caller's host-gateway address(es) (Docker's
    /// `--host-gateway-ip`, by default the default bridge's gateway).
    HostGateway,
}

/// One `--add-host` option, from [`parse_add_host`].
///
/// `Display` is Docker's normalised form, `NAME:ADDR` without brackets.
///
/// With feature `serde`: that form, `"db:172.18.0.3"`, `"gw:host-gateway"`; deserializing
/// parses it with [`parse_add_host`], so a bad name or address is an error.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddHost {
    name: String,
    target: AddHostTarget,
}

impl AddHost {
    /// The host name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The address, or the host-gateway placeholder.
    pub fn target(&self) -> AddHostTarget {
        self.target
    }

    /// The hosts entries for this option: one for a literal address; one per address in
    /// `host_gateway` for `host-gateway` (an error if there is none, as Docker's "unable to
    /// derive the IP value for host-gateway").
    pub fn resolve(&self, host_gateway: &[IpAddr]) -> Result<Vec<HostEntry>> {
        let addrs = match self.target {
            AddHostTarget::Addr(addr) => vec![addr],
            AddHostTarget::HostGateway if host_gateway.is_empty() => {
                return Err(Error::invalid(
                    "add-host address",
                    HOST_GATEWAY,
                    "no host-gateway address is configured",
                ))
            }
            AddHostTarget::HostGateway => host_gateway.to_vec(),
        };
        let entry = |addr| HostEntry {
            addr,
            names: vec![self.name.clone()],
        };
        Ok(addrs.into_iter().map(entry).collect())
    }
}

impl fmt::Display for AddHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.target {
            AddHostTarget::Addr(addr) => write!(f, "{}:{addr}", self.name),
            AddHostTarget::HostGateway => write!(f, "{}:{HOST_GATEWAY}", self.name),
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for AddHost {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for AddHost {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let spec = <String as serde::Deserialize>::deserialize(d)?;
        parse_add_host(&spec).map_err(serde::de::Error::custom)
    }
}

/// Parses an `--add-host` value as Docker does: `NAME:ADDR` or `NAME=ADDR`, split at the
/// first `=` if there is one, else at the first `:` (so `name:::1` and `name:2001:db8::1`
/// are IPv6). The address may be in brackets (`name:[::1]`, `name=[1.2.3.4]`) or be
/// `host-gateway` ([`AddHostTarget::HostGateway`]); spaces around it are ignored.
///
/// Errors are [`Error::InvalidInput`] whose field names the bad part: `add-host` (no
/// separator), `add-host name`, or `add-host address`.
///
/// ```
/// use netplumb::network::files::{parse_add_host, AddHostTarget};
/// let h = parse_add_host("www.example.com:1.1.1.1")?;
/// assert_eq!(h.name(), "www.example.com");
/// assert_eq!(h.target(), AddHostTarget::Addr("1.1.1.1".parse().unwrap()));
/// assert_eq!(parse_add_host("v6=[2001:db8::1]")?.to_string(), "v6:2001:db8::1");
/// assert_eq!(parse_add_host("gw:host-gateway")?.target(), AddHostTarget::HostGateway);
/// let e = parse_add_host("web:1.2.3").unwrap_err();
/// assert_eq!(e.to_string(), r#"invalid add-host address "1.2.3": not an IP address or host-gateway"#);
/// # Ok::<(), netplumb::Error>(())
/// ```
pub fn parse_add_host(spec: &str) -> Result<AddHost> {
    let Some((name, value)) = spec.split_once('=').or_else(|| spec.split_once(':')) else {
        return Err(Error::invalid(
            "add-host",
            spec,
            "expected NAME:ADDR or NAME=ADDR",
        ));
    };
    if name.contains(':') {
        return Err(Error::invalid("add-host name", name, "contains ':'"));
    }
    check_hosts_name("add-host name", name)?;
    let value = value.trim();
    let target = if value == HOST_GATEWAY {
        AddHostTarget::HostGateway
    } else {
        let bracketed = value.strip_prefix('[').and_then(|v| v.strip_suffix(']'));
        let bare = bracketed.filter(|v| !v.is_empty()).unwrap_or(value);
        let addr = bare.trim().parse().map_err(|_| {
            Error::invalid(
                "add-host address",
                bare,
                "not an IP address or host-gateway",
            )
        })?;
        AddHostTarget::Addr(addr)
    };
    Ok(AddHost {
        name: name.to_owned(),
        target,
    })
}

/// Docker's first `/etc/hosts` line.
const LOCALHOST_V4: &str = "127.0.0.1\tlocalhost";
/// Docker's IPv6 lines, verbatim (`fe00::0`, `ff00::0`, as Docker writes them).
const LOCALHOST_V6: [&str; 5] = [
    "::1\tlocalhost ip6-localhost ip6-loopback",
    "fe00::0\tip6-localnet",
    "ff00::0\tip6-mcastprefix",
    "ff02::1\tip6-allnodes",
    "ff02::2\tip6-allrouters",
];
/// The comment line before the peers: [`HostsFile::parse`] uses it to find them again.
pub(super) const PEERS_MARKER: &str = "# peers on shared networks (netplumb)";

/// One line of a hosts file: its text, verbatim, and the entry on it, if there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    text: String,
    entry: Option<HostEntry>,
}

impl Line {
    fn parse(text: &str) -> Line {
        Line {
            text: text.to_owned(),
            entry: HostEntry::parse_line(text),
        }
    }

    fn entry(entry: HostEntry) -> Line {
        Line {
            text: entry.to_string(),
            entry: Some(entry),
        }
    }

    /// A peer's line: an entry whose canonical name is `name`.
    fn is_peer(&self, name: &str) -> bool {
        self.entry.as_ref().is_some_and(|e| e.names[0] == name)
    }
}

/// A container's `/etc/hosts`, in Docker's order:
///
/// 1. `127.0.0.1 localhost`, then the IPv6 lines (`::1 localhost ip6-localhost
///    ip6-loopback`, `fe00::0 ip6-localnet`, `ff00::0 ip6-mcastprefix`, `ff02::1
///    ip6-allnodes`, `ff02::2 ip6-allrouters`);
/// 2. the `--add-host` entries ([`HostsFile::add_host`]);
/// 3. the container's own addresses → its FQDN, its short name if the FQDN has a dot, and
///    its aliases ([`HostsFile::addr`], [`HostsFile::hostname`], [`HostsFile::domainname`],
///    [`HostsFile::alias`]);
/// 4. after the comment line `# peers on shared networks (netplumb)`, the peers on the
///    container's user-defined networks ([`HostsFile::set_peer`]), so that they resolve
///    each other by name.
///
/// [`HostsFile::parse`] reads a file back without failing on any input: every line is kept
/// as it was (comments, blank lines, spacing, garbage), and the peers are found again after
/// the comment line, so that a network layer can read a container's file, set or remove a
/// peer, and write it back. The builder setters on a parsed file add their lines after the
/// parsed ones.
///
/// ```
/// use netplumb::network::files::{HostEntry, HostsFile, Hostname};
/// let mut hosts = HostsFile::new()
///     .add_host(HostEntry::new("1.1.1.1".parse().unwrap(), &["www.example.com"])?)
///     .hostname(Hostname::new("3f2a1c0b9d8e")?)
///     .addr("172.17.0.2".parse().unwrap());
/// assert_eq!(hosts.render(), "127.0.0.1\tlocalhost\n\
///     ::1\tlocalhost ip6-localhost ip6-loopback\n\
///     fe00::0\tip6-localnet\n\
///     ff00::0\tip6-mcastprefix\n\
///     ff02::1\tip6-allnodes\n\
///     ff02::2\tip6-allrouters\n\
///     1.1.1.1\twww.example.com\n\
///     172.17.0.2\t3f2a1c0b9d8e\n");
///
/// hosts.set_peer("db", &[], &["172.17.0.3".parse().unwrap()])?;
/// let mut again = HostsFile::parse(&hosts.render());
/// assert_eq!(again.addrs_of("db"), ["172.17.0.3".parse::<std::net::IpAddr>().unwrap()]);
/// assert!(again.remove_peer("db"));
/// assert!(again.addrs_of("db").is_empty());
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostsFile {
    /// Write Docker's localhost lines (not for a parsed file, whose lines are in `parsed`).
    defaults: bool,
    ipv6: bool,
    parsed: Vec<Line>,
    extra: Vec<HostEntry>,
    hostname: Option<Hostname>,
    domainname: Option<Hostname>,
    aliases: Vec<String>,
    addrs: Vec<IpAddr>,
    peers: Vec<Line>,
}

impl Default for HostsFile {
    fn default() -> HostsFile {
        HostsFile::new()
    }
}

impl HostsFile {
    /// Docker's localhost and IPv6 lines, and nothing else yet.
    pub fn new() -> HostsFile {
        HostsFile {
            defaults: true,
            ipv6: true,
            parsed: Vec::new(),
            extra: Vec::new(),
            hostname: None,
            domainname: None,
            aliases: Vec::new(),
            addrs: Vec::new(),
            peers: Vec::new(),
        }
    }

    /// Whether the container has IPv6 (default `true`). Without it, the file has only the
    /// IPv4 localhost line and no IPv6 entry from `--add-host`, the container's own
    /// addresses or its peers, as Docker writes it for a container whose IPv6 is disabled.
    /// Lines that [`HostsFile::parse`] read before the peers are kept as they are.
    #[must_use]
    pub fn ipv6(mut self, enabled: bool) -> HostsFile {
        self.ipv6 = enabled;
        self
    }

    /// Adds an `--add-host` entry (see [`parse_add_host`] and [`AddHost::resolve`]).
    #[must_use]
    #[doc(alias = "add-host")]
    pub fn add_host(mut self, entry: HostEntry) -> HostsFile {
        self.extra.push(entry);
        self
    }

    /// The container's host name (`--hostname`), written for each of its addresses.
    #[must_use]
    pub fn hostname(mut self, hostname: Hostname) -> HostsFile {
        self.hostname = Some(hostname);
        self
    }

    /// The container's domain name (`--domainname`): the FQDN is `HOSTNAME.DOMAINNAME`.
    #[must_use]
    pub fn domainname(mut self, domainname: Hostname) -> HostsFile {
        self.domainname = Some(domainname);
        self
    }

    /// One of the container's own addresses (one per network, IPv4 and IPv6), in order.
    #[must_use]
    pub fn addr(mut self, addr: IpAddr) -> HostsFile {
        if !self.addrs.contains(&addr) {
            self.addrs.push(addr);
        }
        self
    }

    /// Another name for the container on its own lines (its container name, a network
    /// alias). Fails on a name that would break the line (whitespace, `#`, control or
    /// non-ASCII characters).
    pub fn alias(mut self, name: &str) -> Result<HostsFile> {
        check_hosts_name("alias", name)?;
        if !self.aliases.iter().any(|a| a == name) {
            self.aliases.push(name.to_owned());
        }
        Ok(self)
    }

    /// Sets the lines of the peer `name` (a container on one of this container's networks):
    /// one line per address, `ADDR\tNAME ALIASES...`. Replaces the peer's earlier lines in
    /// place, or adds them after the other peers. With no address (left), the peer is
    /// removed. Names are checked as by [`HostEntry::new`].
    pub fn set_peer(&mut self, name: &str, aliases: &[&str], addrs: &[IpAddr]) -> Result<()> {
        check_hosts_name("peer name", name)?;
        let mut names = vec![name.to_owned()];
        for alias in aliases {
            check_hosts_name("peer alias", alias)?;
            if !names.iter().any(|n| n == alias) {
                names.push((*alias).to_owned());
            }
        }
        let at = self.peers.iter().position(|l| l.is_peer(name));
        self.remove_peer(name);
        let at = at.unwrap_or(self.peers.len());
        let mut lines = Vec::with_capacity(addrs.len());
        for (i, &addr) in addrs.iter().enumerate() {
            if !addrs[..i].contains(&addr) {
                let names = names.clone();
                lines.push(Line::entry(HostEntry { addr, names }));
            }
        }
        self.peers.splice(at..at, lines);
        Ok(())
    }

    /// Removes the lines of the peer `name`; `false` if it had none.
    pub fn remove_peer(&mut self, name: &str) -> bool {
        let before = self.peers.len();
        self.peers.retain(|l| !l.is_peer(name));
        self.peers.len() != before
    }

    /// Reads a hosts file. Never fails: lines that are not entries are kept as they are.
    pub fn parse(text: &str) -> HostsFile {
        let mut file = HostsFile {
            defaults: false,
            ..HostsFile::new()
        };
        let mut in_peers = false;
        let body = text.strip_suffix('\n').unwrap_or(text);
        for raw in body.split('\n').filter(|_| !text.is_empty()) {
            if !in_peers && raw.trim_end() == PEERS_MARKER {
                in_peers = true;
            } else if in_peers {
                file.peers.push(Line::parse(raw));
            } else {
                file.parsed.push(Line::parse(raw));
            }
        }
        file
    }

    /// The file's entries, in file order.
    pub fn entries(&self) -> Vec<HostEntry> {
        self.lines().into_iter().filter_map(|l| l.entry).collect()
    }

    /// The peers' entries, in file order.
    pub fn peers(&self) -> Vec<HostEntry> {
        self.visible_peers()
            .filter_map(|l| l.entry.clone())
            .collect()
    }

    /// The addresses `name` resolves to through this file (names compare as the C library
    /// does, ignoring ASCII case), in file order.
    pub fn addrs_of(&self, name: &str) -> Vec<IpAddr> {
        let found = self.entries().into_iter().filter(|e| e.has_name(name));
        found.map(|e| e.addr).collect()
    }

    /// The file's text, one `\n`-terminated line each.
    pub fn render(&self) -> String {
        self.to_string()
    }

    /// Whether a generated line stays (IPv6 entries go when the container has no IPv6).
    fn keeps(&self, entry: Option<&HostEntry>) -> bool {
        self.ipv6 || entry.map_or(true, |e| e.addr.is_ipv4())
    }

    /// The peer section's lines that are written.
    fn visible_peers(&self) -> impl Iterator<Item = &Line> {
        self.peers.iter().filter(|l| self.keeps(l.entry.as_ref()))
    }

    /// The container's own names: the FQDN, the short name if the FQDN has a dot, aliases.
    fn own_names(&self) -> Vec<String> {
        let Some(host) = &self.hostname else {
            return Vec::new();
        };
        let fqdn = match &self.domainname {
            Some(domain) => format!("{host}.{domain}"),
            None => host.to_string(),
        };
        let mut names = vec![fqdn];
        if let Some((short, _)) = names[0].split_once('.') {
            names.push(short.to_owned());
        }
        for alias in &self.aliases {
            if !names.contains(alias) {
                names.push(alias.clone());
            }
        }
        names
    }

    /// Every line of the file, in order.
    fn lines(&self) -> Vec<Line> {
        let mut out = Vec::new();
        if self.defaults {
            out.push(Line::parse(LOCALHOST_V4));
            if self.ipv6 {
                out.extend(LOCALHOST_V6.iter().map(|l| Line::parse(l)));
            }
        }
        out.extend(self.parsed.iter().cloned());
        let own = self.own_names();
        let own = self
            .addrs
            .iter()
            .filter(|_| !own.is_empty())
            .map(|&addr| HostEntry {
                addr,
                names: own.clone(),
            });
        let generated = self.extra.iter().cloned().chain(own);
        out.extend(generated.filter(|e| self.keeps(Some(e))).map(Line::entry));
        let peers: Vec<Line> = self.visible_peers().cloned().collect();
        if !peers.is_empty() {
            out.push(Line::parse(PEERS_MARKER));
            out.extend(peers);
        }
        out
    }
}

impl fmt::Display for HostsFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.lines()
            .iter()
            .try_for_each(|l| writeln!(f, "{}", l.text))
    }
}
