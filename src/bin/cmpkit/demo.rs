//! `cmpkit demo`: a whole certificate life cycle against an in-process CA, in plain words.

use super::{local, Fail};
use cmpkit::client::{
    execute, genm, ClientConfig, Credentials, EnrollRequest, Operation, Transaction,
};
use cmpkit::crypto::{KeyType, SoftwareKey, TrustStore};
use cmpkit::message::parse_name;
use cmpkit::protection::{MacParams, PbmConfig};
use cmpkit::server::demo_ca::DemoCa;
use cmpkit::server::{summarize, MemoryStore, Server, ServerConfig};
use cmpkit::transport::http_server::{HttpServer, ServerOptions};
use cmpkit::transport::HttpTransfer;
use openssl::x509::X509;
use std::sync::Arc;
use std::time::Instant;

pub const HELP: &str = "\
cmpkit demo — watch a certificate's life cycle over CMP, all on this machine

Starts a throwaway demo CA behind a CMP server on 127.0.0.1 (a free port), then, as a
client over HTTP:
  1. enrolls a new key with a shared secret (ir, certConf),
  2. renews the certificate with another new key, signed with the first certificate (kur),
  3. asks the CA for its certificates (genm caCerts),
  4. revokes the renewed certificate (rr),
and prints each step, the messages exchanged and the certificates. Takes no options.
";

const SECRET: &[u8] = b"demo-secret-0123";
const REF: &[u8] = b"demo-ref";

fn name_text(n: &openssl::x509::X509NameRef) -> String {
    n.entries()
        .map(|e| {
            format!(
                "{}={}",
                e.object().nid().short_name().unwrap_or("?"),
                e.data().to_string().unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn show_cert(c: &X509) {
    let serial = c
        .serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
        .unwrap_or_default();
    println!("     subject   {}", name_text(c.subject_name()));
    println!("     serial    {serial}");
    println!("     valid     {} until {}", c.not_before(), c.not_after());
    println!("     issuer    {}", name_text(c.issuer_name()));
}

/// Run one client transaction over HTTP, printing the messages; returns it.
fn step(
    n: u32,
    what: &str,
    url: &str,
    config: ClientConfig,
    op: Operation,
) -> Result<Transaction, Fail> {
    println!("{n}. {what}");
    let t = Instant::now();
    let http = HttpTransfer::new(url)?;
    let mut flow = Vec::new();
    let mut tx = Transaction::start(Arc::new(config), op)?;
    let mut transfer = |req: &[u8]| {
        let rsp = http.post(req)?;
        flow.push(format!("{} -> {}", summarize(req), summarize(&rsp)));
        Ok(rsp)
    };
    let r = execute(&mut tx, &mut transfer);
    for f in &flow {
        println!("     sent {f}");
    }
    r?;
    println!("     done in {} ms", t.elapsed().as_millis());
    Ok(tx)
}

fn cert_of(tx: &Transaction) -> Result<X509, Fail> {
    let der = tx
        .response()
        .certificate
        .as_deref()
        .ok_or_else(|| local("the response has no certificate"))?;
    X509::from_der(der).map_err(|e| local(format!("certificate: {e}")))
}

pub fn run(args: &[String]) -> Result<(), Fail> {
    if args
        .iter()
        .any(|a| a == "-h" || a == "-help" || a == "--help")
    {
        print!("{HELP}");
        return Ok(());
    }
    if let Some(a) = args.first() {
        return Err(super::usage(format!("demo takes no arguments, got {a:?}")));
    }
    let start = Instant::now();
    let ca = Arc::new(DemoCa::generate()?);
    let config = ServerConfig {
        signer: Some(ca.signer()?),
        secrets: Some(Arc::new(|kid: &[u8]| (kid == REF).then(|| SECRET.to_vec()))),
        trust: Some(TrustStore::new(&[ca.cert().clone()])?),
        ..ServerConfig::default()
    };
    let server = Arc::new(Server::new(
        config,
        ca.clone(),
        Arc::new(MemoryStore::new()),
    )?);
    let http = HttpServer::bind(
        "127.0.0.1:0",
        Arc::new(move |req: &[u8]| server.process(req)),
        ServerOptions::default(),
    )?;
    let url = format!("http://{}/pkix/", http.local_addr());
    println!(
        "0. started a demo CA \"{}\" and a CMP server at {url} ({} ms)",
        name_text(ca.cert().subject_name()),
        start.elapsed().as_millis()
    );
    let anchor = ca.cert().clone();
    let trust = || TrustStore::new(std::slice::from_ref(&anchor));

    // 1. ir with a shared secret.
    let key1 = Arc::new(SoftwareKey::generate(KeyType::EcP256)?);
    let mac = ClientConfig {
        credentials: Some(Credentials::mac(
            SECRET,
            REF,
            MacParams::Pbm(PbmConfig::default()),
        )),
        trust: trust().ok(),
        ..ClientConfig::default()
    };
    let ir = step(
        1,
        "enroll a new EC P-256 key with the shared secret (ir + certConf)",
        &url,
        mac,
        Operation::Ir(EnrollRequest {
            subject: Some(parse_name("/CN=demo-device/O=cmpkit demo")?),
            sans: Vec::new(),
            key: key1.clone(),
        }),
    )?;
    let cert1 = cert_of(&ir)?;
    println!("     issued certificate:");
    show_cert(&cert1);

    // 2. kur signed with the new certificate.
    let key2 = Arc::new(SoftwareKey::generate(KeyType::EcP256)?);
    let signed = |key: Arc<SoftwareKey>, cert: &X509| ClientConfig {
        credentials: Some(Credentials::signature(key, cert.clone(), Vec::new())),
        trust: trust().ok(),
        ..ClientConfig::default()
    };
    let kur = step(
        2,
        "renew it with another new key, signed with the certificate just issued (kur + certConf)",
        &url,
        signed(key1.clone(), &cert1),
        Operation::kur(
            EnrollRequest {
                subject: None,
                sans: Vec::new(),
                key: key2.clone(),
            },
            &cert1,
            None,
        )?,
    )?;
    let cert2 = cert_of(&kur)?;
    println!("     renewed certificate:");
    show_cert(&cert2);

    // 3. genm caCerts.
    let g = step(
        3,
        "ask the CA for its certificates (genm caCerts)",
        &url,
        signed(key2.clone(), &cert2),
        Operation::Genm(vec![genm::ca_certs_request()]),
    )?;
    let cas = g.response().ca_certs()?.unwrap_or_default();
    println!("     the CA sent {} certificate(s):", cas.len());
    for d in &cas {
        show_cert(&X509::from_der(d).map_err(|e| local(format!("certificate: {e}")))?);
    }

    // 4. rr for the renewed certificate.
    step(
        4,
        "revoke the renewed certificate, reason superseded (rr)",
        &url,
        signed(key2.clone(), &cert2),
        Operation::rr(&cert2, Some(4), None)?,
    )?;
    let revoked = ca.revocations();
    println!(
        "     the CA has {} revoked certificate(s); serial {} is among them: {}",
        revoked.len(),
        cert2
            .serial_number()
            .to_bn()
            .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
            .unwrap_or_default(),
        revoked
            .iter()
            .any(|r| Some(r.serial.clone())
                == cert2.serial_number().to_bn().ok().map(|b| b.to_vec()))
    );
    let stats = http.stats();
    http.shutdown()?;
    println!(
        "done: {} HTTP requests, {} certificates issued, all in {} ms",
        stats.requests_served,
        ca.issued().len(),
        start.elapsed().as_millis()
    );
    Ok(())
}
