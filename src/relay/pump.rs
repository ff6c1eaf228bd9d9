//! Carrying a continuous stream to one client after its head is committed. Reads the
//! upstream into the client's buffer and writes it out; on a stall, an early end or a
//! read error it moves to the next source inside the same response (live) or resumes
//! with `Range` where it broke (VOD), and it follows source switches made by other
//! clients or by an operator. MPEG-TS splices land on 188-byte packet boundaries.

use std::io;
use std::pin::{pin, Pin};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_io::Timer;
use futures_lite::future;

use super::open::{next_source, open_source, Media, Opened, SourceFailure};
use super::sniff::{ts_sync_offset, TS_PACKET};
use crate::app::App;
use crate::failover::Reason;
use crate::registry::{ClientGuard, SourceSwitch};
use crate::server::{BodyEnd, ClientSink, MediaBody, Reply};
use crate::upstream;

/// How long a source must keep delivering before it counts as working again, which
/// clears the stream's run of failures. A source that answers and dies at once (or
/// after a few packets) keeps counting, so the cycle bound ends a reconnect storm.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

/// Bytes searched for a sync byte after a splice before giving up on alignment.
const SYNC_SEARCH: usize = 8 * TS_PACKET;

/// Wraps an opened source as the client's streamed reply.
pub fn reply(app: Arc<App>, guard: ClientGuard, media: Media) -> Reply {
    let Media {
        response,
        first,
        source,
        head,
        span,
        transport_stream,
    } = media;
    let pump = Pump {
        app,
        guard,
        response,
        first,
        source,
        vod: span.map(|(start, end)| Vod {
            next: start,
            end,
            resumes_used: 0,
        }),
        // Files pass through untouched; only live TS is kept to whole packets.
        splice: Splice {
            ts: transport_stream && span.is_none(),
            carry: 0,
            needs_sync: false,
        },
        healthy_at: Some(Instant::now() + HEALTHY_AFTER),
    };
    Reply::Media(head, Box::new(pump))
}

/// Where a length-delimited body stands: the next absolute byte and the last one.
struct Vod {
    next: u64,
    end: u64,
    resumes_used: u32,
}

/// Packet alignment state: bytes of a partial packet kept at the buffer's start, and
/// whether the next bytes come from a new source and must be searched for a sync byte.
struct Splice {
    ts: bool,
    carry: usize,
    needs_sync: bool,
}

struct Pump {
    /// Declared before `guard` so it drops first: the upstream connection is closed
    /// before the client's end is published.
    response: upstream::Response,
    app: Arc<App>,
    guard: ClientGuard,
    first: Vec<u8>,
    source: SourceSwitch,
    vod: Option<Vod>,
    splice: Splice,
    /// When the current source will have delivered long enough to count as working;
    /// `None` once it has.
    healthy_at: Option<Instant>,
}

/// What woke the pump.
enum Wake {
    Data(Result<usize, upstream::UpstreamError>),
    Stalled,
    ClientGone,
    Kicked,
    Switched,
}

impl MediaBody for Pump {
    fn pump<'a>(
        self: Box<Self>,
        sink: &'a mut ClientSink,
    ) -> Pin<Box<dyn std::future::Future<Output = BodyEnd> + Send + 'a>> {
        Box::pin(self.run(sink))
    }
}

impl Pump {
    async fn run(mut self, sink: &mut ClientSink) -> BodyEnd {
        if self.deliver_first(sink).await.is_err() {
            return BodyEnd::Aborted;
        }
        let stall = self.stall_limit();
        // Armed for `stall` after the last progress; re-arming it for every chunk would
        // cost a reactor registration per chunk, so a wake-up that comes early re-arms it.
        let mut timer = Timer::after(stall);
        let mut last_progress = Instant::now();
        let mut closed = pin!(sink.watcher().closed());
        let mut kicked = self.guard.client().kicked();
        let mut switched = self.guard.stream().switched();

        loop {
            if self.guard.client().is_kicked() || self.guard.stream().is_removed() {
                return BodyEnd::Aborted;
            }
            if self.vod.as_ref().is_some_and(|v| v.next > v.end) {
                return BodyEnd::Complete;
            }
            let wake = {
                let carry = self.splice.carry;
                let read = async {
                    Wake::Data(
                        self.response
                            .body
                            .read(&mut sink.payload_mut()[carry..])
                            .await,
                    )
                };
                let stalled = async {
                    (&mut timer).await;
                    Wake::Stalled
                };
                let gone = async {
                    closed.as_mut().await;
                    Wake::ClientGone
                };
                let kick = async {
                    (&mut kicked).await;
                    Wake::Kicked
                };
                let switch = async {
                    (&mut switched).await;
                    Wake::Switched
                };
                future::or(
                    read,
                    future::or(stalled, future::or(gone, future::or(kick, switch))),
                )
                .await
            };
            let progress = matches!(&wake, Wake::Data(Ok(n)) if *n > 0);
            let outcome = match wake {
                Wake::Stalled if last_progress.elapsed() < stall => {
                    timer.set_at(last_progress + stall);
                    continue;
                }
                Wake::Data(Ok(0)) if self.vod.is_none() => {
                    self.fail(
                        SourceFailure::new(Reason::UpstreamEnded, "upstream ended the stream"),
                        sink,
                    )
                    .await
                }
                Wake::Data(Ok(0)) => {
                    self.fail(
                        SourceFailure::new(Reason::UpstreamEnded, "upstream body ended early"),
                        sink,
                    )
                    .await
                }
                Wake::Data(Ok(n)) => self.deliver(sink, n).await.map_err(|_| ()),
                Wake::Data(Err(e)) => {
                    self.fail(
                        SourceFailure::new(Reason::UpstreamEnded, &e.to_string()),
                        sink,
                    )
                    .await
                }
                Wake::Stalled => {
                    self.fail(
                        SourceFailure::new(Reason::Stall, "no bytes from upstream"),
                        sink,
                    )
                    .await
                }
                Wake::ClientGone | Wake::Kicked => return BodyEnd::Aborted,
                Wake::Switched => {
                    switched = self.guard.stream().switched();
                    self.follow_switch(sink).await
                }
            };
            if outcome.is_err() {
                return BodyEnd::Aborted;
            }
            // A switch or a resume starts the stall clock afresh for the new source.
            last_progress = Instant::now();
            if self.healthy_at.is_some_and(|at| last_progress >= at) {
                self.guard.stream().mark_working(self.source.generation);
                self.healthy_at = None;
            }
            if !progress {
                timer.set_after(stall);
            }
        }
    }

    /// How long the upstream may send nothing: the live stall limit, or the general
    /// read timeout for files (a VOD server may pause while the player seeks).
    fn stall_limit(&self) -> Duration {
        match self.vod {
            Some(_) => self.app.config.read_timeout,
            None => self.app.config.live_chunk_timeout,
        }
    }

    async fn deliver_first(&mut self, sink: &mut ClientSink) -> io::Result<()> {
        let first = std::mem::take(&mut self.first);
        let carry = self.splice.carry;
        sink.payload_mut()[carry..carry + first.len()].copy_from_slice(&first);
        self.deliver(sink, first.len()).await
    }

    /// Sends what is in the buffer (`carry` old bytes plus `n` new ones): from a sync
    /// byte after a splice, and only whole packets for TS, keeping the rest as carry.
    async fn deliver(&mut self, sink: &mut ClientSink, n: usize) -> io::Result<()> {
        let mut filled = self.splice.carry + n;
        if self.splice.needs_sync {
            let payload = sink.payload_mut();
            match ts_sync_offset(&payload[..filled]) {
                Some(at) => {
                    payload.copy_within(at..filled, 0);
                    filled -= at;
                    self.splice.needs_sync = false;
                }
                None if filled < SYNC_SEARCH => {
                    self.splice.carry = filled;
                    return Ok(());
                }
                None => self.splice.needs_sync = false,
            }
        }
        let whole = if self.splice.ts {
            filled - filled % TS_PACKET
        } else {
            filled
        };
        sink.send(whole).await?;
        self.guard.add_bytes(whole);
        if let Some(vod) = &mut self.vod {
            vod.next += whole as u64;
        }
        sink.payload_mut().copy_within(whole..filled, 0);
        self.splice.carry = filled - whole;
        Ok(())
    }

    /// Handles a failure of the current source: resume a file where it broke, else move
    /// to the next source. `Err` when nothing is left to try or the client is gone.
    async fn fail(&mut self, failure: SourceFailure, sink: &mut ClientSink) -> Result<(), ()> {
        let stream = self.guard.stream().clone();
        log::info!(
            "stream {} source {} broke mid-stream: {}",
            stream.id,
            self.source.index,
            failure.detail
        );
        if self.try_resume(sink).await {
            return Ok(());
        }
        let mut failed = self.source.clone();
        let mut failure = failure;
        loop {
            let next = next_source(&self.app, &stream, &failed, &failure)
                .await
                .ok_or(())?;
            match self.switch_to(next.clone()).await {
                Ok(()) => return self.deliver_first(sink).await.map_err(|_| ()),
                // Report the next failure against the source that just failed, so the
                // policy moves on from it rather than handing it back.
                Err(why) => (failed, failure) = (next, why),
            }
        }
    }

    /// Resumes a file from the same source with `Range`, a bounded number of times.
    async fn try_resume(&mut self, sink: &mut ClientSink) -> bool {
        let Some(vod) = &mut self.vod else {
            return false;
        };
        if vod.resumes_used >= self.app.config.vod_resume_attempts {
            return false;
        }
        vod.resumes_used += 1;
        let source = SourceSwitch {
            pause: Duration::ZERO,
            ..self.source.clone()
        };
        self.switch_to(source).await.is_ok() && self.deliver_first(sink).await.is_ok()
    }

    /// Another client or an operator moved the stream: follow it.
    async fn follow_switch(&mut self, sink: &mut ClientSink) -> Result<(), ()> {
        let current = self.guard.stream().current();
        if current.generation == self.source.generation {
            return Ok(());
        }
        match self.switch_to(current.clone()).await {
            Ok(()) => self.deliver_first(sink).await.map_err(|_| ()),
            Err(failure) => {
                // The old source is left behind either way; failures now count on the new one.
                self.source = current;
                self.fail(failure, sink).await
            }
        }
    }

    /// Opens `source` and makes it the one being read; its first bytes wait in
    /// `self.first` for [`Pump::deliver_first`]. For a file the new body must start
    /// exactly at the next byte the client expects.
    async fn switch_to(&mut self, source: SourceSwitch) -> Result<(), SourceFailure> {
        if !source.pause.is_zero() {
            Timer::after(source.pause).await;
        }
        let range = self
            .vod
            .as_ref()
            .map(|v| format!("bytes={}-{}", v.next, v.end));
        let stream = self.guard.stream().clone();
        let opened = open_source(&self.app, &stream, &source, range.as_deref()).await;
        let media = match opened {
            Ok(Opened::Media(media)) => media,
            Ok(_) => {
                return Err(SourceFailure::new(
                    Reason::BadContent,
                    "source no longer serves this media",
                ))
            }
            Err(failure) => return Err(failure),
        };
        if let Some(vod) = &self.vod {
            if media.span.map(|(start, _)| start) != Some(vod.next) {
                return Err(SourceFailure::new(
                    Reason::HttpStatus,
                    "source cannot resume at the needed byte",
                ));
            }
        }
        self.healthy_at = Some(Instant::now() + HEALTHY_AFTER);
        self.response = media.response;
        self.first = media.first;
        self.source = source;
        // The old source's partial packet is dropped; the new one starts at a sync byte.
        self.splice.carry = 0;
        self.splice.needs_sync = self.splice.ts;
        Ok(())
    }
}
