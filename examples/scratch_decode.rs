use der::{Decode, Encode};
use std::time::Instant;
fn main() {
    let dir = "tests/vectors/openssl-3.0";
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "der"))
        .collect();
    files.sort();
    for p in files.iter().take(40) {
        let b = std::fs::read(p).unwrap();
        let Ok(m) = cmpkit::asn1::PkiMessage::from_der(&b) else {
            continue;
        };
        let hdr = m.header.to_der().unwrap();
        let n = 20000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                cmpkit::asn1::PkiMessage::from_der(std::hint::black_box(&b)).unwrap(),
            );
        }
        let dm = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                cmpkit::asn1::PkiHeader::from_der(std::hint::black_box(&hdr)).unwrap(),
            );
        }
        let dh = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(m.to_der().unwrap());
        }
        let em = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(m.header.to_der().unwrap());
        }
        let eh = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "{:50} {:5}B hdr {:4}B  dec {:7.0} ns (hdr {:6.0})  enc {:7.0} ns (hdr {:6.0})",
            p.file_name().unwrap().to_string_lossy(),
            b.len(),
            hdr.len(),
            dm,
            dh,
            em,
            eh
        );
    }
}
