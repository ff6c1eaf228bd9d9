//! Webhook benchmark, printing figures: the throughput of a stream read while 50
//! webhooks point at a receiver that never answers, against the same stream with none
//! (the ratio), and how many events a second the bus and worker pool deliver to a fast
//! local receiver.
//!
//! Run: `cargo bench --bench webhooks`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::client::open;
use common::receiver::Receiver;
use common::*;
use serde_json::json;

const READ_FOR: Duration = Duration::from_secs(3);

fn main() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Flood { tag: 1 });

    let quiet = Proxy::start(|_| {});
    let alone = throughput(&quiet, &upstream, "/live.ts?quiet");
    drop(quiet);

    let hanging = Receiver::hanging();
    let busy = Proxy::start(|_| {});
    for n in 0..50 {
        let hook =
            json!({ "url": hanging.url(&format!("/hook{n}")), "timeout": 30, "retry_attempts": 3 });
        assert_eq!(post_json(busy.addr, "/webhooks", &hook).status, 200);
    }
    let beside = throughput(&busy, &upstream, "/live.ts?busy");
    println!("stream throughput alone: {:.1} MB/s", alone / 1e6);
    println!(
        "stream throughput with 50 hanging webhooks: {:.1} MB/s (ratio {:.2})",
        beside / 1e6,
        beside / alone
    );
    drop(busy);

    events_per_second(&upstream);
}

/// Bytes a second of one stream, while every few milliseconds a stream is created (each
/// creation is a `stream_started` for the webhooks to deliver).
fn throughput(proxy: &Proxy, upstream: &FakeUpstream, path: &str) -> f64 {
    let id = create_stream(proxy.addr, &upstream.url(path), &[]);
    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    let addr = proxy.addr;
    let creator = std::thread::spawn(move || {
        let until = Instant::now() + READ_FOR;
        let mut n = 0;
        while Instant::now() < until {
            post_json(
                addr,
                "/streams",
                &json!({ "url": format!("http://u.test/{n}.ts") }),
            );
            n += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut total = 0;
    while started.elapsed() < READ_FOR {
        total += stream.read(&mut buf).expect("read");
    }
    let _ = creator.join();
    total as f64 / started.elapsed().as_secs_f64()
}

/// Events delivered a second to a receiver that answers 200 at once.
fn events_per_second(upstream: &FakeUpstream) {
    let fast = Receiver::answering(200);
    let proxy = Proxy::start(|_| {});
    assert_eq!(
        post_json(
            proxy.addr,
            "/webhooks",
            &json!({ "url": fast.url("/fast") })
        )
        .status,
        200
    );
    let count = 2000;
    let started = Instant::now();
    for n in 0..count {
        post_json(
            proxy.addr,
            "/streams",
            &json!({ "url": upstream.url(&format!("/e{n}.ts")) }),
        );
    }
    let received = fast.wait_for(count, Duration::from_secs(60)).len();
    let elapsed = started.elapsed().as_secs_f64();
    let view = common::get(proxy.addr, "/webhooks").json();
    let dropped = &view["webhooks"][0]["dropped"];
    println!("events delivered to a fast receiver: {received} of {count} in {elapsed:.2} s ({:.0} events/s, {dropped} dropped)", received as f64 / elapsed);
}
