//! The backend-neutral rule model: what a container network needs from the firewall,
//! not a general firewall language. Values are validated before any backend sees them;
//! every error names the bad field.
//!
//! Its files: `proto` (the transport protocol), `network` (a network's rules, their
//! validation and the hashes that tag them), `port` (a published port).

mod network;
mod port;
mod proto;
#[cfg(test)]
mod tests;

pub(crate) use network::check_network_name;
pub use network::{LinkAllow, NetworkRules, NETWORK_NAME_MAX};
pub use port::PortRule;
pub use proto::Proto;
