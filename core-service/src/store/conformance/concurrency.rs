//! Checks under concurrent writers (what group commit must get right).

use futures_util::future::join_all;
use meno_proto::ChatMessage;

use super::fixtures::{key, load, message, presence, seqs, OrFail};
use super::CheckResult;
use crate::store::{SessionWrite, Store};

/// 200 concurrent writers, 5 sequential batches each, half on sessions of
/// their own and half on one shared session: every write is readable after.
pub async fn concurrent_writes_are_all_durable(store: &dyn Store, prefix: &str) -> CheckResult {
    const WRITERS: u64 = 200;
    const WRITES: u64 = 5;
    let shared = key(prefix, "concurrent-shared");
    let own = |writer: u64| key(prefix, &format!("concurrent-{writer}"));
    let run_writer = |writer: u64| {
        let (key, shared) = (own(writer), shared.clone());
        async move {
            for n in 0..WRITES {
                let (key, seq) = if writer.is_multiple_of(2) {
                    (&key, n + 1)
                } else {
                    (&shared, writer * WRITES + n + 1)
                };
                let batch = SessionWrite {
                    seq_mark: Some(seq),
                    messages: vec![message(seq, &format!("w{writer}-{n}"), "concurrent")],
                    presence: vec![presence(&format!("p{writer}"), "Writer", n % 2 == 0)],
                    ..SessionWrite::default()
                };
                store
                    .write_session(key, batch)
                    .await
                    .or_fail(&format!("writer {writer}"))?;
            }
            Ok::<(), String>(())
        }
    };
    for result in join_all((0..WRITERS).map(run_writer)).await {
        result?;
    }

    for writer in (0..WRITERS).step_by(2) {
        let key = own(writer);
        let history = store.chat_after(&key, 0, 100).await.or_fail("chat_after")?;
        ensure_eq!(
            seqs(&history),
            (1..=WRITES).collect::<Vec<_>>(),
            "history of {key}"
        );
        ensure_eq!(
            load(store, &key).await?.seq_mark,
            WRITES,
            "seq_mark of {key}"
        );
    }
    let mut history = Vec::new();
    loop {
        let after = history.last().map_or(0, |m: &ChatMessage| m.seq);
        let page = store
            .chat_after(&shared, after, 128)
            .await
            .or_fail("chat_after")?;
        if page.is_empty() {
            break;
        }
        history.extend(page);
    }
    let expected: Vec<u64> = (1..WRITERS)
        .step_by(2)
        .flat_map(|writer| (0..WRITES).map(move |n| writer * WRITES + n + 1))
        .collect();
    ensure_eq!(seqs(&history), expected, "shared history");
    let record = load(store, &shared).await?;
    ensure_eq!(
        record.seq_mark,
        expected.last().copied().unwrap_or(0),
        "shared seq_mark"
    );
    ensure_eq!(
        record.participants.len(),
        (WRITERS / 2) as usize,
        "shared participants"
    );
    Ok(())
}
