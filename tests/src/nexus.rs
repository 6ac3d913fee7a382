//! A NexusChat (seed 004) client for the end-to-end tests: `{event, traceId,
//! data}` both ways, over a real socket to `/ws/nexus`, and plain HTTP GETs
//! for the REST reads.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{System, WAIT};

/// A NexusChat WebSocket client.
#[derive(Debug)]
pub struct NexusClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_trace: u64,
    name: String,
}

impl System {
    /// The NexusChat WebSocket URL with `query`.
    pub fn nexus_url(&self, query: &str) -> String {
        format!("ws://{}/ws/nexus?{query}", self.bridge_addr)
    }

    /// Connects `user` (name `<user>-name`) in `tenant` to `rooms`, and reads
    /// one `ROOM_JOINED` per room.
    pub async fn nexus(&self, tenant: &str, user: &str, rooms: &[&str]) -> NexusClient {
        let mut query = format!("userId={user}&userName={user}-name&tenant={tenant}");
        for room in rooms {
            query.push_str(&format!("&roomId={room}"));
        }
        let mut client = NexusClient::connect(&self.nexus_url(&query)).await;
        for room in rooms {
            let joined = client.expect("ROOM_JOINED").await;
            assert_eq!(joined["data"]["roomId"], *room);
        }
        client
    }
}

impl NexusClient {
    pub async fn connect(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|err| panic!("connect {url}: {err}"));
        let name = url
            .split("userId=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .unwrap_or("client")
            .to_owned();
        Self {
            ws,
            next_trace: 0,
            name,
        }
    }

    /// Wraps an already connected WebSocket.
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self {
            ws,
            next_trace: 0,
            name: String::from("client"),
        }
    }

    /// Sends `{event, traceId, data}` with a fresh trace id, which it returns.
    pub async fn send(&mut self, event: &str, data: Value) -> String {
        self.next_trace += 1;
        let trace_id = format!("{}-trace-{}", self.name, self.next_trace);
        self.send_raw(&json!({"event": event, "traceId": trace_id, "data": data}).to_string())
            .await;
        trace_id
    }

    pub async fn send_raw(&mut self, text: &str) {
        self.ws
            .send(Message::Text(text.into()))
            .await
            .expect("send frame");
    }

    /// `SEND_MSG` of a TEXT message; returns the trace id.
    pub async fn say(&mut self, room: &str, client_ref: &str, text: &str) -> String {
        self.send(
            "SEND_MSG",
            json!({"roomId": room, "type": "TEXT", "contentText": text, "clientRef": client_ref}),
        )
        .await
    }

    /// The next frame within `wait`, or `None`.
    pub async fn try_recv(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let message = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()?;
            match message {
                Some(Ok(Message::Text(text))) => {
                    let frame: Value = serde_json::from_str(&text).expect("server sent JSON");
                    assert!(
                        frame["traceId"].as_str().is_some_and(|id| !id.is_empty()),
                        "every NexusChat frame has a traceId: {frame}"
                    );
                    return Some(frame);
                }
                Some(Ok(Message::Close(frame))) => panic!("closed by server: {frame:?}"),
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("socket error: {err}"),
                None => panic!("socket ended"),
            }
        }
    }

    /// The next frame, asserting its event.
    pub async fn expect(&mut self, event: &str) -> Value {
        let frame = self
            .try_recv(WAIT)
            .await
            .unwrap_or_else(|| panic!("no {event} within {WAIT:?}"));
        assert_eq!(frame["event"], event, "expected {event}, got {frame}");
        frame
    }

    /// Skips frames until one of `event` satisfies `matches`.
    pub async fn expect_where(&mut self, event: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.try_recv(left).await else {
                panic!("no {event} matching within {WAIT:?}; saw {seen:#?}");
            };
            if frame["event"] == event && matches(&frame) {
                return frame;
            }
            seen.push(frame);
        }
    }

    /// Asserts that nothing arrives for `quiet` but frames `allowed` accepts.
    pub async fn expect_silence_except(
        &mut self,
        quiet: Duration,
        allowed: impl Fn(&Value) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(frame) = self.try_recv(left).await else {
                return;
            };
            assert!(allowed(&frame), "expected no frame, got {frame}");
        }
    }

    /// Asserts that nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        self.expect_silence_except(quiet, |_| false).await;
    }

    /// Closes with a close frame (a graceful leave).
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        while let Some(Ok(_)) = self.ws.next().await {}
    }
}

/// A plain HTTP GET (no upgrade), returning the status and the body as JSON
/// (or as a JSON string when it is not JSON).
pub async fn get_json(
    addr: SocketAddr,
    path_and_query: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let extra: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{extra}\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("status code");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // A chunked body would need decoding; the bridge sends a length.
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked response"
    );
    let json = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()));
    (status, json)
}
