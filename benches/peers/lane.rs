//! A lane: one subject in its own sandbox, on a thread of its own, doing what it is told
//! one message at a time. The driver keeps one lane per subject and gives them turns
//! container by container, so that a shared machine's load falls on every subject alike.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::Instant;

use netplumb::netns::Sandbox;

use crate::world::{Ctr, World};
use crate::{Subject, Who};

/// What a lane is told to do.
pub enum Cmd {
    /// Creates container `i`'s namespace (untimed), then attaches it (timed).
    Attach(usize),
    /// Detaches container `i` (timed); its namespace stays.
    Detach(usize),
    /// Checks container `i`: outbound masquerade and its published port.
    Check(usize),
    /// Attaches every container whose namespace exists again (untimed), then detaches them
    /// all at once (timed, total).
    DetachMany,
    /// Detaches container `i` with deferred link deletion (timed; netplumb only).
    DetachDeferred(usize),
    /// Waits for deferred deletions (untimed; netplumb only).
    Flush,
    /// Deletes the namespaces of the containers.
    DropAll,
    /// Checks that nothing is left, then ends the lane.
    Finish,
}

/// A subject's sandbox and the thread it lives on.
pub struct Lane {
    tx: Option<Sender<Cmd>>,
    rx: Receiver<Result<f64, String>>,
    thread: Option<JoinHandle<()>>,
    /// The subject's untimed setup (netplumb: `create_network`), µs.
    pub setup_us: f64,
    /// Whether the subject is netplumb.
    pub ours: bool,
}

impl Lane {
    /// Starts `who` in a fresh sandbox.
    pub fn start(who: Who) -> Result<Lane, String> {
        let ours = matches!(who, Who::Ours);
        let (tx, cmds) = channel();
        let (replies, rx) = channel();
        let thread = std::thread::spawn(move || {
            let failed = replies.clone();
            let r = netplumb::netns::sandbox(|sb| serve(sb, &who, cmds, replies));
            if let Err(e) = r {
                let _ = failed.send(Err(e.to_string()));
            }
        });
        let mut lane = Lane {
            tx: Some(tx),
            rx,
            thread: Some(thread),
            setup_us: 0.0,
            ours,
        };
        lane.setup_us = lane
            .rx
            .recv()
            .map_err(|_| "lane ended during setup".to_string())??;
        Ok(lane)
    }

    /// Sends `cmd` and waits for its result (a time in µs, or 0 when untimed).
    pub fn call(&self, cmd: Cmd) -> Result<f64, String> {
        let tx = self.tx.as_ref().expect("lane open");
        tx.send(cmd).map_err(|_| "lane ended".to_string())?;
        self.rx.recv().map_err(|_| "lane ended".to_string())?
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn timed(f: impl FnOnce() -> Result<(), String>) -> Result<f64, String> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64() * 1e6)
}

/// The lane's loop, on the sandbox's thread: every peer process starts from here.
fn serve(sb: &Sandbox, who: &Who, cmds: Receiver<Cmd>, replies: Sender<Result<f64, String>>) {
    let mut t = Instant::now();
    let opened = World::new(sb).and_then(|w| {
        t = Instant::now();
        who.open(&w).map(|s| (w, s))
    });
    let (w, mut s) = match opened {
        Ok(ws) => ws,
        Err(e) => {
            let _ = replies.send(Err(e));
            return;
        }
    };
    let _ = replies.send(Ok(t.elapsed().as_secs_f64() * 1e6));
    let mut ctrs: HashMap<usize, Ctr> = HashMap::new();
    for cmd in cmds {
        let finish = matches!(cmd, Cmd::Finish);
        let r = step(&w, s.as_mut(), &mut ctrs, cmd);
        if replies.send(r).is_err() || finish {
            break;
        }
    }
}

fn ctr(ctrs: &HashMap<usize, Ctr>, i: usize) -> Result<&Ctr, String> {
    ctrs.get(&i).ok_or_else(|| format!("no container {i}"))
}

fn step(
    w: &World,
    s: &mut dyn Subject,
    ctrs: &mut HashMap<usize, Ctr>,
    cmd: Cmd,
) -> Result<f64, String> {
    match cmd {
        Cmd::Attach(i) => {
            let c = match ctrs.entry(i) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(e) => e.insert(w.ctr(i)?),
            };
            timed(|| s.attach(c))
        }
        Cmd::Detach(i) => timed(|| s.detach(ctr(ctrs, i)?)),
        Cmd::DetachDeferred(i) => timed(|| s.detach_deferred(ctr(ctrs, i)?)),
        Cmd::Flush => s.flush().map(|()| 0.0),
        Cmd::Check(i) => w.check(ctr(ctrs, i)?).map(|_| 0.0),
        Cmd::DetachMany => {
            let mut all: Vec<Ctr> = ctrs.drain().map(|(_, c)| c).collect();
            all.sort_by_key(|c| c.i);
            for c in &all {
                s.attach(c)?;
            }
            let r = timed(|| s.detach_many(&all));
            ctrs.extend(all.into_iter().map(|c| (c.i, c)));
            r
        }
        Cmd::DropAll => {
            for (_, c) in ctrs.drain() {
                w.drop_ctr(c);
            }
            Ok(0.0)
        }
        Cmd::Finish => {
            s.finish()?;
            let left = w.leftovers()?;
            if left.is_empty() {
                Ok(0.0)
            } else {
                Err(format!("left behind: {}", left.join("; ")))
            }
        }
    }
}
