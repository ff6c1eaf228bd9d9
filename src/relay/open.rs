//! Opening a source for a continuous stream: one attempt ([`open_source`]) judges the
//! upstream's answer before the client sees anything; [`open_with_failover`] walks the
//! source list through the stream's failover policy until one works or it gives up.
//! HEAD requests are answered from a probe that registers no client.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use super::fetch_for;
use super::sniff::{self, Verdict};
use crate::app::App;
use crate::failover::Reason;
use crate::registry::{Kind, SourceSwitch, Stream, SwitchOutcome};
use crate::server::{error, json as json_reply, MediaHead, Reply};
use crate::upstream::{self, with_timeout, UpstreamError};

/// Bytes read ahead to judge a body: enough for several TS packets or an HTML page start.
const SNIFF_BYTES: usize = 4 * 1024;

/// Bytes needed before judging: two TS packets and a byte, which also covers a playlist
/// tag after a BOM and some white space.
const JUDGE_BYTES: usize = 2 * super::sniff::TS_PACKET + 1;

/// Upstream headers passed to the client with the body.
const FORWARDED: [&str; 7] = [
    "content-type",
    "content-encoding",
    "content-range",
    "accept-ranges",
    "last-modified",
    "etag",
    "content-disposition",
];

/// A source that answered with media, not yet committed to the client.
pub struct Media {
    pub response: upstream::Response,
    /// Body bytes already read while judging it.
    pub first: Vec<u8>,
    pub source: SourceSwitch,
    pub head: MediaHead,
    /// For length-delimited bodies: the absolute byte range it covers, for resuming.
    pub span: Option<(u64, u64)>,
    pub transport_stream: bool,
}

pub enum Opened {
    Media(Media),
    /// An answer for the client as it is (a 416 to its own Range request).
    Passthrough(Reply),
    /// The source is an HLS playlist; its first bytes were read already.
    Playlist(upstream::Response, Vec<u8>),
}

/// Why a source could not be used.
#[derive(Debug)]
pub struct SourceFailure {
    pub reason: Reason,
    pub detail: String,
    pub timeout: bool,
}

impl SourceFailure {
    /// A failure for `reason`, not a timeout.
    pub fn new(reason: Reason, detail: &str) -> SourceFailure {
        SourceFailure {
            reason,
            detail: detail.to_owned(),
            timeout: false,
        }
    }

    pub fn invalid_url(url: &str) -> SourceFailure {
        let detail = format!("invalid source url {}", crate::redact::SafeUrl(url));
        SourceFailure::new(Reason::ConnectError, &detail)
    }

    pub fn from_upstream(e: UpstreamError) -> SourceFailure {
        let reason = if e.is_timeout() {
            Reason::Timeout
        } else {
            Reason::ConnectError
        };
        SourceFailure {
            reason,
            timeout: e.is_timeout(),
            detail: e.to_string(),
        }
    }

    fn status(status: u16) -> SourceFailure {
        SourceFailure::new(Reason::HttpStatus, &format!("upstream answered {status}"))
    }

    fn content(detail: &str) -> SourceFailure {
        SourceFailure::new(Reason::BadContent, detail)
    }

    /// The client's answer when no source could be used: 504 for timeouts, else 502.
    pub fn reply(&self) -> Reply {
        let status = if self.timeout { 504 } else { 502 };
        json_reply(
            status,
            &json!({ "detail": format!("Upstream unavailable: {}", self.detail) }),
        )
    }
}

/// Opens the stream's current source, moving on through the failover policy while
/// sources fail. Nothing has been sent to the client yet, so every failure is free.
pub async fn open_with_failover(
    app: &App,
    stream: &Arc<Stream>,
    range: Option<&str>,
) -> Result<Opened, SourceFailure> {
    let attempt =
        |source: SourceSwitch| async move { open_source(app, stream, &source, range).await };
    let (opened, source) = try_sources(app, stream, stream.current(), attempt).await?;
    // Media must first prove itself by playing a while (the pump decides); any other
    // whole answer shows the source works.
    if !matches!(opened, Opened::Media(_)) {
        stream.mark_working(source.generation);
    }
    Ok(opened)
}

/// Runs `attempt` on `start` and, while it fails, on the sources the failover policy
/// picks next (after their pause), until one works or the stream gives up; returns the
/// result with the source that gave it. The continuous and HLS paths both go through
/// here, so they fail over alike. Whether that source then counts as working (which
/// clears the run of failures) is the caller's call: a live source that answers and
/// dies a moment later must keep counting towards giving up.
pub async fn try_sources<T, F, Fut>(
    app: &App,
    stream: &Stream,
    start: SourceSwitch,
    mut attempt: F,
) -> Result<(T, SourceSwitch), SourceFailure>
where
    F: FnMut(SourceSwitch) -> Fut,
    Fut: std::future::Future<Output = Result<T, SourceFailure>>,
{
    let mut source = start;
    loop {
        if !source.pause.is_zero() {
            async_io::Timer::after(source.pause).await;
        }
        let failure = match attempt(source.clone()).await {
            Ok(done) => return Ok((done, source)),
            Err(failure) => failure,
        };
        log::info!(
            "stream {} source {} failed: {}",
            stream.id,
            source.index,
            failure.detail
        );
        match next_source(app, stream, &source, &failure).await {
            Some(next) => source = next,
            None => return Err(failure),
        }
    }
}

/// Reports that `source` failed and returns the source to try next (asking the
/// resolver first, when the stream has one), or `None` when the stream gave up.
pub async fn next_source(
    app: &App,
    stream: &Stream,
    source: &SourceSwitch,
    failure: &SourceFailure,
) -> Option<SourceSwitch> {
    let resolved = super::resolver::next_url(app, stream, source).await;
    let cycles = app.config.failover_cycles;
    let now = SystemTime::now();
    match stream.fail_over(
        source.generation,
        failure.reason,
        &failure.detail,
        cycles,
        resolved,
        now,
    ) {
        SwitchOutcome::Switched(next) => Some(next),
        SwitchOutcome::GaveUp => None,
    }
}

/// One attempt at `source`: fetch, check the status, and judge the first bytes.
pub async fn open_source(
    app: &App,
    stream: &Stream,
    source: &SourceSwitch,
    range: Option<&str>,
) -> Result<Opened, SourceFailure> {
    let mut response = fetch_for(app, stream, &source.url, range).await?;
    if response.status == 416 && range.is_some() {
        return Ok(Opened::Passthrough(passthrough(&response)));
    }
    if !(200..300).contains(&response.status) {
        return Err(SourceFailure::status(response.status));
    }
    let first = read_first(app, &mut response).await?;
    let content_type = response.header("content-type");
    match sniff::classify(content_type, &first) {
        Verdict::Playlist => Ok(Opened::Playlist(response, first)),
        Verdict::NotMedia => Err(SourceFailure::content(
            "upstream sent a text or HTML page instead of media",
        )),
        Verdict::Media => Ok(Opened::Media(media(stream, source, response, first))),
    }
}

async fn read_first(
    app: &App,
    response: &mut upstream::Response,
) -> Result<Vec<u8>, SourceFailure> {
    let mut first = vec![0u8; SNIFF_BYTES];
    let read = with_timeout(
        app.config.read_timeout,
        fill_for_sniffing(response, &mut first),
    )
    .await;
    let got = match read {
        None => {
            return Err(SourceFailure::from_upstream(UpstreamError::Timeout(
                "waiting for the first body bytes",
            )))
        }
        Some(Err(e)) => return Err(SourceFailure::from_upstream(e)),
        Some(Ok(0)) => return Err(SourceFailure::content("upstream sent an empty body")),
        Some(Ok(got)) => got,
    };
    first.truncate(got);
    Ok(first)
}

/// Reads until [`JUDGE_BYTES`] are in (enough to see `#EXTM3U` past a BOM, or two TS
/// sync bytes) or the body ends: one small first read must not decide what a body is.
async fn fill_for_sniffing(
    response: &mut upstream::Response,
    buf: &mut [u8],
) -> Result<usize, UpstreamError> {
    let mut got = 0;
    while got < JUDGE_BYTES {
        match response.body.read(&mut buf[got..]).await? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn media(
    stream: &Stream,
    source: &SourceSwitch,
    response: upstream::Response,
    first: Vec<u8>,
) -> Media {
    let length = response.content_length();
    let span = length.map(|len| body_span(&response, len));
    stream.set_kind(if length.is_some() {
        Kind::Vod
    } else {
        Kind::Live
    });
    let transport_stream = sniff::is_transport_stream(&first);
    let head = MediaHead {
        status: response.status,
        headers: forwarded_headers(&response, transport_stream),
        length,
    };
    Media {
        response,
        first,
        source: source.clone(),
        head,
        span,
        transport_stream,
    }
}

/// The absolute first and last byte a length-delimited body covers.
fn body_span(response: &upstream::Response, length: u64) -> (u64, u64) {
    let from_range = response
        .header("content-range")
        .and_then(parse_content_range)
        .filter(|_| response.status == 206);
    from_range.unwrap_or((0, length.saturating_sub(1)))
}

/// `bytes 500-999/1000` → (500, 999).
pub fn parse_content_range(value: &str) -> Option<(u64, u64)> {
    let spec = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, _total) = spec.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    Some((start.trim().parse().ok()?, end.trim().parse().ok()?))
}

fn forwarded_headers(
    response: &upstream::Response,
    transport_stream: bool,
) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = FORWARDED
        .iter()
        .filter_map(|name| {
            response
                .header(name)
                .map(|v| (title_case(name), v.to_owned()))
        })
        .collect();
    if response.header("content-type").is_none() {
        let guess = if transport_stream {
            "video/mp2t"
        } else {
            "application/octet-stream"
        };
        headers.push(("Content-Type".into(), guess.into()));
    }
    if response.content_length().is_none() {
        headers.push(("Cache-Control".into(), "no-cache, no-store".into()));
    }
    headers
}

fn title_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join("-")
}

/// The upstream's own answer (416 to the client's Range), with its `Content-Range`.
fn passthrough(response: &upstream::Response) -> Reply {
    let mut reply = http_types::Response::new(crate::server::status_code(response.status));
    for name in ["content-range", "content-type"] {
        if let Some(value) = response.header(name) {
            reply.insert_header(name, value);
        }
    }
    reply.into()
}

/// Answers HEAD without registering a client: asks the upstream with HEAD, and when it
/// will not say (405, 501, no length), with a one-byte ranged GET. `None` when the source
/// is a playlist: its HEAD must carry the rewritten playlist's length, so the caller
/// answers it as GET does.
pub async fn probe(app: &App, stream: &Arc<Stream>, range: Option<&str>) -> Option<Reply> {
    if stream.kind() == Kind::Hls {
        return None;
    }
    let source = stream.current();
    let head = match probe_head(app, stream, &source.url, range).await {
        Some(head) => Some(head),
        None => probe_ranged(app, stream, &source.url).await,
    };
    let Some(head) = head else {
        return Some(error(
            502,
            "Upstream unavailable: the source did not answer the probe",
        ));
    };
    let playlist = head.headers.iter().any(|(name, value)| {
        name == "Content-Type" && value.to_ascii_lowercase().contains("mpegurl")
    });
    (!playlist).then(|| Reply::Media(head, Box::new(NoBody)))
}

async fn probe_head(
    app: &App,
    stream: &Stream,
    url: &str,
    range: Option<&str>,
) -> Option<MediaHead> {
    let url = url::Url::parse(url).ok()?;
    let mut request = super::request_for(app, stream, url, range);
    request.method = upstream::Method::Head;
    let response = upstream::fetch(request).await.ok()?;
    if !(200..300).contains(&response.status) {
        return None;
    }
    let length = response
        .header("content-length")
        .and_then(|v| v.trim().parse::<u64>().ok());
    let media_type = response.header("content-type").unwrap_or("video/mp2t");
    if length.is_none() && !media_type.contains("mp2t") {
        return None;
    }
    let mut headers = forwarded_headers(&response, true);
    if length.is_none() {
        headers.retain(|(n, _)| n != "Accept-Ranges");
    }
    Some(MediaHead {
        status: response.status,
        headers,
        length,
    })
}

async fn probe_ranged(app: &App, stream: &Stream, url: &str) -> Option<MediaHead> {
    let response = fetch_for(app, stream, url, Some("bytes=0-0")).await.ok()?;
    let total = response
        .header("content-range")
        .and_then(|v| v.rsplit_once('/'))
        .and_then(|(_, total)| total.trim().parse::<u64>().ok());
    let (status, length) = match (response.status, total) {
        (206, Some(total)) => (200, Some(total)),
        (200..=299, _) => (response.status, response.content_length()),
        _ => return None,
    };
    let mut headers = forwarded_headers(&response, true);
    headers.retain(|(n, _)| n != "Content-Range");
    if length.is_some() && !headers.iter().any(|(n, _)| n == "Accept-Ranges") {
        headers.push(("Accept-Ranges".into(), "bytes".into()));
    }
    Some(MediaHead {
        status,
        headers,
        length,
    })
}

/// The body of a HEAD reply: never pumped.
pub struct NoBody;

impl crate::server::MediaBody for NoBody {
    fn pump<'a>(
        self: Box<Self>,
        _sink: &'a mut crate::server::ClientSink,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = crate::server::BodyEnd> + Send + 'a>>
    {
        Box::pin(async { crate::server::BodyEnd::Complete })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_to_absolute_bytes() {
        assert_eq!(parse_content_range("bytes 500-999/1000"), Some((500, 999)));
        assert_eq!(parse_content_range("bytes 0-0/4694430648"), Some((0, 0)));
        assert_eq!(parse_content_range("bytes */47022"), None);
    }

    #[test]
    fn header_names_are_title_cased() {
        assert_eq!(title_case("content-range"), "Content-Range");
        assert_eq!(title_case("etag"), "Etag");
    }
}
