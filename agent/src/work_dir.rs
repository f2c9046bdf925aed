//! The agent's claim on its work dir: one process per work dir, and the memory of the previous
//! process that ran there.
//!
//! An exclusive lock on `agent.lock` is held for the life of the process, so a second agent
//! started on the same work dir (three `agent run` in one directory, a copy-pasted unit file)
//! stops at once with a message naming the first, instead of sharing its checkpoint cache and
//! fighting over its name. The lock file also records the generation of the process holding it:
//! the next process on the same work dir is a restart of the same agent, and presents that
//! generation to the coordinator as the one it replaces, which lets it take its name over at
//! once although its predecessor's last heartbeat is still recent.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Why the work dir cannot be claimed.
#[derive(Debug, thiserror::Error)]
pub enum WorkDirError {
    #[error(
        "the work dir {} is in use by another agent process ({holder}); give each agent its own --work-dir and --name",
        dir.display()
    )]
    InUse { dir: PathBuf, holder: String },
    #[error("cannot use the work dir {}: {source}", dir.display())]
    Io { dir: PathBuf, source: std::io::Error },
}

/// The held lock on a work dir; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct WorkDirLock {
    file: File,
    dir: PathBuf,
    previous_generation: Option<String>,
}

impl WorkDirLock {
    /// Lock `dir` (created if missing) for this process.
    pub fn acquire(dir: &Path) -> Result<Self, WorkDirError> {
        let io = |source| WorkDirError::Io { dir: dir.to_owned(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join("agent.lock"))
            .map_err(io)?;
        let mut record = String::new();
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                file.read_to_string(&mut record).map_err(io)?;
                let holder = Record::parse(&record).map_or_else(|| "unknown pid".to_owned(), |r| r.describe());
                return Err(WorkDirError::InUse { dir: dir.to_owned(), holder });
            }
            Err(TryLockError::Error(error)) => return Err(io(error)),
        }
        file.read_to_string(&mut record).map_err(io)?;
        let previous_generation = Record::parse(&record).map(|r| r.generation);
        Ok(Self { file, dir: dir.to_owned(), previous_generation })
    }

    /// The generation of the process that held this work dir before, if one registered.
    pub fn previous_generation(&self) -> Option<&str> {
        self.previous_generation.as_deref()
    }

    /// Record that this process (agent `name`) registered as `generation`.
    pub fn record(&mut self, name: &str, generation: &str) -> Result<(), WorkDirError> {
        let record = Record { pid: std::process::id(), name: name.to_owned(), generation: generation.to_owned() };
        let io = |source| WorkDirError::Io { dir: self.dir.clone(), source };
        self.file.set_len(0).map_err(io)?;
        self.file.seek(SeekFrom::Start(0)).map_err(io)?;
        self.file.write_all(record.to_string().as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)
    }
}

/// What the lock file says: `pid name generation`, one line.
struct Record {
    pid: u32,
    name: String,
    generation: String,
}

impl Record {
    fn parse(text: &str) -> Option<Self> {
        let mut fields = text.split_whitespace();
        let pid = fields.next()?.parse().ok()?;
        let (name, generation) = (fields.next()?.to_owned(), fields.next()?.to_owned());
        Some(Self { pid, name, generation })
    }

    fn describe(&self) -> String {
        format!("pid {}, agent {:?}", self.pid, self.name)
    }
}

impl std::fmt::Display for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {} {}", self.pid, self.name, self.generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_is_refused_naming_the_holder_and_a_restart_sees_its_predecessor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut first = WorkDirLock::acquire(dir.path()).expect("first claim");
        assert_eq!(first.previous_generation(), None);
        first.record("node-cpu", "gen-1").expect("record");

        let refused = WorkDirLock::acquire(dir.path()).expect_err("the work dir is taken");
        let message = refused.to_string();
        let pid = std::process::id().to_string();
        assert!(matches!(refused, WorkDirError::InUse { .. }), "{refused:?}");
        assert!(message.contains(&pid) && message.contains("node-cpu"), "names the holder: {message}");
        assert!(message.contains("--work-dir") && message.contains("--name"), "says what to do: {message}");

        drop(first);
        let restart = WorkDirLock::acquire(dir.path()).expect("free again once released");
        assert_eq!(restart.previous_generation(), Some("gen-1"));
    }
}
