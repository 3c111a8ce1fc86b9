//! The rule model rendered in Docker's iptables layout, as the rule text `iptables-save`
//! prints after `-A CHAIN` (so that what we write and what we read back look alike).
//! Pure: no processes, no I/O.

use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::firewall::rule::{NetworkRules, PortRule, Proto};

/// An address family: `iptables` or `ip6tables`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    pub(super) const BOTH: [Family; 2] = [Family::V4, Family::V6];

    pub(super) fn of(ip: &IpAddr) -> Family {
        if ip.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// The name `nft` and [`FirewallState::families`](crate::firewall::FirewallState) use.
    pub(super) fn name(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    fn loopback(self) -> &'static str {
        match self {
            Family::V4 => "127.0.0.0/8",
            Family::V6 => "::1/128",
        }
    }
}

/// The two tables we write to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Table {
    Nat,
    Filter,
}

impl Table {
    pub(super) const BOTH: [Table; 2] = [Table::Nat, Table::Filter];

    pub(super) fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
        }
    }
}

/// Where a new rule goes in its chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// At the end (`-A`).
    Append,
    /// First (`-I CHAIN 1`): published-port accepts, ahead of the networks' final drops.
    Top,
    /// In `FORWARD`, right after our two jumps (Docker inserts its rules at the top too,
    /// ahead of other tools' rules and policies).
    AfterJumps,
}

/// One rule to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Rule {
    pub table: Table,
    pub chain: String,
    pub spec: String,
    pub place: Place,
}

/// Our chain names for one prefix (`DOCKER`, `DOCKER-USER`, ...) and the head of our
/// rule comments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Names {
    /// `P` in nat (the DNATs) and in filter (published ports, links, final drops).
    pub docker: String,
    pub stage1: String,
    pub stage2: String,
    /// The users' chain, first in `FORWARD`; we create it and never write into it.
    pub user: String,
    /// `netplumb`, or `netplumb/PREFIX` for another prefix than `DOCKER`.
    pub head: String,
}

impl Names {
    pub(super) fn new(prefix: &str) -> Names {
        Names {
            docker: prefix.to_owned(),
            stage1: format!("{prefix}-ISOLATION-STAGE-1"),
            stage2: format!("{prefix}-ISOLATION-STAGE-2"),
            user: format!("{prefix}-USER"),
            head: if prefix == "DOCKER" {
                "netplumb".to_owned()
            } else {
                format!("netplumb/{prefix}")
            },
        }
    }

    /// Our chains of `table`, the users' chain last.
    pub(super) fn chains(&self, table: Table) -> Vec<&str> {
        match table {
            Table::Nat => vec![&self.docker],
            Table::Filter => vec![&self.docker, &self.stage1, &self.stage2, &self.user],
        }
    }

    /// The comment of a network's rules: its name and a hash of its settings (its
    /// enforced endpoints included, which are rules here), so that a re-apply with the
    /// same settings is recognised and one with new settings replaces.
    pub(super) fn net_tag(&self, net: &NetworkRules) -> String {
        format!("{} net={} h={:016x}", self.head, net.name, net.full_hash())
    }

    /// The comment of a published port's rules.
    pub(super) fn port_tag(&self, p: &PortRule) -> String {
        format!("{} net={} port={}", self.head, p.network, port_key(p))
    }

    /// Reads one of our comments.
    pub(super) fn parse_tag<'a>(&self, comment: &'a str) -> Option<Tag<'a>> {
        let rest = comment
            .strip_prefix(self.head.as_str())?
            .strip_prefix(" net=")?;
        let (network, what) = rest.split_once(' ')?;
        if let Some(h) = what.strip_prefix("h=") {
            Some(Tag::Net { network, hash: h })
        } else {
            what.strip_prefix("port=")
                .map(|key| Tag::Port { network, key })
        }
    }
}

/// What one of our comments says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag<'a> {
    /// A rule of network `network`'s settings.
    Net { network: &'a str, hash: &'a str },
    /// A rule of a port published on `network`.
    Port { network: &'a str, key: &'a str },
}

impl<'a> Tag<'a> {
    pub(super) fn network(&self) -> &'a str {
        match self {
            Tag::Net { network, .. } | Tag::Port { network, .. } => network,
        }
    }
}

/// A port's identity: `tcp/*:8080`, `udp/192.0.2.1:53`, `tcp/[2001:db8::1]:80`.
pub(super) fn port_key(p: &PortRule) -> String {
    let host = match p.host_ip {
        None => "*".to_owned(),
        Some(IpAddr::V6(a)) => format!("[{a}]"),
        Some(a) => a.to_string(),
    };
    format!("{}/{host}:{}", p.proto, p.host_port)
}

/// The inverse of [`port_key`].
pub(super) fn parse_port_key(key: &str) -> Option<(Proto, Option<IpAddr>, u16)> {
    let (proto, rest) = key.split_once('/')?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = match host {
        "*" => None,
        h => Some(
            h.trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .ok()?,
        ),
    };
    Some((proto.parse().ok()?, host, port.parse().ok()?))
}

/// `10.0.0.2:80` or `[fd00::2]:80`, as `--to-destination` takes and prints it.
pub(super) fn dnat_target(p: &PortRule) -> String {
    match p.container_ip {
        IpAddr::V6(a) => format!("[{a}]:{}", p.container_port),
        a => format!("{a}:{}", p.container_port),
    }
}

fn host(ip: &IpAddr) -> IpNet {
    IpNet::from(*ip)
}

/// The shared jumps and the isolation bypass, as (table, chain, spec) in their final order.
pub(super) struct Skeleton {
    pub prerouting: String,
    pub output: String,
    pub user: String,
    pub stage1: String,
    pub dnat_return: String,
}

/// The skeleton of family `fam`.
///
/// `PREROUTING` skips 127.0.0.0/8 (`::1`): a loopback destination arriving from outside
/// is never DNATed (CVE-2020-8558), which Docker's plain `-m addrtype --dst-type LOCAL`
/// jump allows. The isolation stage returns at once for DNATed connections, so a port
/// published on one network stays reachable through a host address from another.
pub(super) fn skeleton(n: &Names, fam: Family) -> Skeleton {
    let lo = fam.loopback();
    Skeleton {
        prerouting: format!("! -d {lo} -m addrtype --dst-type LOCAL -j {}", n.docker),
        output: format!("! -d {lo} -m addrtype --dst-type LOCAL -j {}", n.docker),
        user: format!("-j {}", n.user),
        stage1: format!("-j {}", n.stage1),
        dnat_return: "-m conntrack --ctstate DNAT -j RETURN".to_owned(),
    }
}

struct Out<'a> {
    rules: Vec<Rule>,
    tag: &'a str,
}

impl Out<'_> {
    /// Adds `MATCHES -m comment --comment "TAG" -j TARGET`.
    fn add(&mut self, (table, chain, place): (Table, &str, Place), matches: &str, target: &str) {
        let mut spec = String::with_capacity(matches.len() + target.len() + self.tag.len() + 32);
        if !matches.is_empty() {
            spec.push_str(matches);
            spec.push(' ');
        }
        let _ = write!(spec, "-m comment --comment \"{}\" -j {target}", self.tag);
        self.rules.push(Rule {
            table,
            chain: chain.to_owned(),
            spec,
            place,
        });
    }
}

/// The rules of network `net` in family `fam` (none when it has no subnet there).
pub(super) fn network(n: &Names, net: &NetworkRules, fam: Family) -> Vec<Rule> {
    let subnets: Vec<&IpNet> = net
        .subnets
        .iter()
        .filter(|s| Family::of(&s.addr()) == fam)
        .collect();
    if subnets.is_empty() {
        return Vec::new();
    }
    let tag = n.net_tag(net);
    let mut o = Out {
        rules: Vec::new(),
        tag: &tag,
    };
    let br = net.bridge.as_str();
    let post = (Table::Nat, "POSTROUTING", Place::Append);
    if !net.internal {
        let snat = net.snat.iter().find(|a| Family::of(a) == fam);
        for s in &subnets {
            match snat {
                Some(a) => o.add(
                    post,
                    &format!("-s {s} ! -o {br}"),
                    &format!("SNAT --to-source {a}"),
                ),
                None if net.masquerade => o.add(post, &format!("-s {s} ! -o {br}"), "MASQUERADE"),
                None => {}
            }
        }
    }
    if net.loopback && fam == Family::V4 {
        // The host reaching a port published on 127.0.0.1 (needs route_localnet).
        o.add(
            post,
            &format!("-s 127.0.0.0/8 -o {br} -m conntrack --ctstate DNAT"),
            "MASQUERADE",
        );
        let out = (Table::Nat, "OUTPUT", Place::Append);
        o.add(
            out,
            "-d 127.0.0.0/8 -m addrtype --dst-type LOCAL",
            &n.docker,
        );
        // route_localnet on the bridge must not open the host's own 127.0.0.1 services
        // to the containers (CVE-2020-8558): a new connection to 127.0.0.0/8 coming in
        // on the bridge is dropped; the replies of the host's DNATed ones pass.
        o.add(
            (Table::Filter, "INPUT", Place::Top),
            &format!("-d 127.0.0.0/8 -i {br} -m conntrack ! --ctstate RELATED,ESTABLISHED"),
            "DROP",
        );
    }
    let fwd = (Table::Filter, "FORWARD", Place::AfterJumps);
    // Anti-spoofing (ICC off): a registered address must come in on its own bridge port.
    // First, so that not even an established connection of another container passes.
    for (dev, addr) in net
        .enforced_endpoints()
        .iter()
        .filter(|(_, a)| Family::of(a) == fam)
    {
        o.add(
            fwd,
            &format!(
                "-s {} -m physdev --physdev-is-in ! --physdev-in {dev}",
                host(addr)
            ),
            "DROP",
        );
    }
    o.add(
        fwd,
        &format!("-o {br} -m conntrack --ctstate INVALID"),
        "DROP",
    );
    o.add(
        fwd,
        &format!("-i {br} -m conntrack --ctstate INVALID"),
        "DROP",
    );
    o.add(
        fwd,
        &format!("-o {br} -m conntrack --ctstate RELATED,ESTABLISHED"),
        "ACCEPT",
    );
    o.add(fwd, &format!("-o {br}"), &n.docker);
    o.add(
        fwd,
        &format!("-i {br} ! -o {br}"),
        if net.internal { "DROP" } else { "ACCEPT" },
    );
    o.add(
        fwd,
        &format!("-i {br} -o {br}"),
        if net.icc { "ACCEPT" } else { "DROP" },
    );
    let docker = (Table::Filter, n.docker.as_str(), Place::Append);
    for l in net.links.iter().filter(|l| Family::of(&l.from) == fam) {
        let (p, port) = (l.proto, l.port);
        let (from, to) = (host(&l.from), host(&l.to));
        o.add(
            docker,
            &format!("-s {from} -d {to} -i {br} -o {br} -p {p} -m {p} --dport {port}"),
            "ACCEPT",
        );
        o.add(
            docker,
            &format!("-s {to} -d {from} -i {br} -o {br} -p {p} -m {p} --sport {port}"),
            "ACCEPT",
        );
    }
    o.add(docker, &format!("! -i {br} -o {br}"), "DROP");
    o.add(
        (Table::Filter, &n.stage1, Place::Append),
        &format!("-i {br} ! -o {br}"),
        &n.stage2,
    );
    o.add(
        (Table::Filter, &n.stage2, Place::Append),
        &format!("-o {br}"),
        "DROP",
    );
    o.rules
}

/// The three rules of a published port: the DNAT, the hairpin masquerade (a container
/// reaching its own published port) and the accept of the DNATed connection.
///
/// Unlike Docker's default rendering, the DNAT has no `! -i BRIDGE` and there is no
/// `-A DOCKER -i BRIDGE -j RETURN`: without a userland proxy, containers reach published
/// ports through a host address by DNAT too (Docker's `--userland-proxy=false` layout).
pub(super) fn port(n: &Names, p: &PortRule) -> Vec<Rule> {
    let tag = n.port_tag(p);
    let mut o = Out {
        rules: Vec::new(),
        tag: &tag,
    };
    let (proto, c) = (p.proto, host(&p.container_ip));
    let dst = p
        .host_ip
        .map(|h| format!("-d {} ", host(&h)))
        .unwrap_or_default();
    let dnat = (Table::Nat, n.docker.as_str(), Place::Append);
    o.add(
        dnat,
        &format!("{dst}-p {proto} -m {proto} --dport {}", p.host_port),
        &format!("DNAT --to-destination {}", dnat_target(p)),
    );
    let hairpin = format!(
        "-s {c} -d {c} -p {proto} -m {proto} --dport {}",
        p.container_port
    );
    o.add(
        (Table::Nat, "POSTROUTING", Place::Append),
        &hairpin,
        "MASQUERADE",
    );
    let accept = format!(
        "-d {c} -p {proto} -m {proto} --dport {} -m conntrack --ctstate DNAT --ctorigdstport {}",
        p.container_port, p.host_port
    );
    o.add((Table::Filter, &n.docker, Place::Top), &accept, "ACCEPT");
    o.rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::firewall::rule::LinkAllow;

    fn specs(rules: &[Rule]) -> Vec<String> {
        rules
            .iter()
            .map(|r| format!("{} -A {} {}", r.table.name(), r.chain, r.spec))
            .collect()
    }

    #[test]
    fn tags_round_trip() {
        let n = Names::new("DOCKER");
        let net = NetworkRules::new("bridge", "docker0").subnet("172.17.0.0/16".parse().unwrap());
        let t = n.net_tag(&net);
        assert!(
            matches!(
                n.parse_tag(&t),
                Some(Tag::Net {
                    network: "bridge",
                    ..
                })
            ),
            "{t}"
        );
        let p = PortRule::new("bridge", Proto::Udp, 53, "fd00::2".parse().unwrap(), 5353)
            .host_ip("::1".parse().unwrap());
        let t = n.port_tag(&p);
        assert_eq!(t, "netplumb net=bridge port=udp/[::1]:53");
        let Some(Tag::Port { key, .. }) = n.parse_tag(&t) else {
            panic!("{t}")
        };
        assert_eq!(parse_port_key(key), Some((Proto::Udp, p.host_ip, 53)));
        assert_eq!(
            Names::new("NP").parse_tag(&t),
            None,
            "another prefix's rules are not ours"
        );
        assert_eq!(
            Names::new("NP").port_tag(&p),
            "netplumb/NP net=bridge port=udp/[::1]:53"
        );
    }

    #[test]
    fn walkthrough_rules() {
        let n = Names::new("DOCKER");
        let net = NetworkRules::new("bridge", "docker0").subnet("172.17.0.0/16".parse().unwrap());
        let r = specs(&network(&n, &net, Family::V4));
        let strip = |s: &str| {
            s.replace(
                &format!(" -m comment --comment \"{}\"", n.net_tag(&net)),
                "",
            )
        };
        let r: Vec<String> = r.iter().map(|s| strip(s)).collect();
        assert_eq!(
            r,
            [
                "nat -A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
                "filter -A FORWARD -o docker0 -m conntrack --ctstate INVALID -j DROP",
                "filter -A FORWARD -i docker0 -m conntrack --ctstate INVALID -j DROP",
                "filter -A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
                "filter -A FORWARD -o docker0 -j DOCKER",
                "filter -A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
                "filter -A FORWARD -i docker0 -o docker0 -j ACCEPT",
                "filter -A DOCKER ! -i docker0 -o docker0 -j DROP",
                "filter -A DOCKER-ISOLATION-STAGE-1 -i docker0 ! -o docker0 -j DOCKER-ISOLATION-STAGE-2",
                "filter -A DOCKER-ISOLATION-STAGE-2 -o docker0 -j DROP",
            ]
        );
        assert!(network(&n, &net, Family::V6).is_empty());
        let p = PortRule::new(
            "bridge",
            Proto::Tcp,
            32768,
            "172.17.0.2".parse().unwrap(),
            80,
        );
        let tag = format!(" -m comment --comment \"{}\"", n.port_tag(&p));
        let r: Vec<String> = specs(&port(&n, &p))
            .iter()
            .map(|s| s.replace(&tag, ""))
            .collect();
        assert_eq!(
            r,
            [
                "nat -A DOCKER -p tcp -m tcp --dport 32768 -j DNAT --to-destination 172.17.0.2:80",
                "nat -A POSTROUTING -s 172.17.0.2/32 -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -j MASQUERADE",
                "filter -A DOCKER -d 172.17.0.2/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate DNAT --ctorigdstport 32768 -j ACCEPT",
            ]
        );
    }

    #[test]
    fn endpoints_guard_their_addresses_with_icc_off() {
        let n = Names::new("DOCKER");
        let net = NetworkRules::new("bridge", "docker0")
            .subnet("172.17.0.0/16".parse().unwrap())
            .subnet("fd00::/64".parse().unwrap())
            .endpoint("veth1", "172.17.0.2".parse().unwrap())
            .endpoint("veth1", "fd00::2".parse().unwrap());
        let icc_on = specs(&network(&n, &net, Family::V4)).join("\n");
        assert!(!icc_on.contains("physdev"), "{icc_on}");
        let net = net.icc(false);
        let v4: Vec<String> = specs(&network(&n, &net, Family::V4))
            .into_iter()
            .filter(|r| r.starts_with("filter -A FORWARD"))
            .collect();
        assert!(
            v4[0].starts_with("filter -A FORWARD -s 172.17.0.2/32 -m physdev --physdev-is-in ! --physdev-in veth1 -m comment"),
            "first, ahead of the established accept: {v4:?}"
        );
        assert!(v4[0].ends_with("-j DROP"), "{v4:?}");
        let v6 = specs(&network(&n, &net, Family::V6)).join("\n");
        assert!(v6.contains("-s fd00::2/128 -m physdev"), "{v6}");
        assert_ne!(
            n.net_tag(&net),
            n.net_tag(&net.clone().endpoint("veth2", "172.17.0.3".parse().unwrap())),
            "the tag follows the endpoints"
        );
    }

    #[test]
    fn links_both_ways_and_ipv6_ports() {
        let n = Names::new("DOCKER");
        let link = LinkAllow {
            from: "172.17.0.3".parse().unwrap(),
            to: "172.17.0.2".parse().unwrap(),
            proto: Proto::Tcp,
            port: 80,
        };
        let net = NetworkRules::new("bridge", "docker0")
            .subnet("172.17.0.0/16".parse().unwrap())
            .icc(false)
            .link(link);
        let r = specs(&network(&n, &net, Family::V4)).join("\n");
        assert!(r.contains("-A DOCKER -s 172.17.0.3/32 -d 172.17.0.2/32 -i docker0 -o docker0 -p tcp -m tcp --dport 80 -m comment"), "{r}");
        assert!(r.contains("-A DOCKER -s 172.17.0.2/32 -d 172.17.0.3/32 -i docker0 -o docker0 -p tcp -m tcp --sport 80 -m comment"), "{r}");
        assert!(
            r.contains("-i docker0 -o docker0 -m comment --comment \"netplumb net=bridge h="),
            "{r}"
        );
        let p = PortRule::new("bridge", Proto::Tcp, 8080, "fd00::2".parse().unwrap(), 80)
            .host_ip("2001:db8::1".parse().unwrap());
        let r = specs(&port(&n, &p)).join("\n");
        assert!(
            r.contains("-A DOCKER -d 2001:db8::1/128 -p tcp -m tcp --dport 8080 -m comment"),
            "{r}"
        );
        assert!(r.contains("-j DNAT --to-destination [fd00::2]:80"), "{r}");
        assert_eq!(
            skeleton(&n, Family::V6).prerouting,
            "! -d ::1/128 -m addrtype --dst-type LOCAL -j DOCKER"
        );
    }
}
