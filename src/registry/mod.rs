//! The registry of streams and their clients: creation (id = MD5 of the primary URL),
//! look-up, removal with its `stream_stopped` event, and the periodic sweep that ends
//! idle HLS clients and idle streams. It publishes lifecycle events; it never calls
//! back into the relay or the API, which read snapshots.

mod client;
mod stream;
mod view;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use md5::{Digest, Md5};
use portable_atomic::{AtomicU64, Ordering};

use crate::events::EventBus;
pub use client::{Client, ClientGuard, ClientInfo, ClientKind};
pub use stream::{Kind, SourceSwitch, Stream, StreamSpec, SwitchOutcome};
pub use view::{ClientView, Stats, StreamView};

/// Why a stream ended: the `reason` of its `stream_stopped` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    Deleted,
    IdleTimeout,
    Shutdown,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Deleted => "deleted",
            StopReason::IdleTimeout => "idle_timeout",
            StopReason::Shutdown => "shutdown",
        }
    }
}

/// Counters that outlive individual streams.
#[derive(Default)]
pub struct Totals {
    pub bytes_served: AtomicU64,
    pub segments_served: AtomicU64,
    /// Events published so far; the source of every event's sequence number.
    pub events_published: AtomicU64,
}

/// All streams, shared by the API, the relay and the sweeper.
pub struct Registry {
    streams: Mutex<HashMap<String, Arc<Stream>>>,
    bus: EventBus,
    totals: Arc<Totals>,
}

impl Registry {
    pub fn new(bus: EventBus) -> Registry {
        Registry {
            streams: Mutex::new(HashMap::new()),
            bus,
            totals: Arc::new(Totals::default()),
        }
    }

    fn streams(&self) -> MutexGuard<'_, HashMap<String, Arc<Stream>>> {
        // A panic elsewhere never leaves the map half-updated: recover it.
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns the stream for this spec's primary URL, creating it if new. The flag is
    /// true when it was created (and `stream_started` was published).
    pub fn create(&self, spec: StreamSpec, now: SystemTime) -> (Arc<Stream>, bool) {
        let id = stream_id(&spec.url);
        let mut streams = self.streams();
        if let Some(existing) = streams.get(&id) {
            existing.touch(now);
            return (existing.clone(), false);
        }
        let stream = Arc::new(Stream::new(
            id.clone(),
            spec,
            now,
            self.bus.clone(),
            self.totals.clone(),
        ));
        streams.insert(id, stream.clone());
        drop(streams);
        stream.publish_started(now);
        log::info!("stream {} created", stream.id);
        (stream, true)
    }

    pub fn get(&self, id: &str) -> Option<Arc<Stream>> {
        self.streams().get(id).cloned()
    }

    /// Every stream, oldest first.
    pub fn all(&self) -> Vec<Arc<Stream>> {
        let mut all: Vec<_> = self.streams().values().cloned().collect();
        all.sort_by_key(|s| s.created_at);
        all
    }

    /// Streams whose metadata `field` equals `value`, oldest first.
    pub fn by_metadata(&self, field: &str, value: &str) -> Vec<Arc<Stream>> {
        self.all()
            .into_iter()
            .filter(|s| s.spec.metadata.get(field).map(String::as_str) == Some(value))
            .collect()
    }

    /// Removes a stream: its clients are ended and `stream_stopped` follows once the
    /// last of their connections has closed.
    pub fn remove(&self, id: &str, reason: StopReason, now: SystemTime) -> Option<Arc<Stream>> {
        let stream = self.streams().remove(id)?;
        log::info!("stream {} removed ({})", stream.id, reason.as_str());
        stream.stop(reason, now);
        Some(stream)
    }

    /// Ends every stream, for shutdown.
    pub fn remove_all(&self, reason: StopReason, now: SystemTime) {
        let ids: Vec<String> = self.streams().keys().cloned().collect();
        for id in ids {
            self.remove(&id, reason, now);
        }
    }

    /// Ends HLS clients silent for `client_timeout` and removes streams without clients
    /// for `stream_timeout`. Called about once a second.
    pub fn sweep(
        &self,
        now: Instant,
        wall: SystemTime,
        client_timeout: Duration,
        stream_timeout: Duration,
    ) {
        let mut idle = Vec::new();
        for stream in self.all() {
            stream.end_silent_clients(now, client_timeout, wall);
            if stream.idle_for(now) >= stream_timeout {
                idle.push(stream.id.clone());
            }
        }
        for id in idle {
            self.remove(&id, StopReason::IdleTimeout, wall);
        }
    }

    /// Figures across all streams.
    pub fn stats(&self, uptime: Duration) -> Stats {
        let streams = self.all();
        let clients: Vec<ClientView> = streams.iter().flat_map(|s| s.client_views()).collect();
        Stats {
            total_streams: streams.len(),
            active_streams: streams.iter().filter(|s| s.client_count() > 0).count(),
            total_clients: clients.len(),
            active_clients: clients.iter().filter(|c| c.is_connected).count(),
            total_bytes_served: self.totals.bytes_served.load(Ordering::Relaxed),
            total_segments_served: self.totals.segments_served.load(Ordering::Relaxed),
            uptime_seconds: uptime.as_secs(),
        }
    }
}

/// The id of a stream: lowercase hex MD5 of its exact primary URL.
pub fn stream_id(url: &str) -> String {
    let digest = Md5::digest(url.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Metadata as the API stores it: scalar values as strings.
pub type Metadata = BTreeMap<String, String>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_ids_are_the_md5_of_the_primary_url() {
        assert_eq!(stream_id(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(stream_id("abc"), "900150983cd24fb0d6963f7d28e17f72");
    }
}
