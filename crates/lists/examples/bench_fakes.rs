//! Benchmark helper (not a test): runs N fake Mastodon instances and a static file server in
//! this process, so that the benchmark process (`bench.rs`) measures only Guildhall's own CPU.
//!
//! Usage: `bench_fakes N DIR` — prints `files <URL>` (serving `DIR/<name>` with an ETag from the
//! file's length and modification time, 304 on `If-None-Match`) and one `fake <URL>` line per
//! instance (token `tok`, administrator, no effective rate limit), then runs until stdin closes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use guildhall_fake_mastodon::{AccountSeed, FakeMastodon, ADMINISTRATOR};
use tokio::io::AsyncReadExt;

async fn file(
    State(dir): State<PathBuf>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if name.contains('/') || name.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = dir.join(&name);
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let etag = format!("\"{}-{mtime}\"", meta.len());
    if headers.get("if-none-match").and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    match tokio::fs::read(&path).await {
        Ok(body) => ([("etag", etag)], body).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .expect("usage: bench_fakes N DIR");
    let dir = PathBuf::from(args.get(2).expect("usage: bench_fakes N DIR"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("files http://{}", listener.local_addr().unwrap());
    let app = Router::new().route("/{name}", get(file)).with_state(dir);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let mut fakes = Vec::new();
    for _ in 0..n {
        let f = FakeMastodon::builder()
            .account(AccountSeed::local(1, "admin").with_role("Owner", ADMINISTRATOR))
            .token(
                "tok",
                &["read", "write", "admin:read", "admin:write"],
                Some(1),
            )
            .rate_limit(u64::MAX / 2, Duration::from_secs(300))
            .start()
            .await
            .unwrap();
        println!("fake {}", f.url());
        fakes.push(f);
    }
    println!("ready");
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    let writes: usize = fakes.iter().map(|f| f.block_writes().len()).sum();
    eprintln!("bench_fakes: {writes} domain-block writes received");
}
