//! `Host::create_network` (`docker network create`): the IPAM networks, the bridge, its
//! addresses, forwarding, `route_localnet` and the firewall rules, all or nothing; and the
//! steps a connect reuses to make a network's bridge again after a reboot.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ipnet::IpNet;

use super::config::{NetworkConfig, DEFAULT_BRIDGE, DEFAULT_NETWORK};
use super::host::Host;
use super::names::ipam_name;
use super::oplog;
use super::random;
use super::state::NetworkInfo;
use crate::addr::Addr;
use crate::error::{Error, Object, Result, ResultExt};
use crate::fault;
use crate::firewall::{self, Firewall};
use crate::ipam::{IpamError, NetworkSpec};
use crate::journal::{atomically, Txn};
use crate::link::{Bridge, LinkDel, LinkSet, MacAddr};
use crate::rtnl::Rtnl;
use crate::sysctl::{Scope, Sysctl};

/// The bridge's MAC, from the network's random id: locally administered, unicast, and
/// never `02:42:…`, the prefix of the containers' MACs made from their addresses.
fn bridge_mac(id: &str) -> MacAddr {
    let byte = |i: usize| u8::from_str_radix(id.get(2 * i..2 * i + 2).unwrap_or("00"), 16);
    let mut m = [0x02, 0, 0, 0, 0, 0];
    for (i, b) in m.iter_mut().enumerate().skip(1) {
        *b = byte(i).unwrap_or(i as u8);
    }
    if m[1] == 0x42 {
        m[1] ^= 0x01;
    }
    MacAddr(m)
}

/// RFC 3339 UTC time, as Docker prints `Created`.
fn now_rfc3339() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (secs, nanos) = (d.as_secs() as i64, d.subsec_nanos());
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

impl Host {
    /// Creates a bridge network (`docker network create`), all or nothing.
    pub fn create_network(&mut self, cfg: &NetworkConfig) -> Result<NetworkInfo> {
        cfg.validate()?;
        let started = Instant::now();
        let r = self.create_checked(cfg);
        oplog::finish(
            started,
            &r,
            || format!("network create {}", cfg.name),
            oplog::created,
        );
        r
    }

    fn create_checked(&mut self, cfg: &NetworkConfig) -> Result<NetworkInfo> {
        if self.defs.get(&cfg.name)?.is_some() {
            return Err(Error::exists(Object::Network, &cfg.name));
        }
        atomically(|tx| self.create_steps(cfg, tx))
    }

    fn create_steps(&mut self, cfg: &NetworkConfig, tx: &mut Txn) -> Result<NetworkInfo> {
        let id = random::hex_id();
        let mut info = NetworkInfo {
            name: cfg.name.clone(),
            id: id.clone(),
            created: now_rfc3339(),
            bridge: cfg.bridge.clone().unwrap_or_else(|| {
                if cfg.name == DEFAULT_NETWORK {
                    DEFAULT_BRIDGE.to_owned()
                } else {
                    format!("br-{}", &id[..12])
                }
            }),
            ip_range: cfg.ip_range,
            mtu: cfg.mtu,
            internal: cfg.internal,
            icc: cfg.icc,
            masquerade: cfg.masquerade,
            host_binding: cfg.host_binding,
            ipv6: cfg.ipv6,
            labels: cfg.labels.clone(),
            firewall: self.fw.backend().to_string(),
            ..NetworkInfo::default()
        };
        let ipam = self.ipam_steps(cfg, &mut info, tx)?;
        self.bridge_steps(&mut info, cfg.multicast_snooping, tx)?;
        self.forwarding_steps(&info, tx)?;
        fault::point("firewall")?;
        // The first network also makes the backend's tables: the undo takes them away
        // again when it made them and no other network has come since.
        let fresh = self.fw.state()?.families.is_empty();
        let (ns, name, backend) = (self.netns.clone(), info.name.clone(), self.fw.backend());
        tx.record(format!("remove firewall rules of {name}"), move || {
            let mut fw = firewall::open(backend, &ns)?;
            fw.remove_network(&name)?;
            let now = fw.state()?;
            if fresh && now.networks.is_empty() && !now.families.is_empty() {
                fw.flush()?;
            }
            Ok(())
        });
        self.fw.add_network(&self.rules(&info, &[]))?;
        fault::point("record")?;
        self.defs.create(&info, &ipam)?;
        let (defs, name) = (self.defs.clone(), info.name.clone());
        tx.record(format!("forget network {name}"), move || {
            defs.remove(&name).map(drop)
        });
        Ok(info)
    }

    fn ipam_steps(
        &mut self,
        cfg: &NetworkConfig,
        info: &mut NetworkInfo,
        tx: &mut Txn,
    ) -> Result<Vec<crate::ipam::Network>> {
        let mut made = Vec::new();
        let fams: Vec<bool> = [(false, cfg.ipv4), (true, cfg.ipv6)]
            .into_iter()
            .filter_map(|(v6, on)| on.then_some(v6))
            .collect();
        for v6 in fams {
            fault::point("ipam")?;
            let name = ipam_name(&cfg.name, v6);
            let mut spec = NetworkSpec::new(name.clone());
            if let Some(s) = cfg.subnets.iter().find(|s| s.addr().is_ipv4() != v6) {
                spec = spec.subnet(*s);
            }
            if let Some(g) = cfg.gateways.iter().find(|g| g.is_ipv4() != v6) {
                spec = spec.gateway(*g);
            }
            if let (Some(r), false) = (cfg.ip_range, v6) {
                spec = spec.ip_range(r);
            }
            if v6 {
                spec = spec.ipv6();
            }
            let net = match self.ipam.create_network(&spec) {
                Err(IpamError::NetworkExists { .. }) => {
                    return Err(Error::exists(Object::AddressPool, &cfg.name))
                }
                r => r?,
            };
            let ipam = self.ipam.clone();
            tx.record(
                format!("release subnet {} of {name}", net.subnet),
                move || ipam.remove_network(&name).map_err(Error::from),
            );
            info.subnets.push(net.subnet);
            if let Some(g) = net.gateway {
                info.gateways.push(g);
            }
            made.push(net);
        }
        Ok(made)
    }

    pub(crate) fn bridge_steps(
        &mut self,
        info: &mut NetworkInfo,
        snooping: bool,
        tx: &mut Txn,
    ) -> Result<()> {
        fault::point("bridge")?;
        let existing = self.rtnl.link(info.bridge.as_str()).optional()?;
        let br = match existing {
            Some(l) if !l.is_kind("bridge") => {
                return Err(Error::invalid(
                    "bridge",
                    &info.bridge,
                    "an existing link of that name is not a bridge",
                ))
            }
            Some(l) => {
                if !l.is_up() {
                    let (ns, i) = (self.netns.clone(), l.index);
                    tx.record(format!("ip link set {} down", l.name), move || {
                        Rtnl::open_in(&ns)?.execute(&LinkSet::new(i).down())
                    });
                    self.rtnl.execute(&LinkSet::new(&l).up())?;
                }
                l
            }
            None => {
                // A MAC of its own, as Docker gives its bridges: otherwise the kernel
                // gives the bridge the lowest MAC among its ports, which changes (and
                // with it the gateway's MAC in every container's neighbour cache) as
                // containers come and go.
                let v6 = info.subnets.iter().any(|s| s.addr().is_ipv6());
                let mut b = Bridge::new(&info.bridge)
                    .stp(false)
                    .multicast_snooping(snooping)
                    .mac(bridge_mac(&info.id));
                if v6 {
                    b = b.up();
                }
                if let Some(m) = info.mtu {
                    b = b.mtu(m);
                }
                // Made by another process since the lookup: named, as a clash.
                self.rtnl.execute(&b).map_err(|e| {
                    if e.is_exists() {
                        let at = super::clash::IN_HOST.to_owned();
                        super::clash::exists(Object::Link, &info.bridge, at, &e)
                    } else {
                        e
                    }
                })?;
                info.bridge_created = true;
                tx.push(LinkDel::new(info.bridge.as_str()).in_netns(&self.netns));
                if !v6 {
                    // An IPv4 network's bridge has no IPv6 either (its containers have
                    // none): no link-local address whose probes and reports would start
                    // each time the first container comes and go with the last.
                    Sysctl::disable_ipv6(&self.netns, &info.bridge)?;
                    self.rtnl
                        .execute(&LinkSet::new(info.bridge.as_str()).up())?;
                }
                self.rtnl.link(info.bridge.as_str())?
            }
        };
        let present = self.rtnl.addrs(Some((&br).into()))?;
        for (s, g) in info.subnets.clone().iter().zip(info.gateways.clone()) {
            fault::point("gateway address")?;
            let net = IpNet::new(g, s.prefix_len())
                .map_err(|_| Error::invalid("gateway", g, "bad prefix"))?;
            if present.iter().any(|a| a.addr == net) {
                continue;
            }
            let add = if g.is_ipv4() {
                Addr::new(&br, net).auto_broadcast()
            } else {
                Addr::new(&br, net).nodad()
            };
            self.rtnl.execute(&add)?;
            info.bridge_addrs.push(net);
            let (ns, dev) = (self.netns.clone(), br.index);
            tx.record(format!("ip addr del {net} dev {}", br.name), move || {
                Rtnl::open_in(&ns)?.execute(&Addr::new(dev, net).delete())
            });
        }
        Ok(())
    }

    pub(crate) fn forwarding_steps(&mut self, info: &NetworkInfo, tx: &mut Txn) -> Result<()> {
        // Nothing to route for an internal network or one without addresses.
        if info.internal || info.subnets.is_empty() {
            return Ok(());
        }
        let keys: &[Sysctl] = if info.ipv6 {
            &[Sysctl::IpForward, Sysctl::Ipv6Forward]
        } else {
            &[Sysctl::IpForward]
        };
        for key in keys {
            fault::point("forwarding")?;
            if !key.get_bool(&self.netns)? {
                key.set_bool(&self.netns, true)?;
                let (ns, key) = (self.netns.clone(), *key);
                tx.record(format!("sysctl -w {key}=0"), move || {
                    key.set_bool(&ns, false)
                });
            }
        }
        self.route_localnet_step(info, tx)
    }

    /// `route_localnet` on the bridge of a network with IPv4, and on it alone (never
    /// `all`): the host's connections to a port published on 127.0.0.1 are DNATed to a
    /// container and leave through the bridge with a loopback source (masqueraded on the
    /// way out), and the replies, turned back to 127.0.0.1, come in on the bridge. The
    /// firewall drops new connections to 127.0.0.0/8 coming in on it (CVE-2020-8558).
    fn route_localnet_step(&mut self, info: &NetworkInfo, tx: &mut Txn) -> Result<()> {
        if !info.subnets.iter().any(|s| s.addr().is_ipv4()) {
            return Ok(());
        }
        // Read in /proc, written over netlink: a read-only /proc/sys (Podman's network
        // tool runs so in some setups) does not stop it.
        let key = Sysctl::RouteLocalnet(Scope::dev(&info.bridge));
        if !key.get_bool(&self.netns)? {
            let bridge = info.bridge.clone();
            self.rtnl
                .execute(&LinkSet::new(bridge.as_str()).route_localnet(true))?;
            let ns = self.netns.clone();
            tx.record(format!("sysctl -w {key}=0"), move || {
                Rtnl::open_in(&ns)?.execute(&LinkSet::new(bridge.as_str()).route_localnet(false))
            });
        }
        Ok(())
    }
}
