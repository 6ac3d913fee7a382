//! Fault injection from the clients' point of view: a [`Fleet`] of seed-000
//! WebSocket clients chatting at a steady rate over real sockets while a test
//! kills, drains or restarts the processes behind them, and the checker that
//! turns what they saw into [`Figures`].
//!
//! A sender has at most one message outstanding. It sends `chat.send` with a
//! fresh `messageId`; the message is acknowledged when its `chat.message`
//! comes back to the sender (live, in a resume or in a `chat.sync`). After a
//! retryable `error` or a reconnect the sender sends the same `messageId`
//! again, which the core deduplicates by client_ref. Every client records
//! every `chat.message` it is given, and after a close reconnects (to any
//! bridge still listed) with `lastSeq` set to the last seq it saw.
//!
//! The fleet never decides whether the system behaved: it only records.
//! [`Figures::check`] compares the records with each other and with the
//! stored history.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

mod client;
mod figures;
mod history;

use client::FleetClient;

pub use figures::Figures;
pub use history::{history_over_grpc, StoredMessage};

/// Longest a fleet waits for progress before the test fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(90);

/// Who chats, how fast, and where.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// The session every client joins.
    pub session: String,
    /// Participants that send (role teacher) and receive.
    pub senders: usize,
    /// Participants that only receive (role observer).
    pub listeners: usize,
    /// Time between one acknowledged message and the next, per sender.
    pub interval: Duration,
    /// Senders drop their connection (no close frame) right after sending
    /// every this-many-th message, then reconnect to the next bridge with
    /// `lastSeq` and send it again: a flapping network.
    pub drop_every: Option<u64>,
}

impl FleetConfig {
    /// Four senders at 10 messages/s each (the bridge allows 20/s, burst 40,
    /// per connection) and two listeners.
    pub fn steady(session: &str) -> Self {
        Self {
            session: session.to_owned(),
            senders: 4,
            listeners: 2,
            interval: Duration::from_millis(100),
            drop_every: None,
        }
    }
}

/// One acknowledgement: the message's id, its seq, and when it came.
#[derive(Debug, Clone)]
pub struct Ack {
    pub message_id: String,
    pub seq: u64,
    pub at: Instant,
}

/// Everything one client saw, across all its connections.
#[derive(Debug, Default, Clone)]
pub struct ClientLog {
    pub participant: String,
    /// Distinct messages this client sent.
    pub sent: Vec<String>,
    /// `chat.send` frames written, retries included.
    pub attempts: u64,
    pub acks: Vec<Ack>,
    /// Every `chat.message` given to this participant, in arrival order:
    /// (seq, messageId).
    pub deliveries: Vec<(u64, String)>,
    /// `error` codes received.
    pub errors: HashMap<String, u64>,
    /// Errors a client cannot act on (not retryable), with their frames.
    pub unexpected: Vec<String>,
    /// Close codes of the connections that ended (`None`: no close frame).
    pub closes: Vec<Option<u16>>,
    /// Connections opened after the first.
    pub reconnects: u64,
    /// `chat.sync` frames after the first one: a fresh snapshot instead of
    /// a resume.
    pub resyncs: u64,
    /// For each lost connection of a sender: from its end to the sender's
    /// next acknowledgement.
    pub reconnect_gaps: Vec<Duration>,
}

/// What the fleet's tasks share with the test.
#[derive(Debug)]
struct Shared {
    endpoints: Mutex<Vec<SocketAddr>>,
    started: AtomicU64,
    /// Open for new messages.
    sending: AtomicBool,
    /// Clients close and report.
    stop: CancellationToken,
    outstanding: AtomicU64,
    acks: Mutex<Vec<Instant>>,
    acked: Mutex<HashSet<String>>,
    delivered: Mutex<HashMap<String, HashSet<String>>>,
    fault_at: Mutex<Option<Instant>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    fn acks_after(&self, instant: Option<Instant>) -> u64 {
        let acks = lock(&self.acks);
        match instant {
            Some(instant) => acks.iter().filter(|at| **at > instant).count() as u64,
            None => acks.len() as u64,
        }
    }

    /// Whether every acknowledged message reached every participant.
    fn settled(&self) -> bool {
        let acked = lock(&self.acked);
        lock(&self.delivered)
            .values()
            .all(|delivered| acked.is_subset(delivered))
    }
}

/// Clients chatting in one session until told to finish.
#[derive(Debug)]
pub struct Fleet {
    config: FleetConfig,
    shared: Arc<Shared>,
    tasks: Vec<tokio::task::JoinHandle<ClientLog>>,
}

impl Fleet {
    /// Connects every client (client `i` prefers bridge `i % endpoints`),
    /// waits until all have joined, then lets the senders start.
    pub async fn start(config: FleetConfig, endpoints: &[SocketAddr]) -> Self {
        let total = config.senders + config.listeners;
        let shared = Arc::new(Shared {
            endpoints: Mutex::new(endpoints.to_vec()),
            started: AtomicU64::new(0),
            sending: AtomicBool::new(false),
            stop: CancellationToken::new(),
            outstanding: AtomicU64::new(0),
            acks: Mutex::default(),
            acked: Mutex::default(),
            delivered: Mutex::default(),
            fault_at: Mutex::default(),
        });
        let tasks = (0..total)
            .map(|index| {
                let sends = index < config.senders;
                let participant = if sends {
                    format!("sender{index}")
                } else {
                    format!("listener{}", index - config.senders)
                };
                lock(&shared.delivered).insert(participant.clone(), HashSet::new());
                let client = FleetClient {
                    participant,
                    sends,
                    preferred: index,
                    // Senders spread over the interval, so that at any moment
                    // one of them is likely to have a send in flight.
                    phase: config.interval * index as u32 / config.senders.max(1) as u32,
                    session: config.session.clone(),
                    interval: config.interval,
                    drop_every: config.drop_every,
                    shared: Arc::clone(&shared),
                };
                tokio::spawn(client.run())
            })
            .collect();
        let fleet = Self {
            config,
            shared,
            tasks,
        };
        fleet
            .wait_for("every client joined", || {
                fleet.shared.started.load(Ordering::SeqCst) >= total as u64
            })
            .await;
        fleet.shared.sending.store(true, Ordering::SeqCst);
        fleet
    }

    async fn wait_for(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done() {
            assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Messages acknowledged so far; after the fault only, with `after_fault`.
    pub fn acks(&self, after_fault: bool) -> u64 {
        let fault = if after_fault {
            *lock(&self.shared.fault_at)
        } else {
            None
        };
        if after_fault && fault.is_none() {
            return 0;
        }
        self.shared.acks_after(fault)
    }

    /// Waits until `count` messages are acknowledged in all.
    pub async fn wait_acks(&self, count: u64) {
        self.wait_for(&format!("{count} acknowledgements"), || {
            self.shared.acks_after(None) >= count
        })
        .await;
    }

    /// Waits until `count` messages are acknowledged after the fault.
    pub async fn wait_acks_after_fault(&self, count: u64) {
        let fault = *lock(&self.shared.fault_at);
        self.wait_for(&format!("{count} acknowledgements after the fault"), || {
            self.shared.acks_after(fault) >= count
        })
        .await;
    }

    /// Notes that the fault is being injected now (recovery time runs from here).
    pub fn mark_fault(&self) {
        *lock(&self.shared.fault_at) = Some(Instant::now());
    }

    /// Takes a bridge out of rotation: reconnecting clients go elsewhere.
    pub fn remove_endpoint(&self, addr: SocketAddr) {
        lock(&self.shared.endpoints).retain(|endpoint| *endpoint != addr);
    }

    /// Stops new messages, waits until every outstanding one is acknowledged
    /// and every acknowledged one reached every participant (or
    /// [`PATIENCE`] passed: the figures then show what is missing), then
    /// closes the clients and collects their logs.
    pub async fn finish(self) -> (Vec<ClientLog>, Option<Instant>) {
        self.shared.sending.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + PATIENCE;
        while (self.shared.outstanding.load(Ordering::SeqCst) > 0 || !self.shared.settled())
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Late duplicates would come now.
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.shared.stop.cancel();
        let mut logs = Vec::new();
        for task in self.tasks {
            logs.push(task.await.expect("fleet client panicked"));
        }
        let fault = *lock(&self.shared.fault_at);
        (logs, fault)
    }

    /// The fleet's settings.
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }
}
