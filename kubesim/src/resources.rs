//! What the server serves: the built-in kinds and the kinds of the CRDs registered at runtime.

use std::sync::Arc;

use serde_json::Value;

use crate::server::openapi::builtin_kinds;

/// Storage identity of a resource: objects of every version of a group's resource share it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

impl GroupResource {
    pub fn new(group: &str, resource: &str) -> Self {
        GroupResource { group: group.to_owned(), resource: resource.to_owned() }
    }
}

/// A CRD version's serving facts.
#[derive(Clone, Debug)]
pub struct CrdInfo {
    pub crd_name: String,
    pub schema: Value,
    pub printer_columns: Vec<Value>,
    /// `subresources.scale` (specReplicasPath, statusReplicasPath, labelSelectorPath).
    pub scale: Option<Value>,
    pub storage_version: String,
}

#[derive(Clone, Debug)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub verbs: Vec<String>,
    pub categories: Vec<String>,
    pub subresources: Vec<String>,
    pub crd: Option<Arc<CrdInfo>>,
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// Where objects of this type are stored: `events.k8s.io` Events share the core Events'
    /// storage (see `api::convert`); every other type has its own.
    pub fn gr(&self) -> GroupResource {
        if self.group == "events.k8s.io" && self.plural == "events" {
            return GroupResource::new("", "events");
        }
        GroupResource::new(&self.group, &self.plural)
    }

    /// `deployments.apps`, `secrets`: how the API server names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    pub fn has_subresource(&self, sub: &str) -> bool {
        self.subresources.iter().any(|s| s == sub)
    }

    /// Kinds that only answer a POST (reviews and token requests); nothing is stored.
    pub fn is_virtual(&self) -> bool {
        self.verbs == ["create"]
    }

    /// Objects whose spec changes bump `metadata.generation`.
    pub fn tracks_generation(&self) -> bool {
        self.crd.is_some()
            || matches!(
                self.kind.as_str(),
                "Deployment"
                    | "ReplicaSet"
                    | "PodDisruptionBudget"
                    | "HorizontalPodAutoscaler"
                    | "NetworkPolicy"
                    | "CustomResourceDefinition"
                    | "Pod"
            )
    }
}

/// The types served right now.
#[derive(Clone, Debug)]
pub struct Registry {
    pub types: Vec<ResourceType>,
}

impl Registry {
    pub fn builtin() -> Self {
        let types = builtin_kinds()
            .iter()
            .map(|b| ResourceType {
                group: b.group.to_owned(),
                version: b.version.to_owned(),
                kind: b.kind.to_owned(),
                plural: b.plural.to_owned(),
                singular: b.singular.to_owned(),
                namespaced: b.namespaced,
                short_names: b.short_names.iter().map(|s| s.to_string()).collect(),
                verbs: b.verbs.iter().map(|s| s.to_string()).collect(),
                categories: b.categories.iter().map(|s| s.to_string()).collect(),
                subresources: b.subresources.iter().map(|s| s.to_string()).collect(),
                crd: None,
            })
            .collect();
        Registry { types }
    }

    /// The built-ins plus every served version of the established CRDs in `crds`.
    pub fn with_crds(crds: &[Value]) -> Self {
        let mut reg = Registry::builtin();
        for crd in crds {
            reg.types.extend(crd_types(crd));
        }
        reg
    }

    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<&ResourceType> {
        self.types.iter().find(|t| t.group == group && t.version == version && t.plural == plural)
    }

    pub fn find_kind(&self, api_version: &str, kind: &str) -> Option<&ResourceType> {
        let (group, version) = split_api_version(api_version);
        self.types.iter().find(|t| t.group == group && t.version == version && t.kind == kind)
    }

    /// Any version of a group's resource (the storage version first for CRDs).
    pub fn find_gr(&self, gr: &GroupResource) -> Option<&ResourceType> {
        let mut it = self.types.iter().filter(|t| t.group == gr.group && t.plural == gr.resource);
        let first = it.clone().find(|t| t.crd.as_ref().is_none_or(|c| c.storage_version == t.version));
        first.or_else(|| it.next())
    }

    /// The groups in discovery order, each with its versions (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in &self.types {
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, versions)) if !versions.contains(&t.version) => versions.push(t.version.clone()),
                Some(_) => {}
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        out
    }
}

pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// The resource types one CRD object serves.
fn crd_types(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let str_list = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v["storage"].as_bool() == Some(true))
        .and_then(|v| v["name"].as_str())
        .unwrap_or_default()
        .to_owned();
    let plural = names["plural"].as_str().unwrap_or_default().to_owned();
    versions
        .iter()
        .filter(|v| v["served"].as_bool() != Some(false))
        .map(|v| {
            let mut subresources = Vec::new();
            if v["subresources"].get("status").is_some() {
                subresources.push("status".to_owned());
            }
            if v["subresources"].get("scale").is_some() {
                subresources.push("scale".to_owned());
            }
            ResourceType {
                group: spec["group"].as_str().unwrap_or_default().to_owned(),
                version: v["name"].as_str().unwrap_or_default().to_owned(),
                kind: names["kind"].as_str().unwrap_or_default().to_owned(),
                plural: plural.clone(),
                singular: names["singular"].as_str().map(str::to_owned).unwrap_or_else(|| plural.clone()),
                namespaced: spec["scope"].as_str() != Some("Cluster"),
                short_names: str_list(&names["shortNames"]),
                verbs: ["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                categories: str_list(&names["categories"]),
                subresources,
                crd: Some(Arc::new(CrdInfo {
                    crd_name: crd["metadata"]["name"].as_str().unwrap_or_default().to_owned(),
                    schema: v["schema"]["openAPIV3Schema"].clone(),
                    printer_columns: v["additionalPrinterColumns"].as_array().cloned().unwrap_or_default(),
                    scale: v["subresources"].get("scale").cloned(),
                    storage_version: storage_version.clone(),
                })),
            }
        })
        .collect()
}
