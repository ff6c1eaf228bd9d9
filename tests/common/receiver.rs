//! A programmable webhook receiver: a std::net server on 127.0.0.1 that records each
//! request (headers and raw body, with its arrival time) and answers by a script: one
//! reply per request in turn (a status, a status with `Retry-After`, a delay, a hang),
//! then a fixed reply for every request after the script.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// The status with `Retry-After: <seconds>`.
    RetryAfter(u16, u64),
    /// Waits, then answers with the status.
    Slow(Duration, u16),
    /// Reads the request and never answers, until the proxy gives up or the receiver goes.
    Hang,
}

/// One request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        let found = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map(|(_, value)| value.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "webhook body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

struct Shared {
    script: Vec<Reply>,
    then: Reply,
    requests: Mutex<Vec<Received>>,
    arrived: Condvar,
    stop: AtomicBool,
}

/// The running receiver; it stops when dropped (hanging replies then end too).
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Answers request n with `script[n]`, and with `then` once the script is used up.
    pub fn start(script: Vec<Reply>, then: Reply) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind webhook receiver");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script,
            then,
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let accept_shared = Arc::clone(&shared);
        thread::spawn(move || accept_loop(listener, accept_shared));
        Receiver { addr, shared }
    }

    /// A receiver answering every request with `status`.
    pub fn answering(status: u16) -> Receiver {
        Receiver::start(Vec::new(), Reply::Status(status))
    }

    /// A receiver that never answers.
    pub fn hanging() -> Receiver {
        Receiver::start(Vec::new(), Reply::Hang)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until `count` requests arrived or `limit` passed; returns what arrived.
    pub fn wait_for(&self, count: usize, limit: Duration) -> Vec<Received> {
        let deadline = Instant::now() + limit;
        let mut requests = self.shared.requests.lock().unwrap();
        while requests.len() < count {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            requests = self.shared.arrived.wait_timeout(requests, left).unwrap().0;
        }
        requests.clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The JSON bodies received so far, in arrival order.
    pub fn events(&self) -> Vec<Value> {
        self.received().iter().map(Received::json).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let shared = Arc::clone(&shared);
        thread::spawn(move || serve(stream, &shared));
    }
}

/// Serves one connection, request after request (the proxy keeps connections alive).
fn serve(stream: TcpStream, shared: &Shared) {
    let Ok(clone) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(clone);
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let reply = {
            let mut requests = shared.requests.lock().unwrap();
            let index = requests.len();
            requests.push(request);
            shared.arrived.notify_all();
            shared.script.get(index).unwrap_or(&shared.then).clone()
        };
        if !answer(&mut writer, &reply, shared) {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Received> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let target = parts.next().unwrap_or("").to_owned();

    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok().filter(|n| *n > 0)?;
        let trimmed = header.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }

    let length = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let at = Instant::now();
    Some(Received {
        method,
        target,
        headers,
        body,
        at,
    })
}

/// Writes the reply; false when the connection should end.
fn answer(writer: &mut TcpStream, reply: &Reply, shared: &Shared) -> bool {
    let (status, extra) = match reply {
        Reply::Status(status) => (*status, String::new()),
        Reply::RetryAfter(status, secs) => (*status, format!("Retry-After: {secs}\r\n")),
        Reply::Slow(delay, status) => {
            thread::sleep(*delay);
            (*status, String::new())
        }
        Reply::Hang => {
            while !shared.stop.load(Ordering::SeqCst) && !peer_closed(writer) {
                thread::sleep(Duration::from_millis(50));
            }
            return false;
        }
    };
    let head = format!("HTTP/1.1 {status} Scripted\r\n{extra}Content-Length: 2\r\n\r\nok");
    writer.write_all(head.as_bytes()).is_ok()
}

/// Whether the proxy has closed its side (it gave up waiting for an answer).
fn peer_closed(stream: &TcpStream) -> bool {
    let mut probe = [0u8; 1];
    let _ = stream.set_nonblocking(true);
    let closed = matches!(stream.peek(&mut probe), Ok(0));
    let _ = stream.set_nonblocking(false);
    closed
}

/// A loopback URL where nothing listens: connecting to it is refused at once.
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}
