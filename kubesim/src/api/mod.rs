//! The API's semantics, shared by the HTTP handlers and the built-in controllers: create, get,
//! list, update, patch and delete with resourceVersions, generations, finalizers, managed
//! fields and admission. Controllers call the same functions as clients do (as a system user),
//! so what a client sees a controller did went through the same rules.

pub mod admission;
pub mod convert;
pub mod error;
pub mod list;
pub mod table;
pub mod watch;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use crate::auth::rbac::UserInfo;
use crate::patch::{self, ListSchema};
use crate::resources::{GroupResource, Registry, ResourceType};
use crate::store::{Key, Store};
pub use error::ApiError;

pub type ApiResult<T> = Result<T, ApiError>;

/// What is shared by everything in the cluster.
pub struct Cluster {
    inner: Mutex<Inner>,
    /// Bumped to end every open watch (fault injection: "watches dropped").
    pub watch_kill: tokio::sync::watch::Sender<u64>,
}

pub struct Inner {
    pub store: Store,
    pub registry: Arc<Registry>,
    /// Next free Service cluster IP (127.1.x.y) and pod IP (127.2.x.y) suffixes.
    pub next_service_ip: u32,
    pub next_pod_ip: u32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    /// kubectl's default (`--validate=strict`); also the server default in 1.27+ when unset
    /// is Warn, which clients see as a `Warning` header.
    #[default]
    Strict,
}

/// Who asks, and how.
#[derive(Clone, Debug)]
pub struct Ctx {
    pub user: UserInfo,
    pub field_manager: String,
    pub dry_run: bool,
    pub field_validation: FieldValidation,
}

impl Ctx {
    /// The built-in controllers.
    pub fn system(manager: &str) -> Self {
        Ctx {
            user: UserInfo { name: format!("system:{manager}"), groups: vec!["system:masters".to_owned()] },
            field_manager: manager.to_owned(),
            dry_run: false,
            field_validation: FieldValidation::Ignore,
        }
    }
}

/// A write's result: the object, warnings for the `Warning` header, and whether it was created.
#[derive(Debug)]
pub struct Outcome {
    pub object: Value,
    pub warnings: Vec<String>,
    pub created: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchType {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/json-patch+json" => Some(PatchType::Json),
            "application/merge-patch+json" => Some(PatchType::Merge),
            "application/strategic-merge-patch+json" => Some(PatchType::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" | "application/apply-patch+cbor" => {
                Some(PatchType::Apply)
            }
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub propagation: Option<String>,
    pub grace_period: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
}

impl DeleteOptions {
    pub fn from_json(v: &Value) -> Self {
        DeleteOptions {
            propagation: v["propagationPolicy"].as_str().map(str::to_owned).or_else(|| {
                // The deprecated boolean still comes from old clients.
                v["orphanDependents"].as_bool().map(|o| if o { "Orphan" } else { "Background" }.to_owned())
            }),
            grace_period: v["gracePeriodSeconds"].as_i64(),
            precondition_uid: v["preconditions"]["uid"].as_str().map(str::to_owned),
            precondition_rv: v["preconditions"]["resourceVersion"].as_str().map(str::to_owned),
        }
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Fields a write may never change.
const SERVER_OWNED_META: [&str; 4] = ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"];

impl Default for Cluster {
    fn default() -> Self {
        Self::new()
    }
}

impl Cluster {
    pub fn new() -> Self {
        Cluster {
            inner: Mutex::new(Inner {
                store: Store::new(),
                registry: Arc::new(Registry::builtin()),
                next_service_ip: 1,
                next_pod_ip: 1,
            }),
            watch_kill: tokio::sync::watch::channel(0).0,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves consistent data: every write is one `put`.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.lock().registry.clone()
    }

    pub fn get(&self, rt: &ResourceType, ns: Option<&str>, name: &str) -> ApiResult<Value> {
        let inner = self.lock();
        let obj =
            inner.store.get(&Key::new(&rt.gr(), ns, name)).ok_or_else(|| ApiError::not_found(&rt.qualified(), name))?;
        Ok(as_version(obj, rt))
    }

    /// A read without a resource type (controllers): any stored object by group and resource.
    pub fn get_raw(&self, gr: &GroupResource, ns: Option<&str>, name: &str) -> Option<Value> {
        self.lock().store.get(&Key::new(gr, ns, name)).cloned()
    }

    pub fn list_raw(&self, gr: &GroupResource, ns: Option<&str>) -> Vec<Value> {
        self.lock().store.list(gr, ns).map(|(_, v)| v.clone()).collect()
    }

    pub fn create(&self, ctx: &Ctx, rt: &ResourceType, ns: Option<&str>, body: Value) -> ApiResult<Outcome> {
        let mut inner = self.lock();
        let (obj, warnings) = prepare_create(&mut inner, ctx, rt, ns, body)?;
        let key = Key::new(&rt.gr(), obj_ns(&obj).as_deref(), obj_name(&obj));
        if inner.store.get(&key).is_some() {
            return Err(ApiError::already_exists(&rt.qualified(), &key.name));
        }
        let stored = if ctx.dry_run { obj } else { inner.store.put(key, obj) };
        admission::after_write(&mut inner, rt, &stored);
        Ok(Outcome { object: as_version(&stored, rt), warnings, created: true })
    }

    /// PUT: replace the object (or its status with `sub` = "status").
    pub fn update(
        &self,
        ctx: &Ctx,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        body: Value,
        sub: Option<&str>,
    ) -> ApiResult<Outcome> {
        let mut inner = self.lock();
        let key = Key::new(&rt.gr(), ns, name);
        let Some(live) = inner.store.get(&key).cloned() else {
            return Err(ApiError::not_found(&rt.qualified(), name));
        };
        check_identity(rt, ns, name, &body)?;
        if let Some(rv) = body["metadata"]["resourceVersion"].as_str()
            && !rv.is_empty()
            && Some(rv) != live["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(
                &rt.qualified(),
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        let merged = merge_for_subresource(rt, &live, convert::to_storage(rt, body), sub);
        let managed = patch::record_update(
            Some(&live),
            &merged,
            &ctx.field_manager,
            &*lists_for(rt),
            &now(),
            &rt.api_version(),
            sub,
        );
        commit_update(&mut inner, ctx, rt, key, live, managed)
    }

    // One parameter per part of a PATCH request (path, body, query), as the handler gets them.
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        ctx: &Ctx,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        ptype: PatchType,
        body: &[u8],
        force: bool,
        sub: Option<&str>,
    ) -> ApiResult<Outcome> {
        let mut inner = self.lock();
        let key = Key::new(&rt.gr(), ns, name);
        let live = inner.store.get(&key).cloned();
        let lists = lists_for(rt);
        if ptype == PatchType::Apply {
            let applied: Value =
                serde_yaml::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            if !applied.is_object() {
                return Err(ApiError::bad_request("apply patch must be an object"));
            }
            check_identity(rt, ns, name, &applied)?;
            if applied["apiVersion"].as_str().is_none_or(str::is_empty)
                || applied["kind"].as_str().is_none_or(str::is_empty)
            {
                return Err(ApiError::bad_request(
                    "invalid object type: apiVersion and kind must be set in an apply patch",
                ));
            }
            let applied = strip_for_apply(rt, applied, sub);
            let live_view = live.as_ref().map(|l| as_version(l, rt));
            let result = patch::try_apply(
                live_view.as_ref(),
                &applied,
                &ctx.field_manager,
                force,
                &*lists,
                &now(),
                &rt.api_version(),
                sub,
            );
            let merged = match result {
                Ok(m) => m,
                Err(patch::ApplyError::Invalid(msg)) => {
                    return Err(ApiError::invalid_field(&rt.kind, &rt.group, name, "body", &msg));
                }
                Err(patch::ApplyError::Conflicts(conflicts)) => {
                    let causes = patch::conflict_causes(&conflicts, &rt.api_version());
                    return Err(ApiError::new(409, "Conflict", patch::conflict_message(&conflicts, &rt.api_version()))
                        .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": causes})));
                }
            };
            return match live {
                None => {
                    drop(inner);
                    if sub.is_some() {
                        return Err(ApiError::not_found(&rt.qualified(), name));
                    }
                    self.create_applied(ctx, rt, ns, merged)
                }
                Some(live) => {
                    let merged = merge_for_subresource(rt, &live, convert::to_storage(rt, merged), sub);
                    commit_update(&mut inner, ctx, rt, key, live, merged)
                }
            };
        }
        let Some(live) = live else {
            return Err(ApiError::not_found(&rt.qualified(), name));
        };
        let patch_doc: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let current = as_version(&live, rt);
        let patched = match ptype {
            PatchType::Json => {
                let p: json_patch::Patch = serde_json::from_value(patch_doc)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                json_patch_k8s(&current, p)?
            }
            PatchType::Merge => {
                let mut doc = current.clone();
                json_patch::merge(&mut doc, &patch_doc);
                doc
            }
            PatchType::Strategic => {
                if rt.crd.is_some() {
                    return Err(ApiError::new(
                        415,
                        "UnsupportedMediaType",
                        "strategic merge patch is not supported for custom resources; use a JSON merge patch",
                    ));
                }
                patch::strategic_merge(&current, &patch_doc, &*lists).map_err(ApiError::bad_request)?
            }
            PatchType::Apply => unreachable!("handled above"),
        };
        if let Some(rv) = patched["metadata"]["resourceVersion"].as_str()
            && Some(rv) != live["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(
                &rt.qualified(),
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        check_identity(rt, ns, name, &patched)?;
        let merged = merge_for_subresource(rt, &live, convert::to_storage(rt, patched), sub);
        let managed =
            patch::record_update(Some(&live), &merged, &ctx.field_manager, &*lists, &now(), &rt.api_version(), sub);
        commit_update(&mut inner, ctx, rt, key, live, managed)
    }

    /// An apply that creates: the managed fields are already the apply's.
    fn create_applied(&self, ctx: &Ctx, rt: &ResourceType, ns: Option<&str>, obj: Value) -> ApiResult<Outcome> {
        let mut inner = self.lock();
        let (obj, warnings) = prepare_create_inner(&mut inner, ctx, rt, ns, obj, false)?;
        let key = Key::new(&rt.gr(), obj_ns(&obj).as_deref(), obj_name(&obj));
        if inner.store.get(&key).is_some() {
            return Err(ApiError::conflict(
                &rt.qualified(),
                &key.name,
                "the object was created concurrently; retry the apply",
            ));
        }
        let stored = if ctx.dry_run { obj } else { inner.store.put(key, obj) };
        admission::after_write(&mut inner, rt, &stored);
        Ok(Outcome { object: as_version(&stored, rt), warnings, created: true })
    }

    pub fn delete(
        &self,
        ctx: &Ctx,
        rt: &ResourceType,
        ns: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        let key = Key::new(&rt.gr(), ns, name);
        let Some(live) = inner.store.get(&key).cloned() else {
            return Err(ApiError::not_found(&rt.qualified(), name));
        };
        if let Some(uid) = &opts.precondition_uid
            && Some(uid.as_str()) != live["metadata"]["uid"].as_str()
        {
            return Err(ApiError::conflict(
                &rt.qualified(),
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    live["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &opts.precondition_rv
            && Some(rv.as_str()) != live["metadata"]["resourceVersion"].as_str()
        {
            return Err(ApiError::conflict(
                &rt.qualified(),
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        if ctx.dry_run {
            return Ok(as_version(&live, rt));
        }
        let mut obj = live.clone();
        let meta = &mut obj["metadata"];
        let mut finalizers: Vec<String> = meta["finalizers"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        let propagation = opts.propagation.clone().unwrap_or_else(|| "Background".to_owned());
        let wanted = match propagation.as_str() {
            "Foreground" => Some("foregroundDeletion"),
            "Orphan" => Some("orphan"),
            "Background" => None,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unsupported propagation policy {other:?}: must be Background, Foreground or Orphan"
                )));
            }
        };
        if let Some(f) = wanted
            && !finalizers.iter().any(|x| x == f)
        {
            finalizers.push(f.to_owned());
        }
        let graceful = admission::graceful_delete(&inner, rt, &live, opts.grace_period);
        let already = !meta["deletionTimestamp"].is_null();
        if finalizers.is_empty() && graceful.is_none() {
            let removed = inner.store.remove(&key).unwrap_or(live);
            admission::after_delete(&mut inner, rt, &removed);
            return Ok(as_version(&removed, rt));
        }
        if !already {
            meta["deletionTimestamp"] = json!(now());
            meta["deletionGracePeriodSeconds"] = json!(graceful.unwrap_or(0));
        } else if let Some(g) = graceful
            && g < meta["deletionGracePeriodSeconds"].as_i64().unwrap_or(i64::MAX)
        {
            // A shorter grace period (e.g. --force --grace-period=0) shortens the wait.
            meta["deletionGracePeriodSeconds"] = json!(g);
        }
        if !finalizers.is_empty() {
            meta["finalizers"] = json!(finalizers);
        }
        admission::on_terminating(rt, &mut obj);
        if obj == live {
            return Ok(as_version(&live, rt));
        }
        let stored = inner.store.put(key, obj);
        Ok(as_version(&stored, rt))
    }

    /// Deletes an object the moment its last finalizer is gone (or a kubelet finished it).
    pub fn finish_delete(&self, gr: &GroupResource, ns: Option<&str>, name: &str, uid: &str) {
        let mut inner = self.lock();
        let key = Key::new(gr, ns, name);
        // Finalizers still hold it: it goes when the last one is removed (commit_update).
        let finalized = |o: &Value| o["metadata"]["finalizers"].as_array().is_none_or(|f| f.is_empty());
        if inner.store.get(&key).is_some_and(|o| o["metadata"]["uid"].as_str() == Some(uid) && finalized(o))
            && let Some(removed) = inner.store.remove(&key)
            && let Some(rt) = inner.registry.find_gr(gr).cloned()
        {
            admission::after_delete(&mut inner, &rt, &removed);
        }
    }
}

/// RFC 6902 as the API server applies it: a `test` of `null` passes on a missing path (the
/// server's JSON patch library treats absent and null alike; kube-runtime's finalizer helper
/// relies on it for objects without finalizers).
fn json_patch_k8s(current: &Value, patch: json_patch::Patch) -> ApiResult<Value> {
    let mut doc = current.clone();
    for op in patch.0 {
        if let json_patch::PatchOperation::Test(t) = &op
            && t.value.is_null()
            && doc.pointer(t.path.as_str()).is_none_or(Value::is_null)
        {
            continue;
        }
        json_patch::patch(&mut doc, &[op]).map_err(|e| {
            ApiError::new(
                422,
                "Invalid",
                format!("the server rejected our request due to an error in our request: {e}"),
            )
        })?;
    }
    Ok(doc)
}

/// Validates and fills in an object to be created.
fn prepare_create(
    inner: &mut Inner,
    ctx: &Ctx,
    rt: &ResourceType,
    ns: Option<&str>,
    body: Value,
) -> ApiResult<(Value, Vec<String>)> {
    prepare_create_inner(inner, ctx, rt, ns, body, true)
}

fn prepare_create_inner(
    inner: &mut Inner,
    ctx: &Ctx,
    rt: &ResourceType,
    ns: Option<&str>,
    mut obj: Value,
    record: bool,
) -> ApiResult<(Value, Vec<String>)> {
    if !obj.is_object() {
        return Err(ApiError::bad_request("the body of the request must be an object"));
    }
    check_type(rt, &mut obj)?;
    let mut obj = convert::to_storage(rt, obj);
    if rt.namespaced {
        let ns = ns.ok_or_else(|| ApiError::bad_request("a namespaced resource needs a namespace"))?;
        match obj["metadata"]["namespace"].as_str() {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => obj["metadata"]["namespace"] = json!(ns),
        }
        let ns_obj = inner.store.get(&Key::new(&GroupResource::new("", "namespaces"), None, ns));
        match ns_obj {
            None => return Err(ApiError::not_found("namespaces", ns)),
            Some(n) if !n["metadata"]["deletionTimestamp"].is_null() => {
                return Err(ApiError::forbidden(format!(
                    "{} \"{}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.qualified(),
                    obj_name(&obj)
                )));
            }
            Some(_) => {}
        }
    } else if let Some(m) = obj["metadata"].as_object_mut() {
        m.remove("namespace");
    }
    if obj_name(&obj).is_empty() {
        let Some(prefix) = obj["metadata"]["generateName"].as_str().filter(|g| !g.is_empty()) else {
            return Err(ApiError::invalid_field(
                &rt.kind,
                &rt.group,
                "",
                "metadata.name",
                "Required value: name or generateName is required",
            ));
        };
        let suffix: String = uuid::Uuid::new_v4()
            .simple()
            .to_string()
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            .take(5)
            .collect();
        obj["metadata"]["name"] = json!(format!("{prefix}{suffix}"));
    }
    let name = obj_name(&obj).to_owned();
    admission::validate_name(rt, &name)?;
    let meta = obj["metadata"].as_object_mut().ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    for f in SERVER_OWNED_META.iter().chain(["resourceVersion", "generation", "selfLink"].iter()) {
        meta.remove(*f);
    }
    meta.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
    meta.insert("creationTimestamp".into(), json!(now()));
    if rt.tracks_generation() {
        meta.insert("generation".into(), json!(1));
    }
    if rt.has_subresource("status")
        && rt.crd.is_some()
        && let Some(o) = obj.as_object_mut()
    {
        o.remove("status");
    }
    let warnings = admission::on_create(inner, ctx, rt, &mut obj)?;
    let obj = if record {
        patch::record_update(None, &obj, &ctx.field_manager, &*lists_for(rt), &now(), &rt.api_version(), None)
    } else {
        obj
    };
    Ok((obj, warnings))
}

/// Runs admission on an updated object and stores it, unless nothing changed.
fn commit_update(
    inner: &mut Inner,
    ctx: &Ctx,
    rt: &ResourceType,
    key: Key,
    live: Value,
    mut new: Value,
) -> ApiResult<Outcome> {
    for f in SERVER_OWNED_META.iter().chain(["name", "namespace"].iter()) {
        match live["metadata"].get(*f) {
            Some(v) => new["metadata"][*f] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(*f);
                }
            }
        }
    }
    // A new finalizer on an object being deleted is refused, as the real server does.
    if !live["metadata"]["deletionTimestamp"].is_null() {
        let old: Vec<&Value> =
            live["metadata"]["finalizers"].as_array().map(|a| a.iter().collect()).unwrap_or_default();
        if new["metadata"]["finalizers"].as_array().is_some_and(|a| a.iter().any(|f| !old.contains(&f))) {
            return Err(ApiError::invalid_field(
                &rt.kind,
                &rt.group,
                &key.name,
                "metadata.finalizers",
                "Forbidden: no new finalizers can be added if the object is being deleted",
            ));
        }
    }
    new["metadata"]["generation"] = live["metadata"]["generation"].clone();
    if rt.tracks_generation() && spec_of(&new) != spec_of(&live) {
        let g = live["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(g);
    }
    if new["metadata"]["generation"].is_null()
        && let Some(m) = new["metadata"].as_object_mut()
    {
        m.remove("generation");
    }
    new["metadata"]["resourceVersion"] = live["metadata"]["resourceVersion"].clone();
    let warnings = admission::on_update(inner, ctx, rt, &live, &mut new)?;
    if without_times(&new) == without_times(&live) {
        return Ok(Outcome { object: as_version(&live, rt), warnings, created: false });
    }
    if ctx.dry_run {
        return Ok(Outcome { object: as_version(&new, rt), warnings, created: false });
    }
    let finalizers_gone = new["metadata"]["finalizers"].as_array().is_none_or(|a| a.is_empty());
    if !new["metadata"]["deletionTimestamp"].is_null() && finalizers_gone && !admission::waits_for_kubelet(rt, &new) {
        let stored = inner.store.put(key.clone(), new);
        let removed = inner.store.remove(&key).unwrap_or(stored);
        admission::after_delete(inner, rt, &removed);
        return Ok(Outcome { object: as_version(&removed, rt), warnings, created: false });
    }
    let stored = inner.store.put(key, new);
    admission::after_write(inner, rt, &stored);
    Ok(Outcome { object: as_version(&stored, rt), warnings, created: false })
}

/// The parts of an object whose change bumps `generation`: all but metadata and status.
fn spec_of(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// An object with managed-field timestamps removed: an apply that changes nothing else is a
/// no-op and must not bump the resourceVersion (or every controller would loop on itself).
fn without_times(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(entries) = o["metadata"]["managedFields"].as_array_mut() {
        for e in entries {
            if let Some(m) = e.as_object_mut() {
                m.remove("time");
            }
        }
    }
    o
}

/// For a status write, everything but the status comes from the live object; for a main-
/// resource write to a type with a status subresource, the status does.
fn merge_for_subresource(rt: &ResourceType, live: &Value, mut new: Value, sub: Option<&str>) -> Value {
    match sub {
        Some("status") => {
            let mut merged = live.clone();
            merged["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            if merged["status"].is_null()
                && let Some(m) = merged.as_object_mut()
            {
                m.remove("status");
            }
            merged["metadata"]["managedFields"] = new["metadata"]["managedFields"].clone();
            merged
        }
        _ if rt.has_subresource("status") => {
            match live.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
            new
        }
        _ => new,
    }
}

/// What an apply may not set: on the main resource, status when it has its own subresource.
fn strip_for_apply(rt: &ResourceType, mut applied: Value, sub: Option<&str>) -> Value {
    if sub.is_none()
        && rt.has_subresource("status")
        && let Some(m) = applied.as_object_mut()
    {
        m.remove("status");
    }
    applied
}

fn check_type(rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
    let want = rt.api_version();
    match obj["apiVersion"].as_str() {
        None | Some("") => obj["apiVersion"] = json!(want),
        Some(v) if v != want => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want})"
            )));
        }
        Some(_) => {}
    }
    match obj["kind"].as_str() {
        None | Some("") => obj["kind"] = json!(rt.kind),
        Some(k) if k != rt.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )));
        }
        Some(_) => {}
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    Ok(())
}

/// The name and namespace in a body must be those of the URL.
fn check_identity(rt: &ResourceType, ns: Option<&str>, name: &str, body: &Value) -> ApiResult<()> {
    if let Some(n) = body["metadata"]["name"].as_str()
        && !n.is_empty()
        && n != name
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({n}) does not match the name on the URL ({name})"
        )));
    }
    if rt.namespaced
        && let Some(n) = body["metadata"]["namespace"].as_str()
        && !n.is_empty()
        && Some(n) != ns
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    Ok(())
}

/// A stored object as the requested version shows it (CRD versions share one schema here:
/// no conversion, as with the `None` conversion strategy).
pub fn as_version(obj: &Value, rt: &ResourceType) -> Value {
    if let Some(converted) = convert::from_storage(rt, obj) {
        return converted;
    }
    let mut o = obj.clone();
    if o["apiVersion"].as_str() != Some(&rt.api_version()) {
        o["apiVersion"] = json!(rt.api_version());
    }
    o
}

pub fn obj_name(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or_default()
}

pub fn obj_ns(obj: &Value) -> Option<String> {
    obj["metadata"]["namespace"].as_str().filter(|s| !s.is_empty()).map(str::to_owned)
}

pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
        .unwrap_or_default()
}

/// The list semantics of a type, for managed fields and patches.
pub fn lists_for(rt: &ResourceType) -> Box<dyn ListSchema + '_> {
    match &rt.crd {
        Some(crd) => Box::new(patch::SchemaLists { schema: &crd.schema }),
        None => Box::new(patch::BuiltinLists),
    }
}
