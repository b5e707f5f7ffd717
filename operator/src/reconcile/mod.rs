//! The controller: one reconciler for `MemoryStore`, in the kube-rs controller-rs shape.
//!
//! read references → validate → database → Secret → server-side apply of the children →
//! status. Every step is idempotent and skipped when already done, so a reconcile of a store
//! that has not changed reads but writes nothing. Errors stop the reconcile, are reported in
//! the status, and are retried with back-off; no error path deletes anything.

pub mod apply;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as FinalizerEvent, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use pinak_crds::{ApiMode, MemoryStore, MemoryStoreSpec, ReclaimPolicy, VaultStatus};

use self::apply::{
    apply, apply_with, controlled_by_group, delete_if_ours, delete_if_ours_with, ensure_controlled, get_and_apply,
    replicas_to_hand_over,
};
use crate::config::OperatorConfig;
use crate::database::{self, AdminUrl, Target, scram};
use crate::desired::deployment::connection_limit;
use crate::desired::deployment::vault_jwt_keys;
use crate::desired::labels::selector_string;
use crate::desired::secret::{ROTATE_ANNOTATION, RotationStep, SecretValues, env_hash, jwt_keys_secret, rotation_step};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::names::StoreNames;
use crate::status::{Observation, Progress, Transition, deployment_serves, desired_status, transitions};
use crate::vault::{Fetched, Vaults};
use crate::{FINALIZER, MANAGER, desired, knative, validate};

/// Field manager that holds a Deployment's `replicas` while autoscaling takes them over.
const HANDOVER_MANAGER: &str = "pinak-operator-handover";

/// Key of the admin URL in the admin Secret when `secretRef.key` is unset.
const ADMIN_URL_KEY: &str = "url";

pub struct Context {
    pub client: Client,
    pub config: OperatorConfig,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub vaults: Vaults,
    pub knative: knative::Discovery,
    /// Failed reconciles in a row per store, for the back-off.
    failures: Mutex<HashMap<ObjectRef<MemoryStore>, u32>>,
}

impl Context {
    pub fn new(client: Client, config: OperatorConfig, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter { controller: MANAGER.to_owned(), instance: std::env::var("POD_NAME").ok() };
        let vaults = Vaults::new(config.service_account_token_file.clone());
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            config,
            metrics,
            vaults,
            knative: knative::Discovery::default(),
            failures: Mutex::default(),
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<MemoryStore>, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the controller until SIGTERM or Ctrl-C.
pub async fn run(client: Client, config: OperatorConfig, metrics: Arc<Metrics>) {
    // Only the operator's own objects are watched and cached, not every Secret in the cluster.
    let owned = || watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    let ctx = Arc::new(Context::new(client.clone(), config, metrics));
    let mut controller = Controller::new(Api::<MemoryStore>::all(client.clone()), watcher::Config::default())
        .owns(Api::<Deployment>::all(client.clone()), owned())
        .owns(Api::<Service>::all(client.clone()), owned())
        .owns(Api::<Secret>::all(client.clone()), owned())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), owned())
        .owns(Api::<HorizontalPodAutoscaler>::all(client.clone()), owned());
    // Watched only where Knative Serving exists: a watch on a missing resource fails forever.
    let knative = knative::installed(&client).await;
    if let Ok(installed) = knative {
        ctx.knative.remember(installed);
    }
    match knative {
        Ok(true) => {
            let ar = desired::knative::api_resource();
            controller = controller.owns_with(Api::<DynamicObject>::all_with(client, &ar), ar, owned());
            tracing::info!("Knative Serving found: Serverless stores are available");
        }
        Ok(false) => tracing::info!("Knative Serving not found: Serverless stores wait for it"),
        Err(e) => tracing::warn!(error = %e, "cannot tell whether Knative Serving is installed"),
    }
    controller
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((store, _)) => tracing::debug!(store = %store, "reconciled"),
                // Reconcile errors were logged by error_policy; these are the watches'.
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) => {}
                // A store deleted while a reconcile of it was queued.
                Err(e @ kube::runtime::controller::Error::ObjectNotFound(_)) => {
                    tracing::debug!(error = %e, "controller")
                }
                Err(e) => tracing::warn!(error = %e, "controller"),
            }
        })
        .await;
}

pub async fn reconcile(store: Arc<MemoryStore>, ctx: Arc<Context>) -> Result<Action> {
    let started = Instant::now();
    let key = ObjectRef::from_obj(store.as_ref());
    let result = reconcile_store(store, &ctx).await;
    ctx.metrics.reconciled(started.elapsed());
    if result.is_ok() {
        ctx.failures().remove(&key);
    }
    result
}

async fn reconcile_store(store: Arc<MemoryStore>, ctx: &Context) -> Result<Action> {
    let namespace = store.namespace().ok_or_else(|| Error::InvalidSpec("MemoryStore has no namespace".into()))?;
    let api: Api<MemoryStore> = Api::namespaced(ctx.client.clone(), &namespace);
    if store.spec.paused {
        // Not even the finalizer is touched: a paused store stays exactly as it is, deletion
        // included (it waits in Terminating until unpaused).
        return paused(&api, &store, ctx).await;
    }
    let handler_api = api.clone();
    let result = finalizer(&api, FINALIZER, store, move |event| async move {
        match event {
            FinalizerEvent::Apply(store) => converge(&handler_api, &store, ctx).await,
            FinalizerEvent::Cleanup(store) => cleanup(&handler_api, &store, ctx).await,
        }
    })
    .await;
    match result {
        // A second reconcile of a store already let go (its cached copy still held the
        // finalizer): the store is gone, nothing is left to do.
        Err(kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(e))) if e.code == 404 => {
            Ok(Action::await_change())
        }
        other => other.map_err(|e| Error::Finalizer(Box::new(e))),
    }
}

/// Back-off of a failing store: 5 s, 10 s, 20 s, … capped at 5 minutes.
pub fn backoff(failures_in_a_row: u32) -> Duration {
    let doublings = failures_in_a_row.saturating_sub(1).min(16);
    Duration::from_secs((5u64 << doublings).min(300))
}

pub fn error_policy(store: Arc<MemoryStore>, error: &Error, ctx: Arc<Context>) -> Action {
    let reason = error.reason();
    ctx.metrics.failed(reason);
    let key = ObjectRef::from_obj(store.as_ref());
    let failures = {
        let mut all = ctx.failures();
        let n = all.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    let delay = backoff(failures);
    tracing::warn!(store = %key, reason, error = %error.root(), failures, retry_in_secs = delay.as_secs(), "reconcile failed");
    Action::requeue(delay)
}

async fn converge(api: &Api<MemoryStore>, store: &MemoryStore, ctx: &Context) -> Result<Action> {
    let mut progress = Progress::default();
    let result = build(store, ctx, &mut progress).await;
    if progress.deployment.is_none()
        && let Some(names) = &progress.names
    {
        progress.deployment = read_deployment(ctx, names).await;
    }
    let reported = report(api, store, ctx, &progress, result.as_ref().err()).await;
    result?;
    reported?;
    // A store on Vault is re-read every refreshInterval, even when nothing else happens.
    let refresh = store.spec.vault.as_ref().and_then(|v| v.refresh_interval_duration());
    let next = [refresh, progress.retry_after].into_iter().flatten().fold(ctx.config.resync, Duration::min);
    Ok(Action::requeue(next))
}

/// The reconcile proper; `progress` records how far it got, for the status.
async fn build(store: &MemoryStore, ctx: &Context, progress: &mut Progress) -> Result<()> {
    let names = StoreNames::of(store)?;
    progress.names = Some(names.clone());
    validate::validate(&store.spec)?;
    progress.validated = true;

    let vault = read_vault(store, ctx).await?;
    progress.vault = vault.as_deref().map(vault_status);
    progress.vault_done = true;

    let client = &ctx.client;
    let admin = admin_url(client, &names.namespace, &store.spec, vault.as_deref()).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let live_secret = secrets.get_opt(&names.secret).await?;
    if let Some(live) = &live_secret {
        // Before its values are used: a foreign Secret's password must not reach Postgres.
        ensure_controlled(live, &names)?;
    }
    let mut values =
        SecretValues::resolve(live_secret.as_ref(), &names, scram::generate_password, scram::generate_jwt_secret)?;
    let requested = store.annotations().get(ROTATE_ANNOTATION).map(String::as_str);
    let existing = live_secret.as_ref().map(|_| &values);
    match rotation_step(requested, existing, Timestamp::now(), ctx.config.rotation_grace) {
        RotationStep::None => {}
        RotationStep::Record(done) => values.rotation = Some(done),
        RotationStep::Rotate(done) => {
            let to = names.other_login_role(&values.login_role).to_owned();
            let from = std::mem::replace(&mut values.login_role, to);
            values.password = scram::generate_password()?;
            tracing::info!(store = %names.name, from, to = %values.login_role, request = %done.request, "rotating the database password");
            values.rotation = Some(done);
        }
        RotationStep::Wait(left) => {
            tracing::info!(store = %names.name, wait_secs = left.as_secs(), "password rotation waits out the grace period of the last one");
            progress.retry_after = Some(left);
        }
    }
    if let Some(v) = &vault {
        if let Some(secret) = v.jwt.as_ref().and_then(|j| j.hs256_secret.clone()) {
            values.jwt_secret = secret;
        }
        values.embedding_api_key.clone_from(&v.embedding_api_key);
    }
    let target = Target {
        names: &names,
        login_role: &values.login_role,
        password: &values.password,
        connection_limit: connection_limit(&store.spec),
    };
    progress.database = Some(database::provision(&admin, &target).await?);

    let secret = desired::secret::secret(store, &names, &values, &admin.for_pods());
    progress.changed |= apply(&secrets, &secret, live_secret, &names).await?.changed;
    // Only while Vault supplies keys. A keys Secret left by an earlier configuration is no
    // longer mounted, and goes with the store (owner reference): deleting it would need the
    // right to delete Secrets, which the operator does not otherwise have.
    if let Some(jwt) = vault.as_ref().and_then(|v| v.jwt.as_ref())
        && vault_jwt_keys(&store.spec)
    {
        let keys = jwt_keys_secret(store, &names, &jwt.key_files);
        progress.changed |= get_and_apply(&secrets, &keys, &names).await?.changed;
    }
    progress.secret_ready = true;

    let hash = env_hash(&secret);
    match store.spec.api.mode {
        ApiMode::Deployment => deployment_workload(store, ctx, &names, &hash, progress).await?,
        ApiMode::Serverless => serverless_workload(store, ctx, &names, &hash, progress).await?,
    }
    progress.workload_ready = true;
    Ok(())
}

/// Mode `Deployment`: Deployment, Service, PDB and the optional HPA; a Knative Service left
/// from mode `Serverless` is removed once the Deployment serves.
async fn deployment_workload(
    store: &MemoryStore,
    ctx: &Context,
    names: &StoreNames,
    secret_env_hash: &str,
    progress: &mut Progress,
) -> Result<()> {
    let workload = desired::workload(store, names, &ctx.config, secret_env_hash);
    let deployments = namespaced::<Deployment>(ctx, names);
    let mut live = deployments.get_opt(&names.workload).await?;
    if let Some(current) = &live
        && let Some(replicas) = replicas_to_hand_over(current, &workload.deployment)
    {
        ensure_controlled(current, names)?;
        // Autoscaling was switched on. Had the apply below simply dropped `replicas`, the
        // field would lose its only owner and be reset to the default (1) until the HPA acts.
        // A second field manager applies the current count first, so the field keeps an owner
        // when the operator's apply lets go of it (an Update would not: it claims only the
        // fields it changes); the HPA's writes take it over from there.
        let params = PatchParams::apply(HANDOVER_MANAGER).force();
        let pin = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": names.workload},
            "spec": {"replicas": replicas},
        });
        deployments.patch(&names.workload, &params, &Patch::Apply(&pin)).await?;
        // Re-apply even if nothing else changed, so the apply stops owning `replicas`.
        live = None;
    }
    let deployment = apply(&deployments, &workload.deployment, live, names).await?;
    progress.changed |= deployment.changed;
    let serves = deployment_serves(&deployment.object);
    progress.deployment = Some(deployment.object);
    if ctx.knative.installed(&ctx.client).await? {
        let ar = desired::knative::api_resource();
        let ksvcs: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &names.namespace, &ar);
        if serves {
            progress.changed |= delete_if_ours_with(&ksvcs, &names.workload, names, &ar).await?;
        } else if ksvcs.get_opt(&names.workload).await?.is_some() {
            // The Knative Service keeps serving until the new pods do.
            progress.retry_after = soonest(progress.retry_after, SWITCH_POLL);
        }
    }
    let services = namespaced::<Service>(ctx, names);
    match services.get_opt(&names.workload).await? {
        // The Service a Knative Route made under the same name goes with the Knative Service
        // (garbage collection); the store's own one is created once it has gone.
        Some(live) if controlled_by_group(&live, desired::knative::GROUP) => {
            progress.retry_after = soonest(progress.retry_after, SWITCH_POLL);
        }
        live => progress.changed |= apply(&services, &workload.service, live, names).await?.changed,
    }
    progress.changed |=
        get_and_apply(&namespaced::<PodDisruptionBudget>(ctx, names), &workload.pdb, names).await?.changed;
    let hpas = namespaced::<HorizontalPodAutoscaler>(ctx, names);
    progress.changed |= match &workload.hpa {
        Some(hpa) => get_and_apply(&hpas, hpa, names).await?.changed,
        None => delete_if_ours(&hpas, &names.workload, names).await?,
    };
    Ok(())
}

/// Mode `Serverless`: a Knative Service. The objects of mode `Deployment` keep serving until
/// its latest revision is ready, and are removed then (the Service first: Knative's Route
/// needs its name).
async fn serverless_workload(
    store: &MemoryStore,
    ctx: &Context,
    names: &StoreNames,
    secret_env_hash: &str,
    progress: &mut Progress,
) -> Result<()> {
    if !ctx.knative.installed(&ctx.client).await? {
        return Err(Error::KnativeNotInstalled);
    }
    let ar = desired::knative::api_resource();
    let ksvcs: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &names.namespace, &ar);
    let desired = desired::knative::knative_service(store, names, &ctx.config, secret_env_hash);
    let live = ksvcs.get_opt(&names.workload).await?;
    let applied = apply_with(&ksvcs, &desired, live, names, &ar).await?;
    progress.changed |= applied.changed;
    let revision_ready = knative::revision_ready(&applied.object);
    let serving = knative::condition(&applied.object, "Ready").is_some_and(|(s, _, _)| s == "True");
    progress.knative = Some(applied.object);
    if revision_ready {
        progress.changed |= delete_if_ours(&namespaced::<Service>(ctx, names), &names.workload, names).await?;
        progress.changed |= delete_if_ours(&namespaced::<Deployment>(ctx, names), &names.workload, names).await?;
        progress.changed |=
            delete_if_ours(&namespaced::<PodDisruptionBudget>(ctx, names), &names.workload, names).await?;
        progress.changed |=
            delete_if_ours(&namespaced::<HorizontalPodAutoscaler>(ctx, names), &names.workload, names).await?;
    }
    if !serving {
        // Knative's status changes are watched only when Knative was there at the operator's
        // start; polling covers a Knative installed later.
        progress.retry_after = soonest(progress.retry_after, SWITCH_POLL);
    }
    Ok(())
}

/// How often a store switching between modes is looked at again.
const SWITCH_POLL: Duration = Duration::from_secs(3);

fn soonest(current: Option<Duration>, other: Duration) -> Option<Duration> {
    Some(current.map_or(other, |c| c.min(other)))
}

/// A paused store: only its status is written (Paused=True, the pods as they are).
async fn paused(api: &Api<MemoryStore>, store: &MemoryStore, ctx: &Context) -> Result<Action> {
    let mut progress = Progress::default();
    if let Ok(names) = StoreNames::of(store) {
        progress.deployment = read_deployment(ctx, &names).await;
        progress.names = Some(names);
    }
    report(api, store, ctx, &progress, None).await?;
    Ok(Action::await_change())
}

/// The store as metrics name it: namespace/name.
fn store_key(store: &MemoryStore) -> String {
    format!("{}/{}", store.namespace().unwrap_or_default(), store.name_any())
}

/// Deletion: `Retain` keeps everything in Postgres; `Delete` drops the store's schemas and
/// roles. The children go with the store by garbage collection (owner references).
async fn cleanup(api: &Api<MemoryStore>, store: &MemoryStore, ctx: &Context) -> Result<Action> {
    if store.spec.database.reclaim_policy == ReclaimPolicy::Retain {
        ctx.metrics.forget_store(&store_key(store));
        let note = "reclaimPolicy is Retain: the schema, its data and the roles are kept";
        publish(ctx, store, &Transition { warning: false, reason: "Retained".into(), note: note.into() }).await;
        return Ok(Action::await_change());
    }
    // Names that do not validate were never provisioned: nothing to drop.
    let Ok(names) = StoreNames::of(store) else { return Ok(Action::await_change()) };
    let result = async {
        let vault = read_vault(store, ctx).await?;
        let admin = admin_url(&ctx.client, &names.namespace, &store.spec, vault.as_deref()).await?;
        database::reclaim(&admin, &names).await
    }
    .await;
    match result {
        Ok(()) => {
            ctx.vaults.forget(store);
            ctx.metrics.forget_store(&store_key(store));
            let note = format!("reclaimPolicy is Delete: dropped schema {} and its roles", names.schema);
            publish(ctx, store, &Transition { warning: false, reason: "Reclaimed".into(), note }).await;
            Ok(Action::await_change())
        }
        // The admin credentials are gone from the cluster (typically deleted with the store's
        // namespace). Waiting would hold the store, and with it its namespace, forever; dropping
        // is impossible. The data is kept, as with Retain, and the Warning says what to drop.
        Err(
            e @ (Error::SecretNotFound { .. } | Error::SecretKeyMissing { .. } | Error::CnpgClusterNotFound { .. }),
        ) => {
            ctx.vaults.forget(store);
            ctx.metrics.forget_store(&store_key(store));
            let note = format!(
                "reclaimPolicy is Delete, but the admin credentials are gone ({e}): schemas {} and {} \
                 and their roles are kept; drop them by hand",
                names.schema, names.worker_schema
            );
            tracing::warn!(store = %store_key(store), %note, "reclaim skipped");
            publish(ctx, store, &Transition { warning: true, reason: "ReclaimSkipped".into(), note }).await;
            Ok(Action::await_change())
        }
        Err(e) => {
            // The store stays (Terminating) until its data can be dropped; setting
            // reclaimPolicy to Retain lets it go and keeps the data.
            let progress = Progress { names: Some(names), validated: true, vault_done: true, ..Default::default() };
            if let Err(status_error) = report(api, store, ctx, &progress, Some(&e)).await {
                tracing::warn!(error = %status_error, "cannot report the failed cleanup");
            }
            Err(e)
        }
    }
}

/// The store's values from Vault (`None`: the store does not use Vault).
async fn read_vault(store: &MemoryStore, ctx: &Context) -> Result<Option<Arc<Fetched>>> {
    match &store.spec.vault {
        Some(vault) => Ok(Some(ctx.vaults.values(&ctx.client, store, vault).await?)),
        None => Ok(None),
    }
}

fn vault_status(f: &Fetched) -> VaultStatus {
    VaultStatus { last_refresh_time: f.refreshed_at.map(Time), token_expiry_time: f.token_expires_at.map(Time) }
}

/// The admin URL: from Vault (`adminCredentials.vaultPath`, already read into `vault`), from a
/// CloudNativePG Cluster, or from the Secret in `adminCredentials.secretRef`.
async fn admin_url(
    client: &Client,
    namespace: &str,
    spec: &MemoryStoreSpec,
    vault: Option<&Fetched>,
) -> Result<AdminUrl> {
    if let Some(path) = &spec.database.admin_credentials.vault_path {
        let url = vault
            .and_then(|v| v.admin_url.as_deref())
            .ok_or_else(|| Error::InvalidSpec("database.adminCredentials.vaultPath requires spec.vault".into()))?;
        let source = format!("Vault secret {path}");
        return AdminUrl::parse(url).map_err(|reason| Error::InvalidAdminUrl { origin: source, reason });
    }
    if let Some(cluster) = &spec.database.admin_credentials.cnpg_cluster {
        return crate::cnpg::admin_url(client, namespace, cluster).await;
    }
    let Some(r) = &spec.database.admin_credentials.secret_ref else {
        return Err(Error::InvalidSpec(
            "database.adminCredentials: set exactly one of secretRef, vaultPath or cnpgCluster".into(),
        ));
    };
    let raw = crate::secret_ref::read(client, namespace, &r.name, r.key_or(ADMIN_URL_KEY)).await?;
    AdminUrl::parse(&raw).map_err(|reason| Error::InvalidAdminUrl { origin: format!("Secret {}", r.name), reason })
}

fn namespaced<K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>>(
    ctx: &Context,
    names: &StoreNames,
) -> Api<K> {
    Api::namespaced(ctx.client.clone(), &names.namespace)
}

/// The live Deployment, for status only: a failed read keeps the last known status.
async fn read_deployment(ctx: &Context, names: &StoreNames) -> Option<Deployment> {
    match namespaced::<Deployment>(ctx, names).get_opt(&names.workload).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, deployment = %names.workload, "cannot read the Deployment for status");
            None
        }
    }
}

/// Writes the status if it differs from the stored one, and publishes an event per
/// transition. Server-side apply with the operator's one field manager.
async fn report(
    api: &Api<MemoryStore>,
    store: &MemoryStore,
    ctx: &Context,
    progress: &Progress,
    error: Option<&Error>,
) -> Result<()> {
    let obs = Observation {
        generation: store.metadata.generation,
        paused: store.spec.paused,
        progress,
        error: error.map(Error::root),
        selector: selector_string(store),
    };
    let previous = store.status.as_ref();
    let status = desired_status(previous, &obs, &Time(Timestamp::now()));
    ctx.metrics.observe_store(&store_key(store), &status.conditions);
    if previous == Some(&status) {
        return Ok(());
    }
    let patch = serde_json::json!({
        "apiVersion": MemoryStore::api_version(&()),
        "kind": MemoryStore::kind(&()),
        "status": status,
    });
    api.patch_status(&store.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    let before = previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
    for t in transitions(before, &status.conditions) {
        publish(ctx, store, &t).await;
    }
    Ok(())
}

/// Events are best effort: a failure to record one never fails the reconcile.
async fn publish(ctx: &Context, store: &MemoryStore, t: &Transition) {
    let event = Event {
        type_: if t.warning { EventType::Warning } else { EventType::Normal },
        reason: t.reason.clone(),
        note: Some(t.note.clone()),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &store.object_ref(&())).await {
        tracing::warn!(error = %e, reason = %t.reason, "cannot publish an event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_five_minutes() {
        let secs: Vec<u64> = [1, 2, 3, 4, 6, 7, 100, u32::MAX].into_iter().map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 160, 300, 300, 300]);
        assert_eq!(backoff(0).as_secs(), 5);
    }
}
