//! Rewrites the URIs in an HLS playlist (master or media) so that clients fetch them through
//! the proxy. It owns line handling, tag and attribute parsing, and resolving references
//! against the URL the playlist was finally fetched from. It knows nothing of proxy routes,
//! signing or I/O: the caller's closure turns each absolute upstream URL into the text to write.

use std::ops::Range;

use url::Url;

/// What a URI in a playlist points at; decides which proxy route serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriKind {
    /// Another playlist: a variant, a rendition, an I-frame playlist or a rendition report.
    Playlist,
    /// Anything else: a segment, key, init section, part, preload hint or session data.
    Media,
}

/// Which of the two HLS playlist types the text is, judged by its tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaylistKind {
    /// Has `#EXT-X-STREAM-INF`, `#EXT-X-I-FRAME-STREAM-INF` or `#EXT-X-MEDIA`.
    Master,
    /// Everything else, including text with no recognised tag at all.
    Media,
}

/// The result of [`rewrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    /// The playlist with every HTTP(S) URI replaced by the closure's text.
    pub text: String,
    /// Master or media, from the tags seen.
    pub kind: PlaylistKind,
    /// How many URIs were handed to the closure and replaced.
    pub uris: usize,
    /// How many URIs could not be resolved against the base and were left as written.
    pub unresolved: usize,
}

/// Rewrites every URI of `text`, resolved against `base`, with what `proxy_uri` returns.
///
/// Lines that hold no rewritable URI come out byte for byte, line endings included. URIs whose
/// scheme is not http or https, and URIs that cannot be resolved, are left as written.
pub fn rewrite(
    text: &str,
    base: &Url,
    mut proxy_uri: impl FnMut(&Url, UriKind) -> String,
) -> Rewritten {
    let mut rewriter = Rewriter::new(base, &mut proxy_uri, text.len());

    let body = match text.strip_prefix(BOM) {
        Some(rest) => {
            rewriter.out.push(BOM);
            rest
        }
        None => text,
    };

    for line in body.split_inclusive('\n') {
        rewriter.line(line);
    }
    rewriter.finish()
}

/// Sniffs whether a body is an HLS playlist: an optional UTF-8 BOM, optional whitespace,
/// then `#EXTM3U` in any case. Pass at least the first few dozen bytes.
pub fn looks_like_playlist(first_bytes: &[u8]) -> bool {
    let bytes = first_bytes.strip_prefix(BOM_BYTES).unwrap_or(first_bytes);
    let bytes = bytes.trim_ascii_start();

    bytes
        .get(..HEADER.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(HEADER.as_bytes()))
}

const BOM: char = '\u{feff}';

const BOM_BYTES: &[u8] = "\u{feff}".as_bytes();

const HEADER: &str = "#EXTM3U";

/// What a recognised tag means to the rewriter.
#[derive(Clone, Copy)]
enum Role {
    /// `#EXT-X-STREAM-INF`: master, and the next URI line is a variant playlist.
    Variant,
    /// A master-only tag whose `URI` attribute is a playlist.
    MasterUri,
    /// A tag whose `URI` attribute has this kind, saying nothing of the playlist type.
    Uri(UriKind),
    /// A tag that only media playlists carry.
    MediaOnly,
}

const TAGS: &[(&str, Role)] = &[
    ("EXTINF", Role::MediaOnly),
    ("EXT-X-KEY", Role::Uri(UriKind::Media)),
    ("EXT-X-MAP", Role::Uri(UriKind::Media)),
    ("EXT-X-PART", Role::Uri(UriKind::Media)),
    ("EXT-X-PRELOAD-HINT", Role::Uri(UriKind::Media)),
    ("EXT-X-RENDITION-REPORT", Role::Uri(UriKind::Playlist)),
    ("EXT-X-TARGETDURATION", Role::MediaOnly),
    ("EXT-X-STREAM-INF", Role::Variant),
    ("EXT-X-MEDIA", Role::MasterUri),
    ("EXT-X-I-FRAME-STREAM-INF", Role::MasterUri),
    ("EXT-X-SESSION-KEY", Role::Uri(UriKind::Media)),
    ("EXT-X-SESSION-DATA", Role::Uri(UriKind::Media)),
];

fn lookup(name: &str) -> Option<Role> {
    TAGS.iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|&(_, role)| role)
}

/// One pass over the lines, writing into `out` as it goes.
struct Rewriter<'a, F> {
    base: &'a Url,
    proxy_uri: &'a mut F,
    out: String,
    master: bool,
    variant_pending: bool,
    uris: usize,
    unresolved: usize,
}

impl<'a, F: FnMut(&Url, UriKind) -> String> Rewriter<'a, F> {
    fn new(base: &'a Url, proxy_uri: &'a mut F, input_len: usize) -> Self {
        // Proxy URLs are usually longer than the relative names they replace; the headroom
        // saves most of the regrowth copies on large media playlists.
        let out = String::with_capacity(input_len + input_len / 2);
        Rewriter {
            base,
            proxy_uri,
            out,
            master: false,
            variant_pending: false,
            uris: 0,
            unresolved: 0,
        }
    }

    fn finish(self) -> Rewritten {
        let kind = if self.master {
            PlaylistKind::Master
        } else {
            PlaylistKind::Media
        };
        Rewritten {
            text: self.out,
            kind,
            uris: self.uris,
            unresolved: self.unresolved,
        }
    }

    /// `line` still carries its `\n` or `\r\n`; everything not replaced is copied through.
    fn line(&mut self, line: &str) {
        let body = line.trim_ascii_start();
        let indent = line.len() - body.len();

        if body.starts_with('#') {
            self.tag(line, indent + 1);
        } else if body.is_empty() {
            self.out.push_str(line);
        } else {
            let kind = self.uri_line_kind();
            self.uri(line, kind);
        }
    }

    /// Only the most recent `#EXT-X-STREAM-INF` claims a URI line, and only the first one after it.
    fn uri_line_kind(&mut self) -> UriKind {
        if std::mem::take(&mut self.variant_pending) {
            UriKind::Playlist
        } else {
            UriKind::Media
        }
    }

    /// `name_at` is the byte just after the `#`.
    fn tag(&mut self, line: &str, name_at: usize) {
        let after_hash = &line[name_at..];
        let (name, attrs_at) = match after_hash.find(':') {
            Some(colon) => (&after_hash[..colon], name_at + colon + 1),
            None => (after_hash, line.len()),
        };

        match lookup(name.trim_ascii_end()) {
            Some(role) => self.known_tag(line, attrs_at, role),
            None => self.out.push_str(line),
        }
    }

    fn known_tag(&mut self, line: &str, attrs_at: usize, role: Role) {
        match role {
            Role::Variant => {
                self.master = true;
                self.variant_pending = true;
            }
            Role::MasterUri => self.master = true,
            Role::Uri(_) | Role::MediaOnly => {}
        }

        match role {
            Role::MasterUri => self.uri_attrs(line, attrs_at, UriKind::Playlist),
            Role::Uri(kind) => self.uri_attrs(line, attrs_at, kind),
            Role::Variant | Role::MediaOnly => self.out.push_str(line),
        }
    }

    /// Copies the tag line, replacing the value of each `URI` attribute.
    fn uri_attrs(&mut self, line: &str, attrs_at: usize, kind: UriKind) {
        let mut copied = 0;

        for value in UriAttrs::new(line, attrs_at) {
            self.out.push_str(&line[copied..value.start]);
            self.uri(&line[value.clone()], kind);
            copied = value.end;
        }
        self.out.push_str(&line[copied..]);
    }

    /// Writes `raw` with the URI inside it replaced, keeping the whitespace around it.
    fn uri(&mut self, raw: &str, kind: UriKind) {
        let uri = raw.trim_ascii();
        let Some(absolute) = self.resolve(uri) else {
            self.out.push_str(raw);
            return;
        };

        let lead = raw.len() - raw.trim_ascii_start().len();
        self.out.push_str(&raw[..lead]);
        self.out.push_str(&(self.proxy_uri)(&absolute, kind));
        self.out.push_str(&raw[lead + uri.len()..]);
        self.uris += 1;
    }

    /// `None` for anything the proxy should not touch: empty, non-HTTP or unresolvable.
    fn resolve(&mut self, uri: &str) -> Option<Url> {
        // Keys like `skd://` and inline `data:` are for the player itself; checking the scheme
        // first also spares parsing (and copying) a large `data:` URI.
        if uri.is_empty() || has_foreign_scheme(uri) {
            return None;
        }

        match self.base.join(uri) {
            Ok(url) if is_http(&url) => Some(url),
            Ok(_) => None,
            Err(_) => {
                self.unresolved += 1;
                None
            }
        }
    }
}

fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

/// True when `uri` starts with a scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":"`)
/// other than http or https.
fn has_foreign_scheme(uri: &str) -> bool {
    let Some(scheme) = scheme_of(uri) else {
        return false;
    };
    !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https")
}

/// The scheme of `uri`, if it has one. Stops at the first byte a scheme cannot hold, so a
/// relative name costs a few bytes of scanning, not a search of the whole (often long) URI.
fn scheme_of(uri: &str) -> Option<&str> {
    let bytes = uri.as_bytes();
    if !bytes.first()?.is_ascii_alphabetic() {
        return None;
    }

    let len = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))?;
    (bytes[len] == b':').then(|| &uri[..len])
}

/// Walks an attribute list (`NAME=VALUE,NAME="quoted, value",...`) and yields the byte range,
/// within the whole line, of each `URI` value: inside the quotes when quoted.
struct UriAttrs<'a> {
    line: &'a str,
    pos: usize,
}

impl<'a> UriAttrs<'a> {
    fn new(line: &'a str, attrs_at: usize) -> Self {
        UriAttrs {
            line,
            pos: attrs_at,
        }
    }

    /// The next attribute's name and value range, moving past its separating comma.
    fn next_attr(&mut self) -> Option<(&'a str, Option<Range<usize>>)> {
        let rest = self.line.get(self.pos..).filter(|rest| !rest.is_empty())?;
        let name_end = self.pos + rest.find(['=', ',']).unwrap_or(rest.len());
        let name = &self.line[self.pos..name_end];

        if self.line[name_end..].starts_with('=') {
            Some((name, self.value(name_end + 1)))
        } else {
            self.pos = name_end + 1;
            Some((name, None))
        }
    }

    fn value(&mut self, at: usize) -> Option<Range<usize>> {
        let rest = &self.line[at..];
        let start = at + (rest.len() - rest.trim_start_matches([' ', '\t']).len());

        if self.line[start..].starts_with('"') {
            self.quoted(start + 1)
        } else {
            let end = self.comma_or_end(start);
            self.pos = end + 1;
            Some(start..end)
        }
    }

    /// A value opened by a quote at `open - 1`; unterminated means it is no value at all.
    fn quoted(&mut self, open: usize) -> Option<Range<usize>> {
        let Some(len) = self.line[open..].find('"') else {
            self.pos = self.line.len();
            return None;
        };

        let close = open + len;
        self.pos = self.comma_or_end(close) + 1;
        Some(open..close)
    }

    fn comma_or_end(&self, from: usize) -> usize {
        self.line[from..]
            .find(',')
            .map_or(self.line.len(), |at| from + at)
    }
}

impl Iterator for UriAttrs<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        loop {
            let (name, value) = self.next_attr()?;
            if name.trim_ascii().eq_ignore_ascii_case("URI") {
                if let Some(value) = value {
                    return Some(value);
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "rewrite_tests.rs"]
mod tests;
