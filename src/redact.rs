//! Log-safe views of values that may carry credentials. IPTV URLs put user names,
//! passwords and tokens in paths and queries, so a URL reaches a log line only as
//! scheme, host, port and the last path segment.

use std::fmt;

/// Displays a URL without userinfo, query, fragment or inner path segments:
/// `http://host:8080/…/123.ts`.
pub struct SafeUrl<'a>(pub &'a str);

impl fmt::Display for SafeUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Ok(url) = url::Url::parse(self.0) else {
            return f.write_str("<unparsable url>");
        };
        write!(f, "{}://", url.scheme())?;
        match url.host_str() {
            Some(host) => f.write_str(host)?,
            None => f.write_str("?")?,
        }
        if let Some(port) = url.port() {
            write!(f, ":{port}")?;
        }
        let mut segments = url.path_segments().into_iter().flatten();
        let last = segments.next_back().unwrap_or("");
        let inner = segments.next().is_some();
        let ellipsis = if inner { "…/" } else { "" };
        write!(f, "/{ellipsis}{}", Escaped(last))
    }
}

/// Displays client-supplied text with control characters escaped, so a log line
/// cannot be split or forged.
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars().take(200) {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_queries_and_inner_segments() {
        let cases = [
            (
                "http://u:p@host:8080/live/user/pass/123.ts?token=abc",
                "http://host:8080/…/123.ts",
            ),
            ("https://cdn.test/index.m3u8", "https://cdn.test/index.m3u8"),
            ("http://cdn.test/", "http://cdn.test/"),
            ("not a url", "<unparsable url>"),
        ];
        for (input, shown) in cases {
            assert_eq!(SafeUrl(input).to_string(), shown, "{input}");
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            Escaped("VLC\r\nINFO fake").to_string(),
            "VLC\\r\\nINFO fake"
        );
    }
}
