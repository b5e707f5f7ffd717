//! Knative Serving in the cluster: whether it is installed (API discovery, cached), and what a
//! Knative Service's status says about the store's pods.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::DynamicObject;

use crate::desired::knative::{GROUP, VERSION};
use crate::error::{Error, Result};

/// How long a discovery answer is trusted: installing Knative is noticed within this time.
const DISCOVERY_TTL: Duration = Duration::from_secs(60);

/// Whether `serving.knative.dev/v1` serves `services`, asked at most once per [`DISCOVERY_TTL`].
#[derive(Default)]
pub struct Discovery {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Discovery {
    /// Records an answer obtained elsewhere (the controller's own check at start).
    pub fn remember(&self, installed: bool) {
        *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), installed));
    }

    pub async fn installed(&self, client: &Client) -> Result<bool> {
        if let Some((at, installed)) = *self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(installed);
        }
        let installed = installed(client).await?;
        self.remember(installed);
        Ok(installed)
    }
}

/// One discovery request, uncached (the controller asks once at start, to decide what it watches).
pub async fn installed(client: &Client) -> Result<bool> {
    match client.list_api_group_resources(&format!("{GROUP}/{VERSION}")).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == "services")),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(Error::Kube(e)),
    }
}

/// A condition of a Knative Service's status: (status, reason, message).
pub fn condition(ksvc: &DynamicObject, type_: &str) -> Option<(String, String, String)> {
    let conditions = ksvc.data.pointer("/status/conditions")?.as_array()?;
    let c = conditions.iter().find(|c| c["type"] == type_)?;
    let text = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
    Some((text("status"), text("reason"), text("message")))
}

/// Knative has caught up with the Service's spec (its status is about the current template).
pub fn observed(ksvc: &DynamicObject) -> bool {
    let generation = ksvc.metadata.generation.unwrap_or(0);
    ksvc.data.pointer("/status/observedGeneration").and_then(serde_json::Value::as_i64).unwrap_or(0) >= generation
}

/// The latest revision serves: its pods started and passed their probes at least once. The
/// routes are not needed for this: Knative cannot route while the Deployment-mode Service of
/// the same name still exists, and that one is removed only once this holds.
pub fn revision_ready(ksvc: &DynamicObject) -> bool {
    observed(ksvc) && condition(ksvc, "ConfigurationsReady").is_some_and(|(s, _, _)| s == "True")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ksvc(generation: i64, status: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "serving.knative.dev/v1", "kind": "Service",
            "metadata": {"name": "notes", "generation": generation},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn a_revision_is_ready_only_for_the_current_generation() {
        let ready = json!({"observedGeneration": 2, "conditions": [{"type": "ConfigurationsReady", "status": "True"}]});
        assert!(revision_ready(&ksvc(2, ready.clone())));
        assert!(!revision_ready(&ksvc(3, ready)), "status of an older template");
        let failing = json!({"observedGeneration": 2, "conditions": [
            {"type": "ConfigurationsReady", "status": "False", "reason": "RevisionFailed", "message": "image pull"}]});
        assert!(!revision_ready(&ksvc(2, failing.clone())));
        assert_eq!(
            condition(&ksvc(2, failing), "ConfigurationsReady"),
            Some(("False".into(), "RevisionFailed".into(), "image pull".into()))
        );
        assert!(!revision_ready(&ksvc(1, json!({}))), "no status yet");
    }
}
