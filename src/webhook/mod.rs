//! Webhooks: the registry of configured receivers and the `Webhooks` handle the API routes
//! and the event bus use. The handle validates and stores configuration (through the
//! state file), turns each published event into queued deliveries, and reports figures;
//! sending, retrying and signing live in the submodules. HTTP routing is the API's.

mod config;
mod delivery;
mod payload;
mod queue;
pub mod signing;
// The integration tests' webhook receiver serves the unit tests too; they use part of it.
#[cfg(test)]
#[path = "../../tests/common/receiver.rs"]
#[allow(dead_code)]
mod test_receiver;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::events::{format_timestamp, Event, EventSink, EventType};
use crate::state::{StateError, StateStore};
use delivery::{Pool, Stats};
use payload::RetryPolicy;

pub use config::{SafeHookUrl, WebhookConfig};
pub use payload::USER_AGENT;

/// Most webhooks one proxy keeps. Each costs a few KiB of settings at most, and an event
/// is queued once per matching webhook, so this also bounds the fan-out of one event.
pub const MAX_WEBHOOKS: usize = 64;

/// Default number of worker threads: one can be held by a dead receiver while the other
/// keeps delivering (see `delivery` for the worst case).
pub const DEFAULT_WORKERS: usize = 2;

/// Default queue size, in pending attempts. An entry is 56 bytes (on 64-bit targets) and
/// shares its event and JSON body, ≈1 KiB together for the events the proxy emits, with
/// the other webhooks it goes to: a full queue of 256 distinct events holds ≈270 KiB.
pub const DEFAULT_QUEUE_CAPACITY: usize = 256;

/// How the webhook machinery is set up. `Default` gives 2 workers, 256 queued attempts
/// and no state file (webhooks then live in memory only).
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// Worker threads posting deliveries (at least 1 is started).
    pub workers: usize,
    /// Most attempts queued at once (at least 1); when full, the oldest entry of the most
    /// backlogged webhook is dropped and counted on it.
    pub queue_capacity: usize,
    pub state_file: Option<PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> WebhookSettings {
        WebhookSettings {
            workers: DEFAULT_WORKERS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            state_file: None,
        }
    }
}

/// Why `Webhooks::start` failed.
#[derive(Debug)]
pub enum StartError {
    /// The state file could not be read, and could not be moved aside either.
    State(StateError),
    /// A worker thread could not be created.
    Spawn(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::State(err) => write!(f, "webhooks: {err}"),
            StartError::Spawn(err) => write!(f, "webhooks: cannot start worker threads: {err}"),
        }
    }
}

impl std::error::Error for StartError {}

/// Why a webhook request failed; each maps to one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebhookError {
    /// 422: the body is invalid; the message names the field.
    Invalid(String),
    /// 404: no webhook has this URL.
    NotFound(String),
    /// 500: the state file could not be saved, so nothing changed. The message has the
    /// path and cause for the log line; clients should get a generic detail.
    State(String),
}

impl WebhookError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            WebhookError::Invalid(_) => 422,
            WebhookError::NotFound(_) => 404,
            WebhookError::State(_) => 500,
        }
    }
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookError::Invalid(message)
            | WebhookError::NotFound(message)
            | WebhookError::State(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for WebhookError {}

/// One webhook as `GET /webhooks` shows it: settings without header values or secret,
/// and delivery figures.
#[derive(Clone, Debug, Serialize)]
pub struct WebhookView {
    pub url: String,
    pub events: Vec<EventType>,
    #[serde(serialize_with = "config::serialize_seconds")]
    pub timeout: f64,
    pub retry_attempts: u32,
    pub header_names: Vec<String>,
    pub has_secret: bool,
    /// Events delivered (a 2xx answer on some attempt).
    pub delivered: u64,
    /// Events given up on: refused (3xx, most 4xx) or out of retries.
    pub failed: u64,
    /// Events dropped from a full queue before delivery.
    pub dropped: u64,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// When the last attempt ended, as event timestamps are written.
    pub last_delivery_time: Option<String>,
}

/// What the receiver did with a test event (`POST /webhooks/test`).
#[derive(Clone, Debug, Serialize)]
pub struct TestOutcome {
    /// The receiver answered 2xx.
    pub success: bool,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub elapsed_ms: u64,
    pub message: String,
}

/// One configured webhook: its settings now, and its figures (kept across updates).
pub(crate) struct Webhook {
    pub config: WebhookConfig,
    pub stats: Arc<Stats>,
}

/// The current webhooks. Readers copy an `Arc` of the list under a short lock; writers
/// replace the whole list, so publishing never waits for a state-file save.
#[derive(Default)]
pub(crate) struct Registry {
    hooks: Mutex<Arc<Vec<Arc<Webhook>>>>,
}

impl Registry {
    fn snapshot(&self) -> Arc<Vec<Arc<Webhook>>> {
        Arc::clone(&lock(&self.hooks))
    }

    fn replace(&self, hooks: Vec<Arc<Webhook>>) {
        *lock(&self.hooks) = Arc::new(hooks);
    }

    /// The current settings of the webhook these figures belong to, unless removed.
    pub(crate) fn current(&self, stats: &Arc<Stats>) -> Option<Arc<Webhook>> {
        let hooks = self.snapshot();
        hooks
            .iter()
            .find(|hook| Arc::ptr_eq(&hook.stats, stats))
            .cloned()
    }

    fn find(&self, url: &str) -> Option<Arc<Webhook>> {
        let key = lookup_key(url);
        self.snapshot()
            .iter()
            .find(|hook| hook.stats.key == key)
            .cloned()
    }
}

/// The handle to the webhook machinery. Cheap to clone; the workers stop when the last
/// clone is dropped (without draining: call [`Webhooks::shutdown`] for that).
///
/// Wiring: [`Webhooks::start`] once at start-up; a clone into the `EventBus` as a sink;
/// the `/webhooks` routes call [`add`](Webhooks::add), [`list`](Webhooks::list),
/// [`remove`](Webhooks::remove) and [`test`](Webhooks::test) (the last from a blocking
/// thread); [`shutdown`](Webhooks::shutdown) before the process exits.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    /// Also serializes configuration changes, so saves happen in the order made.
    store: Mutex<StateStore>,
    pool: Pool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.pool.stop();
    }
}

impl Webhooks {
    /// Loads the state file (see [`StateStore::open`] for missing and corrupt files) and
    /// starts the workers.
    pub fn start(settings: WebhookSettings) -> Result<Webhooks, StartError> {
        Webhooks::start_with(settings, RetryPolicy::STANDARD)
    }

    fn start_with(settings: WebhookSettings, policy: RetryPolicy) -> Result<Webhooks, StartError> {
        let store = match &settings.state_file {
            Some(path) => StateStore::open(path, SystemTime::now()).map_err(StartError::State)?,
            None => StateStore::in_memory(),
        };

        let registry = Arc::new(Registry::default());
        registry.replace(store.state().webhooks.iter().map(new_webhook).collect());
        let count = store.state().webhooks.len();

        let workers = settings.workers;
        let pool = Pool::start(
            workers,
            settings.queue_capacity,
            Arc::clone(&registry),
            policy,
        )
        .map_err(StartError::Spawn)?;
        log::info!("webhooks: started with {count} configured and {workers} worker(s)");

        let store = Mutex::new(store);
        Ok(Webhooks {
            inner: Arc::new(Inner {
                registry,
                store,
                pool,
            }),
        })
    }

    /// Validates a `POST /webhooks` body and adds the webhook, or updates the one with
    /// the same URL in place (keeping its figures). Saves the state file if anything changed.
    pub fn add(&self, body: &[u8]) -> Result<WebhookView, WebhookError> {
        let config = WebhookConfig::parse(body).map_err(WebhookError::Invalid)?;
        let mut store = lock(&self.inner.store);
        let hooks = self.inner.registry.snapshot();

        let key = config.key();
        let existing = hooks.iter().position(|hook| hook.stats.key == key);
        if existing.is_none() && hooks.len() >= MAX_WEBHOOKS {
            let message = format!("url: already {MAX_WEBHOOKS} webhooks, the most allowed");
            return Err(WebhookError::Invalid(message));
        }

        let stats = match existing {
            Some(index) => Arc::clone(&hooks[index].stats),
            None => Arc::new(Stats::new(key)),
        };
        let hook = Arc::new(Webhook { config, stats });
        let mut next: Vec<Arc<Webhook>> = hooks.iter().cloned().collect();
        match existing {
            Some(index) => next[index] = Arc::clone(&hook),
            None => next.push(Arc::clone(&hook)),
        }

        save(&mut store, &next)?;
        self.inner.registry.replace(next);
        let verb = if existing.is_some() {
            "updated"
        } else {
            "added"
        };
        log::info!("webhook {}: {verb}", SafeHookUrl(&hook.config.url));
        Ok(view(&hook))
    }

    /// Every webhook, in the order added.
    pub fn list(&self) -> Vec<WebhookView> {
        self.inner
            .registry
            .snapshot()
            .iter()
            .map(|hook| view(hook))
            .collect()
    }

    /// Removes the webhook with this URL (a trailing slash does not matter) and drops
    /// its pending deliveries.
    pub fn remove(&self, url: &str) -> Result<(), WebhookError> {
        let mut store = lock(&self.inner.store);
        let hook = self
            .inner
            .registry
            .find(url)
            .ok_or_else(|| not_found(url))?;

        let hooks = self.inner.registry.snapshot();
        let next: Vec<Arc<Webhook>> = hooks
            .iter()
            .filter(|other| !Arc::ptr_eq(other, &hook))
            .cloned()
            .collect();

        save(&mut store, &next)?;
        self.inner.registry.replace(next);
        self.inner.pool.forget(&hook.stats);
        log::info!("webhook {}: removed", SafeHookUrl(&hook.config.url));
        Ok(())
    }

    /// Sends a test event to the webhook with this URL now, once, outside the queue, and
    /// reports what the receiver did. Blocks for up to the webhook's timeout: call it
    /// from a blocking thread. Test attempts do not change the webhook's figures.
    pub fn test(&self, url: &str) -> Result<TestOutcome, WebhookError> {
        let hook = self
            .inner
            .registry
            .find(url)
            .ok_or_else(|| not_found(url))?;
        let event = test_event(SystemTime::now());
        let body = payload::body(&event);

        let result = self.inner.pool.send_now(&hook.config, &event, &body);
        let message = if result.is_success() {
            format!("Test webhook delivered: {}", result.describe())
        } else {
            format!("Test webhook failed: {}", result.describe())
        };
        Ok(TestOutcome {
            success: result.is_success(),
            status_code: result.status,
            error: result.error,
            elapsed_ms: u64::try_from(result.elapsed.as_millis()).unwrap_or(u64::MAX),
            message,
        })
    }

    /// Stops taking events, lets pending deliveries finish for up to `grace`, then stops
    /// the workers. Blocks for at most `grace`.
    pub fn shutdown(&self, grace: Duration) {
        self.inner.pool.shutdown(grace);
    }
}

impl EventSink for Webhooks {
    /// Queues one delivery per webhook that wants this event type. Returns at once: the
    /// body is serialized here, once, and shared by those deliveries.
    fn publish(&self, event: &Arc<Event>) {
        let hooks = self.inner.registry.snapshot();
        let targets: Vec<Arc<Stats>> = hooks
            .iter()
            .filter(|hook| hook.config.wants(event.event_type))
            .map(|hook| Arc::clone(&hook.stats))
            .collect();
        if targets.is_empty() {
            return;
        }

        let body: Arc<[u8]> = payload::body(event).into();
        self.inner.pool.enqueue(event, body, targets);
    }
}

/// The event the test route sends.
fn test_event(now: SystemTime) -> Event {
    let data = serde_json::json!({"test": true, "message": "Test webhook from m3u-proxy"});
    Event::new(EventType::StreamStarted, "test", 1, now, data)
}

fn new_webhook(config: &WebhookConfig) -> Arc<Webhook> {
    let stats = Arc::new(Stats::new(config.key()));
    Arc::new(Webhook {
        config: config.clone(),
        stats,
    })
}

/// Writes the webhook list to the state file; on failure nothing changes.
fn save(store: &mut StateStore, hooks: &[Arc<Webhook>]) -> Result<(), WebhookError> {
    let configs: Vec<WebhookConfig> = hooks.iter().map(|hook| hook.config.clone()).collect();
    // Not logged here: the route logs the cause next to the request that failed.
    store
        .update(|state| state.webhooks = configs)
        .map_err(|err| WebhookError::State(err.to_string()))
}

fn view(hook: &Webhook) -> WebhookView {
    let config = &hook.config;
    let figures = hook.stats.snapshot();
    WebhookView {
        url: config.url.clone(),
        events: config.events.clone(),
        timeout: config.timeout,
        retry_attempts: config.retry_attempts,
        header_names: config.headers.keys().cloned().collect(),
        has_secret: config.secret.is_some(),
        delivered: figures.delivered,
        failed: figures.failed,
        dropped: figures.dropped,
        last_status: figures.last.status,
        last_error: figures.last.error,
        last_delivery_time: figures.last.at.map(format_timestamp),
    }
}

/// The key a URL from a query parameter is looked up by; text that is no URL can only
/// match nothing, but still gets its trailing slashes removed.
fn lookup_key(url: &str) -> String {
    config::url_key(url).unwrap_or_else(|| url.trim().trim_end_matches('/').to_owned())
}

fn not_found(url: &str) -> WebhookError {
    WebhookError::NotFound(format!("Webhook not found: {}", SafeHookUrl(url.trim())))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
