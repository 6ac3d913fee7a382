//! Session event streams: one session per `Subscribe` stream (for any
//! client), or many sessions on one `SubscribeMany` stream (a bridge's).
//!
//! A `SubscribeMany` stream subscribes to each session it opens exactly as
//! `Subscribe` does (its own bounded buffer at the session's actor, so a
//! session whose subscriber falls behind gets `resync_needed` and no other
//! session waits), and sends whatever its sessions have ready as one
//! response: under load one HTTP/2 frame carries the events of many sessions.

use std::collections::HashMap;
use std::pin::Pin;

use futures_util::stream::{AbortHandle, Abortable, FuturesUnordered, SelectAll};
use futures_util::{FutureExt, Stream, StreamExt};
use meno_proto::{
    event_service_server::EventService, subscribe_many_request, subscribe_response,
    tagged_session_item, OpenSessionStream, ResyncNeeded, SessionStreamEnded, SubscribeManyRequest,
    SubscribeManyResponse, SubscribeRequest, SubscribeResponse, Subscribed, TaggedSessionItem,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{session_key, CoreApi};
use crate::error::CoreError;
use crate::registry::SessionRegistry;
use crate::session::{Command, Delivery};

/// Items one `SubscribeMany` response carries at most.
const MAX_BATCH: usize = 512;

/// Responses queued for a bridge that reads slowly; beyond them the
/// sessions' own buffers fill, and a session that overflows its buffer
/// tells its subscriber to resync.
const RESPONSES_QUEUED: usize = 4;

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<SubscribeResponse, Status>> + Send>>;

#[tonic::async_trait]
impl EventService for CoreApi {
    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        request: Request<SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let request = request.into_inner();
        let key = session_key(request.session.as_ref())?;
        let received = open(&self.registry, key, request.from_seq).await?;
        let stream = ReceiverStream::new(received).map(|delivery| {
            let item = match delivery {
                Delivery::Subscribed { head_seq } => {
                    subscribe_response::Item::Subscribed(Subscribed { head_seq })
                }
                Delivery::Event(event) => subscribe_response::Item::Event((*event).clone()),
                Delivery::Resync { from_seq, head_seq } => {
                    subscribe_response::Item::ResyncNeeded(ResyncNeeded { from_seq, head_seq })
                }
            };
            Ok(SubscribeResponse { item: Some(item) })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type SubscribeManyStream = ReceiverStream<Result<SubscribeManyResponse, Status>>;

    async fn subscribe_many(
        &self,
        request: Request<Streaming<SubscribeManyRequest>>,
    ) -> Result<Response<Self::SubscribeManyStream>, Status> {
        let (responses, received) = mpsc::channel(RESPONSES_QUEUED);
        tokio::spawn(serve_many(
            self.registry.clone(),
            request.into_inner(),
            responses,
        ));
        Ok(Response::new(ReceiverStream::new(received)))
    }
}

/// Subscribes to `key`'s events after `from_seq` (from now on when absent).
async fn open(
    registry: &SessionRegistry,
    key: crate::store::SessionKey,
    from_seq: Option<u64>,
) -> Result<mpsc::Receiver<Delivery>, CoreError> {
    let (deliveries, received) = mpsc::channel(registry.config().subscriber_buffer.max(2));
    registry
        .call(key, |reply| Command::Subscribe {
            from_seq,
            deliveries,
            reply,
        })
        .await?;
    Ok(received)
}

/// One open session of a `SubscribeMany` stream. `generation` tells a
/// session apart from an earlier one the bridge opened under the same tag.
struct OpenSession {
    generation: u64,
    abort: Option<AbortHandle>,
}

/// A session's deliveries, then `None` once its actor dropped them (or the
/// stream closed it).
type Deliveries = Pin<Box<dyn Stream<Item = (u64, u64, Option<Delivery>)> + Send>>;

/// Serves one `SubscribeMany` stream until the bridge ends its requests or
/// stops reading.
async fn serve_many(
    registry: SessionRegistry,
    mut ops: Streaming<SubscribeManyRequest>,
    responses: mpsc::Sender<Result<SubscribeManyResponse, Status>>,
) {
    let mut sessions: HashMap<u64, OpenSession> = HashMap::new();
    let mut generations = 0_u64;
    let mut opening = FuturesUnordered::new();
    let mut streams: SelectAll<Deliveries> = SelectAll::new();
    loop {
        let mut items = Vec::new();
        tokio::select! {
            op = ops.message() => match op {
                Ok(Some(SubscribeManyRequest { op: Some(op) })) => match op {
                    subscribe_many_request::Op::Open(OpenSessionStream { tag, session, from_seq }) => {
                        generations += 1;
                        let generation = generations;
                        if let Some(earlier) = sessions.insert(tag, OpenSession { generation, abort: None }) {
                            earlier.abort.inspect(AbortHandle::abort);
                        }
                        match session_key(session.as_ref()) {
                            Ok(key) => {
                                let registry = registry.clone();
                                opening.push(async move {
                                    (tag, generation, open(&registry, key, from_seq).await)
                                });
                            }
                            Err(err) => {
                                sessions.remove(&tag);
                                items.push(refused(tag, err));
                            }
                        }
                    }
                    subscribe_many_request::Op::Close(tag) => {
                        if let Some(closed) = sessions.remove(&tag) {
                            closed.abort.inspect(AbortHandle::abort);
                        }
                    }
                },
                Ok(Some(SubscribeManyRequest { op: None })) => {}
                // The bridge closed its side, or its connection broke.
                Ok(None) | Err(_) => return,
            },
            Some((tag, generation, opened)) = opening.next() => {
                let current = sessions.get_mut(&tag).filter(|open| open.generation == generation);
                match (current, opened) {
                    (Some(open), Ok(received)) => {
                        let (abort, registration) = AbortHandle::new_pair();
                        open.abort = Some(abort);
                        let deliveries = Abortable::new(ReceiverStream::new(received), registration)
                            .map(move |delivery| (tag, generation, Some(delivery)))
                            .chain(futures_util::stream::once(async move { (tag, generation, None) }));
                        streams.push(Box::pin(deliveries));
                    }
                    (Some(_), Err(err)) => {
                        sessions.remove(&tag);
                        items.push(refused(tag, err));
                    }
                    // Closed (or opened again) before the actor answered.
                    (None, _) => {}
                }
            },
            Some((tag, generation, delivery)) = streams.next() => {
                collect(&mut sessions, &mut items, tag, generation, delivery);
                while items.len() < MAX_BATCH {
                    match streams.next().now_or_never() {
                        Some(Some((tag, generation, delivery))) => {
                            collect(&mut sessions, &mut items, tag, generation, delivery);
                        }
                        _ => break,
                    }
                }
            },
            _ = responses.closed() => return,
        }
        if !items.is_empty()
            && responses
                .send(Ok(SubscribeManyResponse { items }))
                .await
                .is_err()
        {
            return;
        }
    }
}

/// Adds a session's delivery to the response, unless the session was
/// closed; a resync or the end of its deliveries closes it.
fn collect(
    sessions: &mut HashMap<u64, OpenSession>,
    items: &mut Vec<TaggedSessionItem>,
    tag: u64,
    generation: u64,
    delivery: Option<Delivery>,
) {
    if sessions
        .get(&tag)
        .is_none_or(|open| open.generation != generation)
    {
        return;
    }
    let item = match delivery {
        Some(Delivery::Subscribed { head_seq }) => {
            tagged_session_item::Item::Subscribed(Subscribed { head_seq })
        }
        Some(Delivery::Event(event)) => tagged_session_item::Item::Event((*event).clone()),
        Some(Delivery::Resync { from_seq, head_seq }) => {
            if let Some(closed) = sessions.remove(&tag) {
                closed.abort.inspect(AbortHandle::abort);
            }
            tagged_session_item::Item::ResyncNeeded(ResyncNeeded { from_seq, head_seq })
        }
        None => {
            sessions.remove(&tag);
            tagged_session_item::Item::Ended(SessionStreamEnded {})
        }
    };
    items.push(TaggedSessionItem {
        tag,
        item: Some(item),
    });
}

fn refused(tag: u64, err: CoreError) -> TaggedSessionItem {
    TaggedSessionItem {
        tag,
        item: Some(tagged_session_item::Item::Refused(err.into())),
    }
}
