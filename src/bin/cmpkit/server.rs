//! `cmpkit server`: the demo CA behind the HTTP server.

use super::{local, read, secret, usage, Fail, Opts};
use cmpkit::crypto::cert::parse_pem_or_der;
use cmpkit::crypto::{SoftwareKey, TrustStore};
use cmpkit::log::{LogLevel, Logger};
use cmpkit::server::demo_ca::DemoCa;
use cmpkit::server::{
    summarize, CaHandler, FileStore, MemoryStore, PollingCa, Server, ServerConfig, ServerSigner,
    TransactionStore,
};
use cmpkit::transport::http_server::{HttpServer, ServerOptions};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const HELP: &str = "\
cmpkit server — run a CMP server (RFC 9810/9811) with the demo CA

Listens on http://HOST:PORT/pkix/ (also / and /.well-known/cmp). Every authenticated
requester may enroll any subject and revoke any certificate of the CA; meant for tests
and demos.

Network:
  -host ADDR            address to bind (default 127.0.0.1)
  -port N               port (default 0: any free port, printed at start)
  -workers N            worker threads (default 2)
  -max_requests N       exit after serving N requests
  -max_seconds S        exit after S seconds
  -store DIR            keep open transactions as files in DIR, shared with other server
                        processes on this host (default: in memory)

Clients:
  -ref VALUE            reference (senderKID) of a MAC client; pairs with the next -secret
  -secret SOURCE        its shared secret: pass:TEXT, file:PATH (first line), env:VAR;
                        -ref/-secret may repeat
  -trusted FILE         trust anchors for signed requests (PEM; default: the CA's root)
  -untrusted FILE       intermediates that may complete requesters' chains (PEM)

Server and CA:
  -srv_cert FILE        certificate for signing responses (PEM; more certs after it form
                        its chain), with -srv_key; default: the CA signs
  -srv_key FILE         its private key
  -ca_cert FILE         issuing CA certificate (PEM; more certs after it form its chain);
                        default: a generated throwaway demo CA
  -ca_key FILE          its private key
  -grant_implicit_confirm  grant implicitConfirm to clients that ask for it
  -central_keygen       generate the key for ir/cr without one (RFC 9483 §4.1.6) and deliver
                        it to the requester (for its certificate, or with its MAC secret),
                        signed by the server
  -central_keygen_bare_key  sign the bare key, not an AsymmetricKeyPackage (what OpenSSL
                        3.5's client reads)
  -poll N               answer each certificate request \"waiting\" N times first
  -check_after S        checkAfter of those answers in seconds (default 1)
  -quiet                no log lines
  -verbose              also log each request received and answered (default: refusals only)

Prints \"listening on http://HOST:PORT/pkix/\" and then one line per message to stderr.
Stops on SIGINT/SIGTERM, after -max_requests or -max_seconds.
";

pub const VALUED: &[&str] = &[
    "host",
    "port",
    "workers",
    "max_requests",
    "max_seconds",
    "store",
    "ref",
    "secret",
    "trusted",
    "untrusted",
    "srv_cert",
    "srv_key",
    "ca_cert",
    "ca_key",
    "poll",
    "check_after",
];
pub const FLAGS: &[&str] = &[
    "grant_implicit_confirm",
    "central_keygen",
    "central_keygen_bare_key",
    "quiet",
    "verbose",
    "help",
    "h",
];

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

fn num<T: std::str::FromStr>(o: &Opts, name: &str) -> Result<Option<T>, Fail> {
    o.get(name)
        .map(|v| v.parse::<T>())
        .transpose()
        .map_err(|_| usage(format!("-{name} takes a number")))
}

fn certs(path: &str) -> Result<Vec<openssl::x509::X509>, Fail> {
    Ok(parse_pem_or_der(&read(path)?)?)
}

pub fn run(args: &[String]) -> Result<(), Fail> {
    let o = Opts::parse(args, FLAGS, VALUED)?;
    if o.flag("help") || o.flag("h") {
        print!("{HELP}");
        return Ok(());
    }
    let quiet = o.flag("quiet");
    let ca = match (o.get("ca_cert"), o.get("ca_key")) {
        (Some(c), Some(k)) => {
            let mut all = certs(c)?;
            let cert = all.remove(0);
            let mut chain = Vec::new();
            for x in all {
                chain.extend(x.to_pem().map_err(|e| local(e.to_string()))?);
            }
            DemoCa::from_pem(
                &cert.to_pem().map_err(|e| local(e.to_string()))?,
                &read(k)?,
                &chain,
            )?
        }
        (None, None) => DemoCa::generate()?,
        _ => return Err(usage("-ca_cert and -ca_key go together")),
    };
    let ca = Arc::new(ca);
    let signer = match (o.get("srv_cert"), o.get("srv_key")) {
        (Some(c), Some(k)) => {
            let mut chain = certs(c)?;
            let cert = chain.remove(0);
            ServerSigner {
                key: Arc::new(SoftwareKey::from_pem_or_der(&read(k)?)?),
                cert,
                chain,
            }
        }
        (None, None) => ca.signer()?,
        _ => return Err(usage("-srv_cert and -srv_key go together")),
    };
    let refs = o.all("ref");
    let secrets = o.all("secret");
    if refs.len() != secrets.len() {
        return Err(usage("give -ref and -secret in pairs"));
    }
    let mut table: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for (r, s) in refs.iter().zip(secrets) {
        table.insert(r.as_bytes().to_vec(), secret(s)?);
    }
    let anchors = match o.get("trusted") {
        Some(p) => certs(p)?,
        None => ca.chain().last().cloned().into_iter().collect(),
    };
    let polls: u32 = num(&o, "poll")?.unwrap_or(0);
    let config = ServerConfig {
        signer: Some(signer),
        secrets: if table.is_empty() {
            None
        } else {
            Some(Arc::new(move |kid: &[u8]| table.get(kid).cloned()))
        },
        trust: Some(TrustStore::new(&anchors)?),
        untrusted: match o.get("untrusted") {
            Some(p) => certs(p)?,
            None => Vec::new(),
        },
        grant_implicit_confirm: o.flag("grant_implicit_confirm"),
        central_keygen: o.flag("central_keygen"),
        central_keygen_bare_key: o.flag("central_keygen_bare_key"),
        check_after: num(&o, "check_after")?.unwrap_or(1),
        // Refusals (the failed check, the failInfo sent) unless -quiet; everything with -verbose.
        log: (!quiet).then(|| {
            let level = if o.flag("verbose") {
                LogLevel::Debug
            } else {
                LogLevel::Error
            };
            Logger::new(level, |level, line| eprintln!("[{}] {line}", level.name()))
        }),
        ..ServerConfig::default()
    };
    let handler: Arc<dyn CaHandler> = if polls > 0 {
        Arc::new(PollingCa::new(ca.clone(), polls))
    } else {
        ca.clone()
    };
    let store: Arc<dyn TransactionStore> = match o.get("store") {
        Some(dir) => Arc::new(FileStore::open(dir)?),
        None => Arc::new(MemoryStore::new()),
    };
    let server = Arc::new(Server::new(config, handler, store)?);
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let http = HttpServer::bind(
        &format!(
            "{}:{}",
            o.get("host").unwrap_or("127.0.0.1"),
            num::<u16>(&o, "port")?.unwrap_or(0)
        ),
        Arc::new(move |req: &[u8]| {
            let t = Instant::now();
            let rsp = server.process(req);
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            if !quiet {
                eprintln!(
                    "#{n} {} -> {} ({} ms)",
                    summarize(req),
                    summarize(&rsp),
                    t.elapsed().as_millis()
                );
            }
            rsp
        }),
        ServerOptions {
            workers: num(&o, "workers")?.unwrap_or(2),
            ..ServerOptions::default()
        },
    )?;
    let addr = http.local_addr();
    println!("listening on http://{addr}/pkix/");
    println!("CA: {}", cmpkit::crypto::cert::subject_text(ca.cert()));
    use std::io::Write;
    let _ = std::io::stdout().flush();
    install_signal_handlers();
    let max_requests: Option<usize> = num(&o, "max_requests")?;
    let deadline = num::<u64>(&o, "max_seconds")?.map(|s| Instant::now() + Duration::from_secs(s));
    loop {
        if STOP.load(Ordering::SeqCst) {
            eprintln!("signal received, stopping");
            break;
        }
        if max_requests.is_some_and(|m| served.load(Ordering::SeqCst) >= m) {
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stats = http.stats();
    http.shutdown()?;
    let issued = ca.issued().len();
    println!(
        "stopped after {} requests; {issued} certificates issued, {} revoked",
        stats.requests_served,
        ca.revocations().len()
    );
    Ok(())
}
