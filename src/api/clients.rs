//! Who a playback request comes from: its client id (given, or derived from address,
//! user agent and stream so that one player keeps its id), address and user name; and
//! the route that tells a client to leave.

use std::time::SystemTime;

use md5::{Digest, Md5};

use crate::app::App;
use crate::registry::ClientInfo;
use crate::server::{error, json, Incoming, Reply};

/// The client behind a playback request for `stream_id`.
pub fn client_info(app: &App, incoming: &Incoming, stream_id: &str) -> ClientInfo {
    let ip = incoming.client_ip(&app.config.trusted_proxies).to_string();
    let user_agent = incoming
        .header("user-agent")
        .unwrap_or("unknown")
        .to_owned();
    let id = incoming
        .query("client_id")
        .filter(|id| valid_client_id(id))
        .unwrap_or_else(|| derived_id(&ip, &user_agent, stream_id));
    let username = incoming
        .header("x-username")
        .map(str::to_owned)
        .or_else(|| {
            ["username", "user", "u"]
                .iter()
                .find_map(|k| incoming.query(k))
        })
        .filter(|u| !u.is_empty());
    ClientInfo {
        id,
        user_agent,
        ip_address: ip,
        username,
    }
}

/// `client_` and 16 hex digits of MD5 over address, user agent and stream.
fn derived_id(ip: &str, user_agent: &str, stream_id: &str) -> String {
    let digest = Md5::digest(format!("{ip}-{user_agent}-{stream_id}").as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("client_{hex}")
}

/// Client ids travel in URLs and logs: keep them short and plain.
fn valid_client_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `DELETE /hls/{id}/clients/{client_id}`: the client's connections close at once.
pub fn disconnect(app: &App, stream_id: &str, client_id: &str) -> Reply {
    let Some(stream) = app.registry.get(stream_id) else {
        return error(404, "Stream not found");
    };
    if !stream.disconnect_client(client_id, SystemTime::now()) {
        return error(404, "Client not found");
    }
    let message = format!("Client {client_id} disconnected");
    json(
        200,
        &serde_json::json!({ "message": message, "client_id": client_id, "stream_id": stream_id }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_are_stable_and_distinct_per_stream() {
        let a = derived_id("10.0.0.2", "VLC", "s1");
        assert_eq!(a, derived_id("10.0.0.2", "VLC", "s1"));
        assert_ne!(a, derived_id("10.0.0.2", "VLC", "s2"));
        assert_eq!(a.len(), "client_".len() + 16);
    }

    #[test]
    fn client_ids_from_the_query_must_be_plain() {
        assert!(valid_client_id("kodi-livingroom_1"));
        assert!(!valid_client_id("a b"));
        assert!(!valid_client_id("x\r\ny"));
        assert!(!valid_client_id(""));
    }
}
