//! One client connection: read a request head (bounded in size by async-h1 and in time
//! by `header_timeout`), hand it to the API, write the reply, and repeat while the
//! connection is kept alive. A malformed request gets a 400 and the connection closes.

use std::net::SocketAddr;
use std::sync::Arc;

use async_net::TcpStream;
use futures_lite::io::{self, AsyncReadExt, AsyncWriteExt};
use http_types::{Method, Response};

use super::reply::{BodyEnd, MediaBody, MediaHead, Reply, CORS_HEADERS};
use super::sink::ClientSink;
use super::Incoming;
use crate::app::App;
use crate::upstream::with_timeout;

/// Serves requests on `socket` until it closes, a reply ends it, or shutdown.
pub(super) async fn serve(app: Arc<App>, socket: TcpStream, peer: SocketAddr) {
    loop {
        let decoded = with_timeout(
            app.config.header_timeout,
            async_h1::server::decode(socket.clone()),
        )
        .await;
        let (request, mut unread_body) = match decoded {
            None => return log::debug!("connection {peer}: no request head in time, closing"),
            Some(Ok(None)) => return,
            Some(Ok(Some(parts))) => parts,
            Some(Err(e)) => return reject_malformed(&socket, peer, &e).await,
        };
        // async-h1 builds the request URL from `Host` and the target: a Host holding `/`,
        // `?` or `#` would change the path that gets routed.
        if !request
            .header("host")
            .is_some_and(|h| super::is_plain_host(h.as_str()))
        {
            return reject_malformed(&socket, peer, &http_types::format_err!("bad Host header"))
                .await;
        }
        let client_wants_close = request
            .header("connection")
            .is_some_and(|v| v.as_str().eq_ignore_ascii_case("close"));
        let method = request.method();

        let incoming = Incoming::new(request, peer, socket.clone());
        let reply = crate::api::handle(&app, incoming).await;
        let reusable = match reply {
            Reply::Full(response) => write_full(&socket, *response, method).await,
            Reply::Media(head, body) => write_media(&app, &socket, method, head, body).await,
        };
        // Skip whatever request body the handler did not read, so the next head parses.
        let drained = io::copy(&mut unread_body, &mut io::sink()).await.is_ok();
        if !reusable || !drained || client_wants_close {
            let _ = socket.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

async fn reject_malformed(socket: &TcpStream, peer: SocketAddr, error: &http_types::Error) {
    log::debug!("connection {peer}: malformed request: {error}");
    let body = r#"{"detail":"Malformed HTTP request"}"#;
    let reply = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut socket = socket.clone();
    let _ = socket.write_all(reply.as_bytes()).await;
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

/// Writes a buffered reply through async-h1's encoder; true if the connection may be reused.
async fn write_full(socket: &TcpStream, mut response: Response, method: Method) -> bool {
    for (name, value) in CORS_HEADERS {
        response.insert_header(name, value);
    }
    let closes = response
        .header("connection")
        .is_some_and(|v| v.as_str().eq_ignore_ascii_case("close"));
    let mut encoder = async_h1::server::Encoder::new(response, method);
    let mut out = socket.clone();
    io::copy(&mut encoder, &mut out).await.is_ok() && !closes
}

/// Writes a streamed reply: our own head (so lengths are `u64`), then the body pumps
/// itself. HEAD gets the head alone and the body is dropped unread.
async fn write_media(
    app: &App,
    socket: &TcpStream,
    method: Method,
    head: MediaHead,
    body: Box<dyn MediaBody>,
) -> bool {
    let chunked = head.length.is_none() && !is_bodiless(head.status);
    let head_bytes = media_head(&head, chunked);
    let mut out = socket.clone();
    let wrote = with_timeout(
        app.config.client_write_timeout,
        out.write_all(head_bytes.as_bytes()),
    )
    .await;
    if !matches!(wrote, Some(Ok(()))) {
        return false;
    }
    if method == Method::Head || is_bodiless(head.status) {
        return true;
    }
    let mut sink = ClientSink::new(socket.clone(), chunked, app.config.client_write_timeout);
    match body.pump(&mut sink).await {
        BodyEnd::Complete => sink.finish().await.is_ok(),
        BodyEnd::Aborted => false,
    }
}

fn is_bodiless(status: u16) -> bool {
    status == 204 || status == 304 || (100..200).contains(&status)
}

fn media_head(head: &MediaHead, chunked: bool) -> String {
    let reason = super::reply::status_code(head.status).canonical_reason();
    let mut text = format!("HTTP/1.1 {} {reason}\r\n", head.status);
    for (name, value) in head
        .headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .chain(CORS_HEADERS)
    {
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
        text.push_str("\r\n");
    }
    match head.length {
        Some(length) => text.push_str(&format!("Content-Length: {length}\r\n")),
        None if chunked => text.push_str("Transfer-Encoding: chunked\r\n"),
        None => {}
    }
    text.push_str("\r\n");
    text
}

/// Reads at most `limit` bytes of a request body within `time`; `None` if it is longer,
/// slower or unreadable, so a client trickling a body cannot hold a connection forever.
pub async fn read_body(
    request: &mut http_types::Request,
    limit: usize,
    time: std::time::Duration,
) -> Option<Vec<u8>> {
    let body = request.take_body();
    let mut bytes = Vec::new();
    let mut limited = body.take(limit as u64 + 1);
    with_timeout(time, limited.read_to_end(&mut bytes))
        .await?
        .ok()?;
    (bytes.len() <= limit).then_some(bytes)
}
