//! Checks of chat history: paging both ways and client_ref deduplication.

use meno_proto::ChatMessage;

use super::fixtures::{alice_refs, key, message, messages, seqs, write, OrFail};
use super::CheckResult;
use crate::store::{ChatRef, SessionKey, Store};

/// `chat_page` pages newest first with a `before_seq` cursor, over gaps in
/// seq, and honours `limit`.
pub async fn chat_page_pages_newest_first(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "chat-page");
    let all = write_history(store, &key).await?;
    let mut newest_first = all.clone();
    newest_first.reverse();

    let mut pages = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .chat_page(&key, cursor, 10)
            .await
            .or_fail("chat_page")?;
        ensure!(page.len() <= 10, "page of {} over limit 10", page.len());
        let Some(last) = page.last() else { break };
        cursor = Some(last.seq);
        pages.push(page);
        ensure!(pages.len() <= 4, "paging does not end");
    }
    ensure_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5],
        "page sizes"
    );
    ensure_eq!(pages.concat(), newest_first, "pages, concatenated");

    let cases = [
        (Some(31), 3, vec![30, 28, 26]),
        (Some(2), 10, vec![]),
        (Some(0), 10, vec![]),
    ];
    for (before_seq, limit, expected) in cases {
        let page = store
            .chat_page(&key, before_seq, limit)
            .await
            .or_fail("chat_page")?;
        ensure_eq!(
            seqs(&page),
            expected,
            "chat_page before {before_seq:?} limit {limit}"
        );
    }
    let empty = store.chat_page(&key, None, 0).await.or_fail("chat_page")?;
    ensure!(
        empty.is_empty(),
        "limit 0 returned {} messages",
        empty.len()
    );
    let everything = store
        .chat_page(&key, None, 1000)
        .await
        .or_fail("chat_page")?;
    ensure_eq!(everything, newest_first, "limit above the count");
    Ok(())
}

/// `chat_after` pages oldest first from a seq, over gaps, honouring `limit`.
pub async fn chat_after_pages_oldest_first(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "chat-after");
    let all = write_history(store, &key).await?;

    let mut pages = Vec::new();
    let mut cursor = 0;
    loop {
        let page = store
            .chat_after(&key, cursor, 10)
            .await
            .or_fail("chat_after")?;
        let Some(last) = page.last() else { break };
        cursor = last.seq;
        pages.push(page);
        ensure!(pages.len() <= 4, "paging does not end");
    }
    ensure_eq!(
        pages.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![10, 10, 5],
        "page sizes"
    );
    ensure_eq!(pages.concat(), all, "pages, concatenated");

    let cases = [
        (31, 3, vec![32, 34, 36]),
        (50, 10, vec![]),
        (u64::MAX, 10, vec![]),
    ];
    for (after_seq, limit, expected) in cases {
        let page = store
            .chat_after(&key, after_seq, limit)
            .await
            .or_fail("chat_after")?;
        ensure_eq!(
            seqs(&page),
            expected,
            "chat_after {after_seq} limit {limit}"
        );
    }
    let empty = store.chat_after(&key, 0, 0).await.or_fail("chat_after")?;
    ensure!(
        empty.is_empty(),
        "limit 0 returned {} messages",
        empty.len()
    );
    Ok(())
}

/// A message whose client_ref is already stored is not stored again (the
/// first wins, in one batch or across batches); an empty client_ref never
/// deduplicates; `chat_by_client_refs` finds each stored message once.
pub async fn duplicate_client_ref_is_stored_once(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "client-ref");
    write(store, &key, messages(vec![message(1, "r1", "first")])).await?;
    write(store, &key, messages(vec![message(2, "r1", "retry")])).await?;
    let batch = vec![
        message(3, "r2", "first"),
        message(4, "r2", "retry"),
        message(5, "", "no ref"),
        message(6, "", "no ref"),
    ];
    write(store, &key, messages(batch)).await?;

    let history = store.chat_after(&key, 0, 100).await.or_fail("chat_after")?;
    ensure_eq!(seqs(&history), vec![1, 3, 5, 6], "stored seqs");
    let refs = alice_refs(&["r2", "r1", "unknown", "", "r1"]);
    let mut found = store
        .chat_by_client_refs(&key, &refs)
        .await
        .or_fail("refs")?;
    found.sort_by_key(|m| m.seq);
    ensure_eq!(
        found,
        vec![message(1, "r1", "first"), message(3, "r2", "first")],
        "found"
    );
    Ok(())
}

/// The same client_ref from two senders names two messages (nobody blocks
/// another's message by guessing its id); each sender's retry still dedupes.
pub async fn client_ref_is_scoped_by_sender(store: &dyn Store, prefix: &str) -> CheckResult {
    let key = key(prefix, "ref-by-sender");
    let from = |seq: u64, sender: &str, content: &str| ChatMessage {
        sender_id: sender.to_owned(),
        ..message(seq, "msg-1", content)
    };
    write(store, &key, messages(vec![from(1, "ann", "ann's")])).await?;
    write(
        store,
        &key,
        messages(vec![from(2, "bob", "bob's"), from(3, "bob", "bob's retry")]),
    )
    .await?;
    write(store, &key, messages(vec![from(4, "ann", "ann's retry")])).await?;
    let history = store.chat_after(&key, 0, 100).await.or_fail("chat_after")?;
    ensure_eq!(seqs(&history), vec![1, 2], "stored seqs");
    let mut found = store
        .chat_by_client_refs(
            &key,
            &[
                ChatRef::new("bob", "msg-1"),
                ChatRef::new("ann", "msg-1"),
                ChatRef::new("carol", "msg-1"),
            ],
        )
        .await
        .or_fail("refs")?;
    found.sort_by_key(|m| m.seq);
    ensure_eq!(
        found,
        vec![from(1, "ann", "ann's"), from(2, "bob", "bob's")],
        "found by sender"
    );
    Ok(())
}

/// Writes 25 messages with seqs 2, 4, .., 50 (gaps on purpose) in three
/// batches, newest batch first; returns them oldest first.
async fn write_history(store: &dyn Store, key: &SessionKey) -> Result<Vec<ChatMessage>, String> {
    let all: Vec<ChatMessage> = (1..=25)
        .map(|n| message(n * 2, &format!("h{n}"), &format!("message {n}")))
        .collect();
    for chunk in all.rchunks(10) {
        write(store, key, messages(chunk.to_vec())).await?;
    }
    Ok(all)
}
