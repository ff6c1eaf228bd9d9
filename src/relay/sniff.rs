//! Judging what an upstream sent before the client is committed to it, pure: media,
//! a playlist (HLS behind a URL that did not say so), or an error page dressed as a 200.
//! Also MPEG-TS packet alignment, so a splice between sources starts on a packet.

use crate::hls::rewrite::looks_like_playlist;

/// MPEG-TS packets are 188 bytes and start with this sync byte.
pub const TS_PACKET: usize = 188;
const TS_SYNC: u8 = 0x47;

/// What the first bytes of a 2xx body are.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Media,
    Playlist,
    /// An HTML or short text body: a provider's error page, not a stream.
    NotMedia,
}

/// Classifies a body from its `Content-Type` and first bytes.
pub fn classify(content_type: Option<&str>, first: &[u8]) -> Verdict {
    let content_type = content_type.unwrap_or("").to_ascii_lowercase();
    if looks_like_playlist(first) {
        return Verdict::Playlist;
    }
    if content_type.contains("mpegurl") {
        return Verdict::Playlist;
    }
    if ts_sync_offset(first) == Some(0) {
        return Verdict::Media;
    }
    let textual = content_type.starts_with("text/") || content_type.contains("html");
    if textual || looks_like_markup(first) {
        return Verdict::NotMedia;
    }
    Verdict::Media
}

fn looks_like_markup(first: &[u8]) -> bool {
    let start = first
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(first.len());
    let rest = &first[start..];
    rest.first() == Some(&b'<')
        || rest
            .get(..4)
            .is_some_and(|t| t.eq_ignore_ascii_case(b"<htm"))
}

/// Where the first whole TS packet starts: a sync byte whose successor 188 bytes on is
/// also a sync byte (or lies past the data). `None` if the data holds no packet start.
pub fn ts_sync_offset(data: &[u8]) -> Option<usize> {
    let searchable = data.len().min(TS_PACKET * 4);
    (0..searchable).find(|&at| {
        data[at] == TS_SYNC && data.get(at + TS_PACKET).is_none_or(|next| *next == TS_SYNC)
    })
}

/// Whether data looks like an MPEG-TS stream (two sync bytes a packet apart).
pub fn is_transport_stream(data: &[u8]) -> bool {
    data.len() > TS_PACKET && ts_sync_offset(data) == Some(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(packets: usize) -> Vec<u8> {
        let mut data = vec![0u8; packets * TS_PACKET];
        for p in 0..packets {
            data[p * TS_PACKET] = TS_SYNC;
        }
        data
    }

    #[test]
    fn bodies_are_classified_by_content_and_type() {
        let cases: [(Option<&str>, &[u8], Verdict); 8] = [
            (Some("video/mp2t"), &ts(3), Verdict::Media),
            (Some("text/plain"), &ts(3), Verdict::Media),
            (
                Some("text/html"),
                b"<html>Provider busy, try later</html>",
                Verdict::NotMedia,
            ),
            (Some("text/plain"), b"NO SIGNAL", Verdict::NotMedia),
            (None, b"  <!DOCTYPE html>", Verdict::NotMedia),
            (
                Some("application/octet-stream"),
                b"#EXTM3U\n#EXTINF:1,\na.ts\n",
                Verdict::Playlist,
            ),
            (
                Some("application/vnd.apple.mpegurl"),
                b"\xEF\xBB\xBF#extm3u\n",
                Verdict::Playlist,
            ),
            (Some("video/mp4"), b"\0\0\0\x20ftypisom", Verdict::Media),
        ];
        for (content_type, body, expected) in cases {
            assert_eq!(classify(content_type, body), expected, "{content_type:?}");
        }
    }

    #[test]
    fn sync_offset_skips_a_partial_packet() {
        let mut data = vec![1u8, 2, 3];
        data.extend(ts(3));
        assert_eq!(ts_sync_offset(&data), Some(3));
        assert_eq!(ts_sync_offset(&ts(2)), Some(0));
        assert_eq!(ts_sync_offset(b"no sync here"), None);
        assert!(is_transport_stream(&ts(2)));
    }
}
