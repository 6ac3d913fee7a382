//! Graceful drain: SIGTERM during an active chat loses no acknowledged
//! message, and every client sees 1001.

use std::collections::HashSet;
use std::time::Duration;

use meno_tests::process::{free_addr, Process};
use meno_tests::{session_id, Client, Received};
use serde_json::json;

struct Outcome {
    acknowledged: Vec<String>,
    close_code: Option<u16>,
}

/// Sends messages one after another; a message counts as acknowledged when
/// its broadcast comes back to the sender. Stops at the close.
async fn chatter(mut client: Client, name: String) -> Outcome {
    let mut acknowledged = Vec::new();
    for n in 0.. {
        let id = format!("{name}-{n}");
        if !client
            .try_send("chat.send", json!({"messageId": id, "content": "steady"}))
            .await
        {
            return Outcome {
                acknowledged,
                close_code: None,
            };
        }
        loop {
            match client.next().await {
                Received::Frame(frame) => {
                    if frame["type"] == "chat.message" && frame["data"]["messageId"] == id.as_str()
                    {
                        acknowledged.push(id.clone());
                        break;
                    }
                }
                Received::Closed(code) => {
                    return Outcome {
                        acknowledged,
                        close_code: code,
                    }
                }
                Received::Ended => {
                    return Outcome {
                        acknowledged,
                        close_code: None,
                    }
                }
            }
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_chat_loses_no_acknowledged_message_and_closes_with_1001() {
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let session = session_id("drain");
    let flags = [
        "--history-sync-limit",
        "100000",
        "--messages-per-second",
        "100000",
        "--message-burst",
        "100000",
    ];
    let process = Process::monolithic_with(addr, data.path(), &flags).await;
    let mut chatters = Vec::new();
    for name in ["ann", "bob", "cem"] {
        let url = format!(
            "ws://{addr}/ws?sessionId={session}&participantId={name}&name={name}&role=teacher&client=web"
        );
        let mut client = Client::connect(&url).await;
        client.expect_start().await;
        chatters.push(tokio::spawn(chatter(client, name.to_owned())));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(process.terminate().success(), "clean exit after the drain");

    let mut acknowledged = Vec::new();
    for chatter in chatters {
        let outcome = chatter.await.expect("chatter");
        assert_eq!(outcome.close_code, Some(1001), "going away");
        assert!(!outcome.acknowledged.is_empty(), "the chat was active");
        acknowledged.extend(outcome.acknowledged);
    }

    let process = Process::monolithic_with(addr, data.path(), &flags).await;
    let url = format!(
        "ws://{addr}/ws?sessionId={session}&participantId=auditor&name=auditor&role=observer&client=web"
    );
    let mut auditor = Client::connect(&url).await;
    let (sync, _) = auditor.expect_start().await;
    let stored: Vec<String> = sync["data"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["messageId"].as_str().unwrap().to_owned())
        .collect();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "each message stored once");
    for id in &acknowledged {
        assert!(unique.contains(id), "acknowledged {id} was lost");
    }
    println!(
        "drain: {} acknowledged, {} stored",
        acknowledged.len(),
        stored.len()
    );
    drop(process);
}
