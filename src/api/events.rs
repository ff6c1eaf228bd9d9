//! `GET /events`: live events as server-sent events for dashboards, optionally filtered
//! with `?events=a,b`. Each subscriber has a bounded queue (see `subscribers`); a comment
//! line every few seconds keeps idle connections and proxies from timing out.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_channel::Receiver;
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
            Err(name) => return error(422, &format!("events: unknown event type {name:?}")),
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

fn parse_filter(list: &str) -> Result<Vec<EventType>, String> {
    list.split(',')
        .filter(|name| !name.trim().is_empty())
        .map(|name| EventType::parse(name).ok_or_else(|| name.trim().to_owned()))
        .collect()
}

struct EventStream {
    receiver: Receiver<Arc<Event>>,
}

impl MediaBody for EventStream {
    fn pump<'a>(self: Box<Self>, sink: &'a mut ClientSink) -> Pin<Box<dyn std::future::Future<Output = BodyEnd> + Send + 'a>> {
        Box::pin(self.run(sink))
    }
}

impl EventStream {
    async fn run(self, sink: &mut ClientSink) -> BodyEnd {
        if write(sink, b": connected\n\n").await.is_err() {
            return BodyEnd::Aborted;
        }
        loop {
            let next = future::or(async { Some(self.receiver.recv().await) }, async {
                async_io::Timer::after(KEEP_ALIVE).await;
                None
            });
            let frame = match next.await {
                Some(Ok(event)) => sse_frame(&event),
                // Dropped for falling behind, or shutting down.
                Some(Err(_)) => return BodyEnd::Aborted,
                None => b": keep-alive\n\n".to_vec(),
            };
            if write(sink, &frame).await.is_err() {
                return BodyEnd::Aborted;
            }
        }
    }
}

fn sse_frame(event: &Event) -> Vec<u8> {
    let json = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
    format!("id: {}\nevent: {}\ndata: {json}\n\n", event.event_id, event.event_type).into_bytes()
}

/// Writes a frame through the sink's buffer, in pieces if it is larger.
async fn write(sink: &mut ClientSink, frame: &[u8]) -> std::io::Result<()> {
    for piece in frame.chunks(crate::server::CHUNK) {
        sink.payload_mut()[..piece.len()].copy_from_slice(piece);
        sink.send(piece.len()).await?;
    }
    Ok(())
}
