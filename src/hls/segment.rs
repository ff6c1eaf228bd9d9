//! Serving one HLS segment, key or init section: the client's `Range` goes upstream,
//! status and length headers come back, and a body cut short aborts the response
//! rather than ending it cleanly. A fetch that fails before the first byte is retried
//! once on the same URL, then the stream moves on so the next playlist uses a new source.

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use crate::app::App;
use crate::failover::Reason;
use crate::registry::{Client, Stream};
use crate::relay::{fetch_for, SourceFailure};
use crate::server::{BodyEnd, ClientSink, MediaBody, MediaHead, Reply};
use crate::upstream;

/// Upstream headers a segment reply carries.
const FORWARDED: [(&str, &str); 5] = [
    ("content-type", "Content-Type"),
    ("content-range", "Content-Range"),
    ("accept-ranges", "Accept-Ranges"),
    ("last-modified", "Last-Modified"),
    ("etag", "ETag"),
];

/// Fetches `url` for the client and streams it back. Without a client (a HEAD probe)
/// nothing is counted.
pub async fn serve(
    app: &App,
    stream: &Arc<Stream>,
    client: Option<Arc<Client>>,
    url: &str,
    range: Option<&str>,
) -> Reply {
    let response = match fetch_twice(app, stream, url, range).await {
        Ok(response) => response,
        Err(failure) => {
            let source = stream.current();
            stream.fail_over(
                source.generation,
                failure.reason,
                &failure.detail,
                app.config.failover_cycles,
                None,
                SystemTime::now(),
            );
            return failure.reply();
        }
    };
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
    let head = MediaHead {
        status: response.status,
        headers,
        length: response.content_length(),
    };
    let body = SegmentBody {
        stream: stream.clone(),
        client,
        response,
        read_timeout: app.config.read_timeout,
    };
    Reply::Media(head, Box::new(body))
}

/// One retry on the same URL before a failure counts; 416 is the client's own answer.
async fn fetch_twice(
    app: &App,
    stream: &Stream,
    url: &str,
    range: Option<&str>,
) -> Result<upstream::Response, SourceFailure> {
    let mut last = None;
    for _ in 0..2 {
        match fetch_for(app, stream, url, range).await {
            Ok(response)
                if response.status < 400 || (response.status == 416 && range.is_some()) =>
            {
                return Ok(response)
            }
            Ok(response) => {
                last = Some(SourceFailure {
                    reason: Reason::HttpStatus,
                    detail: format!("segment answered {}", response.status),
                    timeout: false,
                })
            }
            Err(failure) => last = Some(failure),
        }
    }
    Err(last.unwrap_or_else(|| SourceFailure::invalid_url(url)))
}

struct SegmentBody {
    stream: Arc<Stream>,
    client: Option<Arc<Client>>,
    response: upstream::Response,
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
        let mut sent: u64 = 0;
        // One timer, re-armed per read, rather than a new one for every chunk.
        let mut timer = async_io::Timer::after(self.read_timeout);
        let end = loop {
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
                break BodyEnd::Aborted;
            };
            timer.set_after(self.read_timeout);
            match read {
                Ok(0) => break BodyEnd::Complete,
                Ok(n) => {
                    if sink.send(n).await.is_err() {
                        break BodyEnd::Aborted;
                    }
                    sent += n as u64;
                }
                Err(e) => {
                    log::info!(
                        "stream {} segment cut short after {sent} bytes: {e}",
                        self.stream.id
                    );
                    break BodyEnd::Aborted;
                }
            }
        };
        if let Some(client) = &self.client {
            self.stream.record_segment(client, sent, SystemTime::now());
        }
        end
    }
}
