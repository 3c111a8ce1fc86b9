//! The threads and child processes of this process that wrote the firewall recently
//! (nf_tables batches by thread, `iptables-restore` runs by child pid), so that a
//! [`FirewallWatch`](crate::firewall::FirewallWatch) can tell netplumb's own deliberate
//! changes from damage. Both backends note their writers here.

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many of this process's writers are remembered.
const WRITERS: usize = 256;

/// The threads (and child processes) of this process that wrote nf_tables recently.
static OURS: Mutex<VecDeque<u32>> = Mutex::new(VecDeque::new());

/// Notes that `pid` (the calling thread when `None`) is about to write nf_tables on
/// netplumb's behalf, so that a [`FirewallWatch`](crate::firewall::FirewallWatch) does not
/// take it for damage.
pub(crate) fn note_writer(pid: Option<u32>) {
    let pid = pid.unwrap_or_else(|| nix::unistd::gettid().as_raw() as u32);
    let mut q = OURS.lock().unwrap_or_else(|p| p.into_inner());
    if q.back() == Some(&pid) {
        return;
    }
    q.retain(|&p| p != pid);
    if q.len() == WRITERS {
        q.pop_front();
    }
    q.push_back(pid);
}

/// Whether `pid` (a thread or child process of this process) wrote the firewall on
/// netplumb's behalf recently.
pub(crate) fn is_ours(pid: u32) -> bool {
    OURS.lock()
        .unwrap_or_else(|p| p.into_inner())
        .contains(&pid)
}
