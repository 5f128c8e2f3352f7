//! The C examples in `c-examples/` compile warning-free as C11 against `include/cmpkit.h` and
//! the cdylib, and enroll against OpenSSL's mock server.

mod common;

use common::cexamples::{compile, describe, failure_text, openssl, Setup};
use common::MockServer;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

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
    for name in ["enroll", "external_key", "event_loop"] {
        let exe = compile(name);
        let s = Setup::new(&format!("c-valgrind-{name}"), &[]);
        let out = s.run(&valgrind, &exe, &s.args(common::SECRET, &[]));
        s.assert_enrolled(&format!("{name} under valgrind"), &out);
    }
    // renew (kur), revoke (rr) and cacerts (genm) under valgrind too.
    let r = Renewal::new("c-valgrind-renew");
    let out = r.setup.run(&valgrind, &compile("renew"), &r.args());
    r.assert_renewed("renew under valgrind", &out);
    let s = Setup::with_default_cert("c-valgrind-revoke");
    let out = s.run(
        &valgrind,
        &compile("revoke"),
        &revoke_args(&s, "new", &["--reason", "1"]),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "revoke under valgrind: {}",
        describe(&out)
    );
    let s = Setup::new("c-valgrind-cacerts", &[]);
    let out = s.run(&valgrind, &compile("cacerts"), &cacerts_args(&s, &[]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "cacerts under valgrind: {}",
        describe(&out)
    );
}

// ---------------------------------------------------------------- kur, rr, genm, polling

/// A file of the test PKI (`new.crt`, `new.key`, `root.crt`, ...).
fn pki_file(name: &str) -> PathBuf {
    common::pki().join(name)
}

/// A renewal: a new key, and a mock server answering the kur with a certificate for it that
/// has the issuer and serial of `new.crt` (0x30), which is what the 3.0 mock compares the
/// kur's oldCertID against.
struct Renewal {
    setup: Setup,
    new_key: PathBuf,
}

impl Renewal {
    fn new(prefix: &str) -> Renewal {
        let pki = common::pki();
        let dir = common::new_work_dir(prefix);
        let new_key = dir.join("new-key.pem");
        let public = dir.join("new-pub.pem");
        let rsp = dir.join("kup.crt");
        openssl(&[
            OsStr::new("genpkey"),
            OsStr::new("-algorithm"),
            OsStr::new("EC"),
            OsStr::new("-pkeyopt"),
            OsStr::new("ec_paramgen_curve:P-256"),
            OsStr::new("-out"),
            new_key.as_os_str(),
        ]);
        openssl(&[
            OsStr::new("pkey"),
            OsStr::new("-in"),
            new_key.as_os_str(),
            OsStr::new("-pubout"),
            OsStr::new("-out"),
            public.as_os_str(),
        ]);
        openssl(&[
            OsStr::new("x509"),
            OsStr::new("-new"),
            OsStr::new("-subj"),
            OsStr::new("/CN=CMP Interop Client"),
            OsStr::new("-force_pubkey"),
            public.as_os_str(),
            OsStr::new("-CA"),
            pki.join("ca.crt").as_os_str(),
            OsStr::new("-CAkey"),
            pki.join("ca.key").as_os_str(),
            OsStr::new("-set_serial"),
            OsStr::new("0x30"),
            OsStr::new("-days"),
            OsStr::new("365"),
            OsStr::new("-sha256"),
            OsStr::new("-extfile"),
            pki.join("ext.cnf").as_os_str(),
            OsStr::new("-extensions"),
            OsStr::new("v3_ee"),
            OsStr::new("-out"),
            rsp.as_os_str(),
        ]);
        let server = MockServer::start(pki, Some(&rsp), &[]);
        Renewal {
            setup: Setup {
                dir,
                key: new_key.clone(),
                server,
            },
            new_key,
        }
    }

    /// renew URL new.crt new.key OUT_KEY OUT_CERT --key NEW_KEY --trust root.crt
    fn args(&self) -> Vec<String> {
        let s = &self.setup;
        [
            s.server.url.clone(),
            pki_file("new.crt").display().to_string(),
            pki_file("new.key").display().to_string(),
            s.out_key().display().to_string(),
            s.out_cert().display().to_string(),
            "--key".to_owned(),
            self.new_key.display().to_string(),
            "--trust".to_owned(),
            pki_file("root.crt").display().to_string(),
        ]
        .to_vec()
    }

    /// Exit 0, "renewed", and the written certificate and key are the new key's.
    fn assert_renewed(&self, what: &str, out: &Output) {
        let s = &self.setup;
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what}: {}\nserver log:\n{}",
            describe(out),
            s.server.log()
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("status: accepted"), "{what}: {stdout}");
        assert!(stdout.contains("renewed: wrote"), "{what}: {stdout}");
        let pubkey = |args: &[&OsStr]| String::from_utf8_lossy(&openssl(args).stdout).into_owned();
        let cert_pub = pubkey(&[
            OsStr::new("x509"),
            OsStr::new("-in"),
            s.out_cert().as_os_str(),
            OsStr::new("-pubkey"),
            OsStr::new("-noout"),
        ]);
        let new_pub = pubkey(&[
            OsStr::new("pkey"),
            OsStr::new("-in"),
            self.new_key.as_os_str(),
            OsStr::new("-pubout"),
        ]);
        let written_pub = pubkey(&[
            OsStr::new("pkey"),
            OsStr::new("-in"),
            s.out_key().as_os_str(),
            OsStr::new("-pubout"),
        ]);
        let old_pub = pubkey(&[
            OsStr::new("pkey"),
            OsStr::new("-in"),
            pki_file("new.key").as_os_str(),
            OsStr::new("-pubout"),
        ]);
        assert_eq!(
            cert_pub, new_pub,
            "{what}: the certificate does not carry the new key"
        );
        assert_eq!(written_pub, new_pub, "{what}: OUT_KEY.pem is another key");
        assert_ne!(cert_pub, old_pub, "{what}: still the old key");
    }
}

#[test]
fn renew_c_example_updates_the_key_with_kur_signed_by_the_old_key() {
    if !common::available_or_skip("renew_c_example_updates_the_key_with_kur_signed_by_the_old_key")
    {
        return;
    }
    let r = Renewal::new("c-renew");
    let out = r.setup.run(&[], &compile("renew"), &r.args());
    r.assert_renewed("renew", &out);
    let log = r.setup.server.log();
    assert!(
        log.matches("Received request").count() >= 2,
        "kur and certConf should reach the server:\n{log}"
    );
}

/// revoke URL <name>.crt <name>.key --trust root.crt, then `extra`.
fn revoke_args(s: &Setup, name: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        s.server.url.clone(),
        pki_file(&format!("{name}.crt")).display().to_string(),
        pki_file(&format!("{name}.key")).display().to_string(),
        "--trust".to_owned(),
        pki_file("root.crt").display().to_string(),
    ];
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

#[test]
fn revoke_c_example_revokes_the_cert_the_mock_issued() {
    if !common::available_or_skip("revoke_c_example_revokes_the_cert_the_mock_issued") {
        return;
    }
    // The mock's default response cert is new.crt: that is the one it agrees to revoke.
    let s = Setup::with_default_cert("c-revoke");
    let out = s.run(
        &[],
        &compile("revoke"),
        &revoke_args(&s, "new", &["--reason", "1"]),
    );
    let (code, text) = failure_text(&out);
    assert_eq!(code, Some(0), "{text}\nserver log:\n{}", s.server.log());
    assert!(text.contains("revoked: accepted (status 0)"), "{text}");
}

#[test]
fn revoke_c_example_reports_the_refusal_of_a_cert_the_mock_did_not_issue() {
    if !common::available_or_skip(
        "revoke_c_example_reports_the_refusal_of_a_cert_the_mock_did_not_issue",
    ) {
        return;
    }
    let s = Setup::with_default_cert("c-revoke-other");
    let out = s.run(&[], &compile("revoke"), &revoke_args(&s, "client", &[]));
    let (code, text) = failure_text(&out);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("revocation failed: peer-error"), "{text}");
    // The mock's status: rejection with its own statusString.
    assert!(text.contains("the server said: rejection"), "{text}");
    assert!(text.to_lowercase().contains("not accepted"), "{text}");
    assert!(!text.contains("revoked:"), "{text}");
}

#[test]
fn revoke_c_example_refuses_a_reason_that_is_no_crl_reason() {
    if !common::available_or_skip("revoke_c_example_refuses_a_reason_that_is_no_crl_reason") {
        return;
    }
    let exe = compile("revoke");
    let out = Command::new(&exe)
        .args(["http://127.0.0.1:1/", "c.pem", "k.pem", "--reason", "11"])
        .stdin(Stdio::null())
        .output()
        .expect("run revoke");
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

/// cacerts URL SECRET REF --recipient DN, then `extra`.
fn cacerts_args(s: &Setup, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        s.server.url.clone(),
        common::SECRET.to_owned(),
        common::REF.to_owned(),
        "--recipient".to_owned(),
        common::RECIPIENT.to_owned(),
    ];
    a.extend(extra.iter().map(|x| x.to_string()));
    a
}

#[test]
fn cacerts_c_example_prints_what_the_genp_brought_back() {
    if !common::available_or_skip("cacerts_c_example_prints_what_the_genp_brought_back") {
        return;
    }
    let s = Setup::new("c-cacerts", &[]);
    let out = s.run(&[], &compile("cacerts"), &cacerts_args(&s, &[]));
    let (code, text) = failure_text(&out);
    assert_eq!(code, Some(0), "{text}\nserver log:\n{}", s.server.log());
    // The 3.0 mock echoes the request's InfoTypeAndValue, without value.
    assert!(text.contains("genp values: 1"), "{text}");
    assert!(text.contains("  1.3.6.1.5.5.7.4.17: no value"), "{text}");
    assert!(
        text.contains("caCerts: none (the server sent no caCerts value)"),
        "{text}"
    );
    drop(s);
    // signKeyPairTypes (id-it 1) through cmpkit_request_new_genm + cmpkit_request_add_itav.
    let s = Setup::new("c-cacerts-itav", &[]);
    let out = s.run(
        &[],
        &compile("cacerts"),
        &cacerts_args(&s, &["--itav", "1.3.6.1.5.5.7.4.1"]),
    );
    let (code, text) = failure_text(&out);
    assert_eq!(code, Some(0), "{text}\nserver log:\n{}", s.server.log());
    assert!(text.contains("genp values: 1"), "{text}");
    assert!(text.contains("  1.3.6.1.5.5.7.4.1: no value"), "{text}");
    assert!(!text.contains("1.3.6.1.5.5.7.4.17"), "{text}");
    assert!(text.contains("caCerts: none"), "{text}");
}

#[test]
fn cacerts_c_example_with_a_wrong_secret_fails_with_exit_1() {
    if !common::available_or_skip("cacerts_c_example_with_a_wrong_secret_fails_with_exit_1") {
        return;
    }
    let s = Setup::new("c-cacerts-wrong", &[]);
    let mut args = cacerts_args(&s, &[]);
    args[1] = "not-the-secret".to_owned();
    let out = s.run(&[], &compile("cacerts"), &args);
    let (code, text) = failure_text(&out);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("genm failed: mac-mismatch"), "{text}");
}

#[test]
fn event_loop_c_example_schedules_the_poll_requests_itself() {
    if !common::available_or_skip("event_loop_c_example_schedules_the_poll_requests_itself") {
        return;
    }
    let s = Setup::new("c-event-loop", &["-poll_count", "2", "-check_after", "1"]);
    let started = std::time::Instant::now();
    let out = s.run(&[], &compile("event_loop"), &s.args(common::SECRET, &[]));
    let elapsed = started.elapsed();
    let stdout = s.assert_enrolled("event_loop", &out);
    let rounds: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("poll rounds: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no poll rounds in {stdout}"));
    assert!(rounds >= 1, "{stdout}");
    assert!(
        stdout.contains("server asks to poll again in "),
        "the loop never waited: {stdout}"
    );
    // cr, pollReq x2 (the first right away, the second after checkAfter), certConf.
    assert!(stdout.contains("round trips: 4"), "{stdout}");
    assert!(elapsed >= std::time::Duration::from_secs(1), "{elapsed:?}");
    let waited_ms: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("waited: "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no waited line in {stdout}"));
    assert!(waited_ms >= 900, "{stdout}");
}

/// `ca_server.c`: a CA whose policy is C code, run as a process; the cmpkit CLI enrolls an
/// allowed CN (exit 0) and a refused one (exit 1 with the policy's text), then the server
/// stops by itself after the 3 HTTP requests (ir + certConf, ir).
#[test]
fn ca_server_c_example_issues_by_c_policy_and_rejects_other_names() {
    if !common::available_or_skip("ca_server_c_example_issues_by_c_policy_and_rejects_other_names")
    {
        return;
    }
    use std::io::{BufRead, BufReader, Read};
    let exe = compile("ca_server");
    let dir = common::new_work_dir("c-ca-server");
    let mut server = Command::new("timeout")
        .args(["-k", "5", "60"])
        .arg(&exe)
        .args(["0", "3", "c-server-secret", "c-server-ref"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ca_server");
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("ca_server said {first:?}"))
        .to_owned();
    let enroll = |cn: &str| {
        Command::new(env!("CARGO_BIN_EXE_cmpkit"))
            .args(["ir", "-server", &url, "-ref", "c-server-ref"])
            .args(["-secret", "pass:c-server-secret", "-subject"])
            .arg(format!("/CN={cn}"))
            .arg("-certout")
            .arg(dir.join(format!("{cn}.crt")))
            .arg("-newkey")
            .arg(dir.join(format!("{cn}.key")))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let ok = enroll("device-1.example");
    let (code, text) = failure_text(&ok);
    assert_eq!(code, Some(0), "allowed CN: {text}");
    assert!(dir.join("device-1.example.crt").exists());
    let bad = enroll("device-2.test");
    let (code, text) = failure_text(&bad);
    assert_eq!(code, Some(1), "refused CN: {text}");
    assert!(text.contains("policy: CN must end in .example"), "{text}");
    assert!(text.contains("badCertTemplate"), "{text}");
    assert!(!dir.join("device-2.test.crt").exists());
    let status = server.wait().unwrap();
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut log = String::new();
    server
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "ca_server: {status}\n{rest}\n{log}");
    assert!(
        rest.contains("served 3 requests: 1 issued, 1 rejected by policy; the CA holds 1"),
        "{rest}"
    );
    // The library's log, through cmpkit_server_config_set_log.
    for line in [
        "cmpkit[info]: answered ir from senderKID \"c-server-ref\"",
        "cmpkit[info]: answered certConf from senderKID \"c-server-ref\"",
        "cmpkit[info]: the CA rejected ir",
    ] {
        assert!(log.contains(line), "{line:?} not in:\n{log}");
    }
    assert!(
        log.contains("policy: issue CN=device-1.example for mac:c-server-ref"),
        "{log}"
    );
    assert!(log.contains("policy: reject CN=device-2.test"), "{log}");
    assert!(log.contains("confirmed"), "{log}");
}
