//! The HTTP server: the accept loop with its bound on open connections, one task per
//! connection on the caller's executor, and what a handler learns about a request
//! ([`Incoming`]). Routing is pure and lives in `router`; the handlers live in `api`.

mod connection;
mod reply;
pub mod router;
mod sink;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_net::{TcpListener, TcpStream};
use futures_lite::io::AsyncWriteExt;
use http_types::{Method, Request};

use crate::app::App;
use crate::config::IpNet;
pub use connection::read_body;
pub use reply::{error, json, status_code, text, BodyEnd, MediaBody, MediaHead, Reply};
pub use sink::{ClientSink, ClientWatcher, CHUNK};

/// Accepts connections until the listener fails or the task is dropped.
pub async fn accept_loop(
    app: Arc<App>,
    listener: TcpListener,
    executor: Arc<smol::Executor<'static>>,
) {
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors, most likely: back off instead of spinning.
                log::warn!("server: accept failed: {e}; retrying in 100 ms");
                async_io::Timer::after(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slot) = ConnectionSlot::take(&app.open_connections, app.config.max_connections)
        else {
            executor.spawn(refuse_busy(socket, peer)).detach();
            continue;
        };
        let app = app.clone();
        executor
            .spawn(async move {
                let _slot = slot;
                connection::serve(app, socket, peer).await;
            })
            .detach();
    }
}

/// One of the bounded connection places; dropping it frees the place.
struct ConnectionSlot(Arc<AtomicUsize>);

impl ConnectionSlot {
    fn take(open: &Arc<AtomicUsize>, max: usize) -> Option<ConnectionSlot> {
        let previous = open.fetch_add(1, Ordering::SeqCst);
        if previous >= max {
            open.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(ConnectionSlot(open.clone()))
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn refuse_busy(mut socket: TcpStream, peer: SocketAddr) {
    log::warn!("server: refusing {peer}: connection limit reached (raise --max-connections)");
    let body = r#"{"detail":"Server busy: too many open connections"}"#;
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nRetry-After: 5\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let write = socket.write_all(reply.as_bytes());
    let _ = crate::upstream::with_timeout(std::time::Duration::from_secs(2), write).await;
}

/// A request as a handler sees it.
pub struct Incoming {
    pub request: Request,
    pub peer: SocketAddr,
    /// The client's socket, for watching it close during a streamed reply.
    pub socket: TcpStream,
}

impl Incoming {
    fn new(request: Request, peer: SocketAddr, socket: TcpStream) -> Incoming {
        Incoming {
            request,
            peer,
            socket,
        }
    }

    pub fn method(&self) -> Method {
        self.request.method()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.request.header(name).map(|v| v.as_str())
    }

    /// A query parameter, percent-decoded once.
    pub fn query(&self, name: &str) -> Option<String> {
        self.request
            .url()
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    /// The raw (still encoded) value of a query parameter, exactly as sent.
    pub fn raw_query(&self, name: &str) -> Option<&str> {
        self.request
            .url()
            .query()?
            .split('&')
            .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
    }

    fn peer_is_trusted(&self, trusted: &[IpNet]) -> bool {
        trusted.iter().any(|net| net.contains(self.peer.ip()))
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the last
    /// `X-Forwarded-For` entry that is not itself a trusted proxy (entries to its left
    /// were written by the client and prove nothing).
    pub fn client_ip(&self, trusted: &[IpNet]) -> IpAddr {
        let is_trusted = |ip: IpAddr| trusted.iter().any(|net| net.contains(ip));
        let forwarded = self
            .peer_is_trusted(trusted)
            .then(|| self.header("x-forwarded-for"))
            .flatten()
            .and_then(|list| {
                list.rsplit(',')
                    .filter_map(|entry| entry.trim().parse::<IpAddr>().ok())
                    .find(|ip| !is_trusted(*ip))
            });
        let ip = forwarded.unwrap_or(self.peer.ip());
        match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        }
    }

    /// The base that links written for this client start with: the configured public
    /// URL, or the scheme, host and prefix the client used, as a trusted proxy forwarded
    /// them (`X-Forwarded-Proto`, `-Host`, `-Prefix`, each on its own) or as `Host` says.
    pub fn base_url(&self, app: &App) -> String {
        if let Some(fixed) = &app.config.public_base_url {
            return fixed.as_str().trim_end_matches('/').to_owned();
        }
        let trusted = self.peer_is_trusted(&app.config.trusted_proxies);
        let forwarded = |name: &str| {
            let value = self.header(name).filter(|_| trusted)?;
            value
                .split(',')
                .next()
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let scheme = match forwarded("x-forwarded-proto") {
            Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        };
        let host = forwarded("x-forwarded-host")
            .or(self.header("host"))
            .filter(|host| is_plain_host(host))
            .map(str::to_owned)
            .unwrap_or_else(|| self.socket_host());
        let prefix = forwarded("x-forwarded-prefix")
            .filter(|p| p.starts_with('/') && is_plain_path(p))
            .unwrap_or("")
            .trim_end_matches('/');
        format!("{scheme}://{host}{prefix}{}", app.config.root_path)
    }

    fn socket_host(&self) -> String {
        match self.socket.local_addr() {
            Ok(addr) => addr.to_string(),
            Err(_) => "127.0.0.1".into(),
        }
    }
}

/// A `Host` value safe to write into a playlist: name or address, optional port.
pub(crate) fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
}

/// A path prefix safe to write into a playlist.
fn is_plain_path(path: &str) -> bool {
    path.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
}
