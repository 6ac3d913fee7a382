//! The seed-000 dialect (`shared/seeds/000_*.txt`): clients send
//! `{action, payload}` envelopes and receive `{type, seq?, data}` envelopes.
//!
//! This module owns the exact wire names of that contract and the choices
//! DESIGN §4 makes where the seed is silent. It decodes one client frame into a
//! [`ClientCommand`](super::ClientCommand) and encodes one server envelope into
//! a `String`, once per event, which the caller clones to every socket.
//! It must never decide policy (who may chat, lease rules), hold state, or
//! panic on anything a client sends.
//!
//! Choices the seed leaves open, written down here:
//! - `null` for an optional field means absent; unknown fields are ignored.
//! - `payload` may be absent for `system.ping`, `presence.heartbeat` and
//!   `control.lease.release`, whose fields are all optional hints; the other
//!   actions require it. An empty `leaseId` hint means no hint.
//! - Integers may be written as integral floats (`2.0`, `1e3`) up to 2^53, as
//!   some JSON encoders do.
//! - Roles on the wire are `student`, `teacher`, `observer`. A backend
//!   (`ROLE_SERVICE`) is shown as `teacher`: it speaks with the authority of
//!   the session's staff, and seed-000 clients know no fourth role. An
//!   unspecified or unknown role is shown as `observer`, the least privileged.
//! - An unspecified or unknown presence status is shown as `offline`: the
//!   bridge never claims someone is present without the core saying so.
//! - Beyond the seed's fields, `chat.message` data carries `id` (the server's
//!   UUIDv7), `kind` and `seq`; `messageId` is the client's id, or `id` for
//!   messages that had none (sent by backends).

mod decode;
mod encode;

#[cfg(test)]
mod decode_tests;
#[cfg(test)]
mod encode_tests;
#[cfg(test)]
mod proptest_tests;
#[cfg(test)]
mod refusal_tests;
#[cfg(test)]
mod robustness_tests;

pub use decode::{decode, decode_request, decode_with};
#[cfg(test)]
pub(in crate::codec) use encode::typescript_declarations;
pub use encode::{
    encode_auth_refreshed, encode_chat_message, encode_error, encode_event, encode_lease,
    encode_pong, encode_snapshot, encode_sync,
};
// JSON checks every dialect makes the same way (the NexusChat codec uses them).
pub(in crate::codec) use decode::{clip, compact_json_len, json_type, nests_deeper_than};
pub(in crate::codec) use encode::raw_object;

/// The client actions of seed 000 (`request.body.action`).
pub mod action {
    /// Append a chat message.
    pub const CHAT_SEND: &str = "chat.send";
    /// Merge fields into the sender's presence.
    pub const PRESENCE_UPDATE: &str = "presence.update";
    /// Keep the sender's presence alive.
    pub const PRESENCE_HEARTBEAT: &str = "presence.heartbeat";
    /// Take or renew the control lease.
    pub const LEASE_SET: &str = "control.lease.set";
    /// Give the control lease up.
    pub const LEASE_RELEASE: &str = "control.lease.release";
    /// Keepalive.
    pub const PING: &str = "system.ping";
    /// Renew the connection's access token before it expires (JWT mode).
    pub const AUTH_REFRESH: &str = "system.auth.refresh";
}

/// The server envelope types of seed 000 (`type`), plus `error` (DESIGN §3).
pub mod envelope_type {
    /// One chat message appended.
    pub const CHAT_MESSAGE: &str = "chat.message";
    /// Recent history, oldest first, sent on connect.
    pub const CHAT_SYNC: &str = "chat.sync";
    /// The full participant roster.
    pub const PRESENCE_SNAPSHOT: &str = "presence.snapshot";
    /// One participant's full presence state.
    pub const PRESENCE_EVENT: &str = "presence.event";
    /// The authoritative control lease.
    pub const LEASE_STATE: &str = "control.lease.state";
    /// The answer to `system.ping`.
    pub const PONG: &str = "system.pong";
    /// The answer to `system.auth.refresh`.
    pub const AUTH_REFRESHED: &str = "system.auth.refreshed";
    /// A refusal, to the sender only.
    pub const ERROR: &str = "error";
}
