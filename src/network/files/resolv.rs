//! `/etc/resolv.conf`: [`ResolvConf`] and the user's settings ([`DnsConfig`]).

use std::fmt;
use std::fs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use super::name::{check_hosts_name, dns_name_problem};
use crate::error::{Error, Result};

/// Docker's IPv4 nameservers when the host's file leaves none (Google Public DNS).
pub const DEFAULT_NAMESERVERS_V4: [Ipv4Addr; 2] =
    [Ipv4Addr::new(8, 8, 8, 8), Ipv4Addr::new(8, 8, 4, 4)];
/// Docker's IPv6 nameservers when the host's file leaves none, for a container with IPv6.
pub const DEFAULT_NAMESERVERS_V6: [Ipv6Addr; 2] = [
    Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888),
    Ipv6Addr::new(0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844),
];
/// The host's `/etc/resolv.conf`.
pub const HOST_RESOLV_CONF: &str = "/etc/resolv.conf";
/// systemd-resolved's list of the real upstream servers, which Docker reads instead of
/// [`HOST_RESOLV_CONF`] when that names only the local stub `127.0.0.53`.
pub const SYSTEMD_RESOLVED_UPSTREAM: &str = "/run/systemd/resolve/resolv.conf";

/// A container's DNS settings: `docker run --dns`, `--dns-search`, `--dns-option`. Each one
/// given replaces the corresponding part of the host's file in
/// [`ResolvConf::for_container`].
///
/// ```
/// use netplumb::network::files::DnsConfig;
/// let dns = DnsConfig::from_flags(&["1.1.1.1"], &["example.com"], &["ndots:2"])?;
/// assert_eq!(dns, DnsConfig::new().nameserver("1.1.1.1".parse().unwrap())
///     .search("example.com").option("ndots:2"));
/// let e = DnsConfig::from_flags(&["dns.google"], &[], &[]).unwrap_err();
/// assert_eq!(e.to_string(), r#"invalid dns "dns.google": not an IP address"#);
/// # Ok::<(), netplumb::Error>(())
/// ```
///
/// With feature `serde`: `{"nameservers": ["1.1.1.1"], "search": ["example.com"],
/// "options": ["ndots:2"]}`, missing lists empty. Like the builder methods, deserializing
/// does not check the values: [`DnsConfig::validate`] does, and so does every use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(default)
)]
pub struct DnsConfig {
    nameservers: Vec<IpAddr>,
    search: Vec<String>,
    options: Vec<String>,
}

impl DnsConfig {
    /// No overrides: everything comes from the host's file.
    pub fn new() -> DnsConfig {
        DnsConfig::default()
    }

    /// Adds a nameserver (`--dns`), used as given (a loopback address means a resolver
    /// inside the container).
    #[must_use]
    #[doc(alias = "dns")]
    pub fn nameserver(mut self, addr: IpAddr) -> DnsConfig {
        self.nameservers.push(addr);
        self
    }

    /// Adds a search domain (`--dns-search`); `.` alone means "no search domains". Checked
    /// by [`DnsConfig::validate`].
    #[must_use]
    #[doc(alias = "dns-search")]
    pub fn search(mut self, domain: impl Into<String>) -> DnsConfig {
        self.search.push(domain.into());
        self
    }

    /// Adds a resolver option (`--dns-option`, such as `ndots:2`). Checked by
    /// [`DnsConfig::validate`].
    #[must_use]
    #[doc(alias = "dns-option")]
    pub fn option(mut self, option: impl Into<String>) -> DnsConfig {
        self.options.push(option.into());
        self
    }

    /// The settings from the flags' values as given on a command line (spaces around each
    /// are ignored); the error names the first bad value and its flag.
    pub fn from_flags(dns: &[&str], dns_search: &[&str], dns_option: &[&str]) -> Result<DnsConfig> {
        let mut out = DnsConfig::new();
        for value in dns {
            let addr = value
                .trim()
                .parse()
                .map_err(|_| Error::invalid("dns", value, "not an IP address"))?;
            out = out.nameserver(addr);
        }
        out.search = dns_search.iter().map(|s| s.trim().to_owned()).collect();
        out.options = dns_option.iter().map(|s| s.trim().to_owned()).collect();
        out.validate()?;
        Ok(out)
    }

    /// Checks the search domains (`.`, or a host name with at least one letter and an
    /// optional final `.`, as Docker's `--dns-search`) and the options (no whitespace or
    /// `#`, which would break the file).
    pub fn validate(&self) -> Result<()> {
        for domain in &self.search {
            check_search_domain(domain)?;
        }
        for option in &self.options {
            check_hosts_name("dns-option", option)?;
        }
        Ok(())
    }

    /// The search domains, without `.` and final dots.
    fn search_domains(&self) -> Vec<String> {
        let domains = self.search.iter().filter(|d| *d != ".");
        domains
            .map(|d| d.strip_suffix('.').unwrap_or(d).to_owned())
            .collect()
    }
}

fn check_search_domain(domain: &str) -> Result<()> {
    if domain == "." {
        return Ok(());
    }
    let name = domain.strip_suffix('.').unwrap_or(domain);
    let problem = dns_name_problem(name)
        .or_else(|| (!name.bytes().any(|b| b.is_ascii_alphabetic())).then_some("has no letter"));
    match problem {
        Some(reason) => Err(Error::invalid("dns-search", domain, reason)),
        None => Ok(()),
    }
}

/// A `resolv.conf`: nameservers, search domains, options and other directives.
///
/// [`ResolvConf::parse`] reads any text without failing, as the C library does: `#` and `;`
/// start comment lines, a later `search` replaces an earlier one, `options` add up,
/// nameserver lines whose address does not parse (such as a link-local address with a
/// `%zone`, which means nothing inside the container) are left out, and other directives
/// (`domain`, `sortlist`, unknown words) are kept as they are. [`ResolvConf::for_container`]
/// derives a container's file from the host's as Docker does, and `Display`/
/// [`ResolvConf::render`] writes `search`, then the nameservers, then `options`, then the
/// other directives.
///
/// ```
/// use netplumb::network::files::{DnsConfig, ResolvConf};
/// let host = ResolvConf::parse("# from DHCP\nnameserver 192.168.1.1\nnameserver 127.0.0.1\nsearch lan\n");
/// let ctr = ResolvConf::for_container(&host, &DnsConfig::new(), false)?;
/// assert_eq!(ctr.render(), "search lan\nnameserver 192.168.1.1\n");
///
/// let dns = DnsConfig::new().search("example.com").option("ndots:2");
/// let ctr = ResolvConf::for_container(&host, &dns, false)?;
/// assert_eq!(ctr.render(), "search example.com\nnameserver 192.168.1.1\noptions ndots:2\n");
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    nameservers: Vec<IpAddr>,
    search: Vec<String>,
    options: Vec<String>,
    other: Vec<String>,
}

impl ResolvConf {
    /// Reads a `resolv.conf` text. Never fails.
    pub fn parse(text: &str) -> ResolvConf {
        let mut rc = ResolvConf::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            let data = line.split('#').next().unwrap_or_default().trim_end();
            let mut words = data.split_whitespace();
            match words.next() {
                Some("nameserver") => rc
                    .nameservers
                    .extend(words.next().and_then(|w| w.parse::<IpAddr>().ok())),
                Some("search") => {
                    rc.search = words.map(str::to_owned).collect();
                    rc.other.retain(|l| !is_domain_line(l));
                }
                Some("options") => rc.options.extend(words.map(str::to_owned)),
                _ => rc.other.push(data.to_owned()),
            }
        }
        rc
    }

    /// Reads and parses the file at `path`.
    pub fn read(path: &Path) -> Result<ResolvConf> {
        let text = fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Ok(ResolvConf::parse(&text))
    }

    /// Reads the host's file as Docker does: [`HOST_RESOLV_CONF`], or
    /// [`SYSTEMD_RESOLVED_UPSTREAM`] when that names only systemd-resolved's stub
    /// `127.0.0.53` and the upstream list exists. Only reads; never writes the host's files.
    pub fn read_host() -> Result<ResolvConf> {
        ResolvConf::read_host_from(
            Path::new(HOST_RESOLV_CONF),
            Path::new(SYSTEMD_RESOLVED_UPSTREAM),
        )
    }

    pub(super) fn read_host_from(etc: &Path, upstream: &Path) -> Result<ResolvConf> {
        let rc = ResolvConf::read(etc)?;
        let stub = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53));
        if rc.nameservers == [stub] && upstream.exists() {
            return ResolvConf::read(upstream);
        }
        Ok(rc)
    }

    /// A container's file from the host's (`host`; [`ResolvConf::default`] if there is
    /// none) and the user's settings, as Docker does:
    ///
    /// - nameservers: the user's, as given; else the host's without loopback addresses
    ///   (`127.0.0.0/8`, `::1`, which are the host's own resolvers and unreachable from the
    ///   container) and, when the container has no IPv6, without IPv6 addresses; if none is
    ///   left, [`DEFAULT_NAMESERVERS_V4`] and, with `ipv6`, [`DEFAULT_NAMESERVERS_V6`];
    /// - search domains: the user's (none for `.`); else the host's;
    /// - options: the user's; else the host's;
    /// - other directives: the host's, without `domain` when the user sets search domains
    ///   (the C library would let a later `domain` line override them).
    ///
    /// Fails if `dns` does not pass [`DnsConfig::validate`].
    pub fn for_container(host: &ResolvConf, dns: &DnsConfig, ipv6: bool) -> Result<ResolvConf> {
        dns.validate()?;
        let nameservers = if dns.nameservers.is_empty() {
            container_nameservers(&host.nameservers, ipv6)
        } else {
            dns.nameservers.clone()
        };
        let (search, other) = if dns.search.is_empty() {
            (host.search.clone(), host.other.clone())
        } else {
            let other = host.other.iter().filter(|l| !is_domain_line(l));
            (dns.search_domains(), other.cloned().collect())
        };
        let options = if dns.options.is_empty() {
            &host.options
        } else {
            &dns.options
        };
        Ok(ResolvConf {
            nameservers,
            search,
            options: options.clone(),
            other,
        })
    }

    /// The nameservers, in order.
    pub fn nameservers(&self) -> &[IpAddr] {
        &self.nameservers
    }

    /// The search domains.
    pub fn search(&self) -> &[String] {
        &self.search
    }

    /// The options (`ndots:2`, `timeout:1`, ...).
    pub fn options(&self) -> &[String] {
        &self.options
    }

    /// The other directives (`domain`, `sortlist`, unknown ones), as read.
    pub fn other(&self) -> &[String] {
        &self.other
    }

    /// The file's text: `search`, `nameserver`..., `options`, then the other directives.
    pub fn render(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ResolvConf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.search.is_empty() {
            writeln!(f, "search {}", self.search.join(" "))?;
        }
        for ns in &self.nameservers {
            writeln!(f, "nameserver {ns}")?;
        }
        if !self.options.is_empty() {
            writeln!(f, "options {}", self.options.join(" "))?;
        }
        self.other.iter().try_for_each(|l| writeln!(f, "{l}"))
    }
}

fn is_domain_line(line: &str) -> bool {
    line.split_whitespace().next() == Some("domain")
}

/// The host's nameservers that a container can use, or Docker's defaults.
fn container_nameservers(host: &[IpAddr], ipv6: bool) -> Vec<IpAddr> {
    let usable = |a: &&IpAddr| !a.to_canonical().is_loopback() && (ipv6 || a.is_ipv4());
    let kept: Vec<IpAddr> = host.iter().filter(usable).copied().collect();
    if !kept.is_empty() {
        return kept;
    }
    let v4 = DEFAULT_NAMESERVERS_V4.map(IpAddr::V4);
    let v6 = DEFAULT_NAMESERVERS_V6.map(IpAddr::V6);
    v4.into_iter()
        .chain(v6.into_iter().filter(|_| ipv6))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The field and value of an `InvalidInput` error.
    fn invalid(e: Error) -> (&'static str, String) {
        match e {
            Error::InvalidInput { field, value, .. } => (field, value),
            other => panic!("expected InvalidInput, got {other:?}"),
        }
    }

    #[test]
    fn resolv_conf_parse_follows_the_c_library() {
        let rc = ResolvConf::parse(
            "# comment\n; also a comment\nnameserver 10.0.0.1 # the router\nnameserver fe80::1%eth0\n\
             nameserver\nnameserver bogus\nsearch a.example b.example\ndomain corp.example\n\
             search c.example\noptions ndots:2\noptions  timeout:1 rotate\nsortlist 10.0.0.0/255.0.0.0\n\
             garbage line\n  nameserver   2001:db8::53\r\n",
        );
        assert_eq!(rc.nameservers(), [ip("10.0.0.1"), ip("2001:db8::53")]);
        assert_eq!(
            rc.search(),
            ["c.example"],
            "a later search replaces the list and the domain"
        );
        assert_eq!(rc.options(), ["ndots:2", "timeout:1", "rotate"]);
        assert_eq!(rc.other(), ["sortlist 10.0.0.0/255.0.0.0", "garbage line"]);
        // `domain` after `search` wins in the C library; it stays after it when rendered.
        let rc = ResolvConf::parse("search a.example\ndomain b.example\n");
        assert_eq!(rc.render(), "search a.example\ndomain b.example\n");
    }

    #[test]
    fn resolv_conf_with_systemd_resolved_stub_gets_dockers_defaults() {
        let host = ResolvConf::parse("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n");
        let v4 = ResolvConf::for_container(&host, &DnsConfig::new(), false).unwrap();
        assert_eq!(
            v4.render(),
            "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\noptions edns0 trust-ad\n"
        );
        let v6 = ResolvConf::for_container(&host, &DnsConfig::new(), true).unwrap();
        assert_eq!(
            v6.render(),
            "search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n\
             nameserver 2001:4860:4860::8888\nnameserver 2001:4860:4860::8844\noptions edns0 trust-ad\n"
        );
        // Every loopback form goes; no file at all gives the defaults too.
        let looped = ResolvConf::parse(
            "nameserver 127.0.0.1\nnameserver 127.1.2.3\nnameserver ::1\nnameserver ::ffff:127.0.0.1\n",
        );
        for host in [looped, ResolvConf::default()] {
            let rc = ResolvConf::for_container(&host, &DnsConfig::new(), false).unwrap();
            assert_eq!(rc.render(), "nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
        }
    }

    #[test]
    fn resolv_conf_keeps_real_nameservers() {
        let host = ResolvConf::parse(
            "nameserver 127.0.0.53\nnameserver 192.168.1.1\nnameserver 2001:db8::53\ndomain lan\n",
        );
        let v4 = ResolvConf::for_container(&host, &DnsConfig::new(), false).unwrap();
        assert_eq!(v4.render(), "nameserver 192.168.1.1\ndomain lan\n");
        let v6 = ResolvConf::for_container(&host, &DnsConfig::new(), true).unwrap();
        assert_eq!(v6.nameservers(), [ip("192.168.1.1"), ip("2001:db8::53")]);
        // Only IPv6 servers and no IPv6 in the container: the IPv4 defaults.
        let only6 = ResolvConf::parse("nameserver 2001:db8::53\n");
        let rc = ResolvConf::for_container(&only6, &DnsConfig::new(), false).unwrap();
        assert_eq!(rc.nameservers(), DEFAULT_NAMESERVERS_V4.map(IpAddr::V4));
    }

    #[test]
    fn user_settings_replace_their_part_only() {
        let host = ResolvConf::parse(
            "nameserver 192.168.1.1\nsearch lan\ndomain lan\noptions ndots:1\nsortlist 10.0.0.0\n",
        );
        let dns = DnsConfig::from_flags(&[" 1.1.1.1 ", "127.0.0.1"], &[], &[]).unwrap();
        let rc = ResolvConf::for_container(&host, &dns, false).unwrap();
        assert_eq!(
            rc.render(),
            "search lan\nnameserver 1.1.1.1\nnameserver 127.0.0.1\noptions ndots:1\ndomain lan\nsortlist 10.0.0.0\n",
            "the user's loopback resolver is kept: it is the container's own"
        );
        let dns = DnsConfig::from_flags(
            &[],
            &["example.com.", "corp.example"],
            &["ndots:3", "rotate"],
        )
        .unwrap();
        let rc = ResolvConf::for_container(&host, &dns, false).unwrap();
        assert_eq!(
            rc.render(),
            "search example.com corp.example\nnameserver 192.168.1.1\noptions ndots:3 rotate\nsortlist 10.0.0.0\n"
        );
        let dot = DnsConfig::new().search(".");
        let rc = ResolvConf::for_container(&host, &dot, false).unwrap();
        assert_eq!(
            rc.render(),
            "nameserver 192.168.1.1\noptions ndots:1\nsortlist 10.0.0.0\n"
        );
        // Without a host file.
        let dns = DnsConfig::new()
            .nameserver(ip("9.9.9.9"))
            .search("example.com");
        let rc = ResolvConf::for_container(&ResolvConf::default(), &dns, true).unwrap();
        assert_eq!(rc.render(), "search example.com\nnameserver 9.9.9.9\n");
    }

    #[test]
    fn dns_settings_are_checked() {
        let cases = [
            ("dns", "8.8.8"),
            ("dns", "dns.google"),
            ("dns", ""),
            ("dns-search", "123.456"),
            ("dns-search", "-bad.example"),
            ("dns-search", "a..b"),
            ("dns-search", "under_score.example"),
            ("dns-search", ""),
            ("dns-option", "nd ots"),
        ];
        for (flag, value) in cases {
            let one: &[&str] = &[value];
            let e = match flag {
                "dns" => DnsConfig::from_flags(one, &[], &[]),
                "dns-search" => DnsConfig::from_flags(&[], one, &[]),
                _ => DnsConfig::from_flags(&[], &[], one),
            };
            assert_eq!(invalid(e.unwrap_err()), (flag, value.to_owned()));
        }
        let bad = DnsConfig::new().search("two words");
        assert_eq!(invalid(bad.validate().unwrap_err()).0, "dns-search");
        assert!(ResolvConf::for_container(&ResolvConf::default(), &bad, false).is_err());
        assert!(DnsConfig::from_flags(
            &["2001:db8::1"],
            &[".", "example.com.", "1.example"],
            &["ndots:2"]
        )
        .is_ok());
    }
}
