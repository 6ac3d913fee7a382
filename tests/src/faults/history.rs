//! The stored chat history, read from the core over gRPC.

use std::net::SocketAddr;
use std::time::Duration;

use meno_proto::chat_service_client::ChatServiceClient;
use meno_proto::{ChatHistoryRequest, SessionRef};
use tokio::time::Instant;
use tonic::transport::Endpoint;

/// One stored message: its seq and the client's messageId (client_ref).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    pub seq: u64,
    pub message_id: String,
}

/// The session's whole history, oldest first, paging newest-first through
/// `ChatService.History`; retries until the core answers (it may still be
/// reconnecting to its store).
pub async fn history_over_grpc(core: SocketAddr, session: &str) -> Vec<StoredMessage> {
    let deadline = Instant::now() + super::PATIENCE;
    loop {
        match read_history(core, session).await {
            Ok(history) => return history,
            Err(status) => {
                assert!(
                    Instant::now() < deadline,
                    "history of {session} from {core}: {status:?}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn read_history(
    core: SocketAddr,
    session: &str,
) -> Result<Vec<StoredMessage>, tonic::Status> {
    let channel = Endpoint::from_shared(format!("http://{core}"))
        .expect("core url")
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .connect_lazy();
    let mut chat = ChatServiceClient::new(channel);
    let mut before_seq = None;
    let mut newest_first = Vec::new();
    loop {
        let page = chat
            .history(ChatHistoryRequest {
                session: Some(SessionRef {
                    tenant: String::new(),
                    session_id: session.to_owned(),
                }),
                before_seq,
                limit: 500,
                ..ChatHistoryRequest::default()
            })
            .await?
            .into_inner();
        newest_first.extend(page.messages.into_iter().map(|message| StoredMessage {
            seq: message.seq,
            message_id: message.client_ref,
        }));
        match page.next_before_seq {
            Some(next) => before_seq = Some(next),
            None => break,
        }
    }
    newest_first.reverse();
    Ok(newest_first)
}
