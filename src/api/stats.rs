//! Read-only status routes: `/`, `/livez`, `/health`, `/stats`, `/stats/streams`,
//! `/stats/clients` and `/clients`, all built from registry snapshots.

use serde_json::json;

use crate::app::App;
use crate::registry::{ClientView, StreamView};
use crate::server::{json as json_reply, Reply};

const VERSION: &str = env!("CARGO_PKG_VERSION");

pub fn root(app: &App) -> Reply {
    let stats = app.registry.stats(app.uptime());
    json_reply(
        200,
        &json!({
            "status": "running",
            "message": "m3u-proxy is running",
            "version": VERSION,
            "uptime": stats.uptime_seconds,
            "stats": stats,
        }),
    )
}

/// Liveness for probes: no token, no work.
pub fn livez() -> Reply {
    json_reply(200, &json!({ "status": "ok" }))
}

pub fn health(app: &App) -> Reply {
    let stats = app.registry.stats(app.uptime());
    json_reply(
        200,
        &json!({
            "status": "healthy",
            "version": VERSION,
            "uptime_seconds": stats.uptime_seconds,
            "total_streams": stats.total_streams,
            "active_streams": stats.active_streams,
            "total_clients": stats.total_clients,
            "active_clients": stats.active_clients,
            "stats": stats,
        }),
    )
}

pub fn stats(app: &App) -> Reply {
    json_reply(
        200,
        &json!({
            "proxy_stats": app.registry.stats(app.uptime()),
            "streams": stream_views(app),
            "clients": client_views(app),
        }),
    )
}

pub fn stats_streams(app: &App) -> Reply {
    let streams = stream_views(app);
    json_reply(200, &json!({ "streams": streams, "total": streams.len() }))
}

pub fn clients(app: &App) -> Reply {
    let clients = client_views(app);
    json_reply(200, &json!({ "clients": clients, "total": clients.len() }))
}

fn stream_views(app: &App) -> Vec<StreamView> {
    app.registry.all().iter().map(|s| s.view()).collect()
}

fn client_views(app: &App) -> Vec<ClientView> {
    app.registry
        .all()
        .iter()
        .flat_map(|s| s.client_views())
        .collect()
}
