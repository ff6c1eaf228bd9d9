//! Opening a connection to an upstream: name resolution, TCP connect with a timeout,
//! and TLS (rustls with the webpki roots) for `https://` when the `tls` feature is on.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_net::TcpStream;
use futures_lite::io::{AsyncRead, AsyncWrite};
use url::Url;

use super::{with_timeout, UpstreamError};

/// A plain or TLS connection, read and written the same way.
pub enum Connection {
    Plain(TcpStream),
    #[cfg(feature = "tls")]
    Tls(Box<futures_rustls::client::TlsStream<TcpStream>>),
}

impl Connection {
    /// Connects to the URL's host and port within `limit`, with TLS for https.
    pub async fn open(url: &Url, limit: Duration) -> Result<Connection, UpstreamError> {
        let host = url
            .host_str()
            .ok_or_else(|| UpstreamError::InvalidUrl("no host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| UpstreamError::InvalidUrl("no port".into()))?;
        let tcp = with_timeout(limit, connect_tcp(host, port))
            .await
            .ok_or(UpstreamError::Timeout("connecting"))??;
        // Media is latency-sensitive and written in large pieces already.
        let _ = tcp.set_nodelay(true);
        match url.scheme() {
            "http" => Ok(Connection::Plain(tcp)),
            "https" => with_timeout(limit, tls(host, tcp))
                .await
                .ok_or(UpstreamError::Timeout("in the tls handshake"))?,
            other => Err(UpstreamError::InvalidUrl(format!("scheme {other}"))),
        }
    }
}

async fn connect_tcp(host: &str, port: u16) -> Result<TcpStream, UpstreamError> {
    // IPv6 literals arrive bracketed from the URL.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs =
        async_net::resolve((bare, port))
            .await
            .map_err(|source| UpstreamError::Resolve {
                host: host.to_owned(),
                source,
            })?;
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no addresses");
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(UpstreamError::Connect {
        host: host.to_owned(),
        source: last,
    })
}

#[cfg(feature = "tls")]
async fn tls(host: &str, tcp: TcpStream) -> Result<Connection, UpstreamError> {
    use std::sync::{Arc, OnceLock};

    static CONFIG: OnceLock<Arc<futures_rustls::rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = futures_rustls::rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let config = futures_rustls::rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    });
    let tls_error = |detail: String| UpstreamError::Tls {
        host: host.to_owned(),
        detail,
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let name = futures_rustls::pki_types::ServerName::try_from(bare.to_owned())
        .map_err(|e| tls_error(e.to_string()))?;
    let connector = futures_rustls::TlsConnector::from(config.clone());
    let stream = connector
        .connect(name, tcp)
        .await
        .map_err(|e| tls_error(e.to_string()))?;
    Ok(Connection::Tls(Box::new(stream)))
}

#[cfg(not(feature = "tls"))]
async fn tls(host: &str, _tcp: TcpStream) -> Result<Connection, UpstreamError> {
    Err(UpstreamError::Tls {
        host: host.to_owned(),
        detail: "this build has no TLS support (built without the `tls` feature)".into(),
    })
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_flush(cx),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(s) => Pin::new(s).poll_close(cx),
            #[cfg(feature = "tls")]
            Connection::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}
