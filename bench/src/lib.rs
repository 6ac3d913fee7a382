//! `meno-load`: the load harness behind BENCHMARKS.md. It starts a target
//! (meno, Centrifugo's engine, or a bare broadcast baseline) pinned to one
//! CPU, drives real WebSocket clients and a publisher from the other CPU, and
//! measures the target from /proc: CPU-seconds per million deliveries,
//! publish→deliver latency, losses, resident memory per connection.
#![allow(missing_docs)]

pub mod baseline;
pub mod flood;
pub mod idle;
pub mod load;
pub mod report;
pub mod scenario;
pub mod target;
pub mod wsclient;
