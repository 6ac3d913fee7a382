//! The typed message kinds (seed 004's `type`) and the stored `kind` string
//! they stand for. The string stays the stored truth, so messages of kinds
//! this table does not know (any string a seed-000 backend sent) keep
//! working; the typed kind is derived from it whenever a message leaves the
//! core.

use meno_proto::{ChatMessage, MessageKind};

/// Each known kind with its stored, lower-case name.
const KNOWN: [(MessageKind, &str); 5] = [
    (MessageKind::Text, "text"),
    (MessageKind::Image, "image"),
    (MessageKind::Video, "video"),
    (MessageKind::Audio, "audio"),
    (MessageKind::File, "file"),
];

/// The stored name of a typed kind; `None` for `UNSPECIFIED`.
pub(crate) fn name(kind: MessageKind) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(known, _)| *known == kind)
        .map(|(_, name)| *name)
}

/// The typed kind a stored name stands for, in any case; `UNSPECIFIED` for a
/// kind this table does not know.
pub(crate) fn parse(name: &str) -> MessageKind {
    KNOWN
        .iter()
        .find(|(_, known)| known.eq_ignore_ascii_case(name))
        .map_or(MessageKind::Unspecified, |(kind, _)| *kind)
}

/// Fills `message_kind` from `kind`, as every message the core returns or
/// publishes carries it (stored rows from before typed kinds lack it).
pub(crate) fn stamp(message: &mut ChatMessage) {
    message.set_message_kind(parse(&message.kind));
}

/// [`stamp`] over a list.
pub(crate) fn stamp_all(messages: &mut [ChatMessage]) {
    messages.iter_mut().for_each(stamp);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_any_case_and_unknown_kinds_are_unspecified() {
        for (kind, stored) in KNOWN {
            assert_eq!(name(kind), Some(stored));
            assert_eq!(parse(stored), kind);
            assert_eq!(parse(&stored.to_uppercase()), kind);
        }
        assert_eq!(parse("sticker"), MessageKind::Unspecified);
        assert_eq!(parse(""), MessageKind::Unspecified);
        assert_eq!(name(MessageKind::Unspecified), None);
    }
}
