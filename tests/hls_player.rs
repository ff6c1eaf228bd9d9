//! Real players read HLS through the proxy: ffmpeg decodes the committed plain and
//! AES-128 HLS cuts (playlist, key and segments all fetched through the proxy) and
//! ffprobe finds their H.264 video. The tools come from Debian's ffmpeg package; the
//! continuous-stream equivalents are in `player.rs`.

mod common;

use std::sync::Arc;

use common::hls::*;
use common::player::{ffprobe_streams, run_bounded};
use common::*;

/// Serves a committed HLS directory (`hls` or `hls-aes`) at `/{dir}/` on a fake upstream:
/// its playlist, and each file it names (segments, and the key for `hls-aes`).
fn serve_media_dir(upstream: &FakeUpstream, dir: &str) {
    let playlist = String::from_utf8(media(&format!("{dir}/index.m3u8"))).unwrap();
    upstream.route(&format!("/{dir}/index.m3u8"), playlist_answer(&playlist));
    for name in uris(&playlist) {
        let content_type = if name.ends_with(".ts") {
            "video/mp2t"
        } else {
            "application/octet-stream"
        };
        let file = Behavior::File {
            data: Arc::new(media(&format!("{dir}/{name}"))),
            content_type: content_type.into(),
            head_405: false,
            require_range: false,
        };
        upstream.route(&format!("/{dir}/{name}"), file);
    }
}

/// Plays `dir` through the proxy with ffmpeg and probes it with ffprobe.
fn play_through_the_proxy(dir: &str) -> (FakeUpstream, Proxy, String) {
    let upstream = FakeUpstream::start();
    serve_media_dir(&upstream, dir);
    let proxy = Proxy::start(|_| {});
    let id = create_stream(
        proxy.addr,
        &upstream.url(&format!("/{dir}/index.m3u8")),
        &[],
    );
    let url = proxy.url(&format!("/hls/{id}/playlist.m3u8"));

    let decoded = run_bounded(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "warning",
            "-rw_timeout",
            "30000000",
            "-i",
            &url,
            "-t",
            "3",
            "-f",
            "null",
            "-",
        ],
    );
    // The HLS demuxer skips a segment it cannot fetch with a warning and still exits 0;
    // the committed media decodes without any, so every line on stderr is a failure.
    let errors = String::from_utf8_lossy(&decoded.stderr);
    assert!(
        decoded.status.success() && errors.is_empty(),
        "ffmpeg {url}: {errors}"
    );
    let streams = ffprobe_streams(&url);
    assert!(
        streams.contains("h264,video"),
        "ffprobe found no H.264 video: {streams}"
    );
    (upstream, proxy, id)
}

#[test]
fn ffmpeg_decodes_hls_played_through_the_proxy() {
    // Broke if: what a real demuxer needs (rewritten segment URLs it accepts, whole
    // segments, keep-alive between them) went wrong where the unit tests cannot see it.
    if !have_tool("ffmpeg", "ffmpeg") {
        return;
    }
    let (upstream, proxy, id) = play_through_the_proxy("hls");

    assert!(
        !upstream.hits("/hls/seg2.ts").is_empty(),
        "three seconds need the third segment"
    );
    let served = stream_entry(proxy.addr, &id)["stream"]["total_segments_served"]
        .as_u64()
        .unwrap();
    assert!(served >= 3, "segments were served by the proxy ({served})");
}

#[test]
fn ffmpeg_decodes_aes_128_hls_with_the_key_fetched_through_the_proxy() {
    // Broke if: the key URI was left pointing upstream or its bytes changed on the way,
    // so decryption failed or bypassed the proxy.
    if !have_tool("ffmpeg", "ffmpeg") {
        return;
    }
    assert_eq!(media("hls-aes/key.bin"), KEY, "the committed key");
    let (upstream, proxy, id) = play_through_the_proxy("hls-aes");

    assert!(
        !upstream.hits("/hls-aes/key.bin").is_empty(),
        "the key was fetched through the proxy"
    );
    let served = served_playlist(&proxy, &id);
    let key_uri = uris(&served).remove(0);
    assert_eq!(follow(&proxy, &upstream, &key_uri).0.body, KEY);
}
