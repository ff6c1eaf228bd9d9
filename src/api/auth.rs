//! The API token check: the `X-API-Token` header (any case) or the `api_token` query
//! parameter, a non-empty header winning, compared in constant time.

use crate::app::App;
use crate::server::{json, Incoming, Reply};

const MISSING: &str =
    "API token required. Provide token via X-API-Token header or api_token query parameter.";

/// `Ok` when no token is configured or the request carries the right one.
pub fn check(app: &App, incoming: &Incoming) -> Result<(), Reply> {
    let Some(expected) = app.config.api_token.as_deref() else {
        return Ok(());
    };
    let header = incoming.header("x-api-token").filter(|t| !t.is_empty());
    let query = incoming.query("api_token");
    let offered = header.map(str::to_owned).or(query);
    match offered {
        None => Err(unauthorized()),
        Some(token) if constant_time_eq(token.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(json(
            403,
            &serde_json::json!({ "detail": "Invalid API token" }),
        )),
    }
}

fn unauthorized() -> Reply {
    let mut reply = json(401, &serde_json::json!({ "detail": MISSING }));
    if let Reply::Full(response) = &mut reply {
        response.insert_header("WWW-Authenticate", "Bearer");
    }
    reply
}

/// Compares without an early exit, so the time taken says nothing about where the first
/// difference is. The length is not secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equal_tokens_match_and_others_do_not() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(constant_time_eq(b"", b""));
    }
}
