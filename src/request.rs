//! [`Request`]: a kernel change as plain data that can be validated, encoded, printed as
//! the equivalent `ip` command and executed by [`Rtnl`](crate::Rtnl); and [`Plan`], a
//! dry run that collects requests and prints them without I/O.

use std::fmt;

use crate::error::{Op, Result};
use crate::wire::MsgBuf;

/// One rtnetlink request.
///
/// `Display` prints the equivalent `ip` command line (used in errors, logs and plans).
pub trait Request: fmt::Display {
    /// What the request does, for errors.
    fn op(&self) -> Op;

    /// Checks the request without the kernel; every error names the bad field.
    fn validate(&self) -> Result<()>;

    /// Appends the request, with sequence number `seq`, to `buf`. Allocates nothing once
    /// `buf` is warm. Call [`Request::validate`] first: encoding does not check again.
    fn encode(&self, buf: &mut MsgBuf, seq: u32);
}

impl<T: Request + ?Sized> Request for &T {
    fn op(&self) -> Op {
        (**self).op()
    }
    fn validate(&self) -> Result<()> {
        (**self).validate()
    }
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        (**self).encode(buf, seq)
    }
}

impl<T: Request + ?Sized> Request for Box<T> {
    fn op(&self) -> Op {
        (**self).op()
    }
    fn validate(&self) -> Result<()> {
        (**self).validate()
    }
    fn encode(&self, buf: &mut MsgBuf, seq: u32) {
        (**self).encode(buf, seq)
    }
}

/// A dry run: requests collected and validated but never sent.
///
/// ```
/// use netplumb::{link::Bridge, request::Plan};
/// let mut plan = Plan::new();
/// plan.push(Bridge::new("br0").stp(false))?;
/// assert_eq!(plan.to_string(), "ip link add br0 type bridge stp_state 0\n");
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Default, Clone)]
pub struct Plan {
    lines: Vec<String>,
}

impl Plan {
    /// An empty plan.
    pub fn new() -> Self {
        Plan::default()
    }

    /// Validates `req` and records its `ip` line.
    pub fn push(&mut self, req: impl Request) -> Result<()> {
        req.validate()?;
        self.lines.push(req.to_string());
        Ok(())
    }

    /// The recorded lines, in order.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.lines {
            writeln!(f, "{l}")?;
        }
        Ok(())
    }
}
