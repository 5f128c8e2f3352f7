//! The C examples built with AddressSanitizer + UndefinedBehaviorSanitizer (gcc/clang
//! `-fsanitize=address,undefined`, LeakSanitizer on) enroll against OpenSSL's mock server
//! without a sanitizer report.
//!
//! What this covers: the C side of the API contract as the examples use it — buffers and
//! lengths passed in and out (`cmpkit_response_cert_pem`, `cmpkit_key_private_key_pem`,
//! borrowed `cmpkit_transaction_request` bytes), strings returned by the library, and every
//! handle freed exactly once (LeakSanitizer intercepts malloc/free process-wide, so a handle
//! the example forgets, or that the library leaks through its own allocations, is reported).
//! What it does not: the Rust cdylib itself is *not* instrumented (it is the ordinary cargo
//! build), so out-of-bounds accesses inside the library are not detected here; the library's
//! unsafe plumbing is covered by the miri run (see README, "Testing") and by valgrind in
//! tests/c_examples.rs. A ThreadSanitizer run waits for the server (there is no concurrent C
//! user yet).

mod common;

use common::cexamples::{compile_with, describe, Setup};
use std::process::{Command, Stdio};
use std::time::Instant;

const FLAGS: &[&str] = &[
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-omit-frame-pointer",
    "-g",
];

/// Exit codes the sanitizers use, distinct from the examples' own 1 and 2.
const ASAN_OPTIONS: &str = "detect_leaks=1:exitcode=86:abort_on_error=0:strict_string_checks=1";
const UBSAN_OPTIONS: &str = "print_stacktrace=1:halt_on_error=1:exitcode=87";

/// Whether `cc` can build and run a sanitized program here (libasan/libubsan present, and
/// LeakSanitizer usable: it needs ptrace-free /proc access, which some sandboxes deny).
fn sanitizers_work() -> Result<(), String> {
    let dir = common::new_work_dir("san-probe");
    let src = dir.join("probe.c");
    std::fs::write(
        &src,
        "#include <stdlib.h>\nint main(void){void*p=malloc(1);free(p);return 0;}\n",
    )
    .unwrap();
    let exe = dir.join("probe");
    let out = Command::new("cc")
        .args(FLAGS)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cc: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cc -fsanitize=address,undefined failed:\n{}",
            describe(&out)
        ));
    }
    let out = Command::new(&exe)
        .env("ASAN_OPTIONS", ASAN_OPTIONS)
        .env("UBSAN_OPTIONS", UBSAN_OPTIONS)
        .output()
        .map_err(|e| format!("probe: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "a sanitized no-op program fails here:\n{}",
            describe(&out)
        ));
    }
    Ok(())
}

fn assert_no_report(what: &str, out: &std::process::Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    for marker in [
        "AddressSanitizer",
        "LeakSanitizer",
        "UndefinedBehaviorSanitizer",
        "runtime error:",
    ] {
        assert!(
            !stderr.contains(marker),
            "{what}: sanitizer report ({marker}):\n{}",
            describe(out)
        );
    }
}

#[test]
fn c_examples_run_clean_under_asan_and_ubsan() {
    if !common::available_or_skip("c_examples_run_clean_under_asan_and_ubsan") {
        return;
    }
    if let Err(why) = sanitizers_work() {
        if common::in_ci() {
            panic!("c_examples_run_clean_under_asan_and_ubsan: {why} (CI is set; .ci/run installs libasan/libubsan with gcc)");
        }
        eprintln!("NOTICE: skipping c_examples_run_clean_under_asan_and_ubsan: {why}");
        return;
    }
    let env = [
        ("ASAN_OPTIONS", ASAN_OPTIONS),
        ("UBSAN_OPTIONS", UBSAN_OPTIONS),
    ];
    for (name, extra) in [
        ("enroll", &["--san-dns", "san.example"][..]),
        ("enroll", &["--implicit-confirm"][..]),
        ("nonblocking", &[][..]),
    ] {
        let start = Instant::now();
        let exe = compile_with(name, "-asan-ubsan", FLAGS);
        let s = Setup::new(
            &format!("c-san-{name}"),
            if extra.contains(&"--implicit-confirm") {
                &["-grant_implicitconf"][..]
            } else {
                &[][..]
            },
        );
        let out = s.run_env(&[], &exe, &s.args(common::SECRET, extra), &env);
        assert_no_report(name, &out);
        s.assert_enrolled(&format!("{name} {extra:?} with ASan+UBSan"), &out);
        println!(
            "sanitizers: {name} {extra:?}: exit 0, no ASan/LSan/UBSan report ({:.1?})",
            start.elapsed()
        );
    }
    // A failing run (wrong secret → exit 1) must also free everything on its error path.
    let exe = compile_with("enroll", "-asan-ubsan", FLAGS);
    let s = Setup::new("c-san-wrong-secret", &[]);
    let out = s.run_env(&[], &exe, &s.args("not-the-secret", &[]), &env);
    assert_no_report("enroll with a wrong secret", &out);
    assert_eq!(out.status.code(), Some(1), "{}", describe(&out));
    println!("sanitizers: enroll with a wrong secret: exit 1 (mac-mismatch), no report");
}
