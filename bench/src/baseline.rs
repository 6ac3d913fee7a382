//! The `baseline` target: a bare tokio-tungstenite broadcast server, the
//! practical ceiling on this machine. A text message from any socket is
//! wrapped once into a `chat.message`-shaped frame and cloned to every socket
//! of its room (the sender included); each socket's task feeds everything
//! queued, then flushes once. No JSON parsing, no storage, no presence.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Frames queued per socket before it is dropped as a slow consumer.
const QUEUE_FRAMES: usize = 4096;

type Rooms = Arc<Mutex<HashMap<String, Vec<(u64, mpsc::Sender<Utf8Bytes>)>>>>;

/// Serves until killed.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let rooms: Rooms = Arc::default();
    let next_id = Arc::new(AtomicU64::new(1));
    let seq = Arc::new(AtomicU64::new(1));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let id = next_id.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(socket(stream, id, Arc::clone(&rooms), Arc::clone(&seq)));
    }
}

fn room_of(path_and_query: &str) -> String {
    path_and_query
        .split_once('?')
        .map(|(_, query)| query)
        .unwrap_or("")
        .split('&')
        .find_map(|pair| pair.strip_prefix("sessionId="))
        .unwrap_or("default")
        .to_owned()
}

#[allow(clippy::result_large_err)] // the handshake callback signature is tungstenite's
async fn socket(stream: TcpStream, id: u64, rooms: Rooms, seq: Arc<AtomicU64>) {
    let mut room = String::new();
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024);
    let callback = |request: &Request, response: Response| {
        room = request
            .uri()
            .path_and_query()
            .map(|pq| room_of(pq.as_str()))
            .unwrap_or_default();
        Ok(response)
    };
    let Ok(mut ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let (sender, mut queued) = mpsc::channel::<Utf8Bytes>(QUEUE_FRAMES);
    rooms
        .lock()
        .expect("rooms")
        .entry(room.clone())
        .or_default()
        .push((id, sender));
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            received = queued.recv_many(&mut batch, 256) => {
                if received == 0 {
                    break;
                }
                let mut failed = false;
                for frame in batch.drain(..) {
                    if ws.feed(Message::Text(frame)).await.is_err() {
                        failed = true;
                        break;
                    }
                }
                if failed || ws.flush().await.is_err() {
                    break;
                }
            }
            message = ws.next() => match message {
                Some(Ok(Message::Text(content))) => {
                    let n = seq.fetch_add(1, Ordering::Relaxed);
                    let frame = Utf8Bytes::from(format!(
                        r#"{{"type":"chat.message","seq":{n},"data":{{"sessionId":"{room}","content":"{}"}}}}"#,
                        content.as_str()
                    ));
                    let mut rooms = rooms.lock().expect("rooms");
                    if let Some(members) = rooms.get_mut(&room) {
                        // A full queue drops its socket: the broadcast never waits.
                        members.retain(|(_, member)| member.try_send(frame.clone()).is_ok());
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {
                    if ws.flush().await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let mut rooms = rooms.lock().expect("rooms");
    if let Some(members) = rooms.get_mut(&room) {
        members.retain(|(member, _)| *member != id);
    }
}
