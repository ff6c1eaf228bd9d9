//! Snapshots of streams, clients and totals in the shape of the API contract. Built on
//! demand from the live records; custom upstream headers are never part of them.

use std::time::SystemTime;

use serde::Serialize;

use super::client::Client;
use super::stream::Stream;
use super::Metadata;
use crate::events::format_timestamp;

#[derive(Serialize)]
pub struct StreamView {
    pub stream_id: String,
    pub original_url: String,
    pub current_url: String,
    pub user_agent: String,
    pub client_count: usize,
    pub total_bytes_served: u64,
    pub total_segments_served: u64,
    pub error_count: u64,
    pub is_active: bool,
    pub has_failover: bool,
    pub failover_urls: Vec<String>,
    pub failover_resolver_url: Option<String>,
    pub current_failover_index: usize,
    pub failover_attempts: u64,
    pub last_failover_time: Option<String>,
    pub stream_type: &'static str,
    pub created_at: String,
    pub last_access: String,
    pub metadata: Metadata,
}

#[derive(Serialize)]
pub struct ClientView {
    pub client_id: String,
    pub stream_id: String,
    pub user_agent: String,
    pub ip_address: String,
    pub username: Option<String>,
    pub bytes_served: u64,
    pub segments_served: u64,
    pub created_at: String,
    pub last_access: String,
    pub is_connected: bool,
}

#[derive(Serialize)]
pub struct Stats {
    pub total_streams: usize,
    pub active_streams: usize,
    pub total_clients: usize,
    pub active_clients: usize,
    pub total_bytes_served: u64,
    pub total_segments_served: u64,
    pub uptime_seconds: u64,
}

fn stamp(at: SystemTime) -> String {
    format_timestamp(at)
}

impl Stream {
    pub fn view(&self) -> StreamView {
        let (current_url, index, attempts, last_failover) = self.source_state();
        let (last_access, kind, errors) = self.activity_state();
        let (bytes, segments) = self.counters();
        let client_count = self.client_count();
        StreamView {
            stream_id: self.id.clone(),
            original_url: self.spec.url.clone(),
            current_url,
            user_agent: self.spec.user_agent.clone(),
            client_count,
            total_bytes_served: bytes,
            total_segments_served: segments,
            error_count: errors,
            is_active: client_count > 0,
            has_failover: !self.spec.failover_urls.is_empty()
                || self.spec.failover_resolver_url.is_some(),
            failover_urls: self.spec.failover_urls.clone(),
            failover_resolver_url: self.spec.failover_resolver_url.clone(),
            current_failover_index: index,
            failover_attempts: attempts,
            last_failover_time: last_failover.map(stamp),
            stream_type: kind.label(),
            created_at: stamp(self.created_at),
            last_access: stamp(last_access),
            metadata: self.spec.metadata.clone(),
        }
    }

    pub fn client_views(&self) -> Vec<ClientView> {
        self.clients().iter().map(|c| c.view(&self.id)).collect()
    }
}

impl Client {
    pub fn view(&self, stream_id: &str) -> ClientView {
        ClientView {
            client_id: self.info.id.clone(),
            stream_id: stream_id.to_owned(),
            user_agent: self.info.user_agent.clone(),
            ip_address: self.info.ip_address.clone(),
            username: self.info.username.clone(),
            bytes_served: self.bytes_served(),
            segments_served: self.segments_served(),
            created_at: stamp(self.created_at),
            last_access: stamp(self.last_access().0),
            is_connected: !self.ended.load(std::sync::atomic::Ordering::SeqCst),
        }
    }
}
