//! The C examples in `c-examples/` compile warning-free as C11 against `include/cmpkit.h` and
//! the cdylib, and enroll against OpenSSL's mock server.

mod common;

use common::cexamples::{compile, failure_text, Setup};
use std::process::{Command, Stdio};

#[test]
fn enroll_c_example_enrolls_with_mac_and_confirms_the_certificate() {
    if !common::available_or_skip("enroll_c_example_enrolls_with_mac_and_confirms_the_certificate")
    {
        return;
    }
    let exe = compile("enroll");
    let s = Setup::new("c-enroll", &[]);
    let out = s.run(
        &[],
        &exe,
        &s.args(common::SECRET, &["--san-dns", "c.example"]),
    );
    let stdout = s.assert_enrolled("enroll", &out);
    assert!(stdout.contains("implicit confirm: not granted"), "{stdout}");
    assert!(stdout.contains("caPubs: "), "{stdout}");
    assert!(stdout.contains("extraCerts: "), "{stdout}");
    // Without implicit confirmation the certificate was confirmed with certConf.
    let log = s.server.log();
    assert!(
        log.matches("Received request").count() >= 2,
        "no certConf reached the server:\n{log}"
    );
}

#[test]
fn enroll_c_example_with_implicit_confirm_skips_cert_conf() {
    if !common::available_or_skip("enroll_c_example_with_implicit_confirm_skips_cert_conf") {
        return;
    }
    let exe = compile("enroll");
    let s = Setup::new("c-enroll-ic", &["-grant_implicitconf"]);
    let out = s.run(&[], &exe, &s.args(common::SECRET, &["--implicit-confirm"]));
    let stdout = s.assert_enrolled("enroll --implicit-confirm", &out);
    assert!(stdout.contains("implicit confirm: granted"), "{stdout}");
    let log = s.server.log();
    assert_eq!(
        log.matches("Received request").count(),
        1,
        "only the ir should reach the server:\n{log}"
    );
}

#[test]
fn external_key_c_example_signs_only_through_the_callback() {
    if !common::available_or_skip("external_key_c_example_signs_only_through_the_callback") {
        return;
    }
    let exe = compile("external_key");
    let s = Setup::new("c-external", &[]);
    let out = s.run(&[], &exe, &s.args(common::SECRET, &[]));
    let stdout = s.assert_enrolled("external_key", &out);
    assert!(
        stdout.contains("library has no private key: export refused with not-found"),
        "{stdout}"
    );
    let calls: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sign callback calls: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sign callback count in {stdout}"));
    assert!(calls >= 1, "the callback never signed: {stdout}");
    assert!(
        stdout.contains("hsm released by the library: once"),
        "{stdout}"
    );
}

#[test]
fn nonblocking_c_example_moves_the_bytes_itself() {
    if !common::available_or_skip("nonblocking_c_example_moves_the_bytes_itself") {
        return;
    }
    let exe = compile("nonblocking");
    let s = Setup::new("c-nonblocking", &[]);
    let out = s.run(&[], &exe, &s.args(common::SECRET, &[]));
    let stdout = s.assert_enrolled("nonblocking", &out);
    // ir/ip and certConf/pkiConf, each over the example's own HTTP client.
    assert!(stdout.contains("round trips: 2"), "{stdout}");
    let log = s.server.log();
    assert!(
        log.contains("POST /pkix/ HTTP/1.0"),
        "the server did not see the example's HTTP/1.0 requests:\n{log}"
    );
}

#[test]
fn enroll_c_example_with_wrong_secret_fails_with_mac_error_and_exit_1() {
    if !common::available_or_skip(
        "enroll_c_example_with_wrong_secret_fails_with_mac_error_and_exit_1",
    ) {
        return;
    }
    let exe = compile("enroll");
    let s = Setup::new("c-wrong-secret", &[]);
    let out = s.run(&[], &exe, &s.args("not-the-secret", &[]));
    let (code, text) = failure_text(&out);
    assert_eq!(code, Some(1), "{text}");
    // The server cannot verify our MAC and answers with an error protected with its own
    // secret; that MAC does not verify with ours, so the response is not believed.
    assert!(
        text.contains("enrollment failed: mac-mismatch"),
        "expected a MAC failure: {text}"
    );
    assert!(!s.out_cert().exists(), "a certificate was written");
    assert!(!s.out_key().exists(), "a key was written");
}

#[test]
fn enroll_c_example_reports_the_ca_rejection() {
    if !common::available_or_skip("enroll_c_example_reports_the_ca_rejection") {
        return;
    }
    let exe = compile("enroll");
    let s = Setup::new(
        "c-rejected",
        &[
            "-pkistatus",
            "2",
            "-failure",
            "9",
            "-statusstring",
            "rejected-by-mock",
        ],
    );
    let out = s.run(&[], &exe, &s.args(common::SECRET, &[]));
    let (code, text) = failure_text(&out);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("enrollment failed: rejected"), "{text}");
    assert!(
        text.contains("the server said: rejection (failInfo: badPOP): \"rejected-by-mock\""),
        "{text}"
    );
    assert!(!s.out_cert().exists(), "a certificate was written");
}

#[test]
fn c_examples_leak_nothing_under_valgrind() {
    if !common::available_or_skip("c_examples_leak_nothing_under_valgrind") {
        return;
    }
    let has_valgrind = Command::new("valgrind")
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_valgrind {
        if common::in_ci() {
            panic!("c_examples_leak_nothing_under_valgrind: valgrind is missing and CI is set");
        }
        eprintln!("NOTICE: skipping c_examples_leak_nothing_under_valgrind: no valgrind");
        return;
    }
    let valgrind = [
        "valgrind",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
        "--error-exitcode=99",
    ];
    for name in ["enroll", "external_key"] {
        let exe = compile(name);
        let s = Setup::new(&format!("c-valgrind-{name}"), &[]);
        let out = s.run(&valgrind, &exe, &s.args(common::SECRET, &[]));
        s.assert_enrolled(&format!("{name} under valgrind"), &out);
    }
}
