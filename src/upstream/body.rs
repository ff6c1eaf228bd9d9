//! Reading an upstream response: the head (status and headers, HTTP/1.0 or 1.1) and then
//! the body in whichever framing the head announced (length, chunked or until close),
//! into the caller's buffer. A body that ends before its framing says is `Truncated`,
//! never a clean end, so the proxy can tell a cut stream from a finished one.

use futures_lite::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

use super::connection::Connection;
use super::{header_value, UpstreamError};

/// Buffer between the socket and the body reader. Reads larger than this bypass it, so
/// it mostly holds the response head and chunk-size lines: 4 KiB per upstream.
pub const READ_BUFFER: usize = 4 * 1024;

/// Longest response head accepted (status line plus headers); long `Location`s fit.
const MAX_HEAD: usize = 32 * 1024;

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: u64 = 4 * 1024;

/// Most response headers accepted.
const MAX_HEADERS: usize = 96;

/// How the body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length { remaining: u64, declared: u64 },
    UntilClose,
    Chunked(Chunk),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// An open response body; dropping it closes the connection.
pub struct Body {
    reader: BufReader<Connection>,
    framing: Framing,
    line: Vec<u8>,
}

/// Reads a response head (skipping `1xx` interim responses) and sets up the body.
pub async fn read_head(
    mut reader: BufReader<Connection>,
    head_request: bool,
) -> Result<(u16, Vec<(String, String)>, Body), UpstreamError> {
    loop {
        let raw = read_raw_head(&mut reader).await?;
        let (status, headers) = parse_head(&raw)?;
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let framing = framing_for(status, &headers, head_request)?;
        let body = Body {
            reader,
            framing,
            line: Vec::new(),
        };
        return Ok((status, headers, body));
    }
}

async fn read_raw_head(reader: &mut BufReader<Connection>) -> Result<Vec<u8>, UpstreamError> {
    let mut raw = Vec::with_capacity(512);
    loop {
        let before = raw.len();
        let limit = (MAX_HEAD - before) as u64 + 1;
        let read = (&mut *reader)
            .take(limit)
            .read_until(b'\n', &mut raw)
            .await?;
        if read == 0 {
            let why = if before == 0 {
                "closed without a response"
            } else {
                "head cut short"
            };
            return Err(UpstreamError::Malformed(why.into()));
        }
        if raw.len() > MAX_HEAD {
            return Err(UpstreamError::Malformed(format!(
                "head over {MAX_HEAD} bytes"
            )));
        }
        if raw.ends_with(b"\r\n\r\n") || raw.ends_with(b"\n\n") || raw == b"\r\n" {
            // A stray empty line before the status line is tolerated (RFC 9112 §2.2).
            if raw.len() <= 2 {
                raw.clear();
                continue;
            }
            return Ok(raw);
        }
    }
}

fn parse_head(raw: &[u8]) -> Result<(u16, Vec<(String, String)>), UpstreamError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Response::new(&mut slots);
    match parsed.parse(raw) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(UpstreamError::Malformed("partial head".into()))
        }
        Err(e) => return Err(UpstreamError::Malformed(e.to_string())),
    }
    let status = parsed.code.unwrap_or(0);
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Ok((status, headers))
}

/// Chooses the framing as RFC 9112 §6.3 orders it: no body for HEAD, 1xx, 204 and 304;
/// chunked wins over a `Content-Length` sent alongside it; then the length; then close.
fn framing_for(
    status: u16,
    headers: &[(String, String)],
    head_request: bool,
) -> Result<Framing, UpstreamError> {
    if head_request || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let chunked = header_value(headers, "transfer-encoding")
        .and_then(|te| te.rsplit(',').next())
        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
    if chunked {
        return Ok(Framing::Chunked(Chunk::Size));
    }
    match header_value(headers, "content-length") {
        Some(len) => {
            let declared = len
                .trim()
                .parse::<u64>()
                .map_err(|_| UpstreamError::Malformed(format!("content-length {len:?}")))?;
            Ok(Framing::Length {
                remaining: declared,
                declared,
            })
        }
        None => Ok(Framing::UntilClose),
    }
}

impl Body {
    /// The body length the head declared, if it is length-delimited.
    pub fn declared_length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length { declared, .. } => Some(declared),
            Framing::Empty => Some(0),
            _ => None,
        }
    }

    /// Reads body bytes into `buf`; `Ok(0)` only at the body's real end.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, UpstreamError> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.framing {
                Framing::Empty => return Ok(0),
                Framing::UntilClose => return Ok(self.reader.read(buf).await?),
                Framing::Length {
                    remaining,
                    declared,
                } => {
                    let got = self.read_limited(buf, remaining).await?;
                    self.framing = Framing::Length {
                        remaining: remaining - got as u64,
                        declared,
                    };
                    return Ok(got);
                }
                Framing::Chunked(state) => {
                    if let Some(got) = self.read_chunked(state, buf).await? {
                        return Ok(got);
                    }
                }
            }
        }
    }

    /// Reads the whole body, failing past `limit` bytes (playlists, resolver answers).
    pub async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, UpstreamError> {
        let mut all = Vec::new();
        let mut buf = [0u8; 8 * 1024];
        loop {
            let got = self.read(&mut buf).await?;
            if got == 0 {
                return Ok(all);
            }
            if all.len() + got > limit {
                return Err(UpstreamError::Malformed(format!("body over {limit} bytes")));
            }
            all.extend_from_slice(&buf[..got]);
        }
    }

    async fn read_limited(
        &mut self,
        buf: &mut [u8],
        remaining: u64,
    ) -> Result<usize, UpstreamError> {
        if remaining == 0 {
            return Ok(0);
        }
        let max = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        match self.reader.read(&mut buf[..max]).await? {
            0 => Err(UpstreamError::Truncated),
            got => Ok(got),
        }
    }

    /// One step of the chunked decoder: `Some(n)` when bytes (or the end) are ready,
    /// `None` when it only moved to the next state.
    async fn read_chunked(
        &mut self,
        state: Chunk,
        buf: &mut [u8],
    ) -> Result<Option<usize>, UpstreamError> {
        let next = match state {
            Chunk::Size => match parse_chunk_size(self.read_line().await?)? {
                0 => Chunk::Trailers,
                size => Chunk::Data(size),
            },
            Chunk::Data(0) => Chunk::DataEnd,
            Chunk::Data(remaining) => {
                let got = self.read_limited(buf, remaining).await?;
                self.framing = Framing::Chunked(Chunk::Data(remaining - got as u64));
                return Ok(Some(got));
            }
            Chunk::DataEnd => {
                if !self.read_line().await?.is_empty() {
                    return Err(UpstreamError::Malformed("chunk without CRLF".into()));
                }
                Chunk::Size
            }
            Chunk::Trailers => match self.read_line().await?.is_empty() {
                true => Chunk::Done,
                false => Chunk::Trailers,
            },
            Chunk::Done => return Ok(Some(0)),
        };
        self.framing = Framing::Chunked(next);
        Ok(None)
    }

    /// Reads one line without its line ending; end of input here is a cut body.
    async fn read_line(&mut self) -> Result<&[u8], UpstreamError> {
        self.line.clear();
        let read = (&mut self.reader)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.line)
            .await?;
        if read == 0 || !self.line.ends_with(b"\n") {
            return Err(if read == 0 {
                UpstreamError::Truncated
            } else {
                UpstreamError::Malformed("chunk line too long".into())
            });
        }
        let end = self.line.len() - 1;
        let end = if self.line[..end].ends_with(b"\r") {
            end - 1
        } else {
            end
        };
        Ok(&self.line[..end])
    }
}

fn parse_chunk_size(line: &[u8]) -> Result<u64, UpstreamError> {
    let size = line.split(|b| *b == b';').next().unwrap_or_default();
    let size = std::str::from_utf8(size).unwrap_or("").trim();
    u64::from_str_radix(size, 16).map_err(|_| {
        UpstreamError::Malformed(format!("chunk size {:?}", String::from_utf8_lossy(line)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn framing_follows_rfc_9112_order() {
        let chunked_and_length =
            headers(&[("Content-Length", "5"), ("Transfer-Encoding", "chunked")]);
        let cases = [
            (
                200,
                headers(&[("Content-Length", "4694430648")]),
                false,
                Framing::Length {
                    remaining: 4_694_430_648,
                    declared: 4_694_430_648,
                },
            ),
            (
                200,
                chunked_and_length,
                false,
                Framing::Chunked(Chunk::Size),
            ),
            (200, headers(&[]), false, Framing::UntilClose),
            (
                200,
                headers(&[("Content-Length", "10")]),
                true,
                Framing::Empty,
            ),
            (304, headers(&[]), false, Framing::Empty),
        ];
        for (status, headers, head, expected) in cases {
            assert_eq!(framing_for(status, &headers, head).unwrap(), expected);
        }
        assert!(framing_for(200, &headers(&[("Content-Length", "x")]), false).is_err());
    }

    #[test]
    fn chunk_sizes_ignore_extensions() {
        assert_eq!(parse_chunk_size(b"1a;name=value").unwrap(), 26);
        assert_eq!(parse_chunk_size(b"0").unwrap(), 0);
        assert!(parse_chunk_size(b"zz").is_err());
    }

    #[test]
    fn heads_of_http_1_0_parse() {
        let (status, headers) =
            parse_head(b"HTTP/1.0 200 OK\r\nContent-Type: video/mp2t\r\n\r\n").unwrap();
        assert_eq!(status, 200);
        assert_eq!(header_value(&headers, "content-type"), Some("video/mp2t"));
    }
}
