//! Images: which local binary a container image stands for, and the command line a container
//! runs (its `command` picks a sibling binary of the image's entrypoint, as an image holding
//! several programs would).

use std::path::{Path, PathBuf};

/// The binary mapped to `image`: an entry named exactly as the image, else an entry named as the
/// image without its tag and digest (`pinak-api:dev` and `pinak-api@sha256:…` → `pinak-api`).
pub fn resolve<'a>(images: &'a [(String, PathBuf)], image: &str) -> Option<&'a Path> {
    let repo = repository(image);
    images
        .iter()
        .find(|(name, _)| name == image)
        .or_else(|| images.iter().find(|(name, _)| name == repo))
        .map(|(_, path)| path.as_path())
}

/// The image name without `:tag` and `@digest` (a registry's `host:port/` prefix is kept).
pub fn repository(image: &str) -> &str {
    let no_digest = image.split('@').next().unwrap_or(image);
    let name_start = no_digest.rfind('/').map_or(0, |i| i + 1);
    match no_digest[name_start..].rfind(':') {
        Some(i) => &no_digest[..name_start + i],
        None => no_digest,
    }
}

/// The waiting message of a container whose image is not mapped.
pub fn unmapped_message(image: &str) -> String {
    format!(
        "image {image:?} is not mapped to a local binary: kubesim runs only mapped images \
         (start it with --image {}=PATH)",
        repository(image)
    )
}

#[derive(Debug, PartialEq, Eq)]
pub struct CommandLine {
    pub program: PathBuf,
    pub args: Vec<String>,
}

/// What runs for a container of an image whose entrypoint is `entrypoint`. Without `command` the
/// entrypoint runs with `args`. With `command`, its first word names a program of the image: the
/// binary of that basename next to the entrypoint (`pinak-operator` beside `pinak-api` in
/// target/debug), else the entrypoint itself; the rest of `command` then `args` follow.
pub fn command_line(entrypoint: &Path, command: &[String], args: &[String]) -> CommandLine {
    let Some((first, rest)) = command.split_first() else {
        return CommandLine { program: entrypoint.to_path_buf(), args: args.to_vec() };
    };
    let sibling = Path::new(first).file_name().zip(entrypoint.parent()).map(|(base, dir)| dir.join(base));
    let program = sibling.filter(|p| p.is_file()).unwrap_or_else(|| entrypoint.to_path_buf());
    CommandLine { program, args: rest.iter().chain(args).cloned().collect() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images() -> Vec<(String, PathBuf)> {
        vec![
            ("pinak-api".into(), PathBuf::from("/bin/api")),
            ("pinak-api:canary".into(), PathBuf::from("/bin/canary")),
            ("localhost:5000/tools/web".into(), PathBuf::from("/bin/web")),
        ]
    }

    #[test]
    fn exact_names_win_over_repositories() {
        let images = images();
        assert_eq!(resolve(&images, "pinak-api:canary"), Some(Path::new("/bin/canary")));
        assert_eq!(resolve(&images, "pinak-api:1.2"), Some(Path::new("/bin/api")));
        assert_eq!(resolve(&images, "pinak-api"), Some(Path::new("/bin/api")));
        assert_eq!(resolve(&images, "pinak-api@sha256:abcd"), Some(Path::new("/bin/api")));
        assert_eq!(resolve(&images, "localhost:5000/tools/web:v3"), Some(Path::new("/bin/web")));
        assert_eq!(resolve(&images, "nginx:1.27"), None);
        assert_eq!(resolve(&images, "ghcr.io/x/pinak-api:1"), None, "a different repository is a different image");
    }

    #[test]
    fn repository_keeps_a_registry_port() {
        assert_eq!(repository("localhost:5000/web"), "localhost:5000/web");
        assert_eq!(repository("localhost:5000/web:1@sha256:00"), "localhost:5000/web");
        assert!(unmapped_message("nginx:1.27").contains("--image nginx=PATH"));
    }

    #[test]
    fn command_picks_a_sibling_binary_or_falls_back_to_the_entrypoint() {
        let dir = std::env::temp_dir().join(format!("kubesim-image-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pinak-api"), "").unwrap();
        std::fs::write(dir.join("pinak-operator"), "").unwrap();
        let api = dir.join("pinak-api");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

        let plain = command_line(&api, &[], &s(&["--port", "80"]));
        assert_eq!(plain, CommandLine { program: api.clone(), args: s(&["--port", "80"]) });

        let operator = command_line(&api, &s(&["/usr/local/bin/pinak-operator", "run"]), &s(&["-v"]));
        assert_eq!(operator, CommandLine { program: dir.join("pinak-operator"), args: s(&["run", "-v"]) });

        let unknown = command_line(&api, &s(&["/bin/entry", "serve"]), &[]);
        assert_eq!(unknown, CommandLine { program: api, args: s(&["serve"]) });
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
