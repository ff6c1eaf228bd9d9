//! Live event subscribers (`GET /events`, server-sent events): a bounded number of
//! subscribers, each with a bounded queue. A subscriber that falls behind is dropped,
//! never buffered for without limit; publishing never waits for one.

use std::sync::{Arc, Mutex};

use async_channel::{Receiver, Sender, TrySendError};

use crate::events::{Event, EventSink, EventType};

/// Most live subscribers at once; dashboards are few.
pub const MAX_SUBSCRIBERS: usize = 16;

/// Events queued for one subscriber before it counts as too slow. At well under 1 KiB
/// an event, a full queue holds less than 64 KiB.
const QUEUE: usize = 64;

struct Subscriber {
    filter: Option<Vec<EventType>>,
    queue: Sender<Arc<Event>>,
}

pub struct Subscribers {
    list: Mutex<Vec<Subscriber>>,
}

impl Subscribers {
    pub fn new() -> Subscribers {
        Subscribers {
            list: Mutex::new(Vec::new()),
        }
    }

    /// Adds a subscriber for `filter` (all events when `None`); `None` when full.
    pub fn subscribe(&self, filter: Option<Vec<EventType>>) -> Option<Receiver<Arc<Event>>> {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|s| !s.queue.is_closed());
        if list.len() >= MAX_SUBSCRIBERS {
            return None;
        }
        let (queue, receiver) = async_channel::bounded(QUEUE);
        list.push(Subscriber { filter, queue });
        Some(receiver)
    }

    /// Ends every subscription, for shutdown: each `GET /events` response then finishes
    /// instead of holding its connection open until the drain deadline. Call it once the
    /// accept loop has stopped, so no new subscriber arrives afterwards.
    pub fn close_all(&self) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        for subscriber in list.drain(..) {
            subscriber.queue.close();
        }
    }
}

impl Default for Subscribers {
    fn default() -> Self {
        Subscribers::new()
    }
}

impl EventSink for Subscribers {
    fn publish(&self, event: &Arc<Event>) {
        let mut list = self.list.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|subscriber| {
            let wanted = subscriber
                .filter
                .as_ref()
                .is_none_or(|kinds| kinds.contains(&event.event_type));
            if !wanted {
                return true;
            }
            match subscriber.queue.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    log::warn!(
                        "events: dropping a live subscriber that fell {QUEUE} events behind"
                    );
                    subscriber.queue.close();
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn event(kind: EventType) -> Arc<Event> {
        Arc::new(Event::new(
            kind,
            "s",
            1,
            SystemTime::now(),
            serde_json::Value::Null,
        ))
    }

    #[test]
    fn subscribers_get_the_types_they_asked_for_until_closed() {
        let subscribers = Subscribers::new();
        let all = subscribers.subscribe(None).unwrap();
        let stops = subscribers
            .subscribe(Some(vec![EventType::StreamStopped]))
            .unwrap();

        subscribers.publish(&event(EventType::StreamStarted));
        subscribers.publish(&event(EventType::StreamStopped));
        assert_eq!(all.len(), 2);
        assert_eq!(
            stops.try_recv().unwrap().event_type,
            EventType::StreamStopped
        );
        assert!(stops.is_empty());

        subscribers.close_all();
        assert!(
            stops.recv_blocking().is_err(),
            "a closed subscription still waits"
        );
        assert_eq!(all.len(), 2, "queued events are still readable after close");
    }

    #[test]
    fn a_subscriber_that_falls_behind_is_dropped_and_its_slot_freed() {
        let subscribers = Subscribers::new();
        let slow = subscribers.subscribe(None).unwrap();
        for _ in 0..=QUEUE {
            subscribers.publish(&event(EventType::ClientConnected));
        }
        assert!(slow.is_closed());

        let taken: Vec<_> = (0..MAX_SUBSCRIBERS)
            .map(|_| subscribers.subscribe(None))
            .collect();
        assert!(
            taken.iter().all(Option::is_some),
            "the dropped subscriber kept its slot"
        );
        assert!(
            subscribers.subscribe(None).is_none(),
            "more than {MAX_SUBSCRIBERS} at once"
        );
    }
}
