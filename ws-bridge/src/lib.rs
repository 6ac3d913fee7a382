//! meno-bridge: the WebSocket edge. It validates connects, decodes client
//! envelopes, calls the core, and fans session events out to its sockets. It
//! keeps no durable state.
#![forbid(unsafe_code)]

pub mod auth;
pub mod codec;
pub mod config;
pub mod connect;
pub mod core_client;
pub mod hub;
pub mod limits;
pub mod metrics;
pub mod outbox;
pub mod server;
pub mod socket;
pub mod time_fmt;
