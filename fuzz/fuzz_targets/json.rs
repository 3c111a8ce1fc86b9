//! JSON read from outside: the etcd gateway's replies (range, transaction, put/delete,
//! lease grant and keep-alive, error bodies, watch streams), the records other hosts store
//! in etcd (IPAM networks, overlay definitions, host and endpoint registrations) and the
//! Docker-shaped inspect model. A stored IPAM network, however odd, is then run through
//! allocation in a `MemoryStore`; inspect values print and read back unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netplumb::fuzzing;
use netplumb::ipam::{Ipam, MemoryStore, Owner};
use netplumb::network::inspect::{to_json_pretty, ContainerNetworks, NetworkInspect};

/// Allocation over a network record as another host may have stored it.
fn allocate_in(net: netplumb::ipam::Network) {
    let name = net.name.clone();
    let probes: Vec<_> = [net.gateway, net.cursor, net.last_released]
        .into_iter()
        .flatten()
        .chain(net.reserved.iter().copied())
        .take(4)
        .collect();
    let _ = (net.bounds(), net.capacity());
    let Ok(store) = MemoryStore::from_snapshot(vec![net], Vec::new()) else {
        return;
    };
    let ipam = Ipam::new(store);
    for i in 0..3 {
        if let Ok(l) = ipam.allocate(&name, &Owner::new(format!("c{i}"), "eth0")) {
            let _ = l.cidr();
        }
    }
    for (i, a) in probes.into_iter().enumerate() {
        if let Ok(l) = ipam.allocate_addr(&name, &Owner::new(format!("p{i}"), "eth0"), a) {
            let _ = l.cidr();
        }
        if let Ok(netplumb::ipam::Released::Freed(l)) = ipam.release(&name, a) {
            let _ = l.cidr();
        }
    }
    for l in ipam.leases(&name).unwrap_or_default() {
        let _ = l.cidr();
    }
}

fn round_trip<T>(data: &[u8])
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    if let Ok(v) = serde_json::from_slice::<T>(data) {
        let shown = to_json_pretty(&v);
        let back: T = serde_json::from_str(&shown).expect("inspect JSON reads back");
        assert_eq!(back, v);
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = fuzzing::etcd_range(data);
    let _ = fuzzing::etcd_txn(data);
    let _ = fuzzing::etcd_write(data);
    let _ = fuzzing::etcd_lease(data);
    let _ = fuzzing::etcd_status(data.first().map_or(500, |&b| 400 + u16::from(b)), data);
    let _ = fuzzing::etcd_watch(data);
    let key = b"/netplumb/x";
    if let Ok(net) = fuzzing::ipam_record(key, data) {
        allocate_in(net);
    }
    if let Ok(ov) = fuzzing::overlay_network(key, data) {
        let _ = (
            ov.validate(),
            ov.gateway_ip(),
            ov.vxlan_name(),
            ov.bridge_name(),
        );
    }
    let _ = fuzzing::overlay_host(key, data);
    let _ = fuzzing::overlay_endpoint(key, data);
    round_trip::<NetworkInspect>(data);
    round_trip::<Vec<NetworkInspect>>(data);
    round_trip::<ContainerNetworks>(data);
});
