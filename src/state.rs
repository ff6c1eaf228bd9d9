//! The state file: what the service keeps across restarts (today the webhooks), loaded
//! once at start and saved atomically on each change, never per event, since routers
//! write to flash. Each section belongs to its module (webhooks to `webhook`), which
//! decides when something changed; this module only reads, validates the shape and writes.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::webhook::WebhookConfig;

/// The file format version this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// Largest state file read, in bytes. A webhook at its largest is a 2 KiB URL, 16 headers
/// of 64 + 1024 bytes and a 1 KiB secret; JSON escaping at most doubles the URL and the
/// headers (printable ASCII) and makes each control character in the secret 6 bytes:
/// 4 + 35 + 6 + 1 (layout) ≈ 46 KiB, and 64 webhooks ≈ 3 MiB. Anything bigger is not ours.
const MAX_STATE_BYTES: u64 = 4 * 1024 * 1024;

/// Everything in the state file. Sections this build does not know (written by a newer
/// one) are kept in `other` and written back unchanged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub webhooks: Vec<WebhookConfig>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Default for State {
    fn default() -> State {
        State {
            version: STATE_VERSION,
            webhooks: Vec::new(),
            other: Map::new(),
        }
    }
}

/// Why the state file could not be read or written. Each names the path.
#[derive(Debug)]
pub enum StateError {
    /// An I/O step failed; `action` says which ("read", "write", "rename", …).
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    /// The file was read but is not a state file this build understands.
    Invalid { path: PathBuf, cause: String },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Io {
                path,
                action,
                source,
            } => write!(
                f,
                "state file {}: cannot {action}: {source}",
                path.display()
            ),
            StateError::Invalid { path, cause } => {
                write!(
                    f,
                    "state file {}: not a valid state file: {cause}",
                    path.display()
                )
            }
        }
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Io { source, .. } => Some(source),
            StateError::Invalid { .. } => None,
        }
    }
}

/// The loaded state and where it lives. Without a path it keeps state in memory only.
/// Not shared by itself: its owner keeps it behind a lock, so saves never interleave.
#[derive(Debug)]
pub struct StateStore {
    path: Option<PathBuf>,
    state: State,
}

impl StateStore {
    /// A store that never touches the disk.
    pub fn in_memory() -> StateStore {
        StateStore {
            path: None,
            state: State::default(),
        }
    }

    /// Loads `path`. A missing file is an empty state. One that cannot be read or parsed
    /// is renamed to `<path>.corrupt-<unix seconds>` with an error line, and the state
    /// starts empty; it is an error only if even that rename fails, because the next save
    /// would then overwrite what may still be recovered by hand.
    pub fn open(path: &Path, now: SystemTime) -> Result<StateStore, StateError> {
        // Only a file of ours is ever moved aside: a directory or device named by mistake
        // is refused, never renamed.
        if let Ok(meta) = fs::metadata(path) {
            if !meta.is_file() {
                let source =
                    io::Error::new(io::ErrorKind::InvalidInput, "it is not a regular file");
                return Err(StateError::Io {
                    path: path.to_owned(),
                    action: "use it",
                    source,
                });
            }
        }
        let state = match load(path) {
            Ok(Some(state)) => state,
            Ok(None) => State::default(),
            Err(err) => {
                let aside = set_aside(path, now)?;
                log::error!(
                    "{err}; moved it to {} and started without saved webhooks \
                     (repair it and move it back while stopped, or add them again)",
                    aside.display()
                );
                State::default()
            }
        };
        Ok(StateStore {
            path: Some(path.to_owned()),
            state,
        })
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Applies `change` and saves the result. When saving fails, the change is not applied,
    /// so memory and disk never disagree; an unchanged state is not written at all.
    pub fn update(&mut self, change: impl FnOnce(&mut State)) -> Result<(), StateError> {
        let mut next = self.state.clone();
        change(&mut next);
        if next == self.state {
            return Ok(());
        }

        if let Some(path) = &self.path {
            save(path, &next)?;
        }
        self.state = next;
        Ok(())
    }
}

/// Reads and parses `path`; `Ok(None)` when it does not exist.
pub fn load(path: &Path) -> Result<Option<State>, StateError> {
    let io_error = |action, source| StateError::Io {
        path: path.to_owned(),
        action,
        source,
    };
    let bytes = match read_bounded(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_error("read", err)),
    };

    let invalid = |cause: String| StateError::Invalid {
        path: path.to_owned(),
        cause,
    };
    // The version is checked first, so a newer file is reported as newer, not as broken.
    let value: Value = serde_json::from_slice(&bytes).map_err(|err| invalid(err.to_string()))?;
    match value.get("version").and_then(Value::as_u64) {
        Some(version) if version == u64::from(STATE_VERSION) => {}
        Some(version) => {
            let cause = format!("version {version}, this build reads {STATE_VERSION}");
            return Err(invalid(cause));
        }
        None => return Err(invalid("no \"version\" number".to_owned())),
    }
    let state = State::deserialize(value).map_err(|err| invalid(err.to_string()))?;
    Ok(Some(state))
}

fn read_bounded(path: &Path) -> io::Result<Vec<u8>> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    if len > MAX_STATE_BYTES {
        let message = format!("{len} bytes, larger than the {MAX_STATE_BYTES} bytes allowed");
        return Err(io::Error::new(io::ErrorKind::InvalidData, message));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    io::Read::read_to_end(&mut io::Read::take(file, MAX_STATE_BYTES), &mut bytes)?;
    Ok(bytes)
}

/// Writes `state` to `path` so that a crash at any moment leaves either the old file or
/// the new one: write `<path>.tmp`, flush it to the device, rename it over `path`, then
/// flush the directory so the rename itself survives a power cut.
pub fn save(path: &Path, state: &State) -> Result<(), StateError> {
    let io_error = |action, source| StateError::Io {
        path: path.to_owned(),
        action,
        source,
    };
    let mut bytes = serde_json::to_vec_pretty(state)
        .map_err(|err| io_error("serialize", io::Error::other(err)))?;
    bytes.push(b'\n');

    let dir = parent_dir(path);
    fs::create_dir_all(dir).map_err(|err| io_error("create its directory", err))?;

    let tmp = sibling(path, ".tmp");
    let written =
        write_synced(&tmp, &bytes).map_err(|err| io_error("write the temporary file", err));
    let renamed = written.and_then(|()| {
        fs::rename(&tmp, path).map_err(|err| io_error("rename the temporary file", err))
    });
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed?;

    sync_dir(dir).map_err(|err| io_error("sync its directory", err))
}

/// Creates `path` afresh (owner read/write only on unix: it holds secrets) and syncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // A leftover from a crash may have other permissions; start from nothing.
    match fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }

    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);

    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing here; the rename is as durable as the OS makes it.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// Renames an unreadable state file out of the way and returns its new path.
fn set_aside(path: &Path, now: SystemTime) -> Result<PathBuf, StateError> {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let aside = sibling(path, &format!(".corrupt-{secs}"));
    fs::rename(path, &aside).map_err(|source| StateError::Io {
        path: path.to_owned(),
        action: "move the unreadable file aside",
        source,
    })?;
    Ok(aside)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// `path` with `suffix` appended to its file name: `state.json` → `state.json.tmp`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A fresh directory under the system temp dir, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let unique = format!("m3u-proxy-state-{name}-{}", uuid::Uuid::new_v4().simple());
            let dir = std::env::temp_dir().join(unique);
            fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn webhook(url: &str) -> WebhookConfig {
        let body = format!(r#"{{"url": "{url}", "headers": {{"X-Key": "k"}}, "secret": "s"}}"#);
        WebhookConfig::parse(body.as_bytes()).unwrap()
    }

    #[test]
    fn saved_state_loads_back_equal_with_unknown_sections_kept() {
        let dir = TempDir::new("roundtrip");
        let path = dir.0.join("nested/state.json");
        let mut state = State::default();
        state.webhooks.push(webhook("http://127.0.0.1:9/a"));
        state
            .other
            .insert("streams".to_owned(), serde_json::json!({"kept": true}));

        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), Some(state));
        assert!(!sibling(&path, ".tmp").exists());
    }

    #[test]
    fn largest_allowed_state_fits_the_read_limit() {
        use crate::webhook::MAX_WEBHOOKS;
        let mut config = webhook("http://127.0.0.1:9/a");
        config.url = format!("http://127.0.0.1/{}", "\"".repeat(2048 - 17));
        config.secret = Some("\u{1}".repeat(1024));
        config.headers = (0..16)
            .map(|n| (format!("{n:0>64}"), "\\".repeat(1024)))
            .collect();
        let state = State {
            webhooks: vec![config; MAX_WEBHOOKS],
            ..State::default()
        };

        let size = serde_json::to_vec_pretty(&state).unwrap().len() as u64;
        assert!(size < MAX_STATE_BYTES, "{size} bytes");
    }

    #[cfg(unix)]
    #[test]
    fn state_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = TempDir::new("mode");
        let path = dir.0.join("state.json");
        save(&path, &State::default()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn missing_file_is_an_empty_state() {
        let dir = TempDir::new("missing");
        let store = StateStore::open(&dir.0.join("state.json"), SystemTime::now()).unwrap();
        assert_eq!(store.state(), &State::default());
    }

    #[test]
    fn unreadable_files_are_moved_aside_and_named_in_the_error() {
        let cases = [
            ("{\"version\": 1, \"webhooks\": [", "EOF while parsing"),
            (
                r#"{"version": 1, "webhooks": [{"url": "wss://127.0.0.1"}]}"#,
                "scheme \"wss\"",
            ),
            (
                r#"{"version": 2, "webhooks": [{"endpoint": "x"}]}"#,
                "version 2",
            ),
            (r#"{"webhooks": []}"#, "no \"version\""),
        ];
        for (text, cause) in cases {
            let dir = TempDir::new("corrupt");
            let path = dir.0.join("state.json");
            fs::write(&path, text).unwrap();

            let err = load(&path).unwrap_err().to_string();
            assert!(err.contains(&*path.to_string_lossy()), "{text}: {err}");
            assert!(err.contains(cause), "{text}: {err}");

            let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
            let store = StateStore::open(&path, now).unwrap();
            assert_eq!(store.state(), &State::default(), "{text}");
            assert!(!path.exists(), "{text}");
            let aside = fs::read_to_string(sibling(&path, ".corrupt-1700000000")).unwrap();
            assert_eq!(aside, text);
        }
    }

    #[test]
    fn update_writes_only_real_changes_and_keeps_memory_on_failure() {
        let dir = TempDir::new("update");
        let path = dir.0.join("state.json");
        let mut store = StateStore::open(&path, SystemTime::now()).unwrap();

        store.update(|_| {}).unwrap();
        assert!(!path.exists(), "an unchanged state was written");

        store
            .update(|s| s.webhooks.push(webhook("http://127.0.0.1:9/a")))
            .unwrap();
        assert_eq!(load(&path).unwrap().unwrap().webhooks.len(), 1);

        // A directory where the file should be makes the rename fail.
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        fs::write(path.join("x"), "").unwrap();
        let err = store.update(|s| s.webhooks.clear()).unwrap_err();
        assert!(err.to_string().contains("cannot rename"), "{err}");
        assert_eq!(store.state().webhooks.len(), 1);
    }
}
