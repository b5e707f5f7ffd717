//! Server-side apply of child objects, skipped when the live object already holds every field
//! the operator sets: a steady-state reconcile then makes no write at all.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::MANAGER;
use crate::error::{Error, Result};
use crate::names::StoreNames;

/// The applied (or unchanged) object, and whether a write was made.
pub struct Applied<K> {
    pub object: K,
    pub changed: bool,
}

/// Applies `desired` unless `live` (the object as read) already matches it. A live object
/// controlled by anything but this store is refused, never taken over.
pub async fn apply<K>(api: &Api<K>, desired: &K, live: Option<K>, names: &StoreNames) -> Result<Applied<K>>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    apply_with(api, desired, live, names, &()).await
}

/// [`apply`] for a kind known at run time (a Knative Service as a `DynamicObject`).
pub async fn apply_with<K>(
    api: &Api<K>,
    desired: &K,
    live: Option<K>,
    names: &StoreNames,
    dt: &K::DynamicType,
) -> Result<Applied<K>>
where
    K: Resource + Clone + Serialize + DeserializeOwned + Debug,
{
    let name = desired.name_any();
    let kind = K::kind(dt);
    if let Some(live) = live {
        check_controlled(&live, names, &kind)?;
        let (want, have) = (to_value(desired)?, to_value(&live)?);
        if is_subset(&want, &have) && owned_maps_match(&kind, &want, &have) {
            return Ok(Applied { object: live, changed: false });
        }
    }
    let params = PatchParams::apply(MANAGER).force();
    let object = api.patch(&name, &params, &Patch::Apply(desired)).await?;
    tracing::info!(api_version = %K::api_version(dt), kind = %kind, name = %name, namespace = %names.namespace, "applied");
    Ok(Applied { object, changed: true })
}

/// Reads the child named like `desired`, then [`apply`].
pub async fn get_and_apply<K>(api: &Api<K>, desired: &K, names: &StoreNames) -> Result<Applied<K>>
where
    K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + Debug,
{
    let live = api.get_opt(&desired.name_any()).await?;
    apply(api, desired, live, names).await
}

/// Deletes the child `name` if it exists and is this store's; returns whether it did.
pub async fn delete_if_ours<K>(api: &Api<K>, name: &str, names: &StoreNames) -> Result<bool>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    delete_if_ours_with(api, name, names, &()).await
}

/// [`delete_if_ours`] for a kind known at run time.
pub async fn delete_if_ours_with<K>(api: &Api<K>, name: &str, names: &StoreNames, dt: &K::DynamicType) -> Result<bool>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.get_opt(name).await? {
        Some(live) if is_controlled_by(&live, names) => {
            api.delete(name, &DeleteParams::background()).await?;
            let (api_version, kind) = (K::api_version(dt), K::kind(dt));
            tracing::info!(%api_version, %kind, name = %name, namespace = %names.namespace, "deleted");
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// The live replica count to keep when the desired Deployment no longer sets `replicas` (an
/// HPA took over) but the operator's apply still owns the field.
pub fn replicas_to_hand_over(live: &Deployment, desired: &Deployment) -> Option<i32> {
    if desired.spec.as_ref().is_none_or(|s| s.replicas.is_some()) {
        return None;
    }
    let applied_by_us = live.metadata.managed_fields.iter().flatten().any(|m| {
        m.manager.as_deref() == Some(MANAGER)
            && m.operation.as_deref() == Some("Apply")
            && m.fields_v1.as_ref().is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
    });
    if applied_by_us { live.spec.as_ref().and_then(|s| s.replicas) } else { None }
}

pub fn ensure_controlled<K: Resource<DynamicType = ()>>(live: &K, names: &StoreNames) -> Result<()> {
    check_controlled(live, names, &K::kind(&()))
}

fn check_controlled<K: Resource>(live: &K, names: &StoreNames, kind: &str) -> Result<()> {
    if is_controlled_by(live, names) {
        Ok(())
    } else {
        Err(Error::ChildNotOwned { kind: kind.to_owned(), name: live.name_any() })
    }
}

/// Whether `live` is controlled by an object of API group `group` (a Knative Route's Service).
pub fn controlled_by_group<K: Resource>(live: &K, group: &str) -> bool {
    live.owner_references().iter().any(|r| r.controller == Some(true) && r.api_version.split('/').next() == Some(group))
}

fn is_controlled_by<K: Resource>(live: &K, names: &StoreNames) -> bool {
    live.owner_references().iter().any(|r| r.controller == Some(true) && r.uid == names.uid)
}

fn to_value<K: Serialize>(k: &K) -> Result<Value> {
    serde_json::to_value(k).map_err(|e| Error::Serialize("a child object", e))
}

/// Whether every field of `want` is in `live` with the same value. Fields the server or
/// other controllers add (defaults, status, managedFields) do not count; lists must match
/// element by element, so a removed entry is a difference.
pub fn is_subset(want: &Value, live: &Value) -> bool {
    match (want, live) {
        (Value::Object(w), Value::Object(l)) => w.iter().all(|(k, wv)| match l.get(k) {
            Some(lv) => is_subset(wv, lv),
            // An absent field equals an empty one: the server drops `{}`, `[]` and null.
            None => is_empty(wv),
        }),
        (Value::Array(w), Value::Array(l)) => w.len() == l.len() && w.iter().zip(l).all(|(wv, lv)| is_subset(wv, lv)),
        _ => want == live,
    }
}

/// Maps the operator fills whole, by kind and JSON pointer. A subset test cannot see a key the
/// operator no longer wants (a `kid` removed in Vault), so their key sets must match exactly.
const OWNED_MAPS: &[(&str, &str)] = &[("Secret", "/data")];

pub fn owned_maps_match(kind: &str, want: &Value, live: &Value) -> bool {
    let keys = |v: &Value, ptr: &str| {
        v.pointer(ptr).and_then(Value::as_object).map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default()
    };
    OWNED_MAPS.iter().filter(|(k, _)| *k == kind).all(|(_, ptr)| keys(want, ptr) == keys(live, ptr))
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(o) => o.values().all(is_empty),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_additions_do_not_count() {
        let want =
            json!({"spec": {"replicas": 2, "template": {"spec": {"containers": [{"name": "api", "image": "i"}]}}}});
        let live = json!({
            "metadata": {"resourceVersion": "7", "managedFields": []},
            "spec": {"replicas": 2, "revisionHistoryLimit": 10,
                     "template": {"spec": {"containers": [{"name": "api", "image": "i", "imagePullPolicy": "IfNotPresent"}]}}},
            "status": {"replicas": 2}
        });
        assert!(is_subset(&want, &live));
    }

    #[test]
    fn a_key_removed_from_a_secret_counts() {
        let live = json!({"data": {"k1.pem": "YQ==", "k2.pem": "Yg=="}, "metadata": {"name": "s"}});
        let want = json!({"data": {"k2.pem": "Yg=="}, "metadata": {"name": "s"}});
        assert!(is_subset(&want, &live), "a subset test alone misses the removal");
        assert!(!owned_maps_match("Secret", &want, &live));
        assert!(owned_maps_match("Secret", &live, &live));
        assert!(owned_maps_match("Deployment", &want, &live), "only the kinds listed");
    }

    #[test]
    fn changes_and_removals_count() {
        let live = json!({"spec": {"replicas": 2, "env": [{"name": "A"}, {"name": "B"}]}});
        assert!(!is_subset(&json!({"spec": {"replicas": 3}}), &live));
        assert!(!is_subset(&json!({"spec": {"env": [{"name": "A"}]}}), &live), "removed list entry");
        assert!(!is_subset(&json!({"spec": {"paused": true}}), &live), "missing field");
        assert!(is_subset(&json!({"spec": {"tolerations": [], "x": {}}}), &live), "empty equals absent");
    }

    #[test]
    fn replicas_are_handed_over_only_when_autoscaling_takes_them() {
        let live: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "notes", "managedFields": [
                {"manager": "pinak-operator", "operation": "Apply", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}}
            ]},
            "spec": {"replicas": 3, "selector": {}, "template": {}}
        }))
        .unwrap();
        let mut desired = live.clone();
        desired.metadata.managed_fields = None;
        assert_eq!(replicas_to_hand_over(&live, &desired), None, "replicas still desired");
        desired.spec.as_mut().unwrap().replicas = None;
        assert_eq!(replicas_to_hand_over(&live, &desired), Some(3));
        // Already handed over: the apply no longer owns the field.
        let mut handed = live.clone();
        handed.metadata.managed_fields.as_mut().unwrap()[0].fields_v1.as_mut().unwrap().0 =
            json!({"f:spec": {"f:template": {}}});
        assert_eq!(replicas_to_hand_over(&handed, &desired), None);
    }

    #[test]
    fn ownership_is_checked_by_uid() {
        use k8s_openapi::api::core::v1::Secret;
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
        let store = crate::test_support::store(json!({}));
        let names = StoreNames::of(&store).unwrap();
        let ours = Secret {
            metadata: ObjectMeta {
                name: Some("notes-pinak".into()),
                owner_references: Some(vec![crate::desired::labels::owner_reference(&names)]),
                ..Default::default()
            },
            ..Default::default()
        };
        ensure_controlled(&ours, &names).unwrap();
        let mut foreign = ours.clone();
        foreign.metadata.owner_references.as_mut().unwrap()[0].uid = "other".into();
        assert!(
            matches!(ensure_controlled(&foreign, &names), Err(Error::ChildNotOwned { ref kind, .. }) if kind == "Secret")
        );
        let unowned =
            Secret { metadata: ObjectMeta { name: Some("x".into()), ..Default::default() }, ..Default::default() };
        assert!(ensure_controlled(&unowned, &names).is_err());
    }
}
