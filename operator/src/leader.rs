//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several replicas exactly one
//! reconciles. Built on the maintained `kube-lease-manager` crate (kube 5, k8s-openapi 0.29,
//! server-side apply of the Lease): the holder renews it a third of the lease duration before
//! it expires, a standby re-reads it when it would expire and takes it if it was not renewed
//! (or was released), so fail-over takes at most the lease duration. On SIGTERM the leader
//! finishes its reconciles and releases the Lease before it exits.
//!
//! A replica that loses the Lease stops (the process exits with an error and is restarted by
//! its Deployment), as client-go's controllers do: it may not know what its in-flight
//! reconciles wrote, and a fresh start is the simplest correct follower.

use std::time::Duration;

use kube::Client;
use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Name of the Lease, in the operator's namespace.
pub const LEASE_NAME: &str = "pinak-operator";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaderConfig {
    /// `PINAK_OPERATOR_LEADER_ELECTION`: `true` or `false`. Default: on when `POD_NAMESPACE`
    /// is set (the operator runs in a pod, possibly several), off otherwise (a local process).
    pub enabled: bool,
    /// `POD_NAMESPACE`, default `default`: where the Lease lives.
    pub namespace: String,
    /// `POD_NAME`, or `<hostname>-<pid>`: the Lease's holder identity.
    pub identity: String,
    /// `PINAK_OPERATOR_LEASE_DURATION_SECS` (default 15, at least 2): how long a holder that
    /// stops renewing keeps the Lease. A holder renews a third of that before expiry.
    pub lease_duration_secs: u64,
}

impl LeaderConfig {
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.is_empty()), default_identity)
    }

    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
        identity: impl FnOnce() -> String,
    ) -> anyhow::Result<Self> {
        let namespace = get("POD_NAMESPACE");
        let enabled = match get("PINAK_OPERATOR_LEADER_ELECTION").as_deref() {
            None => namespace.is_some(),
            Some("true" | "1") => true,
            Some("false" | "0") => false,
            Some(v) => anyhow::bail!("PINAK_OPERATOR_LEADER_ELECTION={v:?} must be true or false"),
        };
        let lease_duration_secs = match get("PINAK_OPERATOR_LEASE_DURATION_SECS") {
            None => 15,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n >= 2 => n,
                _ => anyhow::bail!("PINAK_OPERATOR_LEASE_DURATION_SECS={v:?} must be a number of seconds, at least 2"),
            },
        };
        Ok(Self {
            enabled,
            namespace: namespace.unwrap_or_else(|| "default".to_owned()),
            identity: get("POD_NAME").unwrap_or_else(identity),
            lease_duration_secs,
        })
    }

    /// Seconds before expiry at which the holder renews: a third of the duration (at least 1).
    pub fn renew_grace_secs(&self) -> u64 {
        (self.lease_duration_secs / 3).max(1)
    }
}

/// `<hostname>-<pid>`: unique among replicas on one machine and across machines.
pub fn default_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "pinak-operator".to_owned());
    format!("{host}-{}", std::process::id())
}

/// A running election: `leading` is true while this replica holds the Lease.
pub struct Election {
    pub leading: watch::Receiver<bool>,
    task: JoinHandle<Result<LeaseManager, kube_lease_manager::LeaseManagerError>>,
}

impl Election {
    /// Joins the election (creating the Lease if it does not exist).
    pub async fn start(client: Client, config: &LeaderConfig) -> anyhow::Result<Self> {
        let manager = LeaseManagerBuilder::new(client, LEASE_NAME)
            .with_namespace(&config.namespace)
            .with_identity(&config.identity)
            .with_duration(config.lease_duration_secs)
            .with_grace(config.renew_grace_secs())
            .build()
            .await
            .map_err(|e| anyhow::anyhow!("cannot join the election on Lease {}/{LEASE_NAME}: {e}", config.namespace))?;
        let (leading, task) = manager.watch().await;
        Ok(Self { leading, task })
    }

    /// Waits until this replica leads. An error if the election stopped.
    pub async fn acquired(&mut self) -> anyhow::Result<()> {
        self.leading
            .wait_for(|leading| *leading)
            .await
            .map(|_| ())
            .map_err(|_| anyhow::anyhow!("the leader election stopped"))
    }

    /// Resolves when this replica no longer leads (or the election stopped).
    pub async fn lost(&mut self) {
        let _ = self.leading.wait_for(|leading| !*leading).await;
    }

    /// Leaves the election, releasing the Lease if held (best effort, bounded in time), so a
    /// successor need not wait for it to expire.
    pub async fn release(self) {
        let Self { leading, task } = self;
        drop(leading);
        match tokio::time::timeout(Duration::from_secs(3), task).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "cannot release the leader Lease"),
            Ok(Err(e)) => tracing::warn!(error = %e, "leader election task failed"),
            Err(_) => tracing::warn!("timed out releasing the leader Lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<LeaderConfig> {
        LeaderConfig::from_lookup(
            |k| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| (*v).to_owned()),
            || "host-1".to_owned(),
        )
    }

    #[test]
    fn defaults_follow_the_pod_environment() {
        let local = config(&[]).unwrap();
        assert_eq!(
            local,
            LeaderConfig {
                enabled: false,
                namespace: "default".into(),
                identity: "host-1".into(),
                lease_duration_secs: 15
            }
        );
        assert_eq!(local.renew_grace_secs(), 5);
        let pod = config(&[("POD_NAMESPACE", "pinak-system"), ("POD_NAME", "op-0")]).unwrap();
        assert!(pod.enabled);
        assert_eq!((pod.namespace.as_str(), pod.identity.as_str()), ("pinak-system", "op-0"));
        let off = config(&[("POD_NAMESPACE", "x"), ("PINAK_OPERATOR_LEADER_ELECTION", "false")]).unwrap();
        assert!(!off.enabled);
        let short = config(&[("PINAK_OPERATOR_LEADER_ELECTION", "true"), ("PINAK_OPERATOR_LEASE_DURATION_SECS", "2")]);
        assert_eq!(short.unwrap().renew_grace_secs(), 1);
        assert!(config(&[("PINAK_OPERATOR_LEADER_ELECTION", "yes")]).is_err());
        assert!(config(&[("PINAK_OPERATOR_LEASE_DURATION_SECS", "1")]).is_err());
        assert!(default_identity().ends_with(&format!("-{}", std::process::id())));
    }
}
