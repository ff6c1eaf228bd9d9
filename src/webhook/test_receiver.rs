//! A programmable webhook receiver for tests: listens on 127.0.0.1, answers each request
//! with the next scripted reply, and records what arrived. Test-only; the webhook
//! behaviour under test lives in the sibling modules.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// A status with extra header lines, e.g. `"Retry-After: 1"`.
    StatusWith(u16, &'static str),
    /// Waits, then answers with the status.
    Slow(Duration, u16),
    /// Reads the request and never answers (until the receiver is dropped).
    Hang,
}

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
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

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
}

struct Log {
    requests: Mutex<Vec<Received>>,
    arrived: Condvar,
}

pub struct Receiver {
    addr: SocketAddr,
    log: Arc<Log>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    /// Answers request n with `script[n]`, and with `then` once the script is used up.
    pub fn start(script: Vec<Reply>, then: Reply) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap();
        let log = Arc::new(Log {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
        });
        let stop = Arc::new(AtomicBool::new(false));

        let shared = (Arc::clone(&log), Arc::clone(&stop));
        let script = Arc::new((script, then));
        thread::spawn(move || accept_loop(listener, shared.0, shared.1, script));
        Receiver { addr, log, stop }
    }

    /// A receiver answering every request with `status`.
    pub fn answering(status: u16) -> Receiver {
        Receiver::start(Vec::new(), Reply::Status(status))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until `count` requests arrived or `timeout` passed; returns what arrived.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.log.requests.lock().unwrap();
        while requests.len() < count {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            requests = self.log.arrived.wait_timeout(requests, left).unwrap().0;
        }
        requests.clone()
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.requests.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// A URL on 127.0.0.1 where nothing listens: the port was just bound and released.
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/hook")
}

type Script = Arc<(Vec<Reply>, Reply)>;

fn accept_loop(listener: TcpListener, log: Arc<Log>, stop: Arc<AtomicBool>, script: Script) {
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let (log, stop, script) = (Arc::clone(&log), Arc::clone(&stop), Arc::clone(&script));
        thread::spawn(move || serve(stream, &log, &stop, &script));
    }
}

/// Serves one connection, request after request (the agent keeps connections alive).
fn serve(stream: TcpStream, log: &Log, stop: &AtomicBool, script: &Script) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    while let Some(request) = read_request(&mut reader) {
        let reply = {
            let mut requests = log.requests.lock().unwrap();
            let index = requests.len();
            requests.push(request);
            log.arrived.notify_all();
            script.0.get(index).unwrap_or(&script.1).clone()
        };
        if !answer(&mut writer, &reply, stop) {
            return;
        }
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Received> {
    let mut line = String::new();
    reader.read_line(&mut line).ok().filter(|n| *n > 0)?;

    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).ok().filter(|n| *n > 0)?;
        let trimmed = line.trim_end();
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
    Some(Received { headers, body, at })
}

/// Writes the reply; false when the connection should end.
fn answer(writer: &mut TcpStream, reply: &Reply, stop: &AtomicBool) -> bool {
    let (status, extra) = match reply {
        Reply::Status(status) => (*status, ""),
        Reply::StatusWith(status, extra) => (*status, *extra),
        Reply::Slow(delay, status) => {
            thread::sleep(*delay);
            (*status, "")
        }
        Reply::Hang => {
            while !stop.load(Ordering::SeqCst) {
                thread::sleep(Duration::from_millis(50));
            }
            return false;
        }
    };
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!("{extra}\r\n")
    };
    let head = format!("HTTP/1.1 {status} Scripted\r\n{extra}Content-Length: 2\r\n\r\nok");
    writer.write_all(head.as_bytes()).is_ok()
}
