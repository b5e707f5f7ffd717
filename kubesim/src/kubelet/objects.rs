//! The objects a pod refers to (Secrets, ConfigMaps, Services, its ServiceAccount), read from the
//! store of the pod's namespace. A trait, so the env and volume rules are tested without a cluster.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::Value;

use crate::api::Cluster;
use crate::resources::GroupResource;

pub trait Objects {
    /// A core (`v1`) object of the pod's namespace, by plural resource name.
    fn get(&self, resource: &str, name: &str) -> Option<Value>;
    /// Every core object of a resource in the pod's namespace.
    fn list(&self, resource: &str) -> Vec<Value>;
}

pub struct InNamespace<'a> {
    pub cluster: &'a Cluster,
    pub namespace: &'a str,
}

impl Objects for InNamespace<'_> {
    fn get(&self, resource: &str, name: &str) -> Option<Value> {
        self.cluster.get_raw(&GroupResource::new("", resource), Some(self.namespace), name)
    }

    fn list(&self, resource: &str) -> Vec<Value> {
        self.cluster.list_raw(&GroupResource::new("", resource), Some(self.namespace))
    }
}

/// Objects held in memory (tests).
#[cfg(test)]
#[derive(Default)]
pub struct Fixed(pub std::collections::HashMap<(String, String), Value>);

#[cfg(test)]
impl Fixed {
    pub fn with(mut self, resource: &str, obj: Value) -> Self {
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        self.0.insert((resource.to_owned(), name), obj);
        self
    }
}

#[cfg(test)]
impl Objects for Fixed {
    fn get(&self, resource: &str, name: &str) -> Option<Value> {
        self.0.get(&(resource.to_owned(), name.to_owned())).cloned()
    }

    fn list(&self, resource: &str) -> Vec<Value> {
        let mut all: Vec<(&String, &Value)> =
            self.0.iter().filter(|((r, _), _)| r == resource).map(|((_, n), v)| (n, v)).collect();
        all.sort_by_key(|(n, _)| *n);
        all.into_iter().map(|(_, v)| v.clone()).collect()
    }
}

/// A Secret's keys and decoded values (the API guarantees valid base64; a bad value reads empty).
pub fn secret_data(secret: &Value) -> BTreeMap<String, Vec<u8>> {
    decoded(&secret["data"])
}

/// A ConfigMap's `data` and `binaryData` keys.
pub fn config_map_data(cm: &Value) -> BTreeMap<String, Vec<u8>> {
    let mut out = decoded(&cm["binaryData"]);
    if let Some(data) = cm["data"].as_object() {
        out.extend(data.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().as_bytes().to_vec())));
    }
    out
}

fn decoded(map: &Value) -> BTreeMap<String, Vec<u8>> {
    map.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let bytes = base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default());
                    (k.clone(), bytes.unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The two kinds a pod takes keys from, with the words of the real kubelet's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Secret,
    ConfigMap,
}

impl Source {
    pub fn resource(self) -> &'static str {
        match self {
            Source::Secret => "secrets",
            Source::ConfigMap => "configmaps",
        }
    }

    /// The API's NotFound message, which the kubelet passes on.
    pub fn not_found(self, name: &str) -> String {
        match self {
            Source::Secret => format!("secret {name:?} not found"),
            Source::ConfigMap => format!("configmap {name:?} not found"),
        }
    }

    /// The object's keys, or None when it does not exist.
    pub fn data(self, objects: &dyn Objects, name: &str) -> Option<BTreeMap<String, Vec<u8>>> {
        let obj = objects.get(self.resource(), name)?;
        Some(match self {
            Source::Secret => secret_data(&obj),
            Source::ConfigMap => config_map_data(&obj),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_is_decoded() {
        let s = json!({"data": {"a": "aGk=", "bad": "!!"}});
        assert_eq!(secret_data(&s).get("a").map(Vec::as_slice), Some(&b"hi"[..]));
        assert_eq!(secret_data(&s).get("bad").map(Vec::len), Some(0));
        let cm = json!({"data": {"t": "text"}, "binaryData": {"b": "AAE="}});
        let d = config_map_data(&cm);
        assert_eq!(d["t"], b"text");
        assert_eq!(d["b"], [0u8, 1]);
    }
}
