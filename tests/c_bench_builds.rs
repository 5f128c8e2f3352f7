//! `bench/c/cmp_side_by_side.c` (cmpkit's C API and OpenSSL's `OSSL_CMP_*` in one binary)
//! compiles warning-free as C11 against `include/cmpkit.h`, the cdylib of this build and the
//! libcrypto cmpkit is built with, and runs every scenario on both implementations with
//! N = 2. Only that it works is checked, never how fast: the figures are for
//! `bench/c_compare.sh` (BENCHMARKS.md, "Side by side in one C binary").

mod common;

use common::cexamples::{cc_against_cmpkit, describe};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const SCENARIOS: [&str; 6] = [
    "ir_mac",
    "ir_mac_implicit",
    "cr_sig",
    "kur_sig",
    "rr_sig",
    "genm_sig",
];

/// The OpenSSL that cmpkit is built with: `OPENSSL_DIR` if set (as for openssl-sys), else
/// the system's. Returns compiler flags (include path) and linker flags for libcrypto.
fn openssl_flags() -> (Vec<String>, Vec<String>) {
    match std::env::var("OPENSSL_DIR") {
        Ok(dir) if !dir.is_empty() => {
            let dir = Path::new(&dir);
            let lib = dir.join("lib");
            (
                vec![format!("-I{}", dir.join("include").display())],
                vec![
                    format!("-L{}", lib.display()),
                    format!("-Wl,-rpath,{}", lib.display()),
                    "-lcrypto".to_owned(),
                ],
            )
        }
        _ => (Vec::new(), vec!["-lcrypto".to_owned()]),
    }
}

/// Compiles the benchmark with `extra` compiler flags into `<work dir>/<name>`.
fn compile(name: &str, extra: &[&str]) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = common::new_work_dir("c-bench").join(name);
    let (cflags, libs) = openssl_flags();
    let flags: Vec<String> = std::iter::once("-O1".to_owned())
        .chain(cflags)
        .chain(extra.iter().map(|f| f.to_string()))
        .collect();
    cc_against_cmpkit(
        &root.join("bench/c/cmp_side_by_side.c"),
        &exe,
        &flags,
        &libs,
    );
    exe
}

/// Runs the benchmark with `args`, bounded to 120 s.
fn run(exe: &Path, args: &[&str]) -> Output {
    Command::new("timeout")
        .args(["-k", "5", "120"])
        .arg(exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cmp_side_by_side")
}

/// The value of `key=` on `line`, as a number.
fn field(line: &str, key: &str) -> f64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
        .parse()
        .unwrap_or_else(|e| panic!("{key} in {line:?}: {e}"))
}

/// Every scenario has a checked result line per implementation with N = 2, a ratio line and
/// a table row. `all_counted`: whether every malloc is counted (else all_allocs is -1).
fn assert_complete_report(stdout: &str, all_counted: bool) {
    assert!(stdout.starts_with("# OpenSSL "), "{stdout}");
    for s in SCENARIOS {
        for imp in ["openssl", "cmpkit"] {
            let prefix = format!("scenario={s} impl={imp} ");
            let line = stdout
                .lines()
                .find(|l| l.starts_with(&prefix))
                .unwrap_or_else(|| panic!("no {prefix} line in\n{stdout}"));
            assert_eq!(field(line, "n"), 2.0, "{line}");
            assert!(field(line, "cpu_us_per_txn") > 0.0, "{line}");
            let crypto = field(line, "crypto_allocs_per_txn");
            assert!(
                crypto > 0.0,
                "libcrypto allocates in every transaction: {line}"
            );
            let all = field(line, "all_allocs_per_txn");
            if all_counted {
                assert!(all >= crypto, "all allocations include libcrypto's: {line}");
            } else {
                assert_eq!(all, -1.0, "{line}");
            }
        }
        let ratio = stdout
            .lines()
            .find(|l| l.starts_with(&format!("ratio scenario={s} ")))
            .unwrap_or_else(|| panic!("no ratio line for {s} in\n{stdout}"));
        assert!(field(ratio, "cpu") > 0.0, "{ratio}");
        assert!(
            stdout.contains(&format!("| `{s}` | ")),
            "no table row for {s}"
        );
    }
}

#[test]
fn side_by_side_benchmark_builds_and_runs_every_scenario_on_both_libraries() {
    if !common::available_or_skip(
        "side_by_side_benchmark_builds_and_runs_every_scenario_on_both_libraries",
    ) {
        return;
    }
    let exe = compile("cmp_side_by_side", &[]);
    let out = run(&exe, &["2", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_complete_report(&stdout, cfg!(target_env = "gnu"));

    // One scenario alone; unknown scenarios and bad counts are usage errors (exit 1).
    let out = run(&exe, &["2", "1", "rr_sig"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("\nscenario=").count(), 2, "{stdout}");
    assert!(
        stdout.contains("scenario=rr_sig impl=cmpkit n=2 "),
        "{stdout}"
    );
    for bad in [&["2", "1", "no_such"][..], &["0"], &["2", "3"]] {
        let out = run(&exe, bad);
        assert_eq!(out.status.code(), Some(1), "{bad:?}: {}", describe(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("usage:"),
            "{bad:?}: {}",
            describe(&out)
        );
    }
}

#[test]
fn side_by_side_benchmark_builds_without_malloc_interposition() {
    if !common::available_or_skip("side_by_side_benchmark_builds_without_malloc_interposition") {
        return;
    }
    let exe = compile("cmp_side_by_side_no_malloc_count", &["-DNO_MALLOC_COUNT"]);
    let out = run(&exe, &["2", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", describe(&out));
    assert_complete_report(&String::from_utf8_lossy(&out.stdout), false);
}
