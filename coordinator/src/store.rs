//! Durable coordinator state in one SQLite file (WAL), plus a content-addressed blob directory.
//!
//! The store is plain data access: it knows tables and rows, not policies. The
//! [`crate::scheduler`] is its only writer and decides what the rows mean.
//!
//! Tables:
//! - `sweeps`: one row per submitted sweep (its YAML kept verbatim, its state).
//! - `tasks`: one row per content key, shared by every sweep that asks for it; state machine
//!   `pending -> leased -> done | failed`, lease token, attempts, retry-not-before.
//! - `sweep_tasks`: which sweeps want which tasks.
//! - `task_inputs`: the further tasks a task waits for besides `depends_on` (a DAG fan-in).
//! - `results`: the accepted result of a task: an attack task's shard; a train task's checkpoint
//!   digest with its run record (a `TrainResult` without the checkpoint); a distill task's set
//!   digest with its run record (a `DistillResult` without blobs).
//! - `task_files`: further blobs a task produced (a distilled set's safetensors encoding).
//! - `task_uploads`: the blobs uploaded under a task's leases, until it finishes or fails for good.
//! - `snapshots`: the latest state a long task (a distillation) saved, for its next lease: its
//!   iteration and the digest of its state blob.
//! - `task_progress`: what the agent on a leased task last reported.
//! - `task_errors`: every failed attempt with its typed failure.
//! - `agents`: the last registration and heartbeat of each agent name.
//!
//! Checkpoints, distilled sets and snapshot states live in `blobs/<sha256>` beside the database,
//! written atomically; a snapshot state is deleted once a newer one replaces it or its task
//! finishes.

use std::path::{Path, PathBuf};

use crate::blobs::Blobs;

use rusqlite::{Connection, OptionalExtension, params};

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid blob digest {0:?}")]
    InvalidDigest(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS sweeps (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    file_name    TEXT NOT NULL,
    yaml         TEXT NOT NULL,
    state        TEXT NOT NULL,
    created_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tasks (
    id               TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,
    description      TEXT NOT NULL,
    spec             BLOB NOT NULL,
    depends_on       TEXT,
    state            TEXT NOT NULL,
    attempts         INTEGER NOT NULL DEFAULT 0,
    not_before_ms    INTEGER NOT NULL DEFAULT 0,
    lease_token      TEXT,
    lease_agent      TEXT,
    lease_expires_ms INTEGER
);
CREATE INDEX IF NOT EXISTS tasks_by_state ON tasks(state, kind);
CREATE INDEX IF NOT EXISTS tasks_by_token ON tasks(lease_token);
CREATE TABLE IF NOT EXISTS sweep_tasks (
    sweep_id TEXT NOT NULL,
    task_id  TEXT NOT NULL,
    PRIMARY KEY (sweep_id, task_id)
);
CREATE INDEX IF NOT EXISTS sweep_tasks_by_task ON sweep_tasks(task_id);
-- Further checkpoints a task reads besides its `depends_on` (a transfer task's target models):
-- it is leasable only once all of them are done, and fails when one of them fails.
CREATE TABLE IF NOT EXISTS task_inputs (
    task_id  TEXT NOT NULL,
    input_id TEXT NOT NULL,
    PRIMARY KEY (task_id, input_id)
);
CREATE INDEX IF NOT EXISTS task_inputs_by_input ON task_inputs(input_id);
CREATE TABLE IF NOT EXISTS results (
    task_id           TEXT PRIMARY KEY,
    lease_token       TEXT NOT NULL,
    agent             TEXT NOT NULL,
    accepted_ms       INTEGER NOT NULL,
    shard             BLOB,
    checkpoint_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS task_errors (
    task_id  TEXT NOT NULL,
    attempt  INTEGER NOT NULL,
    agent    TEXT NOT NULL,
    failure  BLOB NOT NULL,
    at_ms    INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS task_errors_by_task ON task_errors(task_id);
-- Completions refused because they did not carry the task's live lease (late results of lost
-- leases, replies to unknown tasks): kept so that faults can be audited, never counted.
CREATE TABLE IF NOT EXISTS rejected_completions (
    task_id     TEXT NOT NULL,
    lease_token TEXT NOT NULL,
    agent       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    at_ms       INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS task_files (
    task_id TEXT NOT NULL,
    name    TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    PRIMARY KEY (task_id, name)
);
-- Blobs a task's agents uploaded under its leases; once the task finishes, those nothing names
-- (a snapshot state whose agent died before naming it) are deleted.
CREATE TABLE IF NOT EXISTS task_uploads (
    task_id TEXT NOT NULL,
    sha256  TEXT NOT NULL,
    PRIMARY KEY (task_id, sha256)
);
CREATE TABLE IF NOT EXISTS snapshots (
    task_id   TEXT PRIMARY KEY,
    iteration INTEGER NOT NULL,
    sha256    TEXT NOT NULL,
    saved_ms  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS task_progress (
    task_id TEXT PRIMARY KEY,
    text    TEXT NOT NULL,
    at_ms   INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS agents (
    name        TEXT PRIMARY KEY,
    generation  TEXT NOT NULL,
    device      TEXT NOT NULL,
    last_seen_ms INTEGER NOT NULL
);
"#;

/// Lifecycle of a task row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Leased,
    Done,
    Failed,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Leased => "leased",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    fn parse(text: &str) -> StoreResult<Self> {
        Ok(match text {
            "pending" => Self::Pending,
            "leased" => Self::Leased,
            "done" => Self::Done,
            "failed" => Self::Failed,
            other => return Err(StoreError::Corrupt(format!("unknown task state {other:?}"))),
        })
    }
}

/// The agent process that holds a name: its generation, device and last heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentHolder {
    pub generation: String,
    pub device: String,
    pub last_seen_ms: i64,
}

/// A task row as the scheduler needs it.
#[derive(Debug, Clone)]
pub struct TaskRow {
    pub id: String,
    pub kind: String,
    pub description: String,
    pub spec: Vec<u8>,
    pub depends_on: Option<String>,
    pub state: TaskState,
    pub attempts: u32,
    pub lease_token: Option<String>,
    pub lease_agent: Option<String>,
}

/// A new task to insert at submit time.
pub struct NewTask<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub description: &'a str,
    pub spec: &'a [u8],
    pub depends_on: Option<&'a str>,
    /// Further tasks whose checkpoints this one reads; it waits for all of them.
    pub inputs: &'a [&'a str],
}

/// A sweep row.
#[derive(Debug, Clone)]
pub struct SweepRow {
    pub id: String,
    pub name: String,
    pub file_name: String,
    pub yaml: String,
    pub state: String,
    pub created_ms: i64,
}

/// Task counts of one sweep by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub pending: u32,
    pub leased: u32,
    pub done: u32,
    pub failed: u32,
}

impl StateCounts {
    pub fn total(&self) -> u32 {
        self.pending + self.leased + self.done + self.failed
    }
}

/// The durable store: a SQLite connection and the blob directory.
pub struct Store {
    conn: Connection,
    blobs: Blobs,
}

const TASK_COLUMNS: &str = "id, kind, description, spec, depends_on, state, attempts, lease_token, lease_agent";

fn task_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(TaskRow, String)> {
    let state: String = row.get(5)?;
    Ok((
        TaskRow {
            id: row.get(0)?,
            kind: row.get(1)?,
            description: row.get(2)?,
            spec: row.get(3)?,
            depends_on: row.get(4)?,
            state: TaskState::Pending,
            attempts: row.get(6)?,
            lease_token: row.get(7)?,
            lease_agent: row.get(8)?,
        },
        state,
    ))
}

/// State files made before snapshot states moved to blobs keep them inline, in a `state` column:
/// drop those snapshots (their tasks start over) and the column.
fn drop_inline_snapshots(conn: &Connection) -> StoreResult<()> {
    let inline: bool =
        conn.query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('snapshots') WHERE name = 'state'", [], |r| {
            r.get(0)
        })?;
    if inline {
        conn.execute_batch("DELETE FROM snapshots; ALTER TABLE snapshots DROP COLUMN state;")?;
    }
    Ok(())
}

fn finish_task((mut task, state): (TaskRow, String)) -> StoreResult<TaskRow> {
    task.state = TaskState::parse(&state)?;
    Ok(task)
}

impl Store {
    /// Open (or create) the state in `dir`: `dir/state.db` and `dir/blobs/`.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let blobs = Blobs::open(dir.join("blobs"))?;
        let conn = Connection::open(dir.join("state.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        drop_inline_snapshots(&conn)?;
        Ok(Self { conn, blobs })
    }

    /// The blob directory, for files that stream in and out outside transactions.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Run `f` in one transaction; nothing it wrote survives an error.
    pub fn transaction<T>(&mut self, f: impl FnOnce(&Tx<'_>) -> StoreResult<T>) -> StoreResult<T> {
        let tx = self.conn.transaction()?;
        let value = f(&Tx { tx: &tx, blobs: &self.blobs })?;
        tx.commit()?;
        Ok(value)
    }
}

/// Data access inside one transaction.
pub struct Tx<'a> {
    tx: &'a rusqlite::Transaction<'a>,
    blobs: &'a Blobs,
}

impl Tx<'_> {
    // ---- sweeps ---------------------------------------------------------------------------

    pub fn insert_sweep(&self, sweep: &SweepRow) -> StoreResult<()> {
        self.tx.execute(
            "INSERT INTO sweeps (id, name, file_name, yaml, state, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![sweep.id, sweep.name, sweep.file_name, sweep.yaml, sweep.state, sweep.created_ms],
        )?;
        Ok(())
    }

    pub fn sweep(&self, id: &str) -> StoreResult<Option<SweepRow>> {
        Ok(self
            .tx
            .query_row(
                "SELECT id, name, file_name, yaml, state, created_ms FROM sweeps WHERE id = ?1",
                [id],
                sweep_from_row,
            )
            .optional()?)
    }

    pub fn sweeps(&self) -> StoreResult<Vec<SweepRow>> {
        let mut stmt = self
            .tx
            .prepare("SELECT id, name, file_name, yaml, state, created_ms FROM sweeps ORDER BY created_ms, id")?;
        let rows = stmt.query_map([], sweep_from_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn set_sweep_state(&self, id: &str, state: &str) -> StoreResult<()> {
        self.tx.execute("UPDATE sweeps SET state = ?2 WHERE id = ?1", params![id, state])?;
        Ok(())
    }

    // ---- tasks ----------------------------------------------------------------------------

    /// Insert a task unless its content key exists; link it to the sweep either way.
    /// Returns the state of the task after the call.
    pub fn upsert_task(&self, sweep_id: &str, task: &NewTask<'_>) -> StoreResult<TaskState> {
        self.tx.execute(
            "INSERT OR IGNORE INTO tasks (id, kind, description, spec, depends_on, state)
             VALUES (?1, ?2, ?3, ?4, ?5, 'pending')",
            params![task.id, task.kind, task.description, task.spec, task.depends_on],
        )?;
        for input in task.inputs {
            self.tx.execute(
                "INSERT OR IGNORE INTO task_inputs (task_id, input_id) VALUES (?1, ?2)",
                params![task.id, input],
            )?;
        }
        self.tx.execute(
            "INSERT OR IGNORE INTO sweep_tasks (sweep_id, task_id) VALUES (?1, ?2)",
            params![sweep_id, task.id],
        )?;
        let state: String = self.tx.query_row("SELECT state FROM tasks WHERE id = ?1", [task.id], |r| r.get(0))?;
        TaskState::parse(&state)
    }

    pub fn task(&self, id: &str) -> StoreResult<Option<TaskRow>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1");
        self.tx.query_row(&sql, [id], task_from_row).optional()?.map(finish_task).transpose()
    }

    /// The next leasable task: pending, due, wanted by a running sweep, its dependency and further
    /// inputs done.
    /// Distill tasks first (the roots of the longest chains), then train tasks; among attack
    /// tasks, those whose checkpoint the agent holds; then in submission order.
    ///
    /// Small queries in that order of preference, each walking the `(state, kind)` index
    /// in rowid order and stopping at the first hit, keep a lease O(1) in the queue length where
    /// one query sorting every candidate would be O(n).
    pub fn next_leasable(&self, now_ms: i64, cached_deps: &[String]) -> StoreResult<Option<TaskRow>> {
        const LEASABLE: &str = "t.state = 'pending' AND t.not_before_ms <= ?1
               AND EXISTS (SELECT 1 FROM sweep_tasks st JOIN sweeps s ON s.id = st.sweep_id
                           WHERE st.task_id = t.id AND s.state = 'running')";
        const DEPENDENCY_DONE: &str = "EXISTS (SELECT 1 FROM tasks d WHERE d.id = t.depends_on AND d.state = 'done')
               AND NOT EXISTS (SELECT 1 FROM task_inputs i JOIN tasks d ON d.id = i.input_id
                               WHERE i.task_id = t.id AND d.state != 'done')";
        let first = |condition: &str, cached: Option<&str>| -> StoreResult<Option<TaskRow>> {
            let sql =
                format!("SELECT {TASK_COLUMNS} FROM tasks t WHERE {LEASABLE} AND {condition} ORDER BY t.rowid LIMIT 1");
            let row = match cached {
                Some(cached) => self.tx.query_row(&sql, params![now_ms, cached], task_from_row),
                None => self.tx.query_row(&sql, params![now_ms], task_from_row),
            };
            row.optional()?.map(finish_task).transpose()
        };
        if let Some(task) = first("t.kind = 'distill'", None)? {
            return Ok(Some(task));
        }
        if let Some(task) = first(&format!("t.kind = 'train' AND (t.depends_on IS NULL OR ({DEPENDENCY_DONE}))"), None)?
        {
            return Ok(Some(task));
        }
        if !cached_deps.is_empty() {
            let cached = serde_json::to_string(cached_deps)
                .map_err(|e| StoreError::Corrupt(format!("cannot encode cached list: {e}")))?;
            let condition = format!(
                "t.kind = 'attack' AND t.depends_on IN (SELECT value FROM json_each(?2)) AND {DEPENDENCY_DONE}"
            );
            if let Some(task) = first(&condition, Some(&cached))? {
                return Ok(Some(task));
            }
        }
        first(&format!("t.kind = 'attack' AND {DEPENDENCY_DONE}"), None)
    }

    pub fn mark_leased(&self, id: &str, token: &str, agent: &str, expires_ms: i64) -> StoreResult<u32> {
        self.tx.execute(
            "UPDATE tasks SET state = 'leased', attempts = attempts + 1, lease_token = ?2,
                              lease_agent = ?3, lease_expires_ms = ?4 WHERE id = ?1",
            params![id, token, agent, expires_ms],
        )?;
        self.tx.execute("DELETE FROM task_progress WHERE task_id = ?1", [id])?;
        Ok(self.tx.query_row("SELECT attempts FROM tasks WHERE id = ?1", [id], |r| r.get(0))?)
    }

    /// Record what the agent holding `token` reports about its task; false when the token holds
    /// no lease.
    pub fn set_progress(&self, token: &str, text: &str, at_ms: i64) -> StoreResult<bool> {
        let changed = self.tx.execute(
            "INSERT INTO task_progress (task_id, text, at_ms)
             SELECT id, ?2, ?3 FROM tasks WHERE lease_token = ?1 AND state = 'leased'
             ON CONFLICT (task_id) DO UPDATE SET text = excluded.text, at_ms = excluded.at_ms",
            params![token, text, at_ms],
        )?;
        Ok(changed > 0)
    }

    /// (task id, description, agent, last progress) of every leased task of a sweep.
    pub fn running(&self, sweep_id: &str) -> StoreResult<Vec<(String, String, String, String)>> {
        let mut stmt = self.tx.prepare(
            "SELECT t.id, t.description, COALESCE(t.lease_agent, ''), COALESCE(p.text, '')
             FROM sweep_tasks st JOIN tasks t ON t.id = st.task_id
             LEFT JOIN task_progress p ON p.task_id = t.id
             WHERE st.sweep_id = ?1 AND t.state = 'leased' ORDER BY t.rowid",
        )?;
        let rows = stmt
            .query_map([sweep_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    // ---- snapshots ------------------------------------------------------------------------

    /// Keep the blob `sha256` as the latest snapshot state of the task `token` leases (replacing
    /// an earlier one); false when the token holds no lease on `task_id`.
    pub fn save_snapshot(
        &self,
        task_id: &str,
        token: &str,
        iteration: u32,
        sha256: &str,
        at_ms: i64,
    ) -> StoreResult<bool> {
        let changed = self.tx.execute(
            "INSERT INTO snapshots (task_id, iteration, sha256, saved_ms)
             SELECT id, ?3, ?4, ?5 FROM tasks WHERE id = ?1 AND lease_token = ?2 AND state = 'leased'
             ON CONFLICT (task_id) DO UPDATE SET iteration = excluded.iteration, sha256 = excluded.sha256,
                                                 saved_ms = excluded.saved_ms",
            params![task_id, token, iteration, sha256, at_ms],
        )?;
        Ok(changed > 0)
    }

    /// (iteration, state blob digest) of a task's latest snapshot.
    pub fn snapshot(&self, task_id: &str) -> StoreResult<Option<(u32, String)>> {
        Ok(self
            .tx
            .query_row("SELECT iteration, sha256 FROM snapshots WHERE task_id = ?1", [task_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?)
    }

    /// Forget a task's snapshot (its result was accepted).
    pub fn delete_snapshot(&self, task_id: &str) -> StoreResult<()> {
        self.tx.execute("DELETE FROM snapshots WHERE task_id = ?1", [task_id])?;
        Ok(())
    }

    /// Extend a lease if `token` still holds it for `agent`; false when it does not.
    pub fn renew_lease(&self, token: &str, agent: &str, expires_ms: i64) -> StoreResult<bool> {
        let changed = self.tx.execute(
            "UPDATE tasks SET lease_expires_ms = ?3
             WHERE lease_token = ?1 AND lease_agent = ?2 AND state = 'leased'
               AND EXISTS (SELECT 1 FROM sweep_tasks st JOIN sweeps s ON s.id = st.sweep_id
                           WHERE st.task_id = tasks.id AND s.state = 'running')",
            params![token, agent, expires_ms],
        )?;
        Ok(changed > 0)
    }

    /// Leased tasks whose lease ran out before `now_ms`.
    pub fn expired_leases(&self, now_ms: i64) -> StoreResult<Vec<TaskRow>> {
        self.tasks_where("state = 'leased' AND lease_expires_ms < ?1", params![now_ms])
    }

    /// Leased tasks held by `agent` (any generation).
    pub fn leases_of(&self, agent: &str) -> StoreResult<Vec<TaskRow>> {
        self.tasks_where("state = 'leased' AND lease_agent = ?1", params![agent])
    }

    /// Pending or leased tasks that read the checkpoint of `train_id` (as their dependency or as
    /// a further input).
    pub fn dependents(&self, train_id: &str) -> StoreResult<Vec<TaskRow>> {
        self.tasks_where(
            "(depends_on = ?1 OR id IN (SELECT task_id FROM task_inputs WHERE input_id = ?1))
             AND state IN ('pending', 'leased')",
            params![train_id],
        )
    }

    fn tasks_where(&self, condition: &str, args: impl rusqlite::Params) -> StoreResult<Vec<TaskRow>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE {condition} ORDER BY rowid");
        let mut stmt = self.tx.prepare(&sql)?;
        let rows = stmt.query_map(args, task_from_row)?.collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(finish_task).collect()
    }

    /// Move a task back to the queue, clearing its lease; it becomes leasable at `not_before_ms`.
    pub fn requeue(&self, id: &str, not_before_ms: i64) -> StoreResult<()> {
        self.tx.execute(
            "UPDATE tasks SET state = 'pending', lease_token = NULL, lease_agent = NULL,
                              lease_expires_ms = NULL, not_before_ms = ?2 WHERE id = ?1",
            params![id, not_before_ms],
        )?;
        Ok(())
    }

    /// Give a failed task a fresh start (a new sweep asked for it again).
    pub fn reset_failed(&self, id: &str) -> StoreResult<()> {
        self.tx.execute(
            "UPDATE tasks SET state = 'pending', attempts = 0, not_before_ms = 0 WHERE id = ?1 AND state = 'failed'",
            [id],
        )?;
        Ok(())
    }

    pub fn set_state(&self, id: &str, state: TaskState) -> StoreResult<()> {
        self.tx.execute(
            "UPDATE tasks SET state = ?2, lease_expires_ms = NULL WHERE id = ?1",
            params![id, state.as_str()],
        )?;
        Ok(())
    }

    pub fn record_error(&self, id: &str, attempt: u32, agent: &str, failure: &[u8], at_ms: i64) -> StoreResult<()> {
        self.tx.execute(
            "INSERT INTO task_errors (task_id, attempt, agent, failure, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, attempt, agent, failure, at_ms],
        )?;
        Ok(())
    }

    /// The most recent recorded failure of a task.
    pub fn last_error(&self, id: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self
            .tx
            .query_row(
                "SELECT failure FROM task_errors WHERE task_id = ?1 ORDER BY at_ms DESC, rowid DESC LIMIT 1",
                [id],
                |r| r.get(0),
            )
            .optional()?)
    }

    // ---- results --------------------------------------------------------------------------

    pub fn insert_result(
        &self,
        task_id: &str,
        token: &str,
        agent: &str,
        at_ms: i64,
        shard: Option<&[u8]>,
        checkpoint_sha256: Option<&str>,
    ) -> StoreResult<()> {
        self.tx.execute(
            "INSERT INTO results (task_id, lease_token, agent, accepted_ms, shard, checkpoint_sha256)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![task_id, token, agent, at_ms, shard, checkpoint_sha256],
        )?;
        Ok(())
    }

    /// The lease token whose result was accepted for a task, if any.
    pub fn accepted_token(&self, task_id: &str) -> StoreResult<Option<String>> {
        Ok(self
            .tx
            .query_row("SELECT lease_token FROM results WHERE task_id = ?1", [task_id], |r| r.get(0))
            .optional()?)
    }

    /// Record a further blob a task produced, under a file name.
    pub fn insert_task_file(&self, task_id: &str, name: &str, sha256: &str) -> StoreResult<()> {
        self.tx.execute(
            "INSERT OR REPLACE INTO task_files (task_id, name, sha256) VALUES (?1, ?2, ?3)",
            params![task_id, name, sha256],
        )?;
        Ok(())
    }

    pub fn checkpoint_digest(&self, train_task_id: &str) -> StoreResult<Option<String>> {
        Ok(self
            .tx
            .query_row("SELECT checkpoint_sha256 FROM results WHERE task_id = ?1", [train_task_id], |r| {
                r.get::<_, Option<String>>(0)
            })
            .optional()?
            .flatten())
    }

    /// (task spec, shard) of every accepted attack task of a sweep.
    pub fn attack_results(&self, sweep_id: &str) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut stmt = self.tx.prepare(
            "SELECT t.spec, r.shard FROM sweep_tasks st
             JOIN tasks t ON t.id = st.task_id JOIN results r ON r.task_id = t.id
             WHERE st.sweep_id = ?1 AND t.kind = 'attack' AND r.shard IS NOT NULL ORDER BY t.rowid",
        )?;
        let rows = stmt.query_map([sweep_id], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?;
        Ok(rows)
    }

    // ---- sweep views ----------------------------------------------------------------------

    pub fn state_counts(&self, sweep_id: &str) -> StoreResult<StateCounts> {
        let mut stmt = self.tx.prepare(
            "SELECT t.state, COUNT(*) FROM sweep_tasks st JOIN tasks t ON t.id = st.task_id
             WHERE st.sweep_id = ?1 GROUP BY t.state",
        )?;
        let mut counts = StateCounts::default();
        let rows = stmt.query_map([sweep_id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?)))?;
        for row in rows {
            let (state, n) = row?;
            match TaskState::parse(&state)? {
                TaskState::Pending => counts.pending = n,
                TaskState::Leased => counts.leased = n,
                TaskState::Done => counts.done = n,
                TaskState::Failed => counts.failed = n,
            }
        }
        Ok(counts)
    }

    pub fn failed_tasks(&self, sweep_id: &str) -> StoreResult<Vec<TaskRow>> {
        self.tasks_where(
            "state = 'failed' AND id IN (SELECT task_id FROM sweep_tasks WHERE sweep_id = ?1)",
            params![sweep_id],
        )
    }

    /// Keep a refused completion for the record.
    pub fn record_rejection(
        &self,
        task_id: &str,
        lease_token: &str,
        agent: &str,
        reason: &str,
        now_ms: i64,
    ) -> StoreResult<()> {
        self.tx.execute(
            "INSERT INTO rejected_completions (task_id, lease_token, agent, reason, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![task_id, lease_token, agent, reason, now_ms],
        )?;
        Ok(())
    }

    // ---- agents ---------------------------------------------------------------------------

    /// The process that holds `name`, if the name was ever registered.
    pub fn agent_holder(&self, name: &str) -> StoreResult<Option<AgentHolder>> {
        Ok(self
            .tx
            .query_row("SELECT generation, device, last_seen_ms FROM agents WHERE name = ?1", [name], |r| {
                Ok(AgentHolder { generation: r.get(0)?, device: r.get(1)?, last_seen_ms: r.get(2)? })
            })
            .optional()?)
    }

    /// Record a registration: `generation` now holds `name`.
    pub fn register_agent(&self, name: &str, generation: &str, device: &str, now_ms: i64) -> StoreResult<()> {
        self.tx.execute(
            "INSERT INTO agents (name, generation, device, last_seen_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(name) DO UPDATE SET generation = ?2, device = ?3, last_seen_ms = ?4",
            params![name, generation, device, now_ms],
        )?;
        Ok(())
    }

    pub fn agent_generation(&self, name: &str) -> StoreResult<Option<String>> {
        Ok(self.tx.query_row("SELECT generation FROM agents WHERE name = ?1", [name], |r| r.get(0)).optional()?)
    }

    pub fn touch_agent(&self, name: &str, now_ms: i64) -> StoreResult<()> {
        self.tx.execute("UPDATE agents SET last_seen_ms = ?2 WHERE name = ?1", params![name, now_ms])?;
        Ok(())
    }

    /// Every agent ever registered: (name, generation, device, last seen), by name.
    pub fn agents(&self) -> StoreResult<Vec<(String, String, String, i64)>> {
        let mut stmt = self.tx.prepare("SELECT name, generation, device, last_seen_ms FROM agents ORDER BY name")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn agents_seen_since(&self, since_ms: i64) -> StoreResult<u32> {
        Ok(self.tx.query_row("SELECT COUNT(*) FROM agents WHERE last_seen_ms >= ?1", [since_ms], |r| r.get(0))?)
    }

    // ---- blobs ----------------------------------------------------------------------------

    /// Store bytes under their SHA-256 (already verified by the caller); atomic via rename.
    pub fn put_blob(&self, digest: &str, bytes: &[u8]) -> StoreResult<()> {
        self.blobs.put(digest, bytes)
    }

    pub fn get_blob(&self, digest: &str) -> StoreResult<Vec<u8>> {
        self.blobs.get(digest)
    }

    /// Whether the blob `digest` is stored (a streamed upload arrived whole).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blobs.contains(digest)
    }

    /// Remember that the blob `digest` was uploaded under a lease on `task_id`.
    pub fn record_upload(&self, task_id: &str, digest: &str) -> StoreResult<()> {
        self.tx.execute("INSERT OR IGNORE INTO task_uploads (task_id, sha256) VALUES (?1, ?2)", [task_id, digest])?;
        Ok(())
    }

    /// Forget what was uploaded for `task_id` (it finished or failed for good), deleting the blobs
    /// nothing names.
    pub fn drop_uploads(&self, task_id: &str) -> StoreResult<()> {
        let digests: Vec<String> = self
            .tx
            .prepare("SELECT sha256 FROM task_uploads WHERE task_id = ?1")?
            .query_map([task_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        self.tx.execute("DELETE FROM task_uploads WHERE task_id = ?1", [task_id])?;
        for digest in digests {
            self.remove_blob_if_unused(&digest)?;
        }
        Ok(())
    }

    /// Delete the blob `digest` unless a result, a task file or a snapshot names it (a snapshot
    /// state another one replaced, or whose task finished).
    pub fn remove_blob_if_unused(&self, digest: &str) -> StoreResult<()> {
        let used: bool = self.tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM results WHERE checkpoint_sha256 = ?1)
                 OR EXISTS (SELECT 1 FROM task_files WHERE sha256 = ?1)
                 OR EXISTS (SELECT 1 FROM snapshots WHERE sha256 = ?1)",
            [digest],
            |r| r.get(0),
        )?;
        if used { Ok(()) } else { self.blobs.remove(digest) }
    }
}

fn sweep_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SweepRow> {
    Ok(SweepRow {
        id: row.get(0)?,
        name: row.get(1)?,
        file_name: row.get(2)?,
        yaml: row.get(3)?,
        state: row.get(4)?,
        created_ms: row.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_file_with_inline_snapshot_states_drops_them_and_their_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conn = Connection::open(dir.path().join("state.db")).expect("sqlite");
        conn.execute_batch(
            "CREATE TABLE snapshots (task_id TEXT PRIMARY KEY, iteration INTEGER NOT NULL, state BLOB NOT NULL,
                                     sha256 TEXT NOT NULL, saved_ms INTEGER NOT NULL);
             INSERT INTO snapshots VALUES ('t', 3, x'00', 'd', 1);",
        )
        .expect("the earlier layout");
        drop(conn);
        let mut store = Store::open(dir.path()).expect("opens");
        assert_eq!(store.transaction(|tx| tx.snapshot("t")).expect("reads"), None, "the inline snapshot is gone");
        let columns: Vec<String> = store
            .conn
            .prepare("SELECT name FROM pragma_table_info('snapshots')")
            .and_then(|mut stmt| stmt.query_map([], |r| r.get(0))?.collect())
            .expect("columns");
        assert_eq!(columns, ["task_id", "iteration", "sha256", "saved_ms"]);
        drop(store);
        Store::open(dir.path()).expect("opens again, with nothing left to change");
    }
}
