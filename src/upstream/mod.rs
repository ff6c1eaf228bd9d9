//! The HTTP/1.1 client for upstreams (providers): one request, redirects followed
//! server-side, timeouts for each phase, and a response whose body is read in the
//! caller's buffer. Connections are not reused: each request opens one, and dropping the
//! response closes it. Which URL to ask, and what to do on failure, is the caller's.

mod body;
mod connection;
mod error;

use std::time::Duration;

use futures_lite::io::{AsyncWriteExt, BufReader};
use url::Url;

use crate::redact::SafeUrl;
pub use body::Body;
use connection::Connection;
pub use error::UpstreamError;

/// Most redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;

/// Headers that must not follow a redirect to another host: they are credentials.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// Which request method; the proxy only reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// A JSON POST (the failover resolver).
    Post,
}

/// One request to make, possibly across redirects.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub url: Url,
    /// Sent in this order after `Host`; later entries with the same name replace earlier.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub connect_timeout: Duration,
    /// For the response head, and the default for each body read.
    pub read_timeout: Duration,
}

impl Request {
    /// A GET of `url` with the given headers.
    pub fn get(url: Url, headers: Vec<(String, String)>, timeouts: (Duration, Duration)) -> Self {
        Request {
            method: Method::Get,
            url,
            headers,
            body: Vec::new(),
            connect_timeout: timeouts.0,
            read_timeout: timeouts.1,
        }
    }

    /// Sets (or replaces) a header.
    pub fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }
}

/// A response head with its open body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The URL that answered, after redirects: the base for relative references.
    pub url: Url,
    pub body: Body,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header_value(&self.headers, name)
    }

    /// The declared body length, when the body is length-delimited.
    pub fn content_length(&self) -> Option<u64> {
        self.body.declared_length()
    }
}

/// The first value of `name` in `headers`, case-insensitively.
pub fn header_value<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends `request`, following up to [`MAX_REDIRECTS`] redirects. A loop is an error.
pub async fn fetch(mut request: Request) -> Result<Response, UpstreamError> {
    let mut visited: Vec<Url> = Vec::new();
    loop {
        let response = send_once(&request).await?;
        let Some(next) = redirect_target(&response)? else {
            return Ok(response);
        };
        log::debug!(
            "upstream {} redirected ({}) to {}",
            SafeUrl(request.url.as_str()),
            response.status,
            SafeUrl(next.as_str())
        );
        visited.push(request.url.clone());
        if visited.contains(&next) {
            return Err(UpstreamError::RedirectLoop(next.to_string()));
        }
        if visited.len() > MAX_REDIRECTS {
            return Err(UpstreamError::TooManyRedirects(MAX_REDIRECTS));
        }
        follow(&mut request, next, response.status);
    }
}

fn redirect_target(response: &Response) -> Result<Option<Url>, UpstreamError> {
    if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some(location) = response.header("location") else {
        return Ok(None);
    };
    let next = response
        .url
        .join(location.trim())
        .map_err(|_| UpstreamError::BadRedirect(location.to_owned()))?;
    if !matches!(next.scheme(), "http" | "https") {
        return Err(UpstreamError::BadRedirect(location.to_owned()));
    }
    Ok(Some(next))
}

/// Points the request at the redirect target; credentials stay with their host.
fn follow(request: &mut Request, next: Url, status: u16) {
    let same_origin = request.url.origin() == next.origin();
    if !same_origin {
        request.headers.retain(|(name, _)| {
            !CREDENTIAL_HEADERS
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
        });
    }
    if status == 303 && request.method == Method::Post {
        request.method = Method::Get;
        request.body.clear();
    }
    request.url = next;
}

async fn send_once(request: &Request) -> Result<Response, UpstreamError> {
    let mut connection = Connection::open(&request.url, request.connect_timeout).await?;
    let head = request_head(request);
    let write = async {
        connection.write_all(head.as_bytes()).await?;
        connection.write_all(&request.body).await?;
        connection.flush().await
    };
    with_timeout(request.read_timeout, write)
        .await
        .ok_or(UpstreamError::Timeout("sending the request"))?
        .map_err(UpstreamError::Io)?;

    let reader = BufReader::with_capacity(body::READ_BUFFER, connection);
    let read_head = body::read_head(reader, request.method == Method::Head);
    let (status, headers, body) = with_timeout(request.read_timeout, read_head)
        .await
        .ok_or(UpstreamError::Timeout("waiting for the response head"))??;
    Ok(Response {
        status,
        headers,
        url: request.url.clone(),
        body,
    })
}

fn request_head(request: &Request) -> String {
    let url = &request.url;
    let method = match request.method {
        Method::Get => "GET",
        Method::Head => "HEAD",
        Method::Post => "POST",
    };
    let target = &url[url::Position::BeforePath..url::Position::AfterQuery];
    let host = &url[url::Position::BeforeHost..url::Position::AfterPort];
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if request.method == Method::Post {
        head.push_str(&format!("Content-Length: {}\r\n", request.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    head
}

/// Runs `future` for at most `limit`; `None` when the time ran out.
pub async fn with_timeout<T>(
    limit: Duration,
    future: impl std::future::Future<Output = T>,
) -> Option<T> {
    futures_lite::future::or(async { Some(future.await) }, async {
        async_io::Timer::after(limit).await;
        None
    })
    .await
}
