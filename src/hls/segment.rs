//! Serving one HLS segment, key or init section: the client's `Range` goes upstream,
//! status and length headers come back, and a body cut short aborts the response
//! rather than ending it cleanly. Nothing is committed before the first body byte, so a
//! fetch that fails before it is retried once on the same URL and then answered 502/504,
//! and the stream moves on so the next playlist uses a new source.

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::app::App;
use crate::failover::Reason;
use crate::registry::{Client, Stream};
use crate::relay::{fetch_for, next_source, SourceFailure};
use crate::server::{BodyEnd, ClientSink, MediaBody, MediaHead, Reply, CHUNK};
use crate::upstream::{self, with_timeout, UpstreamError};

/// Upstream headers a segment reply carries. `Content-Encoding` goes with the body it
/// describes: both are passed on untouched, so they stay a consistent pair.
const FORWARDED: [(&str, &str); 6] = [
    ("content-type", "Content-Type"),
    ("content-encoding", "Content-Encoding"),
    ("content-range", "Content-Range"),
    ("accept-ranges", "Accept-Ranges"),
    ("last-modified", "Last-Modified"),
    ("etag", "ETag"),
];

/// Body bytes read before the reply is committed, so that an upstream that fails before
/// its first byte is still a 502/504 and not a 200 with nothing in it. One such buffer
/// per segment request in flight, freed once its bytes are sent.
const FIRST_READ: usize = 4 * 1024;

// The first bytes go out in one client write.
const _: () = assert!(FIRST_READ <= CHUNK);

/// Fetches `url` for the client and streams it back. Without a client (a HEAD probe)
/// nothing is counted.
pub async fn serve(
    app: &App,
    stream: &Arc<Stream>,
    client: Option<Arc<Client>>,
    url: &str,
    range: Option<&str>,
) -> Reply {
    let (response, first) = match open_twice(app, stream, url, range).await {
        Ok(opened) => opened,
        Err(failure) => {
            // The player's next playlist request then gets the next source.
            next_source(app, stream, &stream.current(), &failure).await;
            return failure.reply();
        }
    };
    let head = MediaHead {
        status: response.status,
        headers: forwarded_headers(&response),
        length: response.content_length(),
    };
    let body = SegmentBody {
        stream: stream.clone(),
        client,
        response,
        first,
        read_timeout: app.config.read_timeout,
    };
    Reply::Media(head, Box::new(body))
}

fn forwarded_headers(response: &upstream::Response) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = FORWARDED
        .iter()
        .filter_map(|(name, title)| {
            response
                .header(name)
                .map(|v| (title.to_string(), v.to_owned()))
        })
        .collect();
    if !headers.iter().any(|(n, _)| n == "Content-Type") {
        headers.push(("Content-Type".into(), "video/mp2t".into()));
    }
    headers
}

/// One retry on the same URL before a failure counts.
async fn open_twice(
    app: &App,
    stream: &Stream,
    url: &str,
    range: Option<&str>,
) -> Result<(upstream::Response, Vec<u8>), SourceFailure> {
    match open(app, stream, url, range).await {
        Ok(opened) => Ok(opened),
        Err(failure) => {
            log::debug!(
                "stream {} segment failed, trying once more: {}",
                stream.id,
                failure.detail
            );
            open(app, stream, url, range).await
        }
    }
}

/// Fetches `url` and reads its first body bytes. A 416 to the client's own Range is its
/// answer and passes as it is; anything else but a 2xx with a body is a failure.
async fn open(
    app: &App,
    stream: &Stream,
    url: &str,
    range: Option<&str>,
) -> Result<(upstream::Response, Vec<u8>), SourceFailure> {
    let mut response = fetch_for(app, stream, url, range).await?;
    if response.status == 416 && range.is_some() {
        return Ok((response, Vec::new()));
    }
    if !(200..300).contains(&response.status) {
        let detail = format!("segment answered {}", response.status);
        return Err(SourceFailure::new(Reason::HttpStatus, &detail));
    }
    let mut first = vec![0u8; FIRST_READ];
    let read = with_timeout(app.config.read_timeout, response.body.read(&mut first)).await;
    let got = match read {
        None => {
            let timeout = UpstreamError::Timeout("waiting for the first segment bytes");
            return Err(SourceFailure::from_upstream(timeout));
        }
        Some(Err(e)) => return Err(SourceFailure::from_upstream(e)),
        Some(Ok(0)) => {
            let detail = "segment answered with an empty body".to_owned();
            return Err(SourceFailure::new(Reason::BadContent, &detail));
        }
        Some(Ok(got)) => got,
    };
    first.truncate(got);
    Ok((response, first))
}

struct SegmentBody {
    stream: Arc<Stream>,
    client: Option<Arc<Client>>,
    response: upstream::Response,
    /// Bytes read while opening, sent before the rest.
    first: Vec<u8>,
    read_timeout: std::time::Duration,
}

impl MediaBody for SegmentBody {
    fn pump<'a>(
        self: Box<Self>,
        sink: &'a mut ClientSink,
    ) -> Pin<Box<dyn std::future::Future<Output = BodyEnd> + Send + 'a>> {
        Box::pin(self.run(sink))
    }
}

impl SegmentBody {
    async fn run(mut self, sink: &mut ClientSink) -> BodyEnd {
        let (end, sent) = self.carry(sink).await;
        if let Some(client) = &self.client {
            self.stream.record_segment(client, sent, SystemTime::now());
        }
        end
    }

    /// Sends the first bytes, then the rest as it arrives; how it ended and how many
    /// bytes reached the client.
    async fn carry(&mut self, sink: &mut ClientSink) -> (BodyEnd, u64) {
        let first = std::mem::take(&mut self.first);
        if !first.is_empty() {
            sink.payload_mut()[..first.len()].copy_from_slice(&first);
            if sink.send(first.len()).await.is_err() {
                return (BodyEnd::Aborted, 0);
            }
        }
        let mut sent = first.len() as u64;
        // One timer, re-armed per read, rather than a new one for every chunk.
        let mut timer = async_io::Timer::after(self.read_timeout);
        loop {
            let read = async { Some(self.response.body.read(sink.payload_mut()).await) };
            let timeout = async {
                (&mut timer).await;
                None
            };
            let Some(read) = futures_lite::future::or(read, timeout).await else {
                log::info!(
                    "stream {} segment stalled after {sent} bytes",
                    self.stream.id
                );
                return (BodyEnd::Aborted, sent);
            };
            timer.set_after(self.read_timeout);
            match read {
                Ok(0) => return (BodyEnd::Complete, sent),
                Ok(n) => {
                    if sink.send(n).await.is_err() {
                        return (BodyEnd::Aborted, sent);
                    }
                    sent += n as u64;
                }
                Err(e) => {
                    let id = &self.stream.id;
                    log::info!("stream {id} segment cut short after {sent} bytes: {e}");
                    return (BodyEnd::Aborted, sent);
                }
            }
        }
    }
}
