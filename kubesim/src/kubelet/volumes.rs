//! A pod's volumes under `<pod dir>/volumes/<name>`: Secret, ConfigMap, downwardAPI and projected
//! volumes written with the atomic writer (and rewritten in place when their sources change),
//! emptyDir directories, hostPath passed through, and the automounted service-account
//! directory (token, ca.crt, namespace). `mounts` turns a container's `volumeMounts` into the
//! bind mounts its process gets.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::atomic::{self, File, Payload};
use super::downward;
use super::objects::{Objects, Source};
use super::process::Mount;
use crate::auth::{Authenticator, TokenBinding};

/// Where every container finds its service-account credentials.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The directory of the automounted credentials (the real one is a projected volume named
/// `kube-api-access-<random>` that admission adds to the spec; here the spec is left alone).
const AUTOMOUNT: &str = "kube-api-access";
/// The real kubelet's default for the automounted token.
const AUTOMOUNT_TOKEN_SECONDS: i64 = 3607;
const DEFAULT_MODE: u32 = 0o644;

/// What the volume code reads: the pod's objects, the pod (the kubelet's view, with its IPs),
/// and the means to mint tokens.
pub struct Context<'a> {
    pub objects: &'a dyn Objects,
    pub pod: &'a Value,
    pub auth: &'a Authenticator,
    pub ca_pem: &'a str,
}

/// A token written into a volume, and when to mint its successor (at 80 % of its life, as the
/// real kubelet does).
struct Token {
    value: String,
    refresh_at: Instant,
}

pub struct Volumes {
    root: PathBuf,
    tokens: HashMap<String, Token>,
}

enum Content {
    Files(Payload),
    EmptyDir,
    HostPath(PathBuf),
}

impl Volumes {
    pub fn new(root: PathBuf) -> Self {
        Volumes { root, tokens: HashMap::new() }
    }

    /// Writes every volume as its sources are now. The error is the first failing volume's
    /// message, as the real kubelet's `FailedMount` event words it.
    pub fn sync(&mut self, cx: &Context) -> Result<(), String> {
        let mut first_error = None;
        for vol in cx.pod["spec"]["volumes"].as_array().into_iter().flatten() {
            let name = vol["name"].as_str().unwrap_or_default();
            if let Err(e) = self.sync_one(cx, name, vol) {
                first_error.get_or_insert(format!("MountVolume.SetUp failed for volume {name:?} : {e}"));
            }
        }
        if automounts(cx.objects, cx.pod)
            && let Err(e) = self.sync_automount(cx)
        {
            first_error.get_or_insert(format!("MountVolume.SetUp failed for volume \"{AUTOMOUNT}\" : {e}"));
        }
        first_error.map_or(Ok(()), Err)
    }

    fn sync_one(&mut self, cx: &Context, name: &str, vol: &Value) -> Result<(), String> {
        match self.content(cx, name, vol)? {
            Content::Files(payload) => {
                atomic::write(&self.root.join(name), &payload).map(drop).map_err(|e| e.to_string())
            }
            Content::EmptyDir => std::fs::create_dir_all(self.root.join(name)).map_err(|e| e.to_string()),
            Content::HostPath(path) => host_path(&path, vol["hostPath"]["type"].as_str().unwrap_or_default()),
        }
    }

    fn sync_automount(&mut self, cx: &Context) -> Result<(), String> {
        let mut payload = Payload::new();
        let token = self.token(cx, &format!("{AUTOMOUNT}/token"), &[], AUTOMOUNT_TOKEN_SECONDS)?;
        let file = |data: &[u8]| File { data: data.to_vec(), mode: DEFAULT_MODE };
        payload.insert("token".into(), file(token.as_bytes()));
        payload.insert("ca.crt".into(), file(cx.ca_pem.as_bytes()));
        payload
            .insert("namespace".into(), file(cx.pod["metadata"]["namespace"].as_str().unwrap_or_default().as_bytes()));
        atomic::write(&self.root.join(AUTOMOUNT), &payload).map(drop).map_err(|e| e.to_string())
    }

    fn content(&mut self, cx: &Context, name: &str, vol: &Value) -> Result<Content, String> {
        let mode = |v: &Value| v["defaultMode"].as_u64().map_or(DEFAULT_MODE, |m| m as u32);
        if vol["secret"].is_object() {
            let s = &vol["secret"];
            let mut payload = Payload::new();
            key_files(
                cx.objects,
                Source::Secret,
                s["secretName"].as_str().unwrap_or_default(),
                s,
                mode(s),
                &mut payload,
            )?;
            return Ok(Content::Files(payload));
        }
        if vol["configMap"].is_object() {
            let c = &vol["configMap"];
            let mut payload = Payload::new();
            key_files(cx.objects, Source::ConfigMap, c["name"].as_str().unwrap_or_default(), c, mode(c), &mut payload)?;
            return Ok(Content::Files(payload));
        }
        if vol["downwardAPI"].is_object() {
            let d = &vol["downwardAPI"];
            let mut payload = Payload::new();
            downward_files(cx.pod, &d["items"], mode(d), &mut payload)?;
            return Ok(Content::Files(payload));
        }
        if vol["projected"].is_object() {
            return self.projected(cx, name, &vol["projected"]).map(Content::Files);
        }
        if vol["emptyDir"].is_object() {
            return Ok(Content::EmptyDir);
        }
        if let Some(path) = vol["hostPath"]["path"].as_str() {
            return Ok(Content::HostPath(PathBuf::from(path)));
        }
        let kind = vol.as_object().and_then(|m| m.keys().find(|k| *k != "name").cloned()).unwrap_or_default();
        Err(format!(
            "kubesim does not support {kind:?} volumes \
             (only secret, configMap, downwardAPI, projected, emptyDir and hostPath)"
        ))
    }

    fn projected(&mut self, cx: &Context, name: &str, spec: &Value) -> Result<Payload, String> {
        let default_mode = spec["defaultMode"].as_u64().map_or(DEFAULT_MODE, |m| m as u32);
        let mut payload = Payload::new();
        for source in spec["sources"].as_array().into_iter().flatten() {
            if source["secret"].is_object() {
                let s = &source["secret"];
                key_files(
                    cx.objects,
                    Source::Secret,
                    s["name"].as_str().unwrap_or_default(),
                    s,
                    default_mode,
                    &mut payload,
                )?;
            } else if source["configMap"].is_object() {
                let c = &source["configMap"];
                key_files(
                    cx.objects,
                    Source::ConfigMap,
                    c["name"].as_str().unwrap_or_default(),
                    c,
                    default_mode,
                    &mut payload,
                )?;
            } else if source["downwardAPI"].is_object() {
                downward_files(cx.pod, &source["downwardAPI"]["items"], default_mode, &mut payload)?;
            } else if source["serviceAccountToken"].is_object() {
                let t = &source["serviceAccountToken"];
                let path = t["path"].as_str().unwrap_or("token");
                let audiences: Vec<String> =
                    t["audience"].as_str().filter(|a| !a.is_empty()).map(str::to_owned).into_iter().collect();
                let seconds = t["expirationSeconds"].as_i64().unwrap_or(3600);
                let token = self.token(cx, &format!("{name}/{path}"), &audiences, seconds)?;
                payload.insert(path.to_owned(), File { data: token.into_bytes(), mode: default_mode });
            } else {
                return Err(
                    "kubesim supports projected secret, configMap, downwardAPI and serviceAccountToken sources only"
                        .into(),
                );
            }
        }
        Ok(payload)
    }

    /// The token for one volume file, minted anew only when the last one is due for refresh.
    fn token(&mut self, cx: &Context, key: &str, audiences: &[String], seconds: i64) -> Result<String, String> {
        if let Some(t) = self.tokens.get(key)
            && Instant::now() < t.refresh_at
        {
            return Ok(t.value.clone());
        }
        let meta = &cx.pod["metadata"];
        let namespace = meta["namespace"].as_str().unwrap_or_default();
        let sa_name = cx.pod["spec"]["serviceAccountName"].as_str().filter(|s| !s.is_empty()).unwrap_or("default");
        let sa = cx
            .objects
            .get("serviceaccounts", sa_name)
            .ok_or_else(|| format!("failed to fetch token: serviceaccounts {sa_name:?} not found"))?;
        let binding = TokenBinding {
            namespace,
            service_account: sa_name,
            service_account_uid: sa["metadata"]["uid"].as_str().unwrap_or_default(),
            audiences: audiences.to_vec(),
            expiration_seconds: seconds,
            bound: Some(("Pod", meta["name"].as_str().unwrap_or_default(), meta["uid"].as_str().unwrap_or_default())),
        };
        let (value, exp) = cx.auth.mint(&binding).map_err(|e| format!("failed to fetch token: {e}"))?;
        let life = (exp - chrono::Utc::now().timestamp()).max(0) as u64;
        let refresh_at = Instant::now() + Duration::from_secs(life * 8 / 10);
        self.tokens.insert(key.to_owned(), Token { value: value.clone(), refresh_at });
        Ok(value)
    }

    /// When a token is next due for refresh (the pod then resyncs its volumes).
    pub fn next_refresh(&self) -> Option<Instant> {
        self.tokens.values().map(|t| t.refresh_at).min()
    }

    /// The bind mounts of `container`: its `volumeMounts`, plus the service-account directory
    /// unless the pod opts out or the container mounts something there itself.
    pub fn mounts(&self, objects: &dyn Objects, pod: &Value, container: &Value) -> Result<Vec<Mount>, String> {
        let volumes = pod["spec"]["volumes"].as_array().map(Vec::as_slice).unwrap_or_default();
        let mut out = Vec::new();
        for m in container["volumeMounts"].as_array().into_iter().flatten() {
            let name = m["name"].as_str().unwrap_or_default();
            let target = m["mountPath"].as_str().unwrap_or_default();
            if !target.starts_with('/') {
                return Err(format!("volumeMount {name:?}: mountPath {target:?} must be an absolute path"));
            }
            if m["subPathExpr"].as_str().is_some_and(|s| !s.is_empty()) {
                return Err(format!("volumeMount {name:?}: subPathExpr is not supported by kubesim"));
            }
            let vol = volumes
                .iter()
                .find(|v| v["name"] == name)
                .ok_or_else(|| format!("volumeMount {name:?}: no volume of that name"))?;
            let (mut source, always_read_only) = match vol["hostPath"]["path"].as_str() {
                Some(path) => (PathBuf::from(path), false),
                None => (self.root.join(name), !vol["emptyDir"].is_object()),
            };
            if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
                if Path::new(sub).components().any(|c| !matches!(c, Component::Normal(_))) {
                    return Err(format!("volumeMount {name:?}: subPath {sub:?} must be a relative path without '..'"));
                }
                source = source.join(sub);
                // A subPath of a writable volume is created as a directory, as the real kubelet does.
                if !always_read_only && !source.exists() {
                    std::fs::create_dir_all(&source)
                        .map_err(|e| format!("creating subPath {}: {e}", source.display()))?;
                }
            }
            let read_only = always_read_only || m["readOnly"] == true;
            out.push(Mount { source, target: PathBuf::from(target), read_only });
        }
        if automounts(objects, pod) && !out.iter().any(|m| m.target == Path::new(SERVICE_ACCOUNT_DIR)) {
            out.push(Mount {
                source: self.root.join(AUTOMOUNT),
                target: PathBuf::from(SERVICE_ACCOUNT_DIR),
                read_only: true,
            });
        }
        Ok(out)
    }

    /// Removes the volumes (the pod is gone; its secrets should not outlive it on disk).
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Whether the service-account directory is mounted: the pod's setting, else its
/// ServiceAccount's, else yes.
pub fn automounts(objects: &dyn Objects, pod: &Value) -> bool {
    if let Some(b) = pod["spec"]["automountServiceAccountToken"].as_bool() {
        return b;
    }
    let sa = pod["spec"]["serviceAccountName"].as_str().filter(|s| !s.is_empty()).unwrap_or("default");
    objects.get("serviceaccounts", sa).and_then(|s| s["automountServiceAccountToken"].as_bool()).unwrap_or(true)
}

/// The files of a Secret or ConfigMap reference: every key, or only its `items` (key → path,
/// with their own modes). A missing object or item key fails unless `optional`.
fn key_files(
    objects: &dyn Objects,
    source: Source,
    name: &str,
    spec: &Value,
    default_mode: u32,
    payload: &mut Payload,
) -> Result<(), String> {
    let optional = spec["optional"] == true;
    let Some(data) = source.data(objects, name) else {
        return if optional { Ok(()) } else { Err(source.not_found(name)) };
    };
    let Some(items) = spec["items"].as_array().filter(|i| !i.is_empty()) else {
        payload.extend(data.into_iter().map(|(k, data)| (k, File { data, mode: default_mode })));
        return Ok(());
    };
    for item in items {
        let key = item["key"].as_str().unwrap_or_default();
        let Some(bytes) = data.get(key) else {
            if optional {
                continue;
            }
            return Err(match source {
                Source::Secret => format!("references non-existent secret key: {key}"),
                Source::ConfigMap => format!("configmap references non-existent config key: {key}"),
            });
        };
        let path = item["path"].as_str().filter(|p| !p.is_empty()).unwrap_or(key);
        let mode = item["mode"].as_u64().map_or(default_mode, |m| m as u32);
        payload.insert(path.to_owned(), File { data: bytes.clone(), mode });
    }
    Ok(())
}

/// downwardAPI items: pod fields (`fieldRef`) and container resources (`resourceFieldRef`).
fn downward_files(pod: &Value, items: &Value, default_mode: u32, payload: &mut Payload) -> Result<(), String> {
    for item in items.as_array().into_iter().flatten() {
        let path = item["path"].as_str().unwrap_or_default();
        let value = if let Some(field) = item["fieldRef"]["fieldPath"].as_str() {
            downward::volume_field_ref(pod, field)?
        } else if item["resourceFieldRef"].is_object() {
            let rf = &item["resourceFieldRef"];
            let wanted = rf["containerName"].as_str().unwrap_or_default();
            let container = pod["spec"]["containers"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["name"] == wanted))
                .ok_or_else(|| format!("resourceFieldRef: container {wanted:?} not found"))?;
            downward::resource_field_ref(container, rf)?
        } else {
            continue;
        };
        let mode = item["mode"].as_u64().map_or(default_mode, |m| m as u32);
        payload.insert(path.to_owned(), File { data: value.into_bytes(), mode });
    }
    Ok(())
}

/// A hostPath volume's `type` check (the `…OrCreate` types create the path).
fn host_path(path: &Path, kind: &str) -> Result<(), String> {
    let result = match kind {
        "DirectoryOrCreate" => std::fs::create_dir_all(path),
        "FileOrCreate" => std::fs::OpenOptions::new().create(true).append(true).open(path).map(drop),
        "" => Ok(()),
        _ if path.exists() => Ok(()),
        _ => return Err(format!("hostPath type check failed: {} is not a {kind}", path.display())),
    };
    result.map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::super::objects::Fixed;
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn objects() -> Fixed {
        Fixed::default()
            .with("secrets", json!({"metadata": {"name": "keys"}, "data": {"a.pem": "QQ==", "b.pem": "Qg=="}}))
            .with("configmaps", json!({"metadata": {"name": "cfg"}, "data": {"app.yaml": "x: 1"}}))
            .with("serviceaccounts", json!({"metadata": {"name": "default", "uid": "sa-uid"}}))
    }

    fn pod(volumes: Value) -> Value {
        json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "pod-uid", "labels": {"app": "web"}},
            "spec": {"serviceAccountName": "default", "volumes": volumes,
                "containers": [{"name": "c", "resources": {"limits": {"memory": "2Mi"}}}]},
            "status": {"podIP": "127.2.0.3"},
        })
    }

    fn setup(volumes: Value) -> (PathBuf, Volumes, Value, Authenticator) {
        let root = std::env::temp_dir().join(format!("kubesim-volumes-{}", uuid::Uuid::new_v4().simple()));
        (root.clone(), Volumes::new(root), pod(volumes), Authenticator::generate().unwrap())
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn secret_config_map_downward_and_projected_files() {
        let (root, mut vols, pod, auth) = setup(json!([
            {"name": "keys", "secret": {"secretName": "keys", "defaultMode": 0o400}},
            {"name": "cfg", "configMap": {"name": "cfg",
                "items": [{"key": "app.yaml", "path": "conf/app.yaml", "mode": 0o600}]}},
            {"name": "info", "downwardAPI": {"items": [
                {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                {"path": "mem",
                    "resourceFieldRef": {"containerName": "c", "resource": "limits.memory", "divisor": "1Mi"}}]}},
            {"name": "all", "projected": {"sources": [
                {"secret": {"name": "keys", "items": [{"key": "a.pem", "path": "a"}]}},
                {"serviceAccountToken": {"audience": "vault", "expirationSeconds": 600, "path": "vault-token"}}]}},
            {"name": "scratch", "emptyDir": {}},
        ]));
        let objects = objects();
        let cx = Context { objects: &objects, pod: &pod, auth: &auth, ca_pem: "CA" };
        vols.sync(&cx).unwrap();
        assert_eq!(read(root.join("keys/a.pem")), "A");
        let mode = std::fs::metadata(root.join("keys/b.pem")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o400);
        assert_eq!(read(root.join("cfg/conf/app.yaml")), "x: 1");
        assert_eq!(read(root.join("info/labels")), "app=\"web\"");
        assert_eq!(read(root.join("info/mem")), "2");
        assert_eq!(read(root.join("all/a")), "A");
        assert_eq!(read(root.join("kube-api-access/ca.crt")), "CA");
        assert_eq!(read(root.join("kube-api-access/namespace")), "ns");
        assert!(root.join("scratch").is_dir());
        let token = read(root.join("all/vault-token"));
        assert_eq!(token.split('.').count(), 3, "a JWT");

        // A second sync keeps the token (not due for refresh) and rewrites nothing.
        let data_link = std::fs::read_link(root.join("all/..data")).unwrap();
        vols.sync(&cx).unwrap();
        assert_eq!(std::fs::read_link(root.join("all/..data")).unwrap(), data_link);
        assert!(vols.next_refresh().is_some());

        let mounts = vols
            .mounts(
                &objects,
                &pod,
                &json!({"volumeMounts": [
            {"name": "keys", "mountPath": "/etc/keys"},
            {"name": "scratch", "mountPath": "/tmp/x", "subPath": "sub"}]}),
            )
            .unwrap();
        assert_eq!(mounts.len(), 3);
        assert!(mounts[0].read_only, "secret volumes are always read-only");
        assert_eq!(mounts[1].source, root.join("scratch/sub"));
        assert!(!mounts[1].read_only && mounts[1].source.is_dir());
        assert_eq!(mounts[2].target, Path::new(SERVICE_ACCOUNT_DIR));
        vols.remove();
        assert!(!root.exists());
    }

    #[test]
    fn missing_sources_fail_unless_optional_and_automount_can_be_off() {
        let (root, mut vols, mut pod, auth) = setup(json!([
            {"name": "gone", "secret": {"secretName": "gone"}},
            {"name": "maybe", "configMap": {"name": "gone", "optional": true}},
        ]));
        pod["spec"]["automountServiceAccountToken"] = json!(false);
        let objects = objects();
        let cx = Context { objects: &objects, pod: &pod, auth: &auth, ca_pem: "CA" };
        let err = vols.sync(&cx).unwrap_err();
        assert_eq!(err, "MountVolume.SetUp failed for volume \"gone\" : secret \"gone\" not found");
        assert!(root.join("maybe/..data").exists(), "an optional missing source is an empty volume");
        assert!(!root.join("kube-api-access").exists());
        assert!(vols.mounts(&objects, &pod, &json!({})).unwrap().is_empty());
        let bad = vols.mounts(&objects, &pod, &json!({"volumeMounts": [{"name": "x", "mountPath": "rel"}]}));
        assert!(bad.unwrap_err().contains("absolute"));
        vols.remove();
    }

    #[test]
    fn item_keys_must_exist() {
        let (_root, mut vols, pod, auth) = setup(json!([
            {"name": "cfg", "configMap": {"name": "cfg", "items": [{"key": "nope", "path": "x"}]}},
        ]));
        let objects = objects();
        let cx = Context { objects: &objects, pod: &pod, auth: &auth, ca_pem: "CA" };
        assert!(vols.sync(&cx).unwrap_err().ends_with("configmap references non-existent config key: nope"));
        vols.remove();
    }
}
