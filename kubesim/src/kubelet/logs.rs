//! `GET pods/<name>/log`: which container's log file a request means (with the real API
//! server's errors), the `tailLines`/`limitBytes` cut of its text, and with `follow=true` what
//! is appended after it until the pod stops. Every run of a container appends to the same file,
//! so `previous=true` gets the same text; `timestamps` and `sinceSeconds` are ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use serde_json::Value;

use crate::api::{ApiError, Cluster};
use crate::resources::GroupResource;

/// How often a followed log is checked for more output.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The response body of a log request for `pod` (as stored).
pub fn body(
    cluster: Arc<Cluster>,
    state_dir: &Path,
    pod: &Value,
    query: &HashMap<String, String>,
) -> Result<Body, ApiError> {
    let path = log_file(state_dir, pod, query)?;
    let text = std::fs::read(&path).unwrap_or_default();
    let first = Bytes::copy_from_slice(cut(&text, query));
    if query.get("follow").is_none_or(|f| f != "true") {
        return Ok(Body::from(first));
    }
    let meta = &pod["metadata"];
    let text_of = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let follow = Follow {
        cluster,
        path,
        offset: text.len() as u64,
        namespace: text_of(&meta["namespace"]),
        name: text_of(&meta["name"]),
        uid: text_of(&meta["uid"]),
        first: Some(first),
    };
    let stream = futures_util::stream::unfold(follow, |mut f| async move {
        let chunk = f.next().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), f))
    });
    Ok(Body::from_stream(stream))
}

struct Follow {
    cluster: Arc<Cluster>,
    path: PathBuf,
    offset: u64,
    namespace: String,
    name: String,
    uid: String,
    first: Option<Bytes>,
}

impl Follow {
    /// The next piece of output; None once the pod is gone or finished and everything was sent.
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(first) = self.first.take() {
            return Some(first);
        }
        loop {
            let text = std::fs::read(&self.path).unwrap_or_default();
            if let Some(new) = text.get(self.offset as usize..).filter(|n| !n.is_empty()) {
                self.offset = text.len() as u64;
                return Some(Bytes::copy_from_slice(new));
            }
            let pod = self.cluster.get_raw(&GroupResource::new("", "pods"), Some(&self.namespace), &self.name);
            let running = pod.is_some_and(|p| {
                p["metadata"]["uid"] == self.uid.as_str()
                    && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
            });
            if !running {
                return None;
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }
}

/// The log file for `query` (`container`, default: the pod's only container or the one named by
/// the `kubectl.kubernetes.io/default-container` annotation).
pub fn log_file(state_dir: &Path, pod: &Value, query: &HashMap<String, String>) -> Result<PathBuf, ApiError> {
    let meta = &pod["metadata"];
    let name = meta["name"].as_str().unwrap_or_default();
    let names = |list: &str| -> Vec<String> {
        pod["spec"][list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    let (containers, inits) = (names("containers"), names("initContainers"));
    let annotated = meta["annotations"]["kubectl.kubernetes.io/default-container"].as_str();
    let container = match query.get("container").map(String::as_str).filter(|c| !c.is_empty()).or(annotated) {
        Some(c) => c.to_owned(),
        None if containers.len() == 1 => containers[0].clone(),
        None => {
            let mut message =
                format!("a container name must be specified for pod {name}, choose one of: [{}]", containers.join(" "));
            if !inits.is_empty() {
                message.push_str(&format!(" or one of the init containers: [{}]", inits.join(" ")));
            }
            return Err(ApiError::bad_request(message));
        }
    };
    if !containers.contains(&container) && !inits.contains(&container) {
        return Err(ApiError::bad_request(format!("container {container} is not valid for pod {name}")));
    }
    let statuses = ["containerStatuses", "initContainerStatuses"]
        .iter()
        .flat_map(|k| pod["status"][*k].as_array().cloned().unwrap_or_default());
    let status = statuses.into_iter().find(|s| s["name"] == container.as_str());
    let never_ran =
        status.as_ref().is_none_or(|s| s["state"]["waiting"].is_object() && s["lastState"]["terminated"].is_null());
    if never_ran {
        let reason =
            status.as_ref().and_then(|s| s["state"]["waiting"]["reason"].as_str()).unwrap_or("ContainerCreating");
        return Err(ApiError::bad_request(format!(
            "container {container:?} in pod {name:?} is waiting to start: {reason}"
        )));
    }
    let ns = meta["namespace"].as_str().unwrap_or_default();
    Ok(super::log_path(state_dir, ns, name, meta["uid"].as_str().unwrap_or_default(), &container))
}

/// The text a log request gets: the last `tailLines` lines, then at most `limitBytes` bytes.
pub fn cut<'a>(text: &'a [u8], query: &HashMap<String, String>) -> &'a [u8] {
    let mut out = text;
    if let Some(n) = query.get("tailLines").and_then(|n| n.parse::<usize>().ok()) {
        let body = out.strip_suffix(b"\n").unwrap_or(out);
        let start = if n == 0 {
            out.len()
        } else {
            body.iter().enumerate().rev().filter(|(_, b)| **b == b'\n').nth(n - 1).map_or(0, |(i, _)| i + 1)
        };
        out = &out[start..];
    }
    if let Some(n) = query.get("limitBytes").and_then(|n| n.parse::<usize>().ok()) {
        out = &out[..n.min(out.len())];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn pod() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "initContainers": [{"name": "init"}]},
            "status": {"containerStatuses": [
                {"name": "a", "state": {"running": {}}, "lastState": {}},
                {"name": "b", "state": {"waiting": {"reason": "ErrImagePull"}}, "lastState": {}},
            ]},
        })
    }

    #[test]
    fn containers_are_chosen_as_the_api_server_does() {
        let dir = Path::new("/state");
        assert_eq!(log_file(dir, &pod(), &q(&[("container", "a")])).unwrap(), Path::new("/state/pods/ns_web_u/a.log"));
        let e = log_file(dir, &pod(), &q(&[])).unwrap_err();
        assert_eq!(
            e.message,
            "a container name must be specified for pod web, choose one of: [a b] or one of the init containers: [init]"
        );
        assert_eq!(
            log_file(dir, &pod(), &q(&[("container", "x")])).unwrap_err().message,
            "container x is not valid for pod web"
        );
        let e = log_file(dir, &pod(), &q(&[("container", "b")])).unwrap_err();
        assert_eq!(e.message, "container \"b\" in pod \"web\" is waiting to start: ErrImagePull");
        let mut p = pod();
        p["metadata"]["annotations"] = json!({"kubectl.kubernetes.io/default-container": "a"});
        assert!(log_file(dir, &p, &q(&[])).is_ok());
    }

    #[test]
    fn tail_lines_and_limit_bytes() {
        let text = b"one\ntwo\nthree\n";
        assert_eq!(cut(text, &q(&[])), text);
        assert_eq!(cut(text, &q(&[("tailLines", "2")])), b"two\nthree\n");
        assert_eq!(cut(text, &q(&[("tailLines", "9")])), text);
        assert_eq!(cut(text, &q(&[("tailLines", "0")])), b"");
        assert_eq!(cut(b"a\nb", &q(&[("tailLines", "1")])), b"b");
        assert_eq!(cut(text, &q(&[("tailLines", "1"), ("limitBytes", "3")])), b"thr");
    }
}
