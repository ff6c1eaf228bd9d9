//! Webhooks through the real server: retries that keep one event id, refusals that are
//! not retried, `Retry-After`, hanging receivers beside a stream being read and beside a
//! healthy receiver, the test route, signatures, the state file across restarts, and
//! validation of the `/webhooks` routes.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::client::{delete, open};
use common::proxy::test_config;
use common::receiver::{Received, Receiver, Reply};
use common::*;
use hmac::{Hmac, Mac};
use m3u_proxy::webhook::signing;
use serde_json::{json, Value};

/// How long a test waits for deliveries that should take a few seconds at most.
const PATIENCE: Duration = Duration::from_secs(20);

/// A source nothing listens on: enough for `stream_started`, which needs no upstream.
const NOWHERE: &str = "http://127.0.0.1:9/live.ts";

fn add_webhook(proxy: &Proxy, body: Value) -> Answer {
    let answer = post_json(proxy.addr, "/webhooks", &body);
    assert_eq!(answer.status, 200, "add webhook: {}", answer.text());
    answer
}

fn listed(proxy: &Proxy) -> Vec<Value> {
    let answer = get(proxy.addr, "/webhooks");
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["total"], body["webhooks"].as_array().unwrap().len());
    body["webhooks"].as_array().unwrap().clone()
}

/// A URL made safe for a query parameter.
fn encoded(url: &str) -> String {
    url::form_urlencoded::byte_serialize(url.as_bytes()).collect()
}

/// A new stream on a source of its own, so each call publishes one `stream_started`.
fn start_stream(proxy: &Proxy, n: usize) -> String {
    create_stream(proxy.addr, &format!("{NOWHERE}?n={n}"), &[])
}

fn attempts(requests: &[Received]) -> Vec<Option<&str>> {
    requests
        .iter()
        .map(|r| r.header("x-delivery-attempt"))
        .collect()
}

#[test]
fn server_errors_are_retried_with_one_event_id_and_the_same_body() {
    let receiver = Receiver::start(
        vec![Reply::Status(500), Reply::Status(500)],
        Reply::Status(200),
    );
    let proxy = Proxy::start(|_| {});
    let url = receiver.url("/hook");
    add_webhook(
        &proxy,
        json!({ "url": url, "events": ["stream_started"], "retry_attempts": 3 }),
    );

    start_stream(&proxy, 1);
    let requests = receiver.wait_for(3, PATIENCE);
    assert_eq!(attempts(&requests), [Some("1"), Some("2"), Some("3")]);
    let id = requests[0].json()["event_id"].as_str().unwrap().to_owned();
    for request in &requests {
        assert_eq!(request.header("x-event-id"), Some(id.as_str()));
        assert_eq!(
            request.body, requests[0].body,
            "every attempt sends the same body"
        );
    }
    // Back-off of 1 s, then 2 s, each ± 25 %.
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(700));
    assert!(requests[2].at - requests[1].at >= Duration::from_millis(1400));

    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        receiver.received().len(),
        3,
        "attempted again after the 200"
    );
    let hook = &listed(&proxy)[0];
    assert_eq!(
        (&hook["delivered"], &hook["failed"], &hook["last_status"]),
        (&json!(1), &json!(0), &json!(200))
    );
}

#[test]
fn a_400_is_not_retried_and_counts_as_failed() {
    let receiver = Receiver::answering(400);
    let proxy = Proxy::start(|_| {});
    add_webhook(
        &proxy,
        json!({ "url": receiver.url("/hook"), "events": ["stream_started"] }),
    );

    start_stream(&proxy, 1);
    assert_eq!(receiver.wait_for(1, PATIENCE).len(), 1);
    // Longer than the first back-off (1 s + 25 %).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(receiver.received().len(), 1, "a 400 was retried");
    assert!(wait_until(PATIENCE, || listed(&proxy)[0]["failed"] == 1));
    assert_eq!(listed(&proxy)[0]["last_status"], 400);
}

#[test]
fn a_429_is_retried_after_its_retry_after_seconds() {
    // Three seconds, not one: the first back-off is 0.75 to 1.25 s, so only a longer
    // Retry-After shows that it was the header that set the wait.
    let receiver = Receiver::start(vec![Reply::RetryAfter(429, 3)], Reply::Status(200));
    let proxy = Proxy::start(|_| {});
    add_webhook(
        &proxy,
        json!({ "url": receiver.url("/hook"), "events": ["stream_started"] }),
    );

    start_stream(&proxy, 1);
    let requests = receiver.wait_for(2, PATIENCE);
    assert_eq!(attempts(&requests), [Some("1"), Some("2")]);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_millis(2900), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(10), "retried after {gap:?}");
    assert_eq!(
        requests[1].header("x-event-id"),
        requests[0].header("x-event-id")
    );
}

/// Bytes per second read from a new stream of `url` over about three seconds.
fn read_rate(proxy: &Proxy, url: &str) -> f64 {
    let id = create_stream(proxy.addr, url, &[]);
    let mut viewer = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    assert_eq!(viewer.status, 200);
    viewer.read_bytes(188 * 100).unwrap();

    let started = Instant::now();
    let mut bytes = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while started.elapsed() < Duration::from_secs(3) {
        let n = viewer.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended");
        bytes += n;
    }
    bytes as f64 / started.elapsed().as_secs_f64()
}

#[test]
fn hanging_webhooks_do_not_slow_a_stream_being_read() {
    let upstream = FakeUpstream::start();
    upstream.route(
        "/alone.ts",
        Behavior::Live(Live {
            rate: 2_000_000,
            ..Live::new(1)
        }),
    );
    upstream.route(
        "/hooked.ts",
        Behavior::Live(Live {
            rate: 2_000_000,
            ..Live::new(2)
        }),
    );
    let hanging = Receiver::hanging();
    let proxy = Proxy::start(|_| {});
    let alone = read_rate(&proxy, &upstream.url("/alone.ts"));

    for n in 0..10 {
        add_webhook(
            &proxy,
            json!({ "url": hanging.url(&format!("/h{n}")), "timeout": 30 }),
        );
    }
    // Events keep coming while the stream is read: each new stream is one more event
    // for each of the ten webhooks.
    let addr = proxy.addr;
    let publisher = std::thread::spawn(move || {
        for n in 0..40 {
            create_stream(addr, &format!("{NOWHERE}?extra={n}"), &[]);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let hooked = read_rate(&proxy, &upstream.url("/hooked.ts"));
    publisher.join().unwrap();

    assert!(
        !hanging.received().is_empty(),
        "no delivery was even attempted"
    );
    assert!(
        hooked >= alone / 2.0,
        "{hooked:.0} B/s with hanging webhooks, {alone:.0} B/s without"
    );
}

#[test]
fn a_healthy_webhook_gets_its_events_promptly_while_another_hangs() {
    let hanging = Receiver::hanging();
    let healthy = Receiver::answering(200);
    let proxy = Proxy::start(|_| {});
    add_webhook(&proxy, json!({ "url": hanging.url("/h"), "timeout": 30 }));
    add_webhook(&proxy, json!({ "url": healthy.url("/h") }));

    for n in 0..5 {
        let published = Instant::now();
        let id = start_stream(&proxy, n);
        let arrived = healthy.wait_for(n + 1, PATIENCE);
        assert_eq!(arrived.len(), n + 1, "event {n} never arrived");
        let last = arrived.last().unwrap();
        assert_eq!(last.json()["stream_id"], id);
        let waited = last.at - published;
        assert!(
            waited < Duration::from_secs(3),
            "event {n} waited {waited:?}"
        );
    }
    assert_eq!(
        hanging.received().len(),
        1,
        "one attempt at a time to the hanging receiver"
    );
}

#[test]
fn test_route_reports_what_the_receiver_answered() {
    let broken = Receiver::answering(500);
    let fine = Receiver::answering(200);
    let proxy = Proxy::start(|_| {});
    add_webhook(&proxy, json!({ "url": broken.url("/h"), "timeout": 5 }));
    add_webhook(&proxy, json!({ "url": fine.url("/h"), "timeout": 5 }));
    let test = |url: &str| {
        let target = format!("/webhooks/test?webhook_url={}", encoded(url));
        request(proxy.addr, "POST", &target, &[], b"")
    };

    let answer = test(&broken.url("/h"));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let outcome = answer.json();
    assert_eq!(
        (&outcome["success"], &outcome["status_code"]),
        (&json!(false), &json!(500)),
        "{outcome}"
    );
    assert_eq!(broken.received().len(), 1, "the test event was really sent");

    let outcome = test(&fine.url("/h")).json();
    assert_eq!(
        (&outcome["success"], &outcome["status_code"]),
        (&json!(true), &json!(200)),
        "{outcome}"
    );
    assert_eq!(fine.received()[0].json()["stream_id"], "test");

    assert_eq!(test("http://127.0.0.1:9/unknown").status, 404);
    let missing = request(proxy.addr, "POST", "/webhooks/test", &[], b"");
    assert_eq!(missing.status, 422);
}

/// The documented scheme, computed here without the crate's own code.
fn expected_signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[test]
fn signed_deliveries_verify_against_the_body_and_timestamp() {
    let signed = Receiver::answering(200);
    let plain = Receiver::answering(200);
    let proxy = Proxy::start(|_| {});
    add_webhook(
        &proxy,
        json!({ "url": signed.url("/s"), "secret": "s3cret", "events": ["stream_started"] }),
    );
    add_webhook(
        &proxy,
        json!({ "url": plain.url("/p"), "events": ["stream_started"] }),
    );

    start_stream(&proxy, 1);
    let request = signed.wait_for(1, PATIENCE).remove(0);
    let timestamp = request
        .header("x-webhook-timestamp")
        .expect("timestamp header");
    let signature = request
        .header("x-webhook-signature")
        .expect("signature header");
    assert_eq!(
        signature,
        expected_signature("s3cret", timestamp, &request.body)
    );
    assert_eq!(
        signing::verify("s3cret", timestamp, &request.body, signature),
        Ok(())
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(signing::check_fresh(timestamp, now, 300), Ok(()));

    let mismatch = Err(signing::SignatureError::Mismatch);
    assert_eq!(
        signing::verify("other", timestamp, &request.body, signature),
        mismatch
    );
    let mut tampered = request.body.clone();
    tampered.push(b' ');
    assert_eq!(
        signing::verify("s3cret", timestamp, &tampered, signature),
        mismatch
    );

    let unsigned = plain.wait_for(1, PATIENCE).remove(0);
    assert_eq!(unsigned.header("x-webhook-signature"), None);
    assert_eq!(unsigned.header("x-webhook-timestamp"), None);
}

/// A listing entry without its delivery figures, for comparing settings.
fn settings_of(hook: &Value) -> Value {
    let fields = [
        "url",
        "events",
        "timeout",
        "retry_attempts",
        "header_names",
        "has_secret",
    ];
    fields
        .iter()
        .map(|f| (f.to_string(), hook[f].clone()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn webhooks_survive_a_restart() {
    let receiver = Receiver::answering(200);
    let first = Proxy::start(|_| {});
    let detailed = json!({
        "url": receiver.url("/a"), "events": ["stream_started", "stream_stopped"], "timeout": 5,
        "retry_attempts": 1, "headers": { "X-Key": "k" }, "secret": "s",
    });
    add_webhook(&first, detailed);
    add_webhook(&first, json!({ "url": receiver.url("/b") }));
    let before: Vec<Value> = listed(&first).iter().map(settings_of).collect();
    let state_file = first.state_file.clone();
    first.stop();

    let mut config = test_config();
    config.state_file = state_file;
    let second = Proxy::start_with(config);
    let after: Vec<Value> = listed(&second).iter().map(settings_of).collect();
    assert_eq!(after, before);
    assert_eq!(after.len(), 2);

    start_stream(&second, 1);
    let requests = receiver.wait_for(2, PATIENCE);
    let mut targets: Vec<&str> = requests.iter().map(|r| r.target.as_str()).collect();
    targets.sort();
    assert_eq!(
        targets,
        ["/a", "/b"],
        "both webhooks deliver after the restart"
    );
    let signed = requests.iter().find(|r| r.target == "/a").unwrap();
    assert_eq!(signed.header("x-key"), Some("k"));
    let (timestamp, signature) = (
        signed.header("x-webhook-timestamp").unwrap(),
        signed.header("x-webhook-signature").unwrap(),
    );
    assert_eq!(
        signing::verify("s", timestamp, &signed.body, signature),
        Ok(()),
        "the secret survived"
    );
}

#[test]
fn a_corrupt_state_file_is_moved_aside_and_the_proxy_starts_without_webhooks() {
    let config = test_config();
    let path = config.state_file.clone();
    let dir = path.parent().unwrap().to_owned();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(&path, "{ this is not a state file").unwrap();

    let proxy = Proxy::start_with(config);
    assert!(listed(&proxy).is_empty());
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let aside = names
        .iter()
        .find(|n| n.starts_with("state.json.corrupt"))
        .unwrap_or_else(|| panic!("{names:?}"));
    assert_eq!(
        std::fs::read_to_string(dir.join(aside)).unwrap(),
        "{ this is not a state file"
    );

    add_webhook(&proxy, json!({ "url": "http://127.0.0.1:9/hook" }));
    let saved = std::fs::read_to_string(&path).expect("a fresh state file");
    assert!(saved.contains("http://127.0.0.1:9/hook"), "{saved}");
}

#[test]
fn websocket_urls_are_refused_with_a_pointer_to_the_events_route() {
    let proxy = Proxy::start(|_| {});
    let answer = post_json(
        proxy.addr,
        "/webhooks",
        &json!({ "url": "wss://127.0.0.1/updates" }),
    );
    assert_eq!(answer.status, 422);
    let detail = answer.json()["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("/events"), "{detail}");
    assert!(listed(&proxy).is_empty());
}

#[test]
fn unknown_event_names_are_refused() {
    let proxy = Proxy::start(|_| {});
    let body =
        json!({ "url": "http://127.0.0.1:9/hook", "events": ["stream_started", "stream_paused"] });
    let answer = post_json(proxy.addr, "/webhooks", &body);
    assert_eq!(answer.status, 422);
    assert!(
        answer.json()["detail"]
            .as_str()
            .unwrap()
            .contains("stream_paused"),
        "{}",
        answer.text()
    );
    assert!(listed(&proxy).is_empty());
}

#[test]
fn removing_a_webhook_stops_its_deliveries_and_an_unknown_one_is_404() {
    let receiver = Receiver::answering(200);
    let proxy = Proxy::start(|_| {});
    let url = receiver.url("/hook");
    add_webhook(&proxy, json!({ "url": url }));

    let unknown = delete(
        proxy.addr,
        &format!("/webhooks?webhook_url={}", encoded(&receiver.url("/other"))),
    );
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(delete(proxy.addr, "/webhooks").status, 422);
    assert_eq!(
        delete(
            proxy.addr,
            &format!("/webhooks?webhook_url={}", encoded(&url))
        )
        .status,
        200
    );
    assert!(listed(&proxy).is_empty());

    start_stream(&proxy, 1);
    std::thread::sleep(Duration::from_millis(800));
    assert!(
        receiver.received().is_empty(),
        "a removed webhook still got events"
    );
}

#[test]
fn adding_the_same_url_twice_lists_it_once_with_the_new_settings() {
    let receiver = Receiver::answering(200);
    let proxy = Proxy::start(|_| {});
    add_webhook(
        &proxy,
        json!({ "url": receiver.url("/hook"), "events": ["stream_stopped"] }),
    );
    add_webhook(
        &proxy,
        json!({ "url": receiver.url("/hook/"), "events": ["stream_started"] }),
    );

    let hooks = listed(&proxy);
    assert_eq!(hooks.len(), 1, "{hooks:?}");
    assert_eq!(hooks[0]["events"], json!(["stream_started"]));
    start_stream(&proxy, 1);
    let requests = receiver.wait_for(1, PATIENCE);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        receiver.received().len(),
        1,
        "one delivery, not one per add"
    );
    assert_eq!(requests[0].json()["event_type"], "stream_started");
}

/// Several receivers that stop answering at once may hold every worker, but a healthy
/// receiver waits at most one of their timeouts, and not at all once they have failed.
#[test]
fn hanging_receivers_hold_up_a_healthy_one_for_at_most_their_own_timeout() {
    let hanging = [Receiver::hanging(), Receiver::hanging()];
    let healthy = Receiver::answering(200);
    let proxy = Proxy::start(|_| {});
    for receiver in &hanging {
        add_webhook(
            &proxy,
            json!({ "url": receiver.url("/h"), "timeout": 2, "retry_attempts": 0 }),
        );
    }
    add_webhook(&proxy, json!({ "url": healthy.url("/h") }));

    let limits = [
        Duration::from_secs(2) + PATIENCE / 4,
        Duration::from_secs(2),
    ];
    for (n, limit) in limits.into_iter().enumerate() {
        let published = Instant::now();
        start_stream(&proxy, n);
        let arrived = healthy.wait_for(n + 1, PATIENCE);
        let waited = arrived.last().unwrap().at - published;
        assert!(waited < limit, "event {n} waited {waited:?}");
    }
}

#[test]
fn a_receiver_answering_after_the_timeout_gets_the_event_again_with_the_same_id() {
    let receiver = Receiver::start(
        vec![Reply::Slow(Duration::from_secs(3), 200)],
        Reply::Status(200),
    );
    let proxy = Proxy::start(|_| {});
    let body = json!({ "url": receiver.url("/hook"), "events": ["stream_started"], "timeout": 1 });
    add_webhook(&proxy, body);

    start_stream(&proxy, 1);
    let requests = receiver.wait_for(2, PATIENCE);
    assert_eq!(attempts(&requests), [Some("1"), Some("2")]);
    assert_eq!(
        requests[1].header("x-event-id"),
        requests[0].header("x-event-id")
    );
    assert_eq!(
        requests[1].body, requests[0].body,
        "the event keeps its own timestamp"
    );
    assert!(wait_until(PATIENCE, || listed(&proxy)[0]["delivered"] == 1));
}

#[test]
fn a_hanging_webhooks_backlog_is_bounded_and_does_not_push_out_a_healthy_ones_events() {
    let hanging = Receiver::hanging();
    let healthy = Receiver::answering(200);
    let proxy = Proxy::start(|_| {});
    let stuck = json!({ "url": hanging.url("/h"), "timeout": 30, "events": ["stream_started"] });
    add_webhook(&proxy, stuck);
    add_webhook(
        &proxy,
        json!({ "url": healthy.url("/h"), "events": ["stream_stopped"] }),
    );

    // More events than the queue holds: 256 waiting deliveries across all webhooks, plus
    // the one attempt in flight.
    let ids: Vec<String> = (0..300).map(|n| start_stream(&proxy, n)).collect();
    assert!(wait_until(PATIENCE, || listed(&proxy)[0]["dropped"]
        .as_u64()
        >= Some(300 - 257)));

    // With the queue full of the hanging receiver's backlog, the healthy one's events
    // displace that backlog, not each other.
    for id in &ids[..20] {
        assert_eq!(delete(proxy.addr, &format!("/streams/{id}")).status, 200);
    }
    assert_eq!(healthy.wait_for(20, PATIENCE).len(), 20);
    assert!(wait_until(PATIENCE, || listed(&proxy)[1]["delivered"] == 20));
    assert_eq!(listed(&proxy)[1]["dropped"], 0);
    assert_eq!(
        hanging.received().len(),
        1,
        "one attempt at a time to the hanging receiver"
    );
}

#[test]
fn shutdown_delivers_pending_events_and_gives_up_on_a_hanging_webhook() {
    let hanging = Receiver::hanging();
    let healthy = Receiver::answering(200);
    let proxy = Proxy::start(|_| {});
    add_webhook(&proxy, json!({ "url": hanging.url("/h"), "timeout": 60 }));
    add_webhook(&proxy, json!({ "url": healthy.url("/h") }));
    let id = start_stream(&proxy, 1);
    assert_eq!(hanging.wait_for(1, PATIENCE).len(), 1);

    let started = Instant::now();
    proxy.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(12), "shutdown took {took:?}");
    let events: Vec<Value> = healthy.received().iter().map(Received::json).collect();
    let stopped = events
        .iter()
        .find(|e| e["stream_id"] == id && e["event_type"] == "stream_stopped");
    assert_eq!(
        stopped.expect("stream_stopped delivered before shutdown returned")["data"]["reason"],
        "shutdown"
    );
}
