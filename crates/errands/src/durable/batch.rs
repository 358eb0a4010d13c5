//! [`Batcher`]: one task that commits the writes waiting together. A queue's writes are
//! small and frequent — an enqueue per request, a completion per job — and each commit waits
//! for the database's log to reach the disk. The batcher takes the writes waiting at the
//! moment (up to [`BATCH`]) and commits them in one transaction, so under load one commit
//! serves many jobs; alone, a write is its own transaction, without delay.

use tokio::sync::{mpsc, oneshot};

use super::store::StoreError;

/// The most writes committed together.
pub(crate) const BATCH: usize = 64;

/// How many writes may wait for the batcher; more wait to be queued.
const QUEUE: usize = 1024;

type Reply<O> = oneshot::Sender<Result<O, StoreError>>;

/// The results of one committed batch, in the order of its writes; `Err` when nothing of
/// the batch was written.
pub(crate) type Committed<O> = Result<Vec<Result<O, StoreError>>, StoreError>;

/// The sending side of a batcher of writes `I`, each answered with an `O`.
#[derive(Debug)]
pub(crate) struct Batcher<I, O>(mpsc::Sender<(I, Reply<O>)>);

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Batcher(self.0.clone())
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Starts the batcher on the current tokio runtime; `commit` writes one batch in one
    /// transaction. It stops when its last sender is dropped.
    pub(crate) fn start<F>(mut commit: impl FnMut(Vec<I>) -> F + Send + 'static) -> Self
    where
        F: Future<Output = Committed<O>> + Send,
    {
        let (tx, mut rx) = mpsc::channel::<(I, Reply<O>)>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let (writes, replies): (Vec<I>, Vec<Reply<O>>) = batch.drain(..).unzip();
                answer(replies, commit(writes).await);
            }
        });
        Batcher(tx)
    }

    /// Writes `write` with the writes waiting beside it.
    pub(crate) async fn write(&self, write: I) -> Result<O, StoreError> {
        let (reply, done) = oneshot::channel();
        let gone = || StoreError::Database("the job store's writer stopped".into());
        self.0.send((write, reply)).await.map_err(|_| gone())?;
        done.await.unwrap_or_else(|_| Err(gone()))
    }
}

/// Answers each write of a batch. When nothing was written, each fails with the database's
/// error: the first with the error itself, the others with its text.
fn answer<O>(replies: Vec<Reply<O>>, committed: Committed<O>) {
    match committed {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
        }
        Err(error) => {
            let text = crate::chain::line(&error);
            let mut error = Some(error);
            for reply in replies {
                let error = error
                    .take()
                    .unwrap_or_else(|| StoreError::Database(text.clone().into()));
                let _ = reply.send(Err(error));
            }
        }
    }
}
