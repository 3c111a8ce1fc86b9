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
fn no_netlink_packet_type_in_public_signatures() {
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
                if in_pub && (t.contains("netlink_packet") || t.contains("netlink_sys")) {
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
