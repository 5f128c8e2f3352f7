//! Shared by `benches/transactions.rs` (Criterion) and `examples/bench_cmp.rs` (the
//! standalone run that prints lines in the format of OpenSSL's `ossl_cmp_bench`): the PKI,
//! the in-process server, the six scenarios with their checks, the crypto floor, and a
//! counting global allocator.
//!
//! The setup mirrors `ossl_cmp_bench.c`: EC P-256 everywhere, ECDSA-SHA256; a self-signed
//! root, a CMP server (protection) certificate and a client certificate, both issued by the
//! root; the CA issues with the root key; each side trusts the root only and validates the
//! peer's chain; MAC scenarios use OpenSSL's PBM defaults (16-octet salt, SHA-256 x 500,
//! HMAC-SHA1). Enrollment keys are generated before the timed loops.
#![allow(dead_code)]

use cmpkit::asn1::{CmpCertificate, InfoTypeAndValue};
use cmpkit::client::Transaction;
use cmpkit::client::{execute, genm, ClientConfig, Credentials, EnrollRequest, Operation};
use cmpkit::crypto::{KeyType, SoftwareKey, TrustStore};
use cmpkit::message::{parse_name, PkiStatus};
use cmpkit::protection::{MacParams, PbmConfig};
use cmpkit::server::demo_ca::DemoCa;
use cmpkit::server::{
    CaHandler, CertRequestInfo, Decision, MemoryStore, Rejection, Requester, RevocationRequest,
    Server, ServerConfig, ServerSigner,
};
use openssl::asn1::Asn1Time;
use openssl::bn::{BigNum, MsbOption};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::pkey_ctx::PkeyCtx;
use openssl::x509::extension::{
    AuthorityKeyIdentifier, BasicConstraints, KeyUsage, SubjectKeyIdentifier,
};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use x509_cert::name::Name;

// ---------------------------------------------------------------- counting allocator

/// Counts allocations (and reallocations, as OpenSSL's `CRYPTO_realloc` would) and bytes
/// requested, on top of the system allocator. Only Rust allocations: OpenSSL's own
/// `CRYPTO_malloc` calls go to libc directly and are not seen here (see BENCHMARKS.md for
/// the valgrind count that sees both).
///
/// The counters are per thread (plain cells, no atomic read-modify-write: a locked add on
/// every allocation cost about 1% of a transaction's CPU, which is the harness's, not
/// cmpkit's); [`alloc_counts`] reads the calling thread's.
pub struct Counting;

thread_local! {
    // Const-initialised and without a destructor: usable from the allocator at any time,
    // even while the thread is being torn down (no lazy initialisation that could allocate).
    static COUNTS: std::cell::Cell<(u64, u64)> = const { std::cell::Cell::new((0, 0)) };
}

fn count(bytes: usize) {
    let _ = COUNTS.try_with(|c| {
        let (n, b) = c.get();
        c.set((n + 1, b + bytes as u64));
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// (allocations, bytes) so far on the calling thread.
pub fn alloc_counts() -> (u64, u64) {
    COUNTS.try_with(|c| c.get()).unwrap_or_default()
}

// ---------------------------------------------------------------- PKI

pub const SECRET: &[u8] = b"bench-secret-0123456789";
pub const REF: &[u8] = b"bench-ref";

fn p256() -> PKey<Private> {
    PKey::ec_gen("P-256").unwrap()
}

fn cert(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>, ca: bool) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let mut serial = BigNum::new().unwrap();
    serial.rand(127, MsbOption::MAYBE_ZERO, false).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&*name, |(c, _)| c.subject_name()))
        .unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(365).unwrap())
        .unwrap();
    let mut bc = BasicConstraints::new();
    bc.critical();
    if ca {
        bc.ca();
    }
    b.append_extension(bc.build().unwrap()).unwrap();
    let mut ku = KeyUsage::new();
    ku.critical().digital_signature();
    if ca {
        ku.key_cert_sign().crl_sign();
    }
    b.append_extension(ku.build().unwrap()).unwrap();
    let ctx_issuer = issuer.map(|(c, _)| &**c);
    let ski = SubjectKeyIdentifier::new()
        .build(&b.x509v3_context(ctx_issuer, None))
        .unwrap();
    b.append_extension(ski).unwrap();
    if issuer.is_some() {
        let aki = AuthorityKeyIdentifier::new()
            .keyid(false)
            .build(&b.x509v3_context(ctx_issuer, None))
            .unwrap();
        b.append_extension(aki).unwrap();
    }
    b.sign(issuer.map_or(key, |(_, k)| k), MessageDigest::sha256())
        .unwrap();
    b.build()
}

/// The CA (root) with counters, delegating issuing and genm to [`DemoCa`]. Like the
/// OpenSSL harness's CA, a revocation is checked (issuer and known serial) but not recorded,
/// so the same certificate can be revoked N times.
pub struct BenchCa {
    pub demo: Arc<DemoCa>,
    /// DER issuer name and serial (big-endian, no leading zeros) of the client certificate.
    client_issuer_der: Vec<u8>,
    client_serial: Vec<u8>,
    pub issued: AtomicU64,
    pub cert_confs: AtomicU64,
    pub rrs: AtomicU64,
    pub genms: AtomicU64,
}

impl CaHandler for BenchCa {
    fn certificate_request(&self, req: &CertRequestInfo) -> Decision {
        let d = self.demo.certificate_request(req);
        if matches!(d, Decision::Issue(_)) {
            self.issued.fetch_add(1, Ordering::Relaxed);
        }
        d
    }
    fn cert_confirm(&self, transaction_id: &[u8], cert_der: &[u8], accepted: bool) {
        self.cert_confs.fetch_add(1, Ordering::Relaxed);
        self.demo.cert_confirm(transaction_id, cert_der, accepted)
    }
    fn revoke(&self, req: &RevocationRequest) -> Result<(), Rejection> {
        use der::Encode;
        let serial: Vec<u8> = req
            .serial
            .iter()
            .skip_while(|b| **b == 0)
            .copied()
            .collect();
        if req.issuer.to_der().ok().as_deref() != Some(&self.client_issuer_der[..])
            || serial != self.client_serial
        {
            return Err(Rejection::new(
                cmpkit::message::fail_info::BAD_CERT_ID,
                "not issued by this CA",
            ));
        }
        self.rrs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
    fn general_message(
        &self,
        itavs: &[InfoTypeAndValue],
        requester: &Requester,
    ) -> Vec<InfoTypeAndValue> {
        self.genms.fetch_add(1, Ordering::Relaxed);
        self.demo.general_message(itavs, requester)
    }
}

/// Everything made once: certificates, keys, the server, the client configurations.
pub struct Pki {
    pub root: X509,
    pub root_key: PKey<Private>,
    /// DER of the root's subject name (the issuer of every new certificate).
    pub root_subject_der: Vec<u8>,
    /// DER of the root certificate (what genp caCerts must hold).
    pub root_der: Vec<u8>,
    pub cli_cert: X509,
    /// `cli_cert` as the client holds it for kur and rr (its DER, read once, as a device
    /// keeps its certificate).
    pub cli_cert_der: CmpCertificate,
    /// The subjects the scenarios request, parsed once.
    pub new_device_name: Name,
    pub client_name: Name,
    pub cli_key: Arc<SoftwareKey>,
    pub ca: Arc<BenchCa>,
    pub server: Arc<Server>,
    pub mac_config: Arc<ClientConfig>,
    pub mac_implicit_config: Arc<ClientConfig>,
    pub sig_config: Arc<ClientConfig>,
    /// As `sig_config`, asking for implicit confirmation (one round trip per cr).
    pub sig_implicit_config: Arc<ClientConfig>,
}

impl Pki {
    pub fn new() -> Pki {
        let root_key = p256();
        let root = cert("Bench Root CA", &root_key, None, true);
        let srv_key = p256();
        let srv_cert = cert(
            "Bench CMP Server",
            &srv_key,
            Some((&root, &root_key)),
            false,
        );
        let cli_key = p256();
        let cli_cert = cert("Bench Client", &cli_key, Some((&root, &root_key)), false);

        let demo = Arc::new(
            DemoCa::from_pem(
                &root.to_pem().unwrap(),
                &root_key.private_key_to_pem_pkcs8().unwrap(),
                b"",
            )
            .unwrap(),
        );
        let ca = Arc::new(BenchCa {
            demo,
            client_issuer_der: cli_cert.issuer_name().to_der().unwrap(),
            client_serial: cli_cert.serial_number().to_bn().unwrap().to_vec(),
            issued: AtomicU64::new(0),
            cert_confs: AtomicU64::new(0),
            rrs: AtomicU64::new(0),
            genms: AtomicU64::new(0),
        });
        let config = ServerConfig {
            signer: Some(ServerSigner {
                key: Arc::new(SoftwareKey::from_pkey(srv_key).unwrap()),
                cert: srv_cert,
                chain: Vec::new(),
            }),
            secrets: Some(Arc::new(|kid: &[u8]| (kid == REF).then(|| SECRET.to_vec()))),
            trust: Some(TrustStore::new(std::slice::from_ref(&root)).unwrap()),
            grant_implicit_confirm: true,
            ..ServerConfig::default()
        };
        let server =
            Arc::new(Server::new(config, ca.clone(), Arc::new(MemoryStore::new())).unwrap());

        let mac = |implicit| {
            Arc::new(ClientConfig {
                credentials: Some(Credentials::mac(
                    SECRET,
                    REF,
                    MacParams::Pbm(PbmConfig::openssl_compatible()),
                )),
                implicit_confirm: implicit,
                ..ClientConfig::default()
            })
        };
        let cli_key = Arc::new(SoftwareKey::from_pkey(cli_key).unwrap());
        let sig = |implicit| {
            Arc::new(ClientConfig {
                credentials: Some(Credentials::signature(
                    cli_key.clone(),
                    cli_cert.clone(),
                    Vec::new(),
                )),
                trust: Some(TrustStore::new(std::slice::from_ref(&root)).unwrap()),
                implicit_confirm: implicit,
                ..ClientConfig::default()
            })
        };
        let (sig_config, sig_implicit_config) = (sig(false), sig(true));
        Pki {
            root_subject_der: root.subject_name().to_der().unwrap(),
            root_der: root.to_der().unwrap(),
            root,
            root_key,
            cli_cert_der: CmpCertificate::try_from(cli_cert.to_der().unwrap().as_slice()).unwrap(),
            cli_cert,
            new_device_name: parse_name("/CN=Bench New Device").unwrap(),
            client_name: parse_name("/CN=Bench Client").unwrap(),
            cli_key,
            ca,
            server,
            mac_config: mac(false),
            mac_implicit_config: mac(true),
            sig_config,
            sig_implicit_config,
        }
    }
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

/// A fresh enrollment key (made before the timed loops).
pub fn new_key() -> Arc<SoftwareKey> {
    Arc::new(SoftwareKey::generate(KeyType::EcP256).unwrap())
}

// ---------------------------------------------------------------- scenarios

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    IrMac,
    IrMacImplicit,
    CrSig,
    KurSig,
    RrSig,
    GenmSig,
}

pub const SCENARIOS: [Scenario; 6] = [
    Scenario::IrMac,
    Scenario::IrMacImplicit,
    Scenario::CrSig,
    Scenario::KurSig,
    Scenario::RrSig,
    Scenario::GenmSig,
];

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::IrMac => "ir_mac",
            Scenario::IrMacImplicit => "ir_mac_implicit",
            Scenario::CrSig => "cr_sig",
            Scenario::KurSig => "kur_sig",
            Scenario::RrSig => "rr_sig",
            Scenario::GenmSig => "genm_sig",
        }
    }

    pub fn from_name(s: &str) -> Option<Scenario> {
        SCENARIOS.into_iter().find(|x| x.name() == s)
    }

    /// Round trips per transaction.
    pub fn transfers(self) -> usize {
        match self {
            Scenario::IrMac | Scenario::CrSig | Scenario::KurSig => 2,
            _ => 1,
        }
    }

    pub fn needs_key(self) -> bool {
        matches!(
            self,
            Scenario::IrMac | Scenario::IrMacImplicit | Scenario::CrSig | Scenario::KurSig
        )
    }
}

fn die(s: Scenario, what: &str) -> ! {
    eprintln!("FATAL {}: {what}", s.name());
    std::process::exit(2);
}

/// One complete transaction of `s` against `server` through `transfer` (which must hand
/// the DER request to the server and return its DER response), checked like the OpenSSL
/// harness checks it. `key` is the enrollment key (ignored by rr and genm).
pub fn run_txn(
    pki: &Pki,
    s: Scenario,
    key: &Arc<SoftwareKey>,
    transfer: &mut dyn FnMut(&[u8]) -> cmpkit::Result<Vec<u8>>,
) {
    let ca = &pki.ca;
    let (issued0, conf0, rr0, genm0) = (
        ca.issued.load(Ordering::Relaxed),
        ca.cert_confs.load(Ordering::Relaxed),
        ca.rrs.load(Ordering::Relaxed),
        ca.genms.load(Ordering::Relaxed),
    );
    let req = |subject: Option<&Name>| EnrollRequest {
        subject: subject.cloned(),
        sans: Vec::new(),
        key: key.clone(),
    };
    let (config, op) = match s {
        Scenario::IrMac => (
            &pki.mac_config,
            Operation::Ir(req(Some(&pki.new_device_name))),
        ),
        Scenario::IrMacImplicit => (
            &pki.mac_implicit_config,
            Operation::Ir(req(Some(&pki.new_device_name))),
        ),
        // OpenSSL takes the subject of the client certificate for cr.
        Scenario::CrSig => (&pki.sig_config, Operation::Cr(req(Some(&pki.client_name)))),
        Scenario::KurSig => (
            &pki.sig_config,
            Operation::Kur {
                request: req(None),
                old_cert: pki.cli_cert_der.clone(),
                old_key: None,
            },
        ),
        Scenario::RrSig => (
            &pki.sig_config,
            Operation::Rr {
                cert: pki.cli_cert_der.clone(),
                reason: None,
                key: None,
            },
        ),
        Scenario::GenmSig => (
            &pki.sig_config,
            Operation::Genm(vec![genm::ca_certs_request()]),
        ),
    };
    let mut tx = Transaction::start(config.clone(), op).unwrap_or_else(|e| die(s, &e.to_string()));
    let mut n = 0;
    let mut counted = |r: &[u8]| {
        n += 1;
        transfer(r)
    };
    if let Err(e) = execute(&mut tx, &mut counted) {
        die(s, &format!("transaction failed: {e}"));
    }
    if n != s.transfers() {
        die(s, &format!("{n} round trips, expected {}", s.transfers()));
    }
    let rsp = tx.response();
    // A genp carries no status: success there is the execute() result and the genp check.
    if s != Scenario::GenmSig {
        match rsp.status.as_ref().map(|st| PkiStatus::from_u8(st.status)) {
            Some(Some(PkiStatus::Accepted)) => {}
            other => die(s, &format!("status {other:?}")),
        }
    }
    let d = |a: &AtomicU64, b: u64| a.load(Ordering::Relaxed) - b;
    match s {
        Scenario::IrMac | Scenario::IrMacImplicit | Scenario::CrSig | Scenario::KurSig => {
            let Some(der) = rsp.certificate.as_ref() else {
                die(s, "no certificate")
            };
            // Compared as DER, like the OpenSSL harness (i2d_X509_PUBKEY of the certificate's
            // X509_PUBKEY), read with cmpkit's field reader: neither OpenSSL's key encoder
            // (about 0.5 M instructions and 600 allocations) nor a whole x509-cert decode,
            // which are the harness's cost, not CMP's.
            let fields = cmpkit::asn1::CertFields::read(der)
                .unwrap_or_else(|_| die(s, "certificate unreadable"));
            if fields.spki != cmpkit::crypto::Signer::public_key_der(&**key) {
                die(s, "public key in new cert differs from the requested one");
            }
            if fields.issuer != pki.root_subject_der {
                die(s, "new cert not issued by the bench CA");
            }
            if d(&ca.issued, issued0) != 1 {
                die(s, "server did not issue exactly one cert");
            }
            let implicit = s == Scenario::IrMacImplicit;
            // The server confirms to the CA once: on certConf, or at once when it grants
            // implicit confirmation (and then no certConf round trip happened, see above).
            if implicit != rsp.implicit_confirm_granted || d(&ca.cert_confs, conf0) != 1 {
                die(s, "confirmation wrong");
            }
        }
        Scenario::RrSig => {
            if d(&ca.rrs, rr0) != 1 {
                die(s, "server did not process the rr");
            }
        }
        Scenario::GenmSig => {
            let certs = rsp.ca_certs().ok().flatten().unwrap_or_default();
            if rsp.genp.len() != 1
                || certs.len() != 1
                || certs[0] != pki.root_der
                || d(&ca.genms, genm0) != 1
            {
                die(s, "bad genp");
            }
        }
    }
}

/// One in-process transaction: the transfer calls `Server::process` (DER in, DER out, as
/// OpenSSL's `der` mode).
pub fn run_local(pki: &Pki, s: Scenario, key: &Arc<SoftwareKey>) {
    let server = pki.server.clone();
    run_txn(pki, s, key, &mut |req: &[u8]| Ok(server.process(req)));
}

// ---------------------------------------------------------------- crypto floor

/// Octets hashed by the floor's sign and verify: about what a message's signature covers in
/// these scenarios (its header and body, 170 to 600 octets; the whole messages are 660 to
/// 1460 with extraCerts, which are not signed).
pub const FLOOR_MSG_LEN: usize = 512;

/// The cryptography of the scenarios' messages done as cheaply as OpenSSL allows, the
/// yardstick for cmpkit's protocol overhead:
///
/// - sign: SHA-256 of [`FLOOR_MSG_LEN`] octets with the low-level `SHA256` function, then
///   `EVP_PKEY_sign` of the digest (ECDSA P-256) on a context initialised once;
/// - verify: the same hash, then `EVP_PKEY_verify` on a verification context of the same
///   key initialised once;
/// - PBM key derivation: OpenSSL's parameters (16-octet salt, SHA-256 × 500), computed by
///   cmpkit's own PBM code without parameter handling or key cache
///   ([`cmpkit::protection::pbm_floor_key`]): it iterates the SHA-256 compression function
///   directly, cheaper than any loop through OpenSSL's digest API, and a floor above
///   cmpkit's own cost would not be one;
/// - MAC: HMAC-SHA1 (OpenSSL's PBM MAC) over [`FLOOR_MSG_LEN`] octets with a derived key
///   ([`cmpkit::protection::pbm_floor_mac`]).
///
/// cmpkit signs and verifies this way too (a context kept per key and operation), so the
/// overhead over the floor is protocol work: encoding, parsing, checks, allocations.
pub struct Floor {
    pub key: PKey<Private>,
    pub msg: Vec<u8>,
    pub sig: Vec<u8>,
    sign_ctx: PkeyCtx<Private>,
    verify_ctx: PkeyCtx<Private>,
    pbm: PbmConfig,
}

impl Floor {
    pub fn new() -> Floor {
        let key = p256();
        let mut sign_ctx = PkeyCtx::new(&key).unwrap();
        sign_ctx.sign_init().unwrap();
        let mut verify_ctx = PkeyCtx::new(&key).unwrap();
        verify_ctx.verify_init().unwrap();
        let mut f = Floor {
            key,
            msg: vec![0x5a; FLOOR_MSG_LEN],
            sig: Vec::new(),
            sign_ctx,
            verify_ctx,
            pbm: PbmConfig::openssl_compatible(),
        };
        let mut sig = [0u8; 80];
        let len = f.sign(&mut sig);
        f.sig = sig[..len].to_vec();
        f
    }

    /// Sign the message into `sig` (72 octets suffice for P-256); returns the length.
    pub fn sign(&mut self, sig: &mut [u8]) -> usize {
        let digest = openssl::sha::sha256(&self.msg);
        self.sign_ctx.sign(&digest, Some(sig)).unwrap()
    }

    pub fn verify(&mut self) {
        let digest = openssl::sha::sha256(&self.msg);
        assert!(self.verify_ctx.verify(&digest, &self.sig).unwrap());
    }

    /// The PBM key from a 16-octet salt.
    pub fn pbm_key(&self) -> Vec<u8> {
        cmpkit::protection::pbm_floor_key(&self.pbm, SECRET, &[7u8; 16]).unwrap()
    }

    /// The PBM MAC over the message with a derived key.
    pub fn mac(&self, key: &[u8]) -> Vec<u8> {
        cmpkit::protection::pbm_floor_mac(&self.pbm, key, &self.msg)
    }
}

impl Default for Floor {
    fn default() -> Self {
        Self::new()
    }
}

/// Crypto operations per transaction in OUR implementation (client + server), as counted
/// with callgrind (BENCHMARKS.md): signatures, verifications (path validations among them),
/// PBM key derivations and MACs (computed or checked).
#[derive(Clone, Copy, Debug)]
pub struct Ops {
    pub signs: u32,
    pub verifies: u32,
    pub derivations: u32,
    pub macs: u32,
}

pub fn ops(s: Scenario) -> Ops {
    match s {
        Scenario::IrMac => OPS_IR_MAC,
        Scenario::IrMacImplicit => OPS_IR_MAC_IMPLICIT,
        Scenario::CrSig | Scenario::KurSig => OPS_CR,
        Scenario::RrSig | Scenario::GenmSig => OPS_RR,
    }
}

/// ir + certConf with MAC: 2 signatures (POP, certificate), 1 verification (POP); 2 PBM
/// derivations (the client's, for the one salt of its transaction, and the server's, which
/// then keeps the key for the rest of the transaction) and 8 MACs (4 messages, each
/// protected and checked).
pub const OPS_IR_MAC: Ops = Ops {
    signs: 2,
    verifies: 1,
    derivations: 2,
    macs: 8,
};
/// ir with implicit confirmation: as `OPS_IR_MAC` with 2 messages, so 4 MACs.
pub const OPS_IR_MAC_IMPLICIT: Ops = Ops {
    signs: 2,
    verifies: 1,
    derivations: 2,
    macs: 4,
};
/// cr/kur: 6 signatures; 5 verifications (POP, cr, certConf on the server; cp, pkiConf on
/// the client). The peers' certificate paths are validated once and then remembered by the
/// `TrustStore` (5 min), so the steady state has no path validation per transaction.
pub const OPS_CR: Ops = Ops {
    signs: 6,
    verifies: 5,
    derivations: 0,
    macs: 0,
};
/// rr/genm: 2 signatures, 2 verifications (no path validation in the steady state, as above).
pub const OPS_RR: Ops = Ops {
    signs: 2,
    verifies: 2,
    derivations: 0,
    macs: 0,
};
