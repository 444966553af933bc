//! An app's lock. A file lock (`flock`) rather than a row in the database: a row would
//! outlive a killed process and leave the next run to guess whether its owner is alive; the
//! operating system drops a file lock the moment its process dies.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sqlx::Row;

use crate::{RunInProgress, Store, StoreError};

/// Held while a run of the app goes on; dropping it lets the next run in.
#[derive(Debug)]
pub struct AppLease {
    held: Held,
}

#[derive(Debug)]
enum Held {
    /// The open, locked file: closing it unlocks it.
    File(#[allow(dead_code)] File),
    Memory {
        held: Arc<Mutex<HashSet<String>>>,
        app: String,
    },
}

impl Drop for AppLease {
    fn drop(&mut self) {
        if let Held::Memory { held, app } = &self.held {
            held.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(app);
        }
    }
}

/// Locks `path` (created if need be), waiting for it or not. `Ok(None)`: held by another.
pub(crate) fn lock_file(
    folder: PathBuf,
    path: PathBuf,
    wait: bool,
) -> std::io::Result<Option<AppLease>> {
    // Beside the database, and as private as its folder.
    crate::files::create_private_dir(&folder)?;
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    if wait {
        file.lock()?;
    } else {
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
    // Who holds it, for a person looking at the folder.
    file.set_len(0)?;
    writeln!(file, "{}", std::process::id())?;
    Ok(Some(AppLease {
        held: Held::File(file),
    }))
}

pub(crate) async fn lock_in_memory(
    held: &Arc<Mutex<HashSet<String>>>,
    app: &str,
    wait: bool,
) -> std::io::Result<Option<AppLease>> {
    loop {
        let taken = held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(app.to_owned());
        if taken {
            return Ok(Some(AppLease {
                held: Held::Memory {
                    held: Arc::clone(held),
                    app: app.to_owned(),
                },
            }));
        }
        if !wait {
            return Ok(None);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Where an app's lock lives: a file beside the database, locked by the operating system
/// (released when the process dies, however it dies), or, for a store in memory, this process.
#[derive(Debug, Clone)]
pub(crate) enum LockPlace {
    Folder(std::path::PathBuf),
    Memory(std::sync::Arc<std::sync::Mutex<std::collections::HashSet<String>>>),
}

/// An app's names as a file name: hex, so any app name is a safe one.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Takes the app's lock, so that its runs never overlap: held until the lease is dropped,
    /// and released by the operating system if the process dies, so a run that was killed never
    /// blocks the next one. With `wait`, waits for the run in progress to end; otherwise a run
    /// in progress is [`StoreError::Busy`].
    pub async fn lock_app(&self, app: &str, wait: bool) -> Result<AppLease, StoreError> {
        let lease = match &self.locks {
            LockPlace::Folder(folder) => {
                let path = folder.join(format!("{}.lock", hex(app)));
                let folder = folder.clone();
                // Waiting for a file lock blocks the thread: not an async one.
                tokio::task::spawn_blocking(move || lock_file(folder, path, wait))
                    .await
                    .map_err(StoreError::from_join)?
            }
            LockPlace::Memory(held) => lock_in_memory(held, app, wait).await,
        };
        match lease {
            Ok(Some(lease)) => Ok(lease),
            Ok(None) => Err(self.busy(app).await),
            Err(e) => Err(StoreError::Lock {
                app: app.to_owned(),
                source: e,
            }),
        }
    }

    async fn busy(&self, app: &str) -> StoreError {
        let running = sqlx::query(
            "SELECT id, pid, started_at FROM runs WHERE app = ? AND status = 'running'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(app)
        .fetch_optional(&self.pool)
        .await
        .ok()
        .flatten();
        StoreError::Busy {
            app: app.to_owned(),
            run: running.map(|r| RunInProgress {
                id: r.get(0),
                pid: r.get(1),
                started_at: r.get(2),
            }),
        }
    }
}
