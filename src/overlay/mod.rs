//! VXLAN overlay networks spanning several hosts (placeholder: being written).

mod discovery;

pub use discovery::{PeerDiscovery, PeerEndpoint, PeerHost, PeerView, StaticPeers};
