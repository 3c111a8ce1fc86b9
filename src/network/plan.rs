//! Dry runs: what [`Host::create_network`] and [`Host::connect`] would do, as `ip`, `nft`,
//! `sysctl` and IPAM lines, without changing anything.

use super::config::{NetworkConfig, DEFAULT_BRIDGE, DEFAULT_NETWORK};
use super::container::Container;
use super::host::Host;
use crate::error::Result;
use crate::firewall::{NetworkRules, DEFAULT_TABLE};
use crate::link::{Bridge, BridgePort, Veth};
use crate::request::Plan;
use crate::sysctl::Sysctl;

fn rule_lines(r: &NetworkRules, out: &mut Vec<String>) {
    let t = DEFAULT_TABLE;
    for s in r.subnets() {
        let fam = if s.addr().is_ipv4() { "ip" } else { "ip6" };
        out.push(format!(
            "nft add rule {fam} {t} postrouting {fam} saddr {s} oifname != \"{}\" masquerade",
            r.bridge()
        ));
        out.push(format!("nft add rule {fam} {t} postrouting ct status dnat {fam} saddr {s} {fam} daddr {s} masquerade"));
        out.push(format!(
            "nft add rule {fam} {t} forward oifname \"{}\" ct state established,related accept",
            r.bridge()
        ));
        out.push(format!(
            "nft add rule {fam} {t} forward iifname \"{0}\" oifname \"{0}\" accept|drop (icc)",
            r.bridge()
        ));
        out.push(format!(
            "nft add rule {fam} {t} forward iifname \"{}\" oifname @bridges drop",
            r.bridge()
        ));
    }
}

impl Host {
    /// The changes [`Host::create_network`] would make, one line each. Nothing is applied.
    ///
    /// ```no_run
    /// # let mut host = netplumb::network::Host::open_in(&netplumb::Netns::current()?, "/var/lib/netplumb")?;
    /// for line in host.plan_create(&netplumb::network::NetworkConfig::new("mybr0"))? {
    ///     println!("{line}");
    /// }
    /// # Ok::<(), netplumb::Error>(())
    /// ```
    pub fn plan_create(&mut self, cfg: &NetworkConfig) -> Result<Vec<String>> {
        cfg.validate()?;
        let mut out = Vec::new();
        let subnet = |v4: bool| cfg.subnets.iter().find(|s| s.addr().is_ipv4() == v4);
        let describe = |v4: bool| match subnet(v4) {
            Some(s) => s.to_string(),
            None => "the first free subnet of the address pools".into(),
        };
        out.push(format!(
            "ipam: create network {} with {}",
            cfg.name,
            describe(true)
        ));
        if cfg.ipv6 {
            out.push(format!(
                "ipam: create network {}/v6 with {}",
                cfg.name,
                describe(false)
            ));
        }
        let bridge = cfg.bridge.clone().unwrap_or_else(|| {
            if cfg.name == DEFAULT_NETWORK {
                DEFAULT_BRIDGE.into()
            } else {
                "br-<id>".into()
            }
        });
        let mut plan = Plan::new();
        if self.rtnl.link(bridge.as_str()).is_err() {
            let mut b = Bridge::new(&bridge)
                .stp(false)
                .multicast_snooping(cfg.multicast_snooping)
                .up();
            if let Some(m) = cfg.mtu {
                b = b.mtu(m);
            }
            plan.push(b)?;
        } else {
            out.push(format!("reuse bridge {bridge}"));
        }
        out.extend(plan.lines().iter().cloned());
        out.push(format!("ip address add <gateway>/<prefix> dev {bridge}"));
        if !cfg.internal && !Sysctl::IpForward.get_bool(&self.netns)? {
            out.push("sysctl -w net.ipv4.ip_forward=1".into());
        }
        if !cfg.internal && cfg.ipv4 {
            out.push(format!("sysctl -w net.ipv4.conf.{bridge}.route_localnet=1"));
        }
        let mut r = NetworkRules::new(&cfg.name, &bridge)
            .masquerade(cfg.masquerade)
            .icc(cfg.icc)
            .internal(cfg.internal)
            .loopback_ports(!cfg.internal);
        for s in &cfg.subnets {
            r = r.subnet(*s);
        }
        rule_lines(&r, &mut out);
        Ok(out)
    }

    /// The changes [`Host::connect`] would make, one line each. Nothing is applied.
    pub fn plan_connect(&mut self, network: &str, ctr: &Container) -> Result<Vec<String>> {
        let net = self.network(network)?;
        let mut out = vec![format!(
            "ipam: allocate {} on {network} for {}/{}",
            ctr.ip
                .map_or("the next free address".into(), |i| i.to_string()),
            ctr.id,
            ctr.ifname
        )];
        let veth = "veth<7 hex>";
        let mut plan = Plan::new();
        plan.push(
            Veth::new("vethXXXXXXX")
                .up()
                .peer(&ctr.ifname)
                .peer_netns(&ctr.netns),
        )?;
        out.extend(plan.lines().iter().map(|l| l.replace("vethXXXXXXX", veth)));
        out.push(format!("ip link set dev {veth} master {} up", net.bridge));
        out.push(
            BridgePort::new("vethXXXXXXX")
                .hairpin(true)
                .to_string()
                .replace("vethXXXXXXX", veth),
        );
        out.push(format!(
            "ip -n {} link set lo up; ip -n {0} link set {} up",
            ctr.netns, ctr.ifname
        ));
        out.push(format!(
            "ip -n {} address add <address>/{} dev {}",
            ctr.netns,
            net.subnets.first().map_or(0, |s| s.prefix_len()),
            ctr.ifname
        ));
        if !net.internal {
            for g in &net.gateways {
                out.push(format!(
                    "ip -n {} route add default via {g} dev {}",
                    ctr.netns, ctr.ifname
                ));
            }
        }
        for p in &ctr.ports {
            out.push(format!(
                "ports: publish {p}; nft add element ip {DEFAULT_TABLE} ports {{ ... }}"
            ));
        }
        if ctr.files.is_some() {
            out.push("write hostname, hosts, resolv.conf".into());
        }
        Ok(out)
    }
}
