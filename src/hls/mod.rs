//! HLS: the routes that serve rewritten playlists (`/hls/{id}/playlist.m3u8`, with a
//! signed `url=` for variants and renditions) and proxied segments, keys and init
//! sections (`/hls/{id}/segment*`). The rewriting itself is pure and lives in
//! `rewrite`; the signed references in `reference`.

pub mod reference;
pub mod rewrite;
mod segment;

use std::io::Read;
use std::sync::Arc;
use std::time::SystemTime;

use http_types::Method;
use url::Url;

use crate::api::client_info;
use crate::app::App;
use crate::failover::Reason;
use crate::registry::{Client, ClientInfo, Kind, SourceSwitch, Stream};
use crate::relay::{fetch_for, next_source, try_sources, SourceFailure};
use crate::server::{error, text, Incoming, Reply};
use crate::upstream::{self, with_timeout};
use rewrite::UriKind;

/// Largest playlist accepted, after decompression. A 5,000-segment media playlist is
/// about 350 KiB; this leaves room while bounding what one request can cost a router.
const MAX_PLAYLIST: usize = 4 * 1024 * 1024;

const PLAYLIST_TYPE: &str = "application/vnd.apple.mpegurl";

/// `GET /hls/{id}/playlist.m3u8`: the stream's playlist, or with `url=` a variant or
/// rendition playlist it referenced, rewritten so everything flows through the proxy.
pub async fn playlist(app: &Arc<App>, id: &str, incoming: Incoming) -> Reply {
    let Some(stream) = app.registry.get(id) else {
        return error(404, "Stream not found");
    };
    let variant = match signed_reference(app, &stream, &incoming, UriKind::Playlist) {
        Ok(variant) => variant,
        Err(reply) => return reply,
    };
    let fetched = match &variant {
        Some(url) => fetch_variant(app, &stream, url).await,
        None => fetch_with_failover(app, &stream, stream.current()).await,
    };
    let (body, base) = match fetched {
        Ok(fetched) => fetched,
        Err(failure) => return failure.reply(),
    };
    let client = client_info(app, &incoming, &stream.id);
    respond(app, &stream, &incoming, client, &body, &base)
}

/// `GET /hls/{id}/segment*`: one segment, key or init section named by a signed reference.
pub async fn segment(app: &Arc<App>, id: &str, incoming: Incoming) -> Reply {
    let Some(stream) = app.registry.get(id) else {
        return error(404, "Stream not found");
    };
    let url = match signed_reference(app, &stream, &incoming, UriKind::Media) {
        Ok(Some(url)) => url,
        Ok(None) => {
            return error(
                403,
                "Forbidden: segment requests need a reference from this stream's playlist",
            )
        }
        Err(reply) => return reply,
    };
    let info = client_info(app, &incoming, &stream.id);
    let client = match session(&stream, &incoming, info) {
        Ok(client) => client,
        Err(reply) => return reply,
    };
    let range = incoming.header("range").map(str::to_owned);
    segment::serve(app, &stream, client, &url, range.as_deref()).await
}

/// A playlist reached through `/stream/{id}` (a source that did not say it was HLS):
/// read the rest of it and answer as the HLS route would.
pub async fn serve_fetched(
    app: &Arc<App>,
    stream: &Arc<Stream>,
    incoming: &Incoming,
    response: upstream::Response,
    first: Vec<u8>,
    client: &ClientInfo,
) -> Reply {
    match read_playlist(app, response, first).await {
        Ok((body, base)) => respond(app, stream, incoming, client.clone(), &body, &base),
        Err(failure) => failure.reply(),
    }
}

/// The upstream URL of a signed `url=`/`sig=` pair: `Ok(None)` when there is none, a
/// 403 reply when it is forged.
fn signed_reference(
    app: &App,
    stream: &Stream,
    incoming: &Incoming,
    kind: UriKind,
) -> Result<Option<String>, Reply> {
    let Some(raw) = incoming.raw_query("url") else {
        return Ok(None);
    };
    let sig = incoming.raw_query("sig").unwrap_or("");
    match reference::read(&app.reference_key, &stream.id, kind, raw, sig) {
        Some(url) => Ok(Some(url)),
        None => Err(error(
            403,
            "Forbidden: this reference was not issued for this stream",
        )),
    }
}

/// The client's HLS session with this request noted on it. A HEAD is a probe: it gets
/// what GET would answer and joins no session (`Ok(None)`). A 404 if the stream is gone.
fn session(
    stream: &Stream,
    incoming: &Incoming,
    client: ClientInfo,
) -> Result<Option<Arc<Client>>, Reply> {
    let gone = || error(404, "Stream not found");
    if incoming.method() == Method::Head {
        return if stream.is_removed() {
            Err(gone())
        } else {
            Ok(None)
        };
    }
    stream
        .touch_hls_client(client, SystemTime::now())
        .map(Some)
        .ok_or_else(gone)
}

fn respond(
    app: &App,
    stream: &Arc<Stream>,
    incoming: &Incoming,
    client: ClientInfo,
    body: &str,
    base: &Url,
) -> Reply {
    // A session is keyed by the client id, so the id is the same with or without one.
    let client_id = client.id.clone();
    if let Err(reply) = session(stream, incoming, client) {
        return reply;
    }
    stream.set_kind(Kind::Hls);
    let proxy_base = incoming.base_url(app);
    let key = &app.reference_key;
    let rewritten = rewrite::rewrite(body, base, |url, kind| {
        reference::write(key, &proxy_base, &stream.id, &client_id, url.as_str(), kind)
    });
    let mut reply = text(200, PLAYLIST_TYPE, rewritten.text);
    if let Reply::Full(response) = &mut reply {
        response.insert_header("Cache-Control", "no-cache, no-store");
        response.insert_header("X-Client-ID", client_id.as_str());
        response.insert_header("X-Stream-ID", stream.id.as_str());
    }
    reply
}

/// A playlist of the stream's sources from `start` on, moving through them while they fail.
async fn fetch_with_failover(
    app: &App,
    stream: &Stream,
    start: SourceSwitch,
) -> Result<(String, Url), SourceFailure> {
    let attempt =
        |source: SourceSwitch| async move { fetch_playlist(app, stream, &source.url).await };
    let (fetched, source) = try_sources(app, stream, start, attempt).await?;
    // A whole playlist arrived: the source works.
    stream.mark_working(source.generation);
    Ok(fetched)
}

/// A variant or rendition playlist. If it fails, the player gets the first variant of the
/// current source instead (a media playlist, never a master), after moving the stream to
/// its next source when the failed variant is one of the current source's own.
async fn fetch_variant(
    app: &App,
    stream: &Stream,
    url: &str,
) -> Result<(String, Url), SourceFailure> {
    let failure = match fetch_playlist(app, stream, url).await {
        Ok(fetched) => return Ok(fetched),
        Err(failure) => failure,
    };
    log::info!(
        "stream {} variant playlist failed: {}",
        stream.id,
        failure.detail
    );
    let Ok((mut body, mut base)) = fetch_with_failover(app, stream, stream.current()).await else {
        return Err(failure);
    };
    // Players go on asking for the variants of the master they were given. After a switch
    // those belong to a source the stream has left, and failing over again would only
    // move it away from the source that works.
    if playlists_of(&body, &base)
        .iter()
        .any(|playlist| playlist.as_str() == url)
    {
        let Some(next) = next_source(app, stream, &stream.current(), &failure).await else {
            return Err(failure);
        };
        let Ok(fetched) = fetch_with_failover(app, stream, next).await else {
            return Err(failure);
        };
        (body, base) = fetched;
    }
    match first_variant(&body).and_then(|uri| base.join(uri).ok()) {
        Some(variant) => fetch_playlist(app, stream, variant.as_str()).await,
        None => Ok((body, base)),
    }
}

/// Every playlist a master names (variants, renditions, I-frame playlists), resolved as
/// the rewriter resolves them, so they compare equal to the URLs in its references.
fn playlists_of(body: &str, base: &Url) -> Vec<Url> {
    let mut found = Vec::new();
    rewrite::rewrite(body, base, |url, kind| {
        if kind == UriKind::Playlist {
            found.push(url.clone());
        }
        String::new()
    });
    found
}

/// The first variant URI of a master playlist; `None` for a media playlist.
fn first_variant(body: &str) -> Option<&str> {
    let mut after_stream_inf = false;
    for line in body.lines().map(str::trim) {
        if line.len() >= 18 && line[..18].eq_ignore_ascii_case("#EXT-X-STREAM-INF:") {
            after_stream_inf = true;
        } else if after_stream_inf && !line.is_empty() && !line.starts_with('#') {
            return Some(line);
        }
    }
    None
}

async fn fetch_playlist(
    app: &App,
    stream: &Stream,
    url: &str,
) -> Result<(String, Url), SourceFailure> {
    let response = fetch_for(app, stream, url, None).await?;
    if !(200..300).contains(&response.status) {
        let detail = format!("playlist answered {}", response.status);
        return Err(SourceFailure::new(Reason::HttpStatus, &detail));
    }
    read_playlist(app, response, Vec::new()).await
}

/// Reads a playlist body (after `first`, bytes already read), decompresses it, and
/// checks that it is one. Returns the text and the URL it came from after redirects.
async fn read_playlist(
    app: &App,
    mut response: upstream::Response,
    first: Vec<u8>,
) -> Result<(String, Url), SourceFailure> {
    let read = with_timeout(
        app.config.read_timeout,
        response.body.read_to_end(MAX_PLAYLIST),
    )
    .await;
    let rest = match read {
        None => {
            return Err(SourceFailure::from_upstream(
                upstream::UpstreamError::Timeout("reading the playlist"),
            ))
        }
        Some(result) => result.map_err(SourceFailure::from_upstream)?,
    };
    let mut raw = first;
    raw.extend_from_slice(&rest);
    let raw = decompress(response.header("content-encoding"), raw)?;
    if !rewrite::looks_like_playlist(&raw) {
        let detail = "source did not answer with an HLS playlist".to_owned();
        return Err(SourceFailure::new(Reason::BadContent, &detail));
    }
    Ok((String::from_utf8_lossy(&raw).into_owned(), response.url))
}

/// Undoes `Content-Encoding: gzip` or `deflate` (zlib-wrapped, or raw as some servers
/// send it). A playlist larger than [`MAX_PLAYLIST`] once decompressed is refused, as an
/// uncompressed one would be, rather than cut at the bound.
fn decompress(encoding: Option<&str>, raw: Vec<u8>) -> Result<Vec<u8>, SourceFailure> {
    let encoding = encoding.unwrap_or("").trim().to_ascii_lowercase();
    let bad = |detail: String| SourceFailure::new(Reason::BadContent, &detail);
    let inflate = |reader: &mut dyn Read| {
        let mut out = Vec::new();
        // One byte past the bound tells a playlist that is too large from one that fits.
        let read = reader.take(MAX_PLAYLIST as u64 + 1).read_to_end(&mut out);
        match read {
            Err(e) => Err(bad(format!("playlist did not decompress: {e}"))),
            Ok(_) if out.len() > MAX_PLAYLIST => Err(bad(format!(
                "playlist over {MAX_PLAYLIST} bytes decompressed"
            ))),
            Ok(_) => Ok(out),
        }
    };
    match encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" | "x-gzip" => inflate(&mut flate2::read::GzDecoder::new(raw.as_slice())),
        "deflate" if is_zlib(&raw) => inflate(&mut flate2::read::ZlibDecoder::new(raw.as_slice())),
        "deflate" => inflate(&mut flate2::read::DeflateDecoder::new(raw.as_slice())),
        other => Err(bad(format!(
            "playlist sent with unsupported content-encoding {other}"
        ))),
    }
}

/// Whether a `deflate` body has the zlib wrapper RFC 9110 asks for (RFC 1950: method 8,
/// and the first two bytes a multiple of 31) rather than the raw stream some servers send.
fn is_zlib(raw: &[u8]) -> bool {
    let [method, flags, ..] = raw else {
        return false;
    };
    method & 0x0f == 8 && u16::from_be_bytes([*method, *flags]) % 31 == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_variant_of_a_master_is_found_and_media_playlists_have_none() {
        let master = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n\nlow/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=2\nhi.m3u8\n";
        assert_eq!(first_variant(master), Some("low/index.m3u8"));
        assert_eq!(first_variant("#EXTM3U\n#EXTINF:4,\nseg1.ts\n"), None);
    }

    #[test]
    fn a_master_names_its_variants_renditions_and_iframe_playlists_but_no_media() {
        let master = "#EXTM3U\n#EXT-X-SESSION-KEY:METHOD=AES-128,URI=\"k.key\"\n\
            #EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"en\",URI=\"audio/en.m3u8\"\n\
            #EXT-X-STREAM-INF:BANDWIDTH=1\nlow/index.m3u8\n\
            #EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1,URI=\"iframes.m3u8\"\n";
        let base = Url::parse("http://cdn.test/show/master.m3u8").unwrap();
        let found: Vec<String> = playlists_of(master, &base)
            .iter()
            .map(Url::to_string)
            .collect();
        let expected = ["audio/en.m3u8", "low/index.m3u8", "iframes.m3u8"]
            .map(|p| format!("http://cdn.test/show/{p}"));
        assert_eq!(found, expected);
    }

    #[test]
    fn gzip_and_deflate_playlists_decompress() {
        use std::io::Write;
        let text = b"#EXTM3U\n#EXTINF:4,\nseg1.ts\n".to_vec();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).unwrap();
        assert_eq!(
            decompress(Some("gzip"), gz.finish().unwrap()).unwrap(),
            text
        );
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&text).unwrap();
        assert_eq!(
            decompress(Some("deflate"), zlib.finish().unwrap()).unwrap(),
            text
        );
        let mut raw =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        raw.write_all(&text).unwrap();
        assert_eq!(
            decompress(Some("Deflate"), raw.finish().unwrap()).unwrap(),
            text
        );
        assert!(decompress(Some("br"), text).is_err());
    }

    #[test]
    fn playlists_decompressing_past_the_bound_are_refused_and_one_at_the_bound_is_not() {
        use std::io::Write;
        for len in [MAX_PLAYLIST, MAX_PLAYLIST + 1] {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&vec![b'#'; len]).unwrap();
            let decoded = decompress(Some("gzip"), gz.finish().unwrap());
            assert_eq!(decoded.is_ok(), len == MAX_PLAYLIST, "{len} bytes");
        }
    }
}
