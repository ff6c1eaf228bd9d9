//! Behaviour of the `Webhooks` handle against real receivers on 127.0.0.1: delivery,
//! retries, isolation of slow receivers, overflow, the test route and the state file.
//! The pure parts (validation, retry decisions, signing) are tested beside their code.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::test_receiver::{refused_url, Receiver, Reply};
use super::*;

/// Short back-off so retry tests take milliseconds, not seconds.
const FAST: RetryPolicy = RetryPolicy {
    first_delay: Duration::from_millis(100),
    max_delay: Duration::from_millis(200),
    max_retry_after: Duration::from_secs(5),
};

/// How long a test waits for something that should take milliseconds.
const PATIENCE: Duration = Duration::from_secs(10);

fn start(policy: RetryPolicy, workers: usize, queue_capacity: usize) -> Webhooks {
    let settings = WebhookSettings {
        workers,
        queue_capacity,
        state_file: None,
    };
    Webhooks::start_with(settings, policy).unwrap()
}

fn add(webhooks: &Webhooks, body: serde_json::Value) -> WebhookView {
    webhooks.add(body.to_string().as_bytes()).unwrap()
}

fn event(kind: EventType, sequence: u64) -> Arc<Event> {
    let data = serde_json::json!({"primary_url": "http://127.0.0.1:1/live.ts"});
    Arc::new(Event::new(
        kind,
        "abc123",
        sequence,
        SystemTime::now(),
        data,
    ))
}

fn view_of(webhooks: &Webhooks, url: &str) -> WebhookView {
    let found = webhooks.list().into_iter().find(|view| view.url == url);
    found.expect("webhook listed")
}

/// Polls the listing until `done` holds; the figures are updated after the receiver answers.
fn wait_for_view(
    webhooks: &Webhooks,
    url: &str,
    done: impl Fn(&WebhookView) -> bool,
) -> WebhookView {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let view = view_of(webhooks, url);
        if done(&view) || Instant::now() > deadline {
            return view;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn delivery_carries_body_identity_signature_and_custom_headers() {
    let receiver = Receiver::answering(200);
    let webhooks = start(FAST, 2, 16);
    let url = receiver.url("/hook");
    add(
        &webhooks,
        serde_json::json!({"url": url, "secret": "s3cret",
        "headers": {"Authorization": "Bearer abc"}}),
    );

    let sent = event(EventType::StreamStarted, 1);
    webhooks.publish(&sent);
    let request = receiver.wait_for(1, PATIENCE).remove(0);

    let id = sent.event_id.to_string();
    assert_eq!(request.json()["event_id"], id);
    assert_eq!(request.json()["event_type"], "stream_started");
    assert_eq!(request.json()["sequence"], 1);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("user-agent"), Some(USER_AGENT));
    assert_eq!(request.header("x-event-id"), Some(id.as_str()));
    assert_eq!(request.header("x-event-type"), Some("stream_started"));
    assert_eq!(request.header("x-delivery-attempt"), Some("1"));
    assert_eq!(request.header("authorization"), Some("Bearer abc"));

    let timestamp = request.header("x-webhook-timestamp").unwrap();
    let signature = request.header("x-webhook-signature").unwrap();
    assert_eq!(
        signing::verify("s3cret", timestamp, &request.body, signature),
        Ok(())
    );

    let view = wait_for_view(&webhooks, &url, |view| view.delivered == 1);
    assert_eq!(
        (view.delivered, view.failed, view.last_status),
        (1, 0, Some(200))
    );
    assert!(view.last_delivery_time.is_some());
}

#[test]
fn failing_twice_then_succeeding_takes_three_attempts_of_one_event() {
    let script = vec![Reply::Status(500), Reply::Status(503)];
    let receiver = Receiver::start(script, Reply::Status(200));
    let webhooks = start(FAST, 2, 16);
    let url = receiver.url("/hook");
    add(
        &webhooks,
        serde_json::json!({"url": url, "retry_attempts": 3}),
    );

    webhooks.publish(&event(EventType::ClientConnected, 7));
    let requests = receiver.wait_for(3, PATIENCE);
    assert_eq!(requests.len(), 3);

    let attempts: Vec<_> = requests
        .iter()
        .map(|r| r.header("x-delivery-attempt"))
        .collect();
    assert_eq!(attempts, [Some("1"), Some("2"), Some("3")]);
    for request in &requests[1..] {
        assert_eq!(request.body, requests[0].body, "same body on every attempt");
        assert_eq!(
            request.header("x-event-id"),
            requests[0].header("x-event-id")
        );
    }
    // The first back-off is 100 ms ± 25 %.
    assert!(requests[1].at - requests[0].at >= Duration::from_millis(70));

    let view = wait_for_view(&webhooks, &url, |view| view.delivered == 1);
    assert_eq!((view.delivered, view.failed), (1, 0));
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(receiver.received().len(), 3, "no attempt after the 2xx");
}

#[test]
fn client_errors_other_than_408_and_429_are_not_retried() {
    for status in [400, 404, 410] {
        let receiver = Receiver::answering(status);
        let webhooks = start(FAST, 2, 16);
        let url = receiver.url("/hook");
        add(
            &webhooks,
            serde_json::json!({"url": url, "retry_attempts": 3}),
        );

        webhooks.publish(&event(EventType::StreamStopped, 2));
        let view = wait_for_view(&webhooks, &url, |view| view.failed == 1);
        assert_eq!((view.failed, view.last_status), (1, Some(status)));

        // Longer than the whole fast back-off schedule.
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(receiver.received().len(), 1, "status {status} was retried");
    }
}

#[test]
fn timeouts_429_and_server_errors_are_retried() {
    for status in [408, 429, 500, 502] {
        let receiver = Receiver::start(vec![Reply::Status(status)], Reply::Status(204));
        let webhooks = start(FAST, 2, 16);
        let url = receiver.url("/hook");
        add(
            &webhooks,
            serde_json::json!({"url": url, "retry_attempts": 1}),
        );

        webhooks.publish(&event(EventType::StreamFailed, 3));
        assert_eq!(receiver.wait_for(2, PATIENCE).len(), 2, "status {status}");
        let view = wait_for_view(&webhooks, &url, |view| view.delivered == 1);
        assert_eq!(view.last_status, Some(204));
    }
}

#[test]
fn retries_stop_after_the_configured_number_and_count_one_failure() {
    let receiver = Receiver::answering(500);
    let webhooks = start(FAST, 2, 16);
    let url = receiver.url("/hook");
    add(
        &webhooks,
        serde_json::json!({"url": url, "retry_attempts": 2}),
    );

    webhooks.publish(&event(EventType::StreamFailed, 1));
    let view = wait_for_view(&webhooks, &url, |view| view.failed == 1);
    assert_eq!(
        (view.failed, view.delivered, view.last_status),
        (1, 0, Some(500))
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(receiver.received().len(), 3);
}

#[test]
fn retry_after_on_429_sets_the_wait() {
    let script = vec![Reply::RetryAfter(429, 1)];
    let receiver = Receiver::start(script, Reply::Status(200));
    // A first back-off of 20 s shows that the second attempt came from Retry-After.
    let slow = RetryPolicy {
        first_delay: Duration::from_secs(20),
        ..RetryPolicy::STANDARD
    };
    let webhooks = start(slow, 2, 16);
    add(&webhooks, serde_json::json!({"url": receiver.url("/hook")}));

    webhooks.publish(&event(EventType::StreamStarted, 1));
    let requests = receiver.wait_for(2, PATIENCE);
    assert_eq!(requests.len(), 2);
    let gap = requests[1].at - requests[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    assert!(gap < Duration::from_secs(8), "retried after {gap:?}");
}

#[test]
fn hanging_receiver_does_not_delay_a_healthy_one() {
    let hanging = Receiver::start(Vec::new(), Reply::Hang);
    let healthy = Receiver::answering(200);
    let webhooks = start(FAST, 2, 64);
    add(
        &webhooks,
        serde_json::json!({"url": hanging.url("/h"), "timeout": 10}),
    );
    add(&webhooks, serde_json::json!({"url": healthy.url("/h")}));

    let published = Instant::now();
    for sequence in 1..=5 {
        webhooks.publish(&event(EventType::ClientConnected, sequence));
    }

    let requests = healthy.wait_for(5, PATIENCE);
    assert_eq!(requests.len(), 5);
    let last = requests[4].at - published;
    assert!(
        last < Duration::from_secs(5),
        "healthy receiver waited {last:?}"
    );
    // The hanging attempt may still be on its way on a loaded machine: wait for it.
    assert_eq!(hanging.wait_for(1, PATIENCE).len(), 1);
    assert_eq!(
        hanging.received().len(),
        1,
        "one attempt in flight per receiver"
    );
}

#[test]
fn failing_receivers_share_one_worker_once_they_have_failed() {
    let dead = [
        Receiver::start(Vec::new(), Reply::Hang),
        Receiver::start(Vec::new(), Reply::Hang),
    ];
    let healthy = Receiver::answering(200);
    let webhooks = start(FAST, 2, 64);
    for receiver in &dead {
        add(
            &webhooks,
            serde_json::json!({"url": receiver.url("/h"), "timeout": 2,
            "retry_attempts": 10}),
        );
    }
    add(&webhooks, serde_json::json!({"url": healthy.url("/h")}));

    // Both dead receivers time out once and count as failing from then on.
    webhooks.publish(&event(EventType::StreamStarted, 1));
    healthy.wait_for(1, PATIENCE);
    std::thread::sleep(Duration::from_millis(3000));

    for sequence in 2..=6 {
        let published = Instant::now();
        webhooks.publish(&event(EventType::StreamStarted, sequence));
        let arrived = healthy.wait_for(sequence as usize, PATIENCE);
        let waited = arrived.last().unwrap().at - published;
        assert!(
            waited < Duration::from_millis(1500),
            "event {sequence} waited {waited:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn full_queue_drops_the_oldest_pending_delivery_and_counts_it() {
    let receiver = Receiver::start(Vec::new(), Reply::Slow(Duration::from_millis(300), 200));
    let webhooks = start(FAST, 1, 2);
    let url = receiver.url("/hook");
    add(&webhooks, serde_json::json!({"url": url}));

    let events: Vec<_> = (1..=4)
        .map(|n| event(EventType::StreamStarted, n))
        .collect();
    webhooks.publish(&events[0]);
    receiver.wait_for(1, PATIENCE);
    for sent in &events[1..] {
        webhooks.publish(sent);
    }

    let view = wait_for_view(&webhooks, &url, |view| view.delivered == 3);
    assert_eq!((view.delivered, view.dropped), (3, 1));
    let sequences: Vec<_> = receiver
        .received()
        .iter()
        .map(|r| r.json()["sequence"].clone())
        .collect();
    assert_eq!(
        sequences,
        [1, 3, 4],
        "the oldest pending one (2) is dropped"
    );
}

#[test]
fn events_go_only_to_webhooks_that_want_them() {
    let receiver = Receiver::answering(200);
    let webhooks = start(FAST, 2, 16);
    add(
        &webhooks,
        serde_json::json!({"url": receiver.url("/h"), "events": ["STREAM_FAILED"]}),
    );

    webhooks.publish(&event(EventType::StreamStarted, 1));
    webhooks.publish(&event(EventType::StreamFailed, 2));
    let requests = receiver.wait_for(1, PATIENCE);
    std::thread::sleep(Duration::from_millis(300));

    assert_eq!(receiver.received().len(), 1);
    assert_eq!(requests[0].header("x-event-type"), Some("stream_failed"));
}

#[test]
fn test_route_reports_what_the_receiver_did() {
    let ok = Receiver::answering(200);
    let broken = Receiver::answering(500);
    let refused = refused_url();
    let webhooks = start(FAST, 2, 16);
    for url in [ok.url("/h"), broken.url("/h"), refused.clone()] {
        add(&webhooks, serde_json::json!({"url": url, "timeout": 5}));
    }

    let outcome = webhooks.test(&ok.url("/h")).unwrap();
    assert!(outcome.success);
    assert_eq!(outcome.status_code, Some(200));
    let body = ok.wait_for(1, PATIENCE).remove(0).json();
    assert_eq!(body["stream_id"], "test");
    assert_eq!(
        body["data"],
        serde_json::json!({"test": true,
        "message": "Test webhook from m3u-proxy"})
    );

    let outcome = webhooks.test(&broken.url("/h/")).unwrap();
    assert!(!outcome.success);
    assert_eq!((outcome.status_code, outcome.error), (Some(500), None));

    let outcome = webhooks.test(&refused).unwrap();
    assert!(!outcome.success);
    assert_eq!(outcome.status_code, None);
    assert!(outcome.error.is_some(), "{outcome:?}");
    let json = serde_json::to_value(&outcome).unwrap();
    for field in ["success", "status_code", "error", "elapsed_ms", "message"] {
        assert!(json.get(field).is_some(), "{field} missing");
    }

    let missing = webhooks.test("http://127.0.0.1:9/nothing").unwrap_err();
    assert_eq!(missing.status(), 404);
}

#[test]
fn add_refuses_invalid_bodies_with_a_field_message() {
    let webhooks = start(FAST, 1, 4);
    let cases = [
        (r#"{"url": "wss://127.0.0.1/live"}"#, "GET /events"),
        (r#"{"url": "ftp://127.0.0.1/x"}"#, "HTTP(S) POST"),
        (r#"{"events": ["stream_started"]}"#, "url: required"),
        (
            r#"{"url": "http://127.0.0.1", "events": ["stream_paused"]}"#,
            "stream_paused",
        ),
        (r#"{"url": "http://127.0.0.1", "timeout": 0}"#, "timeout:"),
    ];
    for (body, expected) in cases {
        let err = webhooks.add(body.as_bytes()).unwrap_err();
        assert_eq!(err.status(), 422, "{body}");
        assert!(err.to_string().contains(expected), "{body}: {err}");
    }
    assert!(webhooks.list().is_empty());
}

#[test]
fn adding_the_same_url_again_updates_it_in_place() {
    let webhooks = start(FAST, 1, 4);
    add(
        &webhooks,
        serde_json::json!({"url": "http://127.0.0.1:9/a", "timeout": 5}),
    );
    add(
        &webhooks,
        serde_json::json!({"url": "http://127.0.0.1:9/b"}),
    );
    let view = add(
        &webhooks,
        serde_json::json!({"url": "http://127.0.0.1:9/a/", "timeout": 7}),
    );

    let list = webhooks.list();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].url, "http://127.0.0.1:9/a/");
    assert_eq!(list[0].timeout, 7.0);
    assert_eq!(view.timeout, 7.0);
}

#[test]
fn remove_ignores_a_trailing_slash_and_reports_unknown_urls() {
    let webhooks = start(FAST, 1, 4);
    add(
        &webhooks,
        serde_json::json!({"url": "http://127.0.0.1:9/a"}),
    );

    assert_eq!(
        webhooks
            .remove("http://127.0.0.1:9/b")
            .unwrap_err()
            .status(),
        404
    );
    webhooks.remove("http://127.0.0.1:9/a/").unwrap();
    assert!(webhooks.list().is_empty());
    assert_eq!(
        webhooks
            .remove("http://127.0.0.1:9/a")
            .unwrap_err()
            .status(),
        404
    );
}

#[test]
fn listing_shows_header_names_but_no_values_or_secret() {
    let webhooks = start(FAST, 1, 4);
    add(
        &webhooks,
        serde_json::json!({"url": "http://127.0.0.1:9/a", "secret": "hunter2",
        "headers": {"X-Api-Key": "value-123"}}),
    );

    let listed = serde_json::to_string(&webhooks.list()).unwrap();
    assert!(listed.contains("X-Api-Key"));
    assert!(listed.contains(r#""has_secret":true"#));
    assert!(listed.contains(r#""last_status":null"#));
    assert!(
        !listed.contains("value-123") && !listed.contains("hunter2"),
        "{listed}"
    );
}

#[test]
fn shutdown_drains_queued_deliveries_within_the_grace_period() {
    let receiver = Receiver::start(Vec::new(), Reply::Slow(Duration::from_millis(100), 200));
    let webhooks = start(FAST, 1, 16);
    add(&webhooks, serde_json::json!({"url": receiver.url("/h")}));
    for sequence in 1..=3 {
        webhooks.publish(&event(EventType::StreamStarted, sequence));
    }

    webhooks.shutdown(PATIENCE);
    assert_eq!(receiver.received().len(), 3);

    webhooks.publish(&event(EventType::StreamStarted, 4));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        receiver.received().len(),
        3,
        "accepted an event after shutdown"
    );
}

#[test]
fn shutdown_returns_after_the_grace_period_despite_a_hanging_receiver() {
    let hanging = Receiver::start(Vec::new(), Reply::Hang);
    let webhooks = start(FAST, 1, 16);
    add(
        &webhooks,
        serde_json::json!({"url": hanging.url("/h"), "timeout": 60}),
    );
    webhooks.publish(&event(EventType::StreamStarted, 1));
    hanging.wait_for(1, PATIENCE);

    let started = Instant::now();
    webhooks.shutdown(Duration::from_millis(500));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(450), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// A fresh directory under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let name = format!("m3u-proxy-webhooks-{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(name);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn start_with_state(path: &std::path::Path) -> Webhooks {
    let settings = WebhookSettings {
        state_file: Some(path.to_owned()),
        ..WebhookSettings::default()
    };
    Webhooks::start(settings).unwrap()
}

#[test]
fn webhooks_survive_a_restart_through_the_state_file() {
    let dir = TempDir::new();
    let path = dir.0.join("state/state.json");

    let first = start_with_state(&path);
    add(
        &first,
        serde_json::json!({"url": "http://127.0.0.1:9/a", "events": ["stream_failed"],
        "timeout": 3, "retry_attempts": 1, "headers": {"X-Key": "k"}, "secret": "s"}),
    );
    add(&first, serde_json::json!({"url": "http://127.0.0.1:9/b"}));
    first.remove("http://127.0.0.1:9/b").unwrap();
    add(&first, serde_json::json!({"url": "http://127.0.0.1:9/c"}));
    let before = serde_json::to_value(first.list()).unwrap();
    first.shutdown(Duration::from_secs(1));
    drop(first);

    let second = start_with_state(&path);
    assert_eq!(serde_json::to_value(second.list()).unwrap(), before);
    let stored = fs::read_to_string(&path).unwrap();
    assert!(stored.contains(r#""version": 1"#) && stored.contains(r#""secret": "s""#));
}

#[test]
fn corrupt_state_file_is_moved_aside_and_start_continues_empty() {
    let dir = TempDir::new();
    let path = dir.0.join("state.json");
    fs::write(&path, "{ this is not json").unwrap();

    let webhooks = start_with_state(&path);
    assert!(webhooks.list().is_empty());

    let names: Vec<String> = fs::read_dir(&dir.0)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .any(|name| name.starts_with("state.json.corrupt-")),
        "{names:?}"
    );
    assert!(!path.exists());

    // The next change writes a fresh file.
    add(
        &webhooks,
        serde_json::json!({"url": "http://127.0.0.1:9/a"}),
    );
    assert!(path.exists());
}
