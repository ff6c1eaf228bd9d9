//! Shared test support: the real proxy started in-process, a programmable fake upstream,
//! a small HTTP client, synthetic MPEG-TS, HLS playlist helpers, and the check for Debian
//! tools (ffprobe).
// Each test file (and the benchmarks) uses a different part of the support code.
#![allow(dead_code, unused_imports)]

pub mod client;
pub mod hls;
pub mod player;
pub mod proxy;
pub mod receiver;
pub mod ts;
pub mod upstream;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use client::{get, post_json, request, Answer};
pub use proxy::Proxy;
pub use upstream::{Behavior, FakeUpstream, Live};

/// Creates a stream for `url` (with backups) and returns its id.
pub fn create_stream(addr: SocketAddr, url: &str, failover: &[String]) -> String {
    create_stream_with(addr, json!({ "url": url, "failover_urls": failover }))
}

pub fn create_stream_with(addr: SocketAddr, body: Value) -> String {
    let answer = post_json(addr, "/streams", &body);
    assert_eq!(answer.status, 200, "create stream: {}", answer.text());
    answer.json()["stream_id"].as_str().unwrap().to_owned()
}

/// Polls `check` until it holds or `limit` passes; generous limits keep slow machines green.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

/// The stream entry from `GET /streams/{id}`.
pub fn stream_entry(addr: SocketAddr, id: &str) -> Value {
    let answer = get(addr, &format!("/streams/{id}"));
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.json()
}

/// A committed test media file.
pub fn media(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/media")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Whether a Debian tool is present. Missing under CI is a failure; elsewhere the test
/// skips, saying which package brings the tool.
pub fn have_tool(tool: &str, package: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("-version")
        .output()
        .is_ok();
    if !found {
        let message = format!(
            "{tool} not found: install the Debian package {package} (apt-get install {package})"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{message}");
        }
        eprintln!("skipping: {message}");
    }
    found
}
