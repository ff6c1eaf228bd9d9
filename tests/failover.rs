//! Failover through the real server: each way a primary can fail, before the first byte
//! and while playing, moves the player to the backup inside one response, on a packet
//! boundary, in order; operators can switch by hand; the stream gives up after its
//! cycle bound; files resume with Range; and a resolver can choose the next source.

mod common;

use std::time::Duration;

use common::client::open;
use common::upstream::pattern_byte;
use common::*;
use serde_json::json;

/// Reads until `want` packets of source `tag` arrived; returns every packet read.
fn read_until_source(
    stream: &mut common::client::Streamed,
    tag: u8,
    want: usize,
) -> Vec<(u8, u32)> {
    let mut all = Vec::new();
    let mut carry = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while all.iter().filter(|(t, _)| *t == tag).count() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "source {tag} never arrived; got {:?}",
            all.last()
        );
        let bytes = stream
            .read_bytes(188 * 50)
            .expect("the response stays open across the switch");
        assert!(!bytes.is_empty(), "the response ended instead of switching");
        carry.extend_from_slice(&bytes);
        let whole = carry.len() - carry.len() % 188;
        all.extend(
            ts::packets(&carry[..whole])
                .unwrap_or_else(|at| panic!("packet boundary broken at {at}")),
        );
        carry.drain(..whole);
    }
    all
}

fn fast_failover(config: &mut m3u_proxy::config::Config) {
    config.live_chunk_timeout = Duration::from_secs(1);
    config.read_timeout = Duration::from_secs(2);
}

#[test]
fn failures_before_the_first_byte_move_to_the_backup_before_anything_is_sent() {
    let failures = [
        ("refused", None),
        (
            "404",
            Some(Behavior::Status {
                status: 404,
                headers: vec![],
                body: b"gone".to_vec(),
            }),
        ),
        (
            "503",
            Some(Behavior::Status {
                status: 503,
                headers: vec![],
                body: b"busy".to_vec(),
            }),
        ),
        (
            "empty-200",
            Some(Behavior::Status {
                status: 200,
                headers: vec![("Content-Type".into(), "video/mp2t".into())],
                body: vec![],
            }),
        ),
        (
            "html-200",
            Some(Behavior::Status {
                status: 200,
                headers: vec![("Content-Type".into(), "text/html".into())],
                body: b"<html>Provider busy</html>".to_vec(),
            }),
        ),
        ("silent", Some(Behavior::Hang)),
        ("reset", Some(Behavior::Reset)),
    ];
    let upstream = FakeUpstream::start();
    upstream.route("/backup.ts", Behavior::Live(Live::new(2)));
    let proxy = Proxy::start(fast_failover);
    for (name, behavior) in failures {
        let primary = match behavior {
            Some(behavior) => {
                upstream.route(&format!("/{name}.ts"), behavior);
                upstream.url(&format!("/{name}.ts"))
            }
            None => "http://127.0.0.1:9/refused.ts".to_owned(),
        };
        let id = create_stream(proxy.addr, &primary, &[upstream.url("/backup.ts")]);
        let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
        assert_eq!(stream.status, 200, "{name}");
        let packets = ts::packets(&stream.read_bytes(188 * 20).unwrap()).unwrap();
        assert!(
            packets.iter().all(|(tag, _)| *tag == 2),
            "{name}: only backup bytes"
        );
        let entry = stream_entry(proxy.addr, &id)["stream"].clone();
        assert_eq!(entry["current_url"], upstream.url("/backup.ts"), "{name}");
        assert_eq!(entry["current_failover_index"], 1, "{name}");
        assert_eq!(entry["failover_attempts"], 1, "{name}");
        assert!(entry["last_failover_time"].is_string(), "{name}");
    }
}

#[test]
fn failures_while_playing_switch_inside_the_open_response() {
    let failures = [
        (
            "stall",
            Live {
                stall_after: Some(1_000_000),
                ..Live::new(1)
            },
        ),
        (
            "close",
            Live {
                close_after: Some(1_000_000),
                ..Live::new(1)
            },
        ),
    ];
    for (name, live) in failures {
        let upstream = FakeUpstream::start();
        upstream.route(
            "/primary.ts",
            Behavior::Live(Live {
                rate: 2_000_000,
                ..live
            }),
        );
        // The backup starts mid-packet: the splice must still land on a packet start.
        upstream.route(
            "/backup.ts",
            Behavior::Live(Live {
                skip: 100,
                ..Live::new(2)
            }),
        );
        let proxy = Proxy::start(fast_failover);
        let id = create_stream(
            proxy.addr,
            &upstream.url("/primary.ts"),
            &[upstream.url("/backup.ts")],
        );

        let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
        let packets = read_until_source(&mut stream, 2, 50);
        let switch = packets.iter().position(|(tag, _)| *tag == 2).unwrap();
        assert!(
            packets[..switch].iter().all(|(tag, _)| *tag == 1),
            "{name}: primary until the switch"
        );
        assert!(
            packets[switch..].iter().all(|(tag, _)| *tag == 2),
            "{name}: backup after it"
        );
        let counters: Vec<u32> = packets[..switch].iter().map(|(_, n)| *n).collect();
        assert!(
            counters.windows(2).all(|w| w[1] == w[0] + 1),
            "{name}: no primary packet lost or repeated"
        );
        assert_eq!(
            stream_entry(proxy.addr, &id)["stream"]["current_failover_index"],
            1,
            "{name}"
        );
    }
}

#[test]
fn a_switch_while_playing_skips_a_dead_backup_and_reaches_the_next() {
    // A failed switch was once reported against the old source, so the policy kept
    // handing back the same dead backup.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/p.ts",
        Behavior::Live(Live {
            close_after: Some(188 * 1000),
            ..Live::new(1)
        }),
    );
    upstream.route(
        "/b1.ts",
        Behavior::Status {
            status: 503,
            headers: vec![],
            body: vec![],
        },
    );
    upstream.route("/b2.ts", Behavior::Live(Live::new(3)));
    let proxy = Proxy::start(fast_failover);
    let id = create_stream(
        proxy.addr,
        &upstream.url("/p.ts"),
        &[upstream.url("/b1.ts"), upstream.url("/b2.ts")],
    );
    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    read_until_source(&mut stream, 3, 20);
    assert_eq!(
        upstream.hits("/b1.ts").len(),
        1,
        "b1 was tried once, not again and again"
    );
    assert_eq!(
        stream_entry(proxy.addr, &id)["stream"]["current_failover_index"],
        2
    );
}

#[test]
fn sources_that_answer_and_die_at_once_end_in_giving_up_not_a_reconnect_storm() {
    // Each answer once reset the failure count, so two dying sources were re-fetched
    // thousands of times a second, forever.
    let upstream = FakeUpstream::start();
    let dying = || {
        Behavior::Live(Live {
            rate: 5_000_000,
            close_after: Some(188 * 100),
            ..Live::new(1)
        })
    };
    upstream.route("/p.ts", dying());
    upstream.route("/b.ts", dying());
    let proxy = Proxy::start(|c| c.failover_cycles = 2);
    let id = create_stream(proxy.addr, &upstream.url("/p.ts"), &[upstream.url("/b.ts")]);

    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    let ended = stream.read_all();
    assert!(
        ended.is_err(),
        "the response ends as cut once the stream gives up"
    );
    let tries = upstream.hits("/p.ts").len() + upstream.hits("/b.ts").len();
    assert!(
        tries <= 5,
        "{tries} upstream requests: the first plus at most two cycles of two"
    );
}

#[test]
fn sources_are_tried_in_order_primary_then_each_backup() {
    let upstream = FakeUpstream::start();
    upstream.route(
        "/p.ts",
        Behavior::Status {
            status: 503,
            headers: vec![],
            body: vec![],
        },
    );
    upstream.route(
        "/b1.ts",
        Behavior::Status {
            status: 404,
            headers: vec![],
            body: vec![],
        },
    );
    upstream.route("/b2.ts", Behavior::Live(Live::new(3)));
    upstream.route("/b3.ts", Behavior::Live(Live::new(4)));
    let proxy = Proxy::start(fast_failover);
    let backups = [
        upstream.url("/b1.ts"),
        upstream.url("/b2.ts"),
        upstream.url("/b3.ts"),
    ];
    let id = create_stream(proxy.addr, &upstream.url("/p.ts"), &backups);

    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    assert_eq!(
        ts::packets(&stream.read_bytes(188 * 10).unwrap()).unwrap()[0].0,
        3
    );
    let order: Vec<String> = upstream.requests().iter().map(|s| s.path.clone()).collect();
    assert_eq!(order, ["/p.ts", "/b1.ts", "/b2.ts"]);
    assert_eq!(
        stream_entry(proxy.addr, &id)["stream"]["failover_attempts"],
        2
    );
}

#[test]
fn a_stream_gives_up_after_its_cycle_bound() {
    let upstream = FakeUpstream::start();
    upstream.route(
        "/p.ts",
        Behavior::Status {
            status: 503,
            headers: vec![],
            body: vec![],
        },
    );
    upstream.route(
        "/b.ts",
        Behavior::Status {
            status: 502,
            headers: vec![],
            body: vec![],
        },
    );
    let proxy = Proxy::start(|c| c.failover_cycles = 3);
    let id = create_stream(proxy.addr, &upstream.url("/p.ts"), &[upstream.url("/b.ts")]);

    let answer = get(proxy.addr, &format!("/stream/{id}"));
    assert_eq!(answer.status, 502);
    assert_eq!(
        upstream.hits("/p.ts").len(),
        3,
        "three cycles over the list"
    );
    assert_eq!(upstream.hits("/b.ts").len(), 3);
}

#[test]
fn manual_failover_moves_every_connected_client() {
    let upstream = FakeUpstream::start();
    upstream.route("/p.ts", Behavior::Live(Live::new(1)));
    upstream.route("/b.ts", Behavior::Live(Live::new(2)));
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/p.ts"), &[upstream.url("/b.ts")]);

    let mut players: Vec<_> = (0..3)
        .map(|n| {
            open(
                proxy.addr,
                "GET",
                &format!("/stream/{id}?client_id=player{n}"),
                &[],
                b"",
            )
        })
        .collect();
    for player in &mut players {
        player.read_bytes(188 * 10).unwrap();
    }
    let answer = post_json(proxy.addr, &format!("/streams/{id}/failover"), &json!({}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(body["new_url"], upstream.url("/b.ts"));
    assert_eq!(body["failover_index"], 1);
    assert_eq!(body["active_clients"], 3);
    for player in &mut players {
        read_until_source(player, 2, 10);
    }
}

#[test]
fn manual_failover_needs_another_source_and_a_known_stream() {
    let upstream = FakeUpstream::start();
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/only.ts"), &[]);
    let answer = post_json(proxy.addr, &format!("/streams/{id}/failover"), &json!({}));
    assert_eq!(answer.status, 400);
    assert!(answer.json()["detail"]
        .as_str()
        .unwrap()
        .contains("no other source"));
    assert_eq!(
        post_json(proxy.addr, "/streams/unknown/failover", &json!({})).status,
        404
    );
}

#[test]
fn a_file_cut_short_resumes_with_range_and_no_duplicate_bytes() {
    let upstream = FakeUpstream::start();
    let len = 3_000_000u64;
    upstream.route(
        "/movie.mp4",
        Behavior::Sequence(vec![
            Behavior::Truncated {
                declared: len,
                sent: 1_000_000,
                content_type: "video/mp4".into(),
            },
            Behavior::Pattern {
                len,
                content_type: "video/mp4".into(),
            },
        ]),
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/movie.mp4"), &[]);

    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    assert_eq!(stream.header("content-length"), Some("3000000"));
    let body = stream
        .read_all()
        .expect("the body completes after resuming");
    assert_eq!(body.len() as u64, len);
    let first_wrong = body
        .iter()
        .enumerate()
        .position(|(i, b)| *b != pattern_byte(i as u64));
    assert_eq!(first_wrong, None);
    let resumed = &upstream.hits("/movie.mp4")[1];
    assert_eq!(resumed.header("range"), Some("bytes=1000000-2999999"));
}

#[test]
fn a_resolver_chooses_the_next_source_and_its_failure_falls_back_to_the_list() {
    let upstream = FakeUpstream::start();
    upstream.route(
        "/p.ts",
        Behavior::Status {
            status: 503,
            headers: vec![],
            body: vec![],
        },
    );
    upstream.route("/listed.ts", Behavior::Live(Live::new(2)));
    upstream.route("/chosen.ts", Behavior::Live(Live::new(3)));
    let answer = serde_json::to_vec(&json!({ "next_url": upstream.url("/chosen.ts") })).unwrap();
    upstream.route(
        "/resolve",
        Behavior::Status {
            status: 200,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: answer,
        },
    );
    upstream.route(
        "/broken-resolver",
        Behavior::Status {
            status: 500,
            headers: vec![],
            body: vec![],
        },
    );
    let proxy = Proxy::start(|_| {});

    let chosen = create_stream_with(
        proxy.addr,
        json!({
            "url": upstream.url("/p.ts"),
            "failover_urls": [upstream.url("/listed.ts")],
            "failover_resolver_url": upstream.url("/resolve"),
            "metadata": { "channel_id": 7 },
        }),
    );
    let mut stream = open(proxy.addr, "GET", &format!("/stream/{chosen}"), &[], b"");
    assert_eq!(
        ts::packets(&stream.read_bytes(188 * 5).unwrap()).unwrap()[0].0,
        3,
        "the resolver's choice"
    );
    let asked = &upstream.hits("/resolve")[0];
    assert_eq!(asked.method, "POST");

    let fallback = create_stream_with(
        proxy.addr,
        json!({
            "url": upstream.url("/p.ts?second"),
            "failover_urls": [upstream.url("/listed.ts")],
            "failover_resolver_url": upstream.url("/broken-resolver"),
        }),
    );
    let mut stream = open(proxy.addr, "GET", &format!("/stream/{fallback}"), &[], b"");
    assert_eq!(
        ts::packets(&stream.read_bytes(188 * 5).unwrap()).unwrap()[0].0,
        2,
        "the static list"
    );
}
