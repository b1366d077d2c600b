//! perf/tls_floor: the crypto floor of Sluice's TLS (issue 20): raw AES-GCM seal/open throughput of ring and
//! aws-lc-rs on 16 KiB records, and rustls's buffered server path (decrypt what a client
//! sends; encrypt what the server sends) in memory, for both providers. One core, CPU time.
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::Instant;

const RECORD: usize = 16 * 1024;
const TOTAL: usize = 1 << 30;

fn cpu() -> f64 {
    let mut t = libc_timespec();
    unsafe { clock_gettime(2, &mut t) }; // CLOCK_PROCESS_CPUTIME_ID
    t.0 as f64 + t.1 as f64 * 1e-9
}
#[repr(C)]
struct Ts(i64, i64);
fn libc_timespec() -> Ts { Ts(0, 0) }
extern "C" { fn clock_gettime(clk: i32, ts: *mut Ts) -> i32; }

fn report(name: &str, bytes: usize, cpu_s: f64, wall: f64) {
    let gb = bytes as f64 / 1e9;
    println!("{name:<44} {:>7.2} GB/s  {:>6.3} CPU-s/GB", gb / wall, cpu_s / gb);
}

fn ring_aead(alg: &'static ring::aead::Algorithm, name: &str) {
    use ring::aead::*;
    let key = LessSafeKey::new(UnboundKey::new(alg, &vec![7u8; alg.key_len()]).unwrap());
    let mut buf = vec![1u8; RECORD];
    let (c0, w0) = (cpu(), Instant::now());
    for i in 0..TOTAL / RECORD {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut buf).unwrap();
        std::hint::black_box(tag);
    }
    report(&format!("ring {name} seal"), TOTAL, cpu() - c0, w0.elapsed().as_secs_f64());
    // open: seal one record, then open a copy of it each time (the copy is in the figure).
    let mut sealed = vec![1u8; RECORD];
    let n = [0u8; 12];
    let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut sealed).unwrap();
    sealed.extend_from_slice(tag.as_ref());
    let mut work = sealed.clone();
    let (c0, w0) = (cpu(), Instant::now());
    for _ in 0..TOTAL / RECORD {
        work.copy_from_slice(&sealed);
        let out = key.open_in_place(Nonce::assume_unique_for_key(n), Aad::empty(), &mut work).unwrap();
        std::hint::black_box(out);
    }
    report(&format!("ring {name} open (+1 copy)"), TOTAL, cpu() - c0, w0.elapsed().as_secs_f64());
}

#[cfg(feature = "aws")]
fn aws_aead(alg: &'static aws_lc_rs::aead::Algorithm, name: &str) {
    use aws_lc_rs::aead::*;
    let key = LessSafeKey::new(UnboundKey::new(alg, &vec![7u8; alg.key_len()]).unwrap());
    let mut buf = vec![1u8; RECORD];
    let (c0, w0) = (cpu(), Instant::now());
    for i in 0..TOTAL / RECORD {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&(i as u64).to_be_bytes());
        let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut buf).unwrap();
        std::hint::black_box(tag);
    }
    report(&format!("aws-lc-rs {name} seal"), TOTAL, cpu() - c0, w0.elapsed().as_secs_f64());
    let mut sealed = vec![1u8; RECORD];
    let n = [0u8; 12];
    let tag = key.seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::empty(), &mut sealed).unwrap();
    sealed.extend_from_slice(tag.as_ref());
    let mut work = sealed.clone();
    let (c0, w0) = (cpu(), Instant::now());
    for _ in 0..TOTAL / RECORD {
        work.copy_from_slice(&sealed);
        let out = key.open_in_place(Nonce::assume_unique_for_key(n), Aad::empty(), &mut work).unwrap();
        std::hint::black_box(out);
    }
    report(&format!("aws-lc-rs {name} open (+1 copy)"), TOTAL, cpu() - c0, w0.elapsed().as_secs_f64());
}

fn configs(provider: rustls::crypto::CryptoProvider, suite: rustls::SupportedCipherSuite)
    -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let mut provider = provider;
    provider.cipher_suites = vec![suite];
    let provider = Arc::new(provider);
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions().unwrap()
        .with_no_client_auth().with_single_cert(vec![cert.clone()], key).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions().unwrap()
        .with_root_certificates(roots).with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}

fn transfer(name: &str, provider: rustls::crypto::CryptoProvider, suite: rustls::SupportedCipherSuite) {
    let (sc, cc) = configs(provider, suite);
    let mut server = rustls::ServerConnection::new(sc).unwrap();
    let mut client = rustls::ClientConnection::new(cc, "localhost".try_into().unwrap()).unwrap();
    let mut wire = Vec::new();
    while server.is_handshaking() || client.is_handshaking() {
        wire.clear(); while client.wants_write() { client.write_tls(&mut wire).unwrap(); }
        let mut r = &wire[..]; while !r.is_empty() { server.read_tls(&mut r).unwrap(); server.process_new_packets().unwrap(); }
        wire.clear(); while server.wants_write() { server.write_tls(&mut wire).unwrap(); }
        let mut r = &wire[..]; while !r.is_empty() { client.read_tls(&mut r).unwrap(); client.process_new_packets().unwrap(); }
    }
    let chunk = vec![3u8; 256 * 1024];
    let mut plain = vec![0u8; 256 * 1024];
    // Client → server (the broker's produce path: read_tls, decrypt, reader()).
    let mut server_cpu = 0.0;
    let w0 = Instant::now();
    for _ in 0..TOTAL / chunk.len() {
        wire.clear();
        for piece in chunk.chunks(RECORD) {
            client.writer().write_all(piece).unwrap();
            while client.wants_write() { client.write_tls(&mut wire).unwrap(); }
        }
        let c0 = cpu();
        let mut r = &wire[..];
        while !r.is_empty() {
            server.read_tls(&mut r).unwrap();
            server.process_new_packets().unwrap();
            loop { match server.reader().read(&mut plain) { Ok(0) => break, Ok(_) => {}, Err(_) => break } }
        }
        server_cpu += cpu() - c0;
    }
    report(&format!("rustls {name} server receive"), TOTAL, server_cpu, w0.elapsed().as_secs_f64());
    // Server → client (the fetch path: writer(), encrypt, write_tls).
    let mut server_cpu = 0.0;
    let w0 = Instant::now();
    for _ in 0..TOTAL / chunk.len() {
        let c0 = cpu();
        wire.clear();
        for piece in chunk.chunks(RECORD) {
            server.writer().write_all(piece).unwrap();
            while server.wants_write() { server.write_tls(&mut wire).unwrap(); }
        }
        server_cpu += cpu() - c0;
        let mut r = &wire[..];
        while !r.is_empty() { client.read_tls(&mut r).unwrap(); client.process_new_packets().unwrap();
            loop { match client.reader().read(&mut plain) { Ok(0) => break, Ok(_) => {}, Err(_) => break } } }
    }
    report(&format!("rustls {name} server send"), TOTAL, server_cpu, w0.elapsed().as_secs_f64());
}

fn main() {
    ring_aead(&ring::aead::AES_128_GCM, "AES-128-GCM");
    ring_aead(&ring::aead::AES_256_GCM, "AES-256-GCM");
    #[cfg(feature = "aws")]
    {
        aws_aead(&aws_lc_rs::aead::AES_128_GCM, "AES-128-GCM");
        aws_aead(&aws_lc_rs::aead::AES_256_GCM, "AES-256-GCM");
    }
    use rustls::crypto::ring as r;
    transfer("ring TLS13_AES_128_GCM", r::default_provider(), r::cipher_suite::TLS13_AES_128_GCM_SHA256);
    transfer("ring TLS13_AES_256_GCM", r::default_provider(), r::cipher_suite::TLS13_AES_256_GCM_SHA384);
    #[cfg(feature = "aws")]
    {
        use rustls::crypto::aws_lc_rs as a;
        transfer("aws-lc-rs TLS13_AES_128_GCM", a::default_provider(), a::cipher_suite::TLS13_AES_128_GCM_SHA256);
        transfer("aws-lc-rs TLS13_AES_256_GCM", a::default_provider(), a::cipher_suite::TLS13_AES_256_GCM_SHA384);
    }
}
