//! Delivery: the bounded queue of pending attempts, the fixed pool of worker threads that
//! post them through one shared ureq agent, and the figures kept per webhook. What an
//! attempt sends and whether to retry it come from `payload`; which webhooks exist, and
//! their current settings, from the registry in `mod.rs`.
//!
//! # Scheduling, and who can hold up whom
//!
//! A retry waiting for its back-off is a queue entry with a not-before time, not a sleeping
//! worker. A worker takes the oldest entry (see `queue`) that is ready and passes two checks:
//!
//! - its webhook has no attempt in flight, so one receiver occupies at most one worker;
//! - if its webhook's last attempt failed, fewer than `max(1, N - 1)` workers are already
//!   busy with failing webhooks, so with N ≥ 2 workers one worker is always left for
//!   receivers that are answering.
//!
//! Worst case with N workers: a healthy receiver's event waits behind the healthy
//! deliveries queued before it, plus at most one attempt timeout (120 s at most, usually
//! 10 s) when N receivers that had been fine all stop answering at the same moment — they
//! only count as failing once their first attempt has failed. With one worker, a failing
//! receiver can delay the others by one timeout per attempt.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use portable_atomic::AtomicU64;
use ureq::config::AutoHeaderValue;
use ureq::Agent;

use super::config::{SafeHookUrl, WebhookConfig};
use super::payload::{self, Outcome, RetryPolicy, Verdict};
use super::queue::{Job, Queue};
use super::Registry;
use crate::events::Event;

/// Stack of each worker thread. Measured in a debug build by shrinking a thread's stack
/// until it overflowed: a plain-HTTP delivery peaks at ≈106 KiB, an HTTPS one (rustls
/// handshake and certificate checks, RSA-2048 or RSA-4096 chain) at ≈148 KiB. 256 KiB
/// leaves ≈100 KiB spare; release builds need less. Stacks are reserved address space and
/// only touched pages become resident, so two workers cost ≈2 × 150 KiB at worst.
pub const WORKER_STACK_SIZE: usize = 256 * 1024;

/// Bytes ureq buffers per connection for reading responses; also the largest response
/// head accepted. Receivers answer with a short head, and bodies are drained, not kept.
const INPUT_BUFFER_SIZE: usize = 16 * 1024;

/// Bytes ureq buffers per connection for writing. A request head holds at most ≈17 KiB of
/// custom headers (see `config::MAX_HEADERS`) plus ≈0.5 KiB of ours, so 32 KiB fits it.
/// With one idle connection kept per worker, two workers keep ≈2 × 48 KiB of buffers.
const OUTPUT_BUFFER_SIZE: usize = 32 * 1024;

/// Most response-body bytes read (and discarded) so a connection can be reused; a longer
/// body closes the connection instead.
const DRAIN_LIMIT: u64 = 16 * 1024;

/// Delivery figures of one webhook, kept across updates of its settings (same URL) and
/// shared by its queued entries. Removed webhooks' figures go when their entries do.
pub(crate) struct Stats {
    /// The URL key (see `config::url_key`).
    pub key: String,
    delivered: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Whether the last attempt did not get a 2xx; such webhooks share fewer workers.
    failing: AtomicBool,
    last: Mutex<LastAttempt>,
}

/// What the latest attempt of a webhook did.
#[derive(Clone, Debug, Default)]
pub(crate) struct LastAttempt {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub at: Option<SystemTime>,
}

/// A copy of a webhook's figures, for listings.
pub(crate) struct StatsSnapshot {
    pub delivered: u64,
    pub failed: u64,
    pub dropped: u64,
    pub last: LastAttempt,
}

impl Stats {
    pub fn new(key: String) -> Stats {
        Stats {
            key,
            delivered: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            last: Mutex::new(LastAttempt::default()),
        }
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            last: lock(&self.last).clone(),
        }
    }

    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub fn count_dropped(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record(&self, result: &AttemptResult) {
        self.failing.store(!result.is_success(), Ordering::Relaxed);
        *lock(&self.last) = LastAttempt {
            status: result.status,
            error: result.error.clone(),
            at: Some(SystemTime::now()),
        };
    }
}

/// What one attempt did: the receiver's status, or why there was none.
#[derive(Clone, Debug)]
pub(crate) struct AttemptResult {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub retry_after: Option<u64>,
    pub elapsed: Duration,
}

impl AttemptResult {
    pub fn is_success(&self) -> bool {
        self.status
            .is_some_and(|status| (200..300).contains(&status))
    }

    fn outcome(&self) -> Outcome {
        match self.status {
            Some(status) => Outcome::Answered {
                status,
                retry_after: self.retry_after,
            },
            None => Outcome::NoAnswer,
        }
    }

    /// A short description for logs and `last_error`: the error, or the status.
    pub fn describe(&self) -> String {
        match (&self.error, self.status) {
            (Some(error), _) => error.clone(),
            (None, Some(status)) => format!("receiver answered {status}"),
            (None, None) => "no answer".to_owned(),
        }
    }
}

/// The worker pool. Dropping it does not stop the workers: call [`Pool::stop`] (the
/// `Webhooks` handle does when its last clone goes) or [`Pool::shutdown`].
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

/// What the workers and the handle share.
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a job is queued or an attempt ends: workers wait here.
    wake: Condvar,
    /// Signalled when the queue becomes idle or a worker exits: shutdown waits here.
    idle: Condvar,
    agent: Agent,
    policy: RetryPolicy,
    registry: Arc<Registry>,
}

impl Pool {
    /// Starts `workers` threads named `webhook-1`… that sleep until work is queued.
    pub fn start(
        workers: usize,
        capacity: usize,
        registry: Arc<Registry>,
        policy: RetryPolicy,
    ) -> io::Result<Pool> {
        let workers = workers.max(1);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::new(capacity.max(1), workers)),
            wake: Condvar::new(),
            idle: Condvar::new(),
            agent: new_agent(workers),
            policy,
            registry,
        });

        let pool = Pool { shared };
        for number in 1..=workers {
            pool.spawn_worker(number)?;
        }
        Ok(pool)
    }

    fn spawn_worker(&self, number: usize) -> io::Result<()> {
        let shared = Arc::clone(&self.shared);
        lock(&shared.queue).running += 1;
        let spawned = thread::Builder::new()
            .name(format!("webhook-{number}"))
            .stack_size(WORKER_STACK_SIZE)
            .spawn(move || shared.work());

        if let Err(err) = spawned {
            self.stop();
            return Err(err);
        }
        Ok(())
    }

    /// Queues the first attempt of `event` for each webhook in `targets`. Never blocks
    /// beyond the queue lock; after shutdown began it drops the event quietly.
    pub fn enqueue(&self, event: &Arc<Event>, body: Arc<[u8]>, targets: Vec<Arc<Stats>>) {
        let now = Instant::now();
        let mut queue = lock(&self.shared.queue);
        if !queue.open {
            return;
        }
        for stats in targets {
            queue.push(Job {
                event: Arc::clone(event),
                body: Arc::clone(&body),
                stats,
                attempt: 1,
                not_before: now,
            });
        }
        drop(queue);
        self.shared.wake.notify_all();
    }

    /// Drops the queued entries of a removed webhook.
    pub fn forget(&self, stats: &Arc<Stats>) {
        let mut queue = lock(&self.shared.queue);
        queue.jobs.retain(|job| !Arc::ptr_eq(&job.stats, stats));
    }

    /// One attempt now, on the calling thread, outside the queue (the test route).
    pub fn send_now(&self, config: &WebhookConfig, event: &Event, body: &[u8]) -> AttemptResult {
        send(&self.shared.agent, config, event, body, 1)
    }

    /// Refuses new events, lets queued and in-flight attempts finish until `grace` has
    /// passed, then stops the workers. Returns by then even if an attempt is still running:
    /// that worker exits when its attempt times out, or with the process.
    pub fn shutdown(&self, grace: Duration) {
        let deadline = Instant::now() + grace;
        let mut queue = lock(&self.shared.queue);
        queue.open = false;
        queue = self.wait_until(queue, deadline, Queue::is_idle);

        let (queued, in_flight) = (queue.jobs.len(), queue.busy.len());
        queue.stopping = true;
        queue.jobs.clear();
        self.shared.wake.notify_all();
        let queue = self.wait_until(queue, deadline, |queue| queue.running == 0);
        drop(queue);

        if queued + in_flight > 0 {
            log::warn!(
                "webhooks: shutdown grace of {grace:?} ran out with {queued} queued and \
                 {in_flight} in-flight deliveries left undelivered"
            );
        }
    }

    /// Stops the workers without draining; queued entries are discarded.
    pub fn stop(&self) {
        let mut queue = lock(&self.shared.queue);
        queue.open = false;
        queue.stopping = true;
        queue.jobs.clear();
        drop(queue);
        self.shared.wake.notify_all();
    }

    fn wait_until<'a>(
        &self,
        mut queue: MutexGuard<'a, Queue>,
        deadline: Instant,
        done: impl Fn(&Queue) -> bool,
    ) -> MutexGuard<'a, Queue> {
        while !done(&queue) {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            queue = self
                .shared
                .idle
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        queue
    }
}

impl Shared {
    /// A worker's life: take a job, attempt it without holding the lock, put back the
    /// retry if any, repeat until stopped.
    fn work(&self) {
        while let Some((job, was_failing)) = self.next_job() {
            let stats = Arc::clone(&job.stats);
            let retry = self.attempt(job);
            self.finish(&stats, was_failing, retry);
        }

        let mut queue = lock(&self.queue);
        queue.running -= 1;
        drop(queue);
        self.idle.notify_all();
    }

    /// Blocks until a job may run, or returns `None` when stopping. Sleeps on the condvar,
    /// with a timeout only while a retry is waiting for its time.
    fn next_job(&self) -> Option<(Job, bool)> {
        let mut queue = lock(&self.queue);
        loop {
            if queue.stopping {
                return None;
            }
            let now = Instant::now();
            match queue.take_ready(now) {
                Ok(picked) => return Some(picked),
                Err(Some(at)) => {
                    let wait = at.saturating_duration_since(now);
                    queue = self
                        .wake
                        .wait_timeout(queue, wait)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                Err(None) => {
                    queue = self
                        .wake
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
    }

    fn finish(&self, stats: &Arc<Stats>, was_failing: bool, retry: Option<Job>) {
        let mut queue = lock(&self.queue);
        queue.mark_done(stats, was_failing);
        if let Some(job) = retry.filter(|_| !queue.stopping) {
            queue.push(job);
        }
        let idle = queue.is_idle();
        drop(queue);

        // Others may have skipped jobs of this webhook while it was busy.
        self.wake.notify_all();
        if idle {
            self.idle.notify_all();
        }
    }

    /// Makes one attempt with the webhook's current settings and returns the retry to
    /// queue, if any. A webhook removed meanwhile, or no longer wanting the event, is
    /// skipped without counting.
    fn attempt(&self, job: Job) -> Option<Job> {
        let hook = self.registry.current(&job.stats)?;
        if !hook.config.wants(job.event.event_type) {
            return None;
        }

        let result = send(
            &self.agent,
            &hook.config,
            &job.event,
            &job.body,
            job.attempt,
        );
        job.stats.record(&result);

        let retries = hook.config.retry_attempts;
        let now = Instant::now();
        match self
            .policy
            .decide(&result.outcome(), job.attempt, retries, now, random())
        {
            Verdict::Delivered => {
                job.stats.delivered.fetch_add(1, Ordering::Relaxed);
                None
            }
            Verdict::Retry { not_before } => {
                log_retry(&hook.config, &job, &result, not_before - now);
                Some(Job {
                    attempt: job.attempt + 1,
                    not_before,
                    ..job
                })
            }
            Verdict::Rejected | Verdict::Exhausted => {
                job.stats.failed.fetch_add(1, Ordering::Relaxed);
                log_give_up(&hook.config, &job, &result);
                None
            }
        }
    }
}

fn log_retry(config: &WebhookConfig, job: &Job, result: &AttemptResult, wait: Duration) {
    log::debug!(
        "webhook {}: attempt {} for event {} failed ({}), retrying in {} ms",
        SafeHookUrl(&config.url),
        job.attempt,
        job.event.event_id,
        result.describe(),
        wait.as_millis()
    );
}

fn log_give_up(config: &WebhookConfig, job: &Job, result: &AttemptResult) {
    log::warn!(
        "webhook {}: gave up on {} event {} after {} attempt(s): {}",
        SafeHookUrl(&config.url),
        job.event.event_type,
        job.event.event_id,
        job.attempt,
        result.describe()
    );
}

/// The agent every attempt shares: statuses are answers, not errors; redirects are not
/// followed (the URL is the receiver); no proxy from the environment; buffers kept small.
fn new_agent(workers: usize) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(AutoHeaderValue::None)
        .input_buffer_size(INPUT_BUFFER_SIZE)
        .max_response_header_size(INPUT_BUFFER_SIZE)
        .output_buffer_size(OUTPUT_BUFFER_SIZE)
        .max_idle_connections(workers)
        .max_idle_connections_per_host(workers)
        .build()
        .new_agent()
}

/// Posts one attempt. The timeout bounds connecting and, separately, the whole exchange,
/// so a receiver that accepts and never answers costs exactly one timeout.
fn send(
    agent: &Agent,
    config: &WebhookConfig,
    event: &Event,
    body: &[u8],
    attempt: u32,
) -> AttemptResult {
    let started = Instant::now();
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let timeout = Some(config.timeout());

    let mut request = agent
        .post(&config.url)
        .config()
        .timeout_global(timeout)
        .timeout_connect(timeout)
        .build();
    for (name, value) in payload::headers(config, event, body, attempt, unix_now) {
        request = request.header(name, value);
    }

    match request.send(body) {
        Ok(mut response) => answered(&mut response, started),
        Err(err) => AttemptResult {
            status: None,
            error: Some(describe_error(&err)),
            retry_after: None,
            elapsed: started.elapsed(),
        },
    }
}

/// Reads what a receiver answered, then drains a short body so the connection can be reused.
fn answered(response: &mut ureq::http::Response<ureq::Body>, started: Instant) -> AttemptResult {
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(payload::parse_retry_after);

    let mut reader = response.body_mut().as_reader().take(DRAIN_LIMIT);
    let _ = io::copy(&mut reader, &mut io::sink());

    AttemptResult {
        status: Some(response.status().as_u16()),
        error: None,
        retry_after,
        elapsed: started.elapsed(),
    }
}

/// An error as shown in logs and `last_error`. ureq's own text for a bad URI repeats the
/// URL, which may carry a token, so that case is reworded.
fn describe_error(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Timeout(phase) => format!("timed out ({phase})"),
        ureq::Error::Io(io) => format!("network error: {io}"),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::ConnectionFailed => "connection failed".to_owned(),
        ureq::Error::BadUri(_) => "invalid url".to_owned(),
        other => other.to_string(),
    }
}

/// A random number for back-off jitter, from the system's generator via a v4 UUID.
fn random() -> u32 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Locks, carrying on after a panic elsewhere: the data under these locks stays
/// consistent between statements, so a poisoned lock is still safe to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
