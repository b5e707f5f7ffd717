//! Secrets from files that a mounted Kubernetes Secret provides and the kubelet updates in
//! place (`PINAK_JWT_SECRET_FILE`, `PINAK_EMBEDDING_API_KEY_FILE`, and the database credential
//! files of `credentials`), so a rotated value reaches a running pod without a restart.
//!
//! - At start the file must be readable and hold a valid value, else the service does not start.
//! - A task re-reads it by path every [`POLL_INTERVAL`]: Kubernetes swaps the `..data` symlink
//!   of a mounted Secret, so each read opens the path afresh (no descriptor kept, no inotify).
//! - A changed, valid value serves the next request. A file that becomes unreadable, empty or
//!   invalid is logged once (never its content) and the last good value stays in use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use crate::runtime::config::ConfigError;

/// How often the files are re-read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// A secret is one line; a larger file is not one.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// A file's value: its content without trailing whitespace, which must leave something.
pub fn read_value(path: &Path) -> Result<String, String> {
    // Opened by path every time (symlinks followed), never kept open.
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err("larger than 64 KiB".into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let value = text.trim_end();
    if value.is_empty() {
        return Err("the file is empty".into());
    }
    Ok(value.to_owned())
}

/// One watched file and the last problem logged about it, so that each is logged once.
pub struct Watched {
    pub var: &'static str,
    pub path: PathBuf,
    problem: Option<String>,
}

impl Watched {
    pub fn new(var: &'static str, path: PathBuf) -> Self {
        Watched { var, path, problem: None }
    }

    /// `Some(value)` when the file could be used now; `None` (logged on a new problem) when the
    /// caller must keep its last good value.
    pub fn check<T>(&mut self, now: Result<T, String>) -> Option<T> {
        match now {
            Ok(value) => {
                if self.problem.take().is_some() {
                    tracing::info!(variable = self.var, path = %self.path.display(), "secret file usable again");
                }
                Some(value)
            }
            Err(reason) => {
                if self.problem.as_ref() != Some(&reason) {
                    tracing::warn!(
                        variable = self.var,
                        path = %self.path.display(),
                        reason = %reason,
                        "cannot use the secret file; keeping the last good value"
                    );
                    self.problem = Some(reason);
                }
                None
            }
        }
    }
}

/// A secret's current parsed value: fixed (from an environment variable) or kept up to date
/// from a file.
pub struct SecretValue<T> {
    current: RwLock<Arc<T>>,
}

impl<T: Send + Sync + 'static> SecretValue<T> {
    pub fn fixed(value: T) -> Arc<Self> {
        Arc::new(SecretValue { current: RwLock::new(Arc::new(value)) })
    }

    /// Reads and parses `path` (a configuration error names `var`), then re-reads it in a task
    /// that ends when the value is dropped. Needs a Tokio runtime.
    pub fn watch(
        var: &'static str,
        path: PathBuf,
        parse: fn(&str) -> Result<T, String>,
    ) -> Result<Arc<Self>, ConfigError> {
        let raw = read_value(&path).map_err(|reason| ConfigError::Invalid {
            name: var,
            value: path.display().to_string(),
            reason: format!("cannot read a secret from it: {reason}"),
        })?;
        let value = parse(&raw).map_err(|reason| ConfigError::Invalid {
            name: var,
            value: path.display().to_string(),
            reason: format!("its content is not usable: {reason}"),
        })?;
        let secret = Self::fixed(value);
        spawn_poller(Arc::downgrade(&secret), Watched::new(var, path), raw, parse);
        Ok(secret)
    }

    pub fn get(&self) -> Arc<T> {
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, value: T) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    }
}

fn spawn_poller<T: Send + Sync + 'static>(
    secret: Weak<SecretValue<T>>,
    mut watched: Watched,
    mut last_raw: String,
    parse: fn(&str) -> Result<T, String>,
) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(POLL_INTERVAL).await;
            if secret.strong_count() == 0 {
                return;
            }
            let path = watched.path.clone();
            // A slow or hung mount must not block the runtime.
            let Ok(now) = tokio::task::spawn_blocking(move || read_value(&path)).await else { continue };
            let changed = now.and_then(|raw| match raw == last_raw {
                true => Ok(None),
                false => parse(&raw).map(|value| Some((raw, value))),
            });
            let Some(live) = secret.upgrade() else { return };
            if let Some(Some((raw, value))) = watched.check(changed) {
                live.set(value);
                last_raw = raw;
                tracing::info!(variable = watched.var, "secret reloaded from its file; the next requests use it");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_len(s: &str) -> Result<usize, String> {
        if s.starts_with("bad") { Err("starts with bad".into()) } else { Ok(s.len()) }
    }

    #[tokio::test]
    async fn a_changed_file_is_picked_up_and_a_bad_one_keeps_the_last_good_value() {
        let dir = std::env::temp_dir().join(format!("pinak-secret-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("value");
        std::fs::write(&path, "abc\n").unwrap();
        let secret = SecretValue::watch("TEST_FILE", path.clone(), parse_len).unwrap();
        assert_eq!(*secret.get(), 3);

        let wait_for = |want: usize| {
            let secret = secret.clone();
            async move {
                for _ in 0..50 {
                    if *secret.get() == want {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                false
            }
        };
        std::fs::write(&path, "abcdef").unwrap();
        assert!(wait_for(6).await, "the new value was not picked up");
        std::fs::write(&path, "bad value").unwrap();
        tokio::time::sleep(POLL_INTERVAL * 2).await;
        assert_eq!(*secret.get(), 6, "an invalid value replaced the last good one");
        std::fs::write(&path, "").unwrap();
        tokio::time::sleep(POLL_INTERVAL * 2).await;
        assert_eq!(*secret.get(), 6, "an empty file replaced the last good value");
        std::fs::write(&path, "ab").unwrap();
        assert!(wait_for(2).await, "a good value after bad ones was not picked up");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_missing_or_invalid_file_is_a_configuration_error() {
        let missing = SecretValue::watch("TEST_FILE", "/nonexistent/pinak".into(), parse_len);
        assert!(matches!(missing, Err(ConfigError::Invalid { name: "TEST_FILE", .. })));
        let dir = std::env::temp_dir().join(format!("pinak-secret-file-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("v"), "bad").unwrap();
        let Err(err) = SecretValue::watch("TEST_FILE", dir.join("v"), parse_len) else { panic!("accepted") };
        assert!(err.to_string().contains("starts with bad"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
