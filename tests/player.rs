//! A real player reads what the proxy serves: ffprobe (from Debian's ffmpeg package)
//! must find the streams of a live MPEG-TS and of an MP4 file played through the proxy.

mod common;

use std::sync::Arc;

use common::player::ffprobe_streams;
use common::*;

#[test]
fn ffprobe_reads_a_live_ts_through_the_proxy() {
    if !have_tool("ffprobe", "ffmpeg") {
        return;
    }
    let upstream = FakeUpstream::start();
    upstream.route(
        "/live/channel.ts",
        Behavior::LiveMedia {
            data: Arc::new(media("live.ts")),
            rate: 100_000,
        },
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/live/channel.ts"), &[]);

    let streams = ffprobe_streams(&proxy.url(&format!("/stream/{id}")));
    assert!(streams.contains("h264,video"), "{streams}");
    assert!(streams.contains("aac,audio"), "{streams}");
}

#[test]
fn ffprobe_reads_an_mp4_file_through_the_proxy() {
    if !have_tool("ffprobe", "ffmpeg") {
        return;
    }
    let upstream = FakeUpstream::start();
    let data = Arc::new(media("vod.mp4"));
    upstream.route(
        "/movie.mp4",
        Behavior::File {
            data,
            content_type: "video/mp4".into(),
            head_405: false,
            require_range: false,
        },
    );
    let proxy = Proxy::start(|_| {});
    let id = create_stream(proxy.addr, &upstream.url("/movie.mp4"), &[]);

    let streams = ffprobe_streams(&proxy.url(&format!("/stream/{id}")));
    assert!(streams.contains("h264,video"), "{streams}");
}
