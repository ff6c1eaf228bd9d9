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
        Subscribers { list: Mutex::new(Vec::new()) }
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
                    log::warn!("events: dropping a live subscriber that fell {QUEUE} events behind");
                    subscriber.queue.close();
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }
}
