//! [`PortBook`]: where the allocator looks up and records published ports and the
//! round-robin cursors. The registry file ([`Registry`]) is one; the runtime database
//! of a [`crate::network::Host`] is another, so that a connect records its ports in the
//! same transaction as its lease and its attachment.

use std::net::IpAddr;

use super::published::PublishedPort;
use super::range::Proto;
use super::registry::{CursorKey, Registry};
use crate::error::Result;

/// The published ports and cursors an allocation reads and changes. `Send`: the
/// allocation runs on the namespace's thread, where its probe sockets are made.
pub(crate) trait PortBook: Send {
    /// Whether a published port of `proto` on `port` overlaps host address `ip`.
    fn conflict(&mut self, proto: Proto, ip: IpAddr, port: u16) -> Result<bool>;
    /// The last port handed out in a range.
    fn cursor(&mut self, key: &CursorKey) -> Result<Option<u16>>;
    /// Moves a range's cursor.
    fn set_cursor(&mut self, key: CursorKey, port: u16) -> Result<()>;
    /// Records `p` (the caller has checked [`PortBook::conflict`]).
    fn insert(&mut self, p: PublishedPort) -> Result<()>;
    /// Removes every record of `p`'s protocol, host address and host port; true if any.
    fn remove(&mut self, p: &PublishedPort) -> Result<bool>;
}

impl PortBook for Registry {
    fn conflict(&mut self, proto: Proto, ip: IpAddr, port: u16) -> Result<bool> {
        Ok(Registry::conflict(self, proto, ip, port).is_some())
    }

    fn cursor(&mut self, key: &CursorKey) -> Result<Option<u16>> {
        Ok(Registry::cursor(self, key))
    }

    fn set_cursor(&mut self, key: CursorKey, port: u16) -> Result<()> {
        Registry::set_cursor(self, key, port);
        Ok(())
    }

    fn insert(&mut self, p: PublishedPort) -> Result<()> {
        Registry::insert(self, p);
        Ok(())
    }

    fn remove(&mut self, p: &PublishedPort) -> Result<bool> {
        Ok(Registry::remove(self, p))
    }
}
