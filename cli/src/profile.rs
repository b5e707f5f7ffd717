//! Connection settings from a profile file, for people who talk to several stores:
//!
//! ```toml
//! [profiles.default]
//! url = "http://127.0.0.1:8000"
//! token_file = "~/.config/pinak/dev.token"
//!
//! [profiles.prod]
//! url = "https://pinak.example.com"
//! token_file = "/run/secrets/pinak-token"
//! timeout = 60
//! ```
//!
//! The file is `--config` / `PINAK_CONFIG`, else `$XDG_CONFIG_HOME/pinak/config.toml` (or
//! `~/.config/pinak/config.toml`) when it exists; the profile is `--profile` / `PINAK_PROFILE`,
//! else `default`. A flag or environment variable wins over the profile, which wins over the
//! built-in defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::Failure;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// One profile: every field optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub url: Option<String>,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub timeout: Option<u64>,
}

/// The default file's path, from the environment.
fn default_path(xdg: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    xdg.filter(|p| p.is_absolute()).or_else(|| home.map(|h| h.join(".config"))).map(|d| d.join("pinak/config.toml"))
}

/// `~/x` as `$HOME/x`.
fn expand(path: &Path, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_owned(),
    }
}

/// The chosen profile, with `token_file` read into `token`. No file and no profile asked for
/// is an empty profile; a profile asked for that the file lacks is a usage error.
pub fn load(config: Option<&Path>, name: Option<&str>) -> Result<Profile, Failure> {
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
    let path = match config {
        Some(p) => Some(expand(p, home.as_deref())),
        None => default_path(xdg, home.clone()).filter(|p| p.exists()),
    };
    let Some(path) = path else {
        return match name {
            Some(n) => Err(Failure::Usage(format!("profile `{n}` asked for, but there is no profile file (--config)"))),
            None => Ok(Profile::default()),
        };
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Failure::Usage(format!("cannot read profile file {}: {e}", path.display())))?;
    let file: File = toml::from_str(&text)
        .map_err(|e| Failure::Usage(format!("profile file {}: {}", path.display(), e.to_string().trim_end())))?;
    let mut profile = match (name, file.profiles.get(name.unwrap_or("default"))) {
        (_, Some(p)) => p.clone(),
        (None, None) => Profile::default(),
        (Some(n), None) => {
            let known: Vec<&str> = file.profiles.keys().map(String::as_str).collect();
            return Err(Failure::Usage(format!(
                "no profile `{n}` in {} (it has: {})",
                path.display(),
                if known.is_empty() { "none".to_owned() } else { known.join(", ") }
            )));
        }
    };
    if let Some(file) = profile.token_file.take() {
        let file = expand(&file, home.as_deref());
        let token = std::fs::read_to_string(&file)
            .map_err(|e| Failure::Usage(format!("cannot read token_file {}: {e}", file.display())))?;
        profile.token = Some(token.trim().to_owned());
    }
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_follows_xdg() {
        let p = default_path(Some("/x".into()), Some("/h".into()));
        assert_eq!(p, Some(PathBuf::from("/x/pinak/config.toml")));
        assert_eq!(
            default_path(Some("rel".into()), Some("/h".into())),
            Some(PathBuf::from("/h/.config/pinak/config.toml"))
        );
        assert_eq!(expand(Path::new("~/t"), Some(Path::new("/h"))), PathBuf::from("/h/t"));
        assert_eq!(expand(Path::new("/a/~/t"), Some(Path::new("/h"))), PathBuf::from("/a/~/t"));
    }

    #[test]
    fn a_profile_file_is_strict() {
        let file: Result<File, _> = toml::from_str("[profiles.a]\nurl = \"http://x\"\ntokne = \"t\"\n");
        assert!(file.unwrap_err().to_string().contains("tokne"));
        let file: File = toml::from_str("[profiles.a]\nurl = \"http://x\"\ntimeout = 5\n").unwrap();
        assert_eq!(file.profiles["a"].timeout, Some(5));
    }
}
