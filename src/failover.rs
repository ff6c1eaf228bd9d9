//! The failover policy, pure: which source comes next, how long to wait before trying
//! it, and when to give up. Sources are the primary URL then the backups in the order
//! given; after the last one the list is tried again, up to a bounded number of full
//! cycles, with a growing pause between cycles. No I/O and no clock: callers pass state.

use std::time::Duration;

/// Pause before the second cycle; it doubles for each further cycle.
const FIRST_CYCLE_PAUSE: Duration = Duration::from_millis(250);

/// The longest pause between cycles.
const MAX_CYCLE_PAUSE: Duration = Duration::from_secs(4);

/// Why a source was left; the `reason` of a `failover_triggered` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Refused, reset, unresolvable or TLS failure before a response.
    ConnectError,
    /// The upstream answered with an error status.
    HttpStatus,
    /// Connecting or waiting for the response head took too long.
    Timeout,
    /// Live bytes stopped arriving with the socket open.
    Stall,
    /// The upstream body ended or failed while the client was still reading.
    UpstreamEnded,
    /// A 200 with no body, or a body that is not media (an HTML error page).
    BadContent,
    /// An operator asked for it.
    Manual,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConnectError => "connect_error",
            Reason::HttpStatus => "http_status",
            Reason::Timeout => "timeout",
            Reason::Stall => "stall",
            Reason::UpstreamEnded => "upstream_ended",
            Reason::BadContent => "bad_content",
            Reason::Manual => "manual",
        }
    }
}

/// Where a stream is in its source list during one run of failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Position {
    /// Index into primary-then-backups.
    pub index: usize,
    /// Sources tried since the last one that worked, the current one included.
    pub failures: usize,
}

/// What to do after the current source failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try source `index` after waiting `pause`.
    Try { index: usize, pause: Duration },
    /// Every source failed `cycles` times over: stop.
    GiveUp,
}

/// Decides the source after `at` fails, for `sources` sources and at most `cycles` full
/// passes over the list.
pub fn next(at: Position, sources: usize, cycles: u32) -> Next {
    let sources = sources.max(1);
    let budget = sources.saturating_mul(cycles.max(1) as usize);
    if at.failures >= budget {
        return Next::GiveUp;
    }
    let index = (at.index + 1) % sources;
    let completed_cycles = at.failures / sources;
    let pause = if at.failures.is_multiple_of(sources) {
        cycle_pause(completed_cycles)
    } else {
        Duration::ZERO
    };
    Next::Try { index, pause }
}

/// The pause before starting cycle `completed + 1`: none before the first retry cycle
/// has been earned, then 250 ms, 500 ms, 1 s … up to 4 s.
fn cycle_pause(completed: usize) -> Duration {
    if completed == 0 {
        return Duration::ZERO;
    }
    let doublings = (completed - 1).min(16) as u32;
    FIRST_CYCLE_PAUSE
        .saturating_mul(1 << doublings)
        .min(MAX_CYCLE_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(sources: usize, cycles: u32) -> Vec<Next> {
        let mut at = Position {
            index: 0,
            failures: 1,
        };
        let mut steps = Vec::new();
        loop {
            let step = next(at, sources, cycles);
            steps.push(step);
            match step {
                Next::Try { index, .. } => {
                    at = Position {
                        index,
                        failures: at.failures + 1,
                    }
                }
                Next::GiveUp => return steps,
            }
        }
    }

    #[test]
    fn sources_are_tried_in_order_then_around_again_with_a_pause() {
        let steps = walk(3, 2);
        let ms = |n| Duration::from_millis(n);
        assert_eq!(
            steps,
            vec![
                Next::Try {
                    index: 1,
                    pause: ms(0)
                },
                Next::Try {
                    index: 2,
                    pause: ms(0)
                },
                Next::Try {
                    index: 0,
                    pause: ms(250)
                },
                Next::Try {
                    index: 1,
                    pause: ms(0)
                },
                Next::Try {
                    index: 2,
                    pause: ms(0)
                },
                Next::GiveUp,
            ]
        );
    }

    #[test]
    fn a_single_source_is_retried_once_per_cycle() {
        assert_eq!(walk(1, 3).len(), 3);
        assert_eq!(walk(1, 1), vec![Next::GiveUp]);
    }

    #[test]
    fn pauses_grow_and_stop_growing() {
        assert_eq!(cycle_pause(1), Duration::from_millis(250));
        assert_eq!(cycle_pause(3), Duration::from_secs(1));
        assert_eq!(cycle_pause(40), MAX_CYCLE_PAUSE);
    }

    #[test]
    fn reasons_have_stable_wire_names() {
        assert_eq!(Reason::Stall.as_str(), "stall");
        assert_eq!(Reason::Manual.as_str(), "manual");
    }
}
