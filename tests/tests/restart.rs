//! Restarts of the real binary on the embedded store: history survives, and
//! no seq is ever reused, after SIGTERM and after `kill -9`.

use meno_tests::process::{free_addr, Process};
use meno_tests::{seq, session_id, Client};

fn url(process: &Process, session: &str, participant: &str, last_seq: Option<u64>) -> String {
    let resume = last_seq
        .map(|s| format!("&lastSeq={s}"))
        .unwrap_or_default();
    format!(
        "ws://{}/ws?sessionId={session}&participantId={participant}&name={participant}&role=student&client=web{resume}",
        process.addr
    )
}

async fn chat_then_restart(hard: bool) {
    let data = tempfile::tempdir().unwrap();
    let session = session_id(if hard { "kill9" } else { "sigterm" });
    let addr = free_addr();
    let process = Process::monolithic(addr, data.path()).await;
    let mut ann = Client::connect(&url(&process, &session, "ann", None)).await;
    ann.expect_start().await;
    let mut seqs = Vec::new();
    for n in 0..5 {
        ann.chat(&format!("m{n}"), &format!("message {n}")).await;
        seqs.push(seq(&ann.expect("chat.message").await));
    }
    let second = seqs[1];
    if hard {
        process.kill();
    } else {
        assert!(process.terminate().success(), "clean exit on SIGTERM");
    }

    let process = Process::monolithic(addr, data.path()).await;
    let mut bob = Client::connect(&url(&process, &session, "bob", None)).await;
    let (sync, _) = bob.expect_start().await;
    let history: Vec<(String, u64)> = sync["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["messageId"].as_str().unwrap().to_owned(),
                m["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(String, u64)> = (0..5).map(|n| format!("m{n}")).zip(seqs.clone()).collect();
    assert_eq!(history, expected, "every acknowledged message survived");

    bob.chat("after", "after the restart").await;
    let after = seq(&bob.expect("chat.message").await);
    assert!(
        after > *seqs.last().unwrap(),
        "seq {after} reused after {seqs:?}"
    );

    // A client that saw up to the second message resumes from the store.
    let mut ann = Client::connect(&url(&process, &session, "ann", Some(second))).await;
    let mut replayed = Vec::new();
    loop {
        let frame = ann.recv().await;
        match frame["type"].as_str().unwrap() {
            "chat.message" => {
                replayed.push(frame["data"]["messageId"].as_str().unwrap().to_owned())
            }
            "presence.snapshot" => break,
            other => panic!("unexpected {other}: {frame}"),
        }
    }
    assert_eq!(replayed, ["m2", "m3", "m4", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_seqs_survive_sigterm() {
    chat_then_restart(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_seqs_survive_kill_9() {
    chat_then_restart(true).await;
}

/// What a bridge sends for a socket it holds, over the core's gRPC API.
mod bridge_calls {
    use meno_proto::chat_service_client::ChatServiceClient;
    use meno_proto::connection_service_client::ConnectionServiceClient;
    use meno_proto::{
        Actor, ConnectionInfo, JoinRequest, RefreshRequest, Role, SendChatRequest, SessionRef,
    };

    pub(crate) fn session(session_id: &str) -> Option<SessionRef> {
        Some(SessionRef {
            tenant: String::new(),
            session_id: session_id.to_owned(),
        })
    }

    pub(crate) fn connection(connection_id: &str) -> ConnectionInfo {
        ConnectionInfo {
            connection_id: connection_id.to_owned(),
            participant_id: format!("p-{connection_id}"),
            name: format!("P {connection_id}"),
            role: Role::Student as i32,
            bridge_id: "test-bridge".to_owned(),
            ..ConnectionInfo::default()
        }
    }

    pub(crate) async fn join(addr: std::net::SocketAddr, session_id: &str, connection_id: &str) {
        let mut client = ConnectionServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("core reachable");
        client
            .join(JoinRequest {
                session: session(session_id),
                connection: Some(connection(connection_id)),
                ..JoinRequest::default()
            })
            .await
            .expect("join");
    }

    pub(crate) async fn refresh(
        addr: std::net::SocketAddr,
        session_id: &str,
        connection_ids: &[&str],
    ) {
        let mut client = ConnectionServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("core reachable");
        client
            .refresh(RefreshRequest {
                session: session(session_id),
                connections: connection_ids.iter().map(|id| connection(id)).collect(),
            })
            .await
            .expect("refresh");
    }

    pub(crate) async fn chat(
        addr: std::net::SocketAddr,
        session_id: &str,
        connection_id: &str,
        client_ref: &str,
    ) -> Result<(), tonic::Status> {
        let mut client = ChatServiceClient::connect(format!("http://{addr}"))
            .await
            .expect("core reachable");
        client
            .send(SendChatRequest {
                session: session(session_id),
                actor: Some(Actor {
                    participant_id: format!("p-{connection_id}"),
                    connection_id: connection_id.to_owned(),
                    ..Actor::default()
                }),
                client_ref: client_ref.to_owned(),
                content: "after the restart".to_owned(),
                ..SendChatRequest::default()
            })
            .await
            .map(drop)
    }
}

/// After `kill -9` of a split-mode core, the bridge's open sockets call the
/// new core before the bridge has re-registered them: those calls are a
/// fault of ours, answered retryably (`Unavailable`), never refused. A socket
/// joined just before the kill (its presence not yet written behind) is
/// served at once from its stored connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_for_connections_lost_in_a_core_restart_are_retryable() {
    let data = tempfile::tempdir().unwrap();
    let args = ["--data-dir", data.path().to_str().expect("utf-8 temp dir")];
    let session = session_id("core-restart-retryable");
    let addr = free_addr();
    let core = Process::core(addr, &args).await;
    bridge_calls::join(addr, &session, "c1").await;
    core.kill();

    let _core = Process::core(addr, &args).await;
    bridge_calls::chat(addr, &session, "c1", "m1")
        .await
        .expect("c1's connection row survived: its participant is served");
    let refused = bridge_calls::chat(addr, &session, "c2", "m2")
        .await
        .expect_err("c2 is not registered with this core yet");
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused:?}");
    assert!(
        refused
            .metadata()
            .get(meno_core::error::RETRY_AFTER_MS_HEADER)
            .is_some(),
        "a retry hint: {refused:?}"
    );
    bridge_calls::refresh(addr, &session, &["c1", "c2"]).await;
    bridge_calls::chat(addr, &session, "c2", "m2")
        .await
        .expect("c2 is served once the bridge re-registered it");
}
