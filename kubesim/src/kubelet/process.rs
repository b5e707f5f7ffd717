//! Container processes: a fresh environment, the pod directory as working directory, output
//! appended to the container's log file, its own process group (so a stop reaches its
//! children), and — between fork and exec — a private mount namespace with the volumes
//! bind-mounted at their mountPaths, the pod's hostname, and death with kubesim.

use std::ffi::CString;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

/// A volume directory (or file) bind-mounted at `target` inside the process's mount namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    pub source: PathBuf,
    pub target: PathBuf,
    pub read_only: bool,
}

pub struct Launch<'a> {
    pub program: &'a Path,
    pub args: &'a [String],
    pub env: &'a [(String, String)],
    pub cwd: &'a Path,
    pub log: &'a Path,
    pub mounts: &'a [Mount],
    pub hostname: &'a str,
}

/// Whether mounts can be made (root in the initial user namespace on this machine).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Why a process did not start: before the fork (the container waits with
/// `CreateContainerError`) or at exec (it terminates with `StartError`, as runtimes report).
#[derive(Debug, PartialEq, Eq)]
pub enum SpawnError {
    Create(String),
    Start(String),
}

/// Starts a container's process. Must be called from an async task on a runtime worker thread,
/// never from `spawn_blocking`: PR_SET_PDEATHSIG fires when the *thread* that forked exits, and
/// blocking-pool threads exit when idle, which would kill the container.
pub fn spawn(l: &Launch) -> Result<Child, SpawnError> {
    let isolated = is_root();
    if !isolated && !l.mounts.is_empty() {
        return Err(SpawnError::Create(
            "kubesim must run as root to mount volumes (each container gets a private mount namespace with \
             its volumeMounts); run it as root, or set automountServiceAccountToken: false and use no volumes"
                .into(),
        ));
    }
    let create = |what: &str, e: std::io::Error| SpawnError::Create(format!("{what}: {e}"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .open(l.log)
        .map_err(|e| create(&format!("opening log {}", l.log.display()), e))?;
    let log_err = log.try_clone().map_err(|e| create(&format!("opening log {}", l.log.display()), e))?;
    let mut mounts = prepare_mounts(l.mounts).map_err(SpawnError::Create)?;
    let hostname = CString::new(l.hostname).map_err(|_| SpawnError::Create("hostname contains NUL".into()))?;
    let parent = std::process::id();
    // The binary is opened here and run as /proc/self/fd/N: a volume mounted over the
    // directory it lives in (an emptyDir at /tmp, say) would otherwise hide it from the exec
    // that follows the mounts.
    let binary = std::fs::File::open(l.program)
        .map_err(|e| SpawnError::Start(format!("failed to start {}: {e}", l.program.display())))?;
    let binary_fd = binary.as_raw_fd();
    let mut cmd = Command::new(format!("/proc/self/fd/{binary_fd}"));
    cmd.arg0(l.program)
        .args(l.args)
        .env_clear()
        .envs(host_defaults(l.env))
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .current_dir(l.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0)
        .kill_on_drop(false);
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // system calls on data prepared before the fork (no allocation, no locks).
    unsafe {
        cmd.pre_exec(move || {
            // Kept open across the exec: a script's interpreter reads the script through it.
            if libc::fcntl(binary_fd, libc::F_SETFD, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if isolated {
                isolate(&mut mounts, &hostname)?;
            }
            die_with_parent(parent)
        });
    }
    let spawned = cmd.spawn();
    drop(binary);
    spawned.map_err(|e| {
        let hint = if isolated && e.raw_os_error() == Some(libc::EPERM) {
            " (the container's mount namespace and bind mounts need CAP_SYS_ADMIN)"
        } else {
            ""
        };
        SpawnError::Start(format!("failed to start {}: {e}{hint}", l.program.display()))
    })
}

/// The variables every process has unless its spec sets them: the host's PATH (binaries are
/// host binaries) and HOME as for root.
fn host_defaults(env: &[(String, String)]) -> Vec<(String, String)> {
    let path =
        std::env::var("PATH").unwrap_or_else(|_| "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    [("PATH", path), ("HOME", "/root".into())]
        .into_iter()
        .filter(|(k, _)| !env.iter().any(|(n, _)| n == k))
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}

struct PreparedMount {
    source: CString,
    target: CString,
    read_only: bool,
    /// `/proc/self/fd/N` of `source`, opened in the child's namespace before any mount: volume
    /// sources live in kubesim's state directory, which an earlier mount (an emptyDir at /tmp,
    /// when the state directory is under /tmp) may hide. Filled in the child, hence no String.
    by_fd: [u8; 32],
}

/// Creates missing mount points (a directory, or an empty file for a file source), orders the
/// mounts parents first, and turns paths into C strings before the fork.
fn prepare_mounts(mounts: &[Mount]) -> Result<Vec<PreparedMount>, String> {
    let mut sorted: Vec<&Mount> = mounts.iter().collect();
    sorted.sort_by_key(|m| m.target.components().count());
    let mut out = Vec::with_capacity(sorted.len());
    for (i, m) in sorted.iter().enumerate() {
        let point = mount_point(&sorted[..i], &m.target);
        let create = |what: &Path, e: std::io::Error| format!("creating mount point {}: {e}", what.display());
        let meta = std::fs::metadata(&m.source).map_err(|e| format!("volume source {}: {e}", m.source.display()))?;
        if meta.is_dir() {
            std::fs::create_dir_all(&point).map_err(|e| create(&point, e))?;
        } else if !point.exists() {
            if let Some(parent) = point.parent() {
                std::fs::create_dir_all(parent).map_err(|e| create(parent, e))?;
            }
            std::fs::write(&point, b"").map_err(|e| create(&point, e))?;
        }
        let c =
            |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("path {} contains NUL", p.display()));
        out.push(PreparedMount {
            source: c(&m.source)?,
            target: c(&m.target)?,
            read_only: m.read_only,
            by_fd: [0; 32],
        });
    }
    Ok(out)
}

/// Where the mount point of `target` must exist before the fork: on the host, or — when it lies
/// inside an earlier mount — in that volume, which is what the path shows once it is mounted.
fn mount_point(earlier: &[&Mount], target: &Path) -> PathBuf {
    let parent = earlier.iter().rev().find(|p| target.starts_with(&p.target) && target != p.target);
    match parent.map(|p| (p, target.strip_prefix(&p.target))) {
        Some((p, Ok(rest))) => p.source.join(rest),
        _ => target.to_path_buf(),
    }
}

/// In the child: a private mount and UTS namespace, the volumes bound onto their mountPaths.
fn isolate(mounts: &mut [PreparedMount], hostname: &CString) -> std::io::Result<()> {
    let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
    // SAFETY: plain system calls on valid NUL-terminated strings that outlive the calls.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWUTS))?;
        // Private propagation: the binds below must not leak into the host's namespace.
        check(libc::mount(
            c"none".as_ptr(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        // Every source is opened before the first mount, in this namespace (a bind from a
        // descriptor of the parent's namespace would be refused).
        for m in mounts.iter_mut() {
            let fd = libc::open(m.source.as_ptr(), libc::O_PATH | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            fd_path(&mut m.by_fd, fd);
        }
        for m in mounts.iter() {
            let source = m.by_fd.as_ptr().cast::<libc::c_char>();
            let flags = libc::MS_BIND | libc::MS_REC;
            check(libc::mount(source, m.target.as_ptr(), std::ptr::null(), flags, std::ptr::null()))?;
            if m.read_only {
                let ro = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY;
                check(libc::mount(source, m.target.as_ptr(), std::ptr::null(), ro, std::ptr::null()))?;
            }
        }
        check(libc::sethostname(hostname.as_ptr(), hostname.as_bytes().len()))?;
    }
    Ok(())
}

/// Writes `/proc/self/fd/<fd>` and a NUL into `buf`, without allocating (this runs between
/// fork and exec).
fn fd_path(buf: &mut [u8; 32], fd: libc::c_int) {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 10];
    let (mut n, mut len) = (fd.unsigned_abs(), 0);
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        buf[PREFIX.len() + i] = digits[len - 1 - i];
    }
    buf[PREFIX.len() + len] = 0;
}

/// No container outlives kubesim: SIGKILL when the thread that forked it goes away.
fn die_with_parent(parent: u32) -> std::io::Result<()> {
    // SAFETY: prctl and getppid are async-signal-safe system calls.
    unsafe {
        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The parent may have died before the prctl: then we were reparented already.
        if u32::try_from(libc::getppid()).ok() != Some(parent) {
            libc::_exit(1);
        }
    }
    Ok(())
}

/// Sends `signal` to a container's process group (the process and everything it started).
pub fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pgid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill has no memory preconditions; a group that is gone yields ESRCH, ignored.
    unsafe {
        libc::kill(-pgid, signal);
    }
}

/// How a process ended: its exit code, or 128 + the signal that killed it (as runtimes report).
pub fn exit_code(status: &std::process::ExitStatus) -> (i32, Option<i32>) {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => (code, None),
        (None, Some(sig)) => (128 + sig, Some(sig)),
        (None, None) => (-1, None),
    }
}

/// Runs `argv` inside the mount namespace of the running process `pid` (an exec probe), with
/// `env`, killing it after `timeout`. Returns the exit code and the first 10 KiB of its output.
pub async fn exec_in(
    pid: u32,
    argv: &[String],
    env: &[(String, String)],
    cwd: &Path,
    timeout: Duration,
) -> Result<(i32, String), String> {
    let (program, args) = argv.split_first().ok_or("exec probe without a command")?;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).map_err(|e| format!("entering the container: {e}"))?;
    let cwd_c = CString::new(cwd.as_os_str().as_bytes()).map_err(|_| "cwd contains NUL".to_owned())?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(host_defaults(env))
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&ns);
    let (isolated, parent) = (is_root(), std::process::id());
    // SAFETY: setns and chdir are async-signal-safe; `fd` and `cwd_c` stay valid until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            if isolated && (libc::setns(fd, libc::CLONE_NEWNS) != 0 || libc::chdir(cwd_c.as_ptr()) != 0) {
                return Err(std::io::Error::last_os_error());
            }
            die_with_parent(parent)
        });
    }
    let child = cmd.spawn().map_err(|e| format!("exec {program:?}: {e}"))?;
    drop(ns);
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| format!("command {argv:?} timed out after {timeout:?}"))?
        .map_err(|e| format!("exec {program:?}: {e}"))?;
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    text.truncate(text.floor_char_boundary(10 * 1024));
    Ok((exit_code(&out.status).0, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_paths_are_written_without_allocation() {
        let text = |fd| {
            let mut buf = [0xffu8; 32];
            fd_path(&mut buf, fd);
            std::ffi::CStr::from_bytes_until_nul(&buf).unwrap().to_str().unwrap().to_owned()
        };
        assert_eq!(text(0), "/proc/self/fd/0");
        assert_eq!(text(7), "/proc/self/fd/7");
        assert_eq!(text(1234567), "/proc/self/fd/1234567");
        assert_eq!(text(i32::MAX), "/proc/self/fd/2147483647");
    }

    #[test]
    fn nested_mount_points_are_made_inside_the_outer_volume() {
        let m = |source: &str, target: &str| Mount { source: source.into(), target: target.into(), read_only: false };
        let outer = m("/pods/p/volumes/data", "/srv");
        let inner = m("/pods/p/volumes/cfg", "/srv/conf/app");
        assert_eq!(mount_point(&[], Path::new("/srv")), Path::new("/srv"));
        assert_eq!(mount_point(&[&outer], &inner.target), Path::new("/pods/p/volumes/data/conf/app"));
        assert_eq!(mount_point(&[&outer], Path::new("/srvx")), Path::new("/srvx"));
    }

    #[test]
    fn defaults_yield_to_the_spec() {
        let env = vec![("HOME".to_owned(), "/home/app".to_owned())];
        let d = host_defaults(&env);
        assert!(d.iter().any(|(k, _)| k == "PATH"));
        assert!(!d.iter().any(|(k, _)| k == "HOME"));
    }

    #[tokio::test]
    async fn a_process_logs_and_reports_its_exit() {
        let dir = std::env::temp_dir().join(format!("kubesim-process-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("c.log");
        let args = vec!["-c".to_owned(), "echo out $GREETING; echo err >&2; exit 3".to_owned()];
        let env = vec![("GREETING".to_owned(), "hi".to_owned())];
        let launch = Launch {
            program: Path::new("/bin/sh"),
            args: &args,
            env: &env,
            cwd: &dir,
            log: &log,
            mounts: &[],
            hostname: "p",
        };
        let mut child = spawn(&launch).unwrap();
        let status = child.wait().await.unwrap();
        assert_eq!(exit_code(&status), (3, None));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out hi\nerr\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
