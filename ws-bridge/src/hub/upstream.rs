//! The bridge's upstream: every session with local sockets streams its
//! events over one `SubscribeMany` stream per core replica (one in all with
//! a single core), not a stream of its own.
//!
//! Why one stream: with a stream per session, each event crossed the
//! connection as its own HTTP/2 frame and woke its own task on both sides;
//! with one, the core sends whatever its sessions have ready in one
//! response, and one task here hands each item to its session's fan-out.
//! The core still subscribes each session with its own bounded buffer, so a
//! session that falls behind resyncs alone.
//!
//! A session opens on the replica the router names (its owner, or a seed),
//! under a tag never used before on this bridge. It opens again, after a
//! backoff, when the core ends it (`resync_needed`, `ended`, or `refused`
//! without an owner), at once on the owner when refused with one, and when
//! the router learns that another replica owns it. A stream that breaks
//! marks its replica failed (with a router) and opens its sessions again.
//! A stream lasts while it has sessions.
//!
//! A core that answers `UNIMPLEMENTED` to `SubscribeMany` (an older version,
//! mid-upgrade) switches the bridge to a `Subscribe` stream per session, as
//! it streamed before, for [`FALLBACK_FOR`]; sessions opened after that try
//! the shared stream again, so a bridge returns to it once the upgrade is
//! done. The sessions' logic above is the same for both.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use meno_common::error::{CoreError, ErrorCode};
use meno_common::sync::lock;
use meno_proto::{
    subscribe_many_request, subscribe_response, tagged_session_item, OpenSessionStream,
    SessionStreamEnded, SubscribeManyRequest, SubscribeRequest, TaggedSessionItem,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Fanout, Upstream};
use crate::config::SessionStreams;
use crate::core_client::{
    name_session, session_ref, BoxError, CoreClient, MAX_REDIRECTS, OPEN_TIMEOUT,
};
use crate::outbox::Outbound;

const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How long sessions open on their own streams after a core answered
/// `UNIMPLEMENTED` to `SubscribeMany`, before the shared stream is tried again.
const FALLBACK_FOR: Duration = Duration::from_secs(60);

/// Where a session's events come from, kept in its fan-out.
#[derive(Debug)]
pub(super) struct StreamState {
    /// The last seq delivered: a session opened again resumes after it.
    last_seq: Option<u64>,
    /// The core said the stream cannot resume: once open again, every
    /// socket rejoins.
    resync_pending: bool,
    backoff: Duration,
    /// Redirects followed since the session last opened.
    redirects: usize,
    /// The stream and tag the session is open on.
    on: Option<(Arc<Link>, u64)>,
    /// Whether `on` answered `subscribed`.
    subscribed: bool,
    /// An open after a backoff is scheduled.
    reopening: bool,
}

impl Default for StreamState {
    fn default() -> Self {
        Self {
            last_seq: None,
            resync_pending: false,
            backoff: FIRST_BACKOFF,
            redirects: 0,
            on: None,
            subscribed: false,
            reopening: false,
        }
    }
}

/// One `SubscribeMany` stream to a core replica, or one session's own
/// `Subscribe` stream.
#[derive(Debug)]
pub(super) struct Link {
    /// The replica's URL (empty without a router).
    url: Arc<str>,
    /// Open and close requests; `None` once the stream is retired (and
    /// always for a session's own stream).
    requests: Mutex<Option<mpsc::UnboundedSender<SubscribeManyRequest>>>,
    /// The sessions open on it, by tag.
    sessions: Mutex<HashMap<u64, Weak<Fanout>>>,
    /// Cancelled when its last session leaves.
    retired: CancellationToken,
}

impl Link {
    fn send(&self, op: subscribe_many_request::Op) {
        if let Some(requests) = lock(&self.requests).as_ref() {
            let _ = requests.send(SubscribeManyRequest { op: Some(op) });
        }
    }
}

/// Whether sessions open on their own streams for now, a core having
/// answered `UNIMPLEMENTED` to `SubscribeMany`.
#[derive(Debug, Default)]
struct Fallback {
    until: Option<tokio::time::Instant>,
}

impl Fallback {
    /// A core does not serve `SubscribeMany`: per-session streams for
    /// [`FALLBACK_FOR`] from `now`.
    fn start(&mut self, now: tokio::time::Instant) {
        self.until = Some(now + FALLBACK_FOR);
    }

    /// Whether a session opened at `now` streams on its own.
    fn active(&self, now: tokio::time::Instant) -> bool {
        self.until.is_some_and(|until| now < until)
    }
}

/// The streams of this bridge, by replica.
#[derive(Debug)]
pub(super) struct Upstreams {
    core: Arc<CoreClient>,
    links: Mutex<HashMap<Arc<str>, Arc<Link>>>,
    next_tag: AtomicU64,
    tracker: TaskTracker,
    /// Every session streams on its own `Subscribe` (configured).
    per_session: bool,
    /// Until when sessions open on their own `Subscribe`: a core did not
    /// serve `SubscribeMany`.
    fallback: Mutex<Fallback>,
}

impl Upstreams {
    pub(super) fn new(
        core: Arc<CoreClient>,
        tracker: TaskTracker,
        streams: SessionStreams,
    ) -> Arc<Self> {
        let upstreams = Arc::new(Self {
            core,
            links: Mutex::default(),
            next_tag: AtomicU64::new(1),
            tracker,
            per_session: streams == SessionStreams::PerSession,
            fallback: Mutex::default(),
        });
        if let Some(router) = upstreams.core.router() {
            // Not tracked: it lives as long as the hub, and ends with it.
            tokio::spawn(follow_owners(Arc::downgrade(&upstreams), router.moves()));
        }
        upstreams
    }

    /// Opens `fanout`'s session where its events are (at once).
    pub(super) fn open(self: &Arc<Self>, fanout: &Arc<Fanout>) {
        let mut state = fanout.stream();
        self.open_locked(fanout, &mut state);
    }

    fn open_locked(self: &Arc<Self>, fanout: &Arc<Fanout>, state: &mut StreamState) {
        state.reopening = false;
        if fanout.stop.is_cancelled() {
            return;
        }
        self.detach_locked(state);
        let url: Arc<str> = match self.core.router() {
            Some(router) => router.target(Some(&fanout.route_key)),
            None => Arc::from(""),
        };
        let tag = self.next_tag.fetch_add(1, Ordering::Relaxed);
        let per_session =
            self.per_session || lock(&self.fallback).active(tokio::time::Instant::now());
        let link = if per_session {
            match self.open_alone(fanout, &url, tag, state.last_seq) {
                Ok(link) => link,
                Err(err) => {
                    tracing::warn!(session = %fanout.key, replica = %url, error = %err, "cannot stream from the core");
                    self.failed_to_open(fanout, state, CoreError::unavailable(err.to_string()));
                    return;
                }
            }
        } else {
            let mut links = lock(&self.links);
            let link = match links.get(&url) {
                Some(link) => Arc::clone(link),
                None => match self.connect(&url) {
                    Ok(link) => {
                        links.insert(Arc::clone(&url), Arc::clone(&link));
                        link
                    }
                    Err(err) => {
                        drop(links);
                        tracing::warn!(session = %fanout.key, replica = %url, error = %err, "cannot stream from the core");
                        self.failed_to_open(fanout, state, CoreError::unavailable(err.to_string()));
                        return;
                    }
                },
            };
            lock(&link.sessions).insert(tag, Arc::downgrade(fanout));
            link
        };
        link.send(subscribe_many_request::Op::Open(OpenSessionStream {
            tag,
            session: Some(session_ref(&fanout.key)),
            from_seq: state.last_seq,
        }));
        state.on = Some((Arc::clone(&link), tag));
        state.subscribed = false;
        if self.core.router().is_some() {
            // A replica that takes the open but never answers (frozen) is
            // given up, as a unary call's would be.
            let upstreams = Arc::downgrade(self);
            let fanout = Arc::downgrade(fanout);
            // Not tracked: the bridge's drain need not wait for it.
            tokio::spawn(async move {
                tokio::time::sleep(OPEN_TIMEOUT).await;
                let (Some(upstreams), Some(fanout)) = (upstreams.upgrade(), fanout.upgrade())
                else {
                    return;
                };
                let mut state = fanout.stream();
                let stuck = !state.subscribed
                    && state
                        .on
                        .as_ref()
                        .is_some_and(|(on, on_tag)| Arc::ptr_eq(on, &link) && *on_tag == tag);
                if stuck {
                    if let Some(router) = upstreams.core.router() {
                        router.failed(&link.url);
                    }
                    upstreams.open_locked(&fanout, &mut state);
                }
            });
        }
    }

    /// A `Subscribe` stream of `fanout`'s session alone, whose items are
    /// handed over as a `SubscribeMany` stream's would be.
    fn open_alone(
        self: &Arc<Self>,
        fanout: &Arc<Fanout>,
        url: &Arc<str>,
        tag: u64,
        from_seq: Option<u64>,
    ) -> Result<Arc<Link>, BoxError> {
        let mut client = self.core.events_at(url)?;
        let link = Arc::new(Link {
            url: Arc::clone(url),
            requests: Mutex::new(None),
            sessions: Mutex::new(HashMap::from([(tag, Arc::downgrade(fanout))])),
            retired: CancellationToken::new(),
        });
        let mut request = tonic::Request::new(SubscribeRequest {
            session: Some(session_ref(&fanout.key)),
            from_seq,
        });
        name_session(&mut request, &fanout.key);
        let upstreams = Arc::downgrade(self);
        let reading = Arc::clone(&link);
        crate::metrics::CORE_STREAMS.inc();
        self.tracker.spawn(async move {
            let _open = StreamGauge;
            let tagged = |item| TaggedSessionItem {
                tag,
                item: Some(item),
            };
            let subscribed = tokio::select! {
                subscribed = Box::pin(client.subscribe(request)) => subscribed,
                () = reading.retired.cancelled() => return,
            };
            let last = match subscribed {
                Err(status) => {
                    let err = CoreError::from_status(&status);
                    if err.owner_url.is_none() && err.code == ErrorCode::Unavailable {
                        // Unreachable, as a unary call would find it.
                        let up = upstreams.upgrade();
                        if let Some(router) = up.as_ref().and_then(|up| up.core.router()) {
                            router.failed(&reading.url);
                        }
                    }
                    tagged(tagged_session_item::Item::Refused(err.into()))
                }
                Ok(response) => {
                    let mut stream = response.into_inner();
                    loop {
                        let next = tokio::select! {
                            next = stream.message() => next,
                            () = reading.retired.cancelled() => return,
                        };
                        let item = match next.map(|next| next.and_then(|next| next.item)) {
                            Ok(Some(subscribe_response::Item::Subscribed(subscribed))) => {
                                tagged_session_item::Item::Subscribed(subscribed)
                            }
                            Ok(Some(subscribe_response::Item::Event(event))) => {
                                tagged_session_item::Item::Event(event)
                            }
                            Ok(Some(subscribe_response::Item::ResyncNeeded(resync))) => {
                                break tagged(tagged_session_item::Item::ResyncNeeded(resync));
                            }
                            Ok(None) => {
                                break tagged(tagged_session_item::Item::Ended(
                                    SessionStreamEnded {},
                                ))
                            }
                            Err(status) => {
                                tracing::warn!(replica = %reading.url, error = %status, "session stream broke");
                                break tagged(tagged_session_item::Item::Ended(
                                    SessionStreamEnded {},
                                ));
                            }
                        };
                        let Some(upstreams) = upstreams.upgrade() else {
                            return;
                        };
                        upstreams.dispatch(&reading, tagged(item));
                    }
                }
            };
            if let Some(upstreams) = upstreams.upgrade() {
                upstreams.dispatch(&reading, last);
            }
        });
        Ok(link)
    }

    /// Stops streaming `fanout`'s session (its last socket left).
    pub(super) fn close(&self, fanout: &Fanout) {
        self.detach_locked(&mut fanout.stream());
    }

    /// Takes the session off the stream it is open on.
    fn detach_locked(&self, state: &mut StreamState) {
        let Some((link, tag)) = state.on.take() else {
            return;
        };
        state.subscribed = false;
        let mut links = lock(&self.links);
        let empty = {
            let mut sessions = lock(&link.sessions);
            sessions.remove(&tag);
            sessions.is_empty()
        };
        if empty {
            // The stream's last session: retire it (the core ends it when
            // the requests end).
            if links
                .get(&link.url)
                .is_some_and(|known| Arc::ptr_eq(known, &link))
            {
                links.remove(&link.url);
            }
            lock(&link.requests).take();
            link.retired.cancel();
        } else {
            drop(links);
            link.send(subscribe_many_request::Op::Close(tag));
        }
    }

    /// The session could not be opened: sockets waiting to attach give up
    /// unless it was live, and it opens again after a backoff.
    fn failed_to_open(
        self: &Arc<Self>,
        fanout: &Arc<Fanout>,
        state: &mut StreamState,
        err: CoreError,
    ) {
        if !matches!(*fanout.upstream.borrow(), Upstream::Live) {
            fanout.upstream.send_replace(Upstream::Failed(err));
        }
        self.reopen_later(fanout, state);
    }

    fn reopen_later(self: &Arc<Self>, fanout: &Arc<Fanout>, state: &mut StreamState) {
        self.detach_locked(state);
        if state.reopening || fanout.stop.is_cancelled() {
            return;
        }
        state.reopening = true;
        let delay = state.backoff;
        state.backoff = (state.backoff * 2).min(MAX_BACKOFF);
        let upstreams = Arc::downgrade(self);
        let fanout = Arc::clone(fanout);
        self.tracker.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = fanout.stop.cancelled() => return,
            }
            if let Some(upstreams) = upstreams.upgrade() {
                let mut state = fanout.stream();
                if state.reopening {
                    upstreams.open_locked(&fanout, &mut state);
                }
            }
        });
    }

    /// A `SubscribeMany` stream to the replica at `url`, read by its own
    /// task.
    fn connect(
        self: &Arc<Self>,
        url: &Arc<str>,
    ) -> Result<Arc<Link>, crate::core_client::BoxError> {
        let mut client = self.core.events_at(url)?;
        let (requests, received) = mpsc::unbounded_channel();
        let link = Arc::new(Link {
            url: Arc::clone(url),
            requests: Mutex::new(Some(requests)),
            sessions: Mutex::default(),
            retired: CancellationToken::new(),
        });
        let upstreams = Arc::downgrade(self);
        let reading = Arc::clone(&link);
        crate::metrics::CORE_STREAMS.inc();
        self.tracker.spawn(async move {
            let _open = StreamGauge;
            let request = tonic::Request::new(UnboundedReceiverStream::new(received));
            let outcome = match Box::pin(client.subscribe_many(request)).await {
                Ok(response) => read(&upstreams, &reading, response.into_inner()).await,
                Err(status) if status.code() == tonic::Code::Unimplemented => {
                    tracing::warn!(replica = %reading.url, "the core does not serve SubscribeMany (an older version?): sessions stream on their own Subscribe for a minute");
                    if let Some(upstreams) = upstreams.upgrade() {
                        lock(&upstreams.fallback).start(tokio::time::Instant::now());
                    }
                    // Not a failure of the replica: its sessions open again,
                    // each on its own stream.
                    Ok(())
                }
                Err(status) => Err(status),
            };
            if let Some(upstreams) = upstreams.upgrade() {
                upstreams.link_ended(&reading, outcome);
            }
        });
        Ok(link)
    }

    /// The stream ended: when it broke, its sessions open again elsewhere
    /// or later.
    fn link_ended(self: &Arc<Self>, link: &Arc<Link>, outcome: Result<(), tonic::Status>) {
        {
            let mut links = lock(&self.links);
            if links
                .get(&link.url)
                .is_some_and(|known| Arc::ptr_eq(known, link))
            {
                links.remove(&link.url);
            }
        }
        lock(&link.requests).take();
        let orphans: Vec<Arc<Fanout>> = lock(&link.sessions)
            .drain()
            .filter_map(|(_, fanout)| fanout.upgrade())
            .collect();
        if orphans.is_empty() {
            return;
        }
        let err = match outcome {
            Ok(()) => CoreError::unavailable("the core ended the session stream"),
            Err(status) => {
                tracing::warn!(replica = %link.url, error = %status, sessions = orphans.len(), "session stream broke");
                if let Some(router) = self.core.router() {
                    router.failed(&link.url);
                }
                CoreError::from_status(&status)
            }
        };
        for fanout in orphans {
            let mut state = fanout.stream();
            if state
                .on
                .as_ref()
                .is_some_and(|(on, _)| Arc::ptr_eq(on, link))
            {
                state.on = None;
                state.subscribed = false;
                self.failed_to_open(&fanout, &mut state, err.clone());
            }
        }
    }

    /// Hands one item to its session.
    fn dispatch(self: &Arc<Self>, link: &Arc<Link>, item: TaggedSessionItem) {
        let Some(fanout) = lock(&link.sessions).get(&item.tag).and_then(Weak::upgrade) else {
            return;
        };
        let mut state = fanout.stream();
        let current = state
            .on
            .as_ref()
            .is_some_and(|(on, tag)| Arc::ptr_eq(on, link) && *tag == item.tag);
        if !current {
            return;
        }
        match item.item {
            Some(tagged_session_item::Item::Event(event)) => {
                state.last_seq = Some(event.seq);
                // Delivered under the stream's lock: a session opened again
                // elsewhere never interleaves two streams' events.
                fanout.deliver(&event);
            }
            Some(tagged_session_item::Item::Subscribed(subscribed)) => {
                state.last_seq.get_or_insert(subscribed.head_seq);
                state.backoff = FIRST_BACKOFF;
                state.redirects = 0;
                state.subscribed = true;
                if let Some(router) = self.core.router() {
                    router.learn(&fanout.route_key, &link.url);
                }
                fanout.upstream.send_replace(Upstream::Live);
                // Sockets rejoin only now, so every event after their new
                // snapshot reaches them on this stream.
                if std::mem::take(&mut state.resync_pending) {
                    fanout.signal(|room| Outbound::Resync { room });
                }
            }
            Some(tagged_session_item::Item::ResyncNeeded(resync)) => {
                tracing::info!(
                    session = %fanout.key,
                    from_seq = resync.from_seq,
                    head_seq = resync.head_seq,
                    "session stream cannot be resumed; sockets rejoin"
                );
                state.last_seq = None;
                state.resync_pending = true;
                self.reopen_later(&fanout, &mut state);
            }
            Some(tagged_session_item::Item::Refused(refused)) => {
                let owner = (!refused.owner_url.is_empty() && *refused.owner_url != *link.url)
                    .then(|| refused.owner_url.clone());
                match (owner, self.core.router()) {
                    (Some(owner), Some(router)) if state.redirects < MAX_REDIRECTS => {
                        state.redirects += 1;
                        router.learn(&fanout.route_key, &owner);
                        self.open_locked(&fanout, &mut state);
                    }
                    _ => {
                        let err = CoreError::from(refused);
                        tracing::warn!(session = %fanout.key, error = %err, "cannot subscribe to session");
                        state.redirects = 0;
                        self.failed_to_open(&fanout, &mut state, err);
                    }
                }
            }
            // The core closed the tag; closing it here too retires the
            // stream if it was the last.
            Some(tagged_session_item::Item::Ended(_)) | None => {
                self.reopen_later(&fanout, &mut state);
            }
        }
    }
}

/// Reads a stream's responses until it ends (`Ok`) or breaks.
async fn read(
    upstreams: &Weak<Upstreams>,
    link: &Arc<Link>,
    mut responses: tonic::Streaming<meno_proto::SubscribeManyResponse>,
) -> Result<(), tonic::Status> {
    while let Some(response) = responses.message().await? {
        let Some(upstreams) = upstreams.upgrade() else {
            return Ok(());
        };
        for item in response.items {
            upstreams.dispatch(link, item);
        }
    }
    Ok(())
}

/// Opens again, on its owner, every session whose stream is on a replica
/// the router no longer names as its owner.
async fn follow_owners(upstreams: Weak<Upstreams>, mut moves: tokio::sync::watch::Receiver<u64>) {
    while moves.changed().await.is_ok() {
        let Some(upstreams) = upstreams.upgrade() else {
            return;
        };
        let Some(router) = upstreams.core.router() else {
            return;
        };
        let links: Vec<Arc<Link>> = lock(&upstreams.links).values().cloned().collect();
        for link in links {
            let sessions: Vec<Arc<Fanout>> = lock(&link.sessions)
                .values()
                .filter_map(Weak::upgrade)
                .collect();
            for fanout in sessions {
                if router.owner_of(&fanout.route_key).as_deref() == Some(&*link.url) {
                    continue;
                }
                let mut state = fanout.stream();
                // A session not yet answered has no owner to move from.
                let on_link = state.subscribed
                    && state
                        .on
                        .as_ref()
                        .is_some_and(|(on, _)| Arc::ptr_eq(on, &link));
                if on_link {
                    tracing::info!(session = %fanout.key, "session moved to another core replica; re-subscribing");
                    upstreams.open_locked(&fanout, &mut state);
                }
            }
        }
    }
}

/// Counts a stream out of [`crate::metrics::CORE_STREAMS`] when its task ends.
struct StreamGauge;

impl Drop for StreamGauge {
    fn drop(&mut self) {
        crate::metrics::CORE_STREAMS.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fallback_to_per_session_streams_lasts_its_time_then_the_shared_stream_is_tried_again() {
        let now = tokio::time::Instant::now();
        let mut fallback = Fallback::default();
        assert!(!fallback.active(now), "the shared stream is the default");
        fallback.start(now);
        assert!(fallback.active(now));
        assert!(fallback.active(now + FALLBACK_FOR - Duration::from_millis(1)));
        assert!(!fallback.active(now + FALLBACK_FOR));
        // Refused again later: another period from then.
        fallback.start(now + FALLBACK_FOR);
        assert!(fallback.active(now + FALLBACK_FOR + Duration::from_secs(1)));
    }
}
