//! Group commit for the embedded stores (redb and fjall): one writer thread
//! takes every request queued (up to [`MAX_BATCH`]), hands them to its engine
//! to apply and make durable at once (one fsync for all), and only then
//! replies to each caller. The engine rejects a request alone (a lease
//! conflict, a corrupt row) before any of its writes are made; a failure of
//! the engine itself fails the whole batch.

use tokio::sync::{mpsc, oneshot};

use crate::store::{SessionKey, SessionWrite, StoreError};

/// At most this many requests share one commit, so one commit stays bounded
/// in size and the first caller in a burst is not starved.
pub(crate) const MAX_BATCH: usize = 1024;

/// How many write requests may wait for the writer before callers wait to
/// enqueue; bounds memory when the disk falls behind.
pub(crate) const QUEUE_CAPACITY: usize = 4096;

/// One `write_session` call waiting for the writer.
#[derive(Debug)]
pub(crate) struct WriteRequest {
    pub(crate) key: SessionKey,
    pub(crate) write: SessionWrite,
    pub(crate) reply: oneshot::Sender<Result<(), StoreError>>,
    /// The caller's span: the commit that serves it joins its trace.
    pub(crate) span: tracing::Span,
}

/// What an engine's commit of one batch decided: one outcome per request, in
/// order (`Ok` if applied and durable, else why it was rejected). `Err` means
/// nothing of the batch can be counted on.
pub(crate) type BatchOutcomes = Result<Vec<Result<(), StoreError>>, StoreError>;

/// Serves requests until every sender is gone, then returns; what was queued
/// before the channel closed is still committed. `commit` applies one batch;
/// it runs inside a span named `span_name` ([`commit_span`]).
pub(crate) fn run(
    mut queue: mpsc::Receiver<WriteRequest>,
    span_name: SpanName,
    mut commit: impl FnMut(&[WriteRequest]) -> BatchOutcomes,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        gather(&mut queue, &mut batch);
        let span = commit_span(span_name, &batch);
        let _entered = span.enter();
        crate::metrics::STORE_GROUP_COMMITS.inc();
        crate::metrics::STORE_GROUP_COMMIT_REQUESTS.inc_by(batch.len() as u64);
        match commit(&batch) {
            Ok(outcomes) => {
                for (request, outcome) in batch.drain(..).zip(outcomes) {
                    // A caller that stopped waiting is no reason to fail the others.
                    let _ = request.reply.send(outcome);
                }
            }
            Err(err) => {
                tracing::error!(error = %err, requests = batch.len(), "store batch failed");
                for request in batch.drain(..) {
                    let _ = request.reply.send(Err(same_error(&err)));
                }
            }
        }
    }
}

/// How long the writer waits for more requests once some are queued, while
/// they keep coming, and at most in all: an `fsync` costs far more CPU than a
/// request, so a group gathered over a few hundred microseconds is cheaper
/// per request than one committed the moment its first request arrives.
const LINGER_STEP: std::time::Duration = std::time::Duration::from_micros(250);
const LINGER_MAX: std::time::Duration = std::time::Duration::from_millis(2);

/// Takes every queued request into `batch` (up to [`MAX_BATCH`]), and keeps
/// taking for as long as new ones arrive within each [`LINGER_STEP`], up to
/// [`LINGER_MAX`]. A lone request waits one step.
fn gather(queue: &mut mpsc::Receiver<WriteRequest>, batch: &mut Vec<WriteRequest>) {
    let started = std::time::Instant::now();
    loop {
        let before = batch.len();
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        let arrived = batch.len() > before || before == 1;
        if batch.len() >= MAX_BATCH || !arrived || started.elapsed() >= LINGER_MAX {
            return;
        }
        std::thread::sleep(LINGER_STEP);
    }
}

/// The name of the span of one group commit, by engine.
#[derive(Debug, Clone, Copy)]
pub(crate) enum SpanName {
    /// `redb.group_commit`
    Redb,
    /// `fjall.group_commit`
    Fjall,
}

/// One commit serves many callers, often of several traces: its span is a
/// child of the first caller's and linked to the others'.
fn commit_span(name: SpanName, batch: &[WriteRequest]) -> tracing::Span {
    let mut traced = batch.iter().filter_map(|request| request.span.id());
    let parent = traced.next();
    let requests = batch.len();
    let span = match name {
        SpanName::Redb => tracing::info_span!(parent: parent, "redb.group_commit", requests),
        SpanName::Fjall => tracing::info_span!(parent: parent, "fjall.group_commit", requests),
    };
    for other in traced {
        span.follows_from(other);
    }
    span
}

/// The same error again, for every caller of a failed batch.
pub(crate) fn same_error(err: &StoreError) -> StoreError {
    match err {
        StoreError::Unavailable(detail) => StoreError::Unavailable(detail.clone()),
        StoreError::Conflict(detail) => StoreError::Conflict(detail.clone()),
        StoreError::Deposed(detail) => StoreError::Deposed(detail.clone()),
        StoreError::Corrupt(detail) => StoreError::Corrupt(detail.clone()),
        StoreError::Backend(detail) => StoreError::Backend(detail.clone()),
    }
}

/// The error for a caller whose writer thread has stopped.
pub(crate) fn writer_gone() -> StoreError {
    StoreError::Unavailable("embedded store writer has stopped".to_owned())
}

/// Sends `write` to the writer behind `requests` and waits for its commit.
pub(crate) async fn submit(
    requests: Option<&mpsc::Sender<WriteRequest>>,
    key: &SessionKey,
    write: SessionWrite,
) -> Result<(), StoreError> {
    if write.is_empty() {
        return Ok(());
    }
    let requests = requests.ok_or_else(writer_gone)?;
    let (reply, replied) = oneshot::channel();
    let request = WriteRequest {
        key: key.clone(),
        write,
        reply,
        span: tracing::Span::current(),
    };
    requests.send(request).await.map_err(|_| writer_gone())?;
    replied.await.map_err(|_| writer_gone())?
}
