//! HLS segments, keys and init sections through the real server: byte ranges passed on
//! exactly, forged references refused before anything is fetched, failures that are
//! 502/504 and never an empty 200, the stream's headers on every upstream request, and
//! one client session per player, counted and ended after a silence.

mod common;

use std::time::{Duration, Instant};

use common::client::{get, open, request};
use common::hls::*;
use common::upstream::pattern_byte;
use common::*;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::json;

/// `target` with query parameter `name` set to `value`, or removed when `None`.
fn with_param(target: &str, name: &str, value: Option<&str>) -> String {
    let (path, query) = target.split_once('?').unwrap();
    let pairs: Vec<String> = query
        .split('&')
        .filter_map(|pair| match pair.split_once('=') {
            Some((n, _)) if n == name => value.map(|v| format!("{n}={v}")),
            _ => Some(pair.to_owned()),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

#[test]
fn byte_range_segments_forward_the_range_and_keep_the_206() {
    // Broke if: the player's Range was dropped or rewritten (the whole file fetched, or
    // refused by a CDN that insists on ranges), or a 206 came back as a 200.
    let upstream = FakeUpstream::start();
    let len = 300_000u64;
    let data: Vec<u8> = (0..len).map(pattern_byte).collect();
    let file = Behavior::File {
        data: std::sync::Arc::new(data.clone()),
        content_type: "video/mp4".into(),
        head_405: false,
        require_range: true,
    };
    upstream.route("/vod/movie.mp4", file);
    let text = lines(&[
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:6",
        "#EXT-X-PLAYLIST-TYPE:VOD",
        r#"#EXT-X-MAP:URI="movie.mp4",BYTERANGE="900@0""#,
        "#EXTINF:6.0,",
        "#EXT-X-BYTERANGE:120000@900",
        "movie.mp4",
        "#EXTINF:6.0,",
        "#EXT-X-BYTERANGE:98000",
        "movie.mp4",
        "#EXT-X-ENDLIST",
    ]);
    upstream.route("/vod/index.m3u8", playlist_answer(&text));
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/vod/index.m3u8"), &[]);

    let served = served_playlist(&proxy, &id);
    assert_eq!(restore(&served, &text), text, "BYTERANGE lines unchanged");
    let references = uris(&served);
    assert!(
        references.iter().all(|r| *r == references[0]),
        "one reference for one file"
    );

    let ranges = [(0, 899), (900, 120_899), (120_900, 218_899)];
    for (start, end) in ranges {
        let range = format!("bytes={start}-{end}");
        let target = target_of(&proxy, &references[0]);
        let answer = request(proxy.addr, "GET", &target, &[("Range", &range)], b"");
        assert_eq!(answer.status, 206, "{range}");
        assert_eq!(
            answer.header("content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str())
        );
        assert_eq!(
            answer.header("content-length"),
            Some((end - start + 1).to_string().as_str())
        );
        assert!(
            answer.body == data[start as usize..=end as usize],
            "{range}: the file's bytes"
        );
    }
    let forwarded: Vec<_> = upstream
        .hits("/vod/movie.mp4")
        .iter()
        .map(|s| s.header("range").map(str::to_owned))
        .collect();
    let sent: Vec<_> = ranges
        .iter()
        .map(|(s, e)| Some(format!("bytes={s}-{e}")))
        .collect();
    assert_eq!(
        forwarded, sent,
        "each Range forwarded exactly, and nothing without one"
    );
}

#[test]
fn forged_references_are_refused_without_touching_the_upstream_or_local_files() {
    // Broke if: the segment route fetched whatever `url=` named (an open proxy, or a
    // reader of local files), or accepted a reference issued for another stream or kind.
    let upstream = FakeUpstream::start();
    let master = lines(&["#EXTM3U", "#EXT-X-STREAM-INF:BANDWIDTH=1", "media.m3u8"]);
    for dir in ["/a", "/b"] {
        upstream.route(&format!("{dir}/master.m3u8"), playlist_answer(&master));
        upstream.route(
            &format!("{dir}/media.m3u8"),
            playlist_answer(&media_playlist(&["seg1.ts"])),
        );
    }
    upstream.route("/a/seg1.ts", bytes_answer(b"genuine", "video/mp2t"));
    upstream.route("/secret.ts", bytes_answer(b"secret", "video/mp2t"));
    let proxy = Proxy::start(|_| {});
    let a = create_stream(proxy.addr, &upstream.url("/a/master.m3u8"), &[]);
    let b = create_stream(proxy.addr, &upstream.url("/b/master.m3u8"), &[]);
    let variant = target_of(&proxy, &uris(&served_playlist(&proxy, &a))[0]);
    let segment = target_of(&proxy, &uris(&get(proxy.addr, &variant).text())[0]);
    let before = upstream.requests().len();

    let encoded = |url: &str| utf8_percent_encode(url, NON_ALPHANUMERIC).to_string();
    let sig = query_param(&segment, "sig").unwrap();
    let other_sig = format!(
        "{}{}",
        &sig[..sig.len() - 1],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    let forged = [
        (
            "another url with the same sig",
            with_param(&segment, "url", Some(&encoded(&upstream.url("/secret.ts")))),
        ),
        (
            "a changed sig",
            with_param(&segment, "sig", Some(&other_sig)),
        ),
        ("no sig", with_param(&segment, "sig", None)),
        ("no url", with_param(&segment, "url", None)),
        (
            "stream A's reference on stream B",
            segment.replacen(&format!("/hls/{a}/"), &format!("/hls/{b}/"), 1),
        ),
        (
            "a playlist reference on the segment route",
            variant.replacen("/playlist.m3u8?", "/segment.ts?", 1),
        ),
        (
            "a segment reference on the playlist route",
            segment.replacen("/segment.ts?", "/playlist.m3u8?", 1),
        ),
        (
            "a local file with a real sig",
            with_param(&segment, "url", Some(&encoded("file:///etc/passwd"))),
        ),
        (
            "a local file, unsigned",
            format!("/hls/{a}/segment.ts?url=file%3A%2F%2F%2Fetc%2Fpasswd&sig=&client_id=x"),
        ),
    ];
    for (name, target) in &forged {
        assert_ne!(target, &segment, "{name}: the forgery changed something");
        let answer = get(proxy.addr, target);
        assert_eq!(answer.status, 403, "{name}: {}", answer.text());
        assert!(
            answer.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with("Forbidden"),
            "{name}"
        );
        assert!(
            !answer.text().contains("root:"),
            "{name}: no local file read"
        );
    }
    assert_eq!(
        upstream.requests().len(),
        before,
        "no forged reference reached the upstream"
    );
    assert!(upstream.hits("/secret.ts").is_empty());
    assert_eq!(
        get(proxy.addr, &segment).body,
        b"genuine",
        "the genuine reference still works"
    );
}

#[test]
fn an_hls_session_is_one_client_with_its_segments_and_bytes_counted() {
    // Broke if: each segment request became a client of its own (one `client_connected`
    // per segment), or segments and bytes were not counted on the client and the stream.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/c/index.m3u8",
        playlist_answer(&media_playlist(&["s1.ts", "s2.ts", "s3.ts"])),
    );
    for (n, len) in [(1, 1000), (2, 2000), (3, 3000)] {
        upstream.route(
            &format!("/c/s{n}.ts"),
            Behavior::Pattern {
                len,
                content_type: "video/mp2t".into(),
            },
        );
    }
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/c/index.m3u8"), &[]);
    let player = [("User-Agent", "TestPlayer/1.0")];

    let served = request(
        proxy.addr,
        "GET",
        &format!("/hls/{id}/playlist.m3u8"),
        &player,
        b"",
    );
    let client = served.header("x-client-id").unwrap().to_owned();
    let references = uris(&served.text());
    for reference in &references {
        assert_eq!(
            query_param(reference, "client_id"),
            Some(client.as_str()),
            "the id travels in {reference}"
        );
        let answer = request(
            proxy.addr,
            "GET",
            &target_of(&proxy, reference),
            &player,
            b"",
        );
        assert_eq!(answer.status, 200);
    }
    let counted = wait_until(Duration::from_secs(5), || {
        stream_entry(proxy.addr, &id)["clients"][0]["segments_served"] == 3
    });
    let entry = stream_entry(proxy.addr, &id);
    assert!(counted, "{entry}");
    assert_eq!(entry["client_count"], 1, "one player, one client: {entry}");
    assert_eq!(entry["clients"][0]["client_id"], client.as_str());
    assert_eq!(entry["clients"][0]["bytes_served"], 6000);
    assert_eq!(entry["stream"]["total_segments_served"], 3);
    assert_eq!(entry["stream"]["total_bytes_served"], 6000);
}

#[test]
fn a_client_id_given_on_the_master_travels_in_every_rewritten_uri() {
    // Broke if: the player's own `client_id` was replaced by a derived one somewhere down
    // the master, variant and segment chain, splitting one player into several clients.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/m/master.m3u8",
        playlist_answer(&lines(&[
            "#EXTM3U",
            "#EXT-X-STREAM-INF:BANDWIDTH=1",
            "v.m3u8",
        ])),
    );
    upstream.route("/m/v.m3u8", playlist_answer(&media_playlist(&["s1.ts"])));
    upstream.route("/m/s1.ts", bytes_answer(b"segment", "video/mp2t"));
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/m/master.m3u8"), &[]);

    let master = get(
        proxy.addr,
        &format!("/hls/{id}/playlist.m3u8?client_id=tv-1"),
    );
    assert_eq!(master.header("x-client-id"), Some("tv-1"));
    let variant = uris(&master.text()).remove(0);
    assert_eq!(query_param(&variant, "client_id"), Some("tv-1"));
    // Some players change their User-Agent between requests; the id still holds them together.
    let media = request(
        proxy.addr,
        "GET",
        &target_of(&proxy, &variant),
        &[("User-Agent", "Other/2")],
        b"",
    );
    let segment = uris(&media.text()).remove(0);
    assert_eq!(query_param(&segment, "client_id"), Some("tv-1"));
    let answer = request(
        proxy.addr,
        "GET",
        &target_of(&proxy, &segment),
        &[("User-Agent", "Third/3")],
        b"",
    );
    assert_eq!(answer.status, 200);

    let entry = stream_entry(proxy.addr, &id);
    assert_eq!(entry["client_count"], 1, "{entry}");
    assert_eq!(entry["clients"][0]["client_id"], "tv-1");
}

#[test]
fn an_hls_client_ends_after_the_client_timeout_without_requests() {
    // Broke if: an HLS session never ended (no connection closes to tell), or ended while
    // the player was still reloading the playlist.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/t/index.m3u8",
        playlist_answer(&media_playlist(&["s1.ts"])),
    );
    let proxy = Proxy::start(|c| c.client_timeout = Duration::from_secs(2));
    let id = create_stream(proxy.addr, &upstream.url("/t/index.m3u8"), &[]);
    let playlist = format!("/hls/{id}/playlist.m3u8");

    // Reloads every 300 ms for longer than the timeout keep the session.
    for _ in 0..10 {
        assert_eq!(get(proxy.addr, &playlist).status, 200);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(stream_entry(proxy.addr, &id)["client_count"], 1);
    let quiet_since = Instant::now();
    assert!(wait_until(Duration::from_secs(15), || stream_entry(
        proxy.addr, &id
    )["client_count"]
        == 0));
    assert!(
        quiet_since.elapsed() >= Duration::from_millis(1500),
        "not before the timeout"
    );
}

#[test]
fn head_on_the_segment_route_answers_like_get_without_a_body() {
    // Broke if: a HEAD probe of a segment got 405, other headers than GET, a body, or
    // was counted as a segment served.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/h/index.m3u8",
        playlist_answer(&media_playlist(&["s1.ts"])),
    );
    upstream.route(
        "/h/s1.ts",
        Behavior::Pattern {
            len: 50_000,
            content_type: "video/mp2t".into(),
        },
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/h/index.m3u8"), &[]);
    let served = get(
        proxy.addr,
        &format!("/hls/{id}/playlist.m3u8?client_id=prober"),
    );
    let segment = target_of(&proxy, &uris(&served.text())[0]);

    for range in [None, Some("bytes=100-199")] {
        let range_line = range.map(|r| format!("Range: {r}\r\n")).unwrap_or_default();
        let raw = format!(
            "HEAD {segment} HTTP/1.1\r\nHost: {}\r\n{range_line}Connection: close\r\n\r\n",
            proxy.addr
        );
        let head = raw_exchange(&proxy, &raw);
        let (head, after) = head.split_once("\r\n\r\n").unwrap();
        let got = request(
            proxy.addr,
            "GET",
            &segment,
            &range.map(|r| ("Range", r)).into_iter().collect::<Vec<_>>(),
            b"",
        );
        assert!(
            head.starts_with(&format!("HTTP/1.1 {}", got.status)),
            "{range:?}: {head}"
        );
        for name in [
            "content-type",
            "content-length",
            "content-range",
            "accept-ranges",
        ] {
            assert_eq!(
                header_in(head, name).as_deref(),
                got.header(name),
                "{range:?}: {name}"
            );
        }
        assert_eq!(after, "", "{range:?}: no body after the head");
    }
    let counted = wait_until(Duration::from_secs(5), || {
        stream_entry(proxy.addr, &id)["clients"][0]["segments_served"] == 2
    });
    assert!(counted, "the two GETs are counted, the HEADs are not");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        stream_entry(proxy.addr, &id)["clients"][0]["segments_served"],
        2
    );
}

#[test]
fn segment_failures_before_the_first_byte_are_502_or_504_never_200() {
    // Broke if: a segment whose upstream failed before sending a byte reached the player
    // as a 200 with an empty or cut body, which players take for a good segment.
    let upstream = FakeUpstream::start();
    let status = |code: u16| Behavior::Status {
        status: code,
        headers: vec![],
        body: b"nope".to_vec(),
    };
    upstream.route("/e/404.ts", status(404));
    upstream.route("/e/503.ts", status(503));
    upstream.route("/e/reset.ts", Behavior::Reset);
    upstream.route("/e/empty.ts", bytes_answer(b"", "video/mp2t"));
    upstream.route(
        "/e/closed.ts",
        Behavior::Truncated {
            declared: 188 * 100,
            sent: 0,
            content_type: "video/mp2t".into(),
        },
    );
    upstream.route("/e/hang.ts", Behavior::Hang);
    let refused = "http://127.0.0.1:9/refused.ts";
    let segments = [
        "404.ts",
        "503.ts",
        "reset.ts",
        "empty.ts",
        "closed.ts",
        "hang.ts",
        refused,
    ];
    upstream.route("/e/index.m3u8", playlist_answer(&media_playlist(&segments)));
    let proxy = Proxy::start(|c| c.read_timeout = Duration::from_secs(1));
    let id = create_stream(proxy.addr, &upstream.url("/e/index.m3u8"), &[]);

    let expected = [502, 502, 502, 502, 502, 504, 502];
    for ((reference, segment), status) in uris(&served_playlist(&proxy, &id))
        .iter()
        .zip(segments)
        .zip(expected)
    {
        let answer = get(proxy.addr, &target_of(&proxy, reference));
        assert_eq!(answer.status, status, "{segment}");
        assert_eq!(
            answer.header("content-type"),
            Some("application/json"),
            "{segment}"
        );
        assert!(
            answer.json()["detail"]
                .as_str()
                .unwrap()
                .starts_with("Upstream unavailable"),
            "{segment}"
        );
    }
}

#[test]
fn a_segment_cut_short_upstream_is_cut_for_the_player_too() {
    // Broke if: a segment body that ended early was finished cleanly, so the player kept
    // a short segment instead of asking again.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/cut/s1.ts",
        Behavior::Truncated {
            declared: 1_000_000,
            sent: 400_000,
            content_type: "video/mp2t".into(),
        },
    );
    upstream.route(
        "/cut/index.m3u8",
        playlist_answer(&media_playlist(&["s1.ts"])),
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/cut/index.m3u8"), &[]);

    let segment = target_of(&proxy, &uris(&served_playlist(&proxy, &id))[0]);
    let mut answer = open(proxy.addr, "GET", &segment, &[], b"");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-length"), Some("1000000"));
    assert!(
        answer.read_all().is_err(),
        "the player can tell the body was cut"
    );
}

#[test]
fn compressed_segments_keep_their_encoding_with_their_bytes() {
    // Broke if: a segment passed through untouched (gzip WebVTT from a CDN that ignores
    // Accept-Encoding) lost its Content-Encoding, so the player got gzip bytes as text.
    use std::io::Write;
    let vtt = b"WEBVTT\n\n00:00.000 --> 00:04.000\nHello\n";
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(vtt).unwrap();
    let gzipped = encoder.finish().unwrap();
    let upstream = FakeUpstream::start();
    let headers = vec![
        ("Content-Type".to_owned(), "text/vtt".to_owned()),
        ("Content-Encoding".to_owned(), "gzip".to_owned()),
    ];
    upstream.route(
        "/sub/en-1.vtt",
        Behavior::Status {
            status: 200,
            headers,
            body: gzipped.clone(),
        },
    );
    upstream.route(
        "/sub/en.m3u8",
        playlist_answer(&media_playlist(&["en-1.vtt"])),
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/sub/en.m3u8"), &[]);

    let (answer, _) = follow(&proxy, &upstream, &uris(&served_playlist(&proxy, &id))[0]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-encoding"), Some("gzip"));
    assert_eq!(
        answer.header("content-length"),
        Some(gzipped.len().to_string().as_str())
    );
    assert_eq!(answer.body, gzipped);
}

#[test]
fn every_upstream_request_of_an_hls_stream_carries_its_user_agent_and_headers() {
    // Broke if: the stream's User-Agent, Referer and Origin reached the master but not a
    // variant, key, init section, segment or the host a redirect led to; or the player's
    // own User-Agent leaked upstream.
    let first_host = FakeUpstream::start();
    let cdn = FakeUpstream::start_on("127.0.0.2:0");
    let required = vec![
        (
            "User-Agent".to_owned(),
            "ExamplePlayer/2.1 (Linux)".to_owned(),
        ),
        ("Referer".to_owned(), "https://portal.test/".to_owned()),
        ("Origin".to_owned(), "https://portal.test".to_owned()),
    ];
    let guarded = |then: Behavior| Behavior::Require {
        headers: required.clone(),
        then: Box::new(then),
    };
    first_host.route(
        "/ch/9.m3u8",
        guarded(Behavior::Redirect {
            status: 302,
            location: cdn.url("/live/master.m3u8"),
        }),
    );
    cdn.route(
        "/live/master.m3u8",
        guarded(playlist_answer(&lines(&[
            "#EXTM3U",
            "#EXT-X-STREAM-INF:BANDWIDTH=1",
            "lo.m3u8",
        ]))),
    );
    let low = lines(&[
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:4",
        r#"#EXT-X-KEY:METHOD=AES-128,URI="k.key""#,
        r#"#EXT-X-MAP:URI="init.mp4""#,
        "#EXTINF:4.0,",
        "s1.m4s",
    ]);
    cdn.route("/live/lo.m3u8", guarded(playlist_answer(&low)));
    for path in ["/live/k.key", "/live/init.mp4", "/live/s1.m4s"] {
        cdn.route(
            path,
            guarded(bytes_answer(path.as_bytes(), "application/octet-stream")),
        );
    }
    let proxy = Proxy::start(|_| {});
    let id = create_stream_with(
        proxy.addr,
        json!({
            "url": first_host.url("/ch/9.m3u8"),
            "user_agent": "ExamplePlayer/2.1 (Linux)",
            "headers": { "Referer": "https://portal.test/", "Origin": "https://portal.test" },
        }),
    );
    let player = [("User-Agent", "VLC/3.0")];

    let master = request(
        proxy.addr,
        "GET",
        &format!("/hls/{id}/playlist.m3u8"),
        &player,
        b"",
    );
    assert_eq!(master.status, 200, "{}", master.text());
    let variant = request(
        proxy.addr,
        "GET",
        &target_of(&proxy, &uris(&master.text())[0]),
        &player,
        b"",
    );
    assert_eq!(variant.status, 200, "{}", variant.text());
    for reference in uris(&variant.text()) {
        let answer = request(
            proxy.addr,
            "GET",
            &target_of(&proxy, &reference),
            &player,
            b"",
        );
        assert_eq!(answer.status, 200, "{reference}: {}", answer.text());
    }
    let seen: Vec<_> = first_host
        .requests()
        .into_iter()
        .chain(cdn.requests())
        .collect();
    assert_eq!(
        seen.len(),
        6,
        "master, redirect target, variant, key, init, segment"
    );
    for request in &seen {
        for (name, value) in &required {
            assert_eq!(
                request.header(name),
                Some(value.as_str()),
                "{name} on {}",
                request.target
            );
        }
    }
}
