//! The body of `POST /streams`, parsed and validated into a [`StreamSpec`], pure. Every
//! error names the field it is about, so a 422 tells the caller what to fix.

use serde_json::{Map, Value};

use crate::registry::{Metadata, StreamSpec};

/// Longest URL accepted; provider URLs with tokens are long, but not this long.
const MAX_URL: usize = 8 * 1024;

/// Most backup URLs per stream.
const MAX_FAILOVER_URLS: usize = 32;

/// Parses a JSON body; `Err` carries the 422 detail.
pub fn parse(body: &[u8], default_user_agent: &str) -> Result<StreamSpec, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body: invalid JSON ({e})"))?;
    let Value::Object(fields) = value else {
        return Err("body: expected a JSON object".into());
    };
    let url = match fields.get("url") {
        Some(Value::String(url)) => checked_url("url", url)?,
        Some(_) => return Err("url: expected a string".into()),
        None => return Err("url: field required".into()),
    };
    Ok(StreamSpec {
        url,
        failover_urls: failover_urls(&fields)?,
        failover_resolver_url: resolver_url(&fields)?,
        user_agent: user_agent(&fields, default_user_agent)?,
        metadata: metadata(&fields)?,
        headers: headers(&fields)?,
    })
}

/// An http or https URL with a host, or an error naming `field`.
pub fn checked_url(field: &str, text: &str) -> Result<String, String> {
    let text = text.trim();
    let bad = || format!("{field}: must be an http or https URL with a host");
    if text.is_empty() || text.len() > MAX_URL || text.chars().any(char::is_control) {
        return Err(bad());
    }
    let parsed = url::Url::parse(text).map_err(|_| bad())?;
    let has_host = parsed.host_str().is_some_and(|h| !h.is_empty());
    if !matches!(parsed.scheme(), "http" | "https") || !has_host {
        return Err(bad());
    }
    Ok(text.to_owned())
}

fn failover_urls(fields: &Map<String, Value>) -> Result<Vec<String>, String> {
    let list = match fields.get("failover_urls") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err("failover_urls: expected a list of URLs".into()),
    };
    if list.len() > MAX_FAILOVER_URLS {
        return Err(format!("failover_urls: at most {MAX_FAILOVER_URLS} URLs"));
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(url) => checked_url(&format!("failover_urls[{i}]"), url),
            _ => Err(format!("failover_urls[{i}]: expected a string")),
        })
        .collect()
}

fn resolver_url(fields: &Map<String, Value>) -> Result<Option<String>, String> {
    match fields.get("failover_resolver_url") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(url)) if url.trim().is_empty() => Ok(None),
        Some(Value::String(url)) => checked_url("failover_resolver_url", url).map(Some),
        Some(_) => Err("failover_resolver_url: expected a string".into()),
    }
}

fn user_agent(fields: &Map<String, Value>, default: &str) -> Result<String, String> {
    match fields.get("user_agent") {
        None | Some(Value::Null) => Ok(default.to_owned()),
        Some(Value::String(ua)) if ua.trim().is_empty() => Ok(default.to_owned()),
        Some(Value::String(ua)) if ua.chars().any(char::is_control) || ua.len() > 1024 => {
            Err("user_agent: must be one line of at most 1024 characters".into())
        }
        Some(Value::String(ua)) => Ok(ua.trim().to_owned()),
        Some(_) => Err("user_agent: expected a string".into()),
    }
}

/// Scalars become strings the way the original API stores them: `42` → `"42"`,
/// `true` → `"True"`.
fn metadata(fields: &Map<String, Value>) -> Result<Metadata, String> {
    let map = match fields.get("metadata") {
        None | Some(Value::Null) => return Ok(Metadata::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err("metadata: expected an object".into()),
    };
    map.iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Bool(true) => "True".into(),
                Value::Bool(false) => "False".into(),
                Value::Number(n) => n.to_string(),
                Value::Null => "None".into(),
                _ => {
                    return Err(format!(
                        "metadata.{key}: must be a string, number or boolean"
                    ))
                }
            };
            Ok((key.clone(), text))
        })
        .collect()
}

fn headers(fields: &Map<String, Value>) -> Result<Vec<(String, String)>, String> {
    let map = match fields.get("headers") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err("headers: expected an object of strings".into()),
    };
    map.iter()
        .map(|(name, value)| {
            let Value::String(value) = value else {
                return Err(format!("headers.{name}: expected a string"));
            };
            let name_ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !name_ok {
                return Err(format!("headers: {name:?} is not a valid header name"));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                return Err(format!("headers.{name}: value must be one line"));
            }
            Ok((name.clone(), value.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(body: &str) -> Result<StreamSpec, String> {
        parse(body.as_bytes(), "DefaultUA/1")
    }

    #[test]
    fn a_minimal_body_gets_defaults() {
        let spec = parse_str(r#"{"url":"http://upstream.test/live/1.ts"}"#).unwrap();
        assert_eq!(spec.user_agent, "DefaultUA/1");
        assert!(
            spec.failover_urls.is_empty() && spec.headers.is_empty() && spec.metadata.is_empty()
        );
    }

    #[test]
    fn metadata_scalars_become_strings_as_the_original_stores_them() {
        let spec =
            parse_str(r#"{"url":"http://a.test/x","metadata":{"n":42,"b":true,"s":"x","f":1.5}}"#)
                .unwrap();
        let got: Vec<_> = spec
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        assert_eq!(got, ["b=True", "f=1.5", "n=42", "s=x"]);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{}"#, "url:"),
            (r#"{"url":"ftp://a.test/x"}"#, "url:"),
            (r#"{"url":"http://"}"#, "url:"),
            (r#"{"url":"file:///etc/passwd"}"#, "url:"),
            (
                r#"{"url":"http://a.test/x","failover_urls":["http://b.test","nope"]}"#,
                "failover_urls[1]:",
            ),
            (
                r#"{"url":"http://a.test/x","metadata":{"deep":{"x":1}}}"#,
                "metadata.deep:",
            ),
            (
                r#"{"url":"http://a.test/x","headers":{"X-A":"1\r\nHost: evil"}}"#,
                "headers.X-A:",
            ),
            (
                r#"{"url":"http://a.test/x","headers":{"bad name":"1"}}"#,
                "headers:",
            ),
            (r#"{"url":"http://a.test/x","user_agent":5}"#, "user_agent:"),
            (r#"[1]"#, "body:"),
            (r#"{"url":"#, "body:"),
        ];
        for (body, field) in cases {
            let error = parse_str(body).unwrap_err();
            assert!(error.starts_with(field), "{body}: {error}");
        }
    }
}
