//! Continuous streams through the real server: live TS and VOD byte for byte, Range and
//! HEAD, upstream failures before the first byte, redirects, required upstream headers,
//! and what happens when the player goes away.

mod common;

use std::time::Duration;

use common::client::{get, open, request};
use common::upstream::pattern_byte;
use common::*;
use serde_json::json;

#[test]
fn live_ts_passes_through_byte_for_byte() {
    let upstream = FakeUpstream::start();
    upstream.route("/live/1.ts", Behavior::Live(Live::new(1)));
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/live/1.ts"), &[]);

    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    assert_eq!(stream.status, 200);
    assert_eq!(stream.header("content-type"), Some("video/mp2t"));
    let bytes = stream.read_bytes(188 * 1000).unwrap();
    let expected: Vec<u8> = (0..bytes.len() as u64).map(|i| ts::byte_at(1, i)).collect();
    let first_difference = bytes.iter().zip(&expected).position(|(a, b)| a != b);
    assert_eq!(
        first_difference, None,
        "live bytes differ from the upstream's"
    );
    assert_eq!(bytes.len(), expected.len());
}

#[test]
fn vod_keeps_its_length_and_ranges_pass_through() {
    let upstream = FakeUpstream::start();
    let len = 1_336_461u64;
    upstream.route(
        "/movie.mkv",
        Behavior::Pattern {
            len,
            content_type: "video/x-matroska".into(),
        },
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/movie.mkv"), &[]);
    let path = format!("/stream/{id}");

    let whole = get(proxy.addr, &path);
    assert_eq!(whole.status, 200);
    assert_eq!(
        whole.header("content-length"),
        Some(len.to_string().as_str())
    );
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert!(whole.header("transfer-encoding").is_none());
    assert!(whole
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern_byte(i as u64)));

    for (range, start, end) in [
        ("bytes=1928-", 1928, len - 1),
        ("bytes=500000-599999", 500_000, 599_999),
        ("bytes=-65536", len - 65536, len - 1),
        ("bytes=0-0", 0, 0),
    ] {
        let part = request(proxy.addr, "GET", &path, &[("Range", range)], b"");
        assert_eq!(part.status, 206, "{range}");
        assert_eq!(
            part.header("content-range").unwrap(),
            format!("bytes {start}-{end}/{len}"),
            "{range}"
        );
        assert_eq!(part.body.len() as u64, end - start + 1, "{range}");
        assert_eq!(
            part.body[0],
            pattern_byte(start),
            "{range}: first byte at the requested offset"
        );
    }
    let seen = upstream.hits("/movie.mkv");
    assert!(
        seen.iter()
            .any(|s| s.header("range") == Some("bytes=-65536")),
        "Range forwarded verbatim"
    );
}

#[test]
fn unsatisfiable_range_is_passed_through_and_is_no_failure() {
    let upstream = FakeUpstream::start();
    upstream.route(
        "/small.mp4",
        Behavior::Pattern {
            len: 47_022,
            content_type: "video/mp4".into(),
        },
    );
    upstream.route(
        "/backup.mp4",
        Behavior::Pattern {
            len: 47_022,
            content_type: "video/mp4".into(),
        },
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(
        proxy.addr,
        &upstream.url("/small.mp4"),
        &[upstream.url("/backup.mp4")],
    );

    let answer = request(
        proxy.addr,
        "GET",
        &format!("/stream/{id}"),
        &[("Range", "bytes=47022-")],
        b"",
    );
    assert_eq!(answer.status, 416);
    assert_eq!(answer.header("content-range"), Some("bytes */47022"));
    assert!(
        upstream.hits("/backup.mp4").is_empty(),
        "a 416 is the client's answer, not a failover"
    );
    assert_eq!(
        stream_entry(proxy.addr, &id)["stream"]["failover_attempts"],
        0
    );
    assert!(wait_until(Duration::from_secs(5), || stream_entry(
        proxy.addr, &id
    )["client_count"]
        == 0));
}

#[test]
fn vod_over_4_gib_keeps_its_exact_length() {
    let upstream = FakeUpstream::start();
    let len = 4_694_430_648u64;
    upstream.route(
        "/big.mkv",
        Behavior::Pattern {
            len,
            content_type: "video/x-matroska".into(),
        },
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/big.mkv"), &[]);

    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    assert_eq!(stream.header("content-length"), Some("4694430648"));
    let first = stream.read_bytes(100_000).unwrap();
    assert!(first
        .iter()
        .enumerate()
        .all(|(i, b)| *b == pattern_byte(i as u64)));

    let tail = request(
        proxy.addr,
        "GET",
        &format!("/stream/{id}"),
        &[("Range", "bytes=4694430000-")],
        b"",
    );
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body.len(), 648);
    assert_eq!(tail.body[0], pattern_byte(4_694_430_000));
}

#[test]
fn head_reports_what_get_would_without_a_client() {
    let upstream = FakeUpstream::start();
    let data = std::sync::Arc::new(vec![7u8; 734_003]);
    upstream.route(
        "/vod.mp4",
        Behavior::File {
            data: data.clone(),
            content_type: "video/mp4".into(),
            head_405: false,
            require_range: false,
        },
    );
    upstream.route(
        "/no-head.mp4",
        Behavior::File {
            data,
            content_type: "video/mp4".into(),
            head_405: true,
            require_range: false,
        },
    );
    upstream.route("/live.ts", Behavior::Live(Live::new(2)));
    let proxy = Proxy::start(|_| {});

    for path in ["/vod.mp4", "/no-head.mp4"] {
        let id = create_stream(proxy.addr, &upstream.url(path), &[]);
        let head = request(proxy.addr, "HEAD", &format!("/stream/{id}"), &[], b"");
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(
            head.header("content-length"),
            Some("734003"),
            "{path}: the file's length, not an error body's"
        );
        assert_eq!(head.header("accept-ranges"), Some("bytes"), "{path}");
        assert!(head.body.is_empty());
    }
    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    let head = request(proxy.addr, "HEAD", &format!("/stream/{id}"), &[], b"");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-type"), Some("video/mp2t"));
    assert!(head.header("content-length").is_none());
    assert_eq!(
        stream_entry(proxy.addr, &id)["client_count"],
        0,
        "a probe is no viewer"
    );
    assert!(
        wait_until(Duration::from_secs(3), || upstream.open_connections() == 0),
        "probe connections closed"
    );
}

#[test]
fn upstream_failures_before_the_first_byte_are_502_or_504_never_200() {
    let upstream = FakeUpstream::start();
    let status = |code: u16| Behavior::Status {
        status: code,
        headers: vec![],
        body: b"nope".to_vec(),
    };
    upstream.route("/404", status(404));
    upstream.route("/503", status(503));
    upstream.route(
        "/empty",
        Behavior::Status {
            status: 200,
            headers: vec![("Content-Type".into(), "video/mp2t".into())],
            body: vec![],
        },
    );
    upstream.route(
        "/html",
        Behavior::Status {
            status: 200,
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: b"<html>Provider busy, try later</html>".to_vec(),
        },
    );
    upstream.route("/hang", Behavior::Hang);
    upstream.route("/reset", Behavior::Reset);
    let proxy = Proxy::start(|c| c.read_timeout = Duration::from_secs(1));

    let refused = "http://127.0.0.1:9/closed.ts".to_owned();
    let cases = [
        (upstream.url("/404"), 502),
        (upstream.url("/503"), 502),
        (upstream.url("/empty"), 502),
        (upstream.url("/html"), 502),
        (upstream.url("/reset"), 502),
        (refused, 502),
        (upstream.url("/hang"), 504),
    ];
    for (url, expected) in cases {
        let id = create_stream(proxy.addr, &url, &[]);
        let answer = get(proxy.addr, &format!("/stream/{id}"));
        assert_eq!(answer.status, expected, "{url}");
        assert!(
            answer.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with("Upstream unavailable"),
            "{url}"
        );
    }
}

#[test]
fn redirects_are_followed_server_side_with_relative_locations() {
    let upstream = FakeUpstream::start();
    let other_host = FakeUpstream::start();
    other_host.route("/a/live.ts", Behavior::Live(Live::new(3)));
    upstream.route(
        "/go/7",
        Behavior::Redirect {
            status: 302,
            location: "/r/7".into(),
        },
    );
    let padded = format!("{}?pad={}", other_host.url("/a/live.ts"), "x".repeat(3000));
    upstream.route(
        "/r/7",
        Behavior::Redirect {
            status: 301,
            location: "next?x=1".into(),
        },
    );
    upstream.route(
        "/r/next",
        Behavior::Redirect {
            status: 307,
            location: padded,
        },
    );
    upstream.route(
        "/loop/a",
        Behavior::Redirect {
            status: 302,
            location: "/loop/b".into(),
        },
    );
    upstream.route(
        "/loop/b",
        Behavior::Redirect {
            status: 302,
            location: "/loop/a".into(),
        },
    );
    let proxy = Proxy::start(|_| {});

    let id = create_stream(proxy.addr, &upstream.url("/go/7"), &[]);
    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    assert_eq!(stream.status, 200, "the client never sees the hops");
    let bytes = stream.read_bytes(188 * 10).unwrap();
    assert_eq!(ts::packets(&bytes).unwrap()[0], (3, 0));
    assert_eq!(
        upstream.hits("/r/next")[0].target,
        "/r/next?x=1",
        "relative to /r/7, not /r/7/"
    );

    let looping = create_stream(proxy.addr, &upstream.url("/loop/a"), &[]);
    assert_eq!(get(proxy.addr, &format!("/stream/{looping}")).status, 502);
}

#[test]
fn upstream_requests_carry_the_streams_user_agent_and_headers() {
    let upstream = FakeUpstream::start();
    let required = vec![
        (
            "User-Agent".to_owned(),
            "ExamplePlayer/2.1 (Linux)".to_owned(),
        ),
        ("Referer".to_owned(), "https://portal.test/".to_owned()),
        ("Origin".to_owned(), "https://portal.test".to_owned()),
    ];
    upstream.route(
        "/guarded.ts",
        Behavior::Require {
            headers: required,
            then: Box::new(Behavior::Live(Live::new(4))),
        },
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream_with(
        proxy.addr,
        json!({
            "url": upstream.url("/guarded.ts"),
            "user_agent": "ExamplePlayer/2.1 (Linux)",
            "headers": { "Referer": "https://portal.test/", "Origin": "https://portal.test" },
        }),
    );

    let mut stream = open(
        proxy.addr,
        "GET",
        &format!("/stream/{id}"),
        &[("User-Agent", "VLC/3.0")],
        b"",
    );
    assert_eq!(stream.status, 200);
    assert!(!stream.read_bytes(188).unwrap().is_empty());
    let seen = &upstream.hits("/guarded.ts")[0];
    assert_eq!(seen.header("accept"), Some("*/*"));
}

#[test]
fn player_leaving_closes_the_upstream_and_ends_the_client_with_exact_bytes() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(5)));
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);

    let mut stream = open(
        proxy.addr,
        "GET",
        &format!("/stream/{id}?client_id=leaver"),
        &[],
        b"",
    );
    let read = stream.read_bytes(188 * 500).unwrap();
    assert_eq!(read.len(), 188 * 500);
    assert_eq!(stream_entry(proxy.addr, &id)["client_count"], 1);
    drop(stream);

    assert!(
        wait_until(Duration::from_secs(2), || upstream.open_connections() == 0),
        "upstream closed within about a second"
    );
    assert!(wait_until(Duration::from_secs(2), || stream_entry(
        proxy.addr, &id
    )["client_count"]
        == 0));
    let served = stream_entry(proxy.addr, &id)["stream"]["total_bytes_served"]
        .as_u64()
        .unwrap();
    assert!(
        served >= read.len() as u64,
        "counted at least what the player read ({served})"
    );
}

#[test]
fn a_stalled_upstream_does_not_hide_a_player_that_left() {
    let upstream = FakeUpstream::start();
    upstream.route(
        "/stall.ts",
        Behavior::Live(Live {
            stall_after: Some(188 * 100),
            ..Live::new(6)
        }),
    );
    let proxy = Proxy::start(|c| c.live_chunk_timeout = Duration::from_secs(30));
    let id = create_stream(proxy.addr, &upstream.url("/stall.ts"), &[]);

    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    stream.read_bytes(188 * 100).unwrap();
    drop(stream);
    assert!(
        wait_until(Duration::from_secs(3), || upstream.open_connections() == 0),
        "noticed while no bytes flow"
    );
    assert!(wait_until(Duration::from_secs(3), || stream_entry(
        proxy.addr, &id
    )["client_count"]
        == 0));
}

#[test]
fn two_connections_with_one_client_id_do_not_cancel_each_other() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(7)));
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    let path = format!("/stream/{id}");

    let mut first = open(proxy.addr, "GET", &path, &[("User-Agent", "Kodi")], b"");
    first.read_bytes(188 * 10).unwrap();
    let mut second = open(proxy.addr, "GET", &path, &[("User-Agent", "Kodi")], b"");
    second.read_bytes(188 * 10).unwrap();
    assert_eq!(
        stream_entry(proxy.addr, &id)["client_count"],
        1,
        "one player, one client session"
    );
    drop(second);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        first.read_bytes(188 * 100).unwrap().len(),
        188 * 100,
        "the first connection goes on"
    );
    assert_eq!(stream_entry(proxy.addr, &id)["client_count"], 1);
}

#[test]
fn a_vod_body_cut_short_upstream_is_cut_for_the_player_too() {
    let upstream = FakeUpstream::start();
    upstream.route(
        "/cut.mp4",
        Behavior::Truncated {
            declared: 10_000_000,
            sent: 3_000_000,
            content_type: "video/mp4".into(),
        },
    );
    let proxy = Proxy::start(|c| c.vod_resume_attempts = 0);
    let id = create_stream(proxy.addr, &upstream.url("/cut.mp4"), &[]);

    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    assert_eq!(stream.header("content-length"), Some("10000000"));
    let result = stream.read_all();
    assert!(result.is_err(), "the player can tell the body was cut");
}

#[test]
fn a_player_that_stops_reading_is_dropped_after_the_write_timeout() {
    // A vanished player (suspended, out of range) never closes; only a stuck write shows it.
    let upstream = FakeUpstream::start();
    upstream.route("/flood.ts", Behavior::Flood { tag: 8 });
    let proxy = Proxy::start(|c| c.client_write_timeout = Duration::from_secs(1));
    let id = create_stream(proxy.addr, &upstream.url("/flood.ts"), &[]);

    let mut stream = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    stream.read_bytes(188 * 10).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || stream_entry(proxy.addr, &id)
            ["client_count"]
            == 0),
        "the silent player's session ended"
    );
    assert!(wait_until(Duration::from_secs(5), || upstream
        .open_connections()
        == 0));
    drop(stream);
}
