//! The fuzz targets' logic (tests/fuzz_logic, also built by `cargo fuzz` from fuzz/) as a
//! plain test: every seed (tests/vectors/**/*.der, the crash regressions in
//! tests/regressions/ and our own messages) plus a fixed number of random mutations of them,
//! from a fixed seed, so a failure reproduces. std only. The mutation count per target is
//! `CMPKIT_FUZZ_MUTATIONS` (default below); longer coverage-guided runs: fuzz/README.md.

mod fuzz_logic;

use cmpkit::message;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Mutations per target: `CMPKIT_FUZZ_MUTATIONS`, else the target's default (chosen for
/// about five seconds each in a debug build on a 2-core machine).
fn mutations(default: u64) -> u64 {
    std::env::var("CMPKIT_FUZZ_MUTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
}

/// The seed corpus: the DER vectors and the regression inputs, sorted by path, then our own
/// messages ([`fuzz_logic::own_messages`]).
fn seeds() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut paths = Vec::new();
    files_under(&root.join("tests/vectors"), "der", &mut paths);
    files_under(&root.join("tests/regressions"), "bin", &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let b = std::fs::read(&p).unwrap();
            (p.strip_prefix(root).unwrap().display().to_string(), b)
        })
        .chain(fuzz_logic::own_messages())
        .collect()
}

/// xorshift64*: a fixed, dependency-free pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: [u8; 10] = [0x00, 0x01, 0x7f, 0x80, 0x81, 0x82, 0x84, 0xff, 0x30, 0xa0];

/// One to four mutations of `input` (another seed may be spliced in).
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut m = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = m.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                m[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                m[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 if len > 0 => m.truncate(rng.below(len)),
            3 => {
                let i = rng.below(len + 1);
                m.insert(i, rng.next() as u8);
            }
            4 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                m.drain(a..b);
            }
            5 if len > 1 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(64)).min(len);
                let chunk = m[a..b].to_vec();
                let at = rng.below(len + 1);
                m.splice(at..at, chunk);
            }
            6 if !other.is_empty() => {
                let a = rng.below(other.len());
                let b = (a + 1 + rng.below(256)).min(other.len());
                let at = rng.below(len + 1);
                let end = (at + rng.below(b - a + 1)).min(len);
                m.splice(at..end, other[a..b].iter().copied());
            }
            _ if len > 0 => {
                // A length octet made long-form or absurd.
                let i = rng.below(len);
                m[i] = [0x84, 0x88, 0x80, 0xff][rng.below(4)];
            }
            _ => m.push(rng.next() as u8),
        }
    }
    m
}

fn run(target: &str, seed: u64, default_mutations: u64, f: impl Fn(&[u8])) {
    let corpus = seeds();
    assert!(corpus.len() > 50, "seed corpus too small: {}", corpus.len());
    let start = Instant::now();
    for (name, bytes) in &corpus {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(bytes)));
        assert!(r.is_ok(), "{target}: seed {name} fails");
    }
    let n = mutations(default_mutations);
    let mut rng = Rng(seed);
    for i in 0..n {
        let a = &corpus[rng.below(corpus.len())].1;
        let b = &corpus[rng.below(corpus.len())].1;
        let m = mutate(&mut rng, a, b);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&m)));
        if r.is_err() {
            let path = std::env::temp_dir().join(format!("cmpkit-{target}-crash-{i}.bin"));
            let _ = std::fs::write(&path, &m);
            panic!(
                "{target}: mutation {i} (seed {seed:#x}) fails; input saved to {}",
                path.display()
            );
        }
    }
    let took = start.elapsed();
    let total = corpus.len() as u64 + n;
    println!(
        "fuzz replay {target}: {} seeds + {n} mutations = {total} inputs, no failure, {:.1?} ({:.0} execs/s)",
        corpus.len(),
        took,
        total as f64 / took.as_secs_f64()
    );
}

#[test]
fn decode_target_replay() {
    run("decode", 0x5eed_0001, 5_000, fuzz_logic::decode);
}

#[test]
fn client_response_target_replay() {
    let stats = std::cell::RefCell::new(fuzz_logic::ClientStats::default());
    run("client_response", 0x5eed_0002, 1_000, |d| {
        fuzz_logic::client_response(d, &mut stats.borrow_mut())
    });
    let s = stats.borrow();
    println!(
        "fuzz replay client_response: {} fixed-up first responses accepted, {} second responses fed",
        s.accepted_first, s.second_fed
    );
    assert!(s.accepted_first > 0, "the fix-up never got past the checks");
}

#[test]
fn ffi_bytes_target_replay() {
    // Each exec starts a transaction (its ir MAC-protected with one PBM iteration, set by
    // cmpkit_ctx_set_mac_iterations) and builds a context: 2-6 ms in a debug build.
    run("ffi_bytes", 0x5eed_0003, 600, fuzz_logic::ffi_bytes);
}

#[test]
fn server_process_target_replay() {
    run(
        "server_process",
        0x5eed_0004,
        2_000,
        fuzz_logic::server_process,
    );
}

/// Our own messages (client and server flows, [`fuzz_logic::own_messages`]) through every
/// target; with `CMPKIT_FUZZ_SEED_DIR` set, also written there for `fuzz/seed.sh`.
#[test]
fn own_messages_seeds() {
    let own = fuzz_logic::own_messages();
    // ir, cr, kur: request, answer, certConf, pkiConf; rr, genm: request, answer.
    assert_eq!(own.len(), 16, "own messages: {}", own.len());
    for (name, bytes) in &own {
        fuzz_logic::decode(bytes);
        fuzz_logic::client_response(bytes, &mut fuzz_logic::ClientStats::default());
        fuzz_logic::ffi_bytes(bytes);
        fuzz_logic::server_process(bytes);
        assert!(
            message::decode(bytes, usize::MAX).is_ok(),
            "{name} does not decode"
        );
    }
    if let Some(dir) = std::env::var_os("CMPKIT_FUZZ_SEED_DIR") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in &own {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
        println!("{} own messages written to {}", own.len(), dir.display());
    }
}
