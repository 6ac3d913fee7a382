//! A socket's place in its session: the join that starts it (or restarts it
//! after the stream lost events), the leave that ends it, and the range of
//! seqs it is covered for.

use meno_common::error::CoreError;
use meno_proto::{join_response, JoinRequest, JoinResponse, LeaveRequest};
use tracing::Instrument;

use crate::command::{action_span, session_ref, Caller};

/// Joins (or rejoins) the caller's session, resuming after `last_seq` when
/// given. Boxed by the callers: it runs once, and its state should not be
/// reserved in every socket's future.
pub(crate) async fn join(
    caller: &Caller,
    last_seq: Option<u64>,
    span_name: &'static str,
    trace_id: Option<&str>,
) -> Result<JoinResponse, CoreError> {
    let join = JoinRequest {
        session: Some(session_ref(&caller.key)),
        connection: Some(meno_proto::ConnectionInfo::clone(&caller.connection)),
        last_seq,
        history_limit: 0,
        trace_id: trace_id.unwrap_or_default().to_owned(),
    };
    caller
        .core()
        .connections
        .clone()
        .join(caller.core().session_request(&caller.key, join))
        .instrument(traced_span(span_name, caller, trace_id))
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| CoreError::from_status(&status))
}

/// Leaves the session; `graceful`: the client closed on purpose, so its
/// participant goes offline at once instead of after the reconnect grace.
pub(crate) async fn leave(caller: &Caller, graceful: bool, trace_id: Option<&str>) {
    let leave = LeaveRequest {
        session: Some(session_ref(&caller.key)),
        connection_id: caller.connection.connection_id.clone(),
        graceful,
        trace_id: trace_id.unwrap_or_default().to_owned(),
    };
    if let Err(status) = caller
        .core()
        .connections
        .clone()
        .leave(caller.core().session_request(&caller.key, leave))
        .instrument(traced_span("leave", caller, trace_id))
        .await
    {
        tracing::debug!(error = %status, "leave failed; the connection will expire");
    }
}

/// The action's span, linked to the client's trace id when it sent one.
fn traced_span(action: &'static str, caller: &Caller, trace_id: Option<&str>) -> tracing::Span {
    let span = action_span(action, &caller.key, &caller.connection);
    if let Some(trace_id) = trace_id {
        meno_common::telemetry::propagation::link_client_trace(&span, trace_id);
    }
    span
}

/// The seqs from which on this socket has been given every event, or will
/// be: everything after its start (a resume from `lastSeq`, or the oldest
/// message of its `chat.sync`) arrives in order, each once. A repeated
/// `chat.send` whose stored message lies in that range gets no separate
/// copy: the client has it already, or is about to get it in its place, and
/// a second copy would be a duplicate (and, ahead of its turn, out of order).
/// Older messages still come back to the sender, as the acknowledgement of
/// a message it never saw on this socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Coverage {
    from_seq: u64,
}

impl Coverage {
    /// After the socket's first join, with the client's `lastSeq`.
    pub(crate) fn after_join(joined: &JoinResponse, last_seq: Option<u64>) -> Self {
        Self::of_snapshot(joined).unwrap_or(Self {
            from_seq: last_seq.unwrap_or(joined.snapshot_seq).saturating_add(1),
        })
    }

    /// After a rejoin: a fresh snapshot starts the coverage again at its
    /// oldest message; a resume continues it.
    pub(crate) fn after_rejoin(self, rejoined: &JoinResponse) -> Self {
        Self::of_snapshot(rejoined).unwrap_or(self)
    }

    fn of_snapshot(joined: &JoinResponse) -> Option<Self> {
        match &joined.start {
            Some(join_response::Start::Snapshot(snapshot)) => Some(Self {
                from_seq: snapshot.history.first().map_or_else(
                    || joined.snapshot_seq.saturating_add(1),
                    |oldest| oldest.seq,
                ),
            }),
            _ => None,
        }
    }

    pub(crate) fn includes(self, seq: u64) -> bool {
        seq >= self.from_seq
    }
}

#[cfg(test)]
mod tests {
    use meno_proto::{ChatMessage, Snapshot};

    use super::*;

    fn snapshot(snapshot_seq: u64, oldest: Option<u64>) -> JoinResponse {
        JoinResponse {
            snapshot_seq,
            start: Some(join_response::Start::Snapshot(Snapshot {
                history: oldest
                    .map(|seq| ChatMessage {
                        seq,
                        ..ChatMessage::default()
                    })
                    .into_iter()
                    .collect(),
                ..Snapshot::default()
            })),
        }
    }

    #[test]
    fn a_snapshot_covers_from_its_oldest_message() {
        let coverage = Coverage::after_join(&snapshot(40, Some(31)), None);
        assert!(!coverage.includes(30));
        assert!(coverage.includes(31));
        let empty = Coverage::after_join(&snapshot(40, None), None);
        assert!(!empty.includes(40));
        assert!(empty.includes(41));
    }

    #[test]
    fn a_resume_covers_from_after_last_seq_and_a_rejoin_keeps_it() {
        let resumed = JoinResponse {
            snapshot_seq: 50,
            ..JoinResponse::default()
        };
        let coverage = Coverage::after_join(&resumed, Some(20));
        assert!(!coverage.includes(20));
        assert!(coverage.includes(21));
        assert_eq!(coverage.after_rejoin(&resumed), coverage);
        let fresh = coverage.after_rejoin(&snapshot(90, Some(80)));
        assert!(!fresh.includes(79));
    }
}
