//! References written into rewritten playlists, pure: the upstream URL travels
//! percent-encoded exactly once in `url=`, with an HMAC-SHA256 `sig=` binding it to the
//! stream and to what it points at, so the segment route fetches only URLs that came
//! from that stream's own playlists and is no open proxy.

use hmac::{Hmac, Mac};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::Sha256;

use super::rewrite::UriKind;

/// Everything but RFC 3986 unreserved characters is escaped, so `+`, `&`, `=` and `%`
/// inside the upstream URL can never be read as our own query syntax.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Hex digits of the signature kept: 128 bits, far beyond guessing over HTTP.
const SIGNATURE_HEX: usize = 32;

/// What a reference was issued for; a segment reference cannot fetch a playlist.
fn kind_label(kind: UriKind) -> &'static str {
    match kind {
        UriKind::Playlist => "playlist",
        UriKind::Media => "media",
    }
}

/// Builds `{base}/hls/{stream}/{route}?url=..&sig=..&client_id=..` for `upstream`.
pub fn write(
    key: &[u8; 32],
    base: &str,
    stream_id: &str,
    client_id: &str,
    upstream: &str,
    kind: UriKind,
) -> String {
    let route = match kind {
        UriKind::Playlist => "playlist.m3u8".to_owned(),
        UriKind::Media => format!("segment.{}", extension_of(upstream)),
    };
    let url = utf8_percent_encode(upstream, COMPONENT);
    let sig = sign(key, stream_id, kind, upstream);
    let client = utf8_percent_encode(client_id, COMPONENT);
    format!("{base}/hls/{stream_id}/{route}?url={url}&sig={sig}&client_id={client}")
}

/// Decodes a reference's raw `url` value and checks its `sig`; `None` when either is
/// missing or forged.
pub fn read(
    key: &[u8; 32],
    stream_id: &str,
    kind: UriKind,
    raw_url: &str,
    sig: &str,
) -> Option<String> {
    let upstream = percent_decode_str(raw_url).decode_utf8().ok()?.into_owned();
    let expected = sign(key, stream_id, kind, &upstream);
    constant_time_eq(expected.as_bytes(), sig.as_bytes()).then_some(upstream)
}

fn sign(key: &[u8; 32], stream_id: &str, kind: UriKind, upstream: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    for part in [stream_id, kind_label(kind), upstream] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    let digest = mac.finalize().into_bytes();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..SIGNATURE_HEX].to_owned()
}

/// The upstream path's extension when it is short and plain (`ts`, `m4s`, `aac`), so
/// players that check extensions see the real one; `ts` otherwise.
fn extension_of(upstream: &str) -> &str {
    let path = upstream.split(['?', '#']).next().unwrap_or("");
    let last = path.rsplit('/').next().unwrap_or("");
    match last.rsplit_once('.') {
        Some((_, ext))
            if (1..=5).contains(&ext.len()) && ext.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            ext
        }
        _ => "ts",
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 32] = [7; 32];

    fn query_value<'a>(reference: &'a str, name: &str) -> &'a str {
        let query = reference.split_once('?').unwrap().1;
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
            .unwrap()
    }

    #[test]
    fn upstream_urls_come_back_byte_for_byte() {
        let tricky = [
            "http://cdn.test/a/seg.ts?token=a%2Bb+c&empty=&x=1&x=2",
            "https://cdn.test/p/77?type=video&rendition=720p&sig=%3D%3D",
            "http://[::1]:8080/live/ü/seg 1.ts",
        ];
        for upstream in tricky {
            let reference = write(
                &KEY,
                "http://proxy.lan:8085",
                "s1",
                "client_1",
                upstream,
                UriKind::Media,
            );
            let (raw, sig) = (
                query_value(&reference, "url"),
                query_value(&reference, "sig"),
            );
            assert_eq!(
                read(&KEY, "s1", UriKind::Media, raw, sig).as_deref(),
                Some(upstream)
            );
        }
    }

    #[test]
    fn forged_or_misused_references_are_refused() {
        let upstream = "http://cdn.test/seg1.ts";
        let reference = write(&KEY, "http://p", "s1", "c", upstream, UriKind::Media);
        let (raw, sig) = (
            query_value(&reference, "url"),
            query_value(&reference, "sig"),
        );
        assert!(
            read(&KEY, "s2", UriKind::Media, raw, sig).is_none(),
            "another stream"
        );
        assert!(
            read(&KEY, "s1", UriKind::Playlist, raw, sig).is_none(),
            "another kind"
        );
        assert!(
            read(&[8; 32], "s1", UriKind::Media, raw, sig).is_none(),
            "another key"
        );
        assert!(read(&KEY, "s1", UriKind::Media, "http%3A%2F%2Fevil.test%2F", sig).is_none());
    }

    #[test]
    fn segment_routes_keep_plain_extensions() {
        assert_eq!(extension_of("http://c/x/seg100.m4s?a=b"), "m4s");
        assert_eq!(extension_of("http://c/x/init.mp4"), "mp4");
        assert_eq!(extension_of("http://c/x/chunk?id=5"), "ts");
        assert_eq!(extension_of("http://c/x/file.very-long-ext"), "ts");
    }
}
