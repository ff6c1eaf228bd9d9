//! Black-box checks of the real binary, also run against cross-built binaries under qemu
//! (`M3U_PROXY_BIN` names the binary, `M3U_PROXY_RUNNER` an optional command before it,
//! e.g. `qemu-mipsel-static`): flags, start-up, a live TS, an HLS playlist, a webhook
//! delivery and a clean shutdown on SIGTERM.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::client::{get, open};
use common::*;
use serde_json::json;

fn binary() -> Command {
    let bin = std::env::var("M3U_PROXY_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_m3u-proxy").to_owned());
    match std::env::var("M3U_PROXY_RUNNER")
        .ok()
        .filter(|r| !r.is_empty())
    {
        Some(runner) => {
            let mut command = Command::new(runner);
            command.arg(bin);
            command
        }
        None => Command::new(bin),
    }
}

/// Emulated binaries start slowly; these bounds are generous on purpose.
const START_LIMIT: Duration = Duration::from_secs(60);

struct Running {
    child: Child,
    addr: std::net::SocketAddr,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Running {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let state = proxy::fresh_state_file();
    let mut command = binary();
    command
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--state-file",
        ])
        .arg(&state)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("start the binary");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let up = wait_until(START_LIMIT, || std::net::TcpStream::connect(addr).is_ok());
    assert!(up, "the binary did not start listening");
    Running { child, addr }
}

#[test]
fn help_and_version_print_and_exit_zero() {
    let help = binary().arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--live-chunk-timeout-seconds"));
    let version = binary().arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("m3u-proxy {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_invalid_setting_stops_start_up_with_one_line_naming_it() {
    let output = binary().arg("--port").arg("eighty").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--port") && stderr.contains("eighty"),
        "{stderr}"
    );

    let output = binary().env("LOG_LEVEL", "loud").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("LOG_LEVEL"));
}

/// A one-shot webhook receiver: the first POST body it gets is sent on the channel.
fn receiver() -> (String, mpsc::Receiver<serde_json::Value>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let mut out = stream;
            let _ =
                out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if let Ok(event) = serde_json::from_slice(&body) {
                let _ = tx.send(event);
            }
        }
    });
    (url, rx)
}

#[test]
fn the_binary_serves_streams_delivers_a_webhook_and_stops_cleanly_on_sigterm() {
    let upstream = FakeUpstream::start();
    upstream.route("/live.ts", Behavior::Live(Live::new(1)));
    let playlist = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg1.ts\n#EXT-X-ENDLIST\n";
    upstream.route(
        "/hls/index.m3u8",
        Behavior::Status {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "application/vnd.apple.mpegurl".into(),
            )],
            body: playlist.into(),
        },
    );
    upstream.route(
        "/hls/seg1.ts",
        Behavior::Status {
            status: 200,
            headers: vec![("Content-Type".into(), "video/mp2t".into())],
            body: ts::packet(9, 0).to_vec(),
        },
    );
    let mut proxy = start(&[]);
    let (hook, events) = receiver();
    let added = post_json(
        proxy.addr,
        "/webhooks",
        &json!({ "url": hook, "events": ["stream_started"] }),
    );
    assert_eq!(added.status, 200, "{}", added.text());

    let id = create_stream(proxy.addr, &upstream.url("/live.ts"), &[]);
    let event = events
        .recv_timeout(START_LIMIT)
        .expect("a webhook delivery");
    assert_eq!(event["event_type"], "stream_started");
    assert_eq!(event["stream_id"], id.as_str());
    let mut live = open(proxy.addr, "GET", &format!("/stream/{id}"), &[], b"");
    let packets = ts::packets(&live.read_bytes(188 * 100).unwrap()).unwrap();
    assert_eq!(packets.len(), 100);
    drop(live);

    let hls = create_stream(proxy.addr, &upstream.url("/hls/index.m3u8"), &[]);
    let served = get(proxy.addr, &format!("/hls/{hls}/playlist.m3u8")).text();
    let segment = served
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .expect("a segment line");
    let target = segment
        .split_once(&proxy.addr.to_string())
        .expect("a proxy URL")
        .1;
    let fetched = get(proxy.addr, target);
    assert_eq!(fetched.body, ts::packet(9, 0).to_vec());

    let pid = proxy.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let exited = wait_until(START_LIMIT, || {
        matches!(proxy.child.try_wait(), Ok(Some(_)))
    });
    assert!(exited, "the proxy stops after SIGTERM");
    let status = proxy.child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    let mut stderr = String::new();
    proxy
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("stream_stopped"),
        "shutdown ends the streams: {stderr}"
    );
}
