//! The NexusChat dialect on any client frame and any connect query: never a
//! panic; a refusal is one short line naming a known code; an accepted event
//! keeps a trace id only when sane; the query parser never admits a room id
//! outside the id rule and never more rooms than a socket may hold.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meno_bridge::codec::nexus::decode_with;
use meno_bridge::codec::Limits;
use meno_bridge::connect::nexus::{parse_nexus_connect, MAX_ROOMS_PER_SOCKET};
use meno_bridge::connect::MAX_ID_CHARS;
use meno_bridge::dialect::{nexus::Nexus, Dialect};

fn is_id(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_ID_CHARS
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-'))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let limits = Limits::default();
    match decode_with(&text, &limits) {
        Ok(request) => {
            if let Some(trace_id) = &request.trace_id {
                assert!(!trace_id.is_empty() && trace_id.chars().count() <= limits.max_id_len);
            }
        }
        Err(refusal) => {
            let envelope = refusal.envelope();
            assert!(!envelope.message.contains('\n'), "{}", envelope.message);
            let frame = Nexus.encode_error(&envelope, refusal.trace_id.as_deref());
            let json: serde_json::Value = serde_json::from_str(&frame).expect("ERROR is JSON");
            assert_eq!(json["event"], "ERROR");
        }
    }
    // Through the dialect: a trace id always, decoded or refused.
    if let Ok(request) = Nexus.decode(&text, &limits) {
        assert!(request.tag.trace_id.is_some());
    }
    if let Ok(connect) = parse_nexus_connect(Some(&text)) {
        assert!(connect.rooms.len() <= MAX_ROOMS_PER_SOCKET);
        assert!(connect.rooms.iter().all(|room| is_id(room)));
        assert!(connect.user_id.iter().all(|id| is_id(id)));
        assert!(connect.tenant.iter().all(|id| is_id(id)));
    }
});
