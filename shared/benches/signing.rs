//! HMAC-SHA256 signing and verification of a 4 KiB body (a `/status` snapshot is a few
//! KiB). `hmac_4k/sha256` hashes the same bytes once: HMAC costs about two hash passes
//! over the body plus the fixed key blocks, so verify/sha256 should sit near 1-2.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_shared::signing::{self, SignedRequest};
use sha2::{Digest, Sha256};

const SECRET: &[u8] = b"edge-origin-shared-secret-0123456789abcdef";
const TS: i64 = 1_800_000_000;

fn hmac(c: &mut Criterion) {
    let body: Vec<u8> = (0..4096u32)
        .map(|i| b"{\"status\":\"ready\"}"[i as usize % 18])
        .collect();
    let sig = signing::sign(SECRET, TS, "POST", signing::INGEST_PATH, &body).expect("signs");
    let ts = TS.to_string();
    let request = SignedRequest {
        timestamp: Some(&ts),
        signature: Some(&sig),
        method: "POST",
        path: signing::INGEST_PATH,
        body: &body,
    };

    let mut g = c.benchmark_group("hmac_4k");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("sha256", |b| b.iter(|| Sha256::digest(black_box(&body))));
    g.bench_function("sign", |b| {
        b.iter(|| signing::sign(SECRET, TS, "POST", signing::INGEST_PATH, black_box(&body)))
    });
    g.bench_function("verify", |b| {
        b.iter(|| signing::verify(SECRET, black_box(&request), TS + 1, 300).expect("valid"))
    });
    g.bench_function("sign_verify", |b| {
        b.iter(|| {
            let sig = signing::sign(SECRET, TS, "POST", signing::INGEST_PATH, black_box(&body))
                .expect("signs");
            let req = SignedRequest {
                signature: Some(&sig),
                ..request
            };
            signing::verify(SECRET, &req, TS + 1, 300).expect("valid")
        })
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = hmac
}
criterion_main!(benches);
