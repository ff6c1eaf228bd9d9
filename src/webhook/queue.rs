//! The bounded queue of pending attempts: which entry a worker may take next, and which
//! one goes when the queue is full. Bookkeeping only, always used under the pool's lock;
//! the threads that wait on it and the attempts themselves are in `delivery`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use super::config::SafeHookUrl;
use super::delivery::Stats;
use crate::events::Event;

/// One pending attempt. The event and its body are shared by every webhook it goes to.
pub(crate) struct Job {
    pub event: Arc<Event>,
    pub body: Arc<[u8]>,
    pub stats: Arc<Stats>,
    /// Number of this attempt, from 1.
    pub attempt: u32,
    pub not_before: Instant,
}

/// The queue and the bookkeeping the pick rule needs, all under one lock.
pub(crate) struct Queue {
    pub jobs: VecDeque<Job>,
    capacity: usize,
    /// Webhooks with an attempt in flight.
    pub busy: Vec<Arc<Stats>>,
    /// How many of those were failing when picked.
    failing_busy: usize,
    /// Workers allowed on failing webhooks at once.
    failing_limit: usize,
    /// False once shutdown begins: new events are refused, retries still queue.
    pub open: bool,
    /// True once workers must exit.
    pub stopping: bool,
    /// Worker threads not yet exited.
    pub running: usize,
}

impl Queue {
    pub fn new(capacity: usize, workers: usize) -> Queue {
        Queue {
            // Grown as needed rather than reserved: a large capacity costs nothing idle.
            jobs: VecDeque::new(),
            capacity,
            busy: Vec::with_capacity(workers),
            failing_busy: 0,
            failing_limit: workers.saturating_sub(1).max(1),
            open: true,
            stopping: false,
            running: 0,
        }
    }

    /// Adds a job, first dropping one if the queue is full (see [`Queue::evict`]).
    pub fn push(&mut self, job: Job) {
        if self.jobs.len() >= self.capacity {
            self.evict();
        }
        self.jobs.push_back(job);
    }

    /// Drops the oldest entry of the webhook with the most entries queued, and counts it
    /// there. With one webhook that is simply the oldest entry; with several, a receiver
    /// that fell behind loses its own backlog instead of pushing out everyone else's.
    fn evict(&mut self) {
        let Some(victim) = self.most_backlogged() else {
            return;
        };
        let index = self
            .jobs
            .iter()
            .position(|job| Arc::ptr_eq(&job.stats, &victim));
        if let Some(job) = index.and_then(|index| self.jobs.remove(index)) {
            job.stats.count_dropped();
            log::debug!(
                "webhook {}: queue full, dropped event {}",
                SafeHookUrl(&job.stats.key),
                job.event.event_id
            );
        }
    }

    /// The webhook with the most queued entries; ties go to the one queued first.
    fn most_backlogged(&self) -> Option<Arc<Stats>> {
        // Few webhooks, and this runs only on overflow: a linear tally is enough.
        let mut tally: Vec<(&Arc<Stats>, usize)> = Vec::new();
        for job in &self.jobs {
            match tally
                .iter_mut()
                .find(|(stats, _)| Arc::ptr_eq(stats, &job.stats))
            {
                Some((_, count)) => *count += 1,
                None => tally.push((&job.stats, 1)),
            }
        }
        let most = tally.iter().map(|(_, count)| *count).max()?;
        let first = tally.iter().find(|(_, count)| *count == most)?;
        Some(Arc::clone(first.0))
    }

    /// Takes the oldest job allowed to run now. Otherwise returns when the earliest
    /// waiting retry becomes ready, if any (a finishing attempt also wakes the workers).
    /// The flag says whether the webhook was failing when picked, for [`Queue::mark_done`].
    pub fn take_ready(&mut self, now: Instant) -> Result<(Job, bool), Option<Instant>> {
        let mut wake_at: Option<Instant> = None;
        let mut found = None;
        for (index, job) in self.jobs.iter().enumerate() {
            if !self.may_start(&job.stats) {
                continue;
            }
            if job.not_before > now {
                wake_at = Some(wake_at.map_or(job.not_before, |at| at.min(job.not_before)));
                continue;
            }
            found = Some(index);
            break;
        }

        let job = found
            .and_then(|index| self.jobs.remove(index))
            .ok_or(wake_at)?;
        let was_failing = self.mark_busy(&job.stats);
        Ok((job, was_failing))
    }

    fn may_start(&self, stats: &Arc<Stats>) -> bool {
        let in_flight = self.busy.iter().any(|busy| Arc::ptr_eq(busy, stats));
        let lane_full = stats.is_failing() && self.failing_busy >= self.failing_limit;
        !in_flight && !lane_full
    }

    fn mark_busy(&mut self, stats: &Arc<Stats>) -> bool {
        let failing = stats.is_failing();
        if failing {
            self.failing_busy += 1;
        }
        self.busy.push(Arc::clone(stats));
        failing
    }

    pub fn mark_done(&mut self, stats: &Arc<Stats>, was_failing: bool) {
        if was_failing {
            self.failing_busy = self.failing_busy.saturating_sub(1);
        }
        self.busy.retain(|busy| !Arc::ptr_eq(busy, stats));
    }

    pub fn is_idle(&self) -> bool {
        self.jobs.is_empty() && self.busy.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;
    use crate::webhook::delivery::AttemptResult;
    use std::time::{Duration, SystemTime};

    fn stats(key: &str, failing: bool) -> Arc<Stats> {
        let stats = Stats::new(key.to_owned());
        stats.record(&AttemptResult {
            status: Some(if failing { 500 } else { 200 }),
            error: None,
            retry_after: None,
            elapsed: Duration::ZERO,
        });
        Arc::new(stats)
    }

    fn job(stats: &Arc<Stats>, sequence: u64, not_before: Instant) -> Job {
        let event = Event::new(
            EventType::StreamStarted,
            "s",
            sequence,
            SystemTime::now(),
            serde_json::Value::Null,
        );
        Job {
            event: Arc::new(event),
            body: Arc::from(&b"{}"[..]),
            stats: Arc::clone(stats),
            attempt: 1,
            not_before,
        }
    }

    fn sequences(queue: &Queue) -> Vec<(String, u64)> {
        let jobs = queue.jobs.iter();
        jobs.map(|job| (job.stats.key.clone(), job.event.sequence))
            .collect()
    }

    #[test]
    fn overflow_drops_the_oldest_entry_of_the_most_backlogged_webhook() {
        let now = Instant::now();
        let (slow, quick) = (stats("slow", true), stats("quick", false));
        let mut queue = Queue::new(4, 2);
        for (hook, sequence) in [(&slow, 1), (&quick, 2), (&slow, 3), (&slow, 4)] {
            queue.push(job(hook, sequence, now));
        }

        queue.push(job(&quick, 5, now));

        let expected = [("quick", 2), ("slow", 3), ("slow", 4), ("quick", 5)];
        let expected: Vec<_> = expected.iter().map(|(k, s)| (k.to_string(), *s)).collect();
        assert_eq!(sequences(&queue), expected);
        assert_eq!(slow.snapshot().dropped, 1);
        assert_eq!(quick.snapshot().dropped, 0);
    }

    #[test]
    fn pick_skips_busy_webhooks_and_waiting_retries() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let (a, b) = (stats("a", false), stats("b", false));
        let mut queue = Queue::new(8, 2);
        queue.push(job(&a, 1, later));
        queue.push(job(&b, 2, now));
        queue.push(job(&b, 3, now));

        let (first, _) = queue.take_ready(now).ok().unwrap();
        assert_eq!(first.event.sequence, 2, "the retry of a is not ready yet");
        // b is now in flight, so its next event waits; a's retry is due at `later`.
        assert_eq!(queue.take_ready(now).err(), Some(Some(later)));

        queue.mark_done(&b, false);
        let (next, _) = queue.take_ready(now).ok().unwrap();
        assert_eq!(next.event.sequence, 3);
    }

    #[test]
    fn failing_webhooks_leave_one_of_two_workers_free() {
        let now = Instant::now();
        let (dead1, dead2, fine) = (stats("d1", true), stats("d2", true), stats("f", false));
        let mut queue = Queue::new(8, 2);
        for (hook, sequence) in [(&dead1, 1), (&dead2, 2), (&fine, 3)] {
            queue.push(job(hook, sequence, now));
        }

        let (first, was_failing) = queue.take_ready(now).ok().unwrap();
        assert_eq!((first.event.sequence, was_failing), (1, true));
        let (second, _) = queue.take_ready(now).ok().unwrap();
        assert_eq!(
            second.event.sequence, 3,
            "the second failing webhook must wait"
        );

        queue.mark_done(&dead1, true);
        let (third, _) = queue.take_ready(now).ok().unwrap();
        assert_eq!(third.event.sequence, 2);
    }

    #[test]
    fn one_worker_still_serves_failing_webhooks() {
        let now = Instant::now();
        let dead = stats("d", true);
        let mut queue = Queue::new(2, 1);
        queue.push(job(&dead, 1, now));
        assert!(queue.take_ready(now).is_ok());
    }

    /// The queue-size arithmetic in `DEFAULT_QUEUE_CAPACITY` counts on this.
    #[cfg(target_pointer_width = "64")]
    #[test]
    fn an_entry_is_56_bytes() {
        assert_eq!(std::mem::size_of::<Job>(), 56);
    }
}
