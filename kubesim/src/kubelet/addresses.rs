//! Address blocks. Pod IPs (127.2.x.y) and Service IPs (127.1.x.y) are loopback addresses that
//! processes and the proxy really bind, on the one loopback interface of the machine. Each
//! kubesim therefore claims a block x (250 addresses of each kind) with an exclusive lock on a
//! file under the temp directory, held while it runs, so that kubesims started side by side
//! (parallel tests) never hand out the same address.

use std::fs::File;
use std::os::fd::AsRawFd;

/// A claimed block; the lock goes with the value.
pub struct Claim {
    pub block: u32,
    _lock: Option<File>,
}

/// Claims the first free block from a start that differs per process. Without a lockable
/// directory it falls back to that start unlocked (collisions then stay possible).
pub fn claim() -> Claim {
    let start = (std::process::id() ^ (uuid::Uuid::new_v4().as_u128() as u32)) % 256;
    let dir = std::env::temp_dir().join("kubesim-address-blocks");
    if std::fs::create_dir_all(&dir).is_ok() {
        for k in 0..256 {
            let block = (start + k) % 256;
            let Ok(file) =
                File::options().create(true).truncate(false).write(true).open(dir.join(format!("{block}.lock")))
            else {
                continue;
            };
            // SAFETY: flock on a descriptor we own; LOCK_NB makes it fail instead of waiting.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                return Claim { block, _lock: Some(file) };
            }
        }
    }
    tracing::warn!(
        "no free kubesim address block could be locked; pod and Service IPs may collide with another kubesim"
    );
    Claim { block: start, _lock: None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_claims_get_different_blocks() {
        let a = claim();
        let b = claim();
        assert_ne!(a.block, b.block);
        assert!(a.block < 256 && b.block < 256);
    }
}
