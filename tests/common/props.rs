//! Random and mutated inputs for the property tests of the parsers.

use super::Rng;

/// The pieces of a `|`-separated alphabet.
pub fn split(alphabet: &'static str) -> Vec<&'static str> {
    alphabet.split('|').collect()
}

/// A string of `max` pieces at most, drawn from `alphabet`.
pub fn random_text(rng: &mut Rng, alphabet: &[&str], max: usize) -> String {
    let len = rng.below(max + 1);
    (0..len)
        .map(|_| alphabet[rng.below(alphabet.len())])
        .collect()
}

/// `good` with a few bytes overwritten, inserted or removed, and maybe cut short.
pub fn mutate(rng: &mut Rng, good: &[u8]) -> Vec<u8> {
    let mut b = good.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(4) {
            0 | 1 if at < b.len() => b[at] = rng.next() as u8,
            2 => b.insert(at, rng.next() as u8),
            _ if at < b.len() => drop(b.remove(at)),
            _ => {}
        }
    }
    if rng.below(4) == 0 {
        b.truncate(rng.below(b.len() + 1));
    }
    b
}

/// Runs `check` on `n` mutations of each of `good`.
pub fn mutations(seed: u64, good: &[&[u8]], n: usize, mut check: impl FnMut(&[u8])) {
    let mut rng = Rng(seed);
    for g in good {
        check(g);
        for _ in 0..n {
            check(&mutate(&mut rng, g));
        }
    }
}

/// Text mutations that keep the input UTF-8 (lossily).
pub fn mutations_text(seed: u64, good: &[&str], n: usize, mut check: impl FnMut(&str)) {
    mutations(
        seed,
        &good.iter().map(|s| s.as_bytes()).collect::<Vec<_>>(),
        n,
        |b| check(&String::from_utf8_lossy(b)),
    );
}
