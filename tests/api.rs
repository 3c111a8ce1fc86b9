//! Public API promises: thread-safety of the handles and error, and no netlink-packet-*
//! type in a public signature.

use std::fs;
use std::path::Path;

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_static<T: 'static>() {}
fn assert_spec<T: Clone + std::fmt::Debug + PartialEq + Send + Sync + netplumb::Request>() {}

#[test]
fn handles_and_error_are_thread_safe() {
    assert_send::<netplumb::Error>();
    assert_sync::<netplumb::Error>();
    assert_static::<netplumb::Error>();
    assert_send::<netplumb::Netns>();
    assert_sync::<netplumb::Netns>();
    assert_send::<netplumb::NetnsDir>();
    assert_send::<netplumb::Rtnl>();
    #[cfg(feature = "store")]
    assert_send::<netplumb::network::Host>();
    assert_send::<netplumb::error::Errno>();
    assert_spec::<netplumb::link::Veth>();
    assert_spec::<netplumb::link::Bridge>();
    assert_spec::<netplumb::link::Vxlan>();
    assert_spec::<netplumb::link::LinkSet>();
    assert_spec::<netplumb::link::LinkDel>();
    assert_spec::<netplumb::link::BridgePort>();
    assert_spec::<netplumb::addr::Addr>();
    assert_spec::<netplumb::route::Route>();
}

#[test]
fn no_netlink_packet_or_nix_type_in_public_signatures() {
    fn walk(dir: &Path, bad: &mut Vec<String>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, bad);
                continue;
            }
            let text = fs::read_to_string(&p).unwrap();
            let mut in_pub = false;
            for (i, line) in text.lines().enumerate() {
                let t = line.trim_start();
                if t.starts_with("pub fn")
                    || t.starts_with("pub use")
                    || t.starts_with("pub struct")
                    || t.starts_with("pub enum")
                    || t.starts_with("pub type")
                {
                    in_pub = true;
                }
                let foreign = ["netlink_packet", "netlink_sys", "nix::"];
                if in_pub && foreign.iter().any(|f| t.contains(f)) {
                    bad.push(format!("{}:{}: {t}", p.display(), i + 1));
                }
                if t.contains('{') || t.ends_with(';') {
                    in_pub = false;
                }
            }
        }
    }
    let mut bad = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut bad);
    assert!(bad.is_empty(), "{bad:#?}");
}

#[test]
fn the_error_type_holds_our_own_errno() {
    // `Error::errno` and the `errno` fields are netplumb's type, not the syscall crate's.
    let name = std::any::type_name::<netplumb::error::Errno>();
    assert!(name.starts_with("netplumb::"), "{name}");
    let e = netplumb::Error::Privilege {
        what: "enter network namespace",
        errno: netplumb::error::Errno::EPERM,
    };
    assert_eq!(e.errno(), Some(netplumb::error::Errno::from_raw(1)));
    assert_eq!(e.kind(), netplumb::ErrorKind::PermissionDenied);
    assert!(
        e.to_string().contains("Operation not permitted (EPERM)"),
        "{e}"
    );
}

#[test]
fn the_network_types_of_our_signatures_are_reexported() {
    // Named through netplumb alone, as a user without an `ipnet` dependency names them.
    let net: netplumb::IpNet = netplumb::ipam::parse_subnet("subnet", "10.1.0.0/16").unwrap();
    let v4: netplumb::Ipv4Net = "10.1.0.0/16".parse().unwrap();
    let v6: netplumb::Ipv6Net = "fd00::/64".parse().unwrap();
    assert_eq!(net, netplumb::IpNet::V4(v4));
    let cfg = netplumb::firewall::NetworkRules::new("n", "br-n")
        .subnet(net)
        .subnet(v6.into());
    let text = format!("{cfg:?}");
    assert!(
        text.contains("10.1.0.0/16") && text.contains("fd00::/64"),
        "{text}"
    );
}
