//! The names a network's parts get from the network and its containers: the IPAM
//! networks holding its subnets, and the host ends of its veths.

use crate::link::veth_name;

/// The name of the IPAM network holding a network's subnet of one family.
pub(crate) fn ipam_name(network: &str, v6: bool) -> String {
    if v6 {
        format!("{network}/v6")
    } else {
        network.to_owned()
    }
}

/// The host end of `container`'s veth on `network`: `veth` and 7 hex digits (a `salt`
/// breaks ties).
pub(crate) fn host_veth_name(container: &str, network: &str, salt: u32) -> String {
    veth_name(&format!("{container}/{network}/{salt}"))
}
