//! What can go wrong talking to an upstream, with enough detail to log the cause and to
//! choose between 502 and 504 for the client.

use std::fmt;
use std::io;

#[derive(Debug)]
pub enum UpstreamError {
    /// The URL has no usable host or scheme.
    InvalidUrl(String),
    /// The host name did not resolve.
    Resolve {
        host: String,
        source: io::Error,
    },
    /// Every address refused or failed.
    Connect {
        host: String,
        source: io::Error,
    },
    /// A named phase ran out of time.
    Timeout(&'static str),
    /// The TLS handshake failed, or TLS is not built in.
    Tls {
        host: String,
        detail: String,
    },
    /// The response head could not be parsed.
    Malformed(String),
    RedirectLoop(String),
    TooManyRedirects(usize),
    BadRedirect(String),
    /// The body ended before its declared end.
    Truncated,
    /// A read or write failed mid-exchange.
    Io(io::Error),
}

impl UpstreamError {
    /// Whether the client should see 504 rather than 502.
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Timeout(_))
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::InvalidUrl(why) => write!(f, "invalid upstream url: {why}"),
            UpstreamError::Resolve { host, source } => write!(f, "resolving {host}: {source}"),
            UpstreamError::Connect { host, source } => write!(f, "connecting to {host}: {source}"),
            UpstreamError::Timeout(phase) => write!(f, "timed out {phase}"),
            UpstreamError::Tls { host, detail } => write!(f, "tls with {host}: {detail}"),
            UpstreamError::Malformed(why) => write!(f, "malformed response: {why}"),
            UpstreamError::RedirectLoop(_) => f.write_str("redirect loop"),
            UpstreamError::TooManyRedirects(n) => write!(f, "more than {n} redirects"),
            UpstreamError::BadRedirect(_) => f.write_str("redirect to an unusable location"),
            UpstreamError::Truncated => f.write_str("body ended before its declared length"),
            UpstreamError::Io(e) => write!(f, "i/o: {e}"),
        }
    }
}

impl std::error::Error for UpstreamError {}

impl From<io::Error> for UpstreamError {
    fn from(e: io::Error) -> Self {
        UpstreamError::Io(e)
    }
}
