//! What the whole-operation benches share: sample statistics and where results go.

#![allow(dead_code)]

use std::path::PathBuf;

/// Median, minimum, maximum and mean of a set of samples.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// The statistics of `v` (sorted in place; must not be empty).
pub fn stats(v: &mut [f64]) -> Stats {
    assert!(!v.is_empty(), "no samples");
    v.sort_by(f64::total_cmp);
    let k = v.len();
    let median = if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    };
    Stats {
        median,
        min: v[0],
        max: v[k - 1],
        mean: v.iter().sum::<f64>() / k as f64,
    }
}

/// `target/bench-results` (or under `CARGO_TARGET_DIR`).
pub fn results_dir() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => manifest.join(t), // an absolute path replaces `manifest`
        None => manifest.join("target"),
    };
    target.join("bench-results")
}
