//! The user actors' rules, driven through the registry on a manual clock:
//! membership from sessions, relay to interested bridges, the busy rules and
//! their expiry, and bridge streams that fall behind or are replaced.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use meno_proto::{
    signal, signal_request, user_event, user_stream_item, CallEnd, IceSignal, SdpSignal, SdpType,
    SignalRequest, SignalResponse, UserRef,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::ManualClock;
use crate::config::SessionConfig;
use crate::error::{CoreError, ErrorCode};
use crate::user::bridges::UserStream;
use crate::user::{UserKey, UserRegistry};

const TENANT: &str = "acme";

fn registry_with(config: SessionConfig) -> (UserRegistry, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    let registry = UserRegistry::new(
        Arc::new(clock.clone()),
        Arc::new(config),
        CancellationToken::new(),
        TaskTracker::new(),
    );
    (registry, clock)
}

fn registry() -> (UserRegistry, ManualClock) {
    registry_with(SessionConfig::default())
}

fn user(user_id: &str) -> UserKey {
    UserKey::new(TENANT, user_id)
}

/// `user_id` connects through `c-<user_id>` in `session_id`.
fn connect(registry: &UserRegistry, user_id: &str, session_id: &str) {
    let connection_id = format!("c-{user_id}");
    registry.membership(&user(user_id), session_id, &connection_id, true);
}

fn disconnect(registry: &UserRegistry, user_id: &str, session_id: &str) {
    let connection_id = format!("c-{user_id}");
    registry.membership(&user(user_id), session_id, &connection_id, false);
}

fn sdp(kind: SdpType) -> signal_request::Kind {
    signal_request::Kind::Sdp(SdpSignal {
        r#type: kind as i32,
        sdp: format!("sdp-{}", kind.as_str_name()),
    })
}

fn end() -> signal_request::Kind {
    signal_request::Kind::End(CallEnd {})
}

async fn send(
    registry: &UserRegistry,
    from: &str,
    to: &str,
    kind: signal_request::Kind,
) -> Result<SignalResponse, CoreError> {
    registry
        .signal(SignalRequest {
            from: Some(UserRef {
                tenant: TENANT.to_owned(),
                user_id: from.to_owned(),
            }),
            connection_id: format!("c-{from}"),
            target_id: to.to_owned(),
            trace_id: format!("trace-{from}-{to}"),
            kind: Some(kind),
        })
        .await
}

async fn relayed(registry: &UserRegistry, from: &str, to: &str, kind: signal_request::Kind) {
    let response = send(registry, from, to, kind).await.expect("relayed");
    assert_eq!(response.rejected, None, "{from} → {to} was relayed");
}

async fn rejected(registry: &UserRegistry, from: &str, to: &str) {
    let response = send(registry, from, to, sdp(SdpType::Offer))
        .await
        .expect("answered");
    let rejected = response.rejected.expect("rejected as busy");
    assert_eq!(rejected.caller_id, from);
    assert_eq!(rejected.target_id, to);
    assert_eq!(rejected.status, "busy");
}

async fn refused(registry: &UserRegistry, from: &str, to: &str) -> ErrorCode {
    send(registry, from, to, sdp(SdpType::Offer))
        .await
        .expect_err("refused")
        .code
}

/// A bridge stream interested in `users`, past its `subscribed` item.
async fn bridge(registry: &UserRegistry, bridge_id: &str, users: &[&str]) -> UserStream {
    let mut stream = registry.subscribe(bridge_id);
    let first = next(&mut stream).await.expect("an item");
    assert!(matches!(
        first.item,
        Some(user_stream_item::Item::Subscribed(_))
    ));
    let add = users.iter().map(|id| user(id)).collect();
    registry
        .set_interest(bridge_id, add, Vec::new(), true)
        .expect("interest");
    stream
}

async fn next(stream: &mut UserStream) -> Result<meno_proto::UserStreamItem, tonic::Status> {
    tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an item in time")
        .expect("the stream goes on")
}

/// The next signal on `stream`: its user, sender and payload.
async fn next_signal(stream: &mut UserStream) -> (String, meno_proto::Signal) {
    let item = next(stream).await.expect("an event");
    let Some(user_stream_item::Item::Event(event)) = item.item else {
        panic!("an event, got {item:?}");
    };
    let Some(user_event::Kind::Signal(signal)) = event.kind else {
        panic!("a signal");
    };
    assert_eq!(event.connection_id, "", "for every connection of the user");
    (event.user.expect("a user").user_id, signal)
}

/// ann, bob and cid are together in r1.
fn trio(registry: &UserRegistry) {
    for id in ["ann", "bob", "cid"] {
        connect(registry, id, "r1");
    }
}

#[tokio::test]
async fn an_offer_reaches_the_interested_bridge_with_its_sender() {
    let (registry, _) = registry();
    trio(&registry);
    let mut stream = bridge(&registry, "b1", &["bob"]).await;
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    let (to, signal) = next_signal(&mut stream).await;
    assert_eq!(to, "bob");
    assert_eq!(signal.sender_id, "ann");
    assert_eq!(signal.target_id, "bob");
    assert!(matches!(signal.kind, Some(signal::Kind::Sdp(sdp)) if sdp.sdp == "sdp-SDP_TYPE_OFFER"));
    let ice = signal_request::Kind::Ice(IceSignal {
        candidate: "candidate:1".to_owned(),
        sdp_mid: Some("0".to_owned()),
        sdp_m_line_index: 0,
    });
    relayed(&registry, "ann", "bob", ice).await;
    let (_, signal) = next_signal(&mut stream).await;
    assert!(
        matches!(signal.kind, Some(signal::Kind::Ice(_))),
        "in order"
    );
}

#[tokio::test]
async fn a_relayed_offer_makes_the_caller_busy_for_others() {
    let (registry, _) = registry();
    trio(&registry);
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    rejected(&registry, "cid", "ann").await;
    // bob is not busy until he answers.
    relayed(&registry, "cid", "bob", sdp(SdpType::Offer)).await;
}

#[tokio::test]
async fn an_answer_makes_the_callee_busy_and_a_call_end_frees_both() {
    let (registry, _) = registry();
    trio(&registry);
    let mut stream = bridge(&registry, "b1", &["ann"]).await;
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    relayed(&registry, "bob", "ann", sdp(SdpType::Answer)).await;
    rejected(&registry, "cid", "bob").await;
    rejected(&registry, "cid", "ann").await;
    relayed(&registry, "bob", "ann", end()).await;
    let (_, answer) = next_signal(&mut stream).await;
    assert!(matches!(answer.kind, Some(signal::Kind::Sdp(_))));
    let (_, ended) = next_signal(&mut stream).await;
    assert_eq!(ended.sender_id, "bob");
    assert!(matches!(ended.kind, Some(signal::Kind::End(_))), "relayed");
    relayed(&registry, "cid", "bob", sdp(SdpType::Offer)).await;
    relayed(&registry, "cid", "ann", sdp(SdpType::Offer)).await;
}

#[tokio::test]
async fn an_offer_between_users_in_a_call_together_is_a_renegotiation() {
    let (registry, _) = registry();
    trio(&registry);
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    relayed(&registry, "bob", "ann", sdp(SdpType::Answer)).await;
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    relayed(&registry, "bob", "ann", sdp(SdpType::Offer)).await;
}

#[tokio::test]
async fn a_rollback_frees_its_sender_only_from_that_call() {
    let (registry, _) = registry();
    trio(&registry);
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    relayed(&registry, "ann", "cid", sdp(SdpType::Rollback)).await;
    rejected(&registry, "cid", "ann").await;
    relayed(&registry, "ann", "bob", sdp(SdpType::Rollback)).await;
    relayed(&registry, "cid", "ann", sdp(SdpType::Offer)).await;
}

#[tokio::test]
async fn busy_lapses_after_the_ttl() {
    let (registry, clock) = registry_with(SessionConfig {
        call_busy_ttl: Duration::from_secs(300),
        ..SessionConfig::default()
    });
    trio(&registry);
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    clock.advance(Duration::from_secs(299));
    rejected(&registry, "cid", "ann").await;
    clock.advance(Duration::from_secs(1));
    relayed(&registry, "cid", "ann", sdp(SdpType::Offer)).await;
}

#[tokio::test]
async fn a_user_whose_last_connection_goes_is_no_longer_busy() {
    let (registry, _) = registry();
    trio(&registry);
    connect(&registry, "ann", "r2");
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    disconnect(&registry, "ann", "r2");
    rejected(&registry, "cid", "ann").await;
    disconnect(&registry, "ann", "r1");
    connect(&registry, "ann", "r1");
    relayed(&registry, "cid", "ann", sdp(SdpType::Offer)).await;
}

#[tokio::test]
async fn membership_decides_who_may_signal_whom() {
    let (registry, _) = registry();
    connect(&registry, "ann", "r1");
    connect(&registry, "bob", "r1");
    connect(&registry, "eve", "r9");
    assert_eq!(refused(&registry, "ann", "dan").await, ErrorCode::NotFound);
    assert_eq!(
        refused(&registry, "eve", "ann").await,
        ErrorCode::PermissionDenied
    );
    assert_eq!(
        refused(&registry, "ann", "ann").await,
        ErrorCode::InvalidArgument
    );
    // Not a connection of ann's.
    let mut request = SignalRequest {
        from: Some(user("ann").to_ref()),
        connection_id: "c-bob".to_owned(),
        target_id: "bob".to_owned(),
        kind: Some(sdp(SdpType::Offer)),
        ..SignalRequest::default()
    };
    let err = registry.signal(request.clone()).await.expect_err("denied");
    assert_eq!(err.code, ErrorCode::PermissionDenied);
    // A backend may act for ann without a connection.
    request.connection_id.clear();
    registry.signal(request).await.expect("relayed");
    // Once bob leaves r1, ann and bob share nothing.
    connect(&registry, "bob", "r2");
    disconnect(&registry, "bob", "r1");
    assert_eq!(
        refused(&registry, "ann", "bob").await,
        ErrorCode::PermissionDenied
    );
}

#[tokio::test]
async fn another_tenants_user_of_the_same_id_gets_nothing() {
    let (registry, _) = registry();
    trio(&registry);
    let other = UserKey::new("other", "bob");
    registry.membership(&other, "r1", "c-bob-other", true);
    let mut stream = registry.subscribe("b1");
    next(&mut stream).await.expect("subscribed");
    registry
        .set_interest("b1", vec![other, user("bob")], Vec::new(), false)
        .expect("interest");
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    let item = next(&mut stream).await.expect("an event");
    let Some(user_stream_item::Item::Event(event)) = item.item else {
        panic!("an event");
    };
    assert_eq!(event.user.expect("user").tenant, TENANT);
    assert!(
        tokio::time::timeout(Duration::from_millis(100), stream.next())
            .await
            .is_err(),
        "nothing for the other tenant's bob"
    );
}

#[tokio::test]
async fn a_bridge_that_falls_behind_loses_its_stream_and_its_interest() {
    let (registry, _) = registry_with(SessionConfig {
        user_stream_buffer: 2,
        ..SessionConfig::default()
    });
    trio(&registry);
    let mut stream = bridge(&registry, "b1", &["bob"]).await;
    for _ in 0..3 {
        relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    }
    next_signal(&mut stream).await;
    next_signal(&mut stream).await;
    let ended = next(&mut stream).await.expect_err("ended");
    assert_eq!(ended.code(), tonic::Code::ResourceExhausted);
    assert!(stream.next().await.is_none());
    let err = registry
        .set_interest("b1", vec![user("bob")], Vec::new(), false)
        .expect_err("no stream");
    assert_eq!(err.code, ErrorCode::Conflict);
    let mut again = bridge(&registry, "b1", &["bob"]).await;
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    next_signal(&mut again).await;
}

#[tokio::test]
async fn a_new_subscription_of_a_bridge_replaces_the_old() {
    let (registry, _) = registry();
    trio(&registry);
    let mut old = bridge(&registry, "b1", &["bob"]).await;
    let mut new = bridge(&registry, "b1", &["ann"]).await;
    let ended = next(&mut old).await.expect_err("replaced");
    assert_eq!(ended.code(), tonic::Code::Aborted);
    relayed(&registry, "ann", "bob", sdp(SdpType::Offer)).await;
    relayed(&registry, "bob", "ann", sdp(SdpType::Answer)).await;
    let (to, _) = next_signal(&mut new).await;
    assert_eq!(
        to, "ann",
        "the old interest in bob went with the old stream"
    );
    drop(old);
    assert_eq!(
        registry.bridge_streams(),
        1,
        "the old stream's end closes nothing"
    );
}

#[tokio::test]
async fn an_idle_user_actor_retires_and_a_hung_up_bridge_lets_it() {
    let (registry, _) = registry();
    connect(&registry, "ann", "r1");
    let stream = bridge(&registry, "b1", &["ann"]).await;
    disconnect(&registry, "ann", "r1");
    wait_for(|| registry.active_users() == 1).await;
    drop(stream);
    assert_eq!(registry.bridge_streams(), 0);
    wait_for(|| registry.active_users() == 0).await;
}

async fn wait_for(condition: impl Fn() -> bool) {
    for _ in 0..500 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("condition never held");
}
