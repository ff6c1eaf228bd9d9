//! Building replies: JSON bodies, `{"detail": ...}` errors, and the CORS headers every
//! response carries. A reply is either buffered (framed by async-h1's encoder) or a
//! media body that streams itself through a [`super::ClientSink`].

use std::future::Future;
use std::pin::Pin;

use http_types::{Response, StatusCode};
use serde::Serialize;

use super::sink::ClientSink;

/// How a streamed body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyEnd {
    /// Every byte was sent; the connection may be reused.
    Complete,
    /// Cut short (upstream failure, client gone, told to stop): close the connection
    /// without finishing the framing, so the player can tell.
    Aborted,
}

/// A body that writes itself to the client, chunk by chunk.
pub trait MediaBody: Send {
    fn pump<'a>(
        self: Box<Self>,
        sink: &'a mut ClientSink,
    ) -> Pin<Box<dyn Future<Output = BodyEnd> + Send + 'a>>;
}

/// The head of a streamed reply. `length` becomes `Content-Length` (a `u64`, so files
/// over 4 GiB keep their length on 32-bit routers too); without it the body is chunked.
pub struct MediaHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub length: Option<u64>,
}

pub enum Reply {
    /// Boxed: a `Response` is large, and replies travel through `Result`s.
    Full(Box<Response>),
    Media(MediaHead, Box<dyn MediaBody>),
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply::Full(Box::new(response))
    }
}

/// A JSON reply with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> Reply {
    let mut response = Response::new(status_code(status));
    match serde_json::to_vec(value) {
        Ok(body) => {
            response.set_body(body);
            response.insert_header("Content-Type", "application/json");
        }
        Err(e) => {
            log::error!("api reply could not be serialised: {e}");
            return error(500, "Internal server error");
        }
    }
    response.into()
}

/// A `{"detail": message}` error reply.
pub fn error(status: u16, detail: &str) -> Reply {
    json(status, &serde_json::json!({ "detail": detail }))
}

/// A reply with a text body and content type.
pub fn text(status: u16, content_type: &str, body: impl Into<http_types::Body>) -> Reply {
    let mut response = Response::new(status_code(status));
    response.set_body(body.into());
    response.insert_header("Content-Type", content_type);
    response.into()
}

/// Maps a number to a status code; unknown numbers (an upstream's 458) become 502.
pub fn status_code(status: u16) -> StatusCode {
    StatusCode::try_from(status).unwrap_or(StatusCode::BadGateway)
}

/// Headers every response carries so that browser dashboards may call the API.
pub const CORS_HEADERS: [(&str, &str); 4] = [
    ("Access-Control-Allow-Origin", "*"),
    (
        "Access-Control-Allow-Methods",
        "GET, POST, PUT, DELETE, OPTIONS, HEAD",
    ),
    ("Access-Control-Allow-Headers", "*"),
    (
        "Access-Control-Expose-Headers",
        "Content-Length, Content-Range, Accept-Ranges",
    ),
];
