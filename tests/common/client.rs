//! A small blocking HTTP/1.1 client for tests: whole requests with JSON helpers, and
//! streamed responses read a little at a time, decoding chunked framing and telling a
//! cut body from a finished one.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

/// A response head with its body reader.
pub struct Streamed {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    reader: BufReader<TcpStream>,
    chunked: bool,
    chunk_left: u64,
    remaining: Option<u64>,
    finished: bool,
}

/// A whole response.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn find<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends a request and returns the head with an open body.
pub fn open(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Streamed {
    open_as(addr, &addr.to_string(), method, target, headers, body)
}

/// Like [`open`], with the `Host` the test chooses: a player that reached the proxy by
/// another name or address (`tv.lan:8080`, `[::1]:8080`) sends that instead.
pub fn open_as(
    addr: SocketAddr,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Streamed {
    let mut socket = TcpStream::connect(addr).expect("connect to proxy");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(body).unwrap();
    read_head(BufReader::new(socket), method == "HEAD")
}

fn read_head(mut reader: BufReader<TcpStream>, head_only: bool) -> Streamed {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        if header.trim().is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let chunked =
        find(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let mut remaining = find(&headers, "content-length").map(|v| v.parse().unwrap());
    if head_only || status == 204 || status == 304 {
        remaining = Some(0);
    }
    let finished = head_only || (remaining == Some(0) && !chunked);
    Streamed {
        status,
        headers,
        reader,
        chunked: chunked && !head_only,
        chunk_left: 0,
        remaining,
        finished,
    }
}

impl Streamed {
    pub fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    /// Reads some body bytes; `Ok(0)` at a proper end, `Err` when the body was cut.
    pub fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.finished {
            return Ok(0);
        }
        if self.chunked {
            return self.read_chunked(buf);
        }
        let max = self
            .remaining
            .map_or(buf.len(), |r| buf.len().min(r as usize));
        let n = self.reader.read(&mut buf[..max])?;
        if let Some(r) = &mut self.remaining {
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "body cut short",
                ));
            }
            *r -= n as u64;
            self.finished = *r == 0;
        }
        Ok(n)
    }

    fn read_chunked(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let cut =
            || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "chunked body cut short");
        if self.chunk_left == 0 {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(cut());
            }
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap(), 16)
                .map_err(|_| cut())?;
            if size == 0 {
                let mut end = String::new();
                self.reader.read_line(&mut end)?;
                self.finished = true;
                return Ok(0);
            }
            self.chunk_left = size;
        }
        let max = buf.len().min(self.chunk_left as usize);
        let n = self.reader.read(&mut buf[..max])?;
        if n == 0 {
            return Err(cut());
        }
        self.chunk_left -= n as u64;
        if self.chunk_left == 0 {
            let mut crlf = [0u8; 2];
            self.reader.read_exact(&mut crlf)?;
        }
        Ok(n)
    }

    /// Reads exactly `n` body bytes (or fewer if the body ends properly first).
    pub fn read_bytes(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n.min(1 << 20));
        let mut buf = vec![0u8; 64 * 1024];
        while out.len() < n {
            let want = (n - out.len()).min(buf.len());
            let got = self.read(&mut buf[..want])?;
            if got == 0 {
                break;
            }
            out.extend_from_slice(&buf[..got]);
        }
        Ok(out)
    }

    /// Reads the body to its end; `Err` if it was cut.
    pub fn read_all(&mut self) -> std::io::Result<Vec<u8>> {
        self.read_bytes(usize::MAX)
    }

    /// The socket, for tests that close it in a particular way.
    pub fn socket(&self) -> &TcpStream {
        self.reader.get_ref()
    }
}

/// A whole request; the body is read to its end.
pub fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Answer {
    let mut streamed = open(addr, method, target, headers, body);
    let body = streamed.read_all().expect("whole body");
    Answer {
        status: streamed.status,
        headers: streamed.headers,
        body,
    }
}

/// A whole request sent with the given `Host`; see [`open_as`].
pub fn request_as(
    addr: SocketAddr,
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let mut streamed = open_as(addr, host, method, target, headers, b"");
    let body = streamed.read_all().expect("whole body");
    Answer {
        status: streamed.status,
        headers: streamed.headers,
        body,
    }
}

pub fn get(addr: SocketAddr, target: &str) -> Answer {
    request(addr, "GET", target, &[], b"")
}

pub fn delete(addr: SocketAddr, target: &str) -> Answer {
    request(addr, "DELETE", target, &[], b"")
}

pub fn post_json(addr: SocketAddr, target: &str, body: &Value) -> Answer {
    let body = serde_json::to_vec(body).unwrap();
    request(
        addr,
        "POST",
        target,
        &[("Content-Type", "application/json")],
        &body,
    )
}
