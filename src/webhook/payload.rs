//! What one delivery attempt sends, and what happens after it: the request body and
//! headers for an attempt, and the retry-or-give-up decision with its back-off. Pure: the
//! clock reading and the random jitter come in as parameters; sending is left to the pool.

use std::time::{Duration, Instant};

use super::config::WebhookConfig;
use super::signing;
use crate::events::Event;

/// The `User-Agent` of every delivery unless the webhook sets its own.
pub const USER_AGENT: &str = concat!("m3u-proxy/", env!("CARGO_PKG_VERSION"));

/// The body every attempt for `event` sends: the event as JSON, built once per event.
pub fn body(event: &Event) -> Vec<u8> {
    // An `Event` holds only strings, numbers and a `serde_json::Value`: it always serializes.
    serde_json::to_vec(event).unwrap_or_default()
}

/// The headers of attempt number `attempt` (from 1), signed at `unix_now` when the webhook
/// has a secret. Custom headers come after the fixed ones; validation keeps them from
/// repeating any fixed one except `User-Agent`, which then replaces ours.
pub fn headers(
    config: &WebhookConfig,
    event: &Event,
    body: &[u8],
    attempt: u32,
    unix_now: u64,
) -> Vec<(String, String)> {
    let mut headers = vec![
        ("Content-Type".to_owned(), "application/json".to_owned()),
        ("X-Event-Id".to_owned(), event.event_id.to_string()),
        (
            "X-Event-Type".to_owned(),
            event.event_type.as_str().to_owned(),
        ),
        ("X-Delivery-Attempt".to_owned(), attempt.to_string()),
    ];
    let custom_agent = config
        .headers
        .keys()
        .any(|name| name.eq_ignore_ascii_case("user-agent"));
    if !custom_agent {
        headers.push(("User-Agent".to_owned(), USER_AGENT.to_owned()));
    }

    headers.extend(config.headers.iter().map(|(n, v)| (n.clone(), v.clone())));

    if let Some(secret) = &config.secret {
        let timestamp = unix_now.to_string();
        let signature = signing::sign(secret, &timestamp, body);
        headers.push((signing::TIMESTAMP_HEADER.to_owned(), timestamp));
        headers.push((signing::SIGNATURE_HEADER.to_owned(), signature));
    }
    headers
}

/// How one attempt ended, as far as retrying is concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered. `retry_after` is a `Retry-After` given in seconds.
    Answered {
        status: u16,
        retry_after: Option<u64>,
    },
    /// No answer: refused, reset, unresolvable, TLS failure or timed out.
    NoAnswer,
}

/// What to do after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again, not before this instant.
    Retry {
        not_before: Instant,
    },
    /// The receiver refused in a way retrying cannot change (3xx, most 4xx).
    Rejected,
    /// Retryable, but every allowed attempt has been made.
    Exhausted,
}

/// Back-off settings. [`RetryPolicy::STANDARD`] in production; tests shorten the delays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Delay before the first retry; each further retry doubles it.
    pub first_delay: Duration,
    /// Longest back-off delay, jitter included.
    pub max_delay: Duration,
    /// Longest `Retry-After` honoured; a receiver asking for more waits this long.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// 1 s, 2 s, 4 s, 8 s, 16 s, then 30 s (the cap) for each further retry, each ±25 %
    /// (jitter is applied before the cap). With the maximum of 10 retries an event is given
    /// up after 1 + 2 + 4 + 8 + 16 + 5 × 30 = 181 s ≈ 3 minutes of back-off plus the
    /// attempts' own timeouts. `Retry-After` is honoured up to 2 minutes.
    pub const STANDARD: RetryPolicy = RetryPolicy {
        first_delay: Duration::from_secs(1),
        max_delay: Duration::from_secs(30),
        max_retry_after: Duration::from_secs(120),
    };

    /// Decides after attempt number `attempt` (from 1) of a webhook allowing
    /// `retry_attempts` retries. `random` is any uniformly random number, for jitter.
    pub fn decide(
        &self,
        outcome: &Outcome,
        attempt: u32,
        retry_attempts: u32,
        now: Instant,
        random: u32,
    ) -> Verdict {
        let wait = match *outcome {
            Outcome::Answered { status, .. } if (200..300).contains(&status) => {
                return Verdict::Delivered
            }
            Outcome::Answered { status, .. } if !retryable(status) => return Verdict::Rejected,
            Outcome::Answered {
                status: 429 | 503,
                retry_after: Some(secs),
            } => Duration::from_secs(secs).min(self.max_retry_after),
            _ => self.backoff(attempt, random),
        };

        if attempt > retry_attempts {
            return Verdict::Exhausted;
        }
        Verdict::Retry {
            not_before: now + wait,
        }
    }

    /// The delay before retry number `retry` (from 1): doubling from `first_delay`,
    /// scaled by a factor from 0.75 to 1.25 picked by `random`, then capped.
    pub fn backoff(&self, retry: u32, random: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(20);
        let base = self.first_delay.saturating_mul(1 << doublings);

        // 750‰ to 1250‰, in integer steps so the result is exact and repeatable.
        let permille = 750 + u64::from(random) * 500 / u64::from(u32::MAX);
        let jittered = base.as_millis().saturating_mul(u128::from(permille)) / 1000;
        let jittered = Duration::from_millis(u64::try_from(jittered).unwrap_or(u64::MAX));
        jittered.min(self.max_delay)
    }
}

/// Which non-2xx answers are worth another attempt: server errors, and the two client
/// errors that mean "later" (408 Request Timeout, 429 Too Many Requests). Redirects are
/// not followed, and another attempt would be redirected again, so they count as refusals.
fn retryable(status: u16) -> bool {
    matches!(status, 408 | 429) || !(200..500).contains(&status)
}

/// Reads a `Retry-After` value given in seconds. The HTTP-date form is not read: the
/// normal back-off applies then.
pub fn parse_retry_after(value: &str) -> Option<u64> {
    value.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventType;
    use std::time::UNIX_EPOCH;

    const POLICY: RetryPolicy = RetryPolicy::STANDARD;
    /// A `random` that gives a jitter factor of exactly 1.
    const NO_JITTER: u32 = u32::MAX / 2 + 1;

    fn answered(status: u16) -> Outcome {
        Outcome::Answered {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn verdicts_follow_status_classes_and_the_attempt_budget() {
        let now = Instant::now();
        let retry_in = |secs: u64| Verdict::Retry {
            not_before: now + Duration::from_secs(secs),
        };
        let throttled = |secs| Outcome::Answered {
            status: 429,
            retry_after: Some(secs),
        };
        let cases = [
            // (outcome, attempt just made, retries allowed, verdict)
            (answered(200), 1, 3, Verdict::Delivered),
            (answered(204), 4, 3, Verdict::Delivered),
            (answered(400), 1, 3, Verdict::Rejected),
            (answered(404), 1, 3, Verdict::Rejected),
            (answered(410), 1, 3, Verdict::Rejected),
            (answered(301), 1, 3, Verdict::Rejected),
            (answered(408), 1, 3, retry_in(1)),
            (answered(500), 1, 3, retry_in(1)),
            (answered(502), 2, 3, retry_in(2)),
            (answered(503), 3, 3, retry_in(4)),
            (answered(500), 4, 3, Verdict::Exhausted),
            (answered(500), 1, 0, Verdict::Exhausted),
            (Outcome::NoAnswer, 1, 3, retry_in(1)),
            (Outcome::NoAnswer, 6, 10, retry_in(30)),
            (Outcome::NoAnswer, 2, 1, Verdict::Exhausted),
            (throttled(1), 1, 3, retry_in(1)),
            (throttled(7), 3, 3, retry_in(7)),
            (throttled(3600), 1, 3, retry_in(120)),
            (throttled(1), 4, 3, Verdict::Exhausted),
            (answered(429), 2, 3, retry_in(2)),
        ];
        for (outcome, attempt, budget, verdict) in cases {
            let got = POLICY.decide(&outcome, attempt, budget, now, NO_JITTER);
            assert_eq!(got, verdict, "{outcome:?} attempt {attempt} of 1+{budget}");
        }
    }

    #[test]
    fn backoff_doubles_jitters_by_a_quarter_and_stops_at_the_cap() {
        let cases = [
            // (retry, random, delay in ms)
            (1, NO_JITTER, 1000),
            (2, NO_JITTER, 2000),
            (3, NO_JITTER, 4000),
            (5, NO_JITTER, 16_000),
            (6, NO_JITTER, 30_000),
            (40, NO_JITTER, 30_000),
            (1, 0, 750),
            (1, u32::MAX, 1250),
            (3, 0, 3000),
            (3, u32::MAX, 5000),
            (5, u32::MAX, 20_000),
            (6, 0, 24_000),
            (6, u32::MAX, 30_000),
        ];
        for (retry, random, millis) in cases {
            let got = POLICY.backoff(retry, random);
            assert_eq!(
                got,
                Duration::from_millis(millis),
                "retry {retry} random {random}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let cases = [
            ("1", Some(1)),
            (" 30 ", Some(30)),
            ("-1", None),
            ("soon", None),
        ];
        for (value, secs) in cases {
            assert_eq!(parse_retry_after(value), secs, "{value:?}");
        }
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    fn sample() -> (WebhookConfig, Event) {
        let body = br#"{"url": "http://127.0.0.1/h", "headers": {"Authorization": "Bearer t"}}"#;
        let config = WebhookConfig::parse(body).unwrap();
        let at = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let event = Event::new(
            EventType::StreamStopped,
            "abc",
            4,
            at,
            serde_json::json!({}),
        );
        (config, event)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        let found = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
        found.map(|(_, v)| v.as_str())
    }

    #[test]
    fn headers_carry_event_identity_attempt_and_custom_values() {
        let (config, event) = sample();
        let body = body(&event);
        let headers = headers(&config, &event, &body, 2, 1_700_000_100);

        assert_eq!(header(&headers, "content-type"), Some("application/json"));
        assert_eq!(header(&headers, "user-agent"), Some(USER_AGENT));
        assert_eq!(
            header(&headers, "x-event-id"),
            Some(&*event.event_id.to_string())
        );
        assert_eq!(header(&headers, "x-event-type"), Some("stream_stopped"));
        assert_eq!(header(&headers, "x-delivery-attempt"), Some("2"));
        assert_eq!(header(&headers, "authorization"), Some("Bearer t"));
        assert_eq!(header(&headers, "x-webhook-signature"), None);
    }

    #[test]
    fn secret_adds_a_verifiable_signature_over_the_attempt_time() {
        let (mut config, event) = sample();
        config.secret = Some("s3cret".to_owned());
        let body = body(&event);
        let headers = headers(&config, &event, &body, 1, 1_700_000_100);

        let timestamp = header(&headers, "x-webhook-timestamp").unwrap();
        let signature = header(&headers, "x-webhook-signature").unwrap();
        assert_eq!(timestamp, "1700000100");
        assert_eq!(
            signing::verify("s3cret", timestamp, &body, signature),
            Ok(())
        );
    }

    #[test]
    fn custom_user_agent_replaces_ours() {
        let (mut config, event) = sample();
        config
            .headers
            .insert("user-agent".to_owned(), "mine/1".to_owned());
        let headers = headers(&config, &event, b"{}", 1, 0);
        let agents = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("user-agent"));
        assert_eq!(agents.count(), 1);
        assert_eq!(header(&headers, "user-agent"), Some("mine/1"));
    }

    #[test]
    fn body_is_the_event_with_its_own_timestamp() {
        let (_, event) = sample();
        let json: serde_json::Value = serde_json::from_slice(&body(&event)).unwrap();
        assert_eq!(json["event_id"], event.event_id.to_string());
        assert_eq!(json["timestamp"], "2023-11-14T22:13:20.000000");
        assert_eq!(json["sequence"], 4);
    }
}
