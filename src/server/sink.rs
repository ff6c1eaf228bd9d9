//! The client side of a streamed reply: one reusable buffer per connection, framing
//! (raw for a known length, chunked otherwise) applied in place so each chunk is a
//! single write, a write timeout for players that vanish without closing, and a
//! watcher that notices a player closing its connection while no bytes flow.

use std::io;
use std::pin::pin;
use std::time::{Duration, Instant};

use async_io::Timer;
use async_net::TcpStream;
use futures_lite::future;
use futures_lite::io::AsyncWriteExt;

use crate::upstream::with_timeout;

/// Payload bytes per write. 16 KiB is about 85 TS packets, 30 ms of a 4 Mbit/s stream:
/// large enough to keep syscalls few, small enough that 100 clients cost 1.6 MiB.
pub const CHUNK: usize = 16 * 1024;

/// Room before the payload for a chunk-size line (`4000\r\n`) and after it for `\r\n`.
const HEADROOM: usize = 8;
const TAILROOM: usize = 2;

/// Writes a streamed body to one client.
pub struct ClientSink {
    socket: TcpStream,
    buffer: Box<[u8]>,
    chunked: bool,
    write_timeout: Duration,
    write_timer: Timer,
    write_timer_armed: bool,
}

impl ClientSink {
    pub(super) fn new(socket: TcpStream, chunked: bool, write_timeout: Duration) -> ClientSink {
        ClientSink {
            socket,
            buffer: vec![0u8; HEADROOM + CHUNK + TAILROOM].into_boxed_slice(),
            chunked,
            write_timeout,
            write_timer: Timer::never(),
            write_timer_armed: false,
        }
    }

    /// Where the next payload goes: fill a prefix of it, then call [`ClientSink::send`].
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer[HEADROOM..HEADROOM + CHUNK]
    }

    /// Sends the first `n` payload bytes, framed, in one write. Bytes after them in the
    /// payload (a partial TS packet kept for the next write) are left as they were.
    pub async fn send(&mut self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Ok(());
        }
        if !self.chunked {
            return self.write(HEADROOM, HEADROOM + n).await;
        }
        let start = self.frame_chunk(n);
        let end = HEADROOM + n + 2;
        // The chunk's closing CRLF goes where the caller may keep bytes: save them.
        let kept = [self.buffer[end - 2], self.buffer[end - 1]];
        self.buffer[end - 2..end].copy_from_slice(b"\r\n");
        let written = self.write(start, end).await;
        self.buffer[end - 2..end].copy_from_slice(&kept);
        written
    }

    /// Writes `buffer[start..end]`, giving up if the write does not finish within the
    /// write timeout. The timer stays armed across writes and is moved only when it fires
    /// before the current write's deadline: one reactor registration per timeout period,
    /// not one per chunk.
    async fn write(&mut self, start: usize, end: usize) -> io::Result<()> {
        let began = Instant::now();
        if !self.write_timer_armed {
            self.write_timer.set_after(self.write_timeout);
            self.write_timer_armed = true;
        }
        let mut write = pin!(self.socket.write_all(&self.buffer[start..end]));
        loop {
            let timer = &mut self.write_timer;
            let finished = future::or(async { Some(write.as_mut().await) }, async {
                timer.await;
                None
            });
            match finished.await {
                Some(result) => return result,
                None if began.elapsed() >= self.write_timeout => {
                    self.write_timer_armed = false;
                    let why = "client accepted no bytes";
                    return Err(io::Error::new(io::ErrorKind::TimedOut, why));
                }
                None => self.write_timer.set_at(began + self.write_timeout),
            }
        }
    }

    /// Writes the chunk-size line just before the payload; returns where it starts.
    fn frame_chunk(&mut self, n: usize) -> usize {
        let (digits, len) = hex_digits(n);
        let start = HEADROOM - len - 2;
        self.buffer[start..start + len].copy_from_slice(&digits[digits.len() - len..]);
        self.buffer[HEADROOM - 2..HEADROOM].copy_from_slice(b"\r\n");
        start
    }

    /// Ends a chunked body properly; nothing to do for a length-delimited one.
    pub(super) async fn finish(&mut self) -> io::Result<()> {
        if self.chunked {
            let write = self.socket.write_all(b"0\r\n\r\n");
            with_timeout(self.write_timeout, write)
                .await
                .unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))?;
        }
        self.socket.flush().await
    }

    /// A handle that resolves when the client closes its side of the connection.
    pub fn watcher(&self) -> ClientWatcher {
        ClientWatcher(self.socket.clone())
    }
}

/// The lowercase hex digits of `n`, right-aligned, and how many there are (no heap).
fn hex_digits(mut n: usize) -> ([u8; 6], usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut digits = [b'0'; 6];
    let mut len = 0;
    while len < digits.len() {
        digits[digits.len() - 1 - len] = HEX[n & 0xf];
        len += 1;
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    (digits, len)
}

/// Watches a client connection for its close.
pub struct ClientWatcher(TcpStream);

impl ClientWatcher {
    /// Resolves when the client has closed or reset the connection. A client that sends
    /// more data (a pipelined request) is not closing, so this then never resolves.
    pub async fn closed(self) {
        let mut probe = [0u8; 1];
        match self.0.peek(&mut probe).await {
            Ok(0) | Err(_) => {}
            Ok(_) => std::future::pending::<()>().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headroom_fits_the_largest_chunk_size_line() {
        let (_, len) = hex_digits(CHUNK);
        assert!(len + 2 <= HEADROOM);
    }

    #[test]
    fn hex_digits_match_std_formatting() {
        for n in [1usize, 15, 16, 255, 4096, CHUNK] {
            let (digits, len) = hex_digits(n);
            assert_eq!(&digits[6 - len..], format!("{n:x}").as_bytes());
        }
    }
}
