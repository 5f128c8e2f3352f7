//! `cmpkit`: the command-line CMP client, a CMP server with the demo CA, and a demo.
//!
//! Options follow `openssl cmp` where they overlap (`-server`, `-ref`, `-secret`, `-cert`,
//! `-key`, `-trusted`, `-newkey`, `-subject`, `-certout`, ...), with GNU-style `--` spellings
//! accepted too. Exit status: 0 success, 1 the server refused (rejection, error message),
//! 2 usage, 3 transfer failure, 4 the response failed a check, 5 local failure (files, keys).

use cmpkit::client::{
    execute, genm, ClientConfig, Credentials, EnrollRequest, KeygenRequest, Operation, Transaction,
    Transfer,
};
use cmpkit::crypto::cert::parse_pem_or_der;
use cmpkit::crypto::{KeyType, SoftwareDecryptor, SoftwareKey, TrustStore};
use cmpkit::message::parse_name;
use cmpkit::protection::{MacParams, PbmConfig, Pbmac1Config};
use cmpkit::transport::HttpTransfer;
use cmpkit::{Error, ErrorCode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod demo;
mod server;

const USAGE: &str = "\
cmpkit — Certificate Management Protocol (RFC 9810) client and server

Usage: cmpkit <command> [options]

Commands:
  ir        initial registration: enroll a (new) key, usually with a shared secret
  cr        certification request: enroll a (new) key, signed with an existing certificate
  ccr       cross-certification request
  krr       key recovery request
  kur       key update: renew a certificate with a new key
  p10cr     enroll a PKCS#10 CSR
  rr        revoke a certificate
  genm      ask the CA: CA certificates, root CA update, request template, key types
  server    run a CMP server over HTTP with the demo CA
  demo      enroll, renew, fetch CA certificates and revoke against an in-process CA
  help      show this text, or `cmpkit help <command>`

Run `cmpkit <command> --help` for the options of a command.
";

const COMMON_HELP: &str = "\
Transfer (one of):
  -server URL           http://host[:port]/path of the CMP server (RFC 9811)
  -reqout DIR           store-and-forward: write each request as DIR/req-N.der and wait
                        for the answer in DIR/rsp-N.der (see -rsp_wait)
  -rsp_wait SECONDS     how long to wait for each response file (default 300)
  -msg_timeout SECONDS  HTTP timeout per message (default 30)
  -total_timeout SECS   overall deadline while polling (default 300)

Authentication (one of):
  -ref VALUE            reference (senderKID) of the shared secret
  -secret SOURCE        shared secret: pass:TEXT, file:PATH (first line), env:VAR
  -mac pbm|pbmac1       MAC algorithm (default pbm: understood by every CMP server)
  -cert FILE            our certificate (PEM/DER; more PEM certs after it form its chain)
  -key FILE             its private key

Trust (for signed responses):
  -trusted FILE         trust anchors (PEM)
  -untrusted FILE       intermediate certificates (PEM)
  -srvcert FILE         pin the server's certificate
  -recipient DN         recipient name, e.g. /CN=My CA
  -unprotected_errors   report the content of unprotected error answers
  -quiet                print only errors
  -verbose              log every message sent and received to stderr
";

const ENROLL_HELP: &str = "\
What to ask for:
  -newkey FILE          the key to certify (PEM/DER); generated if FILE does not exist
  -newkeytype TYPE      type of a generated key: ec (P-256, default), ec384, ec521,
                        rsa2048, rsa3072, rsa4096, ed25519, ed448
  -subject DN           subject, e.g. /CN=device-1/O=Example
  -san NAME             subjectAltName: DNS name, IP address, URI (with ://) or e-mail (with @);
                        may repeat
  -implicit_confirm     ask the server to skip certConf/pkiConf
  -centralkeygen        let the CA generate the key (RFC 9483 §4.1.6; ir and cr): with
                        -newkeytype to ask for a type; the key arrives encrypted (with the
                        shared secret, or for -cert/-key) and is written to -keyout

Output:
  -certout FILE         the new certificate (PEM)
  -keyout FILE          the new key, if generated (PEM, mode 0600); default: -newkey FILE
  -cacertsout FILE      caPubs (PEM)
  -extracertsout FILE   extraCerts of the response (PEM)
";

/// Per-command help: a summary line, the command's own options, then the common ones.
fn help(cmd: &str) -> Option<String> {
    let (summary, own) = match cmd {
        "server" => return Some(server::HELP.to_owned()),
        "demo" => return Some(demo::HELP.to_owned()),
        "ir" => ("enroll a key (initialization request), then confirm the certificate", ENROLL_HELP),
        "cr" => ("enroll a key (certification request), signed with -cert/-key", ENROLL_HELP),
        "ccr" => ("have another CA cross-certify a key (cross-certification request)", ENROLL_HELP),
        "krr" => ("recover a key pair (key recovery request)", ENROLL_HELP),
        "kur" => (
            "renew a certificate with a new key (key update request)",
            "Old certificate:\n  -oldcert FILE         the certificate to update (default: -cert); the\n                        request is signed with -cert/-key\n\n",
        ),
        "p10cr" => ("enroll a PKCS#10 CSR", "CSR:\n  -csr FILE             the PKCS#10 request (PEM or DER)\n  -certout FILE         the new certificate (PEM)\n\n"),
        "rr" => (
            "revoke a certificate",
            "Certificate:\n  -oldcert FILE         the certificate to revoke (default: -cert)\n  -revreason N          CRLReason: 0 unspecified, 1 keyCompromise, 3 affiliationChanged,\n                        4 superseded, 5 cessationOfOperation, ... (default: none)\n\n",
        ),
        "genm" => (
            "ask the CA for information (general message)",
            "Question:\n  -infotype NAME        caCerts, rootCaCert (with -oldroot), certReqTemplate,\n                        signKeyPairTypes (default caCerts)\n  -oldroot FILE         our current root certificate, for rootCaCert\n  -certout FILE         caCerts / new root certificate (PEM)\n\n",
        ),
        _ => return None,
    };
    let extra = if cmd == "kur" { ENROLL_HELP } else { "" };
    Some(format!(
        "cmpkit {cmd} — {summary}\n\n{own}{extra}{COMMON_HELP}"
    ))
}

/// Command-line failure: exit status and message.
struct Fail(u8, String);

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        let status = match e.code as u32 {
            500..=599 => 1,
            600..=699 => 3,
            200..=499 => 4,
            _ => 5,
        };
        Fail(status, e.to_string())
    }
}

fn usage(msg: impl Into<String>) -> Fail {
    Fail(2, msg.into())
}

fn local(msg: impl Into<String>) -> Fail {
    Fail(5, msg.into())
}

/// Parsed options: name → values (flags get an empty value).
struct Opts(HashMap<String, Vec<String>>);

impl Opts {
    fn parse(args: &[String], flags: &[&str], valued: &[&str]) -> Result<Opts, Fail> {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        let mut i = 0;
        while i < args.len() {
            let name = args[i].trim_start_matches('-').replace('-', "_");
            if !args[i].starts_with('-') {
                return Err(usage(format!("unexpected argument {:?}", args[i])));
            }
            if flags.contains(&name.as_str()) {
                m.entry(name).or_default().push(String::new());
                i += 1;
            } else if valued.contains(&name.as_str()) {
                let v = args
                    .get(i + 1)
                    .ok_or_else(|| usage(format!("{} needs a value", args[i])))?;
                m.entry(name).or_default().push(v.clone());
                i += 2;
            } else {
                return Err(usage(format!("unknown option {} (see --help)", args[i])));
            }
        }
        Ok(Opts(m))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    fn all(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or_default()
    }

    fn flag(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

fn read(path: &str) -> Result<Vec<u8>, Fail> {
    std::fs::read(path).map_err(|e| local(format!("cannot read {path}: {e}")))
}

fn write(path: &str, data: &[u8], private: bool) -> Result<(), Fail> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|e| local(format!("cannot write {path}: {e}")))
}

fn pem_all(ders: &[Vec<u8>]) -> Result<Vec<u8>, Fail> {
    let mut out = Vec::new();
    for d in ders {
        out.extend(
            openssl::x509::X509::from_der(d)
                .and_then(|c| c.to_pem())
                .map_err(|e| local(format!("certificate: {e}")))?,
        );
    }
    Ok(out)
}

/// A secret from `pass:TEXT`, `file:PATH` or `env:VAR`, as `openssl cmp` takes it.
fn secret(source: &str) -> Result<Vec<u8>, Fail> {
    if let Some(t) = source.strip_prefix("pass:") {
        Ok(t.as_bytes().to_vec())
    } else if let Some(p) = source.strip_prefix("file:") {
        let s = read(p)?;
        let line = s.split(|&b| b == b'\n').next().unwrap_or_default();
        Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
    } else if let Some(v) = source.strip_prefix("env:") {
        std::env::var(v)
            .map(String::into_bytes)
            .map_err(|_| usage(format!("environment variable {v} is not set")))
    } else {
        Err(usage("-secret takes pass:TEXT, file:PATH or env:VAR"))
    }
}

fn key_type(s: &str) -> Result<KeyType, Fail> {
    Ok(match s {
        "ec" | "ec256" | "p256" => KeyType::EcP256,
        "ec384" => KeyType::EcP384,
        "ec521" => KeyType::EcP521,
        "rsa2048" | "rsa" => KeyType::Rsa(2048),
        "rsa3072" => KeyType::Rsa(3072),
        "rsa4096" => KeyType::Rsa(4096),
        "ed25519" => KeyType::Ed25519,
        "ed448" => KeyType::Ed448,
        o => return Err(usage(format!("unknown key type {o}"))),
    })
}

fn san(v: &str) -> Result<x509_cert::ext::pkix::name::GeneralName, Fail> {
    use x509_cert::ext::pkix::name::GeneralName;
    let ia5 =
        |s: &str| der::asn1::Ia5String::new(s).map_err(|_| usage(format!("{s:?} is not ASCII")));
    Ok(if let Ok(ip) = v.parse::<std::net::IpAddr>() {
        GeneralName::from(ip)
    } else if v.contains("://") {
        GeneralName::UniformResourceIdentifier(ia5(v)?)
    } else if v.contains('@') {
        GeneralName::Rfc822Name(ia5(v)?)
    } else {
        GeneralName::DnsName(ia5(v)?)
    })
}

/// The client configuration from the common options.
fn client_config(o: &Opts) -> Result<ClientConfig, Fail> {
    let certs = |name: &str| -> Result<Vec<openssl::x509::X509>, Fail> {
        match o.get(name) {
            Some(p) => Ok(parse_pem_or_der(&read(p)?)?),
            None => Ok(Vec::new()),
        }
    };
    let credentials = match (o.get("cert"), o.get("key"), o.get("secret")) {
        (Some(c), Some(k), _) => {
            let key = Arc::new(SoftwareKey::from_pem_or_der(&read(k)?)?);
            let mut chain = parse_pem_or_der(&read(c)?)?;
            let leaf = chain.remove(0);
            Credentials::signature(key, leaf, chain)
        }
        (Some(_), None, _) | (None, Some(_), _) => return Err(usage("-cert and -key go together")),
        (None, None, Some(s)) => {
            let reference = o.get("ref").ok_or_else(|| usage("-secret needs -ref"))?;
            let params = match o.get("mac").unwrap_or("pbm") {
                "pbm" => MacParams::Pbm(PbmConfig::default()),
                "pbmac1" => MacParams::Pbmac1(Pbmac1Config::default()),
                m => return Err(usage(format!("unknown MAC algorithm {m}"))),
            };
            Credentials::mac(&secret(s)?, reference.as_bytes(), params)
        }
        (None, None, None) => return Err(usage("give -ref and -secret, or -cert and -key")),
    };
    let anchors = certs("trusted")?;
    Ok(ClientConfig {
        credentials: Some(credentials),
        trust: if anchors.is_empty() {
            None
        } else {
            Some(TrustStore::new(&anchors)?)
        },
        untrusted: certs("untrusted")?,
        server_cert: certs("srvcert")?.into_iter().next(),
        recipient: o.get("recipient").map(parse_name).transpose()?,
        implicit_confirm: o.flag("implicit_confirm"),
        unprotected_errors: o.flag("unprotected_errors"),
        ..ClientConfig::default()
    })
}

/// Store-and-forward transfer: requests and responses as numbered files in a folder.
struct FileTransfer {
    dir: PathBuf,
    n: u32,
    wait: Duration,
}

impl Transfer for FileTransfer {
    fn transfer(&mut self, request: &[u8]) -> cmpkit::Result<Vec<u8>> {
        self.n += 1;
        let req = self.dir.join(format!("req-{}.der", self.n));
        let rsp = self.dir.join(format!("rsp-{}.der", self.n));
        std::fs::write(&req, request).map_err(|e| {
            Error::new(ErrorCode::TransferFailed, format!("{}: {e}", req.display()))
        })?;
        eprintln!(
            "request written to {}; waiting for {}",
            req.display(),
            rsp.display()
        );
        let deadline = Instant::now() + self.wait;
        loop {
            if let Ok(b) = std::fs::read(&rsp) {
                return Ok(b);
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorCode::Timeout,
                    format!("no {} within {:?}", rsp.display(), self.wait),
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn transfer(o: &Opts) -> Result<Box<dyn Transfer>, Fail> {
    match (o.get("server"), o.get("reqout")) {
        (Some(url), None) => {
            let mut h = HttpTransfer::new(url)?;
            if let Some(t) = o.get("msg_timeout") {
                let s: u64 = t.parse().map_err(|_| usage("-msg_timeout takes seconds"))?;
                h.set_timeout(Duration::from_secs(s))?;
            }
            Ok(Box::new(move |req: &[u8]| h.post(req)))
        }
        (None, Some(dir)) => {
            let wait = o
                .get("rsp_wait")
                .map(|s| s.parse::<u64>())
                .transpose()
                .map_err(|_| usage("-rsp_wait takes seconds"))?;
            Ok(Box::new(FileTransfer {
                dir: PathBuf::from(dir),
                n: 0,
                wait: Duration::from_secs(wait.unwrap_or(300)),
            }))
        }
        _ => Err(usage("give exactly one of -server URL and -reqout DIR")),
    }
}

const COMMON_VALUED: &[&str] = &[
    "server",
    "reqout",
    "rsp_wait",
    "msg_timeout",
    "total_timeout",
    "ref",
    "secret",
    "mac",
    "cert",
    "key",
    "trusted",
    "untrusted",
    "srvcert",
    "recipient",
];
const COMMON_FLAGS: &[&str] = &["unprotected_errors", "quiet", "verbose", "help", "h"];
const ENROLL_VALUED: &[&str] = &[
    "newkey",
    "newkeytype",
    "subject",
    "san",
    "certout",
    "keyout",
    "cacertsout",
    "extracertsout",
];

/// The options each command takes besides the common ones: (valued, flags).
fn command_options(cmd: &str) -> (Vec<&'static str>, Vec<&'static str>) {
    let (mut v, mut f): (Vec<&str>, Vec<&str>) = (COMMON_VALUED.to_vec(), COMMON_FLAGS.to_vec());
    match cmd {
        "ir" | "cr" | "kur" | "ccr" | "krr" => {
            v.extend(ENROLL_VALUED);
            f.push("implicit_confirm");
            if cmd == "ir" || cmd == "cr" {
                f.push("centralkeygen");
            }
            if cmd == "kur" {
                v.push("oldcert");
            }
        }
        "p10cr" => {
            v.extend(["csr", "certout", "cacertsout", "extracertsout"]);
            f.push("implicit_confirm");
        }
        "rr" => v.extend(["oldcert", "revreason"]),
        "genm" => v.extend(["infotype", "oldroot", "certout"]),
        _ => {}
    }
    (v, f)
}

/// A certificate from a file (the first one of a PEM file).
fn cert_file(path: &str) -> Result<openssl::x509::X509, Fail> {
    Ok(parse_pem_or_der(&read(path)?)?.remove(0))
}

/// The new key and the enrollment request from -newkey/-newkeytype/-subject/-san.
fn enroll_request(
    o: &Opts,
    need_name: bool,
) -> Result<(EnrollRequest, Arc<SoftwareKey>, bool), Fail> {
    let (key, generated) = match o.get("newkey") {
        Some(p) if std::path::Path::new(p).exists() => {
            (SoftwareKey::from_pem_or_der(&read(p)?)?, false)
        }
        _ => (
            SoftwareKey::generate(key_type(o.get("newkeytype").unwrap_or("ec"))?)?,
            true,
        ),
    };
    let key = Arc::new(key);
    let sans = o
        .all("san")
        .iter()
        .map(|s| san(s))
        .collect::<Result<Vec<_>, _>>()?;
    let subject = o.get("subject").map(parse_name).transpose()?;
    if need_name && subject.is_none() && sans.is_empty() {
        return Err(usage("give -subject and/or -san"));
    }
    Ok((
        EnrollRequest {
            subject,
            sans,
            key: key.clone(),
        },
        key,
        generated,
    ))
}

/// Run one command: parse its options, build the operation, execute, write the results.
fn run_command(cmd: &str, args: &[String]) -> Result<(), Fail> {
    let (valued, flags) = command_options(cmd);
    let o = Opts::parse(args, &flags, &valued)?;
    if o.flag("help") || o.flag("h") {
        print!("{}", help(cmd).unwrap_or_default());
        return Ok(());
    }
    let quiet = o.flag("quiet");
    let mut config = client_config(&o)?;
    if o.flag("verbose") {
        config.log = Some(cmpkit::log::Logger::new(
            cmpkit::log::LogLevel::Debug,
            |level, line| eprintln!("[{}] {line}", level.name()),
        ));
    }
    if let Some(t) = o.get("total_timeout") {
        config.polling_deadline = Duration::from_secs(
            t.parse()
                .map_err(|_| usage("-total_timeout takes seconds"))?,
        );
    }
    let mut new_key = None;
    let operation = match cmd {
        "ir" | "cr" if o.flag("centralkeygen") => {
            let sans = o
                .all("san")
                .iter()
                .map(|s| san(s))
                .collect::<Result<Vec<_>, _>>()?;
            let subject = o.get("subject").map(parse_name).transpose()?;
            let algorithm = o
                .get("newkeytype")
                .map(|t| KeygenRequest::algorithm_for(key_type(t)?).map_err(Fail::from))
                .transpose()?;
            if let (Some(c), Some(k)) = (o.get("cert"), o.get("key")) {
                let pkey = SoftwareKey::from_pem_or_der(&read(k)?)?.pkey().clone();
                config.decryptor = Some(Arc::new(SoftwareDecryptor::new(pkey, cert_file(c)?)?));
            }
            let request = KeygenRequest {
                subject,
                sans,
                algorithm,
            };
            if cmd == "ir" {
                Operation::IrCentralKeygen(request)
            } else {
                Operation::CrCentralKeygen(request)
            }
        }
        "ir" | "cr" | "ccr" | "krr" => {
            let (req, key, generated) = enroll_request(&o, true)?;
            new_key = Some((key, generated));
            match cmd {
                "ir" => Operation::Ir(req),
                "cr" => Operation::Cr(req),
                "ccr" => Operation::Ccr(req),
                _ => Operation::Krr(req),
            }
        }
        "kur" => {
            let old = o
                .get("oldcert")
                .or(o.get("cert"))
                .ok_or_else(|| usage("kur needs -oldcert or -cert"))?;
            let (request, key, generated) = enroll_request(&o, false)?;
            new_key = Some((key, generated));
            let old = cert_file(old)?;
            Operation::kur(request, &old, None)?
        }
        "p10cr" => {
            let csr = read(o.get("csr").ok_or_else(|| usage("p10cr needs -csr FILE"))?)?;
            let csr_der = if csr.trim_ascii_start().starts_with(b"-----BEGIN") {
                openssl::x509::X509Req::from_pem(&csr)
                    .and_then(|r| r.to_der())
                    .map_err(|e| local(format!("CSR: {e}")))?
            } else {
                csr
            };
            Operation::P10cr { csr_der }
        }
        "rr" => {
            let cert = o
                .get("oldcert")
                .or(o.get("cert"))
                .ok_or_else(|| usage("rr needs -oldcert or -cert"))?;
            let reason = o
                .get("revreason")
                .map(|r| r.parse::<u8>())
                .transpose()
                .map_err(|_| usage("-revreason takes a number"))?;
            let cert = cert_file(cert)?;
            Operation::rr(&cert, reason, None)?
        }
        "genm" => {
            let itav = match o.get("infotype").unwrap_or("caCerts") {
                "caCerts" => genm::ca_certs_request(),
                "rootCaCert" => genm::root_ca_key_update_request(
                    o.get("oldroot").map(cert_file).transpose()?.as_ref(),
                )?,
                "certReqTemplate" => genm::cert_req_template_request(),
                "signKeyPairTypes" => genm::sign_key_pair_types_request(),
                t => return Err(usage(format!("unknown -infotype {t}"))),
            };
            Operation::Genm(vec![itav])
        }
        c => return Err(usage(format!("unknown command {c:?}; see `cmpkit help`"))),
    };
    let mut transfer = transfer(&o)?;
    let mut tx = Transaction::start(Arc::new(config), operation)?;
    let outcome = execute(&mut tx, transfer.as_mut());
    let r = tx.response();
    if r.poll_rounds > 0 && !quiet {
        eprintln!(
            "polled {} times (the server asked to wait {:?} in all)",
            r.poll_rounds, r.requested_wait
        );
    }
    if let Some(st) = &r.status {
        if !quiet || outcome.is_err() {
            eprintln!(
                "server status: {st}{}",
                if r.unprotected {
                    " (unprotected, not authenticated)"
                } else {
                    ""
                }
            );
        }
    }
    outcome?;
    if let Some(der) = r.certificate.as_deref() {
        let cert =
            openssl::x509::X509::from_der(der).map_err(|e| local(format!("certificate: {e}")))?;
        let certout = o
            .get("certout")
            .ok_or_else(|| usage("-certout FILE is required"))?;
        write(
            certout,
            &cert.to_pem().map_err(|e| local(e.to_string()))?,
            false,
        )?;
        if let Some((key, true)) = &new_key {
            if let Some(p) = o.get("keyout").or(o.get("newkey")) {
                write(p, &key.to_pkcs8_pem()?, true)?;
            }
        }
        if let Some(k) = &r.private_key_pkcs8 {
            let p = o
                .get("keyout")
                .ok_or_else(|| usage("-keyout FILE is needed for a centrally generated key"))?;
            let pem = openssl::pkey::PKey::private_key_from_pkcs8(k)
                .and_then(|k| k.private_key_to_pem_pkcs8());
            write(
                p,
                &pem.map_err(|e| local(format!("the delivered key: {e}")))?,
                true,
            )?;
            if !quiet {
                println!("centrally generated key written to {p}");
            }
        }
        if !quiet {
            println!("enrolled: {}", describe_cert(&cert));
            if r.implicit_confirm_granted {
                println!("implicit confirmation granted (no certConf sent)");
            }
            println!("certificate written to {certout}");
        }
    }
    if let Some(p) = o.get("cacertsout") {
        write(p, &pem_all(&r.ca_pubs)?, false)?;
    }
    if let Some(p) = o.get("extracertsout") {
        write(p, &pem_all(&r.extra_certs)?, false)?;
    }
    match cmd {
        "rr" if !quiet => println!(
            "revoked: {}",
            describe_cert(&cert_file(
                o.get("oldcert").or(o.get("cert")).unwrap_or_default()
            )?)
        ),
        "genm" => print_genp(&o, r, quiet)?,
        _ => {}
    }
    Ok(())
}

/// Show (and write, with -certout) what a genp answered.
fn print_genp(o: &Opts, r: &cmpkit::client::Response, quiet: bool) -> Result<(), Fail> {
    let mut certs = r.ca_certs()?.unwrap_or_default();
    if let Some(old) = o.get("oldroot") {
        if let Some(u) = r.root_ca_key_update(&cert_file(old)?)? {
            println!("new root CA certificate verified against the old root");
            certs = vec![u.new_with_new];
        }
    }
    if let Some(t) = r.sign_key_pair_types()? {
        println!(
            "key pair types: {}",
            t.iter()
                .map(|a| a.oid.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if let Some(t) = r.cert_req_template()? {
        println!(
            "certificate request template: subject {:?}",
            t.cert_template.subject.as_ref().map(|n| n.to_string())
        );
    }
    for itav in &r.genp {
        if !quiet {
            println!(
                "genp: {} ({})",
                cmpkit::asn1::genm::info_type_name(&itav.oid)
                    .map(str::to_owned)
                    .unwrap_or_else(|| itav.oid.to_string()),
                if itav.value.is_some() {
                    "with value"
                } else {
                    "no value"
                }
            );
        }
    }
    if !certs.is_empty() {
        for c in &certs {
            println!(
                "CA certificate: {}",
                describe_cert(&openssl::x509::X509::from_der(c).map_err(|e| local(e.to_string()))?)
            );
        }
        if let Some(p) = o.get("certout") {
            write(p, &pem_all(&certs)?, false)?;
        }
    }
    Ok(())
}

/// Subject, serial and validity in one line.
fn describe_cert(c: &openssl::x509::X509) -> String {
    let subject = cmpkit::crypto::cert::subject_text(c);
    let serial = c
        .serial_number()
        .to_bn()
        .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
        .unwrap_or_default();
    format!(
        "subject {subject}, serial {serial}, valid {} until {}",
        c.not_before(),
        c.not_after()
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("help") | Some("-h") | Some("--help") | None => {
            print!(
                "{}",
                args.get(1)
                    .and_then(|c| help(c))
                    .unwrap_or_else(|| USAGE.to_owned())
            );
            Ok(())
        }
        Some("server") => server::run(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some(c) if help(c).is_some() => run_command(c, &args[1..]),
        Some(c) => Err(usage(format!("unknown command {c:?}; see `cmpkit help`"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Fail(code, msg)) => {
            eprintln!("cmpkit: {msg}");
            ExitCode::from(code)
        }
    }
}
