//! `cmpkit`: the command-line CMP client (and, later, server and demo).
//!
//! Options follow `openssl cmp` where they overlap (`-server`, `-ref`, `-secret`, `-cert`,
//! `-key`, `-trusted`, `-newkey`, `-subject`, `-certout`, ...), with GNU-style `--` spellings
//! accepted too. Exit status: 0 success, 1 the server refused (rejection, error message),
//! 2 usage, 3 transfer failure, 4 the response failed a check, 5 local failure (files, keys).

use cmpkit::client::{execute, ClientConfig, Credentials, EnrollRequest, Transaction, Transfer};
use cmpkit::crypto::cert::parse_pem_or_der;
use cmpkit::crypto::{KeyType, SoftwareKey, TrustStore};
use cmpkit::message::parse_name;
use cmpkit::protection::{MacParams, PbmConfig, Pbmac1Config};
use cmpkit::transport::HttpTransfer;
use cmpkit::{Error, ErrorCode};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

const USAGE: &str = "\
cmpkit — Certificate Management Protocol (RFC 9810) client

Usage: cmpkit <command> [options]

Commands:
  ir        initial registration: enroll a (new) key with a shared secret or a certificate
  help      show this text, or `cmpkit help <command>`

Run `cmpkit <command> --help` for the options of a command.
";

const IR_HELP: &str = "\
cmpkit ir — enroll a key (initialization request), then confirm the certificate

Transfer (one of):
  -server URL           http://host[:port]/path of the CMP server (RFC 9811)
  -reqout DIR           store-and-forward: write each request as DIR/req-N.der and wait
                        for the answer in DIR/rsp-N.der (see -rsp_wait)
  -rsp_wait SECONDS     how long to wait for each response file (default 300)
  -msg_timeout SECONDS  HTTP timeout per message (default 30)

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

What to ask for:
  -newkey FILE          the key to certify (PEM/DER); generated if FILE does not exist
  -newkeytype TYPE      type of a generated key: ec (P-256, default), ec384, ec521,
                        rsa2048, rsa3072, rsa4096, ed25519, ed448
  -subject DN           subject, e.g. /CN=device-1/O=Example
  -san NAME             subjectAltName: DNS name, IP address, URI (with ://) or e-mail (with @);
                        may repeat
  -implicit_confirm     ask the server to skip certConf/pkiConf

Output:
  -certout FILE         the new certificate (PEM)
  -keyout FILE          the new key, if generated (PEM, mode 0600); default: -newkey FILE
  -cacertsout FILE      caPubs (PEM)
  -extracertsout FILE   extraCerts of the response (PEM)
  -quiet                print only errors
";

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
const COMMON_FLAGS: &[&str] = &["unprotected_errors", "quiet", "help", "h"];

fn cmd_ir(args: &[String]) -> Result<(), Fail> {
    let valued: Vec<&str> = COMMON_VALUED
        .iter()
        .copied()
        .chain([
            "newkey",
            "newkeytype",
            "subject",
            "san",
            "certout",
            "keyout",
            "cacertsout",
            "extracertsout",
        ])
        .collect();
    let flags: Vec<&str> = COMMON_FLAGS
        .iter()
        .copied()
        .chain(["implicit_confirm"])
        .collect();
    let o = Opts::parse(args, &flags, &valued)?;
    if o.flag("help") || o.flag("h") {
        print!("{IR_HELP}");
        return Ok(());
    }
    let quiet = o.flag("quiet");
    let certout = o
        .get("certout")
        .ok_or_else(|| usage("-certout FILE is required"))?;
    let config = client_config(&o)?;
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
    if subject.is_none() && sans.is_empty() {
        return Err(usage("give -subject and/or -san"));
    }
    let mut transfer = transfer(&o)?;
    let mut tx = Transaction::start_ir(
        Arc::new(config),
        EnrollRequest {
            subject,
            sans,
            key: key.clone(),
        },
    )?;
    let outcome = execute(&mut tx, transfer.as_mut());
    let r = tx.response();
    if let Some(s) = &r.status {
        if !quiet || outcome.is_err() {
            eprintln!(
                "server status: {s}{}",
                if r.unprotected {
                    " (unprotected, not authenticated)"
                } else {
                    ""
                }
            );
        }
    }
    outcome?;
    let cert_der = r
        .certificate
        .as_deref()
        .ok_or_else(|| local("no certificate"))?;
    let cert =
        openssl::x509::X509::from_der(cert_der).map_err(|e| local(format!("certificate: {e}")))?;
    write(
        certout,
        &cert.to_pem().map_err(|e| local(e.to_string()))?,
        false,
    )?;
    if generated {
        if let Some(p) = o.get("keyout").or(o.get("newkey")) {
            write(p, &key.to_pkcs8_pem()?, true)?;
        }
    }
    if let Some(p) = o.get("cacertsout") {
        write(p, &pem_all(&r.ca_pubs)?, false)?;
    }
    if let Some(p) = o.get("extracertsout") {
        write(p, &pem_all(&r.extra_certs)?, false)?;
    }
    if !quiet {
        println!("enrolled: {}", describe_cert(&cert));
        if r.implicit_confirm_granted {
            println!("implicit confirmation granted (no certConf sent)");
        }
        println!("certificate written to {certout}");
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
        Some("ir") => cmd_ir(&args[1..]),
        Some("help") | Some("-h") | Some("--help") | None => {
            match args.get(1).map(String::as_str) {
                Some("ir") => {
                    print!("{IR_HELP}");
                    Ok(())
                }
                _ => {
                    print!("{USAGE}");
                    Ok(())
                }
            }
        }
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
