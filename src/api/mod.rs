//! The REST API and playback entry points: strips `ROOT_PATH`, routes, checks the token,
//! and hands each request to the handler of its resource. Handlers read registry
//! snapshots; none holds a lock across an `.await`.

mod auth;
mod clients;
mod events;
mod stats;
mod stream_request;
mod streams;
mod webhooks;

use std::sync::Arc;

use crate::app::App;
use crate::server::router::{route, strip_root, Route};
use crate::server::{error, Incoming, Reply};

pub use clients::client_info;

/// Answers one request.
pub async fn handle(app: &Arc<App>, incoming: Incoming) -> Reply {
    let method = incoming.method();
    let full_path = incoming.request.url().path().to_owned();
    let path = strip_root(&full_path, &app.config.root_path);
    let route = route(&method, path);

    if route.needs_token() {
        if let Err(reply) = auth::check(app, &incoming) {
            return reply;
        }
    }
    log::debug!("request {method} {}", crate::redact::Escaped(path));
    dispatch(app, route, incoming).await
}

async fn dispatch(app: &Arc<App>, route: Route<'_>, incoming: Incoming) -> Reply {
    match route {
        Route::Root => stats::root(app),
        Route::Livez => stats::livez(),
        Route::Health => stats::health(app),
        Route::Stats => stats::stats(app),
        Route::StatsStreams => stats::stats_streams(app),
        Route::StatsClients | Route::Clients => stats::clients(app),
        Route::CreateStream => streams::create(app, incoming).await,
        Route::ListStreams => streams::list(app),
        Route::StreamsByMetadata => streams::by_metadata(app, &incoming),
        Route::DeleteByMetadata => streams::delete_by_metadata(app, &incoming, false),
        Route::DeleteOldestByMetadata => streams::delete_by_metadata(app, &incoming, true),
        Route::GetStream(id) => streams::get(app, id),
        Route::DeleteStream(id) => streams::delete(app, id),
        Route::Failover(id) => streams::failover(app, id).await,
        Route::Play(id) => streams::play(app, id, incoming).await,
        Route::HlsPlaylist(id) => crate::hls::playlist(app, id, incoming).await,
        Route::HlsSegment(id) => crate::hls::segment(app, id, incoming).await,
        Route::DisconnectClient(id, client) => clients::disconnect(app, id, client),
        Route::AddWebhook => webhooks::add(app, incoming).await,
        Route::ListWebhooks => webhooks::list(app),
        Route::RemoveWebhook => webhooks::remove(app, &incoming),
        Route::TestWebhook => webhooks::test(app, &incoming).await,
        Route::Events => events::stream(app, &incoming),
        Route::Preflight => crate::server::text(200, "text/plain", ""),
        Route::MethodNotAllowed => error(405, "Method Not Allowed"),
        Route::NotFound => error(404, "Not Found"),
    }
}
