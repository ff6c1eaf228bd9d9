//! Lifecycle events through the real server: every event type with its fields and its
//! envelope, exactly once and in sequence order on every path a stream or client can end
//! (a viewer leaving, DELETE, idle clean-up, shutdown), webhook event filters, the
//! server-sent events route and its token check.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use common::client::{delete, open, Streamed};
use common::receiver::Receiver;
use common::*;
use m3u_proxy::events::format_timestamp;
use serde_json::{json, Value};

/// How long a test waits for events that should arrive within milliseconds.
const PATIENCE: Duration = Duration::from_secs(15);

/// How long a test watches for events that must not come.
const QUIET: Duration = Duration::from_millis(800);

fn status(code: u16) -> Behavior {
    Behavior::Status {
        status: code,
        headers: vec![],
        body: b"nope".to_vec(),
    }
}

fn add_webhook(proxy: &Proxy, body: Value) {
    let answer = post_json(proxy.addr, "/webhooks", &body);
    assert_eq!(answer.status, 200, "add webhook: {}", answer.text());
}

/// A receiver answering 200 and a webhook for every event pointing at it.
fn receiver_for(proxy: &Proxy) -> Receiver {
    let receiver = Receiver::answering(200);
    add_webhook(proxy, json!({ "url": receiver.url("/hook") }));
    receiver
}

fn is(event: &Value, stream_id: &str, kind: &str) -> bool {
    event["stream_id"] == stream_id && event["event_type"] == kind
}

/// Waits until `check` holds for the events received so far; returns them.
fn wait_for_events(receiver: &Receiver, check: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    let held = wait_until(PATIENCE, || {
        events = receiver.events();
        check(&events)
    });
    assert!(held, "events never arrived; got {}", summary(&events));
    events
}

/// Waits for one event of `kind` for `stream_id` and returns it.
fn wait_for(receiver: &Receiver, stream_id: &str, kind: &str) -> Value {
    let events = wait_for_events(receiver, |events| {
        events.iter().any(|e| is(e, stream_id, kind))
    });
    events.into_iter().find(|e| is(e, stream_id, kind)).unwrap()
}

/// The events received once things have been quiet for a moment.
fn settled(receiver: &Receiver) -> Vec<Value> {
    std::thread::sleep(QUIET);
    receiver.events()
}

fn of_stream<'a>(events: &'a [Value], stream_id: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["stream_id"] == stream_id)
        .collect()
}

fn count(events: &[Value], stream_id: &str, kind: &str) -> usize {
    events.iter().filter(|e| is(e, stream_id, kind)).count()
}

/// The event types of one stream's events, after checking that their sequence numbers
/// increase in the order the events arrived (numbers are proxy-wide, so they have gaps).
fn kinds_in_order(events: &[&Value]) -> Vec<String> {
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "sequence numbers {sequences:?} do not increase in arrival order"
    );
    events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap().to_owned())
        .collect()
}

fn summary(events: &[Value]) -> String {
    let short: Vec<String> = events
        .iter()
        .map(|e| {
            let id = e["stream_id"].as_str().unwrap_or("?");
            format!(
                "{}:{}#{}",
                &id[..id.len().min(6)],
                e["event_type"],
                e["sequence"]
            )
        })
        .collect();
    short.join(" ")
}

/// Starts a viewer of `/stream/{id}` as `client_id` and reads its first packets.
fn watch(proxy: &Proxy, id: &str, client_id: &str) -> Streamed {
    let target = format!("/stream/{id}?client_id={client_id}");
    let mut viewer = open(
        proxy.addr,
        "GET",
        &target,
        &[("User-Agent", "TestPlayer/2.0")],
        b"",
    );
    assert_eq!(viewer.status, 200, "{target}");
    assert_eq!(viewer.read_bytes(188 * 50).unwrap().len(), 188 * 50);
    viewer
}

/// Checks the envelope every event shares; `before` and `after` bracket its time.
fn check_envelope(event: &Value, before: &str, after: &str) {
    let id = event["event_id"].as_str().expect("event_id is a string");
    assert!(is_uuid_v4(id), "event_id {id:?} is no lower-case UUID v4");

    let kind = event["event_type"]
        .as_str()
        .expect("event_type is a string");
    let known = [
        "stream_started",
        "stream_stopped",
        "stream_failed",
        "client_connected",
        "client_disconnected",
        "failover_triggered",
    ];
    assert!(known.contains(&kind), "event_type {kind:?}");

    let at = event["timestamp"].as_str().expect("timestamp is a string");
    assert!(
        is_timestamp(at),
        "timestamp {at:?} is not like 2025-09-25T22:38:34.392830"
    );
    assert!(
        before <= at && at <= after,
        "timestamp {at} outside {before}..{after}"
    );
    assert!(
        event["stream_id"].is_string() && event["data"].is_object(),
        "{event}"
    );
}

fn is_uuid_v4(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let lower_hex = id
        .chars()
        .all(|c| c == '-' || c.is_ascii_digit() || ('a'..='f').contains(&c));
    lengths == [8, 4, 4, 4, 12]
        && lower_hex
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

/// `YYYY-MM-DDTHH:MM:SS.ffffff`, digits where the shape has them.
fn is_timestamp(at: &str) -> bool {
    let shape = "dddd-dd-ddTdd:dd:dd.dddddd";
    at.len() == shape.len()
        && at
            .chars()
            .zip(shape.chars())
            .all(|(c, s)| if s == 'd' { c.is_ascii_digit() } else { c == s })
}

fn now_stamp() -> String {
    format_timestamp(SystemTime::now())
}

#[test]
fn every_event_type_arrives_once_with_its_fields_in_sequence_order() {
    let upstream = FakeUpstream::start();
    upstream.route("/down.ts", status(503));
    upstream.route("/live.ts", Behavior::Live(Live::new(1)));
    upstream.route("/dead1.ts", status(503));
    upstream.route("/dead2.ts", status(404));
    let proxy = Proxy::start(|c| c.failover_cycles = 1);
    let receiver = receiver_for(&proxy);
    let before = now_stamp();

    let (primary, backup) = (upstream.url("/down.ts"), upstream.url("/live.ts"));
    let body = json!({ "url": primary, "failover_urls": [backup], "user_agent": "TestAgent/1.0" });
    let watched = create_stream_with(proxy.addr, body);
    let mut viewer = watch(&proxy, &watched, "viewer-1");
    viewer.read_bytes(188 * 50).unwrap();
    drop(viewer);
    let left = wait_for(&receiver, &watched, "client_disconnected");
    assert_eq!(
        delete(proxy.addr, &format!("/streams/{watched}")).status,
        200
    );

    let failing = create_stream(
        proxy.addr,
        &upstream.url("/dead1.ts"),
        &[upstream.url("/dead2.ts")],
    );
    assert_eq!(get(proxy.addr, &format!("/stream/{failing}")).status, 502);
    assert_eq!(
        delete(proxy.addr, &format!("/streams/{failing}")).status,
        200
    );

    wait_for_events(&receiver, |events| events.len() >= 9);
    let events = settled(&receiver);
    let after = now_stamp();
    assert_eq!(events.len(), 9, "{}", summary(&events));
    for event in &events {
        check_envelope(event, &before, &after);
    }

    let watched_events = of_stream(&events, &watched);
    let kinds = kinds_in_order(&watched_events);
    let expected = [
        "stream_started",
        "failover_triggered",
        "client_connected",
        "client_disconnected",
        "stream_stopped",
    ];
    assert_eq!(kinds, expected);
    let data = |i: usize| &watched_events[i]["data"];
    assert_eq!(data(0)["primary_url"], primary);
    assert_eq!(data(0)["failover_urls"], json!([backup]));
    assert_eq!(data(0)["user_agent"], "TestAgent/1.0");
    assert_eq!(data(0)["stream_type"], "direct");
    assert_eq!(
        (&data(1)["old_url"], &data(1)["new_url"]),
        (&json!(primary), &json!(backup))
    );
    assert_eq!(data(1)["failover_index"], 1);
    assert_eq!(data(1)["reason"], "http_status");
    assert_eq!(data(2)["client_id"], "viewer-1");
    assert_eq!(data(2)["user_agent"], "TestPlayer/2.0");
    assert_eq!(data(2)["ip_address"], "127.0.0.1");
    assert_eq!(data(3)["client_id"], "viewer-1");
    let served = left["data"]["bytes_served"]
        .as_u64()
        .expect("bytes_served is a number");
    assert!(
        served >= 188 * 100,
        "bytes_served {served} is less than the viewer read"
    );
    assert_eq!(data(3)["segments_served"], 0);
    assert_eq!(data(4)["reason"], "deleted");

    let failing_events = of_stream(&events, &failing);
    let kinds = kinds_in_order(&failing_events);
    assert_eq!(
        kinds,
        [
            "stream_started",
            "failover_triggered",
            "stream_failed",
            "stream_stopped"
        ]
    );
    let failed = &failing_events[2]["data"];
    assert!(
        failed["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
    assert!(
        failed["error_type"].as_str().is_some_and(|e| !e.is_empty()),
        "{failed}"
    );
}

#[test]
fn viewers_leaving_give_connected_and_disconnected_in_pairs() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(2)));
    let proxy = Proxy::start(|_| {});
    let receiver = receiver_for(&proxy);
    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);

    drop(watch(&proxy, &id, "a"));
    wait_for_events(&receiver, |events| {
        count(events, &id, "client_disconnected") == 1
    });

    // Two connections of one player are one session: it ends with the last of them.
    let first = watch(&proxy, &id, "b");
    let second = watch(&proxy, &id, "b");
    drop(first);
    std::thread::sleep(QUIET);
    let gone = |e: &Value| is(e, &id, "client_disconnected") && e["data"]["client_id"] == "b";
    assert!(
        !receiver.events().iter().any(gone),
        "b left while one connection was open"
    );
    drop(second);
    wait_for_events(&receiver, |events| events.iter().any(gone));

    drop(watch(&proxy, &id, "a"));
    let events = wait_for_events(&receiver, |events| {
        count(events, &id, "client_disconnected") == 3
    });
    let events = of_stream(&events, &id);
    kinds_in_order(&events);

    let mut connected: HashMap<String, bool> = HashMap::new();
    let mut sessions = Vec::new();
    for event in events
        .iter()
        .filter(|e| e["event_type"] != "stream_started")
    {
        let client = event["data"]["client_id"].as_str().unwrap().to_owned();
        let joining = event["event_type"] == "client_connected";
        let was = connected.insert(client.clone(), joining).unwrap_or(false);
        assert_ne!(
            was, joining,
            "{client}: {} twice in a row",
            event["event_type"]
        );
        if joining {
            sessions.push(client);
        }
    }
    assert_eq!(sessions, ["a", "b", "a"]);
    assert!(
        connected.values().all(|c| !c),
        "a session was left open: {connected:?}"
    );
    assert_eq!(
        settled(&receiver).len(),
        7,
        "stream_started and three pairs"
    );
}

#[test]
fn deleting_a_watched_stream_stops_it_once_after_its_viewer_is_gone() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(3)));
    let proxy = Proxy::start(|_| {});
    let receiver = receiver_for(&proxy);
    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    let mut viewer = watch(&proxy, &id, "viewer");
    wait_for(&receiver, &id, "client_connected");

    assert_eq!(delete(proxy.addr, &format!("/streams/{id}")).status, 200);
    let started = Instant::now();
    let _ = viewer.read_all();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the viewer's response went on"
    );
    let stopped = wait_for(&receiver, &id, "stream_stopped");
    assert_eq!(stopped["data"]["reason"], "deleted");
    assert_eq!(delete(proxy.addr, &format!("/streams/{id}")).status, 404);

    let events = settled(&receiver);
    let kinds = kinds_in_order(&of_stream(&events, &id));
    let expected = [
        "stream_started",
        "client_connected",
        "client_disconnected",
        "stream_stopped",
    ];
    assert_eq!(
        kinds, expected,
        "stopped once, after the viewer's session ended"
    );
}

#[test]
fn idle_streams_are_stopped_once_with_reason_idle_timeout() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(4)));
    upstream.route("/unwatched.ts", Behavior::Live(Live::new(5)));
    let proxy = Proxy::start(|c| c.stream_timeout = Duration::from_secs(1));
    let receiver = receiver_for(&proxy);
    let unwatched = create_stream(proxy.addr, &upstream.url("/unwatched.ts"), &[]);
    let watched = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);

    // Watched for longer than the timeout: a stream with a viewer is not idle.
    let mut viewer = watch(&proxy, &watched, "viewer");
    let until = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < until {
        assert_eq!(viewer.read_bytes(64 * 1024).unwrap().len(), 64 * 1024);
    }
    let stopped = wait_for(&receiver, &unwatched, "stream_stopped");
    assert_eq!(stopped["data"]["reason"], "idle_timeout");
    assert_eq!(
        count(&receiver.events(), &watched, "stream_stopped"),
        0,
        "stopped while watched"
    );
    drop(viewer);

    let stopped = wait_for(&receiver, &watched, "stream_stopped");
    assert_eq!(stopped["data"]["reason"], "idle_timeout");
    assert_eq!(get(proxy.addr, &format!("/streams/{watched}")).status, 404);
    std::thread::sleep(Duration::from_secs(2));
    let events = receiver.events();
    assert_eq!(
        kinds_in_order(&of_stream(&events, &unwatched)),
        ["stream_started", "stream_stopped"]
    );
    let kinds = kinds_in_order(&of_stream(&events, &watched));
    let expected = [
        "stream_started",
        "client_connected",
        "client_disconnected",
        "stream_stopped",
    ];
    assert_eq!(kinds, expected);
}

#[test]
fn shutdown_stops_every_stream_once_with_reason_shutdown() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(6)));
    upstream.route("/other.ts", Behavior::Live(Live::new(7)));
    let proxy = Proxy::start(|_| {});
    let receiver = receiver_for(&proxy);
    let watched = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    let unwatched = create_stream(proxy.addr, &upstream.url("/other.ts"), &[]);
    let mut viewer = watch(&proxy, &watched, "viewer");
    wait_for(&receiver, &watched, "client_connected");

    let started = Instant::now();
    proxy.stop();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    let _ = viewer.read_all();

    let events = receiver.events();
    let kinds = kinds_in_order(&of_stream(&events, &watched));
    let expected = [
        "stream_started",
        "client_connected",
        "client_disconnected",
        "stream_stopped",
    ];
    assert_eq!(kinds, expected, "delivered before shutdown returned");
    assert_eq!(
        kinds_in_order(&of_stream(&events, &unwatched)),
        ["stream_started", "stream_stopped"]
    );
    for id in [&watched, &unwatched] {
        let stopped = events.iter().find(|e| is(e, id, "stream_stopped")).unwrap();
        assert_eq!(stopped["data"]["reason"], "shutdown");
    }
}

#[test]
fn a_deleted_stream_is_not_stopped_again_by_idle_clean_up_or_shutdown() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(8)));
    let proxy = Proxy::start(|c| c.stream_timeout = Duration::from_secs(1));
    let receiver = receiver_for(&proxy);
    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    let viewer = watch(&proxy, &id, "viewer");

    assert_eq!(delete(proxy.addr, &format!("/streams/{id}")).status, 200);
    assert_eq!(delete(proxy.addr, &format!("/streams/{id}")).status, 404);
    drop(viewer);
    wait_for(&receiver, &id, "stream_stopped");
    // Longer than the idle timeout and two sweeps.
    std::thread::sleep(Duration::from_millis(2500));
    proxy.stop();

    let events = receiver.events();
    assert_eq!(
        count(&events, &id, "stream_stopped"),
        1,
        "{}",
        summary(&events)
    );
    assert_eq!(
        count(&events, &id, "client_disconnected"),
        1,
        "{}",
        summary(&events)
    );
}

#[test]
fn a_failover_mid_stream_is_one_event_and_keeps_the_viewers_session() {
    let upstream = FakeUpstream::start();
    upstream.route(
        "/primary.ts",
        Behavior::Live(Live {
            close_after: Some(188 * 2000),
            ..Live::new(13)
        }),
    );
    upstream.route("/backup.ts", Behavior::Live(Live::new(14)));
    let proxy = Proxy::start(|_| {});
    let receiver = receiver_for(&proxy);
    let (primary, backup) = (upstream.url("/primary.ts"), upstream.url("/backup.ts"));
    let id = create_stream(proxy.addr, &primary, std::slice::from_ref(&backup));

    let mut viewer = watch(&proxy, &id, "viewer");
    let bytes = viewer.read_bytes(188 * 6000).unwrap();
    let tags: Vec<u8> = ts::packets(&bytes)
        .unwrap()
        .iter()
        .map(|(tag, _)| *tag)
        .collect();
    assert_eq!(
        (tags.first(), tags.last()),
        (Some(&13), Some(&14)),
        "switched inside the response"
    );
    let switched = wait_for(&receiver, &id, "failover_triggered");
    assert_eq!(
        (&switched["data"]["old_url"], &switched["data"]["new_url"]),
        (&json!(primary), &json!(backup))
    );
    assert_eq!(switched["data"]["reason"], "upstream_ended");
    assert_eq!(
        count(&settled(&receiver), &id, "client_disconnected"),
        0,
        "the session ended at the switch"
    );

    drop(viewer);
    wait_for(&receiver, &id, "client_disconnected");
    let events = settled(&receiver);
    let kinds = kinds_in_order(&of_stream(&events, &id));
    assert_eq!(
        kinds,
        [
            "stream_started",
            "client_connected",
            "failover_triggered",
            "client_disconnected"
        ]
    );
}

/// A stream created again under the same id must not restart its sequence at 1, or a
/// receiver cannot order the two lifecycles' events.
#[test]
fn a_stream_created_again_continues_its_sequence() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(9)));
    let proxy = Proxy::start(|_| {});
    let receiver = receiver_for(&proxy);
    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    assert_eq!(delete(proxy.addr, &format!("/streams/{id}")).status, 200);
    assert_eq!(
        create_stream(proxy.addr, &upstream.url("/live.ts"), &[]),
        id
    );

    let events = wait_for_events(&receiver, |events| {
        count(events, &id, "stream_started") == 2
    });
    let sequences: Vec<u64> = of_stream(&events, &id)
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert!(
        sequences.windows(2).all(|w| w[0] < w[1]),
        "sequences {sequences:?} do not order the events"
    );
}

#[test]
fn webhook_with_an_event_filter_gets_only_those_events() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(10)));
    let proxy = Proxy::start(|_| {});
    let everything = receiver_for(&proxy);
    let filtered = Receiver::answering(200);
    add_webhook(
        &proxy,
        json!({ "url": filtered.url("/only"), "events": ["client_connected"] }),
    );

    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    drop(watch(&proxy, &id, "a"));
    drop(watch(&proxy, &id, "b"));
    wait_for_events(&everything, |events| {
        count(events, &id, "client_disconnected") == 2
    });
    assert_eq!(delete(proxy.addr, &format!("/streams/{id}")).status, 200);
    wait_for(&everything, &id, "stream_stopped");

    let events = settled(&filtered);
    let kinds: Vec<&Value> = events.iter().map(|e| &e["event_type"]).collect();
    assert_eq!(
        kinds,
        ["client_connected", "client_connected"],
        "{}",
        summary(&events)
    );
    let headers: Vec<Option<String>> = filtered
        .received()
        .iter()
        .map(|r| r.header("x-event-type").map(str::to_owned))
        .collect();
    assert!(
        headers
            .iter()
            .all(|h| h.as_deref() == Some("client_connected")),
        "{headers:?}"
    );
}

/// Reads a `text/event-stream` body frame by frame.
struct EventStream {
    body: Streamed,
    buffer: Vec<u8>,
}

impl EventStream {
    fn open(proxy: &Proxy, target: &str) -> EventStream {
        let body = open(proxy.addr, "GET", target, &[], b"");
        assert_eq!(body.status, 200, "{target}");
        assert_eq!(body.header("content-type"), Some("text/event-stream"));
        EventStream {
            body,
            buffer: Vec::new(),
        }
    }

    /// The next event, skipping comment frames; checks `id:` and `event:` against it.
    fn next_event(&mut self) -> Value {
        loop {
            if let Some(frame) = self.next_frame() {
                let field = |name: &str| {
                    frame
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(str::trim)
                };
                let Some(data) = field("data:") else { continue };
                let event: Value = serde_json::from_str(data).expect("data line is JSON");
                assert_eq!(field("event:"), event["event_type"].as_str(), "{frame}");
                assert_eq!(field("id:"), event["event_id"].as_str(), "{frame}");
                return event;
            }
            let mut chunk = [0u8; 4096];
            let n = self.body.read(&mut chunk).expect("event stream stays open");
            assert!(n > 0, "event stream ended");
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }

    fn next_frame(&mut self) -> Option<String> {
        let end = self.buffer.windows(2).position(|w| w == b"\n\n")?;
        let frame: Vec<u8> = self.buffer.drain(..end + 2).collect();
        Some(String::from_utf8(frame).expect("frames are UTF-8"))
    }
}

#[test]
fn events_route_streams_stream_started_as_server_sent_events() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(11)));
    let proxy = Proxy::start(|_| {});
    let mut events = EventStream::open(&proxy, "/events");

    let before = now_stamp();
    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    let event = events.next_event();
    check_envelope(&event, &before, &now_stamp());
    assert!(is(&event, &id, "stream_started"), "{event}");
    assert_eq!(event["sequence"], 1);
    assert_eq!(event["data"]["primary_url"], upstream.url("/live.ts"));

    drop(watch(&proxy, &id, "viewer"));
    let kinds: Vec<Value> = (0..2)
        .map(|_| events.next_event()["event_type"].clone())
        .collect();
    assert_eq!(kinds, ["client_connected", "client_disconnected"]);
}

#[test]
fn events_route_filter_passes_only_the_named_types() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(12)));
    let proxy = Proxy::start(|_| {});
    let mut stopped_only = EventStream::open(&proxy, "/events?events=stream_stopped");
    let mut two_kinds = EventStream::open(&proxy, "/events?events=STREAM_STARTED,client_connected");

    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    drop(watch(&proxy, &id, "viewer"));
    assert_eq!(delete(proxy.addr, &format!("/streams/{id}")).status, 200);

    let event = stopped_only.next_event();
    assert!(is(&event, &id, "stream_stopped"), "{event}");
    assert_eq!(event["data"]["reason"], "deleted");
    assert_eq!(two_kinds.next_event()["event_type"], "stream_started");
    assert_eq!(two_kinds.next_event()["event_type"], "client_connected");

    let unknown = get(proxy.addr, "/events?events=stream_paused");
    assert_eq!(unknown.status, 422);
    assert!(unknown.json()["detail"]
        .as_str()
        .unwrap()
        .contains("stream_paused"));
    // Regression: an empty list was taken as a filter matching nothing.
    let empty = get(proxy.addr, "/events?events=");
    assert_eq!(empty.status, 422);
    assert!(empty.json()["detail"].as_str().unwrap().contains("empty"));
}

#[test]
fn events_and_webhooks_routes_need_the_api_token() {
    let proxy = Proxy::start(|c| c.api_token = Some("s3cret".into()));
    let hook = json!({ "url": "http://127.0.0.1:9/hook" }).to_string();
    let cases: [(&str, &str, &[u8]); 5] = [
        ("GET", "/events", b""),
        ("GET", "/webhooks", b""),
        ("POST", "/webhooks", hook.as_bytes()),
        (
            "DELETE",
            "/webhooks?webhook_url=http://127.0.0.1:9/hook",
            b"",
        ),
        (
            "POST",
            "/webhooks/test?webhook_url=http://127.0.0.1:9/hook",
            b"",
        ),
    ];
    for (method, target, body) in cases {
        let missing = request(proxy.addr, method, target, &[], body);
        assert_eq!(missing.status, 401, "{method} {target}");
        assert_eq!(
            missing.header("www-authenticate"),
            Some("Bearer"),
            "{method} {target}"
        );
        let wrong = request(
            proxy.addr,
            method,
            target,
            &[("X-API-Token", "guess")],
            body,
        );
        assert_eq!(wrong.status, 403, "{method} {target}");
    }

    let events = open(
        proxy.addr,
        "GET",
        "/events",
        &[("x-api-token", "s3cret")],
        b"",
    );
    assert_eq!(events.status, 200);
    assert_eq!(events.header("content-type"), Some("text/event-stream"));
    drop(events);
    // Browsers' EventSource cannot set headers: the query parameter must do.
    let events = open(
        proxy.addr,
        "GET",
        "/events?api_token=s3cret&events=stream_started",
        &[],
        b"",
    );
    assert_eq!(events.status, 200);
    drop(events);
    let listed = get(proxy.addr, "/webhooks?api_token=s3cret");
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json()["total"], 0);
    let headers = [
        ("X-API-Token", "s3cret"),
        ("Content-Type", "application/json"),
    ];
    let added = request(proxy.addr, "POST", "/webhooks", &headers, hook.as_bytes());
    assert_eq!(added.status, 200, "{}", added.text());
}

/// Regression: a closed event stream kept its slot until its next write, so dashboards
/// that reconnected quickly ran out of the 16 slots.
#[test]
fn dashboards_that_left_free_their_subscriber_slots() {
    let proxy = Proxy::start(|_| {});
    for round in 0..3 {
        let dashboards: Vec<EventStream> = (0..16)
            .map(|_| EventStream::open(&proxy, "/events"))
            .collect();
        drop(dashboards);
        std::thread::sleep(Duration::from_millis(300));
        let again = open(proxy.addr, "GET", "/events", &[], b"");
        assert_eq!(
            again.status, 200,
            "round {round}: slots of closed connections still taken"
        );
    }
}

#[test]
fn shutdown_ends_open_event_streams_without_waiting() {
    let proxy = Proxy::start(|_| {});
    let mut dashboard = EventStream::open(&proxy, "/events");
    let started = Instant::now();
    proxy.stop();
    let took = started.elapsed();
    let _ = dashboard.body.read_all();
    assert!(
        took < Duration::from_secs(2),
        "shutdown waited {took:?} for an event stream"
    );
}
