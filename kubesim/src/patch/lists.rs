//! How lists (and a few maps) merge, per field path.
//!
//! Strategic merge patch reads the Go struct tags `patchStrategy`/`patchMergeKey`; server-side apply
//! reads the OpenAPI extensions `x-kubernetes-list-type`/`x-kubernetes-list-map-keys`/
//! `x-kubernetes-map-type`. The two disagree for some fields (tolerations have neither, Job
//! conditions are SMP-merged but SSA-atomic), so both answers are kept apart.

use serde_json::Value;

/// Server-side-apply list semantics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListType {
    /// Replaced and owned as a single field.
    Atomic,
    /// Items are scalars merged and owned by value (`v:<json>`).
    Set,
    /// Items are objects merged and owned by these key fields (`k:{...}`).
    Map(Vec<String>),
}

/// How a strategic merge patch merges a list (`patchStrategy:"merge"`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergeStrategy {
    /// Objects matched by this field (`patchMergeKey`).
    Key(String),
    /// Scalars merged as a set, e.g. `metadata.finalizers`.
    Primitive,
}

/// Per-path list and map semantics. `path` is the field names from the object root, without list
/// indices: `["spec", "template", "spec", "containers", "ports"]`.
pub trait ListSchema {
    /// Server-side-apply list semantics (x-kubernetes-list-type / x-kubernetes-list-map-keys).
    fn list_type(&self, path: &[&str]) -> ListType;
    /// Strategic-merge-patch merge key (patchMergeKey) and whether patchStrategy is merge;
    /// None = the list is replaced wholesale by a strategic merge patch.
    fn merge_key(&self, path: &[&str]) -> Option<MergeStrategy>;
    /// Whether the object at `path` (for a list: each of its items) is atomic
    /// (`x-kubernetes-map-type: atomic`, `+structType=atomic`): applied, replaced and owned whole.
    fn atomic_map(&self, _path: &[&str]) -> bool {
        false
    }
    /// Default of a map-list key field that an item may omit. The API server builds the item's
    /// identity with it, which is why ports show up as `k:{"containerPort":80,"protocol":"TCP"}`.
    fn key_default(&self, _path: &[&str], _key: &str) -> Option<Value> {
        None
    }
}

#[derive(Clone, Copy)]
enum Ssa {
    Atomic,
    Set,
    Map(&'static [&'static str]),
}

#[derive(Clone, Copy)]
enum Smp {
    Replace,
    Key(&'static str),
    Primitive,
}

/// One row of the built-in table. `suffix` rows match any path ending in `path` (PodSpec sits at
/// `spec`, `spec.template.spec` and `spec.jobTemplate.spec.template.spec`); the others match the
/// whole path only, for fields that are specific to one kind.
struct ListRule {
    path: &'static [&'static str],
    suffix: bool,
    ssa: Ssa,
    smp: Smp,
    atomic_items: bool,
    key_defaults: &'static [(&'static str, &'static str)],
}

const fn rule(path: &'static [&'static str], suffix: bool, ssa: Ssa, smp: Smp) -> ListRule {
    ListRule { path, suffix, ssa, smp, atomic_items: false, key_defaults: &[] }
}

const fn atomic_items(mut r: ListRule) -> ListRule {
    r.atomic_items = true;
    r
}

const fn tcp_default(mut r: ListRule) -> ListRule {
    r.key_defaults = &[("protocol", "TCP")];
    r
}

const NAME: Ssa = Ssa::Map(&["name"]);
const CONTAINER_PORT: Ssa = Ssa::Map(&["containerPort", "protocol"]);
const TYPE: Ssa = Ssa::Map(&["type"]);

/// Lists whose semantics differ from "atomic for SSA, replaced by SMP", taken from the
/// `+listType`/`+listMapKey` markers and `patchStrategy`/`patchMergeKey` tags of k8s.io/api.
static LIST_RULES: &[ListRule] = &[
    // PodSpec
    rule(&["spec", "containers"], true, NAME, Smp::Key("name")),
    rule(&["spec", "initContainers"], true, NAME, Smp::Key("name")),
    rule(&["spec", "ephemeralContainers"], true, NAME, Smp::Key("name")),
    rule(&["spec", "volumes"], true, NAME, Smp::Key("name")),
    atomic_items(rule(&["spec", "imagePullSecrets"], true, NAME, Smp::Key("name"))),
    rule(&["spec", "hostAliases"], true, Ssa::Map(&["ip"]), Smp::Key("ip")),
    rule(
        &["spec", "topologySpreadConstraints"],
        true,
        Ssa::Map(&["topologyKey", "whenUnsatisfiable"]),
        Smp::Key("topologyKey"),
    ),
    rule(&["spec", "schedulingGates"], true, NAME, Smp::Key("name")),
    rule(&["spec", "resourceClaims"], true, NAME, Smp::Key("name")),
    // Container, InitContainer, EphemeralContainer
    tcp_default(rule(&["containers", "ports"], true, CONTAINER_PORT, Smp::Key("containerPort"))),
    tcp_default(rule(&["initContainers", "ports"], true, CONTAINER_PORT, Smp::Key("containerPort"))),
    tcp_default(rule(&["ephemeralContainers", "ports"], true, CONTAINER_PORT, Smp::Key("containerPort"))),
    rule(&["containers", "env"], true, NAME, Smp::Key("name")),
    rule(&["initContainers", "env"], true, NAME, Smp::Key("name")),
    rule(&["ephemeralContainers", "env"], true, NAME, Smp::Key("name")),
    rule(&["containers", "volumeMounts"], true, Ssa::Map(&["mountPath"]), Smp::Key("mountPath")),
    rule(&["initContainers", "volumeMounts"], true, Ssa::Map(&["mountPath"]), Smp::Key("mountPath")),
    rule(&["ephemeralContainers", "volumeMounts"], true, Ssa::Map(&["mountPath"]), Smp::Key("mountPath")),
    rule(&["containers", "volumeDevices"], true, Ssa::Map(&["devicePath"]), Smp::Key("devicePath")),
    rule(&["initContainers", "volumeDevices"], true, Ssa::Map(&["devicePath"]), Smp::Key("devicePath")),
    rule(&["resources", "claims"], true, NAME, Smp::Replace),
    // ObjectMeta, also inside pod templates
    atomic_items(rule(&["metadata", "ownerReferences"], true, Ssa::Map(&["uid"]), Smp::Key("uid"))),
    rule(&["metadata", "finalizers"], true, Ssa::Set, Smp::Primitive),
    // Status of most kinds
    rule(&["status", "conditions"], false, TYPE, Smp::Key("type")),
    rule(&["status", "podIPs"], false, Ssa::Map(&["ip"]), Smp::Key("ip")),
    rule(&["status", "hostIPs"], false, Ssa::Atomic, Smp::Key("ip")),
    rule(&["status", "addresses"], false, TYPE, Smp::Key("type")),
    // Service
    tcp_default(rule(&["spec", "ports"], false, Ssa::Map(&["port", "protocol"]), Smp::Key("port"))),
    // Node
    rule(&["spec", "podCIDRs"], false, Ssa::Set, Smp::Primitive),
    // ServiceAccount
    atomic_items(rule(&["secrets"], false, NAME, Smp::Key("name"))),
    // Validating/MutatingWebhookConfiguration, ValidatingAdmissionPolicy
    rule(&["webhooks"], false, NAME, Smp::Key("name")),
    rule(&["webhooks", "matchConditions"], false, NAME, Smp::Key("name")),
    rule(&["spec", "matchConditions"], false, NAME, Smp::Key("name")),
];

/// Objects that are atomic although they are not list items: label selectors (`+structType=atomic`),
/// `map[string]string` selectors (`+mapType=atomic`) and object references.
static ATOMIC_MAPS: &[(&[&str], bool)] = &[
    (&["spec", "selector"], true),
    (&["spec", "nodeSelector"], true),
    (&["nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"], true),
    (&["topologySpreadConstraints", "labelSelector"], true),
    (&["valueFrom", "fieldRef"], true),
    (&["valueFrom", "resourceFieldRef"], true),
    (&["valueFrom", "configMapKeyRef"], true),
    (&["valueFrom", "secretKeyRef"], true),
    (&["valueFrom", "fileKeyRef"], true),
    (&["spec", "podSelector"], false),
    (&["roleRef"], false),
    (&["spec", "scaleTargetRef"], false),
    (&["spec", "dataSource"], false),
    (&["spec", "scopeSelector"], false),
    (&["involvedObject"], false),
    (&["regarding"], false),
    (&["related"], false),
    (&["webhooks", "namespaceSelector"], false),
    (&["webhooks", "objectSelector"], false),
    (&["spec", "defaultBackend", "service", "port"], false),
    (&["spec", "defaultBackend", "resource"], false),
];

fn path_matches(path: &[&str], pattern: &[&str], suffix: bool) -> bool {
    if suffix { path.ends_with(pattern) } else { path == pattern }
}

/// Built-in kinds (core, apps, batch, rbac, policy, autoscaling, networking, coordination,
/// admissionregistration): a table keyed by path, faithful to Kubernetes' struct tags. The path
/// alone does not name the kind, so where kinds disagree on one path the common case wins
/// (e.g. `status.conditions` is a map by `type`, although Job's is atomic for SSA).
pub struct BuiltinLists;

impl BuiltinLists {
    fn rule(path: &[&str]) -> Option<&'static ListRule> {
        LIST_RULES.iter().filter(|r| path_matches(path, r.path, r.suffix)).max_by_key(|r| r.path.len())
    }
}

impl ListSchema for BuiltinLists {
    fn list_type(&self, path: &[&str]) -> ListType {
        match Self::rule(path).map(|r| r.ssa) {
            Some(Ssa::Set) => ListType::Set,
            Some(Ssa::Map(keys)) => ListType::Map(keys.iter().map(|k| (*k).to_string()).collect()),
            Some(Ssa::Atomic) | None => ListType::Atomic,
        }
    }

    fn merge_key(&self, path: &[&str]) -> Option<MergeStrategy> {
        match Self::rule(path)?.smp {
            Smp::Key(key) => Some(MergeStrategy::Key(key.to_string())),
            Smp::Primitive => Some(MergeStrategy::Primitive),
            Smp::Replace => None,
        }
    }

    fn atomic_map(&self, path: &[&str]) -> bool {
        Self::rule(path).is_some_and(|r| r.atomic_items)
            || ATOMIC_MAPS.iter().any(|(pattern, suffix)| path_matches(path, pattern, *suffix))
    }

    fn key_default(&self, path: &[&str], key: &str) -> Option<Value> {
        Self::rule(path)?.key_defaults.iter().find(|(k, _)| *k == key).map(|(_, v)| Value::String((*v).to_string()))
    }
}

/// A custom resource: walks its OpenAPI v3 schema (`properties` / `items` /
/// `additionalProperties`) and reads the `x-kubernetes-*` extensions. `schema` may be the
/// `openAPIV3Schema` itself or the CRD version's `schema` object holding it. Strategic merge patch
/// is never answered here: the API server rejects it for custom resources.
pub struct SchemaLists<'a> {
    pub schema: &'a Value,
}

impl SchemaLists<'_> {
    fn node(&self, path: &[&str]) -> Option<&Value> {
        let mut node = self.schema.get("openAPIV3Schema").unwrap_or(self.schema);
        for name in path {
            // Paths carry no indices, so a name after a list field names a field of its items.
            node = items_of(node).unwrap_or(node);
            node = node
                .get("properties")
                .and_then(|p| p.get(*name))
                .or_else(|| node.get("additionalProperties").filter(|a| a.is_object()))?;
        }
        Some(node)
    }
}

fn items_of(node: &Value) -> Option<&Value> {
    node.get("items").filter(|i| i.is_object())
}

impl ListSchema for SchemaLists<'_> {
    fn list_type(&self, path: &[&str]) -> ListType {
        let Some(node) = self.node(path) else {
            return ListType::Atomic;
        };
        match node.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => ListType::Set,
            Some("map") => {
                let keys: Vec<String> = node
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                // A map list without keys is rejected by CRD validation; atomic is the safe reading.
                if keys.is_empty() { ListType::Atomic } else { ListType::Map(keys) }
            }
            _ => ListType::Atomic,
        }
    }

    fn merge_key(&self, _path: &[&str]) -> Option<MergeStrategy> {
        None
    }

    fn atomic_map(&self, path: &[&str]) -> bool {
        self.node(path)
            .map(|node| items_of(node).unwrap_or(node))
            .and_then(|node| node.get("x-kubernetes-map-type"))
            .and_then(Value::as_str)
            == Some("atomic")
    }

    fn key_default(&self, path: &[&str], key: &str) -> Option<Value> {
        let items = items_of(self.node(path)?)?;
        items.get("properties")?.get(key)?.get("default").cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(k: &[&str]) -> ListType {
        ListType::Map(k.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn builtin_pod_spec_lists_at_every_depth() {
        for prefix in
            [vec!["spec"], vec!["spec", "template", "spec"], vec!["spec", "jobTemplate", "spec", "template", "spec"]]
        {
            let mut containers = prefix.clone();
            containers.push("containers");
            assert_eq!(BuiltinLists.list_type(&containers), keys(&["name"]));
            assert_eq!(BuiltinLists.merge_key(&containers), Some(MergeStrategy::Key("name".into())));
            let mut ports = containers.clone();
            ports.push("ports");
            assert_eq!(BuiltinLists.list_type(&ports), keys(&["containerPort", "protocol"]));
            assert_eq!(BuiltinLists.merge_key(&ports), Some(MergeStrategy::Key("containerPort".into())));
            assert_eq!(BuiltinLists.key_default(&ports, "protocol"), Some(json!("TCP")));
            assert_eq!(BuiltinLists.key_default(&ports, "containerPort"), None);
            let mut tolerations = prefix.clone();
            tolerations.push("tolerations");
            assert_eq!(BuiltinLists.list_type(&tolerations), ListType::Atomic);
            assert_eq!(BuiltinLists.merge_key(&tolerations), None);
        }
    }

    #[test]
    fn builtin_distinguishes_service_ports_from_container_ports() {
        assert_eq!(BuiltinLists.list_type(&["spec", "ports"]), keys(&["port", "protocol"]));
        assert_eq!(BuiltinLists.merge_key(&["spec", "ports"]), Some(MergeStrategy::Key("port".into())));
        // NetworkPolicy rule ports and EndpointSlice ports are atomic.
        assert_eq!(BuiltinLists.list_type(&["spec", "ingress", "ports"]), ListType::Atomic);
        assert_eq!(BuiltinLists.list_type(&["ports"]), ListType::Atomic);
    }

    #[test]
    fn builtin_meta_and_misc() {
        assert_eq!(BuiltinLists.list_type(&["metadata", "finalizers"]), ListType::Set);
        assert_eq!(BuiltinLists.merge_key(&["metadata", "finalizers"]), Some(MergeStrategy::Primitive));
        assert_eq!(BuiltinLists.list_type(&["metadata", "ownerReferences"]), keys(&["uid"]));
        assert!(BuiltinLists.atomic_map(&["metadata", "ownerReferences"]));
        assert_eq!(BuiltinLists.list_type(&["spec", "finalizers"]), ListType::Atomic);
        assert_eq!(BuiltinLists.list_type(&["status", "conditions"]), keys(&["type"]));
        assert_eq!(BuiltinLists.list_type(&["rules"]), ListType::Atomic);
        assert_eq!(BuiltinLists.list_type(&["subjects"]), ListType::Atomic);
        assert_eq!(BuiltinLists.list_type(&["secrets"]), keys(&["name"]));
        // ServiceAccount.imagePullSecrets is atomic, PodSpec's is keyed by name.
        assert_eq!(BuiltinLists.list_type(&["imagePullSecrets"]), ListType::Atomic);
        assert_eq!(BuiltinLists.list_type(&["spec", "template", "spec", "imagePullSecrets"]), keys(&["name"]));
        assert_eq!(BuiltinLists.merge_key(&["spec", "template", "spec", "containers", "args"]), None);
        assert_eq!(BuiltinLists.merge_key(&["spec", "template", "spec", "containers", "envFrom"]), None);
        assert!(BuiltinLists.atomic_map(&["spec", "selector"]));
        assert!(BuiltinLists.atomic_map(&["spec", "template", "spec", "nodeSelector"]));
        assert!(!BuiltinLists.atomic_map(&["spec", "template", "metadata", "labels"]));
        assert!(!BuiltinLists.atomic_map(&["spec", "template", "spec", "containers"]));
        assert_eq!(
            BuiltinLists.list_type(&["spec", "template", "spec", "topologySpreadConstraints"]),
            keys(&["topologyKey", "whenUnsatisfiable"])
        );
    }

    fn crd_schema() -> Value {
        json!({"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "items": {"type": "array", "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["name", "zone"],
                    "items": {"type": "object", "properties": {
                        "name": {"type": "string"},
                        "zone": {"type": "string", "default": "a"},
                        "tags": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
                    }}},
                "ref": {"type": "object", "x-kubernetes-map-type": "atomic"},
                "byName": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                    "hosts": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}}
                }}},
                "broken": {"type": "array", "x-kubernetes-list-type": "map", "items": {"type": "object"}},
                "plain": {"type": "array", "items": {"type": "string"}}
            }}
        }}})
    }

    #[test]
    fn schema_lists_reads_extensions() {
        let schema = crd_schema();
        let lists = SchemaLists { schema: &schema };
        assert_eq!(lists.list_type(&["spec", "items"]), keys(&["name", "zone"]));
        assert_eq!(lists.list_type(&["spec", "items", "tags"]), ListType::Set);
        assert_eq!(lists.list_type(&["spec", "byName", "anything", "hosts"]), ListType::Set);
        assert_eq!(lists.list_type(&["spec", "plain"]), ListType::Atomic);
        assert_eq!(lists.list_type(&["spec", "broken"]), ListType::Atomic);
        assert_eq!(lists.list_type(&["spec", "missing"]), ListType::Atomic);
        assert_eq!(lists.key_default(&["spec", "items"], "zone"), Some(json!("a")));
        assert_eq!(lists.key_default(&["spec", "items"], "name"), None);
        assert!(lists.atomic_map(&["spec", "ref"]));
        assert!(!lists.atomic_map(&["spec", "byName"]));
        assert_eq!(lists.merge_key(&["spec", "items"]), None);
        // The bare openAPIV3Schema works as well.
        let bare = &schema["openAPIV3Schema"];
        assert_eq!(SchemaLists { schema: bare }.list_type(&["spec", "items"]), keys(&["name", "zone"]));
    }
}
