//! A connect the kernel refuses names what clashes and where: the container's interface
//! name taken in its namespace, every host veth name taken, a default route the container's
//! namespace has already. Each error is checked as data (object, name, the namespace in its
//! detail), and the connect leaves nothing behind. The same for an overlay connect: the
//! container's interface name taken, the network's VNI held by another VXLAN device.

#![cfg(feature = "store")]

mod common;

use common::no_dad;

use netplumb::error::{Error, Object};
use netplumb::link::Veth;
use netplumb::netns::Sandbox;
use std::sync::Arc;

use netplumb::ipam::{Ipam, MemoryStore};
use netplumb::link::{Vxlan, VXLAN_PORT};
use netplumb::network::{Container, Host, NetworkConfig};
use netplumb::overlay::{Overlay, OverlayNetwork, PeerDiscovery, PeerHost, StaticPeers};
use netplumb::{Netns, Rtnl};

fn host(s: &Sandbox) -> Host {
    no_dad(s.host());
    let mut h = Host::open_in(s.host(), "/run/netplumb-test").unwrap();
    h.create_network(&NetworkConfig::new("n").subnet("10.62.0.0/24".parse().unwrap()))
        .unwrap();
    h
}

fn ctr_ns(s: &Sandbox, name: &str) -> Netns {
    let ns = s.netns_dir().create(name).unwrap();
    no_dad(&ns);
    ns
}

/// The object, name and detail of an `Exists` error.
fn exists(e: &Error) -> (Object, &str, &str) {
    match e {
        Error::Exists {
            object,
            name,
            detail: Some(d),
        } => (*object, name, d),
        e => panic!("not an Exists error with a detail: {e:?}"),
    }
}

/// The host end's name for `container` on `network` with `salt`, as documented: `veth`
/// and 7 hex digits of the FNV-1a hash of `CONTAINER/NETWORK/SALT`.
fn veth_name(container: &str, network: &str, salt: u32) -> String {
    let key = format!("{container}/{network}/{salt}");
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("veth{:07x}", h & 0xfff_ffff)
}

/// After a refused connect: no attachment, the host's links as `before`, and the address
/// free again (the next connect gets the first one).
fn nothing_left(s: &Sandbox, h: &mut Host, before: &[String], ns: &Netns) {
    assert!(h.attachments(Some("n")).unwrap().is_empty());
    assert_eq!(common::link_names(&mut common::rtnl(s)), before);
    let a = h
        .connect("n", &Container::new("probe", ns).ifname("eth9"))
        .unwrap();
    assert_eq!(a.addrs, ["10.62.0.2/24".parse().unwrap()]);
    h.disconnect("n", "probe").unwrap();
}

#[test]
fn container_ifname_taken_in_its_namespace() {
    common::sandbox("container_ifname_taken_in_its_namespace", |s| {
        let mut h = host(s);
        let ns = ctr_ns(s, "a");
        Rtnl::open_in(&ns)
            .unwrap()
            .execute(&Veth::new("eth0").peer("x0"))
            .unwrap();
        let before = common::link_names(&mut common::rtnl(s));
        let e = h.connect("n", &Container::new("c1", &ns)).unwrap_err();
        assert!(e.is_exists(), "{e}");
        let (object, name, detail) = exists(&e);
        assert_eq!((object, name), (Object::Link, "eth0"));
        assert_eq!(detail, "in namespace /run/netns/a");
        assert_eq!(
            e.to_string(),
            "link eth0 in namespace /run/netns/a already exists"
        );
        nothing_left(s, &mut h, &before, &ns);
        // A namespace without a file is named by its inode, as /proc shows it.
        let anon = Netns::new().unwrap();
        Rtnl::open_in(&anon)
            .unwrap()
            .execute(&Veth::new("eth0").peer("x0"))
            .unwrap();
        let e = h.connect("n", &Container::new("c2", &anon)).unwrap_err();
        let want = format!("in namespace net:[{}]", anon.inode());
        assert_eq!(exists(&e), (Object::Link, "eth0", want.as_str()));
    });
}

#[test]
fn every_host_veth_name_taken() {
    common::sandbox("every_host_veth_name_taken", |s| {
        let mut h = host(s);
        let ns = ctr_ns(s, "a");
        let mut r = common::rtnl(s);
        for salt in 0..=8 {
            r.execute(&Veth::new(&veth_name("c1", "n", salt)).peer(&format!("p{salt}")))
                .unwrap();
        }
        let before = common::link_names(&mut r);
        let e = h.connect("n", &Container::new("c1", &ns)).unwrap_err();
        let last = veth_name("c1", "n", 8);
        assert_eq!(
            exists(&e),
            (Object::Link, last.as_str(), "in the host namespace")
        );
        nothing_left(s, &mut h, &before, &ns);
        // One name free again: the connect takes it.
        r.execute(&netplumb::link::LinkDel::new(
            veth_name("c1", "n", 3).as_str(),
        ))
        .unwrap();
        let a = h.connect("n", &Container::new("c1", &ns)).unwrap();
        assert_eq!(a.host_veth, veth_name("c1", "n", 3));
    });
}

#[test]
fn default_route_the_container_has_already() {
    common::sandbox("default_route_the_container_has_already", |s| {
        let mut h = host(s);
        let ns = ctr_ns(s, "a");
        let mut inside = Rtnl::open_in(&ns).unwrap();
        let gw = common::occupy_default_route(&mut inside);
        let before = common::link_names(&mut common::rtnl(s));
        let e = h.connect("n", &Container::new("c1", &ns)).unwrap_err();
        assert_eq!(
            exists(&e),
            (
                Object::Route,
                "default via 10.62.0.1",
                "in namespace /run/netns/a"
            )
        );
        assert!(!common::link_names(&mut inside).contains(&"eth0".to_owned()));
        inside.execute(&gw.delete()).unwrap();
        nothing_left(s, &mut h, &before, &ns);
    });
}

/// One overlay host `h1` (underlay 192.168.99.1) with network `ov1` (VNI 256) defined,
/// its namespace and its IPAM store.
type Ov = (Overlay<Arc<MemoryStore>>, Netns, Arc<MemoryStore>);

fn overlay_host(s: &Sandbox, dir: &common::TempDir) -> Ov {
    let ns = common::underlay_machine(s, "h1", "192.168.99.1/24");
    let host = Host::open_in(&ns, &dir.0).unwrap();
    let me = PeerHost {
        id: "h1".into(),
        underlay: "192.168.99.1".parse().unwrap(),
    };
    let peers: Arc<dyn PeerDiscovery> = Arc::new(StaticPeers::new());
    let store = Arc::new(MemoryStore::new());
    let mut ov = Overlay::new(host, me, Ipam::new(store.clone()), peers).unwrap();
    ov.create_network(&ov1()).unwrap();
    (ov, ns, store)
}

fn ov1() -> OverlayNetwork {
    OverlayNetwork::new("ov1", "10.0.9.0/24".parse().unwrap()).vni(256)
}

#[test]
fn overlay_container_ifname_taken_in_its_namespace() {
    common::sandbox("overlay_container_ifname_taken_in_its_namespace", |s| {
        let dir = common::TempDir::new("overlay");
        let (mut ov, hns, store) = overlay_host(s, &dir);
        let ns = ctr_ns(s, "a");
        Rtnl::open_in(&ns)
            .unwrap()
            .execute(&Veth::new("eth0").peer("x0"))
            .unwrap();
        let mut hr = Rtnl::open_in(&hns).unwrap();
        let before = common::link_names(&mut hr);
        let e = ov.connect(&ov1(), &Container::new("c1", &ns)).unwrap_err();
        assert_eq!(
            exists(&e),
            (Object::Link, "eth0", "in namespace /run/netns/a"),
            "{e}"
        );
        // The overlay's bridge and VXLAN device were made for this connect: undone.
        assert_eq!(common::link_names(&mut hr), before);
        assert!(Ipam::new(store.clone()).leases("ov1").unwrap().is_empty());
    });
}

#[test]
fn overlay_vni_held_by_another_vxlan_device() {
    common::sandbox("overlay_vni_held_by_another_vxlan_device", |s| {
        let dir = common::TempDir::new("overlay");
        let (mut ov, hns, store) = overlay_host(s, &dir);
        let mut hr = Rtnl::open_in(&hns).unwrap();
        hr.execute(&Vxlan::new("vxother", 256).port(VXLAN_PORT))
            .unwrap();
        let before = common::link_names(&mut hr);
        let ns = ctr_ns(s, "a");
        let e = ov.connect(&ov1(), &Container::new("c1", &ns)).unwrap_err();
        assert_eq!(
            exists(&e),
            (
                Object::Vni,
                "256",
                "(held by VXLAN device vxother) in the host namespace"
            ),
            "{e}"
        );
        assert_eq!(
            e.to_string(),
            "VNI 256 (held by VXLAN device vxother) in the host namespace already exists"
        );
        assert_eq!(common::link_names(&mut hr), before);
        assert!(Ipam::new(store.clone()).leases("ov1").unwrap().is_empty());
        // Its holder gone, the same connect works.
        hr.execute(&netplumb::link::LinkDel::new("vxother"))
            .unwrap();
        ov.connect(&ov1(), &Container::new("c1", &ns)).unwrap();
    });
}
