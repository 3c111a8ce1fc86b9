//! [`Dummy`] and [`Ifb`]: links with no kind-specific settings (`ip link add NAME type dummy`).

use std::fmt;

use super::{common_setters, IfName, LinkCommon};
use crate::error::{Op, Result};
use crate::request::Request;
use crate::wire::link::{self as wl, IfInfo, LinkKind};
use crate::wire::{MsgBuf, NlmF};

macro_rules! plain_kind {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[must_use]
        pub struct $ty {
            name: IfName,
            common: LinkCommon,
        }

        impl $ty {
            /// A link named `name`.
            pub fn new(name: &str) -> Self {
                $ty {
                    name: IfName::unchecked(name),
                    common: LinkCommon::default(),
                }
            }

            common_setters!();
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "ip link add {}", self.name)?;
                self.common.fmt_ip(f)?;
                f.write_str(concat!(" type ", $kind))
            }
        }

        impl Request for $ty {
            fn op(&self) -> Op {
                Op::AddLink
            }

            fn validate(&self) -> Result<()> {
                self.name.check()?;
                self.common.check("link")
            }

            fn encode(&self, buf: &mut MsgBuf, seq: u32) {
                let attrs = self.common.attrs(Some(self.name.as_bytes()));
                let info: IfInfo = self.common.ifinfo();
                let kind = LinkKind::Plain($kind.as_bytes());
                wl::link_msg(buf, wl::RTM_NEWLINK, NlmF::NEW_EXCL, seq, &info, &attrs, Some(&kind));
            }
        }
    };
}

plain_kind!(
    /// A dummy link. Kernels without the `dummy` module answer "not supported"
    /// ([`Error::is_not_supported`](crate::Error::is_not_supported)).
    ///
    /// ```
    /// assert_eq!(netplumb::link::Dummy::new("d0").to_string(), "ip link add d0 type dummy");
    /// ```
    Dummy,
    "dummy"
);

plain_kind!(
    /// An intermediate functional block device (`ifb`).
    ///
    /// ```
    /// assert_eq!(netplumb::link::Ifb::new("ifb9").to_string(), "ip link add ifb9 type ifb");
    /// ```
    Ifb,
    "ifb"
);
