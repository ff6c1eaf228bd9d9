//! Routing, pure: a method and a path (with any `ROOT_PATH` prefix already removed) map
//! to a [`Route`]. HEAD is accepted wherever GET is. Which routes need the API token is
//! decided here too, so the rule sits next to the table it applies to.

use http_types::Method;

/// Every endpoint of the proxy, with the ids taken from the path.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Root,
    Livez,
    Health,
    Stats,
    StatsStreams,
    StatsClients,
    Clients,
    CreateStream,
    ListStreams,
    StreamsByMetadata,
    DeleteByMetadata,
    DeleteOldestByMetadata,
    GetStream(&'a str),
    DeleteStream(&'a str),
    Failover(&'a str),
    Play(&'a str),
    HlsPlaylist(&'a str),
    HlsSegment(&'a str),
    DisconnectClient(&'a str, &'a str),
    AddWebhook,
    ListWebhooks,
    RemoveWebhook,
    TestWebhook,
    Events,
    Preflight,
    /// The path exists but not with this method.
    MethodNotAllowed,
    NotFound,
}

impl Route<'_> {
    /// Whether the API token (when configured) is needed. Playback, liveness and CORS
    /// preflight are open; everything that reads or changes proxy state is not.
    pub fn needs_token(&self) -> bool {
        !matches!(
            self,
            Route::Livez
                | Route::Play(_)
                | Route::HlsPlaylist(_)
                | Route::HlsSegment(_)
                | Route::Preflight
                | Route::NotFound
                | Route::MethodNotAllowed
        )
    }
}

/// Strips `root` (e.g. `/iptv`) from the front of `path` when present.
pub fn strip_root<'a>(path: &'a str, root: &str) -> &'a str {
    if root.is_empty() {
        return path;
    }
    match path.strip_prefix(root) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// Maps a request to its route.
pub fn route<'a>(method: &Method, path: &'a str) -> Route<'a> {
    if *method == Method::Options {
        return Route::Preflight;
    }
    let get = matches!(method, Method::Get | Method::Head);
    let post = *method == Method::Post;
    let delete = *method == Method::Delete;
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let pick = |ok: bool, route: Route<'a>| if ok { route } else { Route::MethodNotAllowed };

    match segments.as_slice() {
        [""] => pick(get, Route::Root),
        ["livez"] => pick(get, Route::Livez),
        ["health"] => pick(get, Route::Health),
        ["stats"] => pick(get, Route::Stats),
        ["stats", "streams"] => pick(get, Route::StatsStreams),
        ["stats", "clients"] => pick(get, Route::StatsClients),
        ["clients"] => pick(get, Route::Clients),
        ["events"] => pick(get, Route::Events),
        ["streams"] if post => Route::CreateStream,
        ["streams"] => pick(get, Route::ListStreams),
        ["streams", "by-metadata"] if delete => Route::DeleteByMetadata,
        ["streams", "by-metadata"] => pick(get, Route::StreamsByMetadata),
        ["streams", "oldest-by-metadata"] => pick(delete, Route::DeleteOldestByMetadata),
        ["streams", id] if delete => Route::DeleteStream(id),
        ["streams", id] => pick(get, Route::GetStream(id)),
        ["streams", id, "failover"] => pick(post, Route::Failover(id)),
        ["stream", id] => pick(get, Route::Play(without_extension(id))),
        ["hls", id, "playlist.m3u8"] => pick(get, Route::HlsPlaylist(id)),
        ["hls", id, file] if is_segment_file(file) => pick(get, Route::HlsSegment(id)),
        ["hls", id, "clients", client] => pick(delete, Route::DisconnectClient(id, client)),
        ["webhooks"] if post => Route::AddWebhook,
        ["webhooks"] if delete => Route::RemoveWebhook,
        ["webhooks"] => pick(get, Route::ListWebhooks),
        ["webhooks", "test"] => pick(post, Route::TestWebhook),
        _ => Route::NotFound,
    }
}

/// `segment`, `segment.ts`, `segment.m4s`…: the segment route keeps the upstream's
/// extension for players that check it.
fn is_segment_file(file: &str) -> bool {
    file == "segment"
        || file
            .strip_prefix("segment.")
            .is_some_and(|ext| !ext.is_empty())
}

/// `abc123.ts` → `abc123`: players like a file extension on the stream URL.
fn without_extension(id: &str) -> &str {
    id.split('.').next().unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_compatibility_table() {
        let cases = [
            (Method::Get, "/", Route::Root),
            (Method::Head, "/health", Route::Health),
            (Method::Post, "/streams", Route::CreateStream),
            (Method::Get, "/streams/", Route::ListStreams),
            (
                Method::Get,
                "/streams/by-metadata",
                Route::StreamsByMetadata,
            ),
            (
                Method::Delete,
                "/streams/by-metadata",
                Route::DeleteByMetadata,
            ),
            (
                Method::Delete,
                "/streams/oldest-by-metadata",
                Route::DeleteOldestByMetadata,
            ),
            (Method::Get, "/streams/ab12", Route::GetStream("ab12")),
            (Method::Delete, "/streams/ab12", Route::DeleteStream("ab12")),
            (
                Method::Post,
                "/streams/ab12/failover",
                Route::Failover("ab12"),
            ),
            (Method::Head, "/stream/ab12", Route::Play("ab12")),
            (Method::Get, "/stream/ab12.ts", Route::Play("ab12")),
            (
                Method::Get,
                "/hls/ab12/playlist.m3u8",
                Route::HlsPlaylist("ab12"),
            ),
            (
                Method::Get,
                "/hls/ab12/segment.ts",
                Route::HlsSegment("ab12"),
            ),
            (Method::Get, "/hls/ab12/segment", Route::HlsSegment("ab12")),
            (
                Method::Get,
                "/hls/ab12/segment.m4s",
                Route::HlsSegment("ab12"),
            ),
            (Method::Get, "/hls/ab12/segmentx", Route::NotFound),
            (
                Method::Delete,
                "/hls/ab12/clients/c1",
                Route::DisconnectClient("ab12", "c1"),
            ),
            (Method::Post, "/webhooks/test", Route::TestWebhook),
            (Method::Options, "/anything", Route::Preflight),
            (Method::Put, "/streams/ab12", Route::MethodNotAllowed),
            (Method::Get, "/nope", Route::NotFound),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn playback_is_open_and_management_needs_the_token() {
        assert!(!route(&Method::Get, "/stream/x").needs_token());
        assert!(!route(&Method::Get, "/hls/x/segment").needs_token());
        assert!(!route(&Method::Get, "/livez").needs_token());
        assert!(route(&Method::Get, "/health").needs_token());
        assert!(route(&Method::Delete, "/hls/x/clients/c").needs_token());
    }

    #[test]
    fn root_path_is_optional() {
        assert_eq!(strip_root("/iptv/streams", "/iptv"), "/streams");
        assert_eq!(strip_root("/iptv", "/iptv"), "/");
        assert_eq!(strip_root("/streams", "/iptv"), "/streams");
        assert_eq!(strip_root("/iptvx/streams", "/iptv"), "/iptvx/streams");
    }
}
