//! The `info` line of each high-level operation: what it did, to what, and how long it
//! took; or, when it failed, what it was asked and why it failed (its steps, and the
//! rollback of them, are logged at `debug` where they happen).

use std::fmt::Display;
use std::time::Instant;

use super::state::{Attachment, NetworkInfo};
use crate::error::Result;

/// The log target of the operation lines (the module users know, not this file's).
const TARGET: &str = "netplumb::network";

/// Logs the end of an operation started at `started`: `ok(value)` on success, else
/// `asked` and the error.
pub(super) fn finish<T>(
    started: Instant,
    r: &Result<T>,
    asked: impl FnOnce() -> String,
    ok: impl FnOnce(&T) -> String,
) {
    if !log::log_enabled!(log::Level::Info) {
        return;
    }
    let ms = started.elapsed().as_secs_f64() * 1e3;
    match r {
        Ok(v) => log::info!(target: TARGET, "{} ({ms:.2} ms)", ok(v)),
        Err(e) => log::info!(target: TARGET, "{} failed after {ms:.2} ms: {e}", asked()),
    }
}

/// `a, b, c`, or `none`.
pub(super) fn list<T: Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    let v: Vec<String> = items.iter().map(ToString::to_string).collect();
    v.join(", ")
}

/// The line of a created network.
pub(super) fn created(n: &NetworkInfo) -> String {
    format!(
        "network {} created: id {}, bridge {}, subnets {}, gateways {}",
        n.name,
        &n.id[..n.id.len().min(12)],
        n.bridge,
        list(&n.subnets),
        list(&n.gateways),
    )
}

/// The line of a connected container.
pub(super) fn connected(a: &Attachment, netns: &dyn Display) -> String {
    format!(
        "container {} ({}) connected to network {}: {} in {} as {}, addresses {}, ports {}, host veth {}",
        a.container,
        a.name,
        a.network,
        a.ifname,
        netns,
        a.mac.map(|m| m.to_string()).unwrap_or_default(),
        list(&a.addrs),
        list(&a.ports),
        a.host_veth,
    )
}
