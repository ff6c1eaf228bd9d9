//! The failover resolver: when a stream names a `failover_resolver_url`, that service is
//! asked for the next source with a JSON POST (`current_url`, `metadata`,
//! `current_failover_index`) and answers `{"next_url": ...}`. Any failure of the
//! resolver falls back to the static list, so it can never make failover worse.

use serde_json::json;

use crate::app::App;
use crate::redact::SafeUrl;
use crate::registry::{SourceSwitch, Stream};
use crate::upstream::{self, Method};

/// Largest resolver answer read.
const MAX_ANSWER: usize = 16 * 1024;

/// The resolver's choice after `failed`, or `None` to use the static list.
pub async fn next_url(app: &App, stream: &Stream, failed: &SourceSwitch) -> Option<String> {
    let resolver = stream.spec.failover_resolver_url.as_deref()?;
    match ask(app, stream, resolver, failed).await {
        Ok(url) => {
            log::info!("stream {} resolver chose {}", stream.id, SafeUrl(&url));
            Some(url)
        }
        Err(why) => {
            log::warn!(
                "stream {} resolver {} failed ({why}); using the failover list",
                stream.id,
                SafeUrl(resolver)
            );
            None
        }
    }
}

async fn ask(
    app: &App,
    stream: &Stream,
    resolver: &str,
    failed: &SourceSwitch,
) -> Result<String, String> {
    let url = url::Url::parse(resolver).map_err(|e| e.to_string())?;
    let body = json!({
        "current_url": failed.url,
        "metadata": stream.spec.metadata,
        "current_failover_index": failed.index,
        "stream_id": stream.id,
    });
    let mut request = super::request_for(app, stream, url, None);
    request.method = Method::Post;
    request.body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
    request.set_header("Content-Type", "application/json");
    request.set_header("Accept", "application/json");

    let mut response = upstream::fetch(request).await.map_err(|e| e.to_string())?;
    if !(200..300).contains(&response.status) {
        return Err(format!("status {}", response.status));
    }
    let read = upstream::with_timeout(
        app.config.read_timeout,
        response.body.read_to_end(MAX_ANSWER),
    );
    let answer = read
        .await
        .ok_or("timed out reading the answer")?
        .map_err(|e| e.to_string())?;
    next_url_from(&answer)
}

/// Takes `next_url` from a resolver answer; it must be an http(s) URL.
fn next_url_from(answer: &[u8]) -> Result<String, String> {
    let value: serde_json::Value =
        serde_json::from_slice(answer).map_err(|e| format!("answer is not JSON: {e}"))?;
    let next = value
        .get("next_url")
        .and_then(|v| v.as_str())
        .ok_or("answer has no next_url")?;
    let parsed = url::Url::parse(next).map_err(|_| "next_url is not a URL")?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err("next_url is not an http(s) URL".into());
    }
    Ok(next.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_must_carry_an_http_next_url() {
        assert_eq!(
            next_url_from(br#"{"next_url":"http://b.test/x"}"#).unwrap(),
            "http://b.test/x"
        );
        assert!(next_url_from(br#"{"next_url":"file:///etc/passwd"}"#).is_err());
        assert!(next_url_from(br#"{"url":"http://b.test/x"}"#).is_err());
        assert!(next_url_from(b"<html>").is_err());
    }
}
