//! HLS playlist rewriting through the real server: every URI of masters and media
//! playlists comes back as a proxy URL that leads to the right upstream path (after
//! redirects, dot-segments and odd queries, however the body was chunked), and every other
//! line is kept byte for byte. Neighbours: `hls_sources.rs` (fetching playlists),
//! `hls_urls.rs` (the base written), `hls_segments.rs` and `hls_player.rs`.

mod common;

use std::time::Duration;

use common::client::get;
use common::hls::*;
use common::*;

#[test]
fn master_renditions_and_iframe_playlists_all_play_through_the_proxy() {
    // Broke if: a URI attribute of the master was left pointing upstream, so a player
    // fetched audio, subtitles or I-frames directly and without the stream's headers.
    let upstream = FakeUpstream::start();
    let master = lines(&[
        "#EXTM3U",
        "#EXT-X-VERSION:6",
        "#EXT-X-INDEPENDENT-SEGMENTS",
        r#"#EXT-X-SESSION-DATA:DATA-ID="com.test.meta",URI="meta/info.json""#,
        r#"#EXT-X-SESSION-KEY:METHOD=AES-128,URI="keys/session.key""#,
        r#"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Main",LANGUAGE="en",DEFAULT=YES,AUTOSELECT=YES,URI="audio/en/index.m3u8""#,
        r#"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="aud",NAME="Alt",LANGUAGE="de",DEFAULT=NO,AUTOSELECT=YES,URI="audio/de/index.m3u8""#,
        r#"#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="sub",NAME="English",LANGUAGE="en",URI="subs/en.m3u8""#,
        r#"#EXT-X-MEDIA:TYPE=CLOSED-CAPTIONS,GROUP-ID="cc",NAME="CC1",INSTREAM-ID="CC1""#,
        r#"#EXT-X-STREAM-INF:BANDWIDTH=2000000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,AUDIO="aud",SUBTITLES="sub",CLOSED-CAPTIONS="cc""#,
        "video/720/index.m3u8",
        r#"#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=150000,RESOLUTION=1280x720,CODECS="avc1.64001f",URI="video/720/iframes.m3u8""#,
    ]);
    upstream.route("/show/master.m3u8", playlist_answer(&master));
    upstream.route(
        "/show/meta/info.json",
        bytes_answer(br#"{"title":"show"}"#, "application/json"),
    );
    upstream.route(
        "/show/keys/session.key",
        bytes_answer(KEY, "application/octet-stream"),
    );
    let renditions = [
        ("/show/audio/en/index.m3u8", "/show/audio/en/", "en-1.aac"),
        ("/show/audio/de/index.m3u8", "/show/audio/de/", "de-1.aac"),
        ("/show/subs/en.m3u8", "/show/subs/", "en-1.vtt"),
        ("/show/video/720/index.m3u8", "/show/video/720/", "v-1.ts"),
        ("/show/video/720/iframes.m3u8", "/show/video/720/", "i-1.ts"),
    ];
    for (path, dir, segment) in renditions {
        upstream.route(path, playlist_answer(&media_playlist(&[segment])));
        upstream.route(
            &format!("{dir}{segment}"),
            bytes_answer(segment.as_bytes(), "video/mp2t"),
        );
    }
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/show/master.m3u8"), &[]);

    let served = served_playlist(&proxy, &id);
    assert_eq!(
        restore(&served, &master),
        master,
        "attributes, quoting and the CC line unchanged"
    );
    let served_uris = uris(&served);
    let (direct, rendition_uris) = served_uris.split_at(2);
    for (uri, path) in direct
        .iter()
        .zip(["/show/meta/info.json", "/show/keys/session.key"])
    {
        let (answer, seen) = follow(&proxy, &upstream, uri);
        assert_eq!((answer.status, seen.target.as_str()), (200, path));
    }
    assert_eq!(follow(&proxy, &upstream, &direct[1]).0.body, KEY);

    // Renditions (in master order: en, de, subtitles, the variant, I-frames) are
    // rewritten playlists whose segments come through the proxy too.
    assert_eq!(rendition_uris.len(), renditions.len());
    for (uri, (path, dir, segment)) in rendition_uris.iter().zip(renditions) {
        let (answer, seen) = follow(&proxy, &upstream, uri);
        assert_eq!((answer.status, seen.target.as_str()), (200, path));
        assert_eq!(answer.header("content-type"), Some(PLAYLIST_TYPE), "{path}");
        let inner = uris(&answer.text());
        let (segment_answer, seen) = follow(&proxy, &upstream, &inner[0]);
        assert_eq!(seen.target, format!("{dir}{segment}"));
        assert_eq!(segment_answer.body, segment.as_bytes());
    }
}

#[test]
fn media_playlist_uris_are_all_rewritten_however_the_body_is_chunked() {
    // Broke if: a KEY line split across reads (or any buffered header) lost its rewrite,
    // so the key was fetched directly; or the output depended on the chunking.
    let upstream = FakeUpstream::start();
    let text = lines(&[
        "#EXTM3U",
        "#EXT-X-VERSION:7",
        "#EXT-X-TARGETDURATION:4",
        "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=3.0",
        "#EXT-X-PART-INF:PART-TARGET=1.0",
        "#EXT-X-MEDIA-SEQUENCE:100",
        r#"#EXT-X-KEY:METHOD=AES-128,URI="../../keys/k100.bin",IV=0x00000000000000000000000000000064"#,
        r#"#EXT-X-MAP:URI="init.mp4""#,
        "#EXTINF:4.0,",
        "seg100.m4s",
        r#"#EXT-X-PART:DURATION=1.0,URI="seg101.part0.m4s",INDEPENDENT=YES"#,
        r#"#EXT-X-PRELOAD-HINT:TYPE=PART,URI="seg101.part1.m4s""#,
        r#"#EXT-X-RENDITION-REPORT:URI="../480/index.m3u8",LAST-MSN=100,LAST-PART=0"#,
    ]);
    let mid_key = text.find("#EXT-X-KEY").unwrap() + 25;
    let whole = vec![(text.as_bytes().to_vec(), Duration::ZERO)];
    let bytewise: Vec<_> = text.bytes().map(|b| (vec![b], Duration::ZERO)).collect();
    let split_key = vec![
        (
            text.as_bytes()[..mid_key].to_vec(),
            Duration::from_millis(500),
        ),
        (text.as_bytes()[mid_key..].to_vec(), Duration::ZERO),
    ];
    let pieces = |pieces: &Vec<(Vec<u8>, Duration)>, chunked| Behavior::Pieces {
        content_type: PLAYLIST_TYPE.into(),
        pieces: pieces.clone(),
        chunked,
        headers: vec![],
    };
    let ways = [
        (&whole, false),
        (&bytewise, false),
        (&split_key, false),
        (&whole, true),
        (&bytewise, true),
        (&split_key, true),
    ];
    upstream.route(
        "/show/video/720/index.m3u8",
        Behavior::Sequence(ways.iter().map(|(p, c)| pieces(p, *c)).collect()),
    );
    let files: [(&str, &[u8]); 4] = [
        ("/show/keys/k100.bin", KEY),
        ("/show/video/720/init.mp4", b"init section"),
        ("/show/video/720/seg100.m4s", b"segment 100"),
        ("/show/video/720/seg101.part0.m4s", b"part 0"),
    ];
    for (path, body) in files {
        upstream.route(path, bytes_answer(body, "application/octet-stream"));
    }
    upstream.route(
        "/show/video/720/seg101.part1.m4s",
        bytes_answer(b"part 1", "video/mp4"),
    );
    upstream.route(
        "/show/video/480/index.m3u8",
        playlist_answer(&media_playlist(&["s.m4s"])),
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/show/video/720/index.m3u8"), &[]);

    // Three ways through the HLS route, then the same three through `/stream/{id}`,
    // which reads the first bytes ahead to tell a playlist from media.
    let first = served_playlist(&proxy, &id);
    assert_eq!(
        restore(&first, &text),
        text,
        "IV and every other attribute untouched"
    );
    for way in 1..ways.len() {
        let route = if way < 3 {
            format!("/hls/{id}/playlist.m3u8")
        } else {
            format!("/stream/{id}")
        };
        let answer = get(proxy.addr, &route);
        assert_eq!(answer.status, 200, "way {way}: {}", answer.text());
        assert_eq!(
            answer.text(),
            first,
            "way {way} ({route}) gives the same playlist"
        );
    }

    let served_uris = uris(&first);
    let expected: Vec<&str> = files
        .iter()
        .map(|(path, _)| *path)
        .chain([
            "/show/video/720/seg101.part1.m4s",
            "/show/video/480/index.m3u8",
        ])
        .collect();
    assert_eq!(served_uris.len(), expected.len());
    for (uri, path) in served_uris.iter().zip(&expected) {
        let (answer, seen) = follow(&proxy, &upstream, uri);
        assert_eq!((answer.status, seen.target.as_str()), (200, *path));
    }
    let (key, _) = follow(&proxy, &upstream, &served_uris[0]);
    assert_eq!(key.body, KEY, "the key itself, through the proxy");
    let (init, _) = follow(&proxy, &upstream, &served_uris[1]);
    assert_eq!(init.body, b"init section");
}

#[test]
fn relative_uris_after_a_cross_host_redirect_resolve_against_the_final_url() {
    // Broke if: relative URIs resolved against the URL first asked for, so variants,
    // keys and segments were requested under the redirecting host.
    let first_host = FakeUpstream::start();
    let cdn = FakeUpstream::start_on("127.0.0.2:0");
    first_host.route(
        "/ch/7.m3u8",
        Behavior::Redirect {
            status: 302,
            location: cdn.url("/live/x9/master.m3u8"),
        },
    );
    let master = lines(&[
        "#EXTM3U",
        "#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360",
        "lo/index.m3u8",
        "#EXT-X-STREAM-INF:BANDWIDTH=2500000,RESOLUTION=1280x720",
        "hi/index.m3u8?v=3",
    ]);
    let low = lines(&[
        "#EXTM3U",
        "#EXT-X-VERSION:3",
        "#EXT-X-TARGETDURATION:6",
        "#EXT-X-MEDIA-SEQUENCE:500",
        r#"#EXT-X-KEY:METHOD=AES-128,URI="k/500.key""#,
        "#EXTINF:6.0,",
        "s500.ts?m=17",
        "#EXTINF:6.0,",
        "s501.ts?m=17",
    ]);
    cdn.route("/live/x9/master.m3u8", playlist_answer(&master));
    cdn.route("/live/x9/lo/index.m3u8", playlist_answer(&low));
    cdn.route(
        "/live/x9/hi/index.m3u8",
        playlist_answer(&media_playlist(&["h.ts"])),
    );
    serve_tiny(
        &cdn,
        &[
            "/live/x9/lo/k/500.key",
            "/live/x9/lo/s500.ts",
            "/live/x9/lo/s501.ts",
        ],
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &first_host.url("/ch/7.m3u8"), &[]);

    let variants = uris(&served_playlist(&proxy, &id));
    let (low_answer, seen) = follow(&proxy, &cdn, &variants[0]);
    assert_eq!(seen.target, "/live/x9/lo/index.m3u8");
    assert_eq!(
        follow(&proxy, &cdn, &variants[1]).1.target,
        "/live/x9/hi/index.m3u8?v=3"
    );
    let expected = [
        "/live/x9/lo/k/500.key",
        "/live/x9/lo/s500.ts?m=17",
        "/live/x9/lo/s501.ts?m=17",
    ];
    for (uri, target) in uris(&low_answer.text()).iter().zip(expected) {
        let (answer, seen) = follow(&proxy, &cdn, uri);
        assert_eq!((answer.status, seen.target.as_str()), (200, target));
    }
    let first_requests: Vec<String> = first_host
        .requests()
        .into_iter()
        .map(|s| s.target)
        .collect();
    assert_eq!(
        first_requests,
        ["/ch/7.m3u8"],
        "the redirecting host is asked exactly once"
    );
}

#[test]
fn dot_segments_root_and_scheme_relative_uris_reach_the_right_upstream_paths() {
    // Broke if: `..`, `./`, `/root` or `//host` references were joined as text, so the
    // upstream saw `/../` in a path or the wrong host.
    let cdn = FakeUpstream::start();
    let edge = FakeUpstream::start_on("127.0.0.2:0");
    let scheme_relative = format!("//{}/acct/42/seg_3.ts", edge.addr);
    let text = lines(&[
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:4",
        r#"#EXT-X-KEY:METHOD=AES-128,URI="/drm/key?stream=ch42""#,
        "#EXTINF:4.0,",
        "../../42/video/240/seg_1.ts",
        "#EXTINF:4.0,",
        "./seg_2.ts",
        "#EXTINF:4.0,",
        &scheme_relative,
        "#EXTINF:4.0,",
        "../../../../../seg_4.ts",
    ]);
    cdn.route("/acct/42/manifest/v240.m3u8", playlist_answer(&text));
    serve_tiny(
        &cdn,
        &[
            "/drm/key",
            "/acct/42/video/240/seg_1.ts",
            "/acct/42/manifest/seg_2.ts",
            "/seg_4.ts",
        ],
    );
    serve_tiny(&edge, &["/acct/42/seg_3.ts"]);
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &cdn.url("/acct/42/manifest/v240.m3u8"), &[]);

    let served = uris(&served_playlist(&proxy, &id));
    let on_cdn = [
        (0, "/drm/key?stream=ch42"),
        (1, "/acct/42/video/240/seg_1.ts"),
        (2, "/acct/42/manifest/seg_2.ts"),
        (4, "/seg_4.ts"),
    ];
    for (at, target) in on_cdn {
        let (answer, seen) = follow(&proxy, &cdn, &served[at]);
        assert_eq!((answer.status, seen.target.as_str()), (200, target));
    }
    let (answer, seen) = follow(&proxy, &edge, &served[3]);
    assert_eq!(
        (answer.status, seen.target.as_str()),
        (200, "/acct/42/seg_3.ts"),
        "the scheme from the playlist, the host from the URI"
    );
    let all = cdn.requests().into_iter().chain(edge.requests());
    assert!(all
        .map(|s| s.target)
        .all(|t| !t.contains("/../") && !t.contains("/./")));
}

#[test]
fn child_uris_do_not_inherit_the_parent_query() {
    // Broke if: the playlist's `?token=` was glued onto relative children (RFC 3986 says
    // it is not), or merged into a child that has its own query.
    let upstream = FakeUpstream::start();
    let text = lines(&[
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:4",
        "#EXTINF:4.0,",
        "chunk_1.ts",
        "#EXTINF:4.0,",
        "chunk_2.ts?token=T2",
    ]);
    upstream.route("/live/5/index.m3u8", playlist_answer(&text));
    let refused = Behavior::Status {
        status: 403,
        headers: vec![],
        body: b"token required".to_vec(),
    };
    upstream.route("/live/5/chunk_1.ts", refused);
    serve_tiny(&upstream, &["/live/5/chunk_2.ts"]);
    let proxy = Proxy::start(|_| {});
    let id = create_stream(
        proxy.addr,
        &upstream.url("/live/5/index.m3u8?token=T1"),
        &[],
    );

    let served = uris(&served_playlist(&proxy, &id));
    let chunk_1 = get(proxy.addr, &target_of(&proxy, &served[0]));
    assert_eq!(chunk_1.status, 502, "the upstream's 403 shows as a failure");
    assert!(
        chunk_1.json()["detail"].as_str().unwrap().contains("403"),
        "{}",
        chunk_1.text()
    );
    let asked: Vec<String> = upstream
        .hits("/live/5/chunk_1.ts")
        .into_iter()
        .map(|s| s.target)
        .collect();
    assert!(
        !asked.is_empty() && asked.iter().all(|t| t == "/live/5/chunk_1.ts"),
        "{asked:?}"
    );
    let (answer, seen) = follow(&proxy, &upstream, &served[1]);
    assert_eq!(
        (answer.status, seen.target.as_str()),
        (200, "/live/5/chunk_2.ts?token=T2")
    );
}

#[test]
fn playlists_keep_every_line_they_do_not_rewrite() {
    // Broke if: rewriting dropped, reordered or respelled a tag (MEDIA-SEQUENCE, a second
    // KEY, vendor tags, lower-case tags, CRLF), took a tag line for a URI, or touched
    // `skd:`/`data:` keys that belong to the player.
    let upstream = FakeUpstream::start();
    let absolute = |path: &str| upstream.url(path);
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        (
            "BC-07 non-HTTP keys and METHOD=NONE",
            lines(&[
                "#EXTM3U",
                "#EXT-X-TARGETDURATION:4",
                r#"#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://asset-77?variant=av",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1""#,
                r#"#EXT-X-KEY:METHOD=SAMPLE-AES,URI="data:text/plain;base64,QUJDRA==",KEYFORMAT="urn:uuid:edef8ba9-79d6-4ace-a3c8-27dcd51d21ed",KEYFORMATVERSIONS="1""#,
                "#EXT-X-KEY:METHOD=NONE",
                "#EXTINF:4.0,",
                "s1.ts",
            ]),
            vec!["/bc07/s1.ts"],
        ),
        (
            "BC-09 URI after other tags, blank lines, comments, CRLF",
            [
                "#EXTM3U",
                "#EXT-X-TARGETDURATION:6",
                "#EXT-X-MEDIA-SEQUENCE:3000",
                r#"#EXT-X-MAP:URI="init.mp4""#,
                "",
                "## packager v9 comment",
                "#EXTINF:6.000,",
                "#EXT-X-PROGRAM-DATE-TIME:2030-01-01T00:00:00.000Z",
                "#EXT-X-BITRATE:2100",
                "seg3000.m4s",
                "",
                "#EXT-X-DISCONTINUITY",
                "#EXT-X-CUE-OUT:DURATION=30",
                "#EXTINF:6.000,",
                "seg3001.m4s",
                "",
            ]
            .join("\r\n"),
            vec!["/bc09/init.mp4", "/bc09/seg3000.m4s", "/bc09/seg3001.m4s"],
        ),
        (
            "BC-10a master after a blank line",
            lines(&[
                "#EXTM3U",
                "",
                "#EXT-X-STREAM-INF:BANDWIDTH=1",
                "low.m3u8",
                "#EXT-X-STREAM-INF:BANDWIDTH=2",
                "mid.m3u8",
            ]),
            vec!["/bc10a/low.m3u8", "/bc10a/mid.m3u8"],
        ),
        (
            "BC-10b orphan STREAM-INF",
            lines(&[
                "#EXTM3U",
                "#EXT-X-STREAM-INF:BANDWIDTH=6500000",
                "#EXT-X-STREAM-INF:BANDWIDTH=3700000",
                &absolute("/v/a.m3u8"),
                "#EXT-X-STREAM-INF:BANDWIDTH=2000000",
                &absolute("/v/b.m3u8"),
            ]),
            vec!["/v/a.m3u8", "/v/b.m3u8"],
        ),
        (
            "BC-13 tags in any case keep their spelling",
            lines(&[
                "#extm3u",
                "#ext-x-targetduration:4",
                r#"#ext-x-key:METHOD=AES-128,uri="k.key""#,
                "#extinf:4,",
                "#Ext-X-Vendor-Note:http://vendor.test/not-a-uri",
                "seg1.ts",
                r#"#EXT-x-Map:URI="init.mp4""#,
                "#EXTINF:4,",
                "seg2.ts",
            ]),
            vec![
                "/bc13/k.key",
                "/bc13/seg1.ts",
                "/bc13/init.mp4",
                "/bc13/seg2.ts",
            ],
        ),
        (
            "BC-18 media: vendor tags, early KEY, two KEYs, MAP with BYTERANGE",
            lines(&[
                "#EXTM3U",
                "#EXT-X-VERSION:7",
                "#EXT-X-TARGETDURATION:6",
                r#"#EXT-X-KEY:METHOD=AES-128,URI="k1.key",KEYFORMAT="identity""#,
                r#"#EXT-X-KEY:METHOD=SAMPLE-AES,URI="k2.key",KEYFORMAT="com.example",KEYFORMATVERSIONS="1""#,
                "#EXT-X-MEDIA-SEQUENCE:77",
                r#"#EXT-X-MAP:URI="main.mp4",BYTERANGE="720@0""#,
                r#"#EXT-X-DATERANGE:ID="ad1",START-DATE="2030-01-01T00:00:00Z",X-AD-URL="http://ads.test/x""#,
                "#EXT-X-CUE-OUT-CONT:ElapsedTime=5,Duration=30,SCTE35=/DAlAAAA",
                "#EXT-X-VENDOR-FOO:1",
                "#EXTINF:6.0,",
                "#EXT-X-BYTERANGE:10000@720",
                "main.mp4",
                "#EXTINF:6.0,",
                "#EXT-X-BYTERANGE:10000",
                "main.mp4",
            ]),
            vec![
                "/bc18/k1.key",
                "/bc18/k2.key",
                "/bc18/main.mp4",
                "/bc18/main.mp4",
                "/bc18/main.mp4",
            ],
        ),
        (
            "BC-18 master: out-of-spec FORCED on AUDIO",
            lines(&[
                "#EXTM3U",
                r#"#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="a",NAME="x",FORCED=NO,URI="a.m3u8""#,
                r#"#EXT-X-STREAM-INF:BANDWIDTH=1,AUDIO="a""#,
                "v.m3u8",
            ]),
            vec!["/bc18m/a.m3u8", "/bc18m/v.m3u8"],
        ),
    ];
    let proxy = Proxy::start(|_| {});
    let base = format!("http://{}/", proxy.addr);

    for (name, text, expected) in &cases {
        let path = format!("{}/index.m3u8", expected[0].rsplit_once('/').unwrap().0);
        upstream.route(&path, playlist_answer(text));
        serve_tiny(&upstream, expected);
        let id = create_stream(proxy.addr, &upstream.url(&path), &[]);
        let served = served_playlist(&proxy, &id);
        assert_eq!(restore(&served, text), *text, "{name}: only URIs change");

        let (proxied, kept): (Vec<_>, Vec<_>) = uris(&served)
            .into_iter()
            .zip(uris(text))
            .partition(|(s, _)| s.starts_with(&base));
        assert!(
            kept.iter().all(|(s, o)| s == o),
            "{name}: non-HTTP URIs are left as written"
        );
        assert_eq!(proxied.len(), expected.len(), "{name}: {served}");
        for ((uri, _), target) in proxied.iter().zip(expected) {
            let (answer, seen) = follow(&proxy, &upstream, uri);
            assert_eq!(
                (answer.status, seen.target.as_str()),
                (200, *target),
                "{name}"
            );
            assert!(
                !seen.target.contains("#EXT"),
                "{name}: a tag line never becomes a URI"
            );
        }
    }
}

#[test]
fn upstream_queries_reach_the_upstream_byte_for_byte() {
    // Broke if: a URL was decoded or re-encoded on the way (`%2B` turned into `+`, `+`
    // into a space, empty or repeated parameters dropped or reordered).
    let upstream = FakeUpstream::start();
    let master = lines(&[
        "#EXTM3U",
        "#EXT-X-STREAM-INF:BANDWIDTH=1",
        "v/index.m3u8?auth=x%2By+z&=&a=&a=b&a=c&flag",
    ]);
    let media = lines(&[
        "#EXTM3U",
        "#EXT-X-TARGETDURATION:4",
        r#"#EXT-X-KEY:METHOD=AES-128,URI="k.key?t=%2F%3D+%26&t=""#,
        "#EXTINF:4.0,",
        "s/1.ts?token=a%2Bb+c&empty=&x=1&x=2&x=1",
        "#EXTINF:4.0,",
        "s/a%2Bb+c/2.ts?q=%252B",
    ]);
    upstream.route("/q/master.m3u8", playlist_answer(&master));
    upstream.route("/q/v/index.m3u8", playlist_answer(&media));
    serve_tiny(
        &upstream,
        &["/q/v/k.key", "/q/v/s/1.ts", "/q/v/s/a%2Bb+c/2.ts"],
    );
    let proxy = Proxy::start(|_| {});
    let source = "/q/master.m3u8?token=a%2Bb+c&empty=&x=1&x=2";
    let id = create_stream(proxy.addr, &upstream.url(source), &[]);

    let variant = uris(&served_playlist(&proxy, &id)).remove(0);
    assert_eq!(upstream.hits("/q/master.m3u8")[0].target, source);
    let (answer, seen) = follow(&proxy, &upstream, &variant);
    assert_eq!(
        seen.target,
        "/q/v/index.m3u8?auth=x%2By+z&=&a=&a=b&a=c&flag"
    );
    let expected = [
        "/q/v/k.key?t=%2F%3D+%26&t=",
        "/q/v/s/1.ts?token=a%2Bb+c&empty=&x=1&x=2&x=1",
        "/q/v/s/a%2Bb+c/2.ts?q=%252B",
    ];
    for (uri, target) in uris(&answer.text()).iter().zip(expected) {
        assert_eq!(follow(&proxy, &upstream, uri).1.target, target);
    }
}
