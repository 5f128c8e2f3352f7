//! Two server instances (as two processes behind a load balancer would) sharing one
//! file-backed transaction store: a transaction started on one is finished on the other.

use cmpkit::client::{execute, ClientConfig, Credentials, EnrollRequest, Transaction};
use cmpkit::crypto::{KeyType, SoftwareKey};
use cmpkit::message::parse_name;
use cmpkit::protection::{MacParams, PbmConfig};
use cmpkit::server::demo_ca::DemoCa;
use cmpkit::server::{FileStore, Server, ServerConfig, TransactionStore};
use std::sync::Arc;

fn server(ca: &Arc<DemoCa>, store: Arc<dyn TransactionStore>) -> Server {
    let config = ServerConfig {
        secrets: Some(Arc::new(|kid: &[u8]| {
            (kid == b"lb-ref").then(|| b"lb-secret".to_vec())
        })),
        ..ServerConfig::default()
    };
    Server::new(config, ca.clone(), store).unwrap()
}

#[test]
fn certconf_answered_by_another_instance_sharing_the_file_store() {
    let dir = std::env::temp_dir().join(format!("cmpkit-lb-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ca = Arc::new(DemoCa::generate().unwrap());
    // Two instances, two store handles on one directory.
    let a = server(&ca, Arc::new(FileStore::open(&dir).unwrap()));
    let b = server(&ca, Arc::new(FileStore::open(&dir).unwrap()));
    let config = ClientConfig {
        credentials: Some(Credentials::mac(
            b"lb-secret",
            b"lb-ref",
            MacParams::Pbm(PbmConfig::default()),
        )),
        ..ClientConfig::default()
    };
    let key = Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap());
    let request = EnrollRequest {
        subject: Some(parse_name("/CN=balanced").unwrap()),
        sans: vec![],
        key,
    };
    let mut tx = Transaction::start_ir(Arc::new(config), request).unwrap();
    let mut n = 0;
    let mut round_robin = |req: &[u8]| {
        n += 1;
        Ok(if n % 2 == 1 {
            a.process(req)
        } else {
            b.process(req)
        })
    };
    execute(&mut tx, &mut round_robin).unwrap();
    assert_eq!(n, 2, "ir to one instance, certConf to the other");
    assert!(tx.response().certificate.is_some());
    // The finished transaction's ID stays taken on every instance.
    let replay = tx.response().transaction_id.clone();
    let store = FileStore::open(&dir).unwrap();
    assert!(
        store.get(&replay).unwrap().is_some(),
        "the finished record is shared"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
