//! meno-common: what the core, the bridge and backend clients share besides
//! the gRPC contract: the error vocabulary, session keys, the clock, gRPC
//! bearer tokens, logging and traces, metrics exposition.
//!
//! It must stay small and never depend on a store engine or on either
//! service's crate: the edge-only bridge links it and nothing of the core.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod config;
pub mod error;
pub mod grpc_auth;
pub mod key;
pub mod metrics;
pub mod sync;
pub mod telemetry;
pub mod text;
