//! The routing rules: round-robin texts, sticky voice sessions, full
//! buffers, and what a departing backend leaves behind.

use meno_proto::{
    backend_work, BackendKind, BackendWork, TextMessage, UserRef, VoiceData, VoiceEnd, VoiceStart,
};
use tokio::sync::mpsc;

use super::*;

type Inbox = mpsc::Receiver<Result<BackendWork, Status>>;

fn backend(pools: &mut Pools, tenant: &str, kind: BackendKind, buffer: usize) -> (u64, Inbox) {
    let (outbox, inbox) = mpsc::channel(buffer);
    (pools.attach(tenant, kind, outbox), inbox)
}

fn work(tenant: &str, user: &str, connection: &str, item: backend_work::Item) -> BackendWork {
    BackendWork {
        user: Some(UserRef {
            tenant: tenant.to_owned(),
            user_id: user.to_owned(),
        }),
        connection_id: connection.to_owned(),
        trace_id: String::new(),
        item: Some(item),
    }
}

fn text(content: &str) -> backend_work::Item {
    backend_work::Item::Text(TextMessage {
        content: content.to_owned(),
        session_id: String::new(),
    })
}

fn start(id: &str) -> backend_work::Item {
    backend_work::Item::VoiceStart(VoiceStart {
        voice_session_id: id.to_owned(),
        audio_format: "webm".into(),
    })
}

fn data(id: &str, chunk_index: u64) -> backend_work::Item {
    backend_work::Item::VoiceData(VoiceData {
        voice_session_id: id.to_owned(),
        audio: vec![u8::try_from(chunk_index).unwrap_or(0)],
        chunk_index,
    })
}

fn end(id: &str) -> backend_work::Item {
    backend_work::Item::VoiceEnd(VoiceEnd {
        voice_session_id: id.to_owned(),
    })
}

fn drain(inbox: &mut Inbox) -> Vec<BackendWork> {
    let mut items = Vec::new();
    while let Ok(item) = inbox.try_recv() {
        items.push(item.expect("work, not a status"));
    }
    items
}

fn texts(items: &[BackendWork]) -> Vec<String> {
    items
        .iter()
        .filter_map(|work| match &work.item {
            Some(backend_work::Item::Text(text)) => Some(text.content.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn texts_go_round_robin_over_the_tenants_assistant_backends() {
    let mut pools = Pools::default();
    let (_, mut first) = backend(&mut pools, "t1", BackendKind::Assistant, 8);
    let (_, mut second) = backend(&mut pools, "t1", BackendKind::Assistant, 8);
    let (_, mut voice) = backend(&mut pools, "t1", BackendKind::Voice, 8);
    let (_, mut other_tenant) = backend(&mut pools, "t2", BackendKind::Assistant, 8);
    for n in 0..4 {
        pools
            .route(work("t1", "ann", "c1", text(&format!("m{n}"))))
            .unwrap();
    }
    assert_eq!(texts(&drain(&mut first)), ["m0", "m2"]);
    assert_eq!(texts(&drain(&mut second)), ["m1", "m3"]);
    assert!(drain(&mut voice).is_empty(), "texts go to assistants only");
    assert!(drain(&mut other_tenant).is_empty(), "nor to another tenant");
}

#[test]
fn no_backend_of_the_kind_is_unavailable_naming_tenant_and_kind() {
    let mut pools = Pools::default();
    let (_, _voice) = backend(&mut pools, "t1", BackendKind::Voice, 8);
    let err = pools
        .route(work("t1", "ann", "c1", text("hi")))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(
        err.message.contains("assistant") && err.message.contains("t1"),
        "{err}"
    );
    assert_eq!(err.retry_after, Some(RETRY_AFTER));
}

#[test]
fn a_full_backend_is_skipped_and_all_full_is_busy() {
    let mut pools = Pools::default();
    let (_, mut small) = backend(&mut pools, "t1", BackendKind::Assistant, 1);
    let (_, mut large) = backend(&mut pools, "t1", BackendKind::Assistant, 2);
    for n in 0..3 {
        pools
            .route(work("t1", "ann", "c1", text(&format!("m{n}"))))
            .unwrap();
    }
    let err = pools
        .route(work("t1", "ann", "c1", text("m3")))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.message.contains("backend busy"), "{err}");
    assert_eq!(texts(&drain(&mut small)), ["m0"]);
    assert_eq!(texts(&drain(&mut large)), ["m1", "m2"]);
    pools
        .route(work("t1", "ann", "c1", text("m4")))
        .expect("room again once drained");
}

#[test]
fn a_voice_session_stays_on_its_backend_in_order_until_its_end() {
    let mut pools = Pools::default();
    let (_, mut first) = backend(&mut pools, "t1", BackendKind::Voice, 16);
    let (_, mut second) = backend(&mut pools, "t1", BackendKind::Voice, 16);
    pools.route(work("t1", "ann", "c1", start("v1"))).unwrap();
    pools.route(work("t1", "bob", "c2", start("v2"))).unwrap();
    for chunk in 0..3 {
        pools
            .route(work("t1", "ann", "c1", data("v1", chunk)))
            .unwrap();
        pools
            .route(work("t1", "bob", "c2", data("v2", chunk)))
            .unwrap();
    }
    pools.route(work("t1", "ann", "c1", end("v1"))).unwrap();
    let on_first = drain(&mut first);
    let on_second = drain(&mut second);
    assert_eq!(on_first.len(), 5, "start, three chunks, end");
    assert_eq!(on_second.len(), 4, "start and three chunks");
    assert!(on_first.iter().all(|work| work.connection_id == "c1"));
    let indexes: Vec<u64> = on_first
        .iter()
        .filter_map(|work| match &work.item {
            Some(backend_work::Item::VoiceData(data)) => Some(data.chunk_index),
            _ => None,
        })
        .collect();
    assert_eq!(indexes, [0, 1, 2]);
    let after_end = pools
        .route(work("t1", "ann", "c1", data("v1", 3)))
        .unwrap_err();
    assert_eq!(
        after_end.code,
        ErrorCode::NotFound,
        "end forgets the session"
    );
}

#[test]
fn voice_data_before_start_or_from_another_connection_is_not_found() {
    let mut pools = Pools::default();
    let (_, _voice) = backend(&mut pools, "t1", BackendKind::Voice, 16);
    let err = pools
        .route(work("t1", "ann", "c1", data("v1", 0)))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    pools.route(work("t1", "ann", "c1", start("v1"))).unwrap();
    let err = pools
        .route(work("t1", "eve", "c9", data("v1", 0)))
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::NotFound,
        "voice ids are per connection"
    );
    let again = pools
        .route(work("t1", "ann", "c1", start("v1")))
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::Conflict);
}

#[test]
fn a_full_voice_backend_refuses_the_chunk_and_keeps_the_order() {
    let mut pools = Pools::default();
    let (_, mut voice) = backend(&mut pools, "t1", BackendKind::Voice, 2);
    pools.route(work("t1", "ann", "c1", start("v1"))).unwrap();
    pools.route(work("t1", "ann", "c1", data("v1", 0))).unwrap();
    let busy = pools
        .route(work("t1", "ann", "c1", data("v1", 1)))
        .unwrap_err();
    assert!(busy.message.contains("backend busy"), "{busy}");
    assert_eq!(drain(&mut voice).len(), 2);
    pools
        .route(work("t1", "ann", "c1", data("v1", 1)))
        .expect("retried");
}

#[test]
fn a_departing_backend_strands_its_voice_sessions_and_unanswered_texts() {
    let mut pools = Pools::default();
    let (assistant, _inbox) = backend(&mut pools, "t1", BackendKind::Assistant, 16);
    let (voice, _voice_inbox) = backend(&mut pools, "t1", BackendKind::Voice, 16);
    pools.route(work("t1", "ann", "c1", text("q1"))).unwrap();
    pools.route(work("t1", "bob", "c2", text("q2"))).unwrap();
    pools.replied(assistant, "c2");
    pools.route(work("t1", "cat", "c3", start("v1"))).unwrap();

    let stranded = pools.detach(assistant);
    assert_eq!(stranded, [(UserKey::new("t1", "ann"), "c1".to_owned())]);
    let err = pools
        .route(work("t1", "ann", "c1", text("q3")))
        .unwrap_err();
    assert!(err.message.contains("no assistant backend"), "{err}");

    let stranded = pools.detach(voice);
    assert_eq!(stranded, [(UserKey::new("t1", "cat"), "c3".to_owned())]);
    let (_, _new_voice) = backend(&mut pools, "t1", BackendKind::Voice, 16);
    let err = pools
        .route(work("t1", "cat", "c3", data("v1", 0)))
        .unwrap_err();
    assert_eq!(
        err.code,
        ErrorCode::NotFound,
        "its voice sessions are forgotten"
    );
    assert!(pools.detach(voice).is_empty(), "a second detach is a no-op");
}

#[test]
fn new_work_goes_to_the_remaining_backends() {
    let mut pools = Pools::default();
    let (gone, _gone_inbox) = backend(&mut pools, "t1", BackendKind::Assistant, 16);
    let (_, mut remaining) = backend(&mut pools, "t1", BackendKind::Assistant, 16);
    pools.detach(gone);
    for n in 0..3 {
        pools
            .route(work("t1", "ann", "c1", text(&format!("m{n}"))))
            .unwrap();
    }
    assert_eq!(texts(&drain(&mut remaining)), ["m0", "m1", "m2"]);
}

#[test]
fn a_closed_connection_ends_its_voice_sessions_at_their_backend_and_is_forgotten() {
    let mut pools = Pools::default();
    let (_, mut voice) = backend(&mut pools, "t1", BackendKind::Voice, 16);
    pools.route(work("t1", "u1", "c1", start("v1"))).unwrap();
    pools.route(work("t1", "u1", "c1", data("v1", 0))).unwrap();
    pools.route(work("t1", "u2", "c2", start("v2"))).unwrap();
    drain(&mut voice);

    assert_eq!(pools.connection_closed("t1", "c1"), 1);
    let ended = drain(&mut voice);
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].connection_id, "c1");
    assert!(matches!(
        &ended[0].item,
        Some(backend_work::Item::VoiceEnd(end)) if end.voice_session_id == "v1"
    ));
    let refused = pools
        .route(work("t1", "u1", "c1", data("v1", 1)))
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::NotFound);
    // The other connection's session is untouched.
    pools.route(work("t1", "u2", "c2", data("v2", 0))).unwrap();
    assert_eq!(pools.connection_closed("other-tenant", "c2"), 0);
}

#[test]
fn a_connection_may_have_a_bounded_number_of_voice_sessions() {
    let mut pools = Pools::default();
    let (_, _voice) = backend(&mut pools, "t1", BackendKind::Voice, 64);
    for n in 0..MAX_VOICE_SESSIONS_PER_CONNECTION {
        pools
            .route(work("t1", "u1", "c1", start(&format!("v{n}"))))
            .unwrap();
    }
    let refused = pools
        .route(work("t1", "u1", "c1", start("one-too-many")))
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::RateLimited);
    pools.route(work("t1", "u1", "c1", end("v0"))).unwrap();
    pools
        .route(work("t1", "u1", "c1", start("one-too-many")))
        .unwrap();
}
