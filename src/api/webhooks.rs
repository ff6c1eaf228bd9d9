//! The webhooks resource: add (or update), list, remove and test. Delivery itself is the
//! `webhook` module's; these handlers translate HTTP to its calls and its errors to
//! status codes. The test call blocks on a real delivery, so it runs off the executor.

use serde_json::json;

use crate::app::App;
use crate::server::{error, json as json_reply, read_body, Incoming, Reply};
use crate::webhook::WebhookError;

/// Largest `POST /webhooks` body read.
const MAX_BODY: usize = 64 * 1024;

pub async fn add(app: &App, mut incoming: Incoming) -> Reply {
    let Some(body) = read_body(&mut incoming.request, MAX_BODY, app.config.header_timeout).await
    else {
        return error(
            413,
            &format!("Request body over {MAX_BODY} bytes or unreadable"),
        );
    };
    match app.webhooks.add(&body) {
        Ok(view) => json_reply(200, &json!({ "message": "Webhook added", "webhook": view })),
        Err(e) => webhook_error(&e),
    }
}

pub fn list(app: &App) -> Reply {
    let webhooks = app.webhooks.list();
    json_reply(
        200,
        &json!({ "webhooks": webhooks, "total": webhooks.len() }),
    )
}

pub fn remove(app: &App, incoming: &Incoming) -> Reply {
    let Some(url) = incoming.query("webhook_url") else {
        return error(422, "webhook_url: query parameter required");
    };
    match app.webhooks.remove(&url) {
        Ok(()) => json_reply(200, &json!({ "message": format!("Webhook {url} removed") })),
        Err(e) => webhook_error(&e),
    }
}

pub async fn test(app: &App, incoming: &Incoming) -> Reply {
    let Some(url) = incoming.query("webhook_url") else {
        return error(422, "webhook_url: query parameter required");
    };
    let webhooks = app.webhooks.clone();
    match smol::unblock(move || webhooks.test(&url)).await {
        Ok(outcome) => json_reply(200, &outcome),
        Err(e) => webhook_error(&e),
    }
}

fn webhook_error(e: &WebhookError) -> Reply {
    match e {
        WebhookError::State(cause) => {
            log::error!("webhooks: {cause}");
            error(500, "Could not save the webhook state; nothing was changed")
        }
        other => error(other.status(), &other.to_string()),
    }
}
