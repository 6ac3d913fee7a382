//! One fleet client: a participant's connections, one after another, and
//! what it saw on them.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{lock, Ack, ClientLog, Shared};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct FleetClient {
    pub(super) participant: String,
    pub(super) sends: bool,
    pub(super) preferred: usize,
    pub(super) phase: Duration,
    pub(super) session: String,
    pub(super) interval: Duration,
    pub(super) drop_every: Option<u64>,
    pub(super) shared: Arc<Shared>,
}

/// Where a client stands, across its connections.
#[derive(Debug, Default)]
struct State {
    log: ClientLog,
    /// The last seq seen on any frame: the `lastSeq` of the next connection.
    last_seq: Option<u64>,
    /// The highest chat seq given so far.
    last_chat_seq: u64,
    /// The message sent and not yet acknowledged.
    pending: Option<String>,
    next_message: u64,
    syncs: u64,
    joined: bool,
    /// When the last connection was lost, until the next acknowledgement.
    lost_at: Option<Instant>,
}

/// Why a connection ended.
enum Ended {
    /// The server closed it or it broke: connect again.
    Lost,
    /// The client dropped it on purpose.
    Dropped,
    /// The fleet is finishing.
    Stopped,
}

impl FleetClient {
    pub(super) async fn run(mut self) -> ClientLog {
        let mut state = State {
            log: ClientLog {
                participant: self.participant.clone(),
                ..ClientLog::default()
            },
            ..State::default()
        };
        let mut backoff = RETRY_FIRST;
        let mut connections = 0u64;
        while !self.shared.stop.is_cancelled() {
            let Some(ws) = self.connect(state.last_seq).await else {
                self.preferred += 1;
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = self.shared.stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(RETRY_MAX);
                continue;
            };
            backoff = RETRY_FIRST;
            if connections > 0 {
                state.log.reconnects += 1;
            }
            connections += 1;
            let ended = self.serve(ws, &mut state).await;
            if self.sends {
                state.lost_at.get_or_insert_with(Instant::now);
            }
            match ended {
                Ended::Stopped => break,
                Ended::Lost => {}
                Ended::Dropped => self.preferred += 1,
            }
        }
        if state.pending.take().is_some() {
            self.shared.outstanding.fetch_sub(1, Ordering::SeqCst);
        }
        state.log
    }

    fn url(&self, addr: std::net::SocketAddr, last_seq: Option<u64>) -> String {
        let role = if self.sends { "teacher" } else { "observer" };
        let resume = last_seq
            .map(|seq| format!("&lastSeq={seq}"))
            .unwrap_or_default();
        format!(
            "ws://{addr}/ws?sessionId={}&participantId={p}&name={p}&role={role}&client=web{resume}",
            self.session,
            p = self.participant,
        )
    }

    /// Opens a connection to the preferred bridge still listed.
    async fn connect(&self, last_seq: Option<u64>) -> Option<Ws> {
        let addr = {
            let endpoints = lock(&self.shared.endpoints);
            *endpoints.get(self.preferred % endpoints.len().max(1))?
        };
        let url = self.url(addr, last_seq);
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(url)).await {
            Ok(Ok((ws, _))) => Some(ws),
            Ok(Err(_)) | Err(_) => None,
        }
    }

    async fn send_pending(&self, ws: &mut Ws, state: &mut State) -> bool {
        let Some(message_id) = &state.pending else {
            return true;
        };
        state.log.attempts += 1;
        let envelope = json!({
            "action": "chat.send",
            "payload": {"messageId": message_id, "content": format!("{message_id} says hello")},
        });
        ws.send(Message::Text(envelope.to_string().into()))
            .await
            .is_ok()
    }

    /// One connection, until it ends or the fleet stops.
    async fn serve(&self, mut ws: Ws, state: &mut State) -> Ended {
        let mut ticks = tokio::time::interval_at(Instant::now() + self.phase, self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // A message in doubt goes again at once, with the same messageId.
        let mut retry_at = state.pending.as_ref().map(|_| Instant::now());
        loop {
            let retry = async {
                match retry_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.shared.stop.cancelled() => {
                    let _ = tokio::time::timeout(CONNECT_TIMEOUT, ws.close(None)).await;
                    return Ended::Stopped;
                }
                _ = ticks.tick(), if self.sends && state.pending.is_none() => {
                    if !self.shared.sending.load(Ordering::SeqCst) {
                        continue;
                    }
                    let message_id = format!("{}-{}", self.participant, state.next_message);
                    state.next_message += 1;
                    state.log.sent.push(message_id.clone());
                    state.pending = Some(message_id);
                    self.shared.outstanding.fetch_add(1, Ordering::SeqCst);
                    if !self.send_pending(&mut ws, state).await {
                        state.log.closes.push(None);
                        return Ended::Lost;
                    }
                    if self.drop_every.is_some_and(|every| state.next_message.is_multiple_of(every)) {
                        // Gone before the answer: the message is in doubt.
                        drop(ws);
                        return Ended::Dropped;
                    }
                }
                _ = retry, if retry_at.is_some() => {
                    retry_at = None;
                    if !self.send_pending(&mut ws, state).await {
                        state.log.closes.push(None);
                        return Ended::Lost;
                    }
                }
                message = ws.next() => match message {
                    Some(Ok(Message::Text(text))) => {
                        let frame: Value = serde_json::from_str(&text).expect("server sent JSON");
                        if let Some(wait) = self.on_frame(&frame, state) {
                            retry_at = Some(Instant::now() + wait);
                        }
                    }
                    Some(Ok(Message::Close(close))) => {
                        state.log.closes.push(close.map(|close| u16::from(close.code)));
                        return Ended::Lost;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        state.log.closes.push(None);
                        return Ended::Lost;
                    }
                },
            }
        }
    }

    /// Records a frame; returns when to retry the pending message, if the
    /// frame says it failed.
    fn on_frame(&self, frame: &Value, state: &mut State) -> Option<Duration> {
        if let Some(seq) = frame["seq"].as_u64() {
            state.last_seq = Some(state.last_seq.map_or(seq, |last| last.max(seq)));
        }
        match frame["type"].as_str().unwrap_or_default() {
            "chat.message" => {
                let seq = frame["seq"].as_u64().expect("chat.message has a seq");
                self.deliver(seq, &frame["data"], state);
            }
            "chat.sync" => {
                state.syncs += 1;
                if state.syncs > 1 {
                    state.log.resyncs += 1;
                }
                // What the client already has is not given again.
                let already = state.last_chat_seq;
                for message in frame["data"]["messages"].as_array().into_iter().flatten() {
                    let seq = message["seq"].as_u64().expect("synced message has a seq");
                    if seq > already {
                        self.deliver(seq, message, state);
                    }
                }
            }
            "presence.snapshot" if !state.joined => {
                state.joined = true;
                self.shared.started.fetch_add(1, Ordering::SeqCst);
            }
            "error" => {
                let data = &frame["data"];
                let code = data["code"].as_str().unwrap_or("?").to_owned();
                *state.log.errors.entry(code).or_default() += 1;
                if data["retryable"] != true {
                    state.log.unexpected.push(frame.to_string());
                    return None;
                }
                if data["action"] == "chat.send" && state.pending.is_some() {
                    let after = data["retryAfterMs"].as_u64().unwrap_or(0);
                    return Some(Duration::from_millis(after).clamp(RETRY_FIRST, RETRY_MAX));
                }
            }
            _ => {}
        }
        None
    }

    fn deliver(&self, seq: u64, data: &Value, state: &mut State) {
        let message_id = data["messageId"]
            .as_str()
            .expect("chat message has a messageId")
            .to_owned();
        state.last_chat_seq = state.last_chat_seq.max(seq);
        state.log.deliveries.push((seq, message_id.clone()));
        if state.pending.as_deref() == Some(message_id.as_str()) {
            state.pending = None;
            let at = Instant::now();
            state.log.acks.push(Ack {
                message_id: message_id.clone(),
                seq,
                at,
            });
            if let Some(lost_at) = state.lost_at.take() {
                state.log.reconnect_gaps.push(at - lost_at);
            }
            lock(&self.shared.acks).push(at);
            lock(&self.shared.acked).insert(message_id.clone());
            self.shared.outstanding.fetch_sub(1, Ordering::SeqCst);
        }
        lock(&self.shared.delivered)
            .get_mut(&self.participant)
            .expect("participant registered")
            .insert(message_id);
    }
}
