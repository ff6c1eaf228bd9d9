//! The shared state of a running proxy: configuration, the stream registry, the event
//! bus and its sinks, and the few process-wide values (start time, the key that signs
//! HLS references, the open-connection count). One `Arc<App>` is handed to every task.

use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::events::{EventBus, EventSink, LogSink};
use crate::registry::Registry;
use crate::subscribers::Subscribers;
use crate::webhook::{WebhookSettings, Webhooks};

/// Webhook deliveries waiting at once, across all webhooks. Each holds an `Arc` of a
/// small event (well under 1 KiB), so the queue stays below about 256 KiB when full.
const WEBHOOK_QUEUE: usize = 256;

pub struct App {
    pub config: Config,
    pub registry: Registry,
    pub webhooks: Webhooks,
    pub subscribers: Arc<Subscribers>,
    pub started: Instant,
    pub open_connections: Arc<AtomicUsize>,
    /// Signs the upstream URLs written into HLS playlists; made fresh at each start.
    pub reference_key: [u8; 32],
}

impl App {
    /// Builds the shared state: loads the webhooks, starts their workers, wires the bus.
    pub fn start(config: Config) -> Result<Arc<App>, crate::webhook::StartError> {
        let webhooks = Webhooks::start(WebhookSettings {
            workers: config.webhook_workers,
            queue_capacity: WEBHOOK_QUEUE,
            state_file: Some(config.state_file.clone()),
        })?;
        let subscribers = Arc::new(Subscribers::new());
        let sinks: Vec<Arc<dyn EventSink>> = vec![
            Arc::new(LogSink),
            Arc::new(webhooks.clone()),
            subscribers.clone(),
        ];
        let bus = EventBus::new(sinks);
        Ok(Arc::new(App {
            registry: Registry::new(bus),
            webhooks,
            subscribers,
            started: Instant::now(),
            open_connections: Arc::new(AtomicUsize::new(0)),
            reference_key: random_key(),
            config,
        }))
    }

    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }
}

/// 32 random bytes from the system's generator (through two v4 UUIDs, which `uuid`
/// already takes from the OS), so no extra crate is needed for the signing key.
fn random_key() -> [u8; 32] {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key
}
