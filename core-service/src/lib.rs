//! meno-core: the single authority for session state.
//!
//! Every mutation of a session goes through that session's actor, which orders
//! it, writes what must be durable, and only then publishes the event.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod backend;
pub mod config;
pub mod connections;
mod direct;
pub mod error;
pub mod grpc;
mod message_kind;
pub mod metrics;
pub mod ownership;
pub mod registry;
pub mod server;
mod session;
pub mod store;
pub mod user;
pub mod validate;

pub use meno_common::{clock, grpc_auth, telemetry};
