//! The meno-realtime gRPC contract, generated from `proto/meno/realtime/v1`.
//! Nothing here is written by hand but the re-exports.
#![forbid(unsafe_code)]
#![allow(missing_docs, unreachable_pub, missing_debug_implementations)]
#![allow(clippy::large_enum_variant, clippy::all)]

/// `meno.realtime.v1`: services, requests and session events.
pub mod v1 {
    tonic::include_proto!("meno.realtime.v1");
}

/// The encoded file descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("meno_descriptor");

pub use v1::*;
