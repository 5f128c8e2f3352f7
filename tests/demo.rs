//! `cmpkit demo` and `cmpkit server`: the CLI's in-process demo runs every step and exits 0;
//! the server serves our own CLI client (with polling) and stops after -max_requests.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cmpkit");

#[test]
fn demo_runs_every_step_and_exits_0() {
    let t = Instant::now();
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "started a demo CA",
        "1. enroll a new EC P-256 key with the shared secret (ir + certConf)",
        "sent ir -> ip accepted",
        "sent certConf -> pkiconf",
        "2. renew it",
        "sent kur -> kup accepted",
        "3. ask the CA for its certificates (genm caCerts)",
        "sent genm -> genp",
        "the CA sent 1 certificate(s)",
        "4. revoke the renewed certificate",
        "sent rr -> rp accepted",
        "is among them: true",
        "subject   CN=demo-device,O=cmpkit demo",
        "issuer    CN=cmpkit Demo CA",
        "done: 6 HTTP requests, 2 certificates issued",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "took {:?}",
        t.elapsed()
    );
}

#[test]
fn server_command_serves_the_cli_client_with_polling_and_stops_after_max_requests() {
    let dir = std::env::temp_dir().join(format!("cmpkit-server-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Command::new(BIN)
        .args([
            "server",
            "-port",
            "0",
            "-ref",
            "other",
            "-secret",
            "pass:x",
            "-ref",
            "cli-ref",
            "-secret",
            "pass:cli-secret",
            "-poll",
            "2",
            "-check_after",
            "0",
            "-max_requests",
            "4",
            "-max_seconds",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let url = first
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("first line: {first:?}"))
        .to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/pkix/"),
        "{url}"
    );
    let cert = dir.join("dev.crt");
    let key = dir.join("dev.key");
    let client = Command::new(BIN)
        .args([
            "ir",
            "-server",
            &url,
            "-ref",
            "cli-ref",
            "-secret",
            "pass:cli-secret",
        ])
        .args(["-subject", "/CN=cli-enrolled", "-newkey"])
        .arg(&key)
        .arg("-certout")
        .arg(&cert)
        .output()
        .unwrap();
    let ctext = format!(
        "{}{}",
        String::from_utf8_lossy(&client.stdout),
        String::from_utf8_lossy(&client.stderr)
    );
    assert!(client.status.success(), "{ctext}");
    assert!(ctext.contains("polled 1 times"), "{ctext}"); // ip waiting, then one pollRep waiting
    assert!(cert.exists() && key.exists());
    // ir, 2 pollReq, certConf: the server stops by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = server.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut log).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("ir -> ip waiting"), "{log}");
    assert!(log.contains("pollReq -> pollRep waiting"), "{log}");
    assert!(log.contains("pollReq -> ip accepted"), "{log}");
    assert!(log.contains("certConf -> pkiconf"), "{log}");
    assert!(
        rest.iter()
            .any(|l| l.contains("stopped after 4 requests; 1 certificates issued")),
        "{rest:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
