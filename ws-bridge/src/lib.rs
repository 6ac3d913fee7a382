//! meno-bridge: the WebSocket edge. It validates connects, decodes client
//! envelopes, calls the core, and fans session events out to its sockets. It
//! keeps no durable state, and never depends on the core's crate: it speaks
//! to a core only through the gRPC contract (`meno-proto`).
#![forbid(unsafe_code)]

/// JWT verification of upgrades and token refreshes.
pub mod auth;
/// The client's address, behind trusted proxies.
pub mod client_ip;
/// The pure JSON codecs of each dialect and the vocabulary they share.
pub mod codec;
/// One handler per client command, each a call to the core.
pub mod command;
/// The bridge's flags and validated settings.
pub mod config;
/// The seed-000 connect query.
pub mod connect;
/// The bridge's gRPC clients of the core (remote or in-process).
pub mod core_client;
/// The dialect seam: one module per WebSocket client protocol.
pub mod dialect;
/// Fan-out of session events to this bridge's sockets.
pub mod hub;
/// The ICE servers of `/api/config/webrtc`, with TURN credentials.
pub mod ice;
/// Message rate and connection caps.
pub mod limits;
/// The bridge's Prometheus metrics.
pub mod metrics;
/// A socket's bounded outbound queue.
pub mod outbox;
/// The bridge's part in the connection registry.
pub mod registry;
/// NexusChat's REST reads (`/api/rooms/...`).
pub mod rest;
/// HTTP: the upgrade, health, readiness, metrics, the demo page, the drain.
pub mod server;
/// One client socket's task, from join to leave.
pub mod socket;
/// ISO-8601 timestamps of the wire formats.
pub mod time_fmt;

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    use meno_common::clock::Clock;
    meno_common::clock::SystemClock.now_ms()
}
