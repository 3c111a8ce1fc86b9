//! Kernel failures of a connect's steps (bridge and overlay networks) told as the object that clashes and where it is:
//! `link eth0 in namespace /run/netns/a already exists` rather than `add link (ip link add
//! veth026d37f master if2 … peer name eth0 … netns a): File exists`. Namespaces are named
//! by their file, or as `net:[INODE]` (as `/proc/PID/ns/net` reads) when they have none;
//! the bridge by its name. The kernel's own error goes to the debug log.

use std::os::unix::fs::MetadataExt;

use crate::error::{Error, Object};
use crate::netns::Netns;

/// `in namespace /run/netns/a`, or `in namespace net:[4026532…]` for one without a file.
pub(crate) fn in_netns(ns: &Netns) -> String {
    let p = ns.path();
    if std::fs::metadata(p).is_ok_and(|m| m.ino() == ns.inode()) && !p.starts_with("/proc") {
        format!("in namespace {}", p.display())
    } else {
        format!("in namespace net:[{}]", ns.inode())
    }
}

/// Where the host ends of veths and the bridges are.
pub(crate) const IN_HOST: &str = "in the host namespace";

/// `object name detail already exists`, the kernel's error `e` logged.
pub(crate) fn exists(object: Object, name: &str, detail: String, e: &Error) -> Error {
    log::debug!("{object} {name} {detail}: {e}");
    Error::Exists {
        object,
        name: name.to_owned(),
        detail: Some(detail),
    }
}

/// `object name detail not found`, the kernel's error `e` logged.
pub(crate) fn not_found(object: Object, name: &str, detail: String, e: &Error) -> Error {
    log::debug!("{object} {name} {detail}: {e}");
    Error::NotFound {
        object,
        name: name.to_owned(),
        detail: Some(detail),
    }
}

/// What each request of a batch adds, so that a refusal of request `i` of the batch is
/// told as the object it names.
#[derive(Default)]
pub(super) struct Adds(Vec<Option<(Object, String, String)>>);

impl Adds {
    /// Request number `self.len()` adds `object` named `name` (`detail` says where), or
    /// nothing worth naming with `None`.
    pub(super) fn push(&mut self, what: Option<(Object, String, String)>) {
        self.0.push(what);
    }

    /// `e`, a batch's error, as the object its failed request adds when the kernel said
    /// it exists already (`EEXIST`) or its link is gone (`ENODEV`); else `e` itself.
    pub(super) fn explain(&self, e: Error) -> Error {
        let Error::Batch { index, .. } = &e else {
            return e;
        };
        let Some(Some((object, name, detail))) = self.0.get(*index) else {
            return e;
        };
        if e.is_exists() {
            exists(*object, name, detail.clone(), &e)
        } else {
            e
        }
    }
}
