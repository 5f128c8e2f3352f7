//! Load: our HTTP server with the demo CA, 8 client threads each doing 25 enrollments
//! (ir + certConf, MAC) over HTTP with our client. Every enrollment must succeed and be
//! confirmed at the CA, within a time bound; prints the throughput.

use cmpkit::client::{execute, ClientConfig, Credentials, EnrollRequest, Transaction};
use cmpkit::crypto::{KeyType, SoftwareKey, TrustStore};
use cmpkit::message::parse_name;
use cmpkit::protection::{MacParams, PbmConfig};
use cmpkit::server::demo_ca::DemoCa;
use cmpkit::server::{MemoryStore, Server, ServerConfig};
use cmpkit::transport::http_server::{HttpServer, ServerOptions};
use cmpkit::transport::HttpTransfer;
use std::sync::Arc;
use std::time::{Duration, Instant};

const THREADS: usize = 8;
const PER_THREAD: usize = 25;

#[test]
fn eight_clients_times_25_enrollments_all_accounted_for() {
    let ca = Arc::new(DemoCa::generate().unwrap());
    let config = ServerConfig {
        signer: Some(ca.signer().unwrap()),
        secrets: Some(Arc::new(|kid: &[u8]| {
            (kid == b"load-ref").then(|| b"load-secret".to_vec())
        })),
        trust: Some(TrustStore::new(&[ca.cert().clone()]).unwrap()),
        ..ServerConfig::default()
    };
    let store = Arc::new(MemoryStore::new());
    let server = Arc::new(Server::new(config, ca.clone(), store.clone()).unwrap());
    let http = HttpServer::bind(
        "127.0.0.1:0",
        Arc::new(move |req: &[u8]| server.process(req)),
        ServerOptions {
            workers: 4,
            ..ServerOptions::default()
        },
    )
    .unwrap();
    let url = format!("http://{}/pkix/", http.local_addr());
    let start = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let url = url.clone();
            std::thread::spawn(move || -> Result<Vec<Vec<u8>>, String> {
                let config = Arc::new(ClientConfig {
                    credentials: Some(Credentials::mac(
                        b"load-secret",
                        b"load-ref",
                        MacParams::Pbm(PbmConfig::default()),
                    )),
                    ..ClientConfig::default()
                });
                let http = HttpTransfer::new(&url).map_err(|e| e.to_string())?;
                let mut transfer = |req: &[u8]| http.post(req);
                let mut certs = Vec::new();
                for i in 0..PER_THREAD {
                    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
                    let req = EnrollRequest {
                        subject: Some(parse_name(&format!("/CN=load-{t}-{i}")).unwrap()),
                        sans: Vec::new(),
                        key,
                    };
                    let mut tx =
                        Transaction::start_ir(config.clone(), req).map_err(|e| e.to_string())?;
                    execute(&mut tx, &mut transfer).map_err(|e| format!("{t}/{i}: {e}"))?;
                    certs.push(tx.response().certificate.clone().ok_or("no cert")?);
                }
                Ok(certs)
            })
        })
        .collect();
    let mut certs = Vec::new();
    for h in handles {
        certs.extend(h.join().unwrap().unwrap());
    }
    let elapsed = start.elapsed();
    let stats = http.stats();
    http.shutdown().unwrap();
    let n = THREADS * PER_THREAD;
    assert_eq!(certs.len(), n);
    let issued = ca.issued();
    assert_eq!(
        issued.len(),
        n,
        "the CA issued {} certificates",
        issued.len()
    );
    assert!(
        issued.iter().all(|c| c.confirmed),
        "an issued certificate is unconfirmed"
    );
    let mut serials: Vec<_> = issued.iter().map(|c| c.serial.clone()).collect();
    serials.sort();
    serials.dedup();
    assert_eq!(serials.len(), n, "duplicate serial numbers");
    for c in &certs {
        assert!(
            issued.iter().any(|i| &i.der == c),
            "a client got a cert the CA does not know"
        );
    }
    assert_eq!(stats.requests_served, 2 * n as u64);
    assert_eq!(stats.errors(), 0, "{stats:?}");
    assert_eq!(stats.connections_rejected, 0, "{stats:?}");
    assert!(elapsed < Duration::from_secs(120), "took {elapsed:?}");
    println!(
        "server_load: {n} enrollments (ir + certConf) by {THREADS} clients in {:.2} s: {:.1} enrollments/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
}
