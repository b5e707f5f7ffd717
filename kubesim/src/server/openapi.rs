//! OpenAPI v3 documents: the root index and one document per group-version, shaped like the real
//! API server's so kubectl and Helm take the same decisions they take against a real cluster.
//!
//! kubectl reads these documents in three places, and each constrains the shape:
//! - `kubectl explain` finds the operation on `/…/<plural>` (or `…/{name}`, with `{namespace}`)
//!   carrying `x-kubernetes-group-version-kind`, then the `components.schemas` entry whose GVK
//!   list contains it, walking `$ref` and `allOf`.
//! - the fieldValidation verifier takes the first PATCH operation carrying the GVK and looks for a
//!   parameter *named* `fieldValidation` (a `$ref`'d parameter has no name when parsed, so every
//!   parameter here is inline). When found, kubectl sends `?fieldValidation=Strict` instead of
//!   validating client-side.
//! - client-side apply computes a strategic merge patch from the kind's schema when the PATCH
//!   operation accepts `application/strategic-merge-patch+json`, reading `x-kubernetes-patch-*`
//!   from the property schemas. CRDs do not accept that type, as on a real server, so kubectl
//!   falls back to a JSON merge patch for them.

use k8s_openapi::api::{
    apps, authentication, authorization, autoscaling, coordination, core, events, networking, policy, rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// One kind served in a group-version, as `group_version_doc` needs it.
pub struct OpenApiType<'a> {
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub plural: &'a str,
    pub namespaced: bool,
    /// Subresources served: "status", "scale", "token", "log", "finalize"; others get no path.
    pub subresources: &'a [&'a str],
    /// Some(openAPIV3Schema) for a CRD version; None for a built-in kind.
    pub crd_schema: Option<&'a Value>,
}

/// A built-in resource as discovery lists it.
#[derive(Clone, Copy, Debug)]
pub struct BuiltinKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub verbs: &'static [&'static str],
    pub subresources: &'static [&'static str],
    pub categories: &'static [&'static str],
}

const ALL_VERBS: &[&str] = &["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];
/// Reviews are answered, never stored.
const CREATE_ONLY: &[&str] = &["create"];
/// Namespaces are the one built-in without deletecollection.
const NAMESPACE_VERBS: &[&str] = &["create", "delete", "get", "list", "patch", "update", "watch"];
const STATUS: &[&str] = &["status"];
const STATUS_SCALE: &[&str] = &["status", "scale"];
const ALL_CATEGORY: &[&str] = &["all"];

impl BuiltinKind {
    const fn new(
        group: &'static str,
        version: &'static str,
        kind: &'static str,
        plural: &'static str,
        singular: &'static str,
        namespaced: bool,
    ) -> Self {
        BuiltinKind {
            group,
            version,
            kind,
            plural,
            singular,
            namespaced,
            short_names: &[],
            verbs: ALL_VERBS,
            subresources: &[],
            categories: &[],
        }
    }

    const fn short(mut self, short_names: &'static [&'static str]) -> Self {
        self.short_names = short_names;
        self
    }

    const fn verbs(mut self, verbs: &'static [&'static str]) -> Self {
        self.verbs = verbs;
        self
    }

    const fn sub(mut self, subresources: &'static [&'static str]) -> Self {
        self.subresources = subresources;
        self
    }

    const fn categories(mut self, categories: &'static [&'static str]) -> Self {
        self.categories = categories;
        self
    }
}

// Short names, verbs and categories are those `kubectl api-resources` shows on a 1.35 cluster.
// TokenRequest and Scale are absent on purpose: they are subresource bodies
// (serviceaccounts/token, */scale), not resources of their own.
const BUILTIN_KINDS: &[BuiltinKind] = &[
    BuiltinKind::new("", "v1", "Namespace", "namespaces", "namespace", false)
        .short(&["ns"])
        .verbs(NAMESPACE_VERBS)
        .sub(&["status", "finalize"]),
    BuiltinKind::new("", "v1", "Secret", "secrets", "secret", true),
    BuiltinKind::new("", "v1", "ConfigMap", "configmaps", "configmap", true).short(&["cm"]),
    BuiltinKind::new("", "v1", "Service", "services", "service", true)
        .short(&["svc"])
        .sub(STATUS)
        .categories(ALL_CATEGORY),
    BuiltinKind::new("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", true)
        .short(&["sa"])
        .sub(&["token"]),
    BuiltinKind::new("", "v1", "Event", "events", "event", true).short(&["ev"]),
    BuiltinKind::new("", "v1", "Pod", "pods", "pod", true)
        .short(&["po"])
        .sub(&["status", "log"])
        .categories(ALL_CATEGORY),
    BuiltinKind::new("", "v1", "Endpoints", "endpoints", "endpoints", true).short(&["ep"]),
    BuiltinKind::new("events.k8s.io", "v1", "Event", "events", "event", true).short(&["ev"]),
    BuiltinKind::new("apps", "v1", "Deployment", "deployments", "deployment", true)
        .short(&["deploy"])
        .sub(STATUS_SCALE)
        .categories(ALL_CATEGORY),
    BuiltinKind::new("apps", "v1", "ReplicaSet", "replicasets", "replicaset", true)
        .short(&["rs"])
        .sub(STATUS_SCALE)
        .categories(ALL_CATEGORY),
    BuiltinKind::new("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", "poddisruptionbudget", true)
        .short(&["pdb"])
        .sub(STATUS),
    BuiltinKind::new(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        true,
    )
    .short(&["hpa"])
    .sub(STATUS)
    .categories(ALL_CATEGORY),
    BuiltinKind::new("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", true)
        .short(&["netpol"]),
    BuiltinKind::new("coordination.k8s.io", "v1", "Lease", "leases", "lease", true),
    BuiltinKind::new("rbac.authorization.k8s.io", "v1", "Role", "roles", "role", true),
    BuiltinKind::new("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", "clusterrole", false),
    BuiltinKind::new("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", "rolebinding", true),
    BuiltinKind::new(
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        "clusterrolebinding",
        false,
    ),
    BuiltinKind::new("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", "tokenreview", false)
        .verbs(CREATE_ONLY),
    BuiltinKind::new(
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        "selfsubjectreview",
        false,
    )
    .verbs(CREATE_ONLY),
    BuiltinKind::new(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        "selfsubjectaccessreview",
        false,
    )
    .verbs(CREATE_ONLY),
    BuiltinKind::new(
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        "selfsubjectrulesreview",
        false,
    )
    .verbs(CREATE_ONLY),
    BuiltinKind::new(
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        "subjectaccessreview",
        false,
    )
    .verbs(CREATE_ONLY),
    BuiltinKind::new(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "customresourcedefinition",
        false,
    )
    .short(&["crd", "crds"])
    .sub(STATUS)
    .categories(&["api-extensions"]),
];

/// The built-in resources, in discovery order.
pub fn builtin_kinds() -> &'static [BuiltinKind] {
    BUILTIN_KINDS
}

type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

fn schema_of<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    generator.subschema_for::<T>()
}

/// Every kind whose schema k8s-openapi provides: the resources above and the subresource bodies.
const KIND_SCHEMAS: &[(&str, &str, &str, SchemaFn)] = &[
    ("", "v1", "Namespace", schema_of::<core::v1::Namespace>),
    ("", "v1", "Secret", schema_of::<core::v1::Secret>),
    ("", "v1", "ConfigMap", schema_of::<core::v1::ConfigMap>),
    ("", "v1", "Service", schema_of::<core::v1::Service>),
    ("", "v1", "ServiceAccount", schema_of::<core::v1::ServiceAccount>),
    ("", "v1", "Event", schema_of::<core::v1::Event>),
    ("", "v1", "Pod", schema_of::<core::v1::Pod>),
    ("", "v1", "Endpoints", schema_of::<core::v1::Endpoints>),
    ("events.k8s.io", "v1", "Event", schema_of::<events::v1::Event>),
    ("apps", "v1", "Deployment", schema_of::<apps::v1::Deployment>),
    ("apps", "v1", "ReplicaSet", schema_of::<apps::v1::ReplicaSet>),
    ("policy", "v1", "PodDisruptionBudget", schema_of::<policy::v1::PodDisruptionBudget>),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", schema_of::<autoscaling::v2::HorizontalPodAutoscaler>),
    ("autoscaling", "v1", "Scale", schema_of::<autoscaling::v1::Scale>),
    ("networking.k8s.io", "v1", "NetworkPolicy", schema_of::<networking::v1::NetworkPolicy>),
    ("coordination.k8s.io", "v1", "Lease", schema_of::<coordination::v1::Lease>),
    ("rbac.authorization.k8s.io", "v1", "Role", schema_of::<rbac::v1::Role>),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", schema_of::<rbac::v1::ClusterRole>),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", schema_of::<rbac::v1::RoleBinding>),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", schema_of::<rbac::v1::ClusterRoleBinding>),
    ("authentication.k8s.io", "v1", "TokenReview", schema_of::<authentication::v1::TokenReview>),
    ("authentication.k8s.io", "v1", "TokenRequest", schema_of::<authentication::v1::TokenRequest>),
    ("authentication.k8s.io", "v1", "SelfSubjectReview", schema_of::<authentication::v1::SelfSubjectReview>),
    ("authorization.k8s.io", "v1", "SelfSubjectAccessReview", schema_of::<authorization::v1::SelfSubjectAccessReview>),
    ("authorization.k8s.io", "v1", "SelfSubjectRulesReview", schema_of::<authorization::v1::SelfSubjectRulesReview>),
    ("authorization.k8s.io", "v1", "SubjectAccessReview", schema_of::<authorization::v1::SubjectAccessReview>),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", schema_of::<apiextensions::CustomResourceDefinition>),
];

fn kind_schema_fn(group: &str, version: &str, kind: &str) -> Option<SchemaFn> {
    KIND_SCHEMAS.iter().find(|(g, v, k, _)| *g == group && *v == version && *k == kind).map(|e| e.3)
}

fn builtin_kind(group: &str, version: &str, kind: &str) -> Option<&'static BuiltinKind> {
    BUILTIN_KINDS.iter().find(|b| b.group == group && b.version == version && b.kind == kind)
}

const SCHEMA_REF_PREFIX: &str = "#/components/schemas/";
const GVK_EXTENSION: &str = "x-kubernetes-group-version-kind";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
const STATUS_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
const PATCH_SCHEMA: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const API_VERSION_DESCRIPTION: &str = "APIVersion defines the versioned schema of this representation of an object. \
     Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. \
     More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DESCRIPTION: &str = "Kind is a string value representing the REST resource this object represents. \
     Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. \
     More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const OBJECT_META_DESCRIPTION: &str = "Standard object's metadata. \
     More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const LIST_META_DESCRIPTION: &str = "Standard list metadata. \
     More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// How a property merges, written out as the real server's `x-kubernetes-*` extensions.
#[derive(Clone, Copy)]
enum Merge {
    /// `listType=map` on these keys; strategic merge patches match items on the first key.
    Keyed(&'static [&'static str]),
    /// As `Keyed`, and a strategic merge patch also clears the fields an item no longer sets.
    KeyedRetainKeys(&'static [&'static str]),
    /// `listType=map` for server-side apply only; a strategic merge patch replaces the list.
    MapOnly(&'static [&'static str]),
    /// `listType=set` that a strategic merge patch merges too (finalizers).
    SetMerged,
    /// `listType=set` that a strategic merge patch replaces.
    Set,
    /// A struct or map owned and replaced as a whole.
    AtomicMap,
    /// Setting one member of this union clears the others.
    RetainKeys,
    /// A strategic merge patch replaces the value instead of merging it.
    Replace,
    /// An atomic list that strategic merge patches still match on one key (pod hostIPs).
    AtomicMergedBy(&'static str),
}

impl Merge {
    fn extensions(self) -> Map<String, Value> {
        let mut out = Map::new();
        let mut put = |key: &str, value: Value| {
            out.insert(format!("x-kubernetes-{key}"), value);
        };
        match self {
            Merge::Keyed(keys) | Merge::KeyedRetainKeys(keys) => {
                put("list-type", json!("map"));
                put("list-map-keys", json!(keys));
                put("patch-merge-key", json!(keys.first()));
                let strategy = if matches!(self, Merge::Keyed(_)) { "merge" } else { "merge,retainKeys" };
                put("patch-strategy", json!(strategy));
            }
            Merge::MapOnly(keys) => {
                put("list-type", json!("map"));
                put("list-map-keys", json!(keys));
            }
            Merge::SetMerged => {
                put("list-type", json!("set"));
                put("patch-strategy", json!("merge"));
            }
            Merge::Set => put("list-type", json!("set")),
            Merge::AtomicMap => put("map-type", json!("atomic")),
            Merge::RetainKeys => put("patch-strategy", json!("retainKeys")),
            Merge::Replace => put("patch-strategy", json!("replace")),
            Merge::AtomicMergedBy(key) => {
                put("list-type", json!("atomic"));
                put("patch-merge-key", json!(key));
                put("patch-strategy", json!("merge"));
            }
        }
        out
    }
}

// k8s-openapi's schemas carry no merge extensions, so they are restored from the markers and
// struct tags of k8s.io/api, k8s.io/apimachinery and k8s.io/apiextensions-apiserver v0.35 for the
// types reachable from the kinds above. Lists marked only `listType=atomic` are left out: a list
// without a list type is atomic for server-side apply and replaced by strategic merge anyway.
// (schema name after "io.k8s.", property or "" for the schema itself, merge behaviour)
const MERGE_RULES: &[(&str, &str, Merge)] = {
    use Merge::*;
    &[
        ("api.apps.v1.DeploymentSpec", "strategy", RetainKeys),
        ("api.apps.v1.DeploymentStatus", "conditions", Keyed(&["type"])),
        ("api.apps.v1.ReplicaSetStatus", "conditions", Keyed(&["type"])),
        ("api.autoscaling.v2.HorizontalPodAutoscalerStatus", "conditions", Keyed(&["type"])),
        ("api.core.v1.ConfigMapKeySelector", "", AtomicMap),
        ("api.core.v1.Container", "env", Keyed(&["name"])),
        ("api.core.v1.Container", "ports", Keyed(&["containerPort", "protocol"])),
        ("api.core.v1.Container", "volumeDevices", Keyed(&["devicePath"])),
        ("api.core.v1.Container", "volumeMounts", Keyed(&["mountPath"])),
        ("api.core.v1.ContainerRestartRuleOnExitCodes", "values", Set),
        ("api.core.v1.ContainerStatus", "allocatedResourcesStatus", Keyed(&["name"])),
        ("api.core.v1.ContainerStatus", "volumeMounts", Keyed(&["mountPath"])),
        ("api.core.v1.EndpointAddress", "", AtomicMap),
        ("api.core.v1.EndpointPort", "", AtomicMap),
        ("api.core.v1.EphemeralContainer", "env", Keyed(&["name"])),
        ("api.core.v1.EphemeralContainer", "ports", Keyed(&["containerPort", "protocol"])),
        ("api.core.v1.EphemeralContainer", "volumeDevices", Keyed(&["devicePath"])),
        ("api.core.v1.EphemeralContainer", "volumeMounts", Keyed(&["mountPath"])),
        ("api.core.v1.FileKeySelector", "", AtomicMap),
        ("api.core.v1.LocalObjectReference", "", AtomicMap),
        ("api.core.v1.NamespaceStatus", "conditions", Keyed(&["type"])),
        ("api.core.v1.NodeSelector", "", AtomicMap),
        ("api.core.v1.NodeSelectorTerm", "", AtomicMap),
        ("api.core.v1.ObjectFieldSelector", "", AtomicMap),
        ("api.core.v1.ObjectReference", "", AtomicMap),
        ("api.core.v1.PodSpec", "containers", Keyed(&["name"])),
        ("api.core.v1.PodSpec", "ephemeralContainers", Keyed(&["name"])),
        ("api.core.v1.PodSpec", "hostAliases", Keyed(&["ip"])),
        ("api.core.v1.PodSpec", "imagePullSecrets", Keyed(&["name"])),
        ("api.core.v1.PodSpec", "initContainers", Keyed(&["name"])),
        ("api.core.v1.PodSpec", "nodeSelector", AtomicMap),
        ("api.core.v1.PodSpec", "resourceClaims", KeyedRetainKeys(&["name"])),
        ("api.core.v1.PodSpec", "schedulingGates", Keyed(&["name"])),
        ("api.core.v1.PodSpec", "topologySpreadConstraints", Keyed(&["topologyKey", "whenUnsatisfiable"])),
        ("api.core.v1.PodSpec", "volumes", KeyedRetainKeys(&["name"])),
        ("api.core.v1.PodStatus", "conditions", Keyed(&["type"])),
        ("api.core.v1.PodStatus", "hostIPs", AtomicMergedBy("ip")),
        ("api.core.v1.PodStatus", "podIPs", Keyed(&["ip"])),
        ("api.core.v1.PodStatus", "resourceClaimStatuses", KeyedRetainKeys(&["name"])),
        ("api.core.v1.ResourceFieldSelector", "", AtomicMap),
        ("api.core.v1.ResourceRequirements", "claims", MapOnly(&["name"])),
        ("api.core.v1.ResourceStatus", "resources", MapOnly(&["resourceID"])),
        ("api.core.v1.SecretKeySelector", "", AtomicMap),
        ("api.core.v1.ServiceAccount", "secrets", Keyed(&["name"])),
        ("api.core.v1.ServiceSpec", "ports", Keyed(&["port", "protocol"])),
        ("api.core.v1.ServiceSpec", "selector", AtomicMap),
        ("api.core.v1.ServiceStatus", "conditions", Keyed(&["type"])),
        ("api.core.v1.TypedLocalObjectReference", "", AtomicMap),
        ("api.policy.v1.PodDisruptionBudgetSpec", "selector", Replace),
        ("api.policy.v1.PodDisruptionBudgetStatus", "conditions", Keyed(&["type"])),
        ("api.rbac.v1.RoleRef", "", AtomicMap),
        ("api.rbac.v1.Subject", "", AtomicMap),
        (
            "apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinitionStatus",
            "conditions",
            MapOnly(&["type"]),
        ),
        (
            "apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps",
            "x-kubernetes-validations",
            Keyed(&["rule"]),
        ),
        ("apimachinery.pkg.apis.meta.v1.LabelSelector", "", AtomicMap),
        ("apimachinery.pkg.apis.meta.v1.ObjectMeta", "finalizers", SetMerged),
        ("apimachinery.pkg.apis.meta.v1.ObjectMeta", "ownerReferences", Keyed(&["uid"])),
        ("apimachinery.pkg.apis.meta.v1.OwnerReference", "", AtomicMap),
    ]
};

fn add_merge_extensions(schemas: &mut Map<String, Value>) {
    for (name, property, merge) in MERGE_RULES {
        let Some(def) = schemas.get_mut(&format!("io.k8s.{name}")) else {
            continue;
        };
        let target = if property.is_empty() { Some(def) } else { def.pointer_mut(&format!("/properties/{property}")) };
        if let Some(Value::Object(target)) = target {
            target.extend(merge.extensions());
        }
    }
}

/// Brings k8s-openapi's scalar and free-form schemas in line with what the real server publishes,
/// so a validator built on them accepts what the API server accepts.
fn fix_special_schemas(schemas: &mut Map<String, Value>) {
    let mut fix = |name: &str, patch: Value| {
        if let (Some(Value::Object(def)), Value::Object(patch)) = (schemas.get_mut(name), patch) {
            for (key, value) in patch {
                if value.is_null() {
                    def.remove(&key);
                } else {
                    def.insert(key, value);
                }
            }
        }
    };
    // `cpu: 0.5` is a JSON number, which int-or-string would refuse.
    fix(
        "io.k8s.apimachinery.pkg.api.resource.Quantity",
        json!({"x-kubernetes-int-or-string": null, "oneOf": [{"type": "string"}, {"type": "number"}]}),
    );
    fix(
        "io.k8s.apimachinery.pkg.util.intstr.IntOrString",
        json!({"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}),
    );
    // A CRD's `default`, `enum` and `example` hold any JSON value, not only objects.
    fix(
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSON",
        json!({"type": null, "x-kubernetes-preserve-unknown-fields": true}),
    );
    // managedFields entries are a trie of field names no schema can list.
    fix("io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1", json!({"x-kubernetes-preserve-unknown-fields": true}));
}

fn gvk_value(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("{SCHEMA_REF_PREFIX}{name}") })
}

/// A property referring to another schema; `allOf` keeps the description beside the `$ref`,
/// which OpenAPI 3.0 would otherwise ignore (schemars writes nested references the same way).
fn described_ref(name: &str, description: &str) -> Value {
    json!({"allOf": [schema_ref(name)], "description": description})
}

fn ref_name(schema: &Value) -> Option<&str> {
    schema.get("$ref")?.as_str()?.strip_prefix(SCHEMA_REF_PREFIX)
}

/// The schema name the real server gives a CRD kind: reversed group, version, kind.
fn crd_schema_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').filter(|p| !p.is_empty()).collect();
    parts.reverse();
    parts.push(version);
    parts.push(kind);
    parts.join(".")
}

/// Collects the schemas of one document: k8s-openapi's through a shared generator, the CRD and
/// List schemas written here, and the GVK each kind schema announces.
struct SchemaSet {
    generator: SchemaGenerator,
    extra: Map<String, Value>,
    gvks: Vec<(String, Value)>,
}

impl SchemaSet {
    fn new() -> Self {
        SchemaSet { generator: SchemaSettings::openapi3().into_generator(), extra: Map::new(), gvks: Vec::new() }
    }

    fn add<T: JsonSchema>(&mut self) {
        self.generator.subschema_for::<T>();
    }

    /// Registers a built-in kind's schema and returns its name.
    fn add_builtin(&mut self, group: &str, version: &str, kind: &str) -> Option<String> {
        let schema = kind_schema_fn(group, version, kind)?(&mut self.generator);
        let name = ref_name(schema.as_value())?.to_owned();
        self.gvks.push((name.clone(), gvk_value(group, version, kind)));
        Some(name)
    }

    fn add_own(&mut self, name: String, schema: Value, gvk: Value) {
        self.gvks.push((name.clone(), gvk));
        self.extra.insert(name, schema);
    }

    /// `<Kind>List` next to the kind's schema, named as the real server names it.
    fn add_list(&mut self, group: &str, version: &str, kind: &str, item_schema: &str) -> String {
        self.add::<meta::ListMeta>();
        let list_kind = format!("{kind}List");
        let schema = json!({
            "description": format!("{list_kind} is a list of {kind}"),
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": {"description": API_VERSION_DESCRIPTION, "type": "string"},
                "kind": {"description": KIND_DESCRIPTION, "type": "string"},
                "metadata": described_ref(LIST_META, LIST_META_DESCRIPTION),
                "items": {"description": format!("List of {kind} objects."), "type": "array", "items": schema_ref(item_schema)},
            },
        });
        let name = format!("{item_schema}List");
        self.add_own(name.clone(), schema, gvk_value(group, version, &list_kind));
        name
    }

    fn finish(mut self) -> Map<String, Value> {
        let mut schemas = self.generator.take_definitions(true);
        fix_special_schemas(&mut schemas);
        add_merge_extensions(&mut schemas);
        schemas.append(&mut self.extra);
        for (name, gvk) in self.gvks {
            if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
                schema.insert(GVK_EXTENSION.to_owned(), json!([gvk]));
            }
        }
        schemas
    }
}

/// A CRD version's schema as the real server publishes it: the openAPIV3Schema with apiVersion,
/// kind and a reference to ObjectMeta added, at the top and on every embedded resource.
fn crd_kind_schema(schema: &Value) -> Value {
    let mut out = match schema {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    out.entry("type").or_insert_with(|| json!("object"));
    add_type_meta(&mut out);
    let mut out = Value::Object(out);
    add_embedded_type_meta(&mut out);
    out
}

fn add_type_meta(schema: &mut Map<String, Value>) {
    let properties = schema.entry("properties").or_insert_with(|| json!({}));
    if !properties.is_object() {
        *properties = json!({});
    }
    if let Value::Object(properties) = properties {
        properties.insert("apiVersion".into(), json!({"description": API_VERSION_DESCRIPTION, "type": "string"}));
        properties.insert("kind".into(), json!({"description": KIND_DESCRIPTION, "type": "string"}));
        properties.insert("metadata".into(), described_ref(OBJECT_META, OBJECT_META_DESCRIPTION));
    }
}

fn add_embedded_type_meta(schema: &mut Value) {
    let Value::Object(map) = schema else { return };
    if map.get("x-kubernetes-embedded-resource") == Some(&Value::Bool(true)) {
        add_type_meta(map);
        let required = map.entry("required").or_insert_with(|| json!([]));
        if let Value::Array(required) = required {
            for field in ["apiVersion", "kind"] {
                if !required.iter().any(|r| r == field) {
                    required.push(json!(field));
                }
            }
        }
    }
    for sub in subschemas_mut(map) {
        add_embedded_type_meta(sub);
    }
}

/// The schemas nested in a schema (not the values of `default`, `enum` or `example`, which are
/// data: a property may well be named `$ref`).
fn subschemas_mut(schema: &mut Map<String, Value>) -> Vec<&mut Value> {
    let mut out = Vec::new();
    for (key, value) in schema.iter_mut() {
        match (key.as_str(), value) {
            ("properties" | "patternProperties" | "definitions", Value::Object(map)) => out.extend(map.values_mut()),
            ("allOf" | "anyOf" | "oneOf", Value::Array(list)) => out.extend(list.iter_mut()),
            ("items", Value::Array(list)) => out.extend(list.iter_mut()),
            ("items" | "additionalProperties" | "additionalItems" | "not", value @ Value::Object(_)) => out.push(value),
            _ => {}
        }
    }
    out
}

/// Where a schema points when it only stands for another: `{"$ref"}` or `{"allOf": [{"$ref"}]}`.
fn reference_target(schema: &Map<String, Value>) -> Option<&str> {
    if let Some(Value::String(target)) = schema.get("$ref") {
        return target.strip_prefix(SCHEMA_REF_PREFIX);
    }
    match schema.get("allOf") {
        Some(Value::Array(list)) if list.len() == 1 => match &list[0] {
            Value::Object(only) if only.len() == 1 => ref_name(&list[0]),
            _ => None,
        },
        _ => None,
    }
}

/// Inlines every reference. A type that contains itself (JSONSchemaProps) is expanded once; the
/// nested occurrence becomes an object that accepts anything.
fn resolve(schema: &Value, schemas: &Map<String, Value>, stack: &mut Vec<String>) -> Value {
    let Value::Object(map) = schema else {
        return schema.clone();
    };
    if let Some(target) = reference_target(map) {
        let mut resolved = match schemas.get(target) {
            Some(def) if !stack.iter().any(|s| s == target) => {
                stack.push(target.to_owned());
                let resolved = resolve(def, schemas, stack);
                stack.pop();
                resolved
            }
            _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        };
        if let Value::Object(resolved) = &mut resolved {
            for (key, value) in map.iter().filter(|(k, _)| *k != "$ref" && *k != "allOf") {
                resolved.insert(key.clone(), value.clone());
            }
        }
        return resolved;
    }
    let mut out = map.clone();
    for sub in subschemas_mut(&mut out) {
        *sub = resolve(sub, schemas, stack);
    }
    Value::Object(out)
}

/// A built-in kind's (or its List's) schema with every `$ref` inlined, carrying the same
/// `x-kubernetes-*` extensions as the documents; None for kinds k8s-openapi has no schema for.
pub fn builtin_schema(group: &str, version: &str, kind: &str) -> Option<Value> {
    let mut set = SchemaSet::new();
    let name = match set.add_builtin(group, version, kind) {
        Some(name) => name,
        None => {
            let item_kind = kind.strip_suffix("List")?;
            let item = set.add_builtin(group, version, item_kind)?;
            set.add_list(group, version, item_kind, &item)
        }
    };
    let schemas = set.finish();
    Some(resolve(schemas.get(&name)?, &schemas, &mut vec![name]))
}

const READ_TYPES: &[&str] = &["application/json", "application/yaml"];
const LIST_TYPES: &[&str] = &["application/json", "application/yaml", "application/json;stream=watch"];
const BUILTIN_PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
];
/// Strategic merge needs Go struct tags the server has only for built-in kinds.
const CUSTOM_PATCH_TYPES: &[&str] =
    &["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"];

fn content(schema_name: &str, types: &[&str]) -> Value {
    types.iter().map(|t| ((*t).to_owned(), json!({"schema": schema_ref(schema_name)}))).collect::<Map<_, _>>().into()
}

fn param(name: &str, location: &str, kind: &str, description: &str) -> Value {
    let mut p = json!({"name": name, "in": location, "description": description, "schema": {"type": kind, "uniqueItems": true}});
    if location == "path" {
        p["required"] = json!(true);
    }
    p
}

fn dry_run() -> Value {
    param(
        "dryRun",
        "query",
        "string",
        "When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run \
         stages will be processed",
    )
}

fn field_manager() -> Value {
    param(
        "fieldManager",
        "query",
        "string",
        "fieldManager is a name associated with the actor or entity that is making these changes. It is required \
         for apply requests (application/apply-patch) and optional otherwise.",
    )
}

fn field_validation() -> Value {
    param(
        "fieldValidation",
        "query",
        "string",
        "fieldValidation instructs the server on how to handle objects in the request containing unknown or \
         duplicate fields. Valid values are: - Ignore - Warn - Strict: fail the request on unknown or duplicate \
         fields.",
    )
}

fn write_params() -> Vec<Value> {
    vec![dry_run(), field_manager(), field_validation()]
}

fn patch_params() -> Vec<Value> {
    let force = param(
        "force",
        "query",
        "boolean",
        "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by \
         other people. Force flag must be unset for non-apply patch requests.",
    );
    vec![dry_run(), force, field_manager(), field_validation()]
}

fn query_params(table: &[(&str, &str, &str)]) -> Vec<Value> {
    table.iter().map(|(name, kind, description)| param(name, "query", kind, description)).collect()
}

fn list_params() -> Vec<Value> {
    query_params(&[
        ("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
        ("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
        ("watch", "boolean", "Watch for changes to the described resources and return them as a stream."),
        ("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
        (
            "resourceVersion",
            "string",
            "resourceVersion sets a constraint on what resource versions a request may be served from.",
        ),
        (
            "resourceVersionMatch",
            "string",
            "resourceVersionMatch determines how resourceVersion is applied to list calls.",
        ),
        ("sendInitialEvents", "boolean", "Start a watch with synthetic ADDED events for the current state."),
        ("timeoutSeconds", "integer", "Timeout for the list/watch call."),
        ("limit", "integer", "limit is a maximum number of responses to return for a list call."),
        ("continue", "string", "The continue option should be set when retrieving more results from the server."),
    ])
}

fn delete_params() -> Vec<Value> {
    vec![
        param("gracePeriodSeconds", "query", "integer", "The duration in seconds before the object should be deleted."),
        param(
            "propagationPolicy",
            "query",
            "string",
            "Whether and how garbage collection will be performed: 'Orphan', 'Background' or 'Foreground'.",
        ),
        param(
            "orphanDependents",
            "query",
            "boolean",
            "Deprecated: please use the PropagationPolicy. Should the dependent objects be orphaned.",
        ),
        dry_run(),
    ]
}

fn log_params() -> Vec<Value> {
    query_params(&[
        ("container", "string", "The container for which to stream logs."),
        ("follow", "boolean", "Follow the log stream of the pod."),
        ("previous", "boolean", "Return previous terminated container logs."),
        ("sinceSeconds", "integer", "A relative time in seconds before the current time from which to show logs."),
        ("tailLines", "integer", "If set, the number of lines from the end of the logs to show."),
        ("timestamps", "boolean", "If true, add an RFC3339 timestamp at the beginning of every line."),
        ("limitBytes", "integer", "If set, the number of bytes to read from the server before terminating."),
    ])
}

/// "rbac.authorization.k8s.io" -> "RbacAuthorization", "" -> "Core", as operation ids spell groups.
fn group_camel(group: &str) -> String {
    let group = if group.is_empty() { "core" } else { group.strip_suffix(".k8s.io").unwrap_or(group) };
    group.split('.').map(capitalize).collect()
}

/// "apps_v1", "rbacAuthorization_v1": the tag the real server puts on a group-version's operations.
fn group_tag(group: &str, version: &str) -> String {
    let camel = group_camel(group);
    let mut chars = camel.chars();
    let head: String = chars.next().map(|c| c.to_lowercase().collect()).unwrap_or_default();
    format!("{head}{}_{version}", chars.as_str())
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// What the operations of one path share.
struct PathOps {
    gvk: Value,
    tag: String,
    /// operationId after the verb: "AppsV1NamespacedDeploymentStatus".
    id_stem: String,
    /// Who the operations act on, for descriptions: "Deployment", "status of the specified Deployment".
    subject: String,
    body: String,
    patch_types: &'static [&'static str],
    ops: Map<String, Value>,
}

impl PathOps {
    fn op(&mut self, method: &str, action: &str, id_verb: &str, description: String, params: Vec<Value>) -> &mut Value {
        let mut op = json!({
            "description": description,
            "operationId": format!("{id_verb}{}", self.id_stem),
            "tags": [self.tag],
            "parameters": params,
            "responses": {"401": {"description": "Unauthorized"}},
            "x-kubernetes-action": action,
        });
        op[GVK_EXTENSION] = self.gvk.clone();
        self.ops.insert(method.to_owned(), op);
        &mut self.ops[method]
    }

    fn respond(op: &mut Value, codes: &[(&str, &str)], schema_name: &str, types: &[&str]) {
        for (code, description) in codes {
            op["responses"][*code] = json!({"description": description, "content": content(schema_name, types)});
        }
    }

    fn get(&mut self) {
        let body = self.body.clone();
        let op = self.op("get", "get", "read", format!("read the {}", self.subject), vec![]);
        Self::respond(op, &[("200", "OK")], &body, READ_TYPES);
    }

    fn put(&mut self) {
        let body = self.body.clone();
        let op = self.op("put", "put", "replace", format!("replace the {}", self.subject), write_params());
        op["requestBody"] = json!({"content": content(&body, READ_TYPES), "required": true});
        Self::respond(op, &[("200", "OK"), ("201", "Created")], &body, READ_TYPES);
    }

    fn patch(&mut self) {
        let (body, types) = (self.body.clone(), self.patch_types);
        let op = self.op("patch", "patch", "patch", format!("partially update the {}", self.subject), patch_params());
        op["requestBody"] = json!({"content": content(PATCH_SCHEMA, types), "required": true});
        Self::respond(op, &[("200", "OK"), ("201", "Created")], &body, READ_TYPES);
    }

    fn post(&mut self) {
        let body = self.body.clone();
        let op = self.op("post", "post", "create", format!("create a {}", self.subject), write_params());
        op["requestBody"] = json!({"content": content(&body, READ_TYPES), "required": true});
        Self::respond(op, &[("200", "OK"), ("201", "Created"), ("202", "Accepted")], &body, READ_TYPES);
    }

    fn delete(&mut self) {
        let op = self.op("delete", "delete", "delete", format!("delete the {}", self.subject), delete_params());
        op["requestBody"] = json!({"content": content(DELETE_OPTIONS, &["application/json"])});
        Self::respond(op, &[("200", "OK"), ("202", "Accepted")], STATUS_SCHEMA, READ_TYPES);
    }

    fn list(&mut self, list_schema: &str) {
        let description = format!("list or watch objects of kind {}", self.subject);
        let op = self.op("get", "list", "list", description, list_params());
        Self::respond(op, &[("200", "OK")], list_schema, LIST_TYPES);
    }

    fn delete_collection(&mut self) {
        let mut params = list_params();
        params.extend(delete_params());
        let description = format!("delete collection of {}", self.subject);
        let op = self.op("delete", "deletecollection", "deleteCollection", description, params);
        op["requestBody"] = json!({"content": content(DELETE_OPTIONS, &["application/json"])});
        Self::respond(op, &[("200", "OK")], STATUS_SCHEMA, READ_TYPES);
    }

    fn log(&mut self) {
        let op = self.op("get", "get", "read", format!("read the {}", self.subject), log_params());
        op["responses"]["200"] =
            json!({"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}});
    }

    fn into_path(self, path_params: Vec<Value>) -> Value {
        let mut path = self.ops;
        path.insert("parameters".into(), path_params.into());
        path.into()
    }
}

/// Names for one kind inside one document.
struct KindPaths<'a> {
    t: &'a OpenApiType<'a>,
    schema: String,
    list: String,
    verbs: &'a [&'a str],
    patch_types: &'static [&'static str],
}

impl KindPaths<'_> {
    /// "AppsV1NamespacedDeploymentStatus", "CoreV1PodForAllNamespaces".
    fn id_stem(&self, namespaced: bool, suffix: &str) -> String {
        let t = self.t;
        let scope = if namespaced { "Namespaced" } else { "" };
        format!("{}{}{scope}{}{suffix}", group_camel(t.group), capitalize(t.version), t.kind)
    }

    fn path_ops(&self, id_stem: String, gvk: Value, body: &str, subject: String) -> PathOps {
        PathOps {
            gvk,
            tag: group_tag(self.t.group, self.t.version),
            id_stem,
            subject,
            body: body.to_owned(),
            patch_types: self.patch_types,
            ops: Map::new(),
        }
    }

    fn can(&self, verb: &str) -> bool {
        self.verbs.contains(&verb)
    }

    fn paths(&self) -> Vec<(String, Value)> {
        let t = self.t;
        let root =
            if t.group.is_empty() { format!("/api/{}", t.version) } else { format!("/apis/{}/{}", t.group, t.version) };
        let scoped_root = if t.namespaced { format!("{root}/namespaces/{{namespace}}") } else { root.clone() };
        let collection = format!("{scoped_root}/{}", t.plural);
        let item = format!("{collection}/{{name}}");
        let own_gvk = gvk_value(t.group, t.version, t.kind);
        let pretty = param("pretty", "query", "string", "If 'true', then the output is pretty printed.");
        let namespace =
            param("namespace", "path", "string", "object name and auth scope, such as for teams and projects");
        let name = param("name", "path", "string", &format!("name of the {}", t.kind));
        let scope_params = |with_name: bool| {
            let mut params = Vec::new();
            if with_name {
                params.push(name.clone());
            }
            if t.namespaced {
                params.push(namespace.clone());
            }
            params.push(pretty.clone());
            params
        };
        let mut out = Vec::new();

        let stem = self.id_stem(t.namespaced, "");
        let mut ops = self.path_ops(stem.clone(), own_gvk.clone(), &self.schema, t.kind.to_owned());
        if self.can("list") {
            ops.list(&self.list);
        }
        if self.can("create") {
            ops.post();
        }
        if self.can("deletecollection") {
            ops.delete_collection();
        }
        out.push((collection, ops.into_path(scope_params(false))));

        if t.namespaced && self.can("list") {
            let stem = self.id_stem(false, "ForAllNamespaces");
            let mut ops = self.path_ops(stem, own_gvk.clone(), &self.schema, t.kind.to_owned());
            ops.list(&self.list);
            out.push((format!("{root}/{}", t.plural), ops.into_path(vec![pretty.clone()])));
        }

        let specified = format!("specified {}", t.kind);
        let mut ops = self.path_ops(stem, own_gvk.clone(), &self.schema, specified.clone());
        for (verb, add) in
            [("get", PathOps::get as fn(&mut PathOps)), ("update", PathOps::put), ("delete", PathOps::delete)]
        {
            if self.can(verb) {
                add(&mut ops);
            }
        }
        // kubectl only trusts the server to validate a kind that has a PATCH operation taking
        // fieldValidation; otherwise it validates client-side against /openapi/v2, which is not
        // served. So create-only kinds (reviews) get one too; the server answers it with 405.
        ops.patch();
        if !self.can("patch") {
            ops.ops["patch"]["description"] = json!(format!("{} objects cannot be patched", t.kind));
        }
        out.push((item.clone(), ops.into_path(scope_params(true))));

        // The operations per subresource are those discovery advertises for it.
        for sub in t.subresources {
            let (gvk, body) = match *sub {
                "scale" => (gvk_value("autoscaling", "v1", "Scale"), SCALE),
                "token" => (gvk_value("authentication.k8s.io", "v1", "TokenRequest"), TOKEN_REQUEST),
                "status" | "log" | "finalize" => (own_gvk.clone(), self.schema.as_str()),
                _ => continue,
            };
            let stem = self.id_stem(t.namespaced, &capitalize(sub));
            let mut ops = self.path_ops(stem, gvk, body, format!("{sub} of the {specified}"));
            match *sub {
                "status" | "scale" => {
                    ops.get();
                    ops.put();
                    ops.patch();
                }
                "token" => ops.post(),
                "log" => ops.log(),
                _ => ops.put(),
            }
            out.push((format!("{item}/{sub}"), ops.into_path(scope_params(true))));
        }
        out
    }
}

const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";
const TOKEN_REQUEST: &str = "io.k8s.api.authentication.v1.TokenRequest";

/// The group-version document: collection, item and subresource paths for every type, each
/// operation tagged with `x-kubernetes-action` and `x-kubernetes-group-version-kind`, and in
/// `components.schemas` every kind, its List and everything they reference. A built-in kind
/// k8s-openapi has no schema for is published as an open object, without strategic merge.
pub fn group_version_doc(types: &[OpenApiType]) -> Value {
    let mut set = SchemaSet::new();
    set.add::<meta::Status>();
    set.add::<meta::DeleteOptions>();
    set.add::<meta::Patch>();
    let mut paths = Map::new();
    for t in types {
        let builtin = if t.crd_schema.is_none() { set.add_builtin(t.group, t.version, t.kind) } else { None };
        let (schema, patch_types) = match builtin {
            Some(name) => (name, BUILTIN_PATCH_TYPES),
            None => {
                set.add::<meta::ObjectMeta>();
                let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
                let name = crd_schema_name(t.group, t.version, t.kind);
                let schema = crd_kind_schema(t.crd_schema.unwrap_or(&open));
                set.add_own(name.clone(), schema, gvk_value(t.group, t.version, t.kind));
                (name, CUSTOM_PATCH_TYPES)
            }
        };
        if t.subresources.contains(&"scale") {
            set.add_builtin("autoscaling", "v1", "Scale");
        }
        if t.subresources.contains(&"token") {
            set.add_builtin("authentication.k8s.io", "v1", "TokenRequest");
        }
        let list = set.add_list(t.group, t.version, t.kind, &schema);
        let verbs = match (t.crd_schema, builtin_kind(t.group, t.version, t.kind)) {
            (None, Some(b)) => b.verbs,
            _ => ALL_VERBS,
        };
        let names = KindPaths { t, schema, list, verbs, patch_types };
        paths.extend(names.paths());
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.35.0"},
        "paths": paths,
        "components": {
            "schemas": set.finish(),
            "securitySchemes": {"BearerToken": {"type": "apiKey", "name": "authorization", "in": "header"}},
        },
        "security": [{"BearerToken": []}],
    })
}

/// The root document; `gv_paths` = ("api/v1" | "apis/<group>/<version>", hash of its doc).
pub fn root_doc(gv_paths: &[(String, String)]) -> Value {
    let paths: Map<String, Value> = gv_paths
        .iter()
        .map(|(path, hash)| (path.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")})))
        .collect();
    json!({ "paths": paths })
}

/// Stable content hash (hex sha256 of the doc's JSON) for the `hash` parameter and ETag.
pub fn doc_hash(doc: &Value) -> String {
    hex::encode(Sha256::digest(doc.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_of(b: &BuiltinKind) -> OpenApiType<'static> {
        OpenApiType {
            group: b.group,
            version: b.version,
            kind: b.kind,
            plural: b.plural,
            namespaced: b.namespaced,
            subresources: b.subresources,
            crd_schema: None,
        }
    }

    /// One document per built-in group-version, as the server publishes them.
    fn builtin_docs() -> Vec<((&'static str, &'static str), Value)> {
        let mut gvs: Vec<(&str, &str)> = builtin_kinds().iter().map(|b| (b.group, b.version)).collect();
        gvs.sort();
        gvs.dedup();
        gvs.into_iter()
            .map(|(g, v)| {
                let types: Vec<_> =
                    builtin_kinds().iter().filter(|b| b.group == g && b.version == v).map(type_of).collect();
                ((g, v), group_version_doc(&types))
            })
            .collect()
    }

    fn memorystore_crd() -> Value {
        let crd: Value = serde_yaml::from_str(include_str!("../../../crds/memorystore.yaml")).expect("CRD parses");
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
    }

    fn memorystore_doc(schema: &Value) -> Value {
        group_version_doc(&[OpenApiType {
            group: "pinak.dev",
            version: "v1alpha1",
            kind: "MemoryStore",
            plural: "memorystores",
            namespaced: true,
            subresources: &["status", "scale"],
            crd_schema: Some(schema),
        }])
    }

    fn operations(doc: &Value) -> Vec<(&str, &str, &Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                if method != "parameters" {
                    out.push((path.as_str(), method.as_str(), op));
                }
            }
        }
        out
    }

    fn has_param(op: &Value, name: &str) -> bool {
        op["parameters"].as_array().is_some_and(|ps| ps.iter().any(|p| p["name"] == name))
    }

    fn all_refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r),
                        _ => all_refs(v, out),
                    }
                }
            }
            Value::Array(list) => list.iter().for_each(|v| all_refs(v, out)),
            _ => {}
        }
    }

    /// kubectl's QueryParamVerifierV3 takes whichever PATCH operation with the GVK comes first
    /// in a Go map, so every one of them must offer fieldValidation.
    fn assert_field_validation(doc: &Value, gvk: &Value, strategic: bool) {
        let patches: Vec<_> = operations(doc)
            .into_iter()
            .filter(|(_, method, op)| *method == "patch" && op[GVK_EXTENSION] == *gvk)
            .collect();
        assert!(!patches.is_empty(), "no PATCH operation for {gvk}");
        for (path, _, op) in patches {
            assert!(has_param(op, "fieldValidation"), "{path} lacks fieldValidation");
            assert_eq!(op["x-kubernetes-action"], "patch");
            let types = op["requestBody"]["content"].as_object().expect("patch content types");
            for t in ["application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml"] {
                assert!(types.contains_key(t), "{path} lacks {t}");
            }
            assert_eq!(types.contains_key("application/strategic-merge-patch+json"), strategic, "{path}");
        }
    }

    fn schemas_with_gvk<'a>(doc: &'a Value, gvk: &Value) -> Vec<&'a str> {
        doc["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .iter()
            .filter(|(_, s)| s[GVK_EXTENSION].as_array().is_some_and(|l| l.contains(gvk)))
            .map(|(name, _)| name.as_str())
            .collect()
    }

    #[test]
    fn every_builtin_kind_has_a_patch_operation_with_field_validation() {
        for ((g, v), doc) in builtin_docs() {
            for b in builtin_kinds().iter().filter(|b| b.group == g && b.version == v) {
                assert_field_validation(&doc, &gvk_value(b.group, b.version, b.kind), true);
            }
        }
    }

    #[test]
    fn every_reference_resolves_inside_its_document() {
        let crd = memorystore_crd();
        let mut docs: Vec<Value> = builtin_docs().into_iter().map(|(_, d)| d).collect();
        docs.push(memorystore_doc(&crd));
        for doc in &docs {
            let schemas = doc["components"]["schemas"].as_object().expect("schemas");
            let mut refs = Vec::new();
            all_refs(doc, &mut refs);
            assert!(!refs.is_empty());
            for r in refs {
                let name = r.strip_prefix(SCHEMA_REF_PREFIX).unwrap_or_else(|| panic!("foreign ref {r}"));
                assert!(schemas.contains_key(name), "dangling ref {r}");
            }
        }
    }

    #[test]
    fn each_kind_and_list_has_exactly_one_schema_named_like_the_real_server() {
        let expected = [
            ("apps", "Deployment", "io.k8s.api.apps.v1.Deployment"),
            ("", "Pod", "io.k8s.api.core.v1.Pod"),
            ("events.k8s.io", "Event", "io.k8s.api.events.v1.Event"),
            (
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition",
            ),
        ];
        for ((g, v), doc) in builtin_docs() {
            for b in builtin_kinds().iter().filter(|b| b.group == g && b.version == v) {
                let kind = schemas_with_gvk(&doc, &gvk_value(b.group, b.version, b.kind));
                assert_eq!(kind.len(), 1, "{} {kind:?}", b.kind);
                let list = schemas_with_gvk(&doc, &gvk_value(b.group, b.version, &format!("{}List", b.kind)));
                assert_eq!(list, [format!("{}List", kind[0])]);
                if let Some((_, _, name)) = expected.iter().find(|(eg, ek, _)| *eg == b.group && *ek == b.kind) {
                    assert_eq!(kind[0], *name);
                }
                let schema = &doc["components"]["schemas"][kind[0]];
                assert!(schema["properties"]["metadata"].is_object(), "{}", b.kind);
            }
        }
    }

    #[test]
    fn explain_finds_every_kind_through_its_resource_paths() {
        for ((g, v), doc) in builtin_docs() {
            let prefix = if g.is_empty() { "/api".to_owned() } else { format!("/apis/{g}") };
            for b in builtin_kinds().iter().filter(|b| b.group == g && b.version == v) {
                // The four paths kubectl explain's template searches, in its order.
                let candidates = [
                    format!("{prefix}/{v}/{}", b.plural),
                    format!("{prefix}/{v}/{}/{{name}}", b.plural),
                    format!("{prefix}/{v}/namespaces/{{namespace}}/{}", b.plural),
                    format!("{prefix}/{v}/namespaces/{{namespace}}/{}/{{name}}", b.plural),
                ];
                let found = candidates.iter().find_map(|p| {
                    let item = doc["paths"].get(p)?;
                    ["get", "post", "put", "patch", "delete"].iter().find_map(|m| item.get(*m)?.get(GVK_EXTENSION))
                });
                let gvk = gvk_value(b.group, b.version, b.kind);
                assert_eq!(found, Some(&gvk), "{}", b.kind);
                assert_eq!(schemas_with_gvk(&doc, &gvk).len(), 1);
            }
        }
    }

    #[test]
    fn paths_follow_scope_verbs_and_subresources() {
        let docs = builtin_docs();
        let doc = |g: &str| &docs.iter().find(|((dg, _), _)| *dg == g).expect("doc").1;
        let core = doc("");
        let pods = "/api/v1/namespaces/{namespace}/pods";
        assert_eq!(core["paths"][pods]["get"]["x-kubernetes-action"], "list");
        assert_eq!(core["paths"][pods]["post"]["x-kubernetes-action"], "post");
        assert_eq!(core["paths"][pods]["delete"]["x-kubernetes-action"], "deletecollection");
        assert_eq!(core["paths"]["/api/v1/pods"]["get"]["operationId"], "listCoreV1PodForAllNamespaces");
        let log = &core["paths"][format!("{pods}/{{name}}/log")]["get"];
        assert!(log["responses"]["200"]["content"]["text/plain"].is_object());
        assert!(has_param(log, "container"));
        let token = &core["paths"]["/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"]["post"];
        let token_gvk = gvk_value("authentication.k8s.io", "v1", "TokenRequest");
        assert_eq!(token[GVK_EXTENSION], token_gvk);
        assert_eq!(schemas_with_gvk(core, &token_gvk), [TOKEN_REQUEST]);
        // Namespaces: cluster-scoped, no deletecollection, a finalize subresource.
        assert!(core["paths"]["/api/v1/namespaces"].get("delete").is_none());
        assert_eq!(core["paths"]["/api/v1/namespaces/{name}/finalize"]["put"]["x-kubernetes-action"], "put");
        let params = core["paths"]["/api/v1/namespaces/{name}"]["parameters"].as_array().expect("params");
        assert!(params.iter().all(|p| p["name"] != "namespace"));
        assert!(params.iter().any(|p| p["name"] == "name" && p["in"] == "path" && p["required"] == true));

        let apps = doc("apps");
        let scale = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
        let scale_gvk = gvk_value("autoscaling", "v1", "Scale");
        assert_eq!(scale["patch"][GVK_EXTENSION], scale_gvk);
        assert_eq!(scale["get"]["responses"]["200"]["content"]["application/json"]["schema"], schema_ref(SCALE));
        assert_eq!(schemas_with_gvk(apps, &scale_gvk), [SCALE]);
        let status = &apps["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"];
        assert_eq!(status["patch"]["operationId"], "patchAppsV1NamespacedDeploymentStatus");
        assert_eq!(status["put"]["tags"], json!(["apps_v1"]));
        assert_eq!(
            doc("rbac.authorization.k8s.io")["paths"]["/apis/rbac.authorization.k8s.io/v1/clusterroles"]["post"]["tags"],
            json!(["rbacAuthorization_v1"])
        );

        // Reviews answer POST only; their PATCH exists for kubectl's verifier and says so.
        let authn = doc("authentication.k8s.io");
        let reviews = &authn["paths"]["/apis/authentication.k8s.io/v1/tokenreviews"];
        assert_eq!(reviews.as_object().map(|m| m.len()), Some(2), "post + parameters");
        let item = &authn["paths"]["/apis/authentication.k8s.io/v1/tokenreviews/{name}"];
        assert_eq!(item.as_object().map(|m| m.len()), Some(2), "patch + parameters");
        assert_eq!(item["patch"]["description"], "TokenReview objects cannot be patched");

        for (_, doc) in &docs {
            let mut ids: Vec<&str> =
                operations(doc).iter().map(|(_, _, op)| op["operationId"].as_str().expect("id")).collect();
            let count = ids.len();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), count, "operation ids are unique");
        }
    }

    #[test]
    fn crd_document_embeds_the_schema_like_the_real_server() {
        let crd = memorystore_crd();
        let doc = memorystore_doc(&crd);
        let gvk = gvk_value("pinak.dev", "v1alpha1", "MemoryStore");
        assert_eq!(schemas_with_gvk(&doc, &gvk), ["dev.pinak.v1alpha1.MemoryStore"]);
        let list_gvk = gvk_value("pinak.dev", "v1alpha1", "MemoryStoreList");
        assert_eq!(schemas_with_gvk(&doc, &list_gvk), ["dev.pinak.v1alpha1.MemoryStoreList"]);
        let schemas = &doc["components"]["schemas"];
        let schema = &schemas["dev.pinak.v1alpha1.MemoryStore"];
        assert_eq!(schema["properties"]["metadata"]["allOf"][0], schema_ref(OBJECT_META));
        assert_eq!(schema["properties"]["kind"]["type"], "string");
        assert_eq!(schema["properties"]["spec"], crd["properties"]["spec"]);
        assert_eq!(schema["description"], crd["description"]);
        assert!(schemas[OBJECT_META]["properties"]["finalizers"]["x-kubernetes-patch-strategy"] == "merge");
        assert_eq!(
            schemas["dev.pinak.v1alpha1.MemoryStoreList"]["properties"]["items"]["items"],
            schema_ref("dev.pinak.v1alpha1.MemoryStore")
        );
        // CRDs take no strategic merge patch: kubectl must fall back to a JSON merge patch.
        assert_field_validation(&doc, &gvk, false);
        let base = "/apis/pinak.dev/v1alpha1/namespaces/{namespace}/memorystores/{name}";
        assert_eq!(
            doc["paths"][format!("{base}/scale")]["put"][GVK_EXTENSION],
            gvk_value("autoscaling", "v1", "Scale")
        );
        assert!(schemas[SCALE].is_object());
        assert_eq!(doc["paths"][format!("{base}/status")]["get"][GVK_EXTENSION], gvk);
        assert_eq!(doc["paths"]["/apis/pinak.dev/v1alpha1/memorystores"]["get"]["x-kubernetes-action"], "list");
    }

    #[test]
    fn crd_embedded_resources_get_type_meta_and_odd_schemas_are_tolerated() {
        let schema = json!({
            "type": "object",
            "properties": {"spec": {"type": "object", "properties": {
                "template": {"type": "object", "x-kubernetes-embedded-resource": true, "required": ["kind"],
                    "x-kubernetes-preserve-unknown-fields": true},
            }}},
        });
        let doc = group_version_doc(&[OpenApiType {
            group: "example.com",
            version: "v1",
            kind: "Widget",
            plural: "widgets",
            namespaced: false,
            subresources: &[],
            crd_schema: Some(&schema),
        }]);
        let widget = &doc["components"]["schemas"]["com.example.v1.Widget"];
        let template = &widget["properties"]["spec"]["properties"]["template"];
        assert_eq!(template["required"], json!(["kind", "apiVersion"]));
        assert_eq!(template["properties"]["metadata"]["allOf"][0], schema_ref(OBJECT_META));
        assert!(doc["paths"]["/apis/example.com/v1/widgets/{name}"]["parameters"].is_array());

        // A schema that is not an object still yields a usable (open) kind schema.
        let odd = json!("not a schema");
        let secret = builtin_kinds().iter().find(|b| b.kind == "Secret").expect("Secret");
        let doc = group_version_doc(&[OpenApiType { crd_schema: Some(&odd), ..type_of(secret) }]);
        let secret = &doc["components"]["schemas"]["v1.Secret"];
        assert_eq!(secret["type"], "object");
        assert!(secret["properties"]["apiVersion"].is_object());
    }

    #[test]
    fn unknown_builtin_kinds_are_published_open_and_without_strategic_merge() {
        let doc = group_version_doc(&[OpenApiType {
            group: "batch",
            version: "v1",
            kind: "Job",
            plural: "jobs",
            namespaced: true,
            subresources: &["status", "exec"],
            crd_schema: None,
        }]);
        let gvk = gvk_value("batch", "v1", "Job");
        assert_eq!(schemas_with_gvk(&doc, &gvk), ["batch.v1.Job"]);
        assert_eq!(doc["components"]["schemas"]["batch.v1.Job"]["x-kubernetes-preserve-unknown-fields"], true);
        assert_field_validation(&doc, &gvk, false);
        let paths = doc["paths"].as_object().expect("paths");
        assert!(paths.contains_key("/apis/batch/v1/namespaces/{namespace}/jobs/{name}/status"));
        assert!(!paths.keys().any(|p| p.ends_with("/exec")), "unknown subresources get no path");
    }

    #[test]
    fn merge_rules_all_land_on_real_properties() {
        let mut set = SchemaSet::new();
        for (g, v, k, _) in KIND_SCHEMAS {
            set.add_builtin(g, v, k).expect("kind schema");
        }
        let schemas = set.finish();
        for (name, property, _) in MERGE_RULES {
            let def = schemas.get(&format!("io.k8s.{name}")).unwrap_or_else(|| panic!("no schema {name}"));
            if !property.is_empty() {
                assert!(def["properties"].get(*property).is_some(), "{name} has no {property}");
            }
        }
        let pod_spec = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"];
        assert_eq!(pod_spec["containers"]["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(pod_spec["containers"]["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(pod_spec["volumes"]["x-kubernetes-patch-strategy"], "merge,retainKeys");
        let ports = &schemas["io.k8s.api.core.v1.Container"]["properties"]["ports"];
        assert_eq!(ports["x-kubernetes-patch-merge-key"], "containerPort");
        assert_eq!(ports["x-kubernetes-list-map-keys"], json!(["containerPort", "protocol"]));
        assert_eq!(schemas["io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"]["x-kubernetes-map-type"], "atomic");
        assert_eq!(pod_spec["hostAliases"]["x-kubernetes-patch-merge-key"], "ip");
        assert!(pod_spec["tolerations"].get("x-kubernetes-patch-strategy").is_none());
    }

    fn contains_ref(value: &Value) -> bool {
        let mut refs = Vec::new();
        all_refs(value, &mut refs);
        !refs.is_empty()
    }

    #[test]
    fn builtin_schema_inlines_every_reference() {
        let deployment = builtin_schema("apps", "v1", "Deployment").expect("Deployment");
        assert!(!contains_ref(&deployment));
        assert_eq!(deployment[GVK_EXTENSION], json!([gvk_value("apps", "v1", "Deployment")]));
        let pod_spec = &deployment["properties"]["spec"]["properties"]["template"]["properties"]["spec"];
        let containers = &pod_spec["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["description"].as_str().map(|d| d.starts_with("List of containers")), Some(true));
        let limits = &containers["items"]["properties"]["resources"]["properties"]["limits"];
        assert_eq!(limits["additionalProperties"]["oneOf"], json!([{"type": "string"}, {"type": "number"}]));
        assert_eq!(deployment["properties"]["metadata"]["properties"]["name"]["type"], "string");

        let list = builtin_schema("", "v1", "ConfigMapList").expect("ConfigMapList");
        assert!(!contains_ref(&list));
        assert_eq!(list["properties"]["items"]["items"]["properties"]["data"]["type"], "object");
        assert_eq!(list[GVK_EXTENSION], json!([gvk_value("", "v1", "ConfigMapList")]));

        // JSONSchemaProps contains itself: expanded once, then left open.
        let crd = builtin_schema("apiextensions.k8s.io", "v1", "CustomResourceDefinition").expect("CRD");
        assert!(!contains_ref(&crd));
        let versions = &crd["properties"]["spec"]["properties"]["versions"]["items"]["properties"];
        let root = &versions["schema"]["properties"]["openAPIV3Schema"];
        assert_eq!(root["properties"]["type"]["type"], "string");
        assert_eq!(root["properties"]["$ref"]["type"], "string", "a property named $ref is no reference");
        assert_eq!(root["properties"]["default"]["x-kubernetes-preserve-unknown-fields"], true);
        assert!(root["properties"]["default"].get("type").is_none(), "defaults need not be objects");
        let nested = &root["properties"]["properties"]["additionalProperties"];
        assert_eq!(nested["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(root["properties"]["x-kubernetes-validations"]["x-kubernetes-list-map-keys"], json!(["rule"]));

        let scale = builtin_schema("autoscaling", "v1", "Scale").expect("Scale");
        assert_eq!(scale["properties"]["spec"]["properties"]["replicas"]["type"], "integer");
        assert!(builtin_schema("apps", "v1", "StatefulSet").is_none());
        assert!(builtin_schema("apps", "v1", "StatefulSetList").is_none());
        assert!(builtin_schema("apps", "v2", "Deployment").is_none());
    }

    #[test]
    fn builtin_table_matches_the_real_discovery() {
        let kinds = builtin_kinds();
        for (i, b) in kinds.iter().enumerate() {
            assert!(kind_schema_fn(b.group, b.version, b.kind).is_some(), "{} has no schema", b.kind);
            assert_eq!(b.singular, b.kind.to_lowercase());
            let clash = kinds[i + 1..].iter().any(|o| (o.group, o.version, o.plural) == (b.group, b.version, b.plural));
            assert!(!clash, "{} twice", b.plural);
            if b.verbs == CREATE_ONLY {
                assert!(!b.namespaced, "{} reviews are cluster-scoped", b.kind);
            }
        }
        let short = |plural: &str, group: &str| {
            kinds.iter().find(|b| b.plural == plural && b.group == group).map(|b| b.short_names).unwrap_or_default()
        };
        assert_eq!(short("deployments", "apps"), ["deploy"]);
        assert_eq!(short("customresourcedefinitions", "apiextensions.k8s.io"), ["crd", "crds"]);
        for (plural, name) in [("namespaces", "ns"), ("configmaps", "cm"), ("services", "svc"), ("pods", "po")] {
            assert_eq!(short(plural, ""), [name]);
        }
        let in_all: Vec<&str> = kinds.iter().filter(|b| b.categories.contains(&"all")).map(|b| b.plural).collect();
        assert_eq!(in_all, ["services", "pods", "deployments", "replicasets", "horizontalpodautoscalers"]);
        assert!(!kinds.iter().any(|b| b.kind == "TokenRequest" || b.kind == "Scale"));
    }

    #[test]
    fn root_document_points_at_each_group_version() {
        let root = root_doc(&[("api/v1".into(), "AB12".into()), ("apis/apps/v1".into(), "CD34".into())]);
        assert_eq!(
            root,
            json!({"paths": {
                "api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=AB12"},
                "apis/apps/v1": {"serverRelativeURL": "/openapi/v3/apis/apps/v1?hash=CD34"},
            }})
        );
        assert_eq!(root_doc(&[]), json!({"paths": {}}));
    }

    #[test]
    fn hash_is_stable_and_content_addressed() {
        let kind = |k: &str| builtin_kinds().iter().find(|b| b.kind == k).map(type_of).expect("kind");
        let first = doc_hash(&group_version_doc(&[kind("Role")]));
        let again = doc_hash(&group_version_doc(&[kind("Role")]));
        assert_eq!(first, again);
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(first, doc_hash(&group_version_doc(&[kind("Lease")])));
        assert_eq!(
            doc_hash(&json!({})),
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256 of \"{{}}\""
        );
    }
}
