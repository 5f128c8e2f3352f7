//! cmpkit's counterpart of OpenSSL's `ossl_cmp_bench` (shared/bench): client and server in
//! one process and one thread, every request and response as DER (compare with OpenSSL's
//! `_der` rows), lines in the same format, plus allocations per transaction (Rust heap,
//! counted by a global allocator) and the crypto floor measured in the same run.
//!
//! ```text
//! bench_cmp [N] [der] [all|floor|<scenario>] [rounds]   # like ossl_cmp_bench
//! bench_cmp http <seconds> <workers> <connections> [scenario=…] [client=…] [depth=N]
//!                                                     # HTTP server throughput, loopback
//! ```
//! Build with `cargo build --release --example bench_cmp`; see BENCHMARKS.md.

#[path = "../benches/common/mod.rs"]
mod common;
#[path = "../benches/common/http_load.rs"]
mod http_load;

use common::*;
use std::sync::Arc;
use std::time::Instant;

#[global_allocator]
static GLOBAL: Counting = Counting;

const WARMUP: usize = 10;

#[derive(Clone, Copy, Default)]
struct Clock {
    wall: f64,
    cpu: f64,
}

fn thread_cpu() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 * 1e6 + ts.tv_nsec as f64 / 1e3
}

fn now() -> (Instant, f64) {
    (Instant::now(), thread_cpu())
}

fn since(t: (Instant, f64)) -> Clock {
    Clock {
        wall: t.0.elapsed().as_secs_f64() * 1e6,
        cpu: thread_cpu() - t.1,
    }
}

/// Sum over batches and the best per-item batch, as the C harness accounts.
#[derive(Default)]
struct Acc {
    n: usize,
    sum: Clock,
    best: Option<Clock>,
    allocs: u64,
    bytes: u64,
    /// CPU per item of each batch, for the median.
    batches: Vec<f64>,
}

impl Acc {
    fn add(&mut self, c: Clock, n: usize) {
        self.n += n;
        self.sum.wall += c.wall;
        self.sum.cpu += c.cpu;
        let per = Clock {
            wall: c.wall / n as f64,
            cpu: c.cpu / n as f64,
        };
        self.batches.push(per.cpu);
        let b = self.best.get_or_insert(per);
        b.wall = b.wall.min(per.wall);
        b.cpu = b.cpu.min(per.cpu);
    }
    fn cpu(&self) -> f64 {
        self.sum.cpu / self.n as f64
    }
    /// The median batch's CPU per item: robust against the batches a busy shared machine
    /// slows down (the mean is not).
    fn median_cpu(&self) -> f64 {
        let mut v = self.batches.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => 0.0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }
    fn print(&self, what: &str, name: &str) {
        let per = if what == "scenario" { "_per_txn" } else { "" };
        let b = self.best.unwrap_or_default();
        print!("{what}={name}");
        if what == "scenario" {
            print!(" n={}", self.n);
        }
        print!(
            " us{per}={:.2} cpu_us{per}={:.2} median_cpu_us{per}={:.2} best_us{per}={:.2} best_cpu_us{per}={:.2}",
            self.sum.wall / self.n as f64,
            self.cpu(),
            self.median_cpu(),
            b.wall,
            b.cpu
        );
        if what == "scenario" {
            print!(
                " allocs_per_txn={:.1} bytes_per_txn={:.0}",
                self.allocs as f64 / self.n as f64,
                self.bytes as f64 / self.n as f64
            );
        }
        println!();
    }
}

/// The timed part, a symbol of its own so that callgrind can zero and dump around it
/// (`--zero-before=bench_timed_loop --dump-after=bench_timed_loop`).
#[inline(never)]
#[no_mangle]
fn bench_timed_loop(pki: &Pki, s: Scenario, keys: &[Arc<cmpkit::crypto::SoftwareKey>]) {
    for k in keys {
        run_local(pki, s, k);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("http") {
        return http_load::run(&args[1..]);
    }
    let n: usize = args.first().map_or(1000, |a| a.parse().expect("N"));
    let mode = args.get(1).map_or("der", String::as_str);
    assert_eq!(
        mode, "der",
        "cmpkit has only the der mode (DER on the wire)"
    );
    let only = args.get(2).map_or("all", String::as_str);
    let rounds: usize = args.get(3).map_or(10, |a| a.parse().expect("rounds"));
    let scenarios: Vec<Scenario> = match only {
        "all" => SCENARIOS.to_vec(),
        "floor" => Vec::new(),
        s => vec![Scenario::from_name(s).expect("unknown scenario")],
    };
    let run_floor = only == "all" || only == "floor";

    let pki = Pki::new();
    let keys: Vec<_> = (0..n + WARMUP).map(|_| new_key()).collect();
    for &s in &scenarios {
        bench_timed_loop(&pki, s, &keys[n..]); // warm-up, untimed
    }
    let mut accs: Vec<Acc> = scenarios.iter().map(|_| Acc::default()).collect();
    let mut floor = Floor::new();
    let mut sig = [0u8; 80];
    let mut floors: [Acc; 4] = Default::default();
    let batch = n.div_ceil(rounds);
    for r in 0..rounds {
        let lo = (r * batch).min(n);
        let hi = ((r + 1) * batch).min(n);
        for (i, &s) in scenarios.iter().enumerate() {
            if hi == lo {
                continue;
            }
            let (a0, b0) = alloc_counts();
            let t = now();
            bench_timed_loop(&pki, s, &keys[lo..hi]);
            let c = since(t);
            let (a1, b1) = alloc_counts();
            accs[i].add(c, hi - lo);
            accs[i].allocs += a1 - a0;
            accs[i].bytes += b1 - b0;
        }
        if run_floor {
            let iters = 2000 / rounds + 1;
            let t = now();
            for _ in 0..iters {
                std::hint::black_box(floor.sign(&mut sig));
            }
            floors[0].add(since(t), iters);
            let t = now();
            for _ in 0..iters {
                floor.verify();
            }
            floors[1].add(since(t), iters);
            let iters = 1000 / rounds + 1;
            let t = now();
            let mut key = Vec::new();
            for _ in 0..iters {
                key = std::hint::black_box(floor.pbm_key());
            }
            floors[2].add(since(t), iters);
            let iters = 4000 / rounds + 1;
            let t = now();
            for _ in 0..iters {
                std::hint::black_box(floor.mac(&key));
            }
            floors[3].add(since(t), iters);
        }
    }

    println!(
        "# cmpkit {} with {}, N={n} in {rounds} rounds, warm-up {WARMUP}, one process, one thread",
        env!("CARGO_PKG_VERSION"),
        openssl::version::version()
    );
    for (i, s) in scenarios.iter().enumerate() {
        accs[i].print("scenario", &format!("{}_der", s.name()));
    }
    if run_floor {
        for (a, name) in floors.iter().zip([
            "ecdsa_p256_sign",
            "ecdsa_p256_verify",
            "pbm_key_sha256_500",
            "hmac_sha1_512",
        ]) {
            a.print("floor", name);
        }
        // Floor per transaction from OUR operation counts; ratio and overhead on CPU time,
        // from the means and from the medians of the batches (the floor's batches run
        // between the scenarios', so both see the same machine).
        let mean = |a: &Acc| a.cpu();
        let median = |a: &Acc| a.median_cpu();
        for (i, &s) in scenarios.iter().enumerate() {
            let o = ops(s);
            let (sg, vf, pb, mc) = (o.signs, o.verifies, o.derivations, o.macs);
            let per = |f: &dyn Fn(&Acc) -> f64| {
                let fl = sg as f64 * f(&floors[0])
                    + vf as f64 * f(&floors[1])
                    + pb as f64 * f(&floors[2])
                    + mc as f64 * f(&floors[3]);
                (fl, f(&accs[i]), (f(&accs[i]) / fl - 1.0) * 100.0)
            };
            let ((fl, cpu, pct), (mfl, mcpu, mpct)) = (per(&mean), per(&median));
            println!(
                "overhead scenario={}_der signs={sg} verifies={vf} pbm={pb} macs={mc} floor_cpu_us={fl:.1} cpu_us_per_txn={cpu:.1} overhead_pct={pct:.1} median_floor_cpu_us={mfl:.1} median_cpu_us_per_txn={mcpu:.1} median_overhead_pct={mpct:.1}",
                s.name(),
            );
        }
    }
}
