//! What the real API server's registry strategies do per kind on a write: defaults, validation,
//! allocation (Service cluster IPs), CRD registration, and custom-resource schema handling.

use base64::Engine;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, Ctx, FieldValidation, Inner, obj_name};
use crate::crd::schema;
use crate::resources::{GroupResource, Registry, ResourceType};
use crate::selector::LabelSelector;
use crate::store::Key;

pub fn on_create(inner: &mut Inner, ctx: &Ctx, rt: &ResourceType, obj: &mut Value) -> ApiResult<Vec<String>> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            obj["spec"]["finalizers"] = json!(["kubernetes"]);
            obj["status"] = json!({"phase": "Active"});
        }
        ("", "Service") => {
            default_service(obj);
            allocate_cluster_ip(inner, obj);
        }
        ("", "Secret") => fold_string_data(rt, obj)?,
        ("", "Pod") => {
            default_pod_spec(&mut obj["spec"]);
            obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"});
        }
        ("apps", "Deployment") => default_deployment(rt, obj)?,
        ("apps", "ReplicaSet") => {
            if obj["spec"]["replicas"].is_null() {
                obj["spec"]["replicas"] = json!(1);
            }
            default_pod_spec(&mut obj["spec"]["template"]["spec"]);
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => admit_crd(rt, obj)?,
        _ => {}
    }
    custom_resource(ctx, rt, obj, None)
}

pub fn on_update(
    _inner: &mut Inner,
    ctx: &Ctx,
    rt: &ResourceType,
    live: &Value,
    obj: &mut Value,
) -> ApiResult<Vec<String>> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => {
            obj["status"] = live["status"].clone();
            obj["spec"]["finalizers"] = live["spec"]["finalizers"].clone();
        }
        ("", "Service") => {
            default_service(obj);
            for f in ["clusterIP", "clusterIPs"] {
                obj["spec"][f] = live["spec"][f].clone();
            }
        }
        ("", "Secret") => fold_string_data(rt, obj)?,
        ("", "Pod") => default_pod_spec(&mut obj["spec"]),
        ("apps", "Deployment") => default_deployment(rt, obj)?,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            let status = live["status"].clone();
            admit_crd(rt, obj)?;
            if obj["status"].is_null() {
                obj["status"] = status;
            }
        }
        _ => {}
    }
    custom_resource(ctx, rt, obj, Some(live))
}

/// Structural-schema handling of a custom resource: defaults, pruning, validation, CEL.
fn custom_resource(ctx: &Ctx, rt: &ResourceType, obj: &mut Value, old: Option<&Value>) -> ApiResult<Vec<String>> {
    let Some(crd) = &rt.crd else { return Ok(Vec::new()) };
    // The real server's order: prune what the schema does not know, default, then validate.
    let unknown = schema::prune(&crd.schema, obj);
    schema::apply_defaults(&crd.schema, obj);
    let mut warnings = Vec::new();
    if !unknown.is_empty() {
        match ctx.field_validation {
            FieldValidation::Strict => {
                let list: Vec<String> = unknown.iter().map(|p| format!("unknown field \"{p}\"")).collect();
                return Err(ApiError::bad_request(format!("strict decoding error: {}", list.join(", "))));
            }
            FieldValidation::Warn => warnings.extend(unknown.iter().map(|p| format!("unknown field \"{p}\""))),
            FieldValidation::Ignore => {}
        }
    }
    let errors = schema::validate(&crd.schema, obj, old);
    if !errors.is_empty() {
        let (message, causes) = schema::invalid_message(&rt.kind, &rt.group, obj_name(obj), &errors);
        return Err(ApiError::invalid(&rt.kind, &rt.group, obj_name(obj), message, causes));
    }
    Ok(warnings)
}

/// A CRD is checked, named as `<plural>.<group>`, and established at once.
fn admit_crd(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let name = obj_name(obj).to_owned();
    let spec = &obj["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let plural = spec["names"]["plural"].as_str().unwrap_or_default();
    let invalid = |field: &str, detail: String| ApiError::invalid_field(&rt.kind, &rt.group, &name, field, &detail);
    if group.is_empty() || !group.contains('.') {
        return Err(invalid(
            "spec.group",
            format!("Invalid value: {group:?}: should be a domain with at least one dot"),
        ));
    }
    if plural.is_empty() || spec["names"]["kind"].as_str().is_none_or(str::is_empty) {
        return Err(invalid("spec.names", "Required value: plural and kind are required".into()));
    }
    if name != format!("{plural}.{group}") {
        return Err(invalid(
            "metadata.name",
            format!("Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        return Err(invalid("spec.versions", "Required value: must have at least one version".into()));
    }
    if versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).count() != 1 {
        return Err(invalid(
            "spec.versions",
            "Invalid value: must have exactly one version marked as storage version".into(),
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        let s = &v["schema"]["openAPIV3Schema"];
        if s.is_null() {
            return Err(invalid(
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required".into(),
            ));
        }
        let problems = schema::check_crd_schema(s);
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|p| format!("spec.versions[{i}].schema.{p}")).collect();
            let message =
                format!("CustomResourceDefinition.apiextensions.k8s.io \"{name}\" is invalid: [{}]", list.join(", "));
            return Err(ApiError::invalid(&rt.kind, &rt.group, &name, message, Vec::new()));
        }
    }
    let storage: Vec<Value> =
        versions.iter().filter(|v| v["storage"].as_bool() == Some(true)).map(|v| v["name"].clone()).collect();
    let now = super::now();
    let mut accepted = spec["names"].clone();
    if accepted["singular"].is_null() {
        accepted["singular"] = json!(spec["names"]["kind"].as_str().unwrap_or_default().to_lowercase());
    }
    if accepted["listKind"].is_null() {
        accepted["listKind"] = json!(format!("{}List", spec["names"]["kind"].as_str().unwrap_or_default()));
    }
    obj["spec"]["names"] = accepted.clone();
    obj["status"] = json!({
        "acceptedNames": accepted,
        "storedVersions": storage,
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
    });
    Ok(())
}

fn fold_string_data(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    if obj["type"].is_null() {
        obj["type"] = json!("Opaque");
    }
    if let Some(sd) = obj.get("stringData").and_then(Value::as_object).cloned() {
        for (k, v) in sd {
            let s = v.as_str().unwrap_or_default();
            obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
        }
        if let Some(m) = obj.as_object_mut() {
            m.remove("stringData");
        }
    }
    if let Some(data) = obj["data"].as_object() {
        for (k, v) in data {
            let ok = v.as_str().is_some_and(|s| base64::engine::general_purpose::STANDARD.decode(s).is_ok());
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data.{k}"
                )));
            }
        }
    }
    let _ = rt;
    Ok(())
}

fn default_service(obj: &mut Value) {
    let spec = &mut obj["spec"];
    if spec["type"].is_null() {
        spec["type"] = json!("ClusterIP");
    }
    if spec["sessionAffinity"].is_null() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec["ports"].as_array_mut() {
        for p in ports {
            if p["protocol"].is_null() {
                p["protocol"] = json!("TCP");
            }
            if p["targetPort"].is_null() {
                p["targetPort"] = p["port"].clone();
            }
        }
    }
}

/// Cluster IPs are loopback addresses (127.1.x.y) so that a test reaches a Service's port on
/// its cluster IP, as a pod would in a real cluster (the kubelet's proxy listens there).
fn allocate_cluster_ip(inner: &mut Inner, obj: &mut Value) {
    let spec = &mut obj["spec"];
    if spec["type"] == "ExternalName" || spec["clusterIP"] == "None" {
        return;
    }
    if spec["clusterIP"].as_str().is_none_or(str::is_empty) {
        let n = inner.next_service_ip;
        inner.next_service_ip += 1;
        let ip = format!("127.1.{}.{}", n / 250, n % 250 + 1);
        spec["clusterIP"] = json!(ip);
        spec["clusterIPs"] = json!([ip]);
        spec["ipFamilies"] = json!(["IPv4"]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
}

fn default_pod_spec(spec: &mut Value) {
    let defaults = [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("securityContext", json!({})),
    ];
    for (k, v) in defaults {
        if spec[k].is_null() {
            spec[k] = v;
        }
    }
    if spec["serviceAccountName"].is_null() {
        spec["serviceAccountName"] = json!("default");
    }
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec[list].as_array_mut() {
            for c in cs {
                if c["terminationMessagePath"].is_null() {
                    c["terminationMessagePath"] = json!("/dev/termination-log");
                    c["terminationMessagePolicy"] = json!("File");
                }
                if c["imagePullPolicy"].is_null() {
                    let latest = c["image"].as_str().is_some_and(|i| !i.contains(':') || i.ends_with(":latest"));
                    c["imagePullPolicy"] = json!(if latest { "Always" } else { "IfNotPresent" });
                }
                if let Some(ports) = c["ports"].as_array_mut() {
                    for p in ports {
                        if p["protocol"].is_null() {
                            p["protocol"] = json!("TCP");
                        }
                    }
                }
            }
        }
    }
}

fn default_deployment(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let name = obj_name(obj).to_owned();
    let spec = &mut obj["spec"];
    if spec["replicas"].is_null() {
        spec["replicas"] = json!(1);
    }
    if spec["revisionHistoryLimit"].is_null() {
        spec["revisionHistoryLimit"] = json!(10);
    }
    if spec["progressDeadlineSeconds"].is_null() {
        spec["progressDeadlineSeconds"] = json!(600);
    }
    if spec["strategy"].is_null() {
        spec["strategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}});
    }
    default_pod_spec(&mut spec["template"]["spec"]);
    let selector = LabelSelector::from_json(&spec["selector"]).map_err(|e| {
        ApiError::invalid_field(&rt.kind, &rt.group, &name, "spec.selector", &format!("Invalid value: {e}"))
    })?;
    if selector.is_empty() {
        return Err(ApiError::invalid_field(&rt.kind, &rt.group, &name, "spec.selector", "Required value"));
    }
    if !selector.matches_object(&spec["template"]) {
        return Err(ApiError::invalid_field(
            &rt.kind,
            &rt.group,
            &name,
            "spec.template.metadata.labels",
            "Invalid value: `selector` does not match template `labels`",
        ));
    }
    Ok(())
}

/// Kubernetes object names: DNS labels for namespaces and Services, path segments for RBAC,
/// DNS subdomains otherwise.
pub fn validate_name(rt: &ResourceType, name: &str) -> ApiResult<()> {
    let label = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-')
    };
    let (ok, what) = match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") | ("", "Service") => (
            label(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        ),
        ("rbac.authorization.k8s.io", _) => (
            !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%'),
            "may not contain '/' or '%'",
        ),
        _ => (
            !name.is_empty() && name.len() <= 253 && name.split('.').all(label),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            &rt.kind,
            &rt.group,
            name,
            "metadata.name",
            &format!("Invalid value: {name:?}: {what}"),
        ))
    }
}

/// The grace period a delete waits for (pods run by the kubelet, namespaces being emptied),
/// or None for an immediate delete.
pub fn graceful_delete(_inner: &Inner, rt: &ResourceType, live: &Value, requested: Option<i64>) -> Option<i64> {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("", "Namespace") => Some(0),
        ("", "Pod") => {
            let terminal = matches!(live["status"]["phase"].as_str(), Some("Succeeded" | "Failed"));
            if live["spec"]["nodeName"].is_null() || terminal {
                return None;
            }
            let g = requested.or_else(|| live["spec"]["terminationGracePeriodSeconds"].as_i64()).unwrap_or(30);
            // Grace 0 still goes through the kubelet so that the process is stopped first.
            Some(g.max(0))
        }
        _ => None,
    }
}

/// An object whose deletion someone else completes (kubelet, namespace controller).
pub fn waits_for_kubelet(rt: &ResourceType, obj: &Value) -> bool {
    match (rt.group.as_str(), rt.kind.as_str()) {
        // The kubelet writes a terminal phase once the processes are gone: after that a pod
        // held by finalizers goes when they do.
        ("", "Pod") => {
            !obj["spec"]["nodeName"].is_null()
                && !matches!(obj["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        }
        ("", "Namespace") => true,
        _ => false,
    }
}

pub fn on_terminating(rt: &ResourceType, obj: &mut Value) {
    if rt.group.is_empty() && rt.kind == "Namespace" {
        obj["status"]["phase"] = json!("Terminating");
    }
}

/// Keeps the registry in step with the CRDs.
pub fn after_write(inner: &mut Inner, rt: &ResourceType, _stored: &Value) {
    if rt.kind == "CustomResourceDefinition" {
        refresh_registry(inner);
    }
}

/// A deleted CRD takes its custom resources with it.
pub fn after_delete(inner: &mut Inner, rt: &ResourceType, removed: &Value) {
    if rt.kind != "CustomResourceDefinition" {
        return;
    }
    let gr = GroupResource::new(
        removed["spec"]["group"].as_str().unwrap_or_default(),
        removed["spec"]["names"]["plural"].as_str().unwrap_or_default(),
    );
    let keys: Vec<Key> = inner.store.list(&gr, None).map(|(k, _)| k.clone()).collect();
    for k in keys {
        inner.store.remove(&k);
    }
    refresh_registry(inner);
}

fn refresh_registry(inner: &mut Inner) {
    let crd_gr = GroupResource::new("apiextensions.k8s.io", "customresourcedefinitions");
    let crds: Vec<Value> = inner.store.list(&crd_gr, None).map(|(_, v)| v.clone()).collect();
    inner.registry = std::sync::Arc::new(Registry::with_crds(&crds));
}
