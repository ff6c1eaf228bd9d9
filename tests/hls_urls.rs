//! The base of the URLs written into rewritten playlists, through the real server: the
//! `Host` the client used, a trusted reverse proxy's forwarded headers (and only a trusted
//! one's), a configured public base URL, and `ROOT_PATH`.

mod common;

use common::client::request_as;
use common::hls::*;
use common::*;
use m3u_proxy::config::IpNet;

/// The served playlist of `id` as a client reaching the proxy as `host` sees it.
fn playlist_seen_as(proxy: &Proxy, id: &str, host: &str, headers: &[(&str, &str)]) -> String {
    let answer = request_as(
        proxy.addr,
        host,
        "GET",
        &format!("/hls/{id}/playlist.m3u8"),
        headers,
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    answer.text()
}

fn all_start_with(playlist: &str, prefix: &str) -> bool {
    let found = uris(playlist);
    !found.is_empty() && found.iter().all(|u| u.starts_with(prefix))
}

#[test]
fn rewritten_urls_use_the_host_the_client_used() {
    // Broke if: URLs were built from the listening address (or a guessed interface), so a
    // player that came by name or by IPv6 was sent somewhere it cannot reach.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/h/index.m3u8",
        playlist_answer(&media_playlist(&["seg1.ts"])),
    );
    serve_tiny(&upstream, &["/h/seg1.ts"]);
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/h/index.m3u8"), &[]);

    let direct = playlist_seen_as(&proxy, &id, &proxy.addr.to_string(), &[]);
    assert!(
        all_start_with(&direct, &format!("http://{}/hls/{id}/", proxy.addr)),
        "{direct}"
    );
    let by_name = playlist_seen_as(&proxy, &id, "tv.lan:8080", &[]);
    assert!(
        all_start_with(&by_name, &format!("http://tv.lan:8080/hls/{id}/")),
        "{by_name}"
    );
    let by_ipv6 = playlist_seen_as(&proxy, &id, "[::1]:8080", &[]);
    assert!(
        all_start_with(&by_ipv6, &format!("http://[::1]:8080/hls/{id}/")),
        "brackets kept: {by_ipv6}"
    );

    // The same reference works whichever name it was written with.
    let segment =
        uris(&by_name)[0].replacen("http://tv.lan:8080", &format!("http://{}", proxy.addr), 1);
    assert_eq!(follow(&proxy, &upstream, &segment).0.status, 200);
}

#[test]
fn forwarded_headers_are_believed_only_from_trusted_proxies() {
    // Broke if: any client could choose the host written into playlists (and its own
    // address) with X-Forwarded-* headers, or a trusted reverse proxy's were ignored.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/f/index.m3u8",
        playlist_answer(&media_playlist(&["seg1.ts"])),
    );
    serve_tiny(&upstream, &["/f/seg1.ts"]);
    let forwarded = [
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "tv.example.test"),
        ("X-Forwarded-Prefix", "/iptv"),
        ("X-Forwarded-For", "192.168.1.50"),
        ("User-Agent", "BehindProxy/1"),
    ];
    let trusting = Proxy::start(|c| c.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()]);
    let distrusting =
        Proxy::start(|c| c.trusted_proxies = vec![IpNet::parse("10.0.0.0/8").unwrap()]);

    for (proxy, prefix, client_ip) in [
        (
            &trusting,
            "https://tv.example.test/iptv/hls/".to_owned(),
            "192.168.1.50",
        ),
        (
            &distrusting,
            format!("http://{}/hls/", distrusting.addr),
            "127.0.0.1",
        ),
    ] {
        let id = create_stream(proxy.addr, &upstream.url("/f/index.m3u8"), &[]);
        let served = playlist_seen_as(proxy, &id, &proxy.addr.to_string(), &forwarded);
        assert!(all_start_with(&served, &prefix), "{served}");
        let clients = stream_entry(proxy.addr, &id)["clients"].clone();
        assert_eq!(clients[0]["ip_address"], client_ip);
    }
}

#[test]
fn a_public_base_url_overrides_host_and_forwarded_headers() {
    // Broke if: a configured public URL lost to the Host header or to a trusted proxy's
    // forwarded host, or ROOT_PATH was left out of the URLs written.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/p/index.m3u8",
        playlist_answer(&media_playlist(&["seg1.ts"])),
    );
    serve_tiny(&upstream, &["/p/seg1.ts"]);
    let fixed = Proxy::start(|c| {
        c.public_base_url = Some("https://tv.example/iptv".parse().unwrap());
        c.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()];
    });
    let id = create_stream(fixed.addr, &upstream.url("/p/index.m3u8"), &[]);
    let forwarded = [
        ("X-Forwarded-Host", "other.test"),
        ("X-Forwarded-Proto", "http"),
    ];
    let served = playlist_seen_as(&fixed, &id, "tv.lan:8080", &forwarded);
    assert!(
        all_start_with(&served, &format!("https://tv.example/iptv/hls/{id}/")),
        "{served}"
    );

    let rooted = Proxy::start(|c| c.root_path = "/tv".into());
    let id = create_stream(rooted.addr, &upstream.url("/p/index.m3u8"), &[]);
    let served = playlist_seen_as(&rooted, &id, &rooted.addr.to_string(), &[]);
    assert!(
        all_start_with(&served, &format!("http://{}/tv/hls/{id}/", rooted.addr)),
        "{served}"
    );
    assert_eq!(
        follow(&rooted, &upstream, &uris(&served)[0]).0.status,
        200,
        "the prefixed URL plays"
    );
}

// Bug in src/server/mod.rs (`Incoming::base_url`): `X-Forwarded-Proto` and
// `X-Forwarded-Prefix` are read only inside `if let Some(host) = x-forwarded-host`, so
// without that header a trusted proxy's scheme is dropped. The host should fall back to
// `Host`, with proto and prefix applied either way.
#[test]
fn a_trusted_proxys_forwarded_proto_counts_without_a_forwarded_host() {
    // Broke if: behind a TLS reverse proxy that passes `Host` on and adds only
    // `X-Forwarded-Proto: https` (nginx's usual setup), playlists named `http://` URLs.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/fp/index.m3u8",
        playlist_answer(&media_playlist(&["seg1.ts"])),
    );
    let proxy = Proxy::start(|c| c.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()]);
    let id = create_stream(proxy.addr, &upstream.url("/fp/index.m3u8"), &[]);

    let served = playlist_seen_as(
        &proxy,
        &id,
        "tv.example.test",
        &[("X-Forwarded-Proto", "https")],
    );
    assert!(
        all_start_with(&served, &format!("https://tv.example.test/hls/{id}/")),
        "{served}"
    );
}

// Bug in src/server/mod.rs (`Incoming::base_url`): the whole `X-Forwarded-Host` value is
// used as the host. It should take the first comma-separated entry (trimmed), as
// `client_ip` already does for `X-Forwarded-For`; likewise for `X-Forwarded-Proto`.
#[test]
fn the_first_of_several_forwarded_hosts_is_the_one_written() {
    // Broke if: a chain of proxies (`X-Forwarded-Host: a, b`) put the whole list into
    // the URLs, which no player can fetch.
    let upstream = FakeUpstream::start();
    upstream.route(
        "/fh/index.m3u8",
        playlist_answer(&media_playlist(&["seg1.ts"])),
    );
    let proxy = Proxy::start(|c| c.trusted_proxies = vec![IpNet::parse("127.0.0.1").unwrap()]);
    let id = create_stream(proxy.addr, &upstream.url("/fh/index.m3u8"), &[]);

    let forwarded = [
        ("X-Forwarded-Host", "tv.example.test, inner.lan"),
        ("X-Forwarded-Proto", "https"),
    ];
    let served = playlist_seen_as(&proxy, &id, &proxy.addr.to_string(), &forwarded);
    assert!(
        all_start_with(&served, &format!("https://tv.example.test/hls/{id}/")),
        "{served}"
    );
}
