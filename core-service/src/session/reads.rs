//! Read positions (seed 004's ACK): per user, the newest message read. A
//! position only moves forward by seq; a move is written through the batch
//! (durable before it is published) and published as a `read` event. An
//! ACK of an older message changes nothing and publishes nothing.

use std::collections::BTreeMap;

use meno_proto::{session_event, ReadPosition};

use super::events::Stage;

#[derive(Debug, Default)]
pub(crate) struct Reads {
    /// By user id, so a listing is ordered by user.
    positions: BTreeMap<String, ReadPosition>,
}

impl Reads {
    /// Rebuilds the positions from the stored rows.
    pub(crate) fn restore(positions: Vec<ReadPosition>) -> Self {
        Self {
            positions: positions
                .into_iter()
                .map(|position| (position.user_id.clone(), position))
                .collect(),
        }
    }

    /// Every user's position, ordered by user id.
    pub(crate) fn list(&self) -> Vec<ReadPosition> {
        self.positions.values().cloned().collect()
    }

    /// Moves `user_id`'s position to the message at `seq` if that is newer
    /// than where it stands. Returns the position after the call and whether
    /// it moved (a user's first ACK always moves).
    pub(crate) fn mark(
        &mut self,
        user_id: &str,
        message_id: &str,
        seq: u64,
        stage: &mut Stage<'_>,
    ) -> (ReadPosition, bool) {
        if let Some(current) = self.positions.get(user_id) {
            if current.seq >= seq {
                return (current.clone(), false);
            }
        }
        let position = ReadPosition {
            user_id: user_id.to_owned(),
            message_id: message_id.to_owned(),
            seq,
            read_at_ms: stage.now(),
        };
        self.positions.insert(user_id.to_owned(), position.clone());
        stage.write().reads.push(position.clone());
        stage.event(None, session_event::Kind::Read(position.clone()));
        (position, true)
    }
}
