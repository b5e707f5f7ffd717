//! The store's status, as a pure function of the previous status and what this reconcile
//! achieved. A condition keeps its `lastTransitionTime` while its status does not change, so an
//! unchanged store yields a status equal to the previous one, and nothing is written.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::DynamicObject;
use pinak_crds::{MemoryStoreStatus, VaultStatus, condition};

use crate::database::DbReport;
use crate::error::Error;
use crate::knative;
use crate::names::StoreNames;

/// How far a reconcile got. Phases run in this order; the first one not done is where an
/// error stopped it, and the conditions of later phases keep their last known value.
#[derive(Clone, Debug, Default)]
pub struct Progress {
    pub names: Option<StoreNames>,
    pub validated: bool,
    /// Vault was read (or the store does not use it).
    pub vault_done: bool,
    /// What this reconcile used from Vault.
    pub vault: Option<VaultStatus>,
    pub database: Option<DbReport>,
    pub secret_ready: bool,
    pub workload_ready: bool,
    /// A child object was created, changed or deleted in this reconcile.
    pub changed: bool,
    /// Come back this soon (a password rotation waiting out its grace period).
    pub retry_after: Option<std::time::Duration>,
    /// The live Deployment (after apply, or as read).
    pub deployment: Option<Deployment>,
    /// The live Knative Service of a `Serverless` store; its pods' state comes from it.
    pub knative: Option<DynamicObject>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Spec,
    Vault,
    Database,
    Secrets,
    Workload,
    Done,
}

impl Progress {
    pub fn phase(&self) -> Phase {
        if self.names.is_none() || !self.validated {
            Phase::Spec
        } else if !self.vault_done {
            Phase::Vault
        } else if self.database.is_none() {
            Phase::Database
        } else if !self.secret_ready {
            Phase::Secrets
        } else if !self.workload_ready {
            Phase::Workload
        } else {
            Phase::Done
        }
    }
}

/// Everything `desired_status` needs.
pub struct Observation<'a> {
    pub generation: Option<i64>,
    pub paused: bool,
    pub progress: &'a Progress,
    pub error: Option<&'a Error>,
    /// The pods' label selector (`status.selector`).
    pub selector: String,
}

const TRUE: &str = "True";
const FALSE: &str = "False";
const UNKNOWN: &str = "Unknown";

/// A condition's status, reason and message before bookkeeping.
struct State {
    status: &'static str,
    reason: String,
    message: String,
}

impl State {
    fn new(status: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Self { status, reason: reason.to_owned(), message: message.into() }
    }
}

pub fn desired_status(previous: Option<&MemoryStoreStatus>, obs: &Observation<'_>, now: &Time) -> MemoryStoreStatus {
    let prev = previous.cloned().unwrap_or_default();
    let p = obs.progress;
    let phase = p.phase();
    // The condition as computed now, or (None) the last known one.
    let failed = |at: Phase| match obs.error {
        Some(e) if phase == at && !obs.paused => Some(State::new(FALSE, e.reason(), e.to_string())),
        _ => None,
    };

    let paused = if obs.paused {
        State::new(TRUE, "Paused", "spec.paused is true: the operator changes nothing for this store")
    } else {
        State::new(FALSE, "Active", "")
    };
    let database = match (&p.database, &p.names) {
        (Some(db), Some(n)) => Some(State::new(
            TRUE,
            "Provisioned",
            format!(
                "schema {} at migration {}, pgvector {}",
                n.schema,
                db.migration_version.map_or_else(|| "none".to_owned(), |v| v.to_string()),
                db.pgvector_version
            ),
        )),
        _ => failed(Phase::Database),
    };
    let secrets = match (p.secret_ready, &p.names) {
        (true, Some(n)) => Some(State::new(
            TRUE,
            "SecretApplied",
            match &p.vault {
                Some(_) => {
                    format!("Secret {} holds the store's credentials, with the values read from Vault", n.secret)
                }
                None => format!("Secret {} holds the store's credentials", n.secret),
            },
        )),
        // A failed Vault read is a secrets problem, though it happens before the database.
        _ => failed(Phase::Secrets).or_else(|| failed(Phase::Vault)),
    };
    let api = match (&p.knative, &p.deployment) {
        // Switching to Serverless: the old pods serve until the first revision is ready.
        (Some(k), Some(d)) if !knative::revision_ready(k) => Some(api_available(d)),
        (Some(k), _) => Some(knative_available(k)),
        (None, Some(d)) => Some(api_available(d)),
        (None, None) => failed(Phase::Workload),
    };
    let rolling = match &p.knative {
        Some(k) => knative_rolling_out(k),
        None => p.deployment.as_ref().is_some_and(rolling_out),
    };
    let progressing = match obs.error {
        _ if obs.paused => None,
        Some(e) => Some(State::new(FALSE, e.reason(), "blocked until the Degraded condition clears")),
        None if p.changed || rolling => {
            Some(State::new(TRUE, "RollingOut", "applying the spec to the store's objects"))
        }
        None => Some(State::new(FALSE, "Complete", "the store's objects match the spec")),
    };
    let degraded = match obs.error {
        _ if obs.paused => None,
        Some(e) => Some(State::new(TRUE, e.reason(), e.to_string())),
        None => Some(State::new(FALSE, "AsExpected", "")),
    };

    let make = |type_: &str, state: Option<State>| merge(&prev.conditions, type_, state, obs.generation, now);
    let mut conditions = vec![
        make(condition::DATABASE_READY, database),
        make(condition::SECRETS_READY, secrets),
        make(condition::API_AVAILABLE, api),
        make(condition::PROGRESSING, progressing),
        make(condition::DEGRADED, degraded),
        make(condition::PAUSED, Some(paused)),
    ];
    let ready = (!obs.paused).then(|| ready(&conditions, obs.error, p.names.as_ref()));
    conditions.push(make(condition::READY, ready));
    // Reported in the order of `condition::ALL`.
    conditions.sort_by_key(|c| condition::ALL.iter().position(|t| *t == c.type_));

    MemoryStoreStatus {
        observed_generation: obs.generation,
        conditions,
        schema: p.names.as_ref().map(|n| n.schema.clone()).or(prev.schema),
        endpoint: p.names.as_ref().map(StoreNames::endpoint).or(prev.endpoint),
        // Knative counts a Serverless store's pods per revision, not on the Service: none is
        // reported rather than a stale Deployment count.
        replicas: match (&p.knative, &p.deployment) {
            (Some(_), _) => None,
            (None, Some(d)) => Some(d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0)),
            (None, None) => prev.replicas,
        },
        selector: Some(obs.selector.clone()),
        migration_version: p.database.as_ref().map_or(prev.migration_version, |d| d.migration_version),
        pgvector_version: p.database.as_ref().map(|d| d.pgvector_version.clone()).or(prev.pgvector_version),
        // Kept while a read fails, so the last good read stays visible.
        vault: if p.vault_done { p.vault.clone() } else { prev.vault },
    }
}

/// The condition `type_` for `state`, or (`None`) the last known one.
fn merge(previous: &[Condition], type_: &str, state: Option<State>, generation: Option<i64>, now: &Time) -> Condition {
    let old = previous.iter().find(|c| c.type_ == type_);
    match (state, old) {
        (Some(s), old) => Condition {
            type_: type_.to_owned(),
            // Kept while the status holds, so only real transitions move it.
            last_transition_time: old
                .filter(|o| o.status == s.status)
                .map_or_else(|| now.clone(), |o| o.last_transition_time.clone()),
            status: s.status.to_owned(),
            reason: s.reason,
            message: s.message,
            observed_generation: generation,
        },
        (None, Some(old)) => old.clone(),
        (None, None) => Condition {
            type_: type_.to_owned(),
            status: UNKNOWN.to_owned(),
            reason: "Pending".to_owned(),
            message: "not reconciled yet".to_owned(),
            observed_generation: generation,
            last_transition_time: now.clone(),
        },
    }
}

/// Ready: no error and every part of the store healthy; otherwise the first reason it is not.
fn ready(conditions: &[Condition], error: Option<&Error>, names: Option<&StoreNames>) -> State {
    if let Some(e) = error {
        return State::new(FALSE, e.reason(), e.to_string());
    }
    for type_ in [condition::DATABASE_READY, condition::SECRETS_READY, condition::API_AVAILABLE] {
        match conditions.iter().find(|c| c.type_ == type_) {
            Some(c) if c.status == TRUE => {}
            Some(c) => return State::new(FALSE, &c.reason, format!("{type_}: {}", c.message)),
            None => return State::new(FALSE, "Pending", format!("{type_} not reported yet")),
        }
    }
    let endpoint = names.map(StoreNames::endpoint).unwrap_or_default();
    State::new(TRUE, "Ready", format!("serving at {endpoint}"))
}

fn api_available(d: &Deployment) -> State {
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    if wanted == 0 {
        return State::new(FALSE, "ScaledToZero", "api.replicas is 0: the store keeps its data and serves nothing");
    }
    // The Deployment controller's own verdict (minimum available under its strategy), when
    // it has given one for the current generation.
    let verdict =
        status.conditions.unwrap_or_default().into_iter().find(|c| c.type_ == "Available").map(|c| c.status == TRUE);
    let up = verdict.unwrap_or(available > 0) && available > 0;
    let message = format!("{available}/{wanted} pods available");
    if up {
        State::new(TRUE, "MinimumReplicasAvailable", message)
    } else {
        State::new(FALSE, "MinimumReplicasUnavailable", message)
    }
}

/// The Deployment's pods serve (or none are asked for): a Knative Service of the store's
/// earlier mode may go.
pub fn deployment_serves(d: &Deployment) -> bool {
    let state = api_available(d);
    state.status == TRUE || state.reason == "ScaledToZero"
}

/// A Serverless store's pods, from its Knative Service's `Ready` condition.
fn knative_available(ksvc: &DynamicObject) -> State {
    let url = ksvc.data.pointer("/status/url").and_then(serde_json::Value::as_str).unwrap_or_default();
    match knative::condition(ksvc, "Ready") {
        Some((s, _, _)) if s == TRUE && knative::observed(ksvc) => {
            State::new(TRUE, "KnativeServiceReady", format!("Knative Service ready at {url}, scaled by requests"))
        }
        Some((_, reason, message)) if !reason.is_empty() => {
            State::new(FALSE, &format!("Knative{reason}"), format!("Knative Service not ready: {message}"))
        }
        _ => State::new(FALSE, "KnativeServicePending", "waiting for Knative Serving to report the Service ready"),
    }
}

/// A new revision is being created or has not become ready yet.
fn knative_rolling_out(ksvc: &DynamicObject) -> bool {
    let text = |ptr: &str| ksvc.data.pointer(ptr).and_then(serde_json::Value::as_str).map(str::to_owned);
    !knative::observed(ksvc)
        || text("/status/latestCreatedRevisionName").is_none()
        || text("/status/latestCreatedRevisionName") != text("/status/latestReadyRevisionName")
}

/// A rollout is under way: the Deployment controller has not caught up with the spec, or pods
/// of an old template remain, or new ones are not available yet.
fn rolling_out(d: &Deployment) -> bool {
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(s) = &d.status else { return true };
    let updated = s.updated_replicas.unwrap_or(0);
    s.observed_generation.unwrap_or(0) < generation
        || updated < wanted
        || s.replicas.unwrap_or(0) > updated
        || s.available_replicas.unwrap_or(0) < updated
}

/// One event to publish: a condition that changed status (or, for Degraded, its reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub warning: bool,
    pub reason: String,
    pub note: String,
}

pub fn transitions(previous: &[Condition], current: &[Condition]) -> Vec<Transition> {
    current
        .iter()
        .filter(|c| c.status != UNKNOWN)
        .filter(|c| match previous.iter().find(|o| o.type_ == c.type_) {
            Some(o) => {
                o.status != c.status || (c.type_ == condition::DEGRADED && c.status == TRUE && o.reason != c.reason)
            }
            // A new store: report what it achieved, and a failure, but not that its pods are
            // still starting, nor that it is not paused.
            None => c.type_ != condition::PROGRESSING && c.status == TRUE,
        })
        .map(|c| {
            let healthy = match c.type_.as_str() {
                condition::DEGRADED => c.status == FALSE,
                condition::PAUSED | condition::PROGRESSING => true,
                _ => c.status == TRUE,
            };
            let note = if c.message.is_empty() {
                format!("{} is {}", c.type_, c.status)
            } else {
                format!("{} is {}: {}", c.type_, c.status, c.message)
            };
            Transition { warning: !healthy, reason: c.reason.clone(), note }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use k8s_openapi::jiff::Timestamp;

    use crate::test_support::store;

    fn time(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn names() -> StoreNames {
        StoreNames::of(&store(serde_json::json!({}))).unwrap()
    }

    fn deployment(replicas: i32, available: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta { generation: Some(1), ..Default::default() },
            spec: Some(DeploymentSpec { replicas: Some(replicas), ..Default::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(1),
                replicas: Some(replicas),
                updated_replicas: Some(replicas),
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    fn done(deployment: Deployment) -> Progress {
        Progress {
            names: Some(names()),
            validated: true,
            vault_done: true,
            vault: None,
            database: Some(DbReport { migration_version: Some(5), pgvector_version: "0.8.5".into() }),
            secret_ready: true,
            workload_ready: true,
            changed: false,
            retry_after: None,
            deployment: Some(deployment),
            knative: None,
        }
    }

    fn status(
        prev: Option<&MemoryStoreStatus>,
        progress: &Progress,
        error: Option<&Error>,
        generation: i64,
        now: i64,
    ) -> MemoryStoreStatus {
        let obs = Observation { generation: Some(generation), paused: false, progress, error, selector: "a=b".into() };
        desired_status(prev, &obs, &time(now))
    }

    fn cond<'a>(s: &'a MemoryStoreStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn healthy_store_is_ready_and_stable() {
        let p = done(deployment(2, 2));
        let first = status(None, &p, None, 1, 100);
        assert_eq!(first.conditions.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(), condition::ALL);
        assert_eq!(cond(&first, "Ready").status, "True");
        assert_eq!(cond(&first, "Degraded").status, "False");
        assert_eq!(cond(&first, "Progressing").status, "False");
        assert_eq!(first.schema.as_deref(), Some(names().schema.as_str()));
        assert_eq!(first.endpoint.as_deref(), Some("http://notes.team-a.svc:80"));
        assert_eq!((first.replicas, first.migration_version), (Some(2), Some(5)));
        assert_eq!(first.pgvector_version.as_deref(), Some("0.8.5"));
        assert!(first.conditions.iter().all(|c| c.observed_generation == Some(1)));
        // Later, nothing changed: the very same status, so nothing is written.
        assert_eq!(status(Some(&first), &p, None, 1, 500), first);
    }

    #[test]
    fn transition_time_moves_only_on_status_change() {
        let first = status(None, &done(deployment(2, 2)), None, 1, 100);
        let err = Error::DatabaseUnreachable("connection refused".into());
        let p = Progress { database: None, secret_ready: false, workload_ready: false, ..done(deployment(2, 2)) };
        let down = status(Some(&first), &p, Some(&err), 2, 200);
        assert_eq!(cond(&down, "DatabaseReady").status, "False");
        assert_eq!(cond(&down, "DatabaseReady").reason, "DatabaseUnreachable");
        assert_eq!(cond(&down, "DatabaseReady").last_transition_time, time(200));
        assert_eq!(cond(&down, "Degraded").reason, "DatabaseUnreachable");
        assert_eq!(cond(&down, "Ready").status, "False");
        // The Secret was not touched this time: its condition is the last known one.
        assert_eq!(cond(&down, "SecretsReady"), cond(&first, "SecretsReady"));
        // The pods still serve.
        assert_eq!(cond(&down, "ApiAvailable").status, "True");
        assert_eq!(cond(&down, "ApiAvailable").last_transition_time, time(100));
        assert_eq!(down.migration_version, Some(5), "last known version kept");
        let up = status(Some(&down), &done(deployment(2, 2)), None, 2, 300);
        assert_eq!(cond(&up, "Ready").last_transition_time, time(300));
        assert_eq!(cond(&up, "ApiAvailable").last_transition_time, time(100));
    }

    #[test]
    fn a_failed_vault_read_is_a_secrets_condition_and_keeps_the_last_read() {
        let read = VaultStatus { last_refresh_time: Some(time(90)), token_expiry_time: Some(time(990)) };
        let first = status(None, &Progress { vault: Some(read.clone()), ..done(deployment(2, 2)) }, None, 1, 100);
        assert_eq!(first.vault.as_ref(), Some(&read));
        assert!(cond(&first, "SecretsReady").message.contains("read from Vault"));
        let err = Error::VaultUnreachable { address: "http://v:8200".into(), reason: "connection refused".into() };
        let p = Progress {
            vault_done: false,
            vault: None,
            database: None,
            secret_ready: false,
            workload_ready: false,
            ..done(deployment(2, 2))
        };
        let down = status(Some(&first), &p, Some(&err), 1, 200);
        assert_eq!(cond(&down, "SecretsReady").status, "False");
        assert_eq!(cond(&down, "SecretsReady").reason, "VaultUnreachable");
        assert!(cond(&down, "SecretsReady").message.contains("http://v:8200"));
        assert_eq!(cond(&down, "Degraded").reason, "VaultUnreachable");
        assert_eq!(cond(&down, "DatabaseReady"), cond(&first, "DatabaseReady"), "not reached: last known");
        assert_eq!(cond(&down, "ApiAvailable").status, "True", "the pods keep serving");
        assert_eq!(down.vault.as_ref(), Some(&read), "the last good read stays visible");
    }

    #[test]
    fn invalid_spec_reports_degraded_only() {
        let err = Error::InvalidSpec("bad".into());
        let s = status(None, &Progress::default(), Some(&err), 1, 100);
        assert_eq!(cond(&s, "Degraded").reason, "InvalidSpec");
        assert_eq!(cond(&s, "Ready").reason, "InvalidSpec");
        assert_eq!(cond(&s, "DatabaseReady").status, "Unknown");
        assert_eq!(s.schema, None);
    }

    #[test]
    fn a_serverless_store_reports_its_knative_service() {
        let ksvc = |status: serde_json::Value| -> DynamicObject {
            serde_json::from_value(serde_json::json!({
                "apiVersion": "serving.knative.dev/v1", "kind": "Service",
                "metadata": {"name": "notes", "generation": 1}, "status": status
            }))
            .unwrap()
        };
        let serving = ksvc(serde_json::json!({
            "observedGeneration": 1, "url": "http://notes.team-a.example.com",
            "latestCreatedRevisionName": "notes-00001", "latestReadyRevisionName": "notes-00001",
            "conditions": [{"type": "Ready", "status": "True"}, {"type": "ConfigurationsReady", "status": "True"}]
        }));
        // The Deployment of the store's earlier mode does not count once the Service is there.
        let p = Progress { knative: Some(serving), ..done(deployment(0, 0)) };
        let s = status(None, &p, None, 1, 100);
        assert_eq!(cond(&s, "ApiAvailable").reason, "KnativeServiceReady");
        assert!(cond(&s, "ApiAvailable").message.contains("http://notes.team-a.example.com"));
        assert_eq!(cond(&s, "Ready").status, "True");
        assert_eq!(cond(&s, "Progressing").status, "False");
        assert_eq!(s.replicas, None, "no stale Deployment count");

        let new_revision = ksvc(serde_json::json!({
            "observedGeneration": 1,
            "latestCreatedRevisionName": "notes-00002", "latestReadyRevisionName": "notes-00001",
            "conditions": [{"type": "Ready", "status": "Unknown", "reason": "RevisionMissing", "message": "creating"}]
        }));
        let p = Progress { knative: Some(new_revision), deployment: None, ..done(deployment(0, 0)) };
        let s = status(None, &p, None, 1, 100);
        assert_eq!(cond(&s, "ApiAvailable").reason, "KnativeRevisionMissing");
        assert_eq!(cond(&s, "Progressing").status, "True");
        let p = Progress { knative: Some(ksvc(serde_json::json!({}))), deployment: None, ..done(deployment(0, 0)) };
        assert_eq!(cond(&status(None, &p, None, 1, 100), "ApiAvailable").reason, "KnativeServicePending");
        // Switching from mode Deployment: its pods serve until the first revision is ready.
        let switching = Progress { knative: Some(ksvc(serde_json::json!({}))), ..done(deployment(2, 2)) };
        let s = status(None, &switching, None, 1, 100);
        assert_eq!(cond(&s, "ApiAvailable").reason, "MinimumReplicasAvailable");
        assert_eq!(cond(&s, "Progressing").status, "True");
    }

    #[test]
    fn serverless_without_knative_keeps_reporting_the_old_pods() {
        let p = Progress { workload_ready: false, ..done(deployment(2, 2)) };
        let s = status(None, &p, Some(&Error::KnativeNotInstalled), 2, 100);
        assert_eq!(cond(&s, "Degraded").reason, "KnativeNotInstalled");
        assert!(cond(&s, "Degraded").message.contains("keeps its current workload"));
        assert_eq!(cond(&s, "ApiAvailable").status, "True", "the Deployment still serves");
        assert_eq!(cond(&s, "Ready").reason, "KnativeNotInstalled");
    }

    #[test]
    fn rollout_and_scale_to_zero() {
        let mut d = deployment(2, 1);
        d.status.as_mut().unwrap().updated_replicas = Some(1);
        let s = status(None, &done(d), None, 1, 100);
        assert_eq!(cond(&s, "Progressing").status, "True");
        assert_eq!(cond(&s, "ApiAvailable").status, "True");
        let zero = status(None, &done(deployment(0, 0)), None, 1, 100);
        assert_eq!(cond(&zero, "ApiAvailable").reason, "ScaledToZero");
        assert_eq!(cond(&zero, "Ready").status, "False");
        let none = status(None, &done(deployment(2, 0)), None, 1, 100);
        assert_eq!(cond(&none, "ApiAvailable").reason, "MinimumReplicasUnavailable");
    }

    #[test]
    fn paused_store_reports_paused_and_keeps_the_rest() {
        let first = status(None, &done(deployment(2, 2)), None, 1, 100);
        let progress = Progress { names: Some(names()), deployment: Some(deployment(2, 2)), ..Default::default() };
        let obs =
            Observation { generation: Some(2), paused: true, progress: &progress, error: None, selector: "a=b".into() };
        let s = desired_status(Some(&first), &obs, &time(200));
        assert_eq!(cond(&s, "Paused").status, "True");
        assert_eq!(cond(&s, "Ready"), cond(&first, "Ready"));
        assert_eq!(cond(&s, "DatabaseReady"), cond(&first, "DatabaseReady"));
        assert_eq!(s.observed_generation, Some(2));
    }

    #[test]
    fn events_only_on_transitions() {
        let first = status(None, &done(deployment(2, 2)), None, 1, 100);
        let t = transitions(&[], &first.conditions);
        let reasons: Vec<_> = t.iter().map(|t| t.reason.as_str()).collect();
        assert_eq!(reasons, ["Ready", "Provisioned", "SecretApplied", "MinimumReplicasAvailable"]);
        assert!(t.iter().all(|t| !t.warning));
        assert_eq!(transitions(&first.conditions, &first.conditions), vec![]);
        let err = Error::DatabaseUnreachable("down".into());
        let p = Progress { database: None, secret_ready: false, workload_ready: false, ..done(deployment(2, 2)) };
        let down = status(Some(&first), &p, Some(&err), 1, 200);
        let t = transitions(&first.conditions, &down.conditions);
        assert!(
            t.iter().any(|t| t.warning && t.reason == "DatabaseUnreachable" && t.note.starts_with("Degraded is True"))
        );
        // Same failure again: no new event; another reason: one.
        assert_eq!(transitions(&down.conditions, &status(Some(&down), &p, Some(&err), 1, 300).conditions), vec![]);
        let other = Error::SchemaNotOwned { schema: "s".into(), found: None };
        let t = transitions(&down.conditions, &status(Some(&down), &p, Some(&other), 1, 300).conditions);
        assert!(t.iter().any(|t| t.reason == "SchemaNotOwned"));
        // A new store that fails at once: one warning for Degraded, no noise about pods.
        let checked = Progress { names: Some(names()), validated: true, vault_done: true, ..Default::default() };
        let new = status(None, &checked, Some(&err), 1, 100);
        let t = transitions(&[], &new.conditions);
        assert_eq!(t.len(), 1, "{t:?}");
        assert!(t[0].warning && t[0].note.starts_with("Degraded is True"));
    }
}
