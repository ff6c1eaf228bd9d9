//! One stream: its immutable spec (sources, user agent, headers, metadata), the source
//! it currently plays, its clients and counters, and its lifecycle events. Source
//! switches go through [`Stream::fail_over`], which applies the failover policy once per
//! failure however many clients noticed it, and wakes every client to follow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering as StdOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use event_listener::{Event, EventListener};
use portable_atomic::{AtomicU64, Ordering};
use serde_json::json;

use super::client::{Client, ClientGuard, ClientInfo, ClientKind};
use super::{Metadata, StopReason, Totals};
use crate::events::{Event as BusEvent, EventBus, EventType};
use crate::failover::{self, Position, Reason};
use crate::redact::SafeUrl;

/// What a stream was created with.
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub url: String,
    pub failover_urls: Vec<String>,
    pub failover_resolver_url: Option<String>,
    pub user_agent: String,
    pub metadata: Metadata,
    /// Extra upstream request headers (often credentials): never shown or logged.
    pub headers: Vec<(String, String)>,
}

impl StreamSpec {
    /// Source `index` of primary-then-backups.
    pub fn source(&self, index: usize) -> &str {
        match index {
            0 => &self.url,
            n => self
                .failover_urls
                .get(n - 1)
                .map(String::as_str)
                .unwrap_or(&self.url),
        }
    }

    pub fn source_count(&self) -> usize {
        1 + self.failover_urls.len()
    }
}

/// What the stream turned out to be, once a source answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Unknown,
    Live,
    Vod,
    Hls,
}

impl Kind {
    /// The `stream_type` of stream listings.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Hls => "HLS",
            Kind::Vod => "VOD",
            Kind::Live | Kind::Unknown => "Live Continuous",
        }
    }
}

/// The source being played, and the switch count that chose it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceSwitch {
    /// Increases with every switch; a relay compares it to notice one.
    pub generation: u64,
    pub index: usize,
    pub url: String,
    /// Wait this long before connecting (between full cycles of the list).
    pub pause: Duration,
}

/// The result of reporting a failure.
#[derive(Debug)]
pub enum SwitchOutcome {
    /// Play this source now (after its pause).
    Switched(SourceSwitch),
    /// Every source failed the allowed number of times.
    GaveUp,
}

struct Sources {
    index: usize,
    url: String,
    generation: u64,
    /// Sources failed in a row since one last worked.
    failures: usize,
    attempts: u64,
    last_failover_time: Option<SystemTime>,
}

struct Activity {
    last_access: SystemTime,
    idle_since: Instant,
    kind: Kind,
    errors: u64,
    stopped: Option<StopReason>,
    stop_published: bool,
}

pub struct Stream {
    pub id: String,
    pub spec: StreamSpec,
    pub created_at: SystemTime,
    sources: Mutex<Sources>,
    activity: Mutex<Activity>,
    clients: Mutex<HashMap<String, Arc<Client>>>,
    bytes: AtomicU64,
    segments: AtomicU64,
    switched: Event,
    removed: AtomicBool,
    bus: EventBus,
    totals: Arc<Totals>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Stream {
    pub(super) fn new(
        id: String,
        spec: StreamSpec,
        now: SystemTime,
        bus: EventBus,
        totals: Arc<Totals>,
    ) -> Stream {
        let kind = if spec.url.to_ascii_lowercase().contains(".m3u8") {
            Kind::Hls
        } else {
            Kind::Unknown
        };
        Stream {
            id,
            sources: Mutex::new(Sources {
                index: 0,
                url: spec.url.clone(),
                generation: 0,
                failures: 0,
                attempts: 0,
                last_failover_time: None,
            }),
            activity: Mutex::new(Activity {
                last_access: now,
                idle_since: Instant::now(),
                kind,
                errors: 0,
                stopped: None,
                stop_published: false,
            }),
            spec,
            created_at: now,
            clients: Mutex::new(HashMap::new()),
            bytes: AtomicU64::new(0),
            segments: AtomicU64::new(0),
            switched: Event::new(),
            removed: AtomicBool::new(false),
            bus,
            totals,
        }
    }

    /// Publishes an event of this stream. Its sequence number comes from one counter for
    /// the whole proxy, so it keeps increasing for a stream id even when the stream is
    /// removed and created again.
    pub fn publish(&self, kind: EventType, data: serde_json::Value, now: SystemTime) {
        let sequence = self.totals.events_published.fetch_add(1, Ordering::Relaxed) + 1;
        self.bus
            .publish(BusEvent::new(kind, &self.id, sequence, now, data));
    }

    pub(super) fn publish_started(&self, now: SystemTime) {
        let stream_type = if self.kind() == Kind::Hls {
            "hls"
        } else {
            "direct"
        };
        let data = json!({
            "primary_url": self.spec.url,
            "failover_urls": self.spec.failover_urls,
            "user_agent": self.spec.user_agent,
            "stream_type": stream_type,
        });
        self.publish(EventType::StreamStarted, data, now);
    }

    // ---- sources ----

    /// The source to play now.
    pub fn current(&self) -> SourceSwitch {
        let sources = lock(&self.sources);
        SourceSwitch {
            generation: sources.generation,
            index: sources.index,
            url: sources.url.clone(),
            pause: Duration::ZERO,
        }
    }

    /// Resolves when the stream switches source. Compare [`Stream::current`] after
    /// creating it, so a switch in between is not missed.
    pub fn switched(&self) -> EventListener {
        self.switched.listen()
    }

    /// Reports that the source chosen at `seen` failed. The first report of a failure
    /// moves the stream on (and publishes `failover_triggered`); later reports of the
    /// same failure get the source already chosen. `resolved` is a URL a resolver chose.
    pub fn fail_over(
        &self,
        seen: u64,
        reason: Reason,
        detail: &str,
        cycles: u32,
        resolved: Option<String>,
        now: SystemTime,
    ) -> SwitchOutcome {
        let mut sources = lock(&self.sources);
        if sources.generation != seen {
            return SwitchOutcome::Switched(SourceSwitch {
                generation: sources.generation,
                index: sources.index,
                url: sources.url.clone(),
                pause: Duration::ZERO,
            });
        }
        sources.failures += 1;
        lock(&self.activity).errors += 1;
        let at = Position {
            index: sources.index,
            failures: sources.failures,
        };
        match failover::next(at, self.spec.source_count(), cycles) {
            failover::Next::Try { index, pause } => {
                let url = resolved.unwrap_or_else(|| self.spec.source(index).to_owned());
                SwitchOutcome::Switched(self.switch_to(sources, index, url, pause, reason, now))
            }
            failover::Next::GiveUp => {
                sources.failures = 0;
                drop(sources);
                self.publish_failed(reason, detail, now);
                SwitchOutcome::GaveUp
            }
        }
    }

    /// Moves every client to the next source at once, for an operator. `None` when the
    /// stream has no other source.
    pub fn manual_failover(
        &self,
        resolved: Option<String>,
        now: SystemTime,
    ) -> Option<SourceSwitch> {
        if self.spec.source_count() < 2 && resolved.is_none() {
            return None;
        }
        let sources = lock(&self.sources);
        let index = (sources.index + 1) % self.spec.source_count();
        let url = resolved.unwrap_or_else(|| self.spec.source(index).to_owned());
        Some(self.switch_to(sources, index, url, Duration::ZERO, Reason::Manual, now))
    }

    fn switch_to(
        &self,
        mut sources: MutexGuard<'_, Sources>,
        index: usize,
        url: String,
        pause: Duration,
        reason: Reason,
        now: SystemTime,
    ) -> SourceSwitch {
        let old_url = std::mem::replace(&mut sources.url, url.clone());
        sources.index = index;
        sources.generation += 1;
        sources.attempts += 1;
        sources.last_failover_time = Some(now);
        let switch = SourceSwitch {
            generation: sources.generation,
            index,
            url,
            pause,
        };
        let attempt = sources.attempts;
        drop(sources);

        log::info!(
            "stream {} failing over ({}) from {} to {} (source {index})",
            self.id,
            reason.as_str(),
            SafeUrl(&old_url),
            SafeUrl(&switch.url)
        );
        let data = json!({
            "old_url": old_url,
            "new_url": switch.url,
            "failover_index": index,
            "reason": reason.as_str(),
            "attempt_number": attempt,
            "client_count": self.client_count(),
        });
        self.publish(EventType::FailoverTriggered, data, now);
        self.switched.notify(usize::MAX);
        switch
    }

    fn publish_failed(&self, reason: Reason, detail: &str, now: SystemTime) {
        log::warn!("stream {} failed: every source failed ({detail})", self.id);
        let data = json!({
            "error": format!("all sources failed; last error: {detail}"),
            "error_type": reason.as_str(),
        });
        self.publish(EventType::StreamFailed, data, now);
    }

    /// Records that the source chosen at `generation` delivered media.
    pub fn mark_working(&self, generation: u64) {
        let mut sources = lock(&self.sources);
        if sources.generation == generation {
            sources.failures = 0;
        }
    }

    // ---- activity ----

    pub fn kind(&self) -> Kind {
        lock(&self.activity).kind
    }

    pub fn set_kind(&self, kind: Kind) {
        lock(&self.activity).kind = kind;
    }

    pub(super) fn touch(&self, now: SystemTime) {
        lock(&self.activity).last_access = now;
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(StdOrdering::SeqCst)
    }

    /// How long the stream has had no clients (zero while it has some).
    pub(super) fn idle_for(&self, now: Instant) -> Duration {
        if !lock(&self.clients).is_empty() {
            return Duration::ZERO;
        }
        now.saturating_duration_since(lock(&self.activity).idle_since)
    }

    pub(super) fn record_bytes(&self, client: &Client, n: u64) {
        client.bytes.fetch_add(n, Ordering::Relaxed);
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.totals.bytes_served.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts one HLS segment of `bytes` served to `client`.
    pub fn record_segment(&self, client: &Client, bytes: u64, now: SystemTime) {
        self.record_bytes(client, bytes);
        client.segments.fetch_add(1, Ordering::Relaxed);
        self.segments.fetch_add(1, Ordering::Relaxed);
        self.totals.segments_served.fetch_add(1, Ordering::Relaxed);
        client.touch(now);
    }

    // ---- clients ----

    pub fn client_count(&self) -> usize {
        lock(&self.clients).len()
    }

    pub fn clients(&self) -> Vec<Arc<Client>> {
        let mut clients: Vec<_> = lock(&self.clients).values().cloned().collect();
        clients.sort_by_key(|c| c.created_at);
        clients
    }

    /// Joins a connection to the continuous client `info.id`, creating the session (and
    /// publishing `client_connected`) if it is the first. `None` if the stream was removed.
    pub fn attach(self: &Arc<Self>, info: ClientInfo, now: SystemTime) -> Option<ClientGuard> {
        let client = self.join(info, ClientKind::Continuous, now)?;
        client.connections.fetch_add(1, StdOrdering::SeqCst);
        Some(ClientGuard {
            stream: self.clone(),
            client,
        })
    }

    /// Notes a request of the HLS session `info.id`, creating it if new.
    pub fn touch_hls_client(&self, info: ClientInfo, now: SystemTime) -> Option<Arc<Client>> {
        let client = self.join(info, ClientKind::Hls, now)?;
        client.touch(now);
        Some(client)
    }

    fn join(&self, info: ClientInfo, kind: ClientKind, now: SystemTime) -> Option<Arc<Client>> {
        if self.is_removed() {
            return None;
        }
        self.touch(now);
        let mut clients = lock(&self.clients);
        if let Some(client) = clients.get(&info.id) {
            return Some(client.clone());
        }
        let client = Arc::new(Client::new(info, kind, now));
        clients.insert(client.info.id.clone(), client.clone());
        drop(clients);

        log::info!(
            "client {} joined stream {} from {}",
            client.info.id,
            self.id,
            client.info.ip_address
        );
        let data = json!({
            "client_id": client.info.id,
            "user_agent": client.info.user_agent,
            "ip_address": client.info.ip_address,
            "username": client.info.username,
        });
        self.publish(EventType::ClientConnected, data, now);
        Some(client)
    }

    /// A connection of `client` closed; the session ends with its last connection.
    pub(super) fn release(&self, client: &Arc<Client>, now: SystemTime) {
        if client.connections.fetch_sub(1, StdOrdering::SeqCst) == 1 {
            self.end_client(client, now);
        }
    }

    /// Ends a session: removes it and publishes `client_disconnected`, once.
    fn end_client(&self, client: &Arc<Client>, now: SystemTime) {
        if client.ended.swap(true, StdOrdering::SeqCst) {
            return;
        }
        client.kick();
        let now_empty = {
            let mut clients = lock(&self.clients);
            clients.remove(&client.info.id);
            clients.is_empty()
        };
        if now_empty {
            let mut activity = lock(&self.activity);
            activity.idle_since = Instant::now();
            activity.last_access = now;
        }
        log::info!(
            "client {} left stream {} after {} bytes",
            client.info.id,
            self.id,
            client.bytes_served()
        );
        let data = json!({
            "client_id": client.info.id,
            "bytes_served": client.bytes_served(),
            "segments_served": client.segments_served(),
        });
        self.publish(EventType::ClientDisconnected, data, now);
        if now_empty {
            self.publish_stopped_if_done(now);
        }
    }

    /// Tells a client to leave now. HLS sessions end at once; continuous ones when their
    /// connections have closed. False if there is no such client.
    pub fn disconnect_client(&self, client_id: &str, now: SystemTime) -> bool {
        let Some(client) = lock(&self.clients).get(client_id).cloned() else {
            return false;
        };
        client.kick();
        if client.kind == ClientKind::Hls || client.connections.load(StdOrdering::SeqCst) == 0 {
            self.end_client(&client, now);
        }
        true
    }

    /// Ends HLS sessions that sent no request for `timeout`.
    pub(super) fn end_silent_clients(&self, now: Instant, timeout: Duration, wall: SystemTime) {
        let silent: Vec<Arc<Client>> = lock(&self.clients)
            .values()
            .filter(|c| {
                c.kind == ClientKind::Hls
                    && now.saturating_duration_since(c.last_access().1) >= timeout
            })
            .cloned()
            .collect();
        for client in silent {
            self.end_client(&client, wall);
        }
    }

    /// Marks the stream removed and ends its clients; `stream_stopped` is published once
    /// the last client connection has closed.
    pub(super) fn stop(&self, reason: StopReason, now: SystemTime) {
        self.removed.store(true, StdOrdering::SeqCst);
        lock(&self.activity).stopped = Some(reason);
        for client in self.clients() {
            self.disconnect_client(&client.info.id, now);
        }
        self.switched.notify(usize::MAX);
        self.publish_stopped_if_done(now);
    }

    fn publish_stopped_if_done(&self, now: SystemTime) {
        if !lock(&self.clients).is_empty() {
            return;
        }
        let reason = {
            let mut activity = lock(&self.activity);
            match activity.stopped {
                Some(reason) if !activity.stop_published => {
                    activity.stop_published = true;
                    reason
                }
                _ => return,
            }
        };
        let data = json!({ "reason": reason.as_str() });
        self.publish(EventType::StreamStopped, data, now);
    }

    // ---- snapshots ----

    pub(super) fn source_state(&self) -> (String, usize, u64, Option<SystemTime>) {
        let s = lock(&self.sources);
        (s.url.clone(), s.index, s.attempts, s.last_failover_time)
    }

    pub(super) fn activity_state(&self) -> (SystemTime, Kind, u64) {
        let a = lock(&self.activity);
        (a.last_access, a.kind, a.errors)
    }

    pub(super) fn counters(&self) -> (u64, u64) {
        (
            self.bytes.load(Ordering::Relaxed),
            self.segments.load(Ordering::Relaxed),
        )
    }
}
