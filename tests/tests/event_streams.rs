//! `EventService.SubscribeMany`, the stream a bridge takes every session's
//! events on: sessions opened and closed by tag on one stream, each
//! session's items tagged and in seq order, refusals per session. (One test
//! in this binary: it reads the bridge's process-wide stream gauge.)

use std::time::Duration;

use meno_proto::event_service_client::EventServiceClient;
use meno_proto::{
    subscribe_many_request, tagged_session_item, OpenSessionStream, SessionRef,
    SubscribeManyRequest, TaggedSessionItem,
};
use meno_tests::{session_id, Mode, System};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn open(tag: u64, session: &str) -> SubscribeManyRequest {
    SubscribeManyRequest {
        op: Some(subscribe_many_request::Op::Open(OpenSessionStream {
            tag,
            session: Some(SessionRef {
                tenant: "default".into(),
                session_id: session.into(),
            }),
            from_seq: None,
        })),
    }
}

/// A `SubscribeMany` response stream, read item by item.
struct Items {
    stream: tonic::Streaming<meno_proto::SubscribeManyResponse>,
    pending: std::collections::VecDeque<TaggedSessionItem>,
}

impl Items {
    /// Reads items until one matches, adding every item read on the way
    /// (the match too) to `seen`.
    async fn until(
        &mut self,
        seen: &mut Vec<TaggedSessionItem>,
        what: &str,
        done: impl Fn(&TaggedSessionItem) -> bool,
    ) -> TaggedSessionItem {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            while let Some(item) = self.pending.pop_front() {
                seen.push(item.clone());
                if done(&item) {
                    return item;
                }
            }
            let response = tokio::time::timeout_at(deadline, self.stream.message())
                .await
                .unwrap_or_else(|_| panic!("no {what} within 10 s; items so far: {seen:?}"))
                .expect("the stream stays up")
                .expect("the stream does not end");
            self.pending.extend(response.items);
        }
    }
}

impl Items {
    /// The tags the chat messages of these contents came on, in the order
    /// of `contents`, whatever order they arrive in.
    async fn tags_of(&mut self, seen: &mut Vec<TaggedSessionItem>, contents: &[&str]) -> Vec<u64> {
        let mut tags = vec![None; contents.len()];
        while tags.iter().any(Option::is_none) {
            let item = self
                .until(seen, &format!("messages {contents:?}"), |item| {
                    chat_content(item).is_some_and(|content| contents.contains(&content))
                })
                .await;
            let content = chat_content(&item).unwrap_or_default();
            if let Some(at) = contents.iter().position(|wanted| *wanted == content) {
                tags[at] = Some(item.tag);
            }
        }
        tags.into_iter().flatten().collect()
    }
}

fn chat_content(item: &TaggedSessionItem) -> Option<&str> {
    match &item.item {
        Some(tagged_session_item::Item::Event(event)) => match &event.kind {
            Some(meno_proto::session_event::Kind::ChatMessage(message)) => {
                Some(message.content.as_str())
            }
            _ => None,
        },
        _ => None,
    }
}

fn is_subscribed(item: &TaggedSessionItem, tag: u64) -> bool {
    item.tag == tag && matches!(item.item, Some(tagged_session_item::Item::Subscribed(_)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_stream_carries_several_sessions_each_by_its_tag() {
    let system = System::start(Mode::Split).await;
    let core = system.core_addr.expect("split mode has a core address");
    let (first, second) = (session_id("many-a"), session_id("many-b"));
    let mut ann = system.join(&first, "ann", "teacher").await;
    ann.expect_start().await;
    let mut bob = system.join(&second, "bob", "teacher").await;
    bob.expect_start().await;
    // The bridge streams both sessions on one stream to the core.
    assert_eq!(meno_bridge::metrics::CORE_STREAMS.get(), 1);

    let mut events = EventServiceClient::connect(format!("http://{core}"))
        .await
        .unwrap();
    let (requests, ops) = mpsc::channel(16);
    requests.send(open(1, &first)).await.unwrap();
    requests.send(open(2, &second)).await.unwrap();
    // An invalid session is refused alone, with the code a unary call
    // would get.
    requests.send(open(3, "")).await.unwrap();
    let mut stream = Items {
        stream: events
            .subscribe_many(ReceiverStream::new(ops))
            .await
            .unwrap()
            .into_inner(),
        pending: Default::default(),
    };
    let mut seen = Vec::new();
    // The sessions answer in any order.
    let mut subscribed = std::collections::HashSet::new();
    while subscribed.len() < 2 {
        let item = stream
            .until(&mut seen, "tags 1 and 2 subscribed", |item| {
                is_subscribed(item, 1) || is_subscribed(item, 2)
            })
            .await;
        subscribed.insert(item.tag);
    }

    ann.chat("a-1", "in the first").await;
    bob.chat("b-1", "in the second").await;
    // Sessions are not ordered with each other: take both, in any order.
    let tags = stream
        .tags_of(&mut seen, &["in the first", "in the second"])
        .await;
    assert_eq!(tags, [1, 2]);
    assert!(
        seen.iter().any(|item| item.tag == 3
            && matches!(&item.item, Some(tagged_session_item::Item::Refused(refused)) if refused.code == "InvalidArgument")),
        "the invalid session is refused with InvalidArgument: {seen:?}"
    );

    // Closing tag 1 stops the first session's events on it; the same
    // session opened under a new tag gets them there. Requests are served
    // in order, so once tag 4 answers, tag 1 is closed.
    requests
        .send(SubscribeManyRequest {
            op: Some(subscribe_many_request::Op::Close(1)),
        })
        .await
        .unwrap();
    requests.send(open(4, &first)).await.unwrap();
    stream
        .until(&mut seen, "tag 4 subscribed", |item| is_subscribed(item, 4))
        .await;
    seen.clear();
    ann.chat("a-2", "after the close").await;
    bob.chat("b-2", "still streaming").await;
    let tags = stream
        .tags_of(&mut seen, &["after the close", "still streaming"])
        .await;
    assert_eq!(tags, [4, 2]);
    assert!(
        seen.iter().all(|item| item.tag != 1),
        "nothing arrives on a closed tag: {seen:?}"
    );

    // Each session's events come in seq order on its tag.
    for _ in 0..20 {
        ann.chat(&format!("burst-{}", rand_suffix()), "burst").await;
    }
    seen.clear();
    let mut seqs = Vec::new();
    while seqs.len() < 20 {
        let item = stream
            .until(&mut seen, "the burst", |item| {
                chat_content(item) == Some("burst")
            })
            .await;
        assert_eq!(item.tag, 4);
        if let Some(tagged_session_item::Item::Event(event)) = item.item {
            seqs.push(event.seq);
        }
    }
    assert!(
        seqs.windows(2).all(|pair| pair[0] < pair[1]),
        "seqs in order: {seqs:?}"
    );
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed).to_string()
}
