//! The real kubelet's atomic writer for Secret, ConfigMap, downwardAPI and projected volumes:
//! the files live in a timestamped directory `..2006_01_02_15_04_05.NNN`, `..data` is a symlink
//! to it, and each visible name is a symlink into `..data`. An update writes a new timestamped
//! directory and swaps `..data` with one rename, so a reader sees the old set or the new set,
//! never a mix — which is what hot-reloading programs (and their inotify watches) rely on.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path};

/// One file of a volume.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct File {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// A volume's files by relative path (`key`, or `dir/key` from an item's path).
pub type Payload = BTreeMap<String, File>;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// Makes `dir` hold exactly `payload`. Returns whether anything changed: an unchanged payload is
/// not rewritten, so watchers of the volume see no event.
pub fn write(dir: &Path, payload: &Payload) -> io::Result<bool> {
    for path in payload.keys() {
        validate(path)?;
    }
    fs::create_dir_all(dir)?;
    let old = fs::read_link(dir.join(DATA)).ok();
    if let Some(old) = &old
        && read_tree(&dir.join(old))? == *payload
    {
        return Ok(false);
    }
    let ts = timestamp_dir_name();
    let ts_path = dir.join(&ts);
    fs::create_dir(&ts_path)?;
    fs::set_permissions(&ts_path, fs::Permissions::from_mode(0o755))?;
    for (path, file) in payload {
        let target = ts_path.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &file.data)?;
        fs::set_permissions(&target, fs::Permissions::from_mode(file.mode))?;
    }
    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&ts, &tmp)?;
    fs::rename(&tmp, dir.join(DATA))?;
    let visible: BTreeSet<&str> = payload.keys().filter_map(|p| p.split('/').next()).collect();
    for name in &visible {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(name), &link)?;
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != ts.as_str()) {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !visible.contains(name.as_str()) && entry.file_type()?.is_symlink() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(true)
}

/// A payload path must stay inside the volume and not collide with the writer's own names.
fn validate(path: &str) -> io::Result<()> {
    let bad = |why: &str| {
        Err(io::Error::new(io::ErrorKind::InvalidInput, format!("invalid volume file path {path:?}: {why}")))
    };
    if path.is_empty() {
        return bad("empty");
    }
    if path.starts_with("..") {
        return bad("must not start with '..'");
    }
    let p = Path::new(path);
    if p.is_absolute() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        return bad("must be relative and must not contain '..'");
    }
    Ok(())
}

/// `..2006_01_02_15_04_05.<random>` as Go's `os.MkdirTemp` names it for the real writer.
fn timestamp_dir_name() -> String {
    let random = uuid::Uuid::new_v4().as_u128() % 10_000_000_000;
    format!("..{}.{random}", chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S"))
}

/// The files under `dir` as a payload (symlinks and unreadable entries are not files of ours).
fn read_tree(dir: &Path) -> io::Result<Payload> {
    let mut out = Payload::new();
    let mut stack = vec![(dir.to_path_buf(), String::new())];
    while let Some((path, prefix)) = stack.pop() {
        for entry in fs::read_dir(&path)? {
            let entry = entry?;
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push((entry.path(), format!("{name}/")));
            } else if kind.is_file() {
                let mode = entry.metadata()?.permissions().mode() & 0o7777;
                out.insert(name, File { data: fs::read(entry.path())?, mode });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &str)]) -> Payload {
        files.iter().map(|(k, v)| (k.to_string(), File { data: v.as_bytes().to_vec(), mode: 0o644 })).collect()
    }

    fn temp() -> std::path::PathBuf {
        std::env::temp_dir().join(format!("kubesim-atomic-{}", uuid::Uuid::new_v4().simple()))
    }

    #[test]
    fn layout_update_and_removal() {
        let dir = temp();
        assert!(write(&dir, &payload(&[("password", "one"), ("conf/app.yaml", "a: 1")])).unwrap());
        let data = fs::read_link(dir.join("..data")).unwrap();
        let first = data.to_string_lossy().into_owned();
        assert!(first.starts_with("..") && first.len() > 22, "{first}");
        assert_eq!(fs::read_link(dir.join("password")).unwrap(), Path::new("..data/password"));
        assert_eq!(fs::read_link(dir.join("conf")).unwrap(), Path::new("..data/conf"));
        assert_eq!(fs::read_to_string(dir.join("password")).unwrap(), "one");
        assert_eq!(fs::read_to_string(dir.join("conf/app.yaml")).unwrap(), "a: 1");

        assert!(
            !write(&dir, &payload(&[("password", "one"), ("conf/app.yaml", "a: 1")])).unwrap(),
            "same payload: no write"
        );
        assert_eq!(fs::read_link(dir.join("..data")).unwrap(), data);

        assert!(write(&dir, &payload(&[("password", "two")])).unwrap());
        assert_eq!(fs::read_to_string(dir.join("password")).unwrap(), "two");
        assert!(fs::symlink_metadata(dir.join("conf")).is_err(), "a dropped key's link goes");
        assert!(!dir.join(&first).exists(), "the old timestamped directory goes");
        let names: Vec<String> =
            fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert_eq!(names.len(), 3, "{names:?}: ..data, one timestamped directory, password");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn modes_count_as_changes() {
        let dir = temp();
        let mut p = payload(&[("key", "v")]);
        write(&dir, &p).unwrap();
        p.get_mut("key").unwrap().mode = 0o400;
        assert!(write(&dir, &p).unwrap());
        let mode = fs::metadata(dir.join("key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn paths_that_escape_are_refused() {
        let dir = temp();
        for bad in ["../x", "/etc/passwd", "..data", "a/../../b", ""] {
            assert!(write(&dir, &payload(&[(bad, "x")])).is_err(), "{bad:?}");
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
