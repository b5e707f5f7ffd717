//! Shape of the generated CRD: names, subresources, printer columns, a structural schema,
//! defaults, and the CEL rules (evaluated client-side with kube-cel, since no API server is
//! available to the tests).

use kube::CustomResourceExt;
use pinak_crds::{EmbeddingBackend, MemoryStore, MemoryStoreSpec, ReclaimPolicy, condition};
use serde_json::{Value, json};

const EXAMPLE: &str = include_str!("../examples/memorystore.yaml");

fn crd_json() -> Value {
    serde_json::to_value(MemoryStore::crd()).unwrap()
}

fn schema() -> Value {
    crd_json()["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

fn example() -> Value {
    serde_yaml::from_str(EXAMPLE).unwrap()
}

#[test]
fn names_scope_and_version() {
    let crd = crd_json();
    assert_eq!(crd["metadata"]["name"], "memorystores.pinak.dev");
    assert_eq!(crd["spec"]["group"], "pinak.dev");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["kind"], "MemoryStore");
    assert_eq!(crd["spec"]["names"]["shortNames"], json!(["ms"]));
    let v = &crd["spec"]["versions"][0];
    assert_eq!(v["name"], "v1alpha1");
    assert_eq!(v["served"], true);
    assert_eq!(v["storage"], true);
    let columns: Vec<&str> =
        v["additionalPrinterColumns"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(columns, ["Ready", "Schema", "Replicas", "Age"]);
}

#[test]
fn has_status_and_scale_subresources() {
    let crd = crd_json();
    let sub = &crd["spec"]["versions"][0]["subresources"];
    assert_eq!(sub["status"], json!({}));
    assert_eq!(
        sub["scale"],
        json!({
            "specReplicasPath": ".spec.api.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        })
    );
    // The paths must exist in the schema with the types the API server expects.
    let s = schema();
    assert_eq!(s["properties"]["spec"]["properties"]["api"]["properties"]["replicas"]["type"], "integer");
    assert_eq!(s["properties"]["status"]["properties"]["replicas"]["type"], "integer");
    assert_eq!(s["properties"]["status"]["properties"]["selector"]["type"], "string");
}

/// A subset of the API server's structural-schema rules: every node has a type (or is an
/// int-or-string / preserve-unknown-fields node), no `$ref`, no junctors (`oneOf`, `anyOf`,
/// `allOf`, `not`) since ours would carry types or defaults, objects use either
/// `properties` or `additionalProperties`, and arrays have `items`.
fn assert_structural(node: &Value, path: &str) {
    let obj = node.as_object().unwrap_or_else(|| panic!("{path}: schema is not an object"));
    for forbidden in ["$ref", "oneOf", "anyOf", "allOf", "not", "definitions", "$defs"] {
        assert!(!obj.contains_key(forbidden), "{path}: has `{forbidden}`");
    }
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    let ty = obj.get("type").and_then(Value::as_str);
    assert!(ty.is_some() || int_or_string || preserve, "{path}: no type");
    if let Some(t) = obj.get("type") {
        assert!(t.is_string(), "{path}: type must be a single string, got {t}");
    }
    assert!(
        !(obj.contains_key("properties") && obj.contains_key("additionalProperties")),
        "{path}: both properties and additionalProperties"
    );
    if ty == Some("array") {
        assert!(obj.contains_key("items"), "{path}: array without items");
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        assert_eq!(ty, Some("object"), "{path}: properties on a non-object");
        for (k, v) in props {
            assert_structural(v, &format!("{path}.{k}"));
        }
        if let Some(required) = obj.get("required").and_then(Value::as_array) {
            for r in required {
                assert!(props.contains_key(r.as_str().unwrap()), "{path}: required {r} missing");
            }
        }
    }
    if let Some(items) = obj.get("items") {
        assert_structural(items, &format!("{path}[]"));
    }
    if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
        assert_structural(ap, &format!("{path}{{}}"));
    }
    if let Some(list_type) = obj.get("x-kubernetes-list-type") {
        assert_eq!(ty, Some("array"), "{path}: list-type on a non-array");
        if list_type == "map" {
            let keys = obj["x-kubernetes-list-map-keys"].as_array().unwrap();
            let item_required = obj["items"]["required"].as_array().unwrap();
            for k in keys {
                assert!(item_required.contains(k), "{path}: map key {k} must be required");
            }
        }
    }
}

#[test]
fn schema_is_structural() {
    let s = schema();
    assert_structural(&s, "");
    // Metadata is not described by us (the API server fills it).
    assert!(s["properties"].get("metadata").is_none());
}

#[test]
fn enums_are_plain_strings() {
    let s = schema();
    let spec = &s["properties"]["spec"]["properties"];
    assert_eq!(spec["database"]["properties"]["reclaimPolicy"]["enum"], json!(["Retain", "Delete"]));
    assert_eq!(spec["database"]["properties"]["reclaimPolicy"]["default"], "Retain");
    assert_eq!(spec["embedding"]["properties"]["backend"]["enum"], json!(["local", "http", "dummy", "none"]));
}

#[test]
fn conditions_are_a_map_list_keyed_by_type() {
    let s = schema();
    let c = &s["properties"]["status"]["properties"]["conditions"];
    assert_eq!(c["x-kubernetes-list-type"], "map");
    assert_eq!(c["x-kubernetes-list-map-keys"], json!(["type"]));
    assert_eq!(condition::READY, "Ready");
}

#[test]
fn example_deserialises_with_defaults() {
    let ms: MemoryStore = serde_yaml::from_str(EXAMPLE).unwrap();
    assert_eq!(ms.metadata.name.as_deref(), Some("notes"));
    assert_eq!(ms.metadata.namespace.as_deref(), Some("team-a"));
    let spec = &ms.spec;
    assert_eq!(spec.tenant, None);
    assert_eq!(spec.resolved_tenant("team-a"), "team-a");
    assert_eq!(spec.database.admin_credentials.secret_ref.as_ref().unwrap().name, "pinak-pg-admin");
    assert_eq!(spec.database.schema, None);
    assert_eq!(spec.database.reclaim_policy, ReclaimPolicy::Retain);
    let vault = spec.vault.as_ref().unwrap();
    assert_eq!(vault.kv_mount, "secret");
    assert_eq!(vault.refresh_interval, "5m");
    assert_eq!(vault.refresh_interval_duration(), Some(std::time::Duration::from_secs(300)));
    assert_eq!(vault.auth.kubernetes.as_ref().unwrap().role, "pinak-operator");
    assert_eq!(vault.auth.kubernetes.as_ref().unwrap().mount_path_or_default(), "kubernetes");
    assert_eq!(vault.paths.jwt.as_deref(), Some("pinak/team-a/jwt"));
    assert_eq!(spec.auth.issuer, "pinak-memory");
    assert_eq!(spec.auth.audience, "pinak-memory-api");
    assert_eq!(spec.embedding.backend, EmbeddingBackend::Local);
    assert_eq!(spec.embedding.dimensions, 384);
    assert_eq!(
        (spec.index.m, spec.index.ef_construction, spec.index.ef_search, spec.index.halfvec),
        (16, 64, 100, true)
    );
    assert_eq!(spec.api.replicas, 2);
    assert!(spec.api.autoscaling.is_none());
    assert!(spec.api.resources.as_ref().unwrap().requests.is_some());
    assert_eq!(spec.retention.access_log_days, 90);
    assert!(spec.policy.quarantine_untrusted_writes);
    assert_eq!(spec.policy.trusted_clients, ["claude-code"]);
    assert!(!spec.paused);
    assert!(ms.status.is_none());
    assert_eq!(MemoryStoreSpec::schema_name("team-a", "notes"), spec.resolved_schema("team-a", "notes"));
}

/// The API server fills defaults from the schema, the operator from serde: they must agree.
#[test]
fn schema_defaults_match_serde_defaults() {
    let minimal = json!({
        "apiVersion": "pinak.dev/v1alpha1",
        "kind": "MemoryStore",
        "metadata": {"name": "m", "namespace": "n"},
        "spec": {
            "database": {"adminCredentials": {"vaultPath": "db/admin"}},
            "vault": {"address": "http://v:8200", "auth": {"tokenSecretRef": {"name": "t"}}},
            "api": {"autoscaling": {"maxReplicas": 5}},
        }
    });
    for object in [minimal, example()] {
        let defaulted = kube_cel::apply_defaults(&schema(), &object);
        let from_server: MemoryStore = serde_json::from_value(defaulted).unwrap();
        let from_serde: MemoryStore = serde_json::from_value(object).unwrap();
        assert_eq!(from_server, from_serde);
    }
}

fn validate(object: &Value, old: Option<&Value>) -> Result<(), Vec<String>> {
    kube_cel::Validator::new()
        .validate(&schema(), object, old)
        .map_err(|errs| errs.iter().map(|e| e.message.clone()).collect())
}

fn with_spec(patch: impl FnOnce(&mut Value)) -> Value {
    let mut object = example();
    patch(&mut object["spec"]);
    object
}

fn assert_rejected(object: &Value, old: Option<&Value>, message: &str) {
    let errors = validate(object, old).expect_err("should be rejected");
    assert!(errors.iter().any(|e| e.contains(message)), "expected {message:?} in {errors:?}");
}

#[test]
fn cel_rules_compile() {
    let compiled = kube_cel::compile_schema(&schema());
    fn walk(node: &kube_cel::CompiledSchema, path: &str) {
        assert!(!node.has_errors(), "{path}: {:?}", node.compilation_errors());
        for (k, child) in &node.properties {
            walk(child, &format!("{path}.{k}"));
        }
        if let Some(items) = &node.items {
            walk(items, &format!("{path}[]"));
        }
    }
    walk(&compiled, "");
}

#[test]
fn example_passes_cel_rules() {
    let object = example();
    validate(&object, None).unwrap();
    validate(&object, Some(&object)).unwrap();
}

#[test]
fn admin_credentials_need_exactly_one_source() {
    let both = with_spec(|s| {
        s["database"]["adminCredentials"]["vaultPath"] = json!("db/admin");
    });
    assert_rejected(&both, None, "exactly one of secretRef, vaultPath or cnpgCluster");
    let neither = with_spec(|s| {
        s["database"]["adminCredentials"] = json!({});
    });
    assert_rejected(&neither, None, "exactly one of secretRef, vaultPath or cnpgCluster");
}

#[test]
fn vault_path_requires_vault() {
    let object = with_spec(|s| {
        s["database"]["adminCredentials"] = json!({"vaultPath": "db/admin"});
        s.as_object_mut().unwrap().remove("vault");
    });
    assert_rejected(&object, None, "vaultPath requires spec.vault");
    let object = with_spec(|s| {
        s["embedding"] = json!({"backend": "http", "url": "http://e", "apiKeyVaultKey": "k"});
        s.as_object_mut().unwrap().remove("vault");
    });
    assert_rejected(&object, None, "apiKeyVaultKey requires spec.vault");
}

#[test]
fn vault_auth_needs_exactly_one_method() {
    let object = with_spec(|s| {
        s["vault"]["auth"]["tokenSecretRef"] = json!({"name": "vault-token"});
    });
    assert_rejected(&object, None, "exactly one of kubernetes or tokenSecretRef");
}

#[test]
fn schema_is_immutable() {
    let old = with_spec(|s| s["database"]["schema"] = json!("ms_custom"));
    validate(&old, Some(&old)).unwrap();
    let changed = with_spec(|s| s["database"]["schema"] = json!("ms_other"));
    assert_rejected(&changed, Some(&old), "database.schema is immutable");
    let removed = example();
    assert_rejected(&removed, Some(&old), "database.schema is immutable");
    assert_rejected(&old, Some(&removed), "database.schema is immutable");
    // Other database fields may change.
    let retention_changed = with_spec(|s| {
        s["database"]["schema"] = json!("ms_custom");
        s["database"]["reclaimPolicy"] = json!("Delete");
    });
    validate(&retention_changed, Some(&old)).unwrap();
    let reserved = with_spec(|s| s["database"]["schema"] = json!("pg_temp"));
    assert_rejected(&reserved, None, "must not start with pg_");
}

#[test]
fn embedding_index_and_autoscaling_rules() {
    let http_without_url = with_spec(|s| s["embedding"] = json!({"backend": "http"}));
    assert_rejected(&http_without_url, None, "url is required when backend is http");
    let low_ef = with_spec(|s| s["index"] = json!({"m": 32, "efConstruction": 40}));
    assert_rejected(&low_ef, None, "efConstruction must be at least 2 * index.m");
    let bad_hpa = with_spec(|s| {
        s["api"]["autoscaling"] = json!({"minReplicas": 4, "maxReplicas": 2});
    });
    assert_rejected(&bad_hpa, None, "maxReplicas must be at least minReplicas");
    let good_hpa = with_spec(|s| s["api"]["autoscaling"] = json!({"maxReplicas": 6}));
    validate(&good_hpa, None).unwrap();
}

#[test]
fn serverless_rules() {
    let serverless =
        with_spec(|s| s["api"] = json!({"mode": "Serverless", "serverless": {"minScale": 1, "maxScale": 3}}));
    validate(&serverless, None).unwrap();
    let scale_to_zero = with_spec(|s| s["api"] = json!({"mode": "Serverless"}));
    validate(&scale_to_zero, None).unwrap();
    let inverted =
        with_spec(|s| s["api"] = json!({"mode": "Serverless", "serverless": {"minScale": 4, "maxScale": 2}}));
    assert_rejected(&inverted, None, "maxScale must be at least minScale");
    let with_hpa = with_spec(|s| s["api"] = json!({"mode": "Serverless", "autoscaling": {"maxReplicas": 4}}));
    assert_rejected(&with_hpa, None, "api.autoscaling applies to mode Deployment");
    let stray = with_spec(|s| s["api"] = json!({"serverless": {"maxScale": 4}}));
    assert_rejected(&stray, None, "api.serverless applies to mode Serverless only");
}
