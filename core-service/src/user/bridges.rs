//! The bridges' user-event streams (`SubscribeUsers`) and their interest
//! (`SetInterest`): one bounded stream per bridge id, and the users whose
//! events it gets.
//!
//! This map holds channels and the index of who declared interest in whom,
//! never a user's state: each user actor keeps its own set of interested
//! bridges, told by the `notify` callbacks below. Those are called with the
//! map locked, so the interest changes of one bridge reach each user actor
//! in the order they were made here (a replaced stream's interest is
//! withdrawn before the new stream's is declared).
//!
//! A delivery never waits: a stream whose buffer is full is ended (after the
//! items already in it) with `RESOURCE_EXHAUSTED`, and its interest is
//! withdrawn; the bridge subscribes again and re-declares it (`replace`).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Context, Poll};

use futures_util::Stream;
use meno_proto::{user_stream_item, UserStreamItem, UsersSubscribed};
use tokio::sync::mpsc;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tonic::Status;

use super::UserKey;
use crate::error::CoreError;

/// Why a bridge's stream ended before its bridge hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EndReason {
    /// A newer `SubscribeUsers` of the same bridge id took its place.
    Replaced,
    /// Its buffer overflowed.
    FellBehind,
}

/// Tells one user actor that a bridge is (or is no longer) interested.
pub(crate) type Notify<'a> = &'a mut dyn FnMut(&UserKey, bool);

/// One bridge's live stream.
#[derive(Debug)]
struct Bridge {
    generation: u64,
    sender: mpsc::Sender<UserStreamItem>,
    ending: Arc<OnceLock<EndReason>>,
    interest: HashSet<UserKey>,
}

impl Bridge {
    /// Ends the stream (the receiver drains what is buffered, then sees
    /// `reason`) and withdraws its interest from every user.
    fn end(self, reason: EndReason, notify: Notify<'_>) {
        let _ = self.ending.set(reason);
        for user in &self.interest {
            notify(user, false);
        }
    }
}

/// Every bridge's stream, by bridge id.
#[derive(Debug, Default)]
pub(crate) struct BridgeStreams {
    bridges: Mutex<HashMap<String, Bridge>>,
    next_generation: AtomicU64,
}

/// A stream just opened: what the `SubscribeUsers` response reads.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) generation: u64,
    receiver: mpsc::Receiver<UserStreamItem>,
    ending: Arc<OnceLock<EndReason>>,
}

impl BridgeStreams {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Bridge>> {
        // A poisoned map only means a panic elsewhere while it was held; the
        // channels and sets in it are still consistent.
        self.bridges
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Opens `bridge_id`'s stream, ending the one it replaces (whose interest
    /// is withdrawn: the bridge declares it anew on this stream). Its first
    /// item is `subscribed`.
    pub(crate) fn open(&self, bridge_id: &str, buffer: usize, notify: Notify<'_>) -> Opened {
        let (sender, receiver) = mpsc::channel(buffer.max(2));
        let subscribed = UserStreamItem {
            item: Some(user_stream_item::Item::Subscribed(UsersSubscribed {})),
        };
        // A fresh channel has room for one item.
        let _ = sender.try_send(subscribed);
        let ending = Arc::new(OnceLock::new());
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let bridge = Bridge {
            generation,
            sender,
            ending: Arc::clone(&ending),
            interest: HashSet::new(),
        };
        let mut bridges = self.lock();
        if let Some(old) = bridges.insert(bridge_id.to_owned(), bridge) {
            old.end(EndReason::Replaced, notify);
        }
        Opened {
            generation,
            receiver,
            ending,
        }
    }

    /// Changes which users `bridge_id`'s stream gets: `remove` first, then
    /// `add`; with `replace`, `add` is the whole interest. A bridge without a
    /// live stream must subscribe first.
    pub(crate) fn set_interest(
        &self,
        bridge_id: &str,
        add: Vec<UserKey>,
        remove: Vec<UserKey>,
        replace: bool,
        notify: Notify<'_>,
    ) -> Result<(), CoreError> {
        let mut bridges = self.lock();
        let bridge = bridges.get_mut(bridge_id).ok_or_else(|| {
            CoreError::conflict(format!(
                "bridge {bridge_id:?} has no SubscribeUsers stream; subscribe first"
            ))
        })?;
        let dropped: Vec<UserKey> = if replace {
            let wanted: HashSet<&UserKey> = add.iter().collect();
            bridge
                .interest
                .iter()
                .filter(|user| !wanted.contains(user))
                .cloned()
                .collect()
        } else {
            remove
        };
        for user in dropped {
            if bridge.interest.remove(&user) {
                notify(&user, false);
            }
        }
        for user in add {
            if !bridge.interest.contains(&user) {
                notify(&user, true);
                bridge.interest.insert(user);
            }
        }
        Ok(())
    }

    /// Hands `item` to `bridge_id`'s stream without waiting. A stream that
    /// cannot take it is ended and its interest withdrawn. False when the
    /// bridge has no live stream (any more).
    pub(crate) fn deliver(
        &self,
        bridge_id: &str,
        item: UserStreamItem,
        notify: Notify<'_>,
    ) -> bool {
        let mut bridges = self.lock();
        let Some(bridge) = bridges.get(bridge_id) else {
            return false;
        };
        if bridge.sender.try_send(item).is_ok() {
            return true;
        }
        // Full (or its reader is gone, and its guard is on the way to close
        // it): either way this stream no longer gets events.
        crate::metrics::USER_STREAMS_DROPPED.inc();
        if let Some(bridge) = bridges.remove(bridge_id) {
            tracing::warn!(
                bridge = bridge_id,
                "bridge's user stream fell behind; ending it"
            );
            bridge.end(EndReason::FellBehind, notify);
        }
        false
    }

    /// Forgets stream `generation` of `bridge_id` (its reader went away), if
    /// it is still the bridge's current one.
    pub(crate) fn close(&self, bridge_id: &str, generation: u64, notify: Notify<'_>) {
        let mut bridges = self.lock();
        if bridges
            .get(bridge_id)
            .is_some_and(|bridge| bridge.generation == generation)
        {
            if let Some(bridge) = bridges.remove(bridge_id) {
                for user in &bridge.interest {
                    notify(user, false);
                }
            }
        }
    }

    /// Whether a stream is live whose id, up to a `#`, is `bridge_id`.
    pub(crate) fn is_live(&self, bridge_id: &str) -> bool {
        self.lock().keys().any(|stream_id| {
            stream_id
                .split_once('#')
                .map_or(stream_id.as_str(), |(id, _)| id)
                == bridge_id
        })
    }

    /// How many bridges have a live stream.
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The `SubscribeUsers` response: the items of one bridge's stream, then why
/// it ended (a replacement or an overflow) as a status, or `UNAVAILABLE` when
/// the core drains. Dropping it (the bridge hung up) runs `on_close`.
pub(crate) struct UserStream {
    receiver: mpsc::Receiver<UserStreamItem>,
    ending: Arc<OnceLock<EndReason>>,
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    on_close: Option<Box<dyn FnOnce() + Send>>,
    done: bool,
}

impl UserStream {
    pub(crate) fn new(
        opened: Opened,
        shutdown: tokio_util::sync::CancellationToken,
        on_close: impl FnOnce() + Send + 'static,
    ) -> Self {
        Self {
            receiver: opened.receiver,
            ending: opened.ending,
            shutdown: Box::pin(shutdown.cancelled_owned()),
            on_close: Some(Box::new(on_close)),
            done: false,
        }
    }
}

impl std::fmt::Debug for UserStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStream")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl Stream for UserStream {
    type Item = Result<UserStreamItem, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.receiver.poll_recv(cx) {
            Poll::Ready(Some(item)) => return Poll::Ready(Some(Ok(item))),
            Poll::Ready(None) => {
                self.done = true;
                let status = self.ending.get().map(|reason| match reason {
                    EndReason::Replaced => Status::aborted(
                        "replaced by a newer SubscribeUsers stream of this bridge id",
                    ),
                    EndReason::FellBehind => Status::resource_exhausted(
                        "the bridge fell behind its user stream; subscribe again and \
                         re-declare the interest with SetInterest(replace)",
                    ),
                });
                return Poll::Ready(status.map(Err));
            }
            Poll::Pending => {}
        }
        if self.shutdown.as_mut().poll(cx).is_ready() {
            self.done = true;
            return Poll::Ready(Some(Err(Status::unavailable("the core is shutting down"))));
        }
        Poll::Pending
    }
}

impl Drop for UserStream {
    fn drop(&mut self) {
        if let Some(on_close) = self.on_close.take() {
            on_close();
        }
    }
}
