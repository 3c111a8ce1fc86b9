//! Host names: [`Hostname`] (RFC 1123, for `--hostname`), Docker's [`default_hostname`],
//! and the checks of the names written into `/etc/hosts` and `/etc/resolv.conf`.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// The longest DNS name, in bytes (RFC 1123, section 2.1).
const NAME_MAX: usize = 253;
/// The longest DNS label, in bytes.
const LABEL_MAX: usize = 63;

/// What is wrong with `name` as an RFC 1123 host name, if anything.
pub(super) fn dns_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty");
    }
    if name.len() > NAME_MAX {
        return Some("longer than 253 bytes");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Some("has an empty label (leading, trailing or doubled '.')");
        }
        if label.len() > LABEL_MAX {
            return Some("has a label longer than 63 bytes");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Some("has a character other than letters, digits, '-' and '.'");
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Some("has a label that starts or ends with '-'");
        }
    }
    None
}

/// Checks a name written into `/etc/hosts` that is not the host name (an `--add-host` name,
/// a container name, an alias). These follow Docker, which allows `_` and the like: only
/// what would break the file's syntax is refused.
pub(super) fn check_hosts_name(field: &'static str, name: &str) -> Result<()> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.len() > NAME_MAX {
        "longer than 253 bytes"
    } else if !name.bytes().all(|b| b.is_ascii_graphic() && b != b'#') {
        "has whitespace, '#', a control or a non-ASCII character"
    } else {
        return Ok(());
    };
    Err(Error::invalid(field, name, reason))
}

/// A container's host name (`docker run --hostname`), checked against RFC 1123: labels of 1
/// to 63 letters, digits and `-`, not starting or ending with `-`, separated by `.`, at most
/// 253 bytes in all. A label may start with a digit, so Docker's default (the short id,
/// [`default_hostname`]) is valid even when it is all digits.
///
/// The kernel's UTS host name holds at most 64 bytes; a longer name is a valid DNS name, and
/// fine in `/etc/hosts`, but `sethostname` refuses it.
///
/// ```
/// use netplumb::network::files::Hostname;
/// let h: Hostname = "web.example.com".parse()?;
/// assert_eq!(h.short(), "web");
/// assert_eq!(h.to_string(), "web.example.com");
/// let e = Hostname::new("-web").unwrap_err();
/// assert_eq!(e.to_string(), r#"invalid hostname "-web": has a label that starts or ends with '-'"#);
/// # Ok::<(), netplumb::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hostname(String);

impl Hostname {
    /// A checked host name; the error names the rule the value breaks.
    pub fn new(name: &str) -> Result<Hostname> {
        match dns_name_problem(name) {
            Some(reason) => Err(Error::invalid("hostname", name, reason)),
            None => Ok(Hostname(name.to_owned())),
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first label (`web` for `web.example.com`).
    pub fn short(&self) -> &str {
        self.0.split('.').next().unwrap_or(&self.0)
    }
}

impl FromStr for Hostname {
    type Err = Error;

    fn from_str(s: &str) -> Result<Hostname> {
        Hostname::new(s)
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Hostname {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Docker's default host name: the first 12 hex digits of the container id, lower-cased.
///
/// ```
/// use netplumb::network::files::default_hostname;
/// let id = "3f2a1c0b9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
/// assert_eq!(default_hostname(id)?.as_str(), "3f2a1c0b9d8e");
/// assert!(default_hostname("web").is_err());
/// # Ok::<(), netplumb::Error>(())
/// ```
pub fn default_hostname(container_id: &str) -> Result<Hostname> {
    match container_id.get(..12) {
        Some(short) if short.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(Hostname(short.to_ascii_lowercase()))
        }
        _ => Err(Error::invalid(
            "container id",
            container_id,
            "does not start with 12 hex digits",
        )),
    }
}
