//! The last close of an nf_tables socket that deleted objects waits for the kernel's
//! pending deletions (an RCU grace period, 10–15 ms) while holding the nf_tables commit
//! lock. A short-lived tool that removed rules hands its socket to a detached process of
//! its own (stdio closed, not waited for), which closes it a little later: the tool's
//! exit does not wait, and by then the deletions are usually done, so the close does not
//! hold up another process's commit either.

use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use netplumb::firewall::AnyFirewall;
use netplumb::network::Host;

/// Set in the detached process's environment.
const VAR: &str = "NETPLUMB_RELEASE_SOCKET";

/// Whether this process is the detached one: then it has waited and should exit.
pub fn is_release_process() -> bool {
    if std::env::var_os(VAR).is_none() {
        return false;
    }
    std::thread::sleep(Duration::from_millis(250));
    true
}

/// Hands `host`'s nf_tables socket to a detached process of this binary.
pub fn hand_off_firewall(host: &mut Host) {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let AnyFirewall::Nftables(fw) = host.firewall() else {
        return;
    };
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    if fcntl(fw.as_fd(), FcntlArg::F_SETFD(FdFlag::empty())).is_ok() {
        let _ = Command::new(me)
            .env(VAR, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}
