//! A host port one container publishes on two of its networks (as netavark maps a
//! container's ports on each network): both connects succeed, the port answers, it keeps
//! answering when either network leaves, it is free again once both have left, and
//! another container cannot take it meanwhile. Both firewall backends; with iptables each
//! network has its own DNAT rule (netavark's layout), with nf_tables one map entry that
//! moves to the remaining network. Checked against the kernel: traffic from another
//! machine, the rules `iptables-save` lists, and `reconcile`/`gc` finding nothing to do.

#![cfg(feature = "store")]

mod common;

use netplumb::firewall::Backend;
use netplumb::netns::Sandbox;
use netplumb::network::{Container, Host, HostOptions, NetworkConfig};

fn connect(h: &mut Host, net: &str, id: &str, ns: &netplumb::Netns) {
    let c = Container::new(id, ns).publish("8080:80".parse().unwrap());
    h.connect(net, &c)
        .unwrap_or_else(|e| panic!("connect {id} to {net}: {e}"));
}

fn answers(out: &netplumb::Netns) -> bool {
    common::call_peer(out, "192.0.2.1:8080".parse().unwrap()).is_some()
}

fn body(s: &Sandbox, backend: Backend) {
    common::no_dad(s.host());
    let out = common::outside(s);
    let mut h = HostOptions::new("/run/netplumb-shared")
        .backend(backend)
        .open(s.host())
        .unwrap();
    for (name, subnet) in [("n1", "10.61.0.0/24"), ("n2", "10.62.0.0/24")] {
        let cfg = NetworkConfig::new(name)
            .bridge(&format!("br-{name}"))
            .subnet(subnet.parse().unwrap());
        h.create_network(&cfg).unwrap();
    }
    let ns = s.netns_dir().create("c").unwrap();
    common::no_dad(&ns);
    common::serve_peer(&ns, "0.0.0.0:80".parse().unwrap());
    connect(&mut h, "n2", "c1", &ns);
    // Its second network gets a default route too (of a higher metric), as Podman's
    // networks each give one: the replies find their way when the first network leaves.
    let c = Container::new("c1", &ns)
        .ifname("eth1")
        .route_with_metric(
            "0.0.0.0/0".parse().unwrap(),
            "10.61.0.1".parse().unwrap(),
            200,
        )
        .publish("8080:80".parse().unwrap());
    h.connect("n1", &c).unwrap();
    assert!(answers(&out), "with both networks");
    if backend == Backend::Iptables {
        // netavark's layout: one DNAT per network.
        let rules = common::run_in(s.host(), "iptables-save", &["-t", "nat"]).unwrap_or_default();
        for to in ["10.61.0.2:80", "10.62.0.2:80"] {
            assert!(
                rules.contains(&format!("--to-destination {to}")),
                "{to}: {rules}"
            );
        }
    }
    // Another container cannot take the port.
    let other = s.netns_dir().create("o").unwrap();
    let e = h
        .connect(
            "n1",
            &Container::new("o1", &other).publish("8080:80".parse().unwrap()),
        )
        .unwrap_err();
    assert!(e.to_string().contains("8080"), "{e}");
    // The records are what the firewall holds.
    assert!(h.reconcile().unwrap().is_empty());
    let gc = h.gc(&["c1"]).unwrap();
    assert!(gc.ports.is_empty() && gc.stray_links.is_empty(), "{gc:?}");

    // n1 (the holder in nf_tables) leaves: n2 answers.
    h.disconnect("n1", "c1").unwrap();
    assert!(answers(&out), "after n1 left");
    assert!(h.reconcile().unwrap().is_empty());
    assert!(
        !h.published_ports().unwrap().is_empty(),
        "the port was released"
    );
    // n1 comes back (and takes the port over in nf_tables), then n2 leaves.
    h.connect("n1", &c).unwrap();
    h.disconnect("n2", "c1").unwrap();
    assert!(answers(&out), "after n2 left");
    assert!(h.reconcile().unwrap().is_empty());
    // The last one leaves: the port is free, and nothing answers.
    h.disconnect("n1", "c1").unwrap();
    assert!(!answers(&out), "after both left");
    assert!(h.published_ports().unwrap().is_empty());
    connect(&mut h, "n1", "o1", &other);
    h.disconnect("n1", "o1").unwrap();
    for n in ["n1", "n2"] {
        h.remove_network(n, false).unwrap();
    }
}

#[test]
fn nftables_a_port_on_two_networks_of_one_container() {
    common::with_backend(
        "shared_ports::nftables",
        Backend::Nftables,
        netplumb::firewall::open,
        body,
    );
}

#[cfg(feature = "iptables")]
#[test]
fn iptables_a_port_on_two_networks_of_one_container() {
    common::with_backend(
        "shared_ports::iptables",
        Backend::Iptables,
        netplumb::firewall::open,
        body,
    );
}
