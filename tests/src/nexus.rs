//! A NexusChat (seed 004) client for the end-to-end tests: `{event, traceId,
//! data}` both ways, over a real socket to `/ws/nexus`, and plain HTTP GETs
//! for the REST reads.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::{Client, System, WAIT};

/// A NexusChat WebSocket client: the JSON [`Client`] reading `event`, every
/// frame checked for its `traceId`.
#[derive(Debug)]
pub struct NexusClient {
    client: Client,
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
        let name = url
            .split("userId=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .unwrap_or("client")
            .to_owned();
        let mut client = Self::from_client(Client::connect(url).await);
        client.name = name;
        client
    }

    /// Wraps an already connected WebSocket.
    pub fn from_stream(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Self {
        Self::from_client(Client::from_stream(ws))
    }

    fn from_client(client: Client) -> Self {
        Self {
            client: client.speaking("event", |frame| {
                assert!(
                    frame["traceId"].as_str().is_some_and(|id| !id.is_empty()),
                    "every NexusChat frame has a traceId: {frame}"
                );
            }),
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
        self.client.send_raw(text).await;
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
        self.client.try_recv(wait).await
    }

    /// The next frame, asserting its event.
    pub async fn expect(&mut self, event: &str) -> Value {
        self.client.expect(event).await
    }

    /// Skips frames until one of `event` satisfies `matches`.
    pub async fn expect_where(&mut self, event: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.client.expect_where(event, matches).await
    }

    /// Asserts that nothing arrives for `quiet` but frames `allowed` accepts.
    pub async fn expect_silence_except(
        &mut self,
        quiet: Duration,
        allowed: impl Fn(&Value) -> bool,
    ) {
        self.client.expect_silence_except(quiet, allowed).await;
    }

    /// Asserts that nothing arrives for `quiet`.
    pub async fn expect_silence(&mut self, quiet: Duration) {
        self.client.expect_silence(quiet).await;
    }

    /// Closes with a close frame (a graceful leave).
    pub async fn close(self) {
        self.client.close().await;
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
