//! The REST API through the real server: every route's status codes and fields as the
//! compatibility contract has them, authentication on and off, validation errors, CORS,
//! HEAD, ROOT_PATH, the connection bound and malformed requests.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::client::{delete, get, open, request};
use common::*;
use m3u_proxy::registry::stream_id;
use serde_json::json;

#[test]
fn creating_a_stream_returns_its_md5_id_and_endpoints() {
    let proxy = Proxy::start(|_| {});
    let url = "http://upstream.test/live/1.ts";
    let answer = post_json(
        proxy.addr,
        "/streams",
        &json!({ "url": url, "metadata": { "channel_id": 42, "hd": true } }),
    );
    assert_eq!(answer.status, 200);
    let body = answer.json();
    assert_eq!(body["stream_id"], stream_id(url));
    assert_eq!(body["primary_url"], url);
    assert_eq!(body["stream_type"], "direct");
    assert_eq!(
        body["stream_endpoint"],
        format!("/stream/{}", stream_id(url))
    );
    assert_eq!(
        body["metadata"],
        json!({ "channel_id": "42", "hd": "True" })
    );
    assert_eq!(
        body["user_agent"],
        m3u_proxy::config::Config::defaults().default_user_agent
    );

    let again = post_json(proxy.addr, "/streams", &json!({ "url": url })).json();
    assert_eq!(
        again["stream_id"], body["stream_id"],
        "the same URL gives the same stream"
    );
    assert_eq!(get(proxy.addr, "/streams").json()["total"], 1);

    let hls = post_json(
        proxy.addr,
        "/streams",
        &json!({ "url": "http://cdn.test/live/index.m3u8" }),
    )
    .json();
    assert_eq!(hls["stream_type"], "hls");
    assert!(hls["stream_endpoint"]
        .as_str()
        .unwrap()
        .ends_with("/playlist.m3u8"));
}

#[test]
fn invalid_stream_bodies_are_422_naming_the_field() {
    let proxy = Proxy::start(|_| {});
    let cases = [
        (json!({}), "url"),
        (json!({ "url": "ftp://a.test/x" }), "url"),
        (
            json!({ "url": "http://a.test/x", "failover_urls": ["nope"] }),
            "failover_urls[0]",
        ),
        (
            json!({ "url": "http://a.test/x", "metadata": { "x": { "deep": 1 } } }),
            "metadata.x",
        ),
        (
            json!({ "url": "http://a.test/x", "headers": { "X-Bad": 5 } }),
            "headers.X-Bad",
        ),
    ];
    for (body, field) in cases {
        let answer = post_json(proxy.addr, "/streams", &body);
        assert_eq!(answer.status, 422, "{body}");
        let detail = answer.json()["detail"].as_str().unwrap().to_owned();
        assert!(detail.starts_with(field), "{body}: {detail}");
    }
    let not_json = request(proxy.addr, "POST", "/streams", &[], b"{not json");
    assert_eq!(not_json.status, 422);
    assert_eq!(
        get(proxy.addr, "/streams").json()["total"],
        0,
        "nothing was created"
    );
}

#[test]
fn stream_routes_show_look_up_and_delete() {
    let proxy = Proxy::start(|_| {});
    let id = create_stream_with(
        proxy.addr,
        json!({
            "url": "http://upstream.test/a.ts",
            "failover_urls": ["http://backup.test/a.ts"],
            "headers": { "Authorization": "Bearer provider-secret" },
        }),
    );

    let entry = stream_entry(proxy.addr, &id);
    let stream = &entry["stream"];
    for field in [
        "stream_id",
        "original_url",
        "current_url",
        "user_agent",
        "client_count",
        "total_bytes_served",
        "total_segments_served",
        "error_count",
        "is_active",
        "has_failover",
        "failover_urls",
        "current_failover_index",
        "failover_attempts",
        "last_failover_time",
        "stream_type",
        "created_at",
        "last_access",
        "metadata",
    ] {
        assert!(stream.get(field).is_some(), "stream entry lacks {field}");
    }
    assert_eq!(stream["has_failover"], true);
    assert_eq!(entry["client_count"], 0);
    let listing = get(proxy.addr, "/streams").text();
    assert!(
        !listing.contains("provider-secret"),
        "custom headers are never shown"
    );

    assert_eq!(get(proxy.addr, "/streams/nope").status, 404);
    assert_eq!(
        get(proxy.addr, "/streams/nope").json()["detail"],
        "Stream not found"
    );
    let deleted = delete(proxy.addr, &format!("/streams/{id}"));
    assert_eq!(deleted.json()["message"], format!("Stream {id} deleted"));
    assert_eq!(delete(proxy.addr, &format!("/streams/{id}")).status, 404);
}

#[test]
fn metadata_routes_find_and_delete_matching_streams() {
    let proxy = Proxy::start(|_| {});
    for n in 0..3 {
        create_stream_with(
            proxy.addr,
            json!({ "url": format!("http://u.test/{n}.ts"), "metadata": { "playlist": "p1", "channel_id": n } }),
        );
    }
    create_stream_with(
        proxy.addr,
        json!({ "url": "http://u.test/other.ts", "metadata": { "playlist": "p2" } }),
    );

    let all = get(
        proxy.addr,
        "/streams/by-metadata?field=playlist&value=p1&active_only=false",
    )
    .json();
    assert_eq!(all["total_matching"], 3);
    let active = get(proxy.addr, "/streams/by-metadata?field=playlist&value=p1").json();
    assert_eq!(active["total_matching"], 0, "active_only defaults to true");
    assert_eq!(get(proxy.addr, "/streams/by-metadata?value=p1").status, 422);

    let oldest = delete(
        proxy.addr,
        "/streams/oldest-by-metadata?field=playlist&value=p1",
    )
    .json();
    assert_eq!(oldest["deleted_count"], 1);
    let rest = delete(
        proxy.addr,
        "/streams/by-metadata?field=playlist&value=p1&exclude_channel_id=2",
    )
    .json();
    assert_eq!(rest["deleted_count"], 1, "channel 2 was excluded");
    assert_eq!(get(proxy.addr, "/streams").json()["total"], 2);
}

#[test]
fn status_routes_answer_with_their_fields() {
    let proxy = Proxy::start(|_| {});
    let root = get(proxy.addr, "/").json();
    assert_eq!(root["status"], "running");
    assert_eq!(root["version"], env!("CARGO_PKG_VERSION"));
    let health = get(proxy.addr, "/health").json();
    assert_eq!(health["status"], "healthy");
    assert!(health["uptime_seconds"].is_u64());
    let stats = get(proxy.addr, "/stats").json();
    for field in [
        "total_streams",
        "active_streams",
        "total_clients",
        "active_clients",
        "total_bytes_served",
        "total_segments_served",
        "uptime_seconds",
    ] {
        assert!(
            stats["proxy_stats"].get(field).is_some(),
            "stats lack {field}"
        );
    }
    for path in ["/stats/streams", "/stats/clients", "/clients", "/livez"] {
        assert_eq!(get(proxy.addr, path).status, 200, "{path}");
    }
}

#[test]
fn unknown_routes_and_methods_are_json_errors() {
    let proxy = Proxy::start(|_| {});
    let missing = get(proxy.addr, "/no/such/route");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), json!({ "detail": "Not Found" }));
    let wrong = request(proxy.addr, "PUT", "/streams", &[], b"");
    assert_eq!(wrong.status, 405);
    assert!(wrong.json()["detail"].is_string());
}

#[test]
fn the_token_guards_management_but_not_playback_or_liveness() {
    let proxy = Proxy::start(|c| c.api_token = Some("s3cret".into()));
    let missing = get(proxy.addr, "/streams");
    assert_eq!(missing.status, 401);
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    assert_eq!(
        missing.json()["detail"],
        "API token required. Provide token via X-API-Token header or api_token query parameter."
    );
    let wrong = request(
        proxy.addr,
        "GET",
        "/streams",
        &[("X-API-Token", "guess")],
        b"",
    );
    assert_eq!(wrong.status, 403);
    assert_eq!(wrong.json()["detail"], "Invalid API token");
    assert_eq!(
        request(
            proxy.addr,
            "GET",
            "/streams",
            &[("x-api-token", "s3cret")],
            b""
        )
        .status,
        200
    );
    assert_eq!(get(proxy.addr, "/streams?api_token=s3cret").status, 200);
    assert_eq!(
        request(
            proxy.addr,
            "GET",
            "/health?api_token=s3cret",
            &[("X-API-Token", "guess")],
            b""
        )
        .status,
        403,
        "a non-empty header wins"
    );

    assert_eq!(get(proxy.addr, "/livez").status, 200);
    assert_eq!(
        get(proxy.addr, "/stream/unknown").status,
        404,
        "playback asks for no token"
    );
    assert_eq!(get(proxy.addr, "/hls/unknown/playlist.m3u8").status, 404);
}

#[test]
fn cors_preflight_and_headers_allow_any_origin() {
    let proxy = Proxy::start(|_| {});
    let preflight = request(
        proxy.addr,
        "OPTIONS",
        "/streams",
        &[
            ("Origin", "http://dash.test"),
            ("Access-Control-Request-Method", "POST"),
        ],
        b"",
    );
    assert_eq!(preflight.status, 200);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        get(proxy.addr, "/health").header("access-control-allow-origin"),
        Some("*")
    );
}

#[test]
fn head_works_on_get_routes_without_a_body() {
    let proxy = Proxy::start(|_| {});
    for path in ["/", "/health", "/streams", "/stats"] {
        let get_answer = get(proxy.addr, path);
        let head = request(proxy.addr, "HEAD", path, &[], b"");
        assert_eq!(head.status, 200, "{path}");
        assert!(head.body.is_empty(), "{path}");
        assert_eq!(
            head.header("content-type"),
            get_answer.header("content-type"),
            "{path}"
        );
    }
}

#[test]
fn routes_answer_with_and_without_the_root_path() {
    let proxy = Proxy::start(|c| c.root_path = "/iptv".into());
    assert_eq!(get(proxy.addr, "/iptv/health").status, 200);
    assert_eq!(get(proxy.addr, "/health").status, 200);
    assert_eq!(get(proxy.addr, "/iptv").status, 200);
}

#[test]
fn connections_past_the_bound_get_a_clear_503() {
    let proxy = Proxy::start(|c| c.max_connections = 2);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(proxy.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let answer = get(proxy.addr, "/health");
    assert_eq!(answer.status, 503);
    assert!(answer.json()["detail"]
        .as_str()
        .unwrap()
        .contains("too many open connections"));
    drop(held);
    assert!(wait_until(Duration::from_secs(5), || get(
        proxy.addr, "/health"
    )
    .status
        == 200));
}

#[test]
fn a_malformed_request_gets_400_and_the_server_lives_on() {
    let proxy = Proxy::start(|_| {});
    for garbage in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nNo-Host-Header: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",
    ] {
        let mut socket = TcpStream::connect(proxy.addr).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        socket.write_all(garbage).unwrap();
        let mut reply = String::new();
        let _ = socket.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 400"), "{garbage:?}: {reply:?}");
    }
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(16 * 1024)
    );
    let mut socket = TcpStream::connect(proxy.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = socket.write_all(huge.as_bytes());
    let mut reply = String::new();
    let _ = socket.read_to_string(&mut reply);
    assert!(
        reply.starts_with("HTTP/1.1 400"),
        "oversized head: {reply:?}"
    );
    assert_eq!(get(proxy.addr, "/health").status, 200);
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_dropped() {
    let proxy = Proxy::start(|c| c.header_timeout = Duration::from_millis(500));
    let mut socket = TcpStream::connect(proxy.addr).unwrap();
    socket
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let _ = socket.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closed after the head timeout"
    );
}

#[test]
fn a_client_can_be_disconnected_through_the_api() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(1)));
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    let mut player = open(
        proxy.addr,
        "GET",
        &format!("/stream/{id}?client_id=kick-me"),
        &[],
        b"",
    );
    player.read_bytes(188 * 10).unwrap();

    let answer = delete(proxy.addr, &format!("/hls/{id}/clients/kick-me"));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let mut rest = Ok(vec![0u8]);
    for _ in 0..1000 {
        rest = player.read_bytes(188 * 100);
        if !matches!(&rest, Ok(bytes) if !bytes.is_empty()) {
            break;
        }
    }
    assert!(
        !matches!(rest, Ok(ref bytes) if !bytes.is_empty()),
        "the connection ended"
    );
    assert!(wait_until(Duration::from_secs(3), || stream_entry(
        proxy.addr, &id
    )["client_count"]
        == 0));
    assert_eq!(
        delete(proxy.addr, &format!("/hls/{id}/clients/kick-me")).status,
        404
    );
}

#[test]
fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(1)));
    // The entry the trusted proxy itself added is the last untrusted one; what the client
    // wrote to its left proves nothing, and trusted hops on the right are skipped.
    for (trusted, expected) in [(false, "127.0.0.1"), (true, "10.0.0.1")] {
        let proxy = Proxy::start(|c| {
            if trusted {
                c.trusted_proxies = vec![m3u_proxy::config::IpNet::parse("127.0.0.0/8").unwrap()];
            }
        });
        let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
        let mut player = open(
            proxy.addr,
            "GET",
            &format!("/stream/{id}"),
            &[("X-Forwarded-For", "192.0.2.7, 10.0.0.1, 127.0.0.9")],
            b"",
        );
        player.read_bytes(188).unwrap();
        let clients = stream_entry(proxy.addr, &id)["clients"].clone();
        assert_eq!(clients[0]["ip_address"], expected, "trusted: {trusted}");
    }
}
