//! One client session of a stream: a player on a continuous stream (one or more open
//! connections sharing an id) or an HLS session (a series of requests carrying its id).
//! It counts what was served and can be told to leave.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use event_listener::{Event, EventListener};
use portable_atomic::{AtomicU64, Ordering};

use super::stream::Stream;

/// Who the client is, as the API shows it.
#[derive(Clone, Debug)]
pub struct ClientInfo {
    pub id: String,
    pub user_agent: String,
    pub ip_address: String,
    pub username: Option<String>,
}

/// How a client's session ends: continuous clients when their last connection closes,
/// HLS clients after a silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    Continuous,
    Hls,
}

pub struct Client {
    pub info: ClientInfo,
    pub kind: ClientKind,
    pub created_at: SystemTime,
    pub(super) bytes: AtomicU64,
    pub(super) segments: AtomicU64,
    pub(super) last_access: Mutex<(SystemTime, Instant)>,
    /// Open connections streaming to this client (continuous clients).
    pub(super) connections: AtomicUsize,
    /// Set once when the session ends, so `client_disconnected` is published once.
    pub(super) ended: AtomicBool,
    kicked: AtomicBool,
    kick: Event,
}

impl Client {
    pub(super) fn new(info: ClientInfo, kind: ClientKind, now: SystemTime) -> Client {
        Client {
            info,
            kind,
            created_at: now,
            bytes: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            last_access: Mutex::new((now, Instant::now())),
            connections: AtomicUsize::new(0),
            ended: AtomicBool::new(false),
            kicked: AtomicBool::new(false),
            kick: Event::new(),
        }
    }

    pub fn bytes_served(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn segments_served(&self) -> u64 {
        self.segments.load(Ordering::Relaxed)
    }

    pub(super) fn touch(&self, now: SystemTime) {
        *self.last_access.lock().unwrap_or_else(|e| e.into_inner()) = (now, Instant::now());
    }

    pub(super) fn last_access(&self) -> (SystemTime, Instant) {
        *self.last_access.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Tells every connection of this client to close.
    pub(super) fn kick(&self) {
        self.kicked.store(true, std::sync::atomic::Ordering::SeqCst);
        self.kick.notify(usize::MAX);
    }

    /// Whether the client has been told to leave.
    pub fn is_kicked(&self) -> bool {
        self.kicked.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves when the client is told to leave. Check [`Client::is_kicked`] after
    /// creating the listener, so a kick in between is not missed.
    pub fn kicked(&self) -> EventListener {
        self.kick.listen()
    }
}

/// Held by a connection streaming to a continuous client. Dropping it (the player went
/// away, or the response ended) closes the session when it was the last connection.
pub struct ClientGuard {
    pub(super) stream: Arc<Stream>,
    pub(super) client: Arc<Client>,
}

impl ClientGuard {
    pub fn client(&self) -> &Arc<Client> {
        &self.client
    }

    pub fn stream(&self) -> &Arc<Stream> {
        &self.stream
    }

    /// Counts bytes written to the player, on the client, its stream and the totals.
    pub fn add_bytes(&self, n: usize) {
        self.stream.record_bytes(&self.client, n as u64);
    }
}

impl Drop for ClientGuard {
    fn drop(&mut self) {
        self.stream.release(&self.client, SystemTime::now());
    }
}
