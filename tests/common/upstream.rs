//! A programmable fake upstream: an HTTP/1.1 server on 127.0.0.1 that answers each path
//! with the behaviour a test gave it (status codes, redirects, files with real Range
//! support, endless live TS at a set rate that can stall or close, hangs, resets), and
//! records every request and how many connections are open.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::ts;

/// What a path answers.
#[derive(Clone)]
pub enum Behavior {
    /// A fixed answer.
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// `status` with `Location`.
    Redirect { status: u16, location: String },
    /// A file with Range support. `head_405` answers HEAD with 405 and an error body;
    /// `require_range` answers 403 to any request without `Range`.
    File {
        data: Arc<Vec<u8>>,
        content_type: String,
        head_405: bool,
        require_range: bool,
    },
    /// A file of `len` bytes whose byte `i` is `pattern_byte(i)`, never held in memory.
    Pattern { len: u64, content_type: String },
    /// Endless synthetic TS of source `tag`, `rate` bytes a second, optionally stalling
    /// (socket open, no bytes) or closing after a number of bytes, and starting `skip`
    /// bytes into the stream (a partial first packet).
    Live(Live),
    /// Synthetic TS of source `tag` as fast as the reader takes it (benchmarks).
    Flood { tag: u8 },
    /// Loops real media (a committed .ts file) at about `rate` bytes a second.
    LiveMedia { data: Arc<Vec<u8>>, rate: u64 },
    /// Declares `declared` bytes, sends `sent` of them, closes.
    Truncated {
        declared: u64,
        sent: u64,
        content_type: String,
    },
    /// Accepts and reads the request, then never answers.
    Hang,
    /// Resets the connection after reading the request.
    Reset,
    /// The body written in pieces with pauses (chunked when `chunked`).
    Pieces {
        content_type: String,
        pieces: Vec<(Vec<u8>, Duration)>,
        chunked: bool,
        headers: Vec<(String, String)>,
    },
    /// Answers 461 unless the request carries these exact headers, then behaves as `then`.
    Require {
        headers: Vec<(String, String)>,
        then: Box<Behavior>,
    },
    /// Waits before behaving as the inner one.
    Delay(Duration, Box<Behavior>),
    /// The n-th request gets the n-th behaviour; the last one repeats.
    Sequence(Vec<Behavior>),
}

#[derive(Clone)]
pub struct Live {
    pub tag: u8,
    pub rate: u64,
    pub stall_after: Option<u64>,
    pub close_after: Option<u64>,
    pub skip: usize,
}

impl Live {
    /// Source `tag` at 1 MB/s, never failing.
    pub fn new(tag: u8) -> Live {
        Live {
            tag,
            rate: 1_000_000,
            stall_after: None,
            close_after: None,
            skip: 0,
        }
    }
}

/// A request as the upstream saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Shared {
    routes: Mutex<HashMap<String, (Behavior, usize)>>,
    seen: Mutex<Vec<Seen>>,
    open: AtomicUsize,
    stop: AtomicBool,
}

/// The running fake upstream; it stops when dropped.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl FakeUpstream {
    pub fn start() -> FakeUpstream {
        Self::start_on("127.0.0.1:0")
    }

    /// Starts on a given loopback address (e.g. `127.0.0.2:0` for a second host).
    pub fn start_on(addr: &str) -> FakeUpstream {
        let listener = TcpListener::bind(addr).expect("bind fake upstream");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        let accept_shared = shared.clone();
        thread::spawn(move || accept_loop(listener, accept_shared));
        FakeUpstream { addr, shared }
    }

    /// The absolute URL of `path` (which may carry a query) on this upstream.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sets what `path` (without query) answers.
    pub fn route(&self, path: &str, behavior: Behavior) {
        self.shared
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), (behavior, 0));
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }

    /// Requests seen for `path`.
    pub fn hits(&self, path: &str) -> Vec<Seen> {
        self.requests()
            .into_iter()
            .filter(|s| s.path == path)
            .collect()
    }

    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = shared.clone();
        shared.open.fetch_add(1, Ordering::SeqCst);
        thread::spawn(move || {
            let _ = serve(stream, &shared);
            shared.open.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn serve(stream: TcpStream, shared: &Shared) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let Some(seen) = read_request(&mut reader)? else {
            return Ok(());
        };
        shared.seen.lock().unwrap().push(seen.clone());
        let behavior = next_behavior(shared, &seen.path);
        let keep_alive = respond(&mut out, &seen, behavior, shared)?;
        if !keep_alive {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn next_behavior(shared: &Shared, path: &str) -> Behavior {
    let mut routes = shared.routes.lock().unwrap();
    let Some((behavior, count)) = routes.get_mut(path) else {
        return Behavior::Status {
            status: 404,
            headers: vec![],
            body: b"no such path".to_vec(),
        };
    };
    *count += 1;
    match behavior {
        Behavior::Sequence(list) => list[(*count - 1).min(list.len() - 1)].clone(),
        other => other.clone(),
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Seen>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let path = target.split('?').next().unwrap_or("").to_owned();
    Ok(Some(Seen {
        method,
        target,
        path,
        headers,
    }))
}

fn head(out: &mut TcpStream, status: u16, headers: &[(String, String)]) -> std::io::Result<()> {
    let mut text = format!("HTTP/1.1 {status} Fake\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    out.write_all(text.as_bytes())
}

fn pairs(list: &[(&str, String)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.clone()))
        .collect()
}

/// Answers one request; true if the connection may serve another.
fn respond(
    out: &mut TcpStream,
    seen: &Seen,
    behavior: Behavior,
    shared: &Shared,
) -> std::io::Result<bool> {
    let is_head = seen.method == "HEAD";
    match behavior {
        Behavior::Status {
            status,
            headers,
            body,
        } => {
            let mut headers = headers;
            if !headers.iter().any(|(n, _)| {
                n.eq_ignore_ascii_case("content-length")
                    || n.eq_ignore_ascii_case("transfer-encoding")
            }) {
                headers.push(("Content-Length".into(), body.len().to_string()));
            }
            head(out, status, &headers)?;
            if !is_head {
                out.write_all(&body)?;
            }
            Ok(false)
        }
        Behavior::Redirect { status, location } => {
            head(
                out,
                status,
                &pairs(&[("Location", location), ("Content-Length", "0".into())]),
            )?;
            Ok(false)
        }
        Behavior::File {
            data,
            content_type,
            head_405,
            require_range,
        } => {
            if is_head && head_405 {
                let body = b"Method Not Allowed";
                head(
                    out,
                    405,
                    &pairs(&[("Content-Length", body.len().to_string())]),
                )?;
                out.write_all(body)?;
                return Ok(false);
            }
            if require_range && seen.header("range").is_none() {
                head(out, 403, &pairs(&[("Content-Length", "0".into())]))?;
                return Ok(false);
            }
            let len = data.len() as u64;
            serve_ranged(out, seen, len, &content_type, |start, end, out| {
                out.write_all(&data[start as usize..=end as usize])
            })
        }
        Behavior::Pattern { len, content_type } => {
            serve_ranged(out, seen, len, &content_type, |start, end, out| {
                let mut buf = vec![0u8; 64 * 1024];
                let mut at = start;
                while at <= end {
                    let n = ((end - at + 1) as usize).min(buf.len());
                    for (i, b) in buf[..n].iter_mut().enumerate() {
                        *b = pattern_byte(at + i as u64);
                    }
                    out.write_all(&buf[..n])?;
                    at += n as u64;
                }
                Ok(())
            })
        }
        Behavior::Live(live) => serve_live(out, is_head, live, shared),
        Behavior::Flood { tag } => {
            head(out, 200, &pairs(&[("Content-Type", "video/mp2t".into())]))?;
            let block: Vec<u8> = (0..ts::PACKET as u64 * 348)
                .map(|i| ts::byte_at(tag, i))
                .collect();
            while !shared.stop.load(Ordering::SeqCst) {
                out.write_all(&block)?;
            }
            Ok(false)
        }
        Behavior::LiveMedia { data, rate } => {
            head(out, 200, &pairs(&[("Content-Type", "video/mp2t".into())]))?;
            if is_head {
                return Ok(false);
            }
            let chunk = (rate / 20).max(188) as usize;
            let mut at = 0;
            while !shared.stop.load(Ordering::SeqCst) {
                let end = (at + chunk).min(data.len());
                out.write_all(&data[at..end])?;
                at = if end == data.len() { 0 } else { end };
                thread::sleep(Duration::from_millis(50));
            }
            Ok(false)
        }
        Behavior::Truncated {
            declared,
            sent,
            content_type,
        } => {
            head(
                out,
                200,
                &pairs(&[
                    ("Content-Type", content_type),
                    ("Content-Length", declared.to_string()),
                    ("Accept-Ranges", "bytes".into()),
                ]),
            )?;
            if !is_head {
                let body: Vec<u8> = (0..sent).map(pattern_byte).collect();
                out.write_all(&body)?;
            }
            Ok(false)
        }
        Behavior::Hang => {
            while !shared.stop.load(Ordering::SeqCst) && !peer_closed(out) {
                thread::sleep(Duration::from_millis(50));
            }
            Ok(false)
        }
        Behavior::Reset => {
            socket2::SockRef::from(&*out).set_linger(Some(Duration::ZERO))?;
            // An error skips the orderly shutdown; closing with linger zero sends RST.
            Err(std::io::Error::other("reset on purpose"))
        }
        Behavior::Pieces {
            content_type,
            pieces,
            chunked,
            headers,
        } => {
            let mut all = pairs(&[("Content-Type", content_type)]);
            all.extend(headers);
            let total: usize = pieces.iter().map(|(p, _)| p.len()).sum();
            if chunked {
                all.push(("Transfer-Encoding".into(), "chunked".into()));
            } else if !all
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            {
                all.push(("Content-Length".into(), total.to_string()));
            }
            head(out, 200, &all)?;
            for (piece, pause) in pieces {
                if chunked {
                    out.write_all(format!("{:x}\r\n", piece.len()).as_bytes())?;
                    out.write_all(&piece)?;
                    out.write_all(b"\r\n")?;
                } else {
                    out.write_all(&piece)?;
                }
                out.flush()?;
                thread::sleep(pause);
            }
            if chunked {
                out.write_all(b"0\r\n\r\n")?;
            }
            Ok(false)
        }
        Behavior::Require { headers, then } => {
            let satisfied = headers
                .iter()
                .all(|(n, v)| seen.header(n) == Some(v.as_str()));
            if satisfied {
                respond(out, seen, *then, shared)
            } else {
                head(out, 461, &pairs(&[("Content-Length", "0".into())]))?;
                Ok(false)
            }
        }
        Behavior::Delay(pause, then) => {
            thread::sleep(pause);
            respond(out, seen, *then, shared)
        }
        Behavior::Sequence(_) => unreachable!("sequences are unpacked in next_behavior"),
    }
}

/// The byte at `offset` of a `Pattern` file: varies with the offset, so a wrong
/// offset shows.
pub fn pattern_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 8) ^ (offset >> 24)) as u8
}

fn serve_ranged(
    out: &mut TcpStream,
    seen: &Seen,
    len: u64,
    content_type: &str,
    write: impl Fn(u64, u64, &mut TcpStream) -> std::io::Result<()>,
) -> std::io::Result<bool> {
    let range = seen.header("range").map(|r| parse_range(r, len));
    let (status, start, end) = match range {
        None => (200, 0, len.saturating_sub(1)),
        Some(Some((start, end))) => (206, start, end),
        Some(None) => {
            head(
                out,
                416,
                &pairs(&[
                    ("Content-Range", format!("bytes */{len}")),
                    ("Content-Length", "0".into()),
                ]),
            )?;
            return Ok(false);
        }
    };
    let mut headers = pairs(&[
        ("Content-Type", content_type.to_owned()),
        ("Accept-Ranges", "bytes".into()),
        ("Content-Length", (end - start + 1).to_string()),
    ]);
    if status == 206 {
        headers.push(("Content-Range".into(), format!("bytes {start}-{end}/{len}")));
    }
    head(out, status, &headers)?;
    if seen.method != "HEAD" && len > 0 {
        write(start, end, out)?;
    }
    Ok(false)
}

/// Parses a single `bytes=` range against `len`; `None` if unsatisfiable.
fn parse_range(header: &str, len: u64) -> Option<(u64, u64)> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().ok()?;
            (len.saturating_sub(n), len.checked_sub(1)?)
        }
        (start, "") => (start.parse().ok()?, len.checked_sub(1)?),
        (start, end) => (
            start.parse().ok()?,
            end.parse::<u64>().ok()?.min(len.checked_sub(1)?),
        ),
    };
    (start <= end && start < len).then_some((start, end))
}

fn serve_live(
    out: &mut TcpStream,
    is_head: bool,
    live: Live,
    shared: &Shared,
) -> std::io::Result<bool> {
    head(out, 200, &pairs(&[("Content-Type", "video/mp2t".into())]))?;
    if is_head {
        return Ok(false);
    }
    // 20 writes a second keep the pace smooth at any rate.
    let per_tick = (live.rate / 20).max(1);
    let mut offset = live.skip as u64;
    let mut sent = 0u64;
    let mut buf = Vec::with_capacity(per_tick as usize);
    while !shared.stop.load(Ordering::SeqCst) {
        if live.close_after.is_some_and(|n| sent >= n) {
            return Ok(false);
        }
        if live.stall_after.is_some_and(|n| sent >= n) {
            if peer_closed(out) {
                return Ok(false);
            }
            thread::sleep(Duration::from_millis(50));
            continue;
        }
        let limit = [live.close_after, live.stall_after]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(u64::MAX);
        let n = per_tick.min(limit - sent);
        buf.clear();
        ts::extend_stream(&mut buf, live.tag, offset, n);
        out.write_all(&buf)?;
        offset += n;
        sent += n;
        // Close right after the last byte, so the close time is the last byte's time.
        if live.close_after.is_some_and(|limit| sent >= limit) {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(false)
}

/// Whether the peer has closed its side: a silent connection is only noticed this way.
fn peer_closed(out: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    let _ = out.set_nonblocking(true);
    let closed = matches!(out.peek(&mut probe), Ok(0));
    let _ = out.set_nonblocking(false);
    closed
}
