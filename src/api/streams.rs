//! The streams resource: create (or get) a stream, list, look up, delete, find or delete
//! by metadata, manual failover, and `/stream/{id}` playback.

use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use super::stream_request;
use crate::app::App;
use crate::registry::{Kind, StopReason, Stream};
use crate::server::{error, json as json_reply, read_body, Incoming, Reply};

/// Largest `POST /streams` body read.
const MAX_BODY: usize = 64 * 1024;

pub async fn create(app: &App, mut incoming: Incoming) -> Reply {
    let Some(body) = read_body(&mut incoming.request, MAX_BODY, app.config.header_timeout).await
    else {
        return error(
            413,
            &format!("Request body over {MAX_BODY} bytes or unreadable"),
        );
    };
    let spec = match stream_request::parse(&body, &app.config.default_user_agent) {
        Ok(spec) => spec,
        Err(detail) => return error(422, &detail),
    };
    let (stream, created) = app.registry.create(spec, SystemTime::now());
    json_reply(200, &created_body(&stream, created, &app.config.root_path))
}

/// The answer to `POST /streams`; paths carry `ROOT_PATH` like the playlists do.
fn created_body(stream: &Stream, created: bool, root: &str) -> serde_json::Value {
    let hls = stream.kind() == Kind::Hls;
    let direct = format!("{root}/stream/{}", stream.id);
    let (stream_type, endpoint) = match hls {
        true => ("hls", format!("{root}/hls/{}/playlist.m3u8", stream.id)),
        false => ("direct", direct.clone()),
    };
    let message = match created {
        true => format!("Stream created successfully ({stream_type})"),
        false => format!("Stream already exists ({stream_type})"),
    };
    let mut body = json!({
        "stream_id": stream.id,
        "primary_url": stream.spec.url,
        "failover_urls": stream.spec.failover_urls,
        "user_agent": stream.spec.user_agent,
        "stream_type": stream_type,
        "stream_endpoint": endpoint,
        "playlist_url": endpoint,
        "direct_url": direct,
        "message": message,
    });
    if !stream.spec.metadata.is_empty() {
        body["metadata"] = json!(stream.spec.metadata);
    }
    body
}

pub fn list(app: &App) -> Reply {
    let streams: Vec<_> = app.registry.all().iter().map(|s| s.view()).collect();
    json_reply(200, &json!({ "streams": streams, "total": streams.len() }))
}

pub fn get(app: &App, id: &str) -> Reply {
    let Some(stream) = app.registry.get(id) else {
        return error(404, "Stream not found");
    };
    let clients = stream.client_views();
    json_reply(
        200,
        &json!({ "stream": stream.view(), "client_count": clients.len(), "clients": clients }),
    )
}

pub fn delete(app: &App, id: &str) -> Reply {
    match app
        .registry
        .remove(id, StopReason::Deleted, SystemTime::now())
    {
        Some(_) => json_reply(200, &json!({ "message": format!("Stream {id} deleted") })),
        None => error(404, "Stream not found"),
    }
}

fn metadata_query(incoming: &Incoming) -> Result<(String, String), Reply> {
    let field = incoming
        .query("field")
        .filter(|f| !f.is_empty())
        .ok_or_else(|| error(422, "field: query parameter required"))?;
    let value = incoming
        .query("value")
        .ok_or_else(|| error(422, "value: query parameter required"))?;
    Ok((field, value))
}

/// `GET /streams/by-metadata?field=&value=&active_only=`.
pub fn by_metadata(app: &App, incoming: &Incoming) -> Reply {
    let (field, value) = match metadata_query(incoming) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    let active_only = match incoming.query("active_only").as_deref() {
        None => true,
        Some(flag) => match parse_bool(flag) {
            Some(flag) => flag,
            None => return error(422, "active_only: expected true or false"),
        },
    };
    let streams: Vec<_> = app
        .registry
        .by_metadata(&field, &value)
        .into_iter()
        .filter(|s| !active_only || s.client_count() > 0)
        .map(|s| s.view())
        .collect();
    json_reply(
        200,
        &json!({
            "filter": { "field": field, "value": value, "active_only": active_only },
            "matching_streams": streams,
            "total_matching": streams.len(),
            "total_clients": streams.iter().map(|s| s.client_count).sum::<usize>(),
        }),
    )
}

/// `DELETE /streams/by-metadata` (all matches) and `/streams/oldest-by-metadata` (one).
pub fn delete_by_metadata(app: &App, incoming: &Incoming, oldest_only: bool) -> Reply {
    let (field, value) = match metadata_query(incoming) {
        Ok(query) => query,
        Err(reply) => return reply,
    };
    let excluded = incoming.query("exclude_channel_id");
    let mut matches: Vec<Arc<Stream>> = app
        .registry
        .by_metadata(&field, &value)
        .into_iter()
        .filter(|s| excluded.is_none() || s.spec.metadata.get("channel_id") != excluded.as_ref())
        .collect();
    if oldest_only {
        matches.truncate(1);
    }
    let now = SystemTime::now();
    let deleted: Vec<String> = matches
        .iter()
        .filter_map(|s| {
            app.registry
                .remove(&s.id, StopReason::Deleted, now)
                .map(|s| s.id.clone())
        })
        .collect();
    json_reply(
        200,
        &json!({
            "message": format!("Deleted {} stream(s)", deleted.len()),
            "deleted_count": deleted.len(),
            "deleted_streams": deleted,
        }),
    )
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `POST /streams/{id}/failover`: every connected client moves to the next source.
pub async fn failover(app: &App, id: &str) -> Reply {
    let Some(stream) = app.registry.get(id) else {
        return error(404, "Stream not found");
    };
    let resolved = crate::relay::resolver::next_url(app, &stream, &stream.current()).await;
    let Some(switch) = stream.manual_failover(resolved, SystemTime::now()) else {
        return error(
            400,
            "Stream has no failover URLs: there is no other source to switch to",
        );
    };
    let view = stream.view();
    json_reply(
        200,
        &json!({
            "message": format!("Failover triggered for stream {id}"),
            "new_url": switch.url,
            "failover_index": switch.index,
            "failover_attempts": view.failover_attempts,
            "active_clients": view.client_count,
        }),
    )
}

/// `GET`/`HEAD /stream/{id}`.
pub async fn play(app: &Arc<App>, id: &str, incoming: Incoming) -> Reply {
    let Some(stream) = app.registry.get(id) else {
        return error(404, "Stream not found");
    };
    let client = super::client_info(app, &incoming, &stream.id);
    crate::relay::play(app, stream, incoming, client).await
}
