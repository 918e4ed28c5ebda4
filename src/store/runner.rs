//! A thread that owns one store connection ([`Db`]) and runs jobs for the event loop.
//!
//! In [`Mode::Batch`] (the writer) every job queued while the previous batch was committing
//! runs in one write transaction ([`Db::begin_write_for`]), each inside its own savepoint (a failing job
//! rolls back alone), and results are handed back only after `COMMIT` returned: an ack built
//! from a result is therefore never sent for a write the database could still lose (beyond
//! what the `synchronous` setting allows). One commit (one fsync with `synchronous=FULL`) per
//! batch is what makes durable writes cheap under load: group commit.
//!
//! Each job says whose rows it touches ([`Scope`]); the batch's transaction locks the
//! businesses of its jobs (or everything, if one job may touch anything), so on PostgreSQL
//! writers of different businesses, on every worker and node, do not wait for each other.
//!
//! In [`Mode::Plain`] jobs run one by one outside any explicit transaction: for slow work
//! that must not hold the write lock (argon2 verification, file I/O).
//!
//! The queue is bounded ([`Runner::submit`] refuses when it is full) and results come back
//! through a channel; the loop is woken once per batch.

use super::db::{Db, Kind, WriteLock};
use super::{Result, StoreError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Pause after each commit so writers in other worker processes get the lock.
const COMMIT_GAP: std::time::Duration = std::time::Duration::from_millis(1);

/// Most jobs folded into one transaction.
const MAX_BATCH: usize = 512;

/// How a runner executes its jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Group commit: one IMMEDIATE transaction per batch, a savepoint per job.
    Batch,
    /// One job at a time, autocommit.
    Plain,
}

/// The work of a job, run on the store thread.
pub(crate) type Work<D> = Box<dyn FnOnce(&Db) -> Result<D> + Send>;
/// Turns a failure into the result the loop receives (so every job gets exactly one answer).
pub(crate) type Fail<D> = Box<dyn FnOnce(StoreError) -> D + Send>;

/// Whose rows a job touches, for the lock of the writer's transaction (plain runners run
/// without one and ignore it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scope {
    /// One business's (its id).
    Business(String),
    /// Any: the batch waits for every other writer, and they for it.
    All,
}

struct Job<D> {
    scope: Scope,
    work: Work<D>,
    fail: Fail<D>,
}

/// Handle on a store thread.
pub(crate) struct Runner<D> {
    tx: Option<SyncSender<Job<D>>>,
    rx: Receiver<D>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Jobs queued whose answer has not been taken yet (each job answers exactly once).
    in_flight: std::cell::Cell<usize>,
}

/// The job queue is full (or the thread is gone): the request is refused, not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Busy;

impl<D: Send + 'static> Runner<D> {
    /// Start a thread that owns `conn`; `wake` is called after each batch of results.
    pub(crate) fn spawn(
        name: &str,
        conn: Db,
        mode: Mode,
        capacity: usize,
        wake: Arc<dyn Fn() + Send + Sync>,
    ) -> std::io::Result<Runner<D>> {
        let (tx, jobs) = mpsc::sync_channel::<Job<D>>(capacity);
        let (done, rx) = mpsc::channel::<D>();
        let thread =
            std::thread::Builder::new()
                .name(name.to_string())
                .spawn(move || match mode {
                    Mode::Batch => batch_loop(&conn, &jobs, &done, &*wake),
                    Mode::Plain => plain_loop(&conn, &jobs, &done, &*wake),
                })?;
        Ok(Runner {
            tx: Some(tx),
            rx,
            thread: Some(thread),
            in_flight: std::cell::Cell::new(0),
        })
    }

    /// Queue a job touching `scope`; `fail` builds its answer if it errs or its batch does
    /// not commit.
    pub(crate) fn submit(
        &self,
        scope: Scope,
        work: impl FnOnce(&Db) -> Result<D> + Send + 'static,
        fail: impl FnOnce(StoreError) -> D + Send + 'static,
    ) -> std::result::Result<(), Busy> {
        let job = Job {
            scope,
            work: Box::new(work),
            fail: Box::new(fail),
        };
        match self.tx.as_ref().map(|t| t.try_send(job)) {
            Some(Ok(())) => {
                self.in_flight.set(self.in_flight.get() + 1);
                Ok(())
            }
            Some(Err(TrySendError::Full(_) | TrySendError::Disconnected(_))) | None => Err(Busy),
        }
    }

    /// A finished job's answer, if any.
    pub(crate) fn try_recv(&self) -> Option<D> {
        let d = self.rx.try_recv().ok();
        if d.is_some() {
            self.in_flight.set(self.in_flight.get().saturating_sub(1));
        }
        d
    }

    /// Jobs submitted whose answers have not been taken with [`Self::try_recv`] yet.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Stop taking jobs, let the queued ones finish, and wait for the thread.
    pub(crate) fn shutdown(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl<D> Drop for Runner<D> {
    fn drop(&mut self) {
        // Closing the queue ends the thread after the jobs already queued; do not join here
        // (a drop on the loop must not wait on the disk).
        self.tx = None;
    }
}

fn run_guarded<D>(conn: &Db, work: Work<D>) -> Result<D> {
    catch_unwind(AssertUnwindSafe(|| work(conn))).unwrap_or(Err(StoreError::Panic))
}

fn plain_loop<D>(
    conn: &Db,
    jobs: &Receiver<Job<D>>,
    done: &mpsc::Sender<D>,
    wake: &(dyn Fn() + Send + Sync),
) {
    while let Ok(job) = jobs.recv() {
        let d = match run_guarded(conn, job.work) {
            Ok(d) => d,
            Err(e) => (job.fail)(e),
        };
        if done.send(d).is_err() {
            return;
        }
        wake();
    }
}

enum Outcome<D> {
    Ok(D, Fail<D>),
    Failed(D),
}

fn batch_loop<D>(
    conn: &Db,
    jobs: &Receiver<Job<D>>,
    done: &mpsc::Sender<D>,
    wake: &(dyn Fn() + Send + Sync),
) {
    let mut batch: Vec<Job<D>> = Vec::with_capacity(MAX_BATCH);
    let mut outs: Vec<Outcome<D>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let scopes: Vec<Scope> = batch
            .iter_mut()
            .map(|j| std::mem::replace(&mut j.scope, Scope::All))
            .collect();
        let bids: Vec<&str> = scopes
            .iter()
            .map_while(|s| match s {
                Scope::Business(b) => Some(b.as_str()),
                Scope::All => None,
            })
            .collect();
        let lock = if bids.len() == scopes.len() {
            WriteLock::Businesses(&bids)
        } else {
            WriteLock::All
        };
        if let Err(e) = conn.begin_write_for(&lock) {
            let msg = e.to_string();
            for j in batch.drain(..) {
                outs.push(Outcome::Failed((j.fail)(StoreError::Commit(msg.clone()))));
            }
        } else {
            // A failed savepoint command leaves the transaction in an unknown state (on
            // PostgreSQL an aborted one, whose COMMIT quietly rolls back): nothing of the
            // batch may then be reported stored.
            let mut broken: Option<String> = None;
            for j in batch.drain(..) {
                if broken.is_some() {
                    outs.push(Outcome::Failed((j.fail)(StoreError::Unavailable)));
                    continue;
                }
                if let Err(e) = conn.execute_batch("SAVEPOINT job") {
                    broken = Some(e.to_string());
                    outs.push(Outcome::Failed((j.fail)(e)));
                    continue;
                }
                match run_guarded(conn, j.work) {
                    Ok(d) => {
                        if let Err(e) = conn.execute_batch("RELEASE job") {
                            broken = Some(e.to_string());
                        }
                        outs.push(Outcome::Ok(d, j.fail));
                    }
                    Err(e) => {
                        if let Err(e) = conn.execute_batch("ROLLBACK TO job; RELEASE job") {
                            broken = Some(e.to_string());
                        }
                        outs.push(Outcome::Failed((j.fail)(e)));
                    }
                }
            }
            let committed = match broken {
                Some(m) => {
                    conn.rollback();
                    Err(m)
                }
                None => conn.commit().map_err(|e| {
                    conn.rollback();
                    e.to_string()
                }),
            };
            if let Err(msg) = committed {
                // Nothing of the batch was stored: every success becomes a failure.
                outs = outs
                    .into_iter()
                    .map(|o| match o {
                        Outcome::Ok(_, fail) => {
                            Outcome::Failed(fail(StoreError::Commit(msg.clone())))
                        }
                        f => f,
                    })
                    .collect();
            }
        }
        // Leave the write lock free for a moment: other workers' writers poll for it every
        // millisecond, and without a gap a busy writer here would take it back every time.
        // Jobs arriving meanwhile join the next batch, so throughput keeps up.
        if conn.kind() == Kind::Sqlite {
            std::thread::sleep(COMMIT_GAP);
        }
        for o in outs.drain(..) {
            let d = match o {
                Outcome::Ok(d, _) | Outcome::Failed(d) => d,
            };
            if done.send(d).is_err() {
                return;
            }
        }
        wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn failing_job_rolls_back_alone_and_answers_arrive_after_commit() {
        let dir = std::env::temp_dir().join(format!("kefu-runner-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let conn = crate::store::open(&dir, crate::config::SyncMode::Full).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let wakes = Arc::new(AtomicUsize::new(0));
        let w = wakes.clone();
        let mut r: Runner<std::result::Result<i64, String>> = Runner::spawn(
            "t",
            conn,
            Mode::Batch,
            64,
            Arc::new(move || {
                w.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
        for i in 0..20i64 {
            r.submit(
                Scope::All,
                move |c| {
                    c.execute("INSERT INTO t VALUES (?1)", [i])?;
                    if i == 7 {
                        return Err(StoreError::Invalid("seven"));
                    }
                    Ok(Ok(i))
                },
                |e| Err(e.to_string()),
            )
            .unwrap();
        }
        r.shutdown();
        let answers: Vec<_> = std::iter::from_fn(|| r.try_recv()).collect();
        assert_eq!(answers.len(), 20);
        assert_eq!(answers[7], Err("invalid: seven".to_string()));
        assert!(answers
            .iter()
            .enumerate()
            .all(|(i, a)| i == 7 || *a == Ok(i as i64)));
        assert!(wakes.load(Ordering::SeqCst) >= 1);
        let c = crate::store::open(&dir, crate::config::SyncMode::Full).unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM t WHERE x = 7", [], |r| r.get(0))
            .unwrap();
        let all: i64 = c
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!((n, all), (0, 19));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
