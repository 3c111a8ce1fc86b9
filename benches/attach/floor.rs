//! The kernel floor of a connect: the netlink and nf_tables requests `Host::connect` makes
//! for a container with one published port, issued alone through the library's low-level
//! API, with no address management, records, port registry, undo journal or checks.
//!
//! Per container, in `Host::connect`'s order:
//! 1. `RTM_NEWLINK` veth, its peer `eth0` created straight in the container's namespace
//!    with its MAC, one queue, the host end already a port of the bridge (by index);
//! 2. `net.ipv6.conf.<veth>.disable_ipv6 = 1` (a `/proc/sys` write: IPv6 off on the port);
//! 3. one batch: bridge port settings (hairpin on, isolated off), the host end up;
//! 4. a route socket in the container's namespace (on a helper thread) and `RTM_GETLINK`
//!    of `eth0` (its index, which the address and the route need);
//! 5. one batch inside: `lo` up, `eth0` without IPv6 address generation, `eth0` up, the
//!    IPv4 address, the default route via the gateway;
//! 6. one nf_tables batch: the port's element in the `ports_any` map and in the
//!    `published` set of table `ip netplumb` (built with `wire::nft`, sent on a netfilter
//!    socket opened here, not through `firewall::Nftables`, whose first change of a
//!    process also reads the table list).
//!
//! Not part of the floor (netplumb's own work): the lease, the records, the port
//! registry and its probe, the lookups of the bridge, `lo` and `lo`'s addresses, the
//! container-files step.

use std::net::{IpAddr, Ipv4Addr};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use netplumb::addr::Addr;
use netplumb::firewall::{Firewall, Nftables, PortRule, Proto};
use netplumb::link::{AddrGenMode, Bridge, BridgePort, LinkDel, LinkSet, MacAddr, Veth};
use netplumb::route::Route;
use netplumb::sysctl::{Scope, Sysctl};
use netplumb::wire::{nft, Ack, Messages, MsgBuf, NlmF};
use netplumb::{Netns, Request, Rtnl};

/// The network the floor's firewall elements are tagged with (the connect's own).
pub const NET: &str = "bench";
/// The floor's own bridge, beside the network's.
pub const BRIDGE: &str = "br-floor";
/// The floor's bridge address, the containers' gateway.
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 201, 0, 1);
/// The group of the floor's filler ports, deleted in one request at the end.
pub const FILL_GROUP: u32 = 4242;
/// `NLMSG_ERROR`: an acknowledgement.
const NLMSG_ERROR: u16 = 2;
/// The comment netplumb puts on a port element of network `NET`.
const TAG: &[u8] = b"netplumb net=bench";

/// One container the floor connected: what it takes to undo it.
#[derive(Debug)]
pub struct Port {
    veth: String,
    rule: PortRule,
}

impl Port {
    /// Container `k`'s: veth `vfKKKKK`, address 10.201.0.2 + k, host port 10000 + k
    /// (below the dynamic range netplumb's connects take theirs from) to port 80.
    pub fn of(k: usize) -> Port {
        let ip = Ipv4Addr::from(u32::from(GATEWAY) + 1 + k as u32);
        Port {
            veth: format!("vf{k:05}"),
            rule: PortRule::new(NET, Proto::Tcp, 10_000 + k as u16, ip.into(), 80),
        }
    }
}

/// Sockets on the sandbox's host namespace and the floor bridge's index.
pub struct Floor {
    host: Netns,
    rtnl: Rtnl,
    nft: Socket,
    seq: u32,
    buf: MsgBuf,
    rx: Vec<u8>,
    bridge: u32,
}

impl Floor {
    /// Creates the floor's bridge as `create_network` makes an IPv4 network's (a MAC of
    /// its own, no STP, no snooping, IPv6 off, then up) with the gateway address, then
    /// opens the sockets.
    pub fn setup(host: &Netns) -> Floor {
        let mut r = Rtnl::open_in(host).expect("route socket");
        r.execute(
            &Bridge::new(BRIDGE)
                .stp(false)
                .multicast_snooping(false)
                .mac([0x02, 0x42, 0xfb, 0, 0, 1]),
        )
        .expect("floor bridge");
        Sysctl::DisableIpv6(Scope::dev(BRIDGE))
            .set(host, "1")
            .expect("floor bridge disable_ipv6");
        r.execute(&LinkSet::new(BRIDGE).up())
            .expect("floor bridge up");
        let br = r.link(BRIDGE).expect("floor bridge");
        let gw = netplumb::IpNet::new(GATEWAY.into(), 16).expect("prefix");
        r.execute(&Addr::new(&br, gw).auto_broadcast())
            .expect("floor gateway");
        Floor::open(host, br.index)
    }

    /// The sockets of a floor whose bridge has index `bridge`: a route socket and a
    /// netfilter socket in `host`, the calling thread's namespace.
    pub fn open(host: &Netns, bridge: u32) -> Floor {
        let nft = host
            .run(|| {
                let mut s = Socket::new(NETLINK_NETFILTER)?;
                s.bind_auto()?;
                s.set_cap_ack(true)?;
                s.set_ext_ack(true)?;
                Ok::<_, std::io::Error>(s)
            })
            .expect("namespace")
            .expect("netfilter socket");
        Floor {
            host: host.clone(),
            rtnl: Rtnl::open_in(host).expect("route socket"),
            nft,
            seq: std::process::id().wrapping_mul(2_654_435_761),
            buf: MsgBuf::with_capacity(1024),
            rx: Vec::with_capacity(16 * 1024),
            bridge,
        }
    }

    /// The bridge's index (a fresh process is given it, as the connect's `Host` caches it).
    pub fn bridge(&self) -> u32 {
        self.bridge
    }

    /// Connects container `k` (see [`Port::of`]) in namespace `ns`; `group` puts the
    /// veth in an interface group.
    pub fn connect(&mut self, ns: &Netns, k: usize, group: Option<u32>) -> Port {
        let Port { veth, rule } = Port::of(k);
        let ip = match rule.container_ip {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(_) => unreachable!("the floor's containers are IPv4"),
        };
        let mut v = Veth::new(&veth)
            .controller(self.bridge)
            .queues(1)
            .peer("eth0")
            .peer_netns(ns)
            .peer_mac(MacAddr::from_ip(ip.into()));
        if let Some(g) = group {
            v = v.group(g);
        }
        self.rtnl.execute(&v).expect("floor veth");
        Sysctl::DisableIpv6(Scope::dev(&veth))
            .set(&self.host, "1")
            .expect("floor disable_ipv6");
        let port: [Box<dyn Request>; 2] = [
            Box::new(BridgePort::new(veth.as_str()).hairpin(true).isolated(false)),
            Box::new(LinkSet::new(veth.as_str()).up()),
        ];
        self.rtnl.execute_batch(&port).expect("floor bridge port");
        inside(ns, ip);
        self.publish(&rule);
        Port { veth, rule }
    }

    /// The port's two elements, `ports_any` and `published`, in one nf_tables batch.
    fn publish(&mut self, p: &PortRule) {
        let IpAddr::V4(ctr) = p.container_ip else {
            unreachable!("the floor's containers are IPv4")
        };
        let (proto, host, port) = (
            word(&[p.proto.number()]),
            word(&p.host_port.to_be_bytes()),
            word(&p.container_port.to_be_bytes()),
        );
        let key = [proto, host].concat();
        let value = [&ctr.octets()[..], &port].concat();
        let published = [&ctr.octets()[..], &proto, &port, &host].concat();
        let mut ud = [0u8; 128];
        let n = nft::comment_udata(TAG, &mut ud);
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(4);
        let b = &mut self.buf;
        b.clear();
        nft::batch(b, false, first.wrapping_sub(1));
        let flags = NlmF::REQUEST | NlmF::ACK | NlmF::CREATE;
        let sets = [
            (&b"ports_any"[..], &key[..], nft::ElemData::Value(&value)),
            (b"published", &published, nft::ElemData::None),
        ];
        for (i, (set, key, data)) in sets.into_iter().enumerate() {
            let seq = first.wrapping_add(i as u32);
            let tok = nft::begin_elems(
                b,
                nft::NFT_MSG_NEWSETELEM,
                flags,
                seq,
                nft::NFPROTO_IPV4,
                (b"netplumb", set),
            );
            nft::elem(b, key, data, &ud[..n]);
            nft::end_elems(b, tok);
        }
        nft::batch(b, true, first.wrapping_add(2));
        self.nft.send(b.as_bytes(), 0).expect("nf_tables send");
        self.acks(2);
    }

    /// Waits for `want` acknowledgements; a failure panics with its errno.
    fn acks(&mut self, mut want: usize) {
        while want > 0 {
            self.rx.clear();
            self.nft.recv(&mut self.rx, 0).expect("nf_tables recv");
            for m in Messages::new(&self.rx) {
                let m = m.expect("nf_tables reply");
                if m.ty != NLMSG_ERROR {
                    continue;
                }
                let ack = Ack::parse(&m).expect("nf_tables ack");
                assert_eq!(ack.errno, 0, "nf_tables: {ack:?}");
                want -= 1;
            }
        }
    }

    /// Undoes `p` as a disconnect does: the veth deleted (its peer, address and route
    /// with it), the elements withdrawn (through `fw`, a warm backend).
    pub fn undo(&mut self, fw: &mut Nftables, p: &Port) {
        self.rtnl
            .execute(&LinkDel::new(p.veth.as_str()))
            .expect("floor veth delete");
        fw.unpublish(std::slice::from_ref(&p.rule))
            .expect("floor unpublish");
    }

    /// The rule `p` published (for the check that netplumb reads it back as its own).
    pub fn rule(p: &Port) -> &PortRule {
        &p.rule
    }

    /// Deletes the filler ports (one group request) and the bridge; their elements go
    /// with the network's (`remove_network` removes all elements tagged with it).
    pub fn teardown(mut self) {
        self.rtnl
            .execute(&LinkDel::group(FILL_GROUP))
            .expect("floor group delete");
        self.rtnl
            .execute(&LinkDel::new(BRIDGE))
            .expect("floor bridge delete");
    }
}

/// The container side, as `Host::connect` sends it: a socket in `ns`, `eth0`'s index,
/// then one batch.
fn inside(ns: &Netns, ip: Ipv4Addr) {
    let mut r = Rtnl::open_in(ns).expect("container socket");
    let eth0 = r.link("eth0").expect("eth0");
    let addr = netplumb::IpNet::new(ip.into(), 16).expect("prefix");
    let reqs: [Box<dyn Request>; 5] = [
        Box::new(LinkSet::new("lo").up()),
        Box::new(LinkSet::new(&eth0).addr_gen_mode(AddrGenMode::None)),
        Box::new(LinkSet::new(&eth0).up()),
        Box::new(Addr::new(&eth0, addr).auto_broadcast()),
        Box::new(Route::default_v4().via(GATEWAY.into()).dev(&eth0)),
    ];
    r.execute_batch(&reqs).expect("container batch");
}

/// A 4-byte nf_tables register word holding `data` followed by zeros.
fn word(data: &[u8]) -> [u8; 4] {
    let mut w = [0u8; 4];
    w[..data.len()].copy_from_slice(data);
    w
}
