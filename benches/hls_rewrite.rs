//! Times the HLS rewriter on a large live media playlist and counts its heap allocations.
//! Plain `fn main` (harness = false): `cargo bench --bench hls_rewrite` prints one figure a line.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use m3u_proxy::hls::rewrite::{rewrite, UriKind};
use url::Url;

const SEGMENTS: usize = 5000;
const RUNS: usize = 200;
const WARM_UP: usize = 10;

/// The system allocator, counting calls so a run's allocations can be read off.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static REALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed straight to `System` with the caller's own arguments.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr` and `layout` came from this allocator, which is `System` underneath.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `realloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const KEY_URI: &str = "../keys/k184.key?token=9f8e7d6c&exp=1767225600";
const MAP_URI: &str = "init.mp4?token=9f8e7d6c&exp=1767225600";

fn segment_uri(n: usize) -> String {
    let sequence = 184_000 + n;
    format!("seg_{sequence}.m4s?token=9f8e7d6c&exp=1767225600&n={n}")
}

/// A live AES-128 fMP4 playlist with tokenised relative URIs, as a CDN would serve it.
fn media_playlist(segments: usize) -> String {
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:6\n#EXT-X-MEDIA-SEQUENCE:184000\n\
         #EXT-X-KEY:METHOD=AES-128,URI=\"{KEY_URI}\",IV=0x000000000000000000000000002CEC0\n\
         #EXT-X-MAP:URI=\"{MAP_URI}\"\n",
    );
    for n in 0..segments {
        if n % 10 == 0 {
            text.push_str("#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:00.000Z\n");
        }
        text.push_str("#EXTINF:6.006,\n");
        text.push_str(&segment_uri(n));
        text.push('\n');
    }
    text
}

/// The same references the playlist holds, for timing `Url::join` on its own.
fn references(segments: usize) -> Vec<String> {
    let mut all = vec![KEY_URI.to_string(), MAP_URI.to_string()];
    all.extend((0..segments).map(segment_uri));
    all
}

fn proxy_uri(upstream: &Url, kind: UriKind) -> String {
    let route = match kind {
        UriKind::Playlist => "http://proxy.local:8080/hls/p?u=",
        UriKind::Media => "http://proxy.local:8080/hls/m?u=",
    };
    let mut out = String::with_capacity(route.len() + upstream.as_str().len());
    out.push_str(route);
    out.push_str(upstream.as_str());
    out
}

struct Run {
    time: Duration,
    allocations: usize,
    reallocations: usize,
}

fn run_once(text: &str, base: &Url) -> Run {
    let allocations = ALLOCATIONS.load(Ordering::Relaxed);
    let reallocations = REALLOCATIONS.load(Ordering::Relaxed);
    let start = Instant::now();

    let rewritten = rewrite(black_box(text), base, proxy_uri);
    let time = start.elapsed();

    black_box(&rewritten);
    Run {
        time,
        allocations: ALLOCATIONS.load(Ordering::Relaxed) - allocations,
        reallocations: REALLOCATIONS.load(Ordering::Relaxed) - reallocations,
    }
}

/// The floor under any rewriter that hands the closure a `Url`: resolving each reference.
fn join_only(references: &[String], base: &Url) -> Duration {
    let start = Instant::now();
    for reference in references {
        black_box(base.join(black_box(reference)).ok());
    }
    start.elapsed()
}

fn median_of(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn millis(time: Duration) -> f64 {
    time.as_secs_f64() * 1e3
}

/// Timed runs after a warm-up, fastest first.
fn timed_runs(text: &str, base: &Url) -> Vec<Run> {
    for _ in 0..WARM_UP {
        run_once(text, base);
    }

    let mut runs: Vec<Run> = (0..RUNS).map(|_| run_once(text, base)).collect();
    runs.sort_by_key(|run| run.time);
    runs
}

fn report_rewrites(runs: &[Run]) {
    let (median, worst) = (&runs[runs.len() / 2], &runs[runs.len() - 1]);
    println!(
        "rewrite {SEGMENTS}-segment media playlist: median {:.2} ms, worst {:.2} ms over {RUNS} runs",
        millis(median.time),
        millis(worst.time),
    );
    println!(
        "allocations per {SEGMENTS}-segment playlist: {} (and {} reallocations)",
        median.allocations, median.reallocations,
    );
}

fn report_joins(base: &Url) {
    let references = references(SEGMENTS);
    let joins = median_of((0..RUNS).map(|_| join_only(&references, base)).collect());
    println!(
        "of which url::Url::join alone for the same {} references: median {:.2} ms",
        references.len(),
        millis(joins),
    );
}

fn report_throughput(text: &str, base: &Url, median: Duration) {
    let sample = rewrite(text, base, proxy_uri);
    println!(
        "throughput: {:.0} MB/s of input ({} KiB in, {} KiB out, {} URIs)",
        text.len() as f64 / median.as_secs_f64() / 1e6,
        text.len() / 1024,
        sample.text.len() / 1024,
        sample.uris,
    );
}

fn main() {
    let text = media_playlist(SEGMENTS);
    let base = Url::parse("http://cdn.test/live/ch42/1080p/index.m3u8?token=9f8e7d6c")
        .expect("the bench base is a valid URL");

    let runs = timed_runs(&text, &base);
    report_rewrites(&runs);
    report_joins(&base);
    report_throughput(&text, &base, runs[runs.len() / 2].time);
}
