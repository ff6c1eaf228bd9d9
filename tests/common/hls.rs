//! HLS test support: playlists built from lines and served as a fake upstream answers,
//! the URIs of a served playlist, the golden diff that puts the upstream's URIs back, and
//! following a proxy URL to see which request it caused upstream. Proxy URLs are never
//! taken apart: a test learns where one leads by fetching it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::client::{get, Answer};
use super::proxy::Proxy;
use super::upstream::{Behavior, FakeUpstream, Seen};

pub const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

/// The 16-byte AES-128 key the committed `hls-aes` media is encrypted with.
pub const KEY: &[u8; 16] = b"0123456789abcdef";

/// `lines` joined with `\n`, ending with one.
pub fn lines(lines: &[&str]) -> String {
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// A media playlist of 4-second segments.
pub fn media_playlist(segments: &[&str]) -> String {
    let mut text = lines(&["#EXTM3U", "#EXT-X-TARGETDURATION:4"]);
    for segment in segments {
        text.push_str(&lines(&["#EXTINF:4.0,", segment]));
    }
    text
}

/// Routes each target's path (the fake upstream routes by path, so a query is ignored) to
/// a tiny body that works both as a playlist and as a segment.
pub fn serve_tiny(upstream: &FakeUpstream, targets: &[&str]) {
    for target in targets {
        let path = target.split('?').next().unwrap();
        upstream.route(path, playlist_answer(&media_playlist(&["tiny.ts"])));
    }
}

/// A 200 with `body` as an HLS playlist, with its length.
pub fn playlist_answer(body: &str) -> Behavior {
    bytes_answer(body.as_bytes(), PLAYLIST_TYPE)
}

/// A 200 with `body` and `content_type`, with its length.
pub fn bytes_answer(body: &[u8], content_type: &str) -> Behavior {
    let headers = vec![("Content-Type".to_owned(), content_type.to_owned())];
    Behavior::Status {
        status: 200,
        headers,
        body: body.to_vec(),
    }
}

/// Every URI of a playlist in order: URI lines, and `URI="..."` values in tags (any case).
pub fn uris(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        if !line.starts_with('#') {
            found.push(line.to_owned());
            continue;
        }
        // Upper-casing ASCII keeps byte offsets, so positions found in it index `line`.
        let upper = line.to_ascii_uppercase();
        let mut from = 0;
        while let Some(at) = upper[from..].find("URI=\"") {
            let start = from + at;
            let value = start + "URI=\"".len();
            let Some(len) = line[value..].find('"') else {
                break;
            };
            if line[..start].ends_with([':', ',']) {
                found.push(line[value..value + len].to_owned());
            }
            from = value + len + 1;
        }
    }
    found
}

/// `served` with each of its URIs replaced, in order, by the URI at the same place in
/// `original`. When only URIs were rewritten, this gives back `original` byte for byte.
pub fn restore(served: &str, original: &str) -> String {
    let (served_uris, original_uris) = (uris(served), uris(original));
    assert_eq!(
        served_uris.len(),
        original_uris.len(),
        "as many URIs as the upstream's:\n{served}"
    );
    let mut out = String::with_capacity(original.len());
    let mut rest = served;
    for (uri, upstream) in served_uris.iter().zip(&original_uris) {
        let at = rest.find(uri.as_str()).expect("URIs appear in order");
        out.push_str(&rest[..at]);
        out.push_str(upstream);
        rest = &rest[at + uri.len()..];
    }
    out.push_str(rest);
    out
}

/// The request target of a URL the proxy wrote, after checking that it points at this
/// proxy as the test reached it.
pub fn target_of(proxy: &Proxy, uri: &str) -> String {
    let base = format!("http://{}/", proxy.addr);
    assert!(
        uri.starts_with(&base),
        "not a URL of the proxy at {}: {uri}",
        proxy.addr
    );
    uri[base.len() - 1..].to_owned()
}

/// Fetches a URL the proxy wrote and returns the answer with the one request it caused
/// on `upstream`.
pub fn follow(proxy: &Proxy, upstream: &FakeUpstream, uri: &str) -> (Answer, Seen) {
    let before = upstream.requests().len();
    let answer = get(proxy.addr, &target_of(proxy, uri));
    let seen = upstream.requests().split_off(before);
    assert_eq!(
        seen.len(),
        1,
        "{uri} (answered {}): one upstream request, saw {seen:?}",
        answer.status
    );
    (answer, seen.into_iter().next().unwrap())
}

/// The served playlist of `/hls/{id}/playlist.m3u8`, checked to be one.
pub fn served_playlist(proxy: &Proxy, id: &str) -> String {
    let answer = get(proxy.addr, &format!("/hls/{id}/playlist.m3u8"));
    assert_eq!(answer.status, 200, "playlist of {id}: {}", answer.text());
    assert_eq!(answer.header("content-type"), Some(PLAYLIST_TYPE));
    answer.text()
}

/// The value of query parameter `name` in a URL the proxy wrote (`client_id`, `url`, `sig`
/// are the documented parameters of its references).
pub fn query_param<'a>(uri: &'a str, name: &str) -> Option<&'a str> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// Sends `raw` on a fresh connection and reads until the proxy closes it (send
/// `Connection: close`): shows whether anything follows a head, as after a HEAD.
pub fn raw_exchange(proxy: &Proxy, raw: &str) -> String {
    let mut socket = TcpStream::connect(proxy.addr).expect("connect to proxy");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    socket.write_all(raw.as_bytes()).unwrap();
    let mut all = Vec::new();
    socket
        .read_to_end(&mut all)
        .expect("the proxy closes the connection");
    String::from_utf8_lossy(&all).into_owned()
}

/// A header's value in a raw response head.
pub fn header_in(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}
