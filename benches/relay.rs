//! Relay benchmark, printing figures rather than asserting them: throughput of one live
//! stream read straight from a local upstream and through the proxy (the ratio), the
//! proxy's resident memory idle and with 100 connected clients, and the gap a client
//! sees when its source fails and the proxy switches to the backup.
//!
//! Run: `cargo bench --bench relay` (the proxy is the release binary, run as a child).

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::client::open;
use common::*;

/// How long each throughput run reads.
const READ_FOR: Duration = Duration::from_secs(3);

fn main() {
    let upstream = FakeUpstream::start();
    upstream.route("/flood.ts", Behavior::Flood { tag: 1 });
    let proxy = ProxyProcess::start();
    let id = create_stream(proxy.addr, &upstream.url("/flood.ts"), &[]);

    let direct = throughput(upstream.addr, "/flood.ts");
    let cpu_before = proxy.cpu_seconds();
    let relayed = throughput(proxy.addr, &format!("/stream/{id}"));
    let cpu = proxy.cpu_seconds() - cpu_before;
    let gib = relayed * READ_FOR.as_secs_f64() / (1u64 << 30) as f64;
    println!("throughput direct from upstream: {:.1} MB/s", direct / 1e6);
    println!(
        "throughput through the proxy:    {:.1} MB/s (ratio {:.2})",
        relayed / 1e6,
        relayed / direct
    );
    println!("proxy CPU time per GiB relayed: {:.2} s", cpu / gib);

    std::thread::sleep(Duration::from_millis(500));
    let idle = proxy.rss_kib();
    let (extra, per_client) = rss_with_clients(&proxy, &upstream, 100);
    println!("proxy RSS idle: {idle} KiB");
    println!("proxy RSS with 100 clients: {extra} KiB ({per_client:.1} KiB per extra client)");

    let gaps = failover_gaps(&proxy, &upstream, 20);
    println!(
        "failover gap over {} switches: median {:.1} ms, worst {:.1} ms",
        gaps.len(),
        gaps[gaps.len() / 2],
        gaps[gaps.len() - 1]
    );
}

/// Bytes per second read from `path` for [`READ_FOR`].
fn throughput(addr: SocketAddr, path: &str) -> f64 {
    let mut stream = open(addr, "GET", path, &[], b"");
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    let mut total = 0usize;
    while started.elapsed() < READ_FOR {
        total += stream.read(&mut buf).expect("read");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// RSS with `n` clients each reading a slow live stream, and the growth per client.
fn rss_with_clients(proxy: &ProxyProcess, upstream: &FakeUpstream, n: usize) -> (u64, f64) {
    upstream.route(
        "/slow.ts",
        Behavior::Live(Live {
            rate: 40_000,
            ..Live::new(2)
        }),
    );
    let id = create_stream(proxy.addr, &upstream.url("/slow.ts"), &[]);
    let before = proxy.rss_kib();
    let readers: Vec<_> = (0..n)
        .map(|i| {
            let addr = proxy.addr;
            let path = format!("/stream/{id}?client_id=bench{i}");
            std::thread::spawn(move || {
                let mut stream = open(addr, "GET", &path, &[], b"");
                let mut buf = [0u8; 4096];
                let until = Instant::now() + Duration::from_secs(4);
                while Instant::now() < until && stream.read(&mut buf).is_ok_and(|n| n > 0) {}
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let with = proxy.rss_kib();
    for reader in readers {
        let _ = reader.join();
    }
    (with, (with.saturating_sub(before)) as f64 / n as f64)
}

/// Milliseconds between the last byte of a source that closes and the first byte of
/// its backup, as one client sees them, over `n` switches.
fn failover_gaps(proxy: &ProxyProcess, upstream: &FakeUpstream, n: usize) -> Vec<f64> {
    upstream.route(
        "/backup.ts",
        Behavior::Live(Live {
            rate: 5_000_000,
            ..Live::new(4)
        }),
    );
    let mut gaps: Vec<f64> = (0..n)
        .map(|i| {
            let path = format!("/dies{i}.ts");
            upstream.route(
                &path,
                Behavior::Live(Live {
                    rate: 5_000_000,
                    close_after: Some(188 * 2000),
                    ..Live::new(3)
                }),
            );
            let id = create_stream(
                proxy.addr,
                &upstream.url(&path),
                &[upstream.url("/backup.ts")],
            );
            one_gap(proxy.addr, &id)
        })
        .collect();
    gaps.sort_by(|a, b| a.total_cmp(b));
    gaps
}

fn one_gap(addr: SocketAddr, id: &str) -> f64 {
    let mut stream = open(addr, "GET", &format!("/stream/{id}"), &[], b"");
    let mut buf = vec![0u8; 188 * 64];
    let mut carry = Vec::new();
    let mut last_primary = Instant::now();
    loop {
        let n = stream.read(&mut buf).expect("read");
        let now = Instant::now();
        carry.extend_from_slice(&buf[..n]);
        let whole = carry.len() - carry.len() % 188;
        let packets = ts::packets(&carry[..whole]).expect("aligned");
        carry.drain(..whole);
        if packets.iter().any(|(tag, _)| *tag == 4) {
            return (now - last_primary).as_secs_f64() * 1000.0;
        }
        if !packets.is_empty() {
            last_primary = now;
        }
    }
}

/// The release binary as a child process, so its memory can be read from /proc.
struct ProxyProcess {
    child: Child,
    addr: SocketAddr,
}

impl ProxyProcess {
    fn start() -> ProxyProcess {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_m3u-proxy"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--log-level",
                "warning",
                "--live-chunk-timeout-seconds",
                "1",
                "--state-file",
            ])
            .arg(proxy::fresh_state_file())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the proxy binary");
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(wait_until(Duration::from_secs(10), || TcpStream::connect(
            addr
        )
        .is_ok()));
        ProxyProcess { child, addr }
    }

    /// User plus system CPU seconds the proxy has used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after the last ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or("")
            .split_whitespace()
            .collect();
        let ticks: f64 = fields
            .get(11..13)
            .map(|t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum())
            .unwrap_or(0.0);
        ticks / 100.0
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
