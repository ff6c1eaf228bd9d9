//! Webhook configuration: the typed settings of one webhook, validated from the JSON body of
//! `POST /webhooks` (the state file stores the same shape and goes through the same checks),
//! the key that makes two spellings of a URL one webhook, and the URL form that is safe to
//! log. Pure; storing, listing and delivering are left to the registry and the pool.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::events::EventType;

/// Attempt timeout when the body gives none, in seconds.
pub const DEFAULT_TIMEOUT_SECS: f64 = 10.0;

/// Longest allowed attempt timeout. A hanging receiver holds one worker this long per
/// attempt, so this bounds how long it can keep that worker from the other receivers.
pub const MAX_TIMEOUT_SECS: f64 = 120.0;

/// Retries after the first attempt when the body gives none.
pub const DEFAULT_RETRY_ATTEMPTS: u32 = 3;

/// Most retries allowed: with the standard back-off, 10 retries span about three minutes.
pub const MAX_RETRY_ATTEMPTS: u32 = 10;

/// Longest accepted URL, in bytes.
pub const MAX_URL_LEN: usize = 2048;

/// Most custom headers per webhook. With the two limits below the custom part of a request
/// head is at most 16 × (64 + 1024 + 4) bytes ≈ 17 KiB, which fits the pool's 32 KiB
/// output buffer next to the headers the proxy adds itself.
pub const MAX_HEADERS: usize = 16;

/// Longest custom header name, in bytes.
pub const MAX_HEADER_NAME_LEN: usize = 64;

/// Longest custom header value, in bytes.
pub const MAX_HEADER_VALUE_LEN: usize = 1024;

/// Longest secret, in bytes. HMAC hashes longer keys down anyway.
pub const MAX_SECRET_LEN: usize = 1024;

/// Headers the proxy sets itself, or that would change how the request is framed; a custom
/// header may not replace them. `User-Agent` is not here: a receiver may want its own.
const RESERVED_HEADERS: [&str; 13] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "te",
    "upgrade",
    "expect",
    "x-event-id",
    "x-event-type",
    "x-delivery-attempt",
    "x-webhook-timestamp",
    "x-webhook-signature",
];

/// One webhook's settings, as validated. Also the entry stored in the state file, which is
/// why the secret and the header values are serialized here (listings use a view instead).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value")]
pub struct WebhookConfig {
    pub url: String,
    pub events: Vec<EventType>,
    /// Per-attempt limit in seconds, for connecting and for the whole exchange.
    #[serde(serialize_with = "serialize_seconds")]
    pub timeout: f64,
    /// Retries after the first attempt, for failures worth retrying.
    pub retry_attempts: u32,
    pub headers: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl WebhookConfig {
    /// Parses and validates a `POST /webhooks` body. The error message names the field.
    pub fn parse(body: &[u8]) -> Result<WebhookConfig, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|err| format!("body: not valid JSON: {err}"))?;
        WebhookConfig::try_from(value)
    }

    /// The attempt timeout as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// Whether events of this type go to this webhook.
    pub fn wants(&self, kind: EventType) -> bool {
        self.events.contains(&kind)
    }

    /// The key two spellings of this URL share (see [`url_key`]).
    pub fn key(&self) -> String {
        url_key(&self.url).unwrap_or_else(|| self.url.clone())
    }
}

impl TryFrom<Value> for WebhookConfig {
    type Error = String;

    fn try_from(value: Value) -> Result<WebhookConfig, String> {
        let Value::Object(fields) = value else {
            return Err("body: expected a JSON object with at least \"url\"".to_owned());
        };

        Ok(WebhookConfig {
            url: parse_url(field(&fields, "url"))?,
            events: parse_events(field(&fields, "events"))?,
            timeout: parse_timeout(field(&fields, "timeout"))?,
            retry_attempts: parse_retry_attempts(field(&fields, "retry_attempts"))?,
            headers: parse_headers(field(&fields, "headers"))?,
            secret: parse_secret(field(&fields, "secret"))?,
        })
    }
}

/// A field's value, with an explicit `null` read as absent.
fn field<'a>(fields: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    fields.get(name).filter(|value| !value.is_null())
}

fn parse_url(value: Option<&Value>) -> Result<String, String> {
    let Some(value) = value else {
        return Err("url: required, e.g. \"https://example.com/hook\"".to_owned());
    };
    let Some(text) = value.as_str().map(str::trim) else {
        return Err(format!("url: expected a string, got {}", kind_of(value)));
    };
    if text.chars().any(char::is_control) {
        return Err("url: contains control characters".to_owned());
    }
    if text.len() > MAX_URL_LEN {
        return Err(format!(
            "url: {} bytes long, at most {MAX_URL_LEN}",
            text.len()
        ));
    }

    let parsed = url::Url::parse(text).map_err(|err| format!("url: not a valid URL: {err}"))?;
    let scheme = parsed.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(format!(
            "url: scheme \"{scheme}\" is not supported: webhooks are delivered as HTTP(S) POST \
             requests to an http:// or https:// URL; for live events in a dashboard, \
             subscribe to GET /events (server-sent events) instead"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("url: has no host".to_owned());
    }
    if scheme == "https" && !cfg!(feature = "tls") {
        return Err("url: https is not available in this build (built without TLS)".to_owned());
    }
    Ok(text.to_owned())
}

fn parse_events(value: Option<&Value>) -> Result<Vec<EventType>, String> {
    let Some(value) = value else {
        return Ok(EventType::ALL.to_vec());
    };
    let Some(names) = value.as_array() else {
        return Err(format!(
            "events: expected a list of event types, got {}",
            kind_of(value)
        ));
    };
    if names.is_empty() {
        return Err("events: empty list; leave the field out to receive all events".to_owned());
    }

    let mut events = Vec::with_capacity(names.len());
    for name in names {
        let kind = parse_event_name(name)?;
        if !events.contains(&kind) {
            events.push(kind);
        }
    }
    Ok(events)
}

fn parse_event_name(name: &Value) -> Result<EventType, String> {
    let Some(text) = name.as_str() else {
        return Err(format!(
            "events: expected event type names, got {}",
            kind_of(name)
        ));
    };
    EventType::parse(text).ok_or_else(|| {
        let known: Vec<&str> = EventType::ALL.iter().map(|kind| kind.as_str()).collect();
        format!(
            "events: unknown event type {:?}; known types: {}",
            text.chars().take(64).collect::<String>(),
            known.join(", ")
        )
    })
}

fn parse_timeout(value: Option<&Value>) -> Result<f64, String> {
    let Some(value) = value else {
        return Ok(DEFAULT_TIMEOUT_SECS);
    };
    match value.as_f64() {
        Some(secs) if (1.0..=MAX_TIMEOUT_SECS).contains(&secs) => Ok(secs),
        Some(_) => Err(format!(
            "timeout: {value} seconds is out of range; use 1 to {MAX_TIMEOUT_SECS}"
        )),
        None => Err(format!(
            "timeout: expected a number of seconds, got {}",
            kind_of(value)
        )),
    }
}

fn parse_retry_attempts(value: Option<&Value>) -> Result<u32, String> {
    let Some(value) = value else {
        return Ok(DEFAULT_RETRY_ATTEMPTS);
    };
    match value.as_u64() {
        Some(count) if count <= u64::from(MAX_RETRY_ATTEMPTS) => Ok(count as u32),
        _ => Err(format!(
            "retry_attempts: expected a whole number from 0 to {MAX_RETRY_ATTEMPTS}, got {value}"
        )),
    }
}

fn parse_headers(value: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    let Some(value) = value else {
        return Ok(BTreeMap::new());
    };
    let Some(entries) = value.as_object() else {
        return Err(format!(
            "headers: expected an object of strings, got {}",
            kind_of(value)
        ));
    };
    if entries.len() > MAX_HEADERS {
        return Err(format!(
            "headers: {} given, at most {MAX_HEADERS}",
            entries.len()
        ));
    }

    let mut headers = BTreeMap::new();
    for (name, value) in entries {
        let value = check_header(name, value)?;
        let duplicate = headers
            .keys()
            .any(|seen: &String| seen.eq_ignore_ascii_case(name));
        if duplicate {
            return Err(format!(
                "headers: {name:?} is given twice (names ignore case)"
            ));
        }
        headers.insert(name.clone(), value);
    }
    Ok(headers)
}

/// Checks one custom header so it cannot break the request head (no CR, LF or other
/// control characters) or replace a header the proxy owns. Returns the value.
fn check_header(name: &str, value: &Value) -> Result<String, String> {
    let shown: String = name.chars().take(MAX_HEADER_NAME_LEN).collect();
    if name.is_empty() || name.len() > MAX_HEADER_NAME_LEN || !name.bytes().all(is_token_byte) {
        return Err(format!(
            "headers: {shown:?} is not a valid header name (letters, digits and !#$%&'*+-.^_`|~, \
             1 to {MAX_HEADER_NAME_LEN} characters)"
        ));
    }
    if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
        return Err(format!(
            "headers: {shown:?} is set by the proxy and cannot be replaced"
        ));
    }

    // Values are not echoed back: custom headers usually carry credentials.
    let Some(text) = value.as_str() else {
        return Err(format!(
            "headers: value of {shown:?} must be a string, got {}",
            kind_of(value)
        ));
    };
    if text.len() > MAX_HEADER_VALUE_LEN {
        return Err(format!(
            "headers: value of {shown:?} is {} bytes long, at most {MAX_HEADER_VALUE_LEN}",
            text.len()
        ));
    }
    if !text
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
    {
        return Err(format!(
            "headers: value of {shown:?} may hold only printable ASCII and tabs \
             (no line breaks or other control characters)"
        ));
    }
    Ok(text.to_owned())
}

/// RFC 9110 `tchar`: the bytes a header name may contain.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn parse_secret(value: Option<&Value>) -> Result<Option<String>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.as_str() {
        Some("") => Err("secret: empty; leave the field out to send unsigned requests".to_owned()),
        Some(text) if text.len() > MAX_SECRET_LEN => Err(format!(
            "secret: {} bytes long, at most {MAX_SECRET_LEN}",
            text.len()
        )),
        Some(text) => Ok(Some(text.to_owned())),
        None => Err(format!("secret: expected a string, got {}", kind_of(value))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Whole seconds are written as integers (`10`, not `10.0`), as API clients expect.
pub(crate) fn serialize_seconds<S: Serializer>(secs: &f64, s: S) -> Result<S::Ok, S::Error> {
    if secs.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(secs) {
        s.serialize_u64(*secs as u64)
    } else {
        s.serialize_f64(*secs)
    }
}

/// The identity of a webhook URL: parsed and re-serialized (so `HTTP://Host` and
/// `http://host` agree), without trailing slashes. `None` when the text is no URL.
pub fn url_key(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url.trim()).ok()?;
    Some(parsed.as_str().trim_end_matches('/').to_owned())
}

/// A webhook URL reduced to what is safe in a log line: scheme, host, port and the path
/// without its last segment. Webhook services put their token at the end of the path
/// (`/services/T0/B0/<token>`, `/api/webhooks/<id>/<token>`), and query strings and
/// userinfo carry credentials too, so those parts are never shown.
pub struct SafeHookUrl<'a>(pub &'a str);

impl fmt::Display for SafeHookUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(parsed) = url::Url::parse(self.0.trim()) else {
            return f.write_str("<invalid url>");
        };
        write!(
            f,
            "{}://{}",
            parsed.scheme(),
            parsed.host_str().unwrap_or("")
        )?;
        if let Some(port) = parsed.port() {
            write!(f, ":{port}")?;
        }

        let path = parsed.path();
        match path.trim_end_matches('/').rsplit_once('/') {
            Some((kept, last)) if !last.is_empty() => write!(f, "{kept}/…"),
            _ => f.write_str("/"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(body: &str) -> String {
        WebhookConfig::parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn minimal_body_gets_the_defaults() {
        let config = WebhookConfig::parse(br#"{"url": "http://127.0.0.1:9/hook"}"#).unwrap();
        assert_eq!(config.events, EventType::ALL.to_vec());
        assert_eq!(config.timeout(), Duration::from_secs(10));
        assert_eq!(config.retry_attempts, 3);
        assert!(config.headers.is_empty());
        assert_eq!(config.secret, None);
    }

    #[test]
    fn full_body_is_taken_as_given() {
        let body = r#"{"url": "https://127.0.0.1/h",
            "events": ["STREAM_FAILED", "Client_Connected"], "timeout": 2.5,
            "retry_attempts": 0, "headers": {"Authorization": "Bearer x"}, "secret": "s"}"#;
        let config = WebhookConfig::parse(body.as_bytes()).unwrap();
        assert_eq!(
            config.events,
            [EventType::StreamFailed, EventType::ClientConnected]
        );
        assert_eq!(config.timeout(), Duration::from_millis(2500));
        assert_eq!(config.retry_attempts, 0);
        assert_eq!(config.headers["Authorization"], "Bearer x");
        assert_eq!(config.secret.as_deref(), Some("s"));
    }

    #[test]
    fn invalid_bodies_name_the_field_and_the_problem() {
        let cases = [
            (r#"{"url": "wss://127.0.0.1/live"}"#, "url: scheme \"wss\""),
            (r#"{"url": "wss://127.0.0.1/live"}"#, "GET /events"),
            (r#"{"url": "ftp://127.0.0.1/x"}"#, "url: scheme \"ftp\""),
            (r#"{"url": "http:"}"#, "url: "),
            (r#"{"url": "not a url"}"#, "url: not a valid URL"),
            (
                r#"{"url": "http://127.0.0.1/\u0001"}"#,
                "url: contains control",
            ),
            (r#"{"events": ["stream_started"]}"#, "url: required"),
            (r#"{"url": 5}"#, "url: expected a string, got a number"),
            (
                r#"{"url": "http://127.0.0.1", "events": ["stream_paused"]}"#,
                "\"stream_paused\"",
            ),
            (
                r#"{"url": "http://127.0.0.1", "events": []}"#,
                "events: empty",
            ),
            (
                r#"{"url": "http://127.0.0.1", "events": "stream_started"}"#,
                "events: expected",
            ),
            (
                r#"{"url": "http://127.0.0.1", "timeout": 0}"#,
                "timeout: 0 seconds",
            ),
            (
                r#"{"url": "http://127.0.0.1", "timeout": 121}"#,
                "timeout: 121 seconds",
            ),
            (
                r#"{"url": "http://127.0.0.1", "timeout": "5"}"#,
                "timeout: expected a number",
            ),
            (
                r#"{"url": "http://127.0.0.1", "retry_attempts": 11}"#,
                "retry_attempts:",
            ),
            (
                r#"{"url": "http://127.0.0.1", "retry_attempts": -1}"#,
                "retry_attempts:",
            ),
            (
                r#"{"url": "http://127.0.0.1", "retry_attempts": 1.5}"#,
                "retry_attempts:",
            ),
            (
                r#"{"url": "http://127.0.0.1", "secret": ""}"#,
                "secret: empty",
            ),
            (
                r#"{"url": "http://127.0.0.1", "secret": 7}"#,
                "secret: expected a string",
            ),
            (r#"["http://127.0.0.1"]"#, "body: expected a JSON object"),
            ("{", "body: not valid JSON"),
        ];
        for (body, expected) in cases {
            let message = error_of(body);
            assert!(message.contains(expected), "{body}: {message}");
        }
    }

    #[test]
    fn headers_that_could_inject_or_override_are_refused() {
        let cases = [
            (r#"{"X-Ok": "a\r\nX-Evil: 1"}"#, "no line breaks"),
            (r#"{"X-Ok": "a\nb"}"#, "no line breaks"),
            (r#"{"X Bad": "v"}"#, "not a valid header name"),
            (r#"{"X-Bad\r\n": "v"}"#, "not a valid header name"),
            (r#"{"": "v"}"#, "not a valid header name"),
            (r#"{"Content-Length": "1"}"#, "set by the proxy"),
            (r#"{"x-webhook-signature": "sha256=0"}"#, "set by the proxy"),
            (r#"{"X-Token": 5}"#, "must be a string"),
            (r#"{"X-Token": "a", "x-token": "b"}"#, "given twice"),
            (r#"["X-Token"]"#, "headers: expected an object"),
        ];
        for (headers, expected) in cases {
            let body = format!(r#"{{"url": "http://127.0.0.1", "headers": {headers}}}"#);
            let message = error_of(&body);
            assert!(message.contains(expected), "{headers}: {message}");
            assert!(!message.contains("X-Evil"), "value echoed: {message}");
        }
    }

    #[test]
    fn null_fields_mean_the_default() {
        let body =
            br#"{"url": "http://127.0.0.1", "events": null, "timeout": null, "secret": null}"#;
        let config = WebhookConfig::parse(body).unwrap();
        assert_eq!(config.events.len(), 6);
        assert_eq!(config.secret, None);
    }

    #[test]
    fn url_key_ignores_trailing_slash_and_case_of_scheme_and_host() {
        let cases = [
            (
                "http://127.0.0.1:9000/hook",
                "http://127.0.0.1:9000/hook/",
                true,
            ),
            ("HTTP://LOCALHOST/hook", "http://localhost/hook", true),
            ("http://127.0.0.1", "http://127.0.0.1/", true),
            ("http://127.0.0.1/a", "http://127.0.0.1/b", false),
            ("http://127.0.0.1/a?x=1", "http://127.0.0.1/a?x=2", false),
        ];
        for (a, b, same) in cases {
            assert_eq!(url_key(a) == url_key(b), same, "{a} vs {b}");
        }
    }

    #[test]
    fn logged_url_drops_userinfo_query_and_the_last_path_segment() {
        let cases = [
            (
                "https://user:pw@127.0.0.1:8443/hook?token=t",
                "https://127.0.0.1:8443/…",
            ),
            (
                "http://127.0.0.1/services/T0/B0/secret#frag",
                "http://127.0.0.1/services/T0/B0/…",
            ),
            (
                "http://127.0.0.1/api/hooks/42/token/",
                "http://127.0.0.1/api/hooks/42/…",
            ),
            ("http://127.0.0.1", "http://127.0.0.1/"),
            ("nonsense", "<invalid url>"),
        ];
        for (url, shown) in cases {
            assert_eq!(SafeHookUrl(url).to_string(), shown, "{url}");
        }
    }

    #[test]
    fn stored_form_round_trips_and_writes_whole_seconds_as_integers() {
        let body = br#"{"url": "http://127.0.0.1/h", "headers": {"A": "b"}, "secret": "s"}"#;
        let config = WebhookConfig::parse(body).unwrap();
        let stored = serde_json::to_value(&config).unwrap();
        assert_eq!(stored["timeout"], serde_json::json!(10));
        let back: WebhookConfig = serde_json::from_value(stored).unwrap();
        assert_eq!(back, config);
    }
}
