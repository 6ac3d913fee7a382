//! An assistant backend for meno-realtime: the smallest useful program on the
//! backend side of seed 003.
//!
//! It attaches to a core with `BackendService.Attach` as the tenant's
//! ASSISTANT backend and answers every `text_message` a client sends through
//! the assistant dialect (`/ws/assistant`) by streaming a `chat_response`:
//! "You said: <content>", one word per chunk, every chunk under one message
//! id, `is_complete` on the last only. The bridge shows each chunk to the
//! client as `{"type":"chat_response","data":{"messageId","content","isComplete"}}`.
//!
//! The protocol, in short:
//! 1. open `Attach`; the first upstream item is `hello {tenant, kind, backend_id}`;
//! 2. read `BackendWork` items: each names the connection and user it came from;
//! 3. answer with `reply {connection_id, user_id, message, trace_id}` items on
//!    the same stream, as many as you like, whenever you like.
//!
//! When the stream ends (the core restarts, the network breaks) it attaches
//! again, waiting longer after each failure (up to 10 s). Several copies of it
//! may attach for one tenant: the core hands each text message to one of them.
//!
//! ```text
//! meno-example-assistant --core http://127.0.0.1:50051 --tenant default
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use meno_proto::backend_service_client::BackendServiceClient;
use meno_proto::{
    backend_upstream, backend_work, direct_message, BackendHello, BackendKind, BackendReply,
    BackendUpstream, BackendWork, ChatResponse, DirectMessage,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Endpoint;

/// The first wait before attaching again; it doubles after each failure.
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait before attaching again.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// An example assistant backend: answers text messages with a streamed echo.
#[derive(Debug, Parser)]
#[command(name = "meno-example-assistant", version)]
struct Args {
    /// The core's gRPC address.
    #[arg(long, env = "MENO_CORE", default_value = "http://127.0.0.1:50051")]
    core: String,
    /// The tenant whose text messages this backend answers.
    #[arg(long, env = "MENO_TENANT", default_value = "default")]
    tenant: String,
    /// A file holding the core's gRPC token (the core's --grpc-token-file):
    /// sent as `authorization: Bearer <token>` on the stream.
    #[arg(long, env = "MENO_GRPC_TOKEN_FILE")]
    grpc_token_file: Option<PathBuf>,
    /// This backend's name in the core's logs and metrics.
    #[arg(long, env = "MENO_BACKEND_ID", default_value = "example-assistant")]
    backend_id: String,
    /// The pause between two chunks of a reply, in milliseconds (a model
    /// producing tokens).
    #[arg(long, env = "MENO_CHUNK_DELAY_MS", default_value_t = 20)]
    chunk_delay_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let token = args
        .grpc_token_file
        .as_deref()
        .map(bearer_header)
        .transpose()?;
    let endpoint = Endpoint::from_shared(args.core.clone())
        .with_context(|| format!("--core {}", args.core))?
        .connect_timeout(Duration::from_secs(5));

    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut backoff = MIN_BACKOFF;
    loop {
        let mut attached = false;
        let outcome = tokio::select! {
            outcome = serve(&args, &endpoint, token.clone(), &mut attached) => outcome,
            () = &mut shutdown => break,
        };
        match outcome {
            Ok(()) => eprintln!("the core ended the stream"),
            Err(err) => eprintln!("backend stream failed: {err:#}"),
        }
        if attached {
            backoff = MIN_BACKOFF;
        }
        eprintln!("attaching again in {backoff:?}");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = &mut shutdown => break,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    eprintln!("stopping");
    Ok(())
}

/// One attachment: connect, say hello, answer work until the stream ends.
async fn serve(
    args: &Args,
    endpoint: &Endpoint,
    token: Option<MetadataValue<Ascii>>,
    attached: &mut bool,
) -> anyhow::Result<()> {
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("connect to {}", args.core))?;
    let mut client =
        BackendServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            if let Some(token) = &token {
                request
                    .metadata_mut()
                    .insert("authorization", token.clone());
            }
            Ok(request)
        });

    // Everything this backend sends goes through one channel: the hello
    // first, then the replies of every answering task, in the order each
    // task sends them.
    let (upstream, outbox) = mpsc::channel::<BackendUpstream>(64);
    upstream
        .send(BackendUpstream {
            item: Some(backend_upstream::Item::Hello(BackendHello {
                tenant: args.tenant.clone(),
                kind: BackendKind::Assistant as i32,
                backend_id: args.backend_id.clone(),
            })),
        })
        .await?;
    let mut work = client
        .attach(ReceiverStream::new(outbox))
        .await
        .context("attach")?
        .into_inner();
    *attached = true;
    // Scripts (and the end-to-end tests) wait for this line.
    println!(
        "attached to {} as assistant backend {:?} of tenant {:?}",
        args.core, args.backend_id, args.tenant
    );

    let delay = Duration::from_millis(args.chunk_delay_ms);
    while let Some(item) = work.message().await.context("read work")? {
        match &item.item {
            Some(backend_work::Item::Text(text)) => {
                let content = text.content.clone();
                // One task per message: a long reply to one user does not
                // hold up the others.
                tokio::spawn(answer(upstream.clone(), item, content, delay));
            }
            other => eprintln!("ignoring work an assistant does not take: {other:?}"),
        }
    }
    Ok(())
}

/// Streams "You said: <content>" back to the connection `work` came from.
async fn answer(
    upstream: mpsc::Sender<BackendUpstream>,
    work: BackendWork,
    content: String,
    delay: Duration,
) {
    let message_id = uuid::Uuid::new_v4().to_string();
    let reply = format!("You said: {content}");
    let chunks = chunks(&reply);
    let last = chunks.len() - 1;
    for (index, chunk) in chunks.into_iter().enumerate() {
        if index > 0 {
            tokio::time::sleep(delay).await;
        }
        let message = DirectMessage {
            kind: Some(direct_message::Kind::ChatResponse(ChatResponse {
                message_id: message_id.clone(),
                content: chunk.to_owned(),
                is_complete: index == last,
            })),
        };
        let reply = BackendUpstream {
            item: Some(backend_upstream::Item::Reply(BackendReply {
                connection_id: work.connection_id.clone(),
                user_id: work
                    .user
                    .as_ref()
                    .map(|user| user.user_id.clone())
                    .unwrap_or_default(),
                message: Some(message),
                trace_id: work.trace_id.clone(),
            })),
        };
        if upstream.send(reply).await.is_err() {
            // The stream is gone; the core tells the client.
            return;
        }
    }
}

/// The reply in chunks of one word each (with the space after it), so the
/// chunks put together are the reply itself. Never empty.
fn chunks(reply: &str) -> Vec<&str> {
    let chunks: Vec<&str> = reply.split_inclusive(' ').collect();
    if chunks.is_empty() {
        vec![reply]
    } else {
        chunks
    }
}

/// `Bearer <token>` from a token file (trimmed), as the bridge sends it.
fn bearer_header(path: &Path) -> anyhow::Result<MetadataValue<Ascii>> {
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("read --grpc-token-file {}", path.display()))?;
    let token = token.trim();
    anyhow::ensure!(!token.is_empty(), "{} is empty", path.display());
    format!("Bearer {token}")
        .parse()
        .context("the gRPC token must be printable ASCII")
}

/// Ctrl-C, or SIGTERM (how containers are stopped).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::chunks;

    #[test]
    fn chunks_are_words_that_add_up_to_the_reply() {
        let reply = "You said: hello  there";
        let parts = chunks(reply);
        assert_eq!(parts, ["You ", "said: ", "hello ", " ", "there"]);
        assert_eq!(parts.concat(), reply);
        assert_eq!(chunks(""), [""]);
    }
}
