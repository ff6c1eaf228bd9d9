//! m3u-proxy: an IPTV stream proxy for routers and small boards.
//!
//! Module map, in the order data flows:
//! - [`config`]: settings from defaults, environment and flags, validated once.
//! - [`server`]: accept loop, connection bound, request heads, streamed replies; pure routing.
//! - [`api`]: the REST handlers, one file per resource, behind the token check.
//! - [`registry`]: streams and their clients, their counters and lifecycle events.
//! - [`upstream`]: the HTTP/1.1 client for providers (redirects, timeouts, TLS).
//! - [`relay`]: continuous streams from a source to a client, switching inside the response.
//! - [`hls`]: the pure playlist rewriter and the HLS routes that use it.
//! - [`failover`]: the pure policy choosing the next source.
//! - [`events`], [`subscribers`], [`webhook`], [`state`]: events, their bus and sinks, and
//!   the state file that keeps webhooks across restarts.
//! - [`redact`]: log-safe views of URLs and client text.

pub mod api;
pub mod app;
pub mod config;
pub mod events;
pub mod failover;
pub mod hls;
pub mod redact;
pub mod registry;
pub mod relay;
pub mod server;
pub mod state;
pub mod subscribers;
pub mod upstream;
pub mod webhook;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use app::App;
use config::Config;
use registry::StopReason;

/// How often idle clients and streams are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How long shutdown waits for open connections to finish after streams were ended.
const DRAIN_CONNECTIONS: Duration = Duration::from_secs(3);

/// How long shutdown lets pending webhook deliveries go on.
const DRAIN_WEBHOOKS: Duration = Duration::from_secs(5);

/// Why the proxy could not run.
#[derive(Debug)]
pub enum RunError {
    Webhooks(webhook::StartError),
    Listener(std::io::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Webhooks(e) => write!(f, "{e}"),
            RunError::Listener(e) => write!(f, "listener: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// Runs the proxy on `listener` until `shutdown` resolves, then ends every stream
/// (`stream_stopped` with reason `shutdown`), drains briefly, and returns.
pub fn run(
    config: Config,
    listener: std::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let app = App::start(config).map_err(RunError::Webhooks)?;
    let listener = async_net::TcpListener::try_from(listener).map_err(RunError::Listener)?;
    let executor = Arc::new(smol::Executor::new());

    smol::block_on(executor.run(async {
        let accept = executor.spawn(server::accept_loop(app.clone(), listener, executor.clone()));
        let sweeper = executor.spawn(sweep_forever(app.clone()));
        shutdown.await;

        log::info!("shutting down: ending {} streams", app.registry.all().len());
        drop(accept);
        drop(sweeper);
        app.registry
            .remove_all(StopReason::Shutdown, SystemTime::now());
        // Live event streams would otherwise hold the drain below for its whole limit.
        app.subscribers.close_all();
        wait_for_connections(&app).await;
    }));

    let webhooks = app.webhooks.clone();
    webhooks.shutdown(DRAIN_WEBHOOKS);
    log::info!("stopped");
    Ok(())
}

async fn sweep_forever(app: Arc<App>) {
    loop {
        async_io::Timer::after(SWEEP_EVERY).await;
        let config = &app.config;
        app.registry.sweep(
            Instant::now(),
            SystemTime::now(),
            config.client_timeout,
            config.stream_timeout,
        );
    }
}

async fn wait_for_connections(app: &App) {
    let deadline = Instant::now() + DRAIN_CONNECTIONS;
    while app
        .open_connections
        .load(std::sync::atomic::Ordering::SeqCst)
        > 0
        && Instant::now() < deadline
    {
        async_io::Timer::after(Duration::from_millis(20)).await;
    }
}
