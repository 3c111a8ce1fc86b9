//! The keys of the networks an [`EtcdDiscovery`](super::EtcdDiscovery) follows, kept
//! current from their watches' events, so that a watcher woken by a change builds its
//! view without reading the network's keys again (one range per watcher and change,
//! which at scale is most of what the watchers ask of etcd).
//!
//! A network's copy is current at a revision: it is made from a range (its revision R)
//! and then changed by each event of the network's watch whose revision is above R, in
//! the order the watch delivers them. It is valid only while every event after R is
//! still to come from the watch:
//! - a range is taken as the copy only when no event after R has been taken from the
//!   watch yet (else those events would be missing from it), and never replaces a copy
//!   that is newer;
//! - a watch opened or kept from a revision above R + 1 would skip events: the copy is
//!   dropped;
//! - a watch that fails may have lost events: the copy is dropped.
//!
//! Without a copy, a view is read from etcd (and becomes the copy).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::etcd::{Event, EventKind, KeyValue};

/// Keys and their values.
type Keys = BTreeMap<Vec<u8>, Vec<u8>>;

/// One network's keys and values, in order, at a revision.
pub(super) type KeysAt = (u64, Vec<(Vec<u8>, Vec<u8>)>);

/// One network's state.
#[derive(Debug, Default)]
struct Network {
    /// The keys and values under the network's prefix, current at the revision.
    copy: Option<(u64, Keys)>,
    /// The highest revision of an event taken from the network's watch.
    taken: u64,
}

/// The followed networks, by name.
#[derive(Debug, Default)]
pub(super) struct Follow(Mutex<BTreeMap<String, Network>>);

fn rev(r: i64) -> u64 {
    u64::try_from(r).unwrap_or(0)
}

impl Follow {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Network>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A range of the network's keys read at `revision`: the copy, unless events after
    /// it were taken already or the copy is newer.
    pub(super) fn ranged(&self, network: &str, revision: u64, kvs: &[KeyValue]) {
        let mut all = self.lock();
        let n = all.entry(network.to_owned()).or_default();
        let newer = n.copy.as_ref().is_some_and(|(r, _)| *r >= revision);
        if n.taken > revision || newer {
            return;
        }
        let keys = kvs
            .iter()
            .map(|kv| (kv.key.clone(), kv.value.clone()))
            .collect();
        n.copy = Some((revision, keys));
    }

    /// The network's watch delivers every change after `from - 1` (it was opened or kept
    /// from `from`): a copy older than that misses some, and is dropped.
    pub(super) fn watching_from(&self, network: &str, from: u64) {
        if let Some(n) = self.lock().get_mut(network) {
            if n.copy.as_ref().is_some_and(|(r, _)| r + 1 < from) {
                n.copy = None;
            }
        }
    }

    /// Events taken from the network's watch, in its order. The events of one revision
    /// (a transaction, a lease's expiry) come in one batch.
    pub(super) fn events(&self, network: &str, events: &[Event]) {
        let mut all = self.lock();
        let n = all.entry(network.to_owned()).or_default();
        let before = n.copy.as_ref().map(|(at, _)| *at);
        for e in events {
            let r = rev(e.kv.mod_revision);
            n.taken = n.taken.max(r);
            let (Some(before), Some((at, keys))) = (before, n.copy.as_mut()) else {
                continue;
            };
            if r <= before {
                continue; // in the copy already
            }
            match e.kind {
                EventKind::Put => keys.insert(e.kv.key.clone(), e.kv.value.clone()),
                EventKind::Delete => keys.remove(&e.kv.key),
            };
            *at = (*at).max(r);
        }
    }

    /// The network's watch failed: events may be lost.
    pub(super) fn lost(&self, network: &str) {
        if let Some(n) = self.lock().get_mut(network) {
            n.copy = None;
        }
    }

    /// The copy of the network's keys and its revision, if there is a valid one.
    pub(super) fn copy(&self, network: &str) -> Option<KeysAt> {
        let all = self.lock();
        let (at, keys) = all.get(network)?.copy.as_ref()?;
        Some((
            *at,
            keys.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, at: i64) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            mod_revision: at,
            ..KeyValue::default()
        }
    }

    fn put(key: &str, value: &str, at: i64) -> Event {
        Event {
            kind: EventKind::Put,
            kv: kv(key, value, at),
        }
    }

    fn del(key: &str, at: i64) -> Event {
        Event {
            kind: EventKind::Delete,
            kv: kv(key, "", at),
        }
    }

    fn keys(f: &Follow) -> Option<(u64, Vec<String>)> {
        f.copy("n").map(|(at, kvs)| {
            let v = kvs
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(&k),
                        String::from_utf8_lossy(&v)
                    )
                })
                .collect();
            (at, v)
        })
    }

    #[test]
    fn events_after_the_range_change_the_copy_and_older_ones_do_not() {
        let f = Follow::default();
        f.ranged("n", 5, &[kv("a", "1", 3), kv("b", "1", 5)]);
        // 4 and 5 are in the range already; 6 and 7 are new.
        f.events(
            "n",
            &[put("a", "0", 4), del("b", 5), put("c", "1", 6), del("a", 7)],
        );
        assert_eq!(keys(&f), Some((7, vec!["b=1".into(), "c=1".into()])));
        // Several keys of one revision (a lease expiring): all of them.
        f.events("n", &[del("b", 8), del("c", 8)]);
        assert_eq!(keys(&f), Some((8, vec![])));
    }

    #[test]
    fn a_range_older_than_what_the_watch_gave_is_not_taken() {
        let f = Follow::default();
        f.events("n", &[put("a", "1", 9)]);
        f.ranged("n", 8, &[]);
        assert_eq!(keys(&f), None, "event 9 would be missing");
        f.ranged("n", 9, &[kv("a", "1", 9)]);
        assert_eq!(keys(&f), Some((9, vec!["a=1".into()])));
        // Never replaced by an older range.
        f.events("n", &[put("b", "1", 10)]);
        f.ranged("n", 9, &[kv("a", "1", 9)]);
        assert_eq!(keys(&f).unwrap().0, 10);
    }

    #[test]
    fn a_gap_or_a_failed_watch_drops_the_copy() {
        let f = Follow::default();
        f.ranged("n", 5, &[]);
        f.watching_from("n", 6);
        assert!(keys(&f).is_some(), "a watch from 6 misses nothing after 5");
        f.watching_from("n", 8);
        assert_eq!(keys(&f), None, "6 and 7 would be missed");
        f.ranged("n", 9, &[]);
        f.lost("n");
        assert_eq!(keys(&f), None);
    }
}
