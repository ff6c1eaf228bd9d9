//! Events: the six lifecycle event types, their envelope, and the bus that fans
//! them out to sinks (the log line here, webhooks and live subscribers elsewhere).
//! Publishing never blocks and never fails the caller: sinks take an `Arc<Event>`
//! and must hand it to a bounded queue or drop it, never wait.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The kinds of event the proxy emits, spelled on the wire in lower snake case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    StreamStarted,
    StreamStopped,
    StreamFailed,
    ClientConnected,
    ClientDisconnected,
    FailoverTriggered,
}

impl EventType {
    /// Every event type, in the order the specification lists them.
    pub const ALL: [EventType; 6] = [
        EventType::StreamStarted,
        EventType::StreamStopped,
        EventType::StreamFailed,
        EventType::ClientConnected,
        EventType::ClientDisconnected,
        EventType::FailoverTriggered,
    ];

    /// The wire name, e.g. `stream_started`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::StreamStarted => "stream_started",
            EventType::StreamStopped => "stream_stopped",
            EventType::StreamFailed => "stream_failed",
            EventType::ClientConnected => "client_connected",
            EventType::ClientDisconnected => "client_disconnected",
            EventType::FailoverTriggered => "failover_triggered",
        }
    }

    /// Parses a wire name, accepting any case (`STREAM_STARTED` as the spec prints it).
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One event, as delivered to webhooks and subscribers.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    /// Random (v4) id; the same on every delivery attempt, so receivers can de-duplicate.
    pub event_id: Uuid,
    pub event_type: EventType,
    pub stream_id: String,
    /// When the event happened (not when it was delivered), UTC, microseconds.
    #[serde(serialize_with = "serialize_timestamp")]
    pub timestamp: SystemTime,
    /// Increases with every event the proxy publishes (from 1 at start-up), so receivers
    /// can order a stream's events even when they arrive out of order.
    pub sequence: u64,
    pub data: serde_json::Value,
}

impl Event {
    /// A new event with a fresh id, stamped `now`.
    pub fn new(
        event_type: EventType,
        stream_id: &str,
        sequence: u64,
        now: SystemTime,
        data: serde_json::Value,
    ) -> Event {
        Event {
            event_id: Uuid::new_v4(),
            event_type,
            stream_id: stream_id.to_owned(),
            timestamp: now,
            sequence,
            data,
        }
    }
}

/// Formats a time as the specification shows it: `2025-09-25T22:38:34.392830` (UTC).
pub fn format_timestamp(at: SystemTime) -> String {
    let at = time::OffsetDateTime::from(at);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second(),
        at.microsecond()
    )
}

fn serialize_timestamp<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_timestamp(*at))
}

/// Something that receives every published event. Implementations must return at once.
pub trait EventSink: Send + Sync {
    fn publish(&self, event: &Arc<Event>);
}

/// The built-in handler: one info line per event.
pub struct LogSink;

impl EventSink for LogSink {
    fn publish(&self, event: &Arc<Event>) {
        let at = format_timestamp(event.timestamp);
        let at = at.get(..19).unwrap_or(&at).replace('T', " ");
        log::info!(
            "Event: {} for stream {} at {}",
            event.event_type,
            event.stream_id,
            at
        );
    }
}

/// Fans events out to a fixed set of sinks, chosen at start-up.
#[derive(Clone)]
pub struct EventBus {
    sinks: Arc<Vec<Arc<dyn EventSink>>>,
}

impl EventBus {
    pub fn new(sinks: Vec<Arc<dyn EventSink>>) -> EventBus {
        EventBus {
            sinks: Arc::new(sinks),
        }
    }

    /// Hands the event to every sink. Never blocks: sinks queue or drop.
    pub fn publish(&self, event: Event) {
        let event = Arc::new(event);
        for sink in self.sinks.iter() {
            sink.publish(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamp_has_the_specified_shape_in_utc() {
        let at = UNIX_EPOCH + Duration::from_micros(1_758_839_914_392_830);
        assert_eq!(format_timestamp(at), "2025-09-25T22:38:34.392830");
    }

    #[test]
    fn event_types_parse_in_any_case_and_print_lower_case() {
        for kind in EventType::ALL {
            assert_eq!(EventType::parse(&kind.as_str().to_uppercase()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(EventType::parse("stream_paused"), None);
    }
}
