//! Continuous streams (`/stream/{id}`: live MPEG-TS and VOD files): opening a source
//! before anything is committed to the client, trying the next source while nothing has
//! been sent (so a failure is a 502/504, never an empty 200), and then handing the open
//! upstream to the pump, which carries bytes and switches sources inside the response.

mod open;
mod pump;
pub mod resolver;
pub mod sniff;

use std::sync::Arc;
use std::time::SystemTime;

use url::Url;

use crate::app::App;
use crate::registry::{ClientInfo, Stream};
use crate::server::{error, Incoming, Reply};
use crate::upstream::{self, Request};
pub use open::{next_source, open_source, try_sources, Opened, SourceFailure};

/// Serves `GET` or `HEAD /stream/{id}`.
pub async fn play(
    app: &Arc<App>,
    stream: Arc<Stream>,
    incoming: Incoming,
    client: ClientInfo,
) -> Reply {
    let range = incoming.header("range").map(str::to_owned);
    let head_only = incoming.method() == http_types::Method::Head;
    if head_only {
        if let Some(reply) = open::probe(app, &stream, range.as_deref()).await {
            return reply;
        }
    }
    let opened = match open::open_with_failover(app, &stream, range.as_deref()).await {
        Ok(opened) => opened,
        Err(failure) => return failure.reply(),
    };
    match opened {
        Opened::Media(media) if head_only => Reply::Media(media.head, Box::new(open::NoBody)),
        Opened::Media(media) => {
            let Some(guard) = stream.attach(client, SystemTime::now()) else {
                return error(404, "Stream not found");
            };
            pump::reply(app.clone(), guard, media)
        }
        Opened::Passthrough(reply) => reply,
        Opened::Playlist(response, first) => {
            crate::hls::serve_fetched(app, &stream, &incoming, response, first, &client).await
        }
    }
}

/// The upstream request for `url` on behalf of `stream`: its user agent, `Referer` and
/// `Origin` of the stream's primary source, `Accept: */*`, Basic credentials when the URL
/// carries `user:password@`, then its custom headers.
pub fn request_for(app: &App, stream: &Stream, url: Url, range: Option<&str>) -> Request {
    let origin = Url::parse(&stream.spec.url)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let mut headers = vec![
        ("User-Agent".to_owned(), stream.spec.user_agent.clone()),
        ("Accept".to_owned(), "*/*".to_owned()),
    ];
    if origin.starts_with("http") {
        headers.push(("Referer".to_owned(), format!("{origin}/")));
        headers.push(("Origin".to_owned(), origin));
    }
    if let Some(credentials) = basic_credentials(&url) {
        headers.push(("Authorization".to_owned(), credentials));
    }
    let mut request = Request::get(
        url,
        headers,
        (app.config.connect_timeout, app.config.read_timeout),
    );
    for (name, value) in &stream.spec.headers {
        request.set_header(name, value);
    }
    if let Some(range) = range {
        request.set_header("Range", range);
    }
    request
}

/// `Basic <base64(user:password)>` for a URL with userinfo, as curl and players send it.
fn basic_credentials(url: &Url) -> Option<String> {
    use base64::Engine;

    if url.username().is_empty() {
        return None;
    }
    let decode = |part: &str| {
        percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned()
    };
    let pair = format!(
        "{}:{}",
        decode(url.username()),
        decode(url.password().unwrap_or(""))
    );
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    ))
}

/// Fetches `url` for `stream`, following redirects.
pub async fn fetch_for(
    app: &App,
    stream: &Stream,
    url: &str,
    range: Option<&str>,
) -> Result<upstream::Response, SourceFailure> {
    let url = Url::parse(url).map_err(|_| SourceFailure::invalid_url(url))?;
    upstream::fetch(request_for(app, stream, url, range))
        .await
        .map_err(SourceFailure::from_upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_becomes_basic_credentials() {
        let url = Url::parse("http://alice:p%40ss@provider.test/live.ts").unwrap();
        assert_eq!(
            basic_credentials(&url).as_deref(),
            Some("Basic YWxpY2U6cEBzcw==")
        );
        assert_eq!(
            basic_credentials(&Url::parse("http://provider.test/x").unwrap()),
            None
        );
    }
}
