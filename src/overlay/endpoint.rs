//! Connecting containers to overlay networks and disconnecting them, each connect inside
//! one undo journal.

use ipnet::IpNet;

use super::config::{veth_name, OverlayNetwork};
use super::discovery::PeerEndpoint;
use super::driver::{hold, open_guard, unguard, Overlay};
use super::gwbridge::{GWBRIDGE_IFNAME, GWBRIDGE_NETWORK};
use crate::addr::Addr;
use crate::error::{Error, Object, Result, ResultExt};
use crate::fault;
use crate::ipam::{IpamError, Lease, Owner, Store};
use crate::journal::{atomically, Txn};
use crate::link::{AddrGenMode, Bridge, Link, LinkDel, LinkSet, MacAddr, Veth, Vxlan, VXLAN_PORT};
use crate::network::{clash, Attachment, Container};
use crate::request::Request;
use crate::rtnl::Rtnl;
use crate::sysctl::Sysctl;

/// A container's link to an overlay network.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OverlayAttachment {
    /// The overlay network's name.
    pub network: String,
    /// The container's id.
    pub container: String,
    /// The overlay interface inside the container (`eth0`).
    pub ifname: String,
    /// The container's overlay address with the subnet's prefix.
    pub addr: IpNet,
    /// The overlay interface's MAC (`02:42:` and the address, unless given).
    pub mac: MacAddr,
    /// The overlay interface's MTU.
    pub mtu: u32,
    /// The host end of the overlay veth (`veth` + 7 hex digits), a port of [`bridge`](Self::bridge).
    pub host_veth: String,
    /// The network's bridge on this host (`ov-` + VNI).
    pub bridge: String,
    /// The network's VXLAN device on this host (`vx-` + VNI).
    pub vxlan: String,
    /// The VNI.
    pub vni: u32,
    /// The container's attachment to the gateway bridge (`eth1`, which carries the
    /// default route).
    pub gateway: Attachment,
}

impl<S: Store + 'static> Overlay<S> {
    /// Connects a container to an overlay network (`docker run --network ov1`), all or
    /// nothing. The network must have been created ([`Overlay::create_network`]) on some
    /// host. Connecting a connected container returns its attachment.
    ///
    /// The first local container of a network creates the network's bridge, guards its
    /// VNI, creates its VXLAN device and joins discovery. Each container gets an overlay
    /// address from the shared IPAM ([`Container::ip`] asks for a specific one), a veth
    /// whose container end ([`Container::ifname`], `eth0`) has the MAC derived from the
    /// address and the overlay MTU but no default route, its endpoint published, and a
    /// second interface `eth1` on the gateway bridge (created if absent) with the default
    /// route. Then the network is [`sync`](Overlay::sync)ed. A container on several overlay
    /// networks needs an interface name for each ([`Container::ifname`]: `eth0`, `eth2`,
    /// …); they share its `eth1`.
    ///
    /// ```no_run
    /// # fn f(ov: &mut netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>,
    /// #      ov1: &netplumb::overlay::OverlayNetwork) -> netplumb::Result<()> {
    /// let ns = netplumb::NetnsDir::default().create("web")?;
    /// let att = ov.connect(ov1, &netplumb::network::Container::new("3f2a1c0d9e8b", &ns))?;
    /// assert_eq!(att.ifname, "eth0");
    /// # Ok(()) }
    /// ```
    pub fn connect(&mut self, net: &OverlayNetwork, ctr: &Container) -> Result<OverlayAttachment> {
        net.validate()?;
        check_container(ctr)?;
        let lock = self.lock.clone();
        let _held = hold(&lock);
        let stored = match self.ipam.network(&net.name) {
            Err(IpamError::NetworkNotFound { .. }) => {
                return Err(Error::not_found(Object::OverlayNetwork, &net.name))
            }
            r => r?,
        };
        if stored.subnet != net.subnet {
            return Err(Error::invalid(
                "subnet",
                net.subnet,
                "differs from the network's subnet in the store",
            ));
        }
        if let Some(a) = self.existing(net, ctr)? {
            return Ok(a);
        }
        let mtu = self.mtu_of(net)?;
        atomically(|tx| self.connect_steps(net, ctr, mtu, tx))
    }

    fn connect_steps(
        &mut self,
        net: &OverlayNetwork,
        ctr: &Container,
        mtu: u32,
        tx: &mut Txn,
    ) -> Result<OverlayAttachment> {
        let bridge = self.network_steps(net, mtu, tx)?;
        let lease = self.lease_step(net, ctr, tx)?;
        let mac = ctr.mac.unwrap_or_else(|| MacAddr::from_ip(lease.address));
        let host_veth = veth_name(&ctr.id, &net.name);
        fault::point("overlay veth")?;
        // One request: the pair, the container end straight in the container with its MAC
        // and MTU, the host end up and a port of the overlay bridge.
        let v6 = net.subnet.addr().is_ipv6();
        let mut veth = Veth::new(&host_veth)
            .controller(&bridge)
            .mtu(mtu)
            .queues(1)
            .peer(&ctr.ifname)
            .peer_netns(&ctr.netns)
            .peer_mac(mac)
            .peer_mtu(mtu);
        if v6 {
            veth = veth.up();
        }
        self.host
            .rtnl()
            .execute(&veth)
            .map_err(|e| self.veth_clash(ctr, &host_veth, e))?;
        // Deleting the host end deletes the container end and its address too.
        tx.push(LinkDel::new(host_veth.as_str()).in_netns(self.host.netns()));
        if !v6 {
            // A bridge port of an IPv4 overlay needs no IPv6 stack (as on bridge
            // networks): off before it goes up.
            let ns = self.host.netns().clone();
            Sysctl::disable_ipv6(&ns, &host_veth)?;
            self.host
                .rtnl()
                .execute(&LinkSet::new(host_veth.as_str()).up())?;
        }
        self.inside_step(ctr, lease.cidr())?;
        fault::point("publish endpoint")?;
        let ep = PeerEndpoint {
            host: self.me.id.clone(),
            ip: lease.address,
            mac,
        };
        // The endpoint's put and the read of the peers wait on the store (the put on
        // etcd's fsync) while the way out is kernel work here: both at once.
        let (d, n) = (self.discovery.clone(), net.name.clone());
        let (published, gateway) = std::thread::scope(|s| {
            let store = s.spawn(|| {
                d.publish(&n, &ep)?;
                d.view(&n)
            });
            let gw = self
                .ensure_gwbridge(tx)
                .and_then(|()| self.connect_gwbridge(ctr, tx));
            let published = store
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p));
            (published, gw)
        });
        // A failed read after the put leaves the endpoint published: withdrawn on undo.
        tx.record(format!("withdraw {} from {n}", ep.ip), move || {
            d.withdraw(&n, &ep.host, ep.ip)
        });
        let gateway = gateway?;
        let view = published?;
        fault::point("overlay sync")?;
        self.sync_locked_with(net, &view)?;
        Ok(OverlayAttachment {
            network: net.name.clone(),
            container: ctr.id.clone(),
            ifname: ctr.ifname.clone(),
            addr: lease.cidr(),
            mac,
            mtu,
            host_veth,
            bridge: bridge.name,
            vxlan: net.vxlan_name(),
            vni: net.vxlan_id(),
            gateway,
        })
    }

    /// The network's bridge, VXLAN guard, VXLAN device and discovery membership on this
    /// host, made unless the VXLAN device exists. Returns the bridge.
    fn network_steps(&mut self, net: &OverlayNetwork, mtu: u32, tx: &mut Txn) -> Result<Link> {
        let bridge = self.bridge_step(net, mtu, tx)?;
        let (vxn, vni) = (net.vxlan_name(), net.vxlan_id());
        match self.lookup(&vxn)? {
            Some(l) if l.vxlan.is_some_and(|v| v.vni == vni) => {
                // Set up already; joining again (idempotent) heals a lapsed registration.
                self.discovery.join(&net.name, &self.me)?;
                return Ok(bridge);
            }
            Some(_) => {
                return Err(Error::invalid(
                    "vxlan",
                    &vxn,
                    "an existing link of that name is not a VXLAN device of this VNI",
                ))
            }
            None => {}
        }
        let ns = self.host.netns().clone();
        // The guard goes first: the device never exists unguarded.
        fault::point("vxlan guard")?;
        self.guard()?.guard(vni)?;
        let (gns, under) = (ns.clone(), self.me.underlay);
        tx.record(format!("unguard vni {vni}"), move || {
            unguard(&mut open_guard(&gns, under)?, vni)
        });
        fault::point("vxlan")?;
        let v6 = net.subnet.addr().is_ipv6();
        let mut vx = Vxlan::new(&vxn, vni)
            .port(VXLAN_PORT)
            .local(self.me.underlay)
            .dev(&self.underlay)
            .learning(false)
            .proxy(true)
            .mtu(mtu)
            .controller(&bridge);
        if v6 {
            vx = vx.up();
        }
        self.host
            .rtnl()
            .execute(&vx)
            .map_err(|e| self.vxlan_clash(&vxn, vni, e))?;
        tx.push(LinkDel::new(vxn.as_str()).in_netns(&ns));
        if !v6 {
            // No IPv6 stack on the ports of an IPv4 overlay (as on bridge networks).
            Sysctl::disable_ipv6(&ns, &vxn)?;
            self.host.rtnl().execute(&LinkSet::new(vxn.as_str()).up())?;
        }
        fault::point("join")?;
        self.discovery.join(&net.name, &self.me)?;
        let (d, n, id) = (self.discovery.clone(), net.name.clone(), self.me.id.clone());
        tx.record(format!("leave {n}"), move || d.leave(&n, &id));
        Ok(bridge)
    }

    /// The network's bridge: no address, no STP, the overlay MTU; reused if it exists.
    fn bridge_step(&mut self, net: &OverlayNetwork, mtu: u32, tx: &mut Txn) -> Result<Link> {
        let brn = net.bridge_name();
        fault::point("overlay bridge")?;
        match self.lookup(&brn)? {
            Some(l) if l.is_kind("bridge") => Ok(l),
            Some(_) => Err(Error::invalid(
                "bridge",
                &brn,
                "an existing link of that name is not a bridge",
            )),
            None => {
                // As a bridge network's: no multicast snooping (the VXLAN device floods
                // what it does not know anyway), no IPv6 stack on an IPv4 overlay.
                let v6 = net.subnet.addr().is_ipv6();
                let mut b = Bridge::new(&brn)
                    .stp(false)
                    .multicast_snooping(false)
                    .mtu(mtu);
                if v6 {
                    b = b.up();
                }
                self.host.rtnl().execute(&b).map_err(|e| {
                    if e.is_exists() {
                        clash::exists(Object::Link, &brn, clash::IN_HOST.to_owned(), &e)
                    } else {
                        e
                    }
                })?;
                tx.push(LinkDel::new(brn.as_str()).in_netns(self.host.netns()));
                if !v6 {
                    Sysctl::disable_ipv6(self.host.netns(), &brn)?;
                    self.host.rtnl().execute(&LinkSet::new(brn.as_str()).up())?;
                }
                self.host.rtnl().link(brn.as_str())
            }
        }
    }

    fn lease_step(&mut self, net: &OverlayNetwork, ctr: &Container, tx: &mut Txn) -> Result<Lease> {
        fault::point("overlay lease")?;
        // A lease held already (a half-connected container) is not ours to release on undo.
        let owner = Owner::new(ctr.id.clone(), ctr.ifname.clone());
        let (lease, held) = self.ipam.allocate_noting_held(&net.name, &owner, ctr.ip)?;
        if !held {
            let (ipam, n) = (self.ipam.clone(), net.name.clone());
            tx.record(format!("release {} of {n}", lease.address), move || {
                ipam.release_owner(&n, &owner)
                    .map(|_| ())
                    .map_err(Error::from)
            });
        }
        Ok(lease)
    }

    /// `lo` and the overlay interface up, the address: one batch, no default route.
    fn inside_step(&mut self, ctr: &Container, cidr: IpNet) -> Result<()> {
        fault::point("overlay address")?;
        let mut inside = Rtnl::open_in(&ctr.netns)?;
        let link = inside.link(ctr.ifname.as_str()).map_err(|e| {
            if e.is_not_found() {
                clash::not_found(Object::Link, &ctr.ifname, clash::in_netns(&ctr.netns), &e)
            } else {
                e
            }
        })?;
        let addr = if cidr.addr().is_ipv4() {
            Addr::new(&link, cidr).auto_broadcast()
        } else {
            Addr::new(&link, cidr).nodad()
        };
        let mut reqs: Vec<Box<dyn Request>> = vec![Box::new(LinkSet::new("lo").up())];
        if cidr.addr().is_ipv4() {
            // No IPv6 on an IPv4 overlay, not even a link-local address (as on bridge
            // networks): no probes or reports flooded over the overlay.
            reqs.push(Box::new(
                LinkSet::new(&link).addr_gen_mode(AddrGenMode::None),
            ));
        }
        reqs.push(Box::new(LinkSet::new(&link).up()));
        reqs.push(Box::new(addr));
        inside.execute_batch(&reqs)
    }

    /// The attachment of a container that is connected already, if it is.
    fn existing(
        &mut self,
        net: &OverlayNetwork,
        ctr: &Container,
    ) -> Result<Option<OverlayAttachment>> {
        // The veth first: a netlink lookup, cheaper than a store read.
        let host_veth = veth_name(&ctr.id, &net.name);
        let Some(veth) = self.lookup(&host_veth)? else {
            return Ok(None);
        };
        let Some(lease) = self.lease_of(net, &ctr.id)? else {
            return Ok(None);
        };
        let gw = self
            .host
            .attachments(Some(GWBRIDGE_NETWORK))?
            .into_iter()
            .find(|a| a.container == ctr.id);
        let Some(gateway) = gw else { return Ok(None) };
        Ok(Some(OverlayAttachment {
            network: net.name.clone(),
            container: ctr.id.clone(),
            ifname: lease.owner.ifname.clone(),
            addr: lease.cidr(),
            mac: ctr.mac.unwrap_or_else(|| MacAddr::from_ip(lease.address)),
            mtu: veth.mtu,
            host_veth,
            bridge: net.bridge_name(),
            vxlan: net.vxlan_name(),
            vni: net.vxlan_id(),
            gateway,
        }))
    }

    /// The lease container `id` holds on `net` (none when the network is gone).
    fn lease_of(&self, net: &OverlayNetwork, id: &str) -> Result<Option<Lease>> {
        match self.ipam.leases(&net.name) {
            Ok(v) => Ok(v.into_iter().find(|l| l.owner.container == id)),
            Err(IpamError::NetworkNotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Disconnects a container (`docker network disconnect ov1 CTR`), in the reverse order
    /// of [`Overlay::connect`]: the gateway bridge attachment unless another overlay
    /// network of the container still uses it (and the gateway bridge network itself when
    /// the driver created it and this was its last container), the published endpoint,
    /// the veth, the address lease. When the last local container of
    /// the network leaves, the host leaves discovery and the VXLAN device, the guard and
    /// the bridge go. Idempotent: a container that is not connected is not an error.
    ///
    /// ```no_run
    /// # fn f(ov: &mut netplumb::overlay::Overlay<netplumb::ipam::MemoryStore>,
    /// #      ov1: &netplumb::overlay::OverlayNetwork) -> netplumb::Result<()> {
    /// ov.disconnect(ov1, "3f2a1c0d9e8b")?;
    /// ov.disconnect(ov1, "3f2a1c0d9e8b")?; // nothing left to do
    /// # Ok(()) }
    /// ```
    pub fn disconnect(&mut self, net: &OverlayNetwork, container: &str) -> Result<()> {
        net.validate()?;
        let lock = self.lock.clone();
        let _held = hold(&lock);
        // The way out is shared by the container's overlay networks on this host.
        if !self.on_other_overlay(container, &net.name)? {
            self.disconnect_gwbridge(container)?;
        }
        let host_veth = veth_name(container, &net.name);
        let here = self.lookup(&host_veth)?.is_some();
        let view = self.discovery.view(&net.name)?;
        if let Some(lease) = self.lease_of(net, container)? {
            let published = view
                .endpoints
                .iter()
                .any(|e| e.host == self.me.id && e.ip == lease.address);
            // A lease of a container on another host is not ours to release.
            if here || published {
                self.discovery
                    .withdraw(&net.name, &self.me.id, lease.address)?;
                self.host
                    .rtnl()
                    .execute(&LinkDel::new(host_veth.as_str()))
                    .or_gone()?;
                let _ = self.ipam.release(&net.name, lease.address)?;
            }
        } else {
            self.host
                .rtnl()
                .execute(&LinkDel::new(host_veth.as_str()))
                .or_gone()?;
        }
        if !self.has_containers(net)? {
            self.teardown(net)?;
        }
        Ok(())
    }

    /// Whether the network's bridge here still has container ports. The kernel is asked,
    /// not discovery: a host whose registrations lapsed still has its containers.
    fn has_containers(&mut self, net: &OverlayNetwork) -> Result<bool> {
        let Some(br) = self.lookup(&net.bridge_name())? else {
            return Ok(false);
        };
        let ports = self.host.rtnl().bridge_ports(br.index)?;
        Ok(ports.iter().any(|l| l.is_kind("veth")))
    }

    /// Whether container `id` is connected here to an overlay network other than `except`.
    fn on_other_overlay(&mut self, id: &str, except: &str) -> Result<bool> {
        for n in self.ipam.networks()? {
            if n.name != except && self.lookup(&veth_name(id, &n.name))?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Takes the network off this host: leave discovery (the others stop sending), delete
    /// the VXLAN device (nothing is received), drop the guard, delete the bridge last.
    fn teardown(&mut self, net: &OverlayNetwork) -> Result<()> {
        let (vxn, brn) = (net.vxlan_name(), net.bridge_name());
        self.discovery.leave(&net.name, &self.me.id)?;
        self.host
            .rtnl()
            .execute(&LinkDel::new(vxn.as_str()))
            .or_gone()?;
        let g = self.guard()?;
        if g.vnis()?.contains(&net.vxlan_id()) {
            unguard(g, net.vxlan_id())?;
        }
        self.host
            .rtnl()
            .execute(&LinkDel::new(brn.as_str()))
            .or_gone()
    }

    /// The link named `name` in the host namespace, if there is one.
    fn lookup(&mut self, name: &str) -> Result<Option<Link>> {
        self.host.rtnl().link(name).optional()
    }

    /// A refused veth pair as the name that is taken: the container's interface in its
    /// namespace, else the host end on this host.
    fn veth_clash(&mut self, ctr: &Container, host_veth: &str, e: Error) -> Error {
        if !e.is_exists() {
            return e;
        }
        let inside = Rtnl::open_in(&ctr.netns).and_then(|mut r| r.link(ctr.ifname.as_str()));
        if inside.is_ok() {
            clash::exists(Object::Link, &ctr.ifname, clash::in_netns(&ctr.netns), &e)
        } else {
            clash::exists(Object::Link, host_veth, clash::IN_HOST.to_owned(), &e)
        }
    }

    /// A refused VXLAN device as what holds what it needs: its name, or its VNI on the
    /// VXLAN port, which the kernel gives one device per namespace (the holder named).
    fn vxlan_clash(&mut self, name: &str, vni: u32, e: Error) -> Error {
        if !e.is_exists() {
            return e;
        }
        if self.lookup(name).ok().flatten().is_some() {
            return clash::exists(Object::Link, name, clash::IN_HOST.to_owned(), &e);
        }
        let holder = self.host.rtnl().links().ok().and_then(|ls| {
            ls.into_iter()
                .find(|l| l.vxlan.is_some_and(|v| v.vni == vni))
                .map(|l| l.name)
        });
        let detail = match holder {
            Some(h) => format!("(held by VXLAN device {h}) {}", clash::IN_HOST),
            None => format!("(on UDP port {VXLAN_PORT}) {}", clash::IN_HOST),
        };
        clash::exists(Object::Vni, &vni.to_string(), detail, &e)
    }
}

fn check_container(ctr: &Container) -> Result<()> {
    let ok = |c: u8| c.is_ascii_alphanumeric() || b"_.-".contains(&c);
    if ctr.id.is_empty() || !ctr.id.bytes().all(ok) {
        return Err(Error::invalid(
            "container id",
            &ctr.id,
            "must be [A-Za-z0-9_.-]+",
        ));
    }
    crate::link::IfName::unchecked(&ctr.ifname).check_as("container interface")?;
    if ctr.ifname == GWBRIDGE_IFNAME || ctr.ifname == "lo" {
        return Err(Error::invalid(
            "container interface",
            &ctr.ifname,
            "is taken by the gateway bridge or loopback",
        ));
    }
    Ok(())
}
