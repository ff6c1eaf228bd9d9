//! `GET /events`: live events as server-sent events for dashboards, optionally filtered
//! with `?events=a,b`. Each subscriber has a bounded queue (see `subscribers`); a comment
//! line every few seconds keeps idle connections and proxies from timing out.

use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::Duration;

use async_channel::{Receiver, RecvError};
use futures_lite::future;

use crate::app::App;
use crate::events::{Event, EventType};
use crate::server::{error, BodyEnd, ClientSink, Incoming, MediaBody, MediaHead, Reply};

/// Quiet time after which a keep-alive comment is sent.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

pub fn stream(app: &App, incoming: &Incoming) -> Reply {
    let filter = match incoming.query("events") {
        None => None,
        Some(list) => match parse_filter(&list) {
            Ok(kinds) => Some(kinds),
            Err(detail) => return error(422, &detail),
        },
    };
    let Some(receiver) = app.subscribers.subscribe(filter) else {
        return error(503, "Too many live event subscribers");
    };
    let head = MediaHead {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "text/event-stream".into()),
            ("Cache-Control".into(), "no-cache".into()),
        ],
        length: None,
    };
    Reply::Media(head, Box::new(EventStream { receiver }))
}

/// The event types named in `?events=a,b`; the error is the detail of the 422.
fn parse_filter(list: &str) -> Result<Vec<EventType>, String> {
    let names: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect();
    // An empty filter would match nothing and look like a quiet proxy.
    if names.is_empty() {
        return Err("events: empty list; leave the parameter out to receive all events".to_owned());
    }
    names
        .into_iter()
        .map(|name| {
            EventType::parse(name).ok_or_else(|| format!("events: unknown event type {name:?}"))
        })
        .collect()
}

struct EventStream {
    receiver: Receiver<Arc<Event>>,
}

/// What woke an event stream.
enum Wake {
    Event(Result<Arc<Event>, RecvError>),
    Quiet,
    Gone,
}

impl MediaBody for EventStream {
    fn pump<'a>(
        self: Box<Self>,
        sink: &'a mut ClientSink,
    ) -> Pin<Box<dyn std::future::Future<Output = BodyEnd> + Send + 'a>> {
        Box::pin(self.run(sink))
    }
}

impl EventStream {
    async fn run(self, sink: &mut ClientSink) -> BodyEnd {
        if write(sink, b": connected\n\n").await.is_err() {
            return BodyEnd::Aborted;
        }
        // Without this a dashboard that went away would keep its subscriber slot until
        // the next write failed, up to a keep-alive interval later.
        let mut closed = pin!(sink.watcher().closed());
        loop {
            let event = async { Wake::Event(self.receiver.recv().await) };
            let quiet = async {
                async_io::Timer::after(KEEP_ALIVE).await;
                Wake::Quiet
            };
            let gone = async {
                closed.as_mut().await;
                Wake::Gone
            };
            let frame = match future::or(event, future::or(gone, quiet)).await {
                Wake::Event(Ok(event)) => sse_frame(&event),
                // Dropped for falling behind, or shutting down.
                Wake::Event(Err(_)) | Wake::Gone => return BodyEnd::Aborted,
                Wake::Quiet => b": keep-alive\n\n".to_vec(),
            };
            if write(sink, &frame).await.is_err() {
                return BodyEnd::Aborted;
            }
        }
    }
}

fn sse_frame(event: &Event) -> Vec<u8> {
    let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    format!(
        "id: {}\nevent: {}\ndata: {json}\n\n",
        event.event_id, event.event_type
    )
    .into_bytes()
}

/// Writes a frame through the sink's buffer, in pieces if it is larger.
async fn write(sink: &mut ClientSink, frame: &[u8]) -> std::io::Result<()> {
    for piece in frame.chunks(crate::server::CHUNK) {
        sink.payload_mut()[..piece.len()].copy_from_slice(piece);
        sink.send(piece.len()).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_take_known_names_in_any_case_and_refuse_empty_or_unknown_ones() {
        let both = vec![EventType::StreamStopped, EventType::ClientConnected];
        assert_eq!(parse_filter("STREAM_STOPPED, client_connected,"), Ok(both));
        for (list, detail) in [
            ("", "empty list"),
            (" , ", "empty list"),
            ("stream_paused", "\"stream_paused\""),
        ] {
            let message = parse_filter(list).unwrap_err();
            assert!(
                message.starts_with("events: ") && message.contains(detail),
                "{list:?}: {message}"
            );
        }
    }
}
