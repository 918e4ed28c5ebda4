//! The store threads of one worker: the group-commit writer, the aux thread for slow work,
//! the query thread for search and reports, the webhook courier,
//! and the password checks. Jobs go in by [`Lane`]; finished ones come back in `on_wake`.

use super::auth::Secret;
use super::done::{Done, Lane, Origin, Outcome};
use super::webhook::{Courier, Policy};
use super::LOGIN_QUEUE;
use super::QUEUE_CAP;
use super::{upload, Ctx};
use crate::config::KefuConfig;
use crate::store::db::Db;
use crate::store::runner::{Busy, Mode, Runner, Scope};
use crate::store::{self};
use std::path::Path;
use std::sync::Arc;

/// Searches and reports queued per worker beyond the one running; more get 503 at once.
const QUERY_QUEUE: usize = 32;

/// The store threads and the webhook courier.
pub(super) struct Jobs {
    /// Group-commit writer (all SQL of the conversation flow).
    writer: Runner<Done>,
    /// Slow work off the writer: upload files, the orphan sweep.
    aux: Runner<Done>,
    /// Password checks (argon2) only.
    login: Runner<Done>,
    /// Search, lists and reports.
    query: Runner<Done>,
    /// The webhook delivery thread (stops when dropped).
    courier: Option<Courier>,
}

impl Jobs {
    /// Open the store (once per thread) and start the threads, which wake the loop with each
    /// batch of results; and read the token signing key.
    pub(super) fn open(
        cx: &Ctx<'_>,
        cfg: &KefuConfig,
        data_dir: &Path,
    ) -> Result<(Jobs, Secret), String> {
        // Runs once at worker start, before the loop serves anyone. Several workers open the
        // same file at once (WAL switch, schema), so a lost race is retried rather than
        // leaving a worker without a store.
        let open = || {
            let mut tries = 0;
            loop {
                match store::open_target(store::Target::of(cfg, data_dir)) {
                    Ok(c) => return Ok(c),
                    Err(e) if tries >= 100 => {
                        // Name where it looked (never the database URL: it may hold a password).
                        return Err(match cfg.database {
                            Some(_) => format!("store (PostgreSQL): {e}"),
                            None => format!("store (data dir {}): {e}", data_dir.display()),
                        });
                    }
                    Err(_) => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                }
            }
        };
        let waker = cx.waker();
        let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            let _ = waker.wake();
        });
        let w = cx.worker_id();
        let writer = Runner::spawn(
            &format!("kefu-store-{w}"),
            open()?,
            Mode::Batch,
            QUEUE_CAP,
            wake.clone(),
        )
        .map_err(|e| e.to_string())?;
        let aux_conn = open()?;
        upload::ensure_table(&aux_conn).map_err(|e| format!("uploads table: {e}"))?;
        let secret = Secret::load(&aux_conn, data_dir)
            .map_err(|e| format!("token signing key (data dir {}): {e}", data_dir.display()))?;
        let aux = Runner::spawn(
            &format!("kefu-aux-{w}"),
            aux_conn,
            Mode::Plain,
            1024,
            wake.clone(),
        )
        .map_err(|e| e.to_string())?;
        let login = Runner::spawn(
            &format!("kefu-login-{w}"),
            open()?,
            Mode::Plain,
            LOGIN_QUEUE,
            wake.clone(),
        )
        .map_err(|e| e.to_string())?;
        let query = Runner::spawn(
            &format!("kefu-query-{w}"),
            open()?,
            Mode::Plain,
            QUERY_QUEUE,
            wake.clone(),
        )
        .map_err(|e| e.to_string())?;
        let policy = Policy {
            allow_private: cfg.webhook_allow_private,
            timeout: cfg.webhook_timeout,
            tls: crate::tls::client::client_config(cfg.webhook_ca_file.as_deref())
                .map_err(|e| format!("kefu.webhook_ca_file: {e}"))?,
        };
        let courier = Courier::spawn(&format!("kefu-hooks-{w}"), open()?, policy)
            .map_err(|e| e.to_string())?;
        let jobs = Jobs {
            writer,
            aux,
            login,
            query,
            courier: Some(courier),
        };
        Ok((jobs, secret))
    }

    /// Hand a job touching `scope` to the store thread of its lane.
    pub(super) fn enqueue(
        &self,
        to: Origin,
        scope: Scope,
        work: impl FnOnce(&Db) -> store::Result<Outcome> + Send + 'static,
    ) -> Result<(), Busy> {
        let runner = match to.lane() {
            Lane::Writer => &self.writer,
            Lane::Aux => &self.aux,
            Lane::Login => &self.login,
            Lane::Query => &self.query,
        };
        // Both the job and its failure answer need the origin.
        let fail_to = to.clone();
        runner.submit(
            scope,
            move |c| work(c).map(|o| Done { to, res: Ok(o) }),
            move |e| Done {
                to: fail_to,
                res: Err(e),
            },
        )
    }

    /// A finished job, if any (the writer's first).
    pub(super) fn try_recv(&self) -> Option<Done> {
        self.writer
            .try_recv()
            .or_else(|| self.aux.try_recv())
            .or_else(|| self.login.try_recv())
            .or_else(|| self.query.try_recv())
    }

    /// Jobs submitted whose answers have not been taken yet, over all threads.
    pub(super) fn in_flight(&self) -> usize {
        self.writer.in_flight()
            + self.aux.in_flight()
            + self.login.in_flight()
            + self.query.in_flight()
    }

    /// Let queued work finish and stop the threads.
    pub(super) fn shutdown(&mut self) {
        self.writer.shutdown();
        self.aux.shutdown();
        self.login.shutdown();
        self.query.shutdown();
        self.courier = None;
    }
}
