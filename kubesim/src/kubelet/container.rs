//! One container of a pod as the kubelet tracks it: its state, its process, its probe verdicts,
//! and its restart back-off (1 s doubling to 30 s; the real kubelet's is 10 s to 5 min).

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::process;
use super::status::{State, Terminated};

const BACKOFF_START: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A container that ran this long before exiting restarts with the back-off reset (the real
/// kubelet resets after twice its maximum back-off too).
const BACKOFF_RESET: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A regular init container: runs to completion before the next one.
    Init,
    /// An init container with `restartPolicy: Always`: started in order, then runs alongside.
    Sidecar,
    Main,
}

/// Aborts a task when dropped (probe loops die with their process).
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct Proc {
    pub pid: u32,
    pub since: Instant,
    pub container_id: String,
    /// Held only to be dropped with the process: that aborts its probe loops.
    pub _probes: Option<AbortOnDrop>,
    /// When SIGKILL follows the SIGTERM already sent (None: not being stopped).
    pub kill_at: Option<Instant>,
    pub killed: bool,
}

pub struct Container {
    pub name: String,
    pub spec: Value,
    pub kind: Kind,
    pub state: State,
    pub last: Option<Terminated>,
    pub restarts: u32,
    /// The readiness probe's verdict (a container without one is ready once started).
    pub probe_ready: bool,
    /// Started: running and past its startup probe.
    pub started: bool,
    /// Tags the current process, so messages about an earlier one are ignored.
    pub run: u64,
    pub proc: Option<Proc>,
    pub image_id: String,
    backoff: Duration,
    /// When a waiting container may try to start (None: only when something changes).
    pub retry_at: Option<Instant>,
    /// Restart at once, whatever the policy (its image changed).
    pub restart_now: bool,
    ran_before: bool,
}

impl Container {
    pub fn new(spec: Value, kind: Kind, waiting_reason: &str) -> Self {
        Container {
            name: spec["name"].as_str().unwrap_or_default().to_owned(),
            spec,
            kind,
            state: State::waiting(waiting_reason, None),
            last: None,
            restarts: 0,
            probe_ready: false,
            started: false,
            run: 0,
            proc: None,
            image_id: String::new(),
            backoff: BACKOFF_START,
            retry_at: Some(Instant::now()),
            restart_now: false,
            ran_before: false,
        }
    }

    pub fn image(&self) -> &str {
        self.spec["image"].as_str().unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.proc.is_some()
    }

    pub fn ready(&self) -> bool {
        self.is_running() && self.started && (self.probe_ready || self.spec["readinessProbe"].is_null())
    }

    /// Exited 0 and stays so (a completed init container).
    pub fn completed(&self) -> bool {
        matches!(&self.state, State::Terminated(t) if t.exit_code == 0)
    }

    /// Terminated and never restarting.
    pub fn terminated(&self) -> bool {
        matches!(self.state, State::Terminated(_))
    }

    /// Waiting to run again after a termination.
    pub fn restarting(&self) -> bool {
        matches!(self.state, State::Waiting { .. }) && self.last.is_some()
    }

    /// Whether the container waits and may try to start now.
    pub fn due(&self, now: Instant) -> bool {
        !self.is_running() && matches!(self.state, State::Waiting { .. }) && self.retry_at.is_some_and(|t| t <= now)
    }

    /// Sets a waiting state; `retry` is when to try again.
    pub fn wait(&mut self, reason: &str, message: Option<String>, retry: Option<Duration>) {
        self.state = State::waiting(reason, message);
        self.retry_at = retry.map(|d| Instant::now() + d);
    }

    /// Records a started process.
    pub fn started_process(&mut self, pid: u32, probes: Option<AbortOnDrop>, image_id: String, now: &str) {
        if self.ran_before {
            self.restarts += 1;
        }
        self.ran_before = true;
        self.image_id = image_id;
        self.state = State::Running { started_at: now.to_owned() };
        self.started = self.spec["startupProbe"].is_null();
        self.probe_ready = false;
        self.retry_at = None;
        self.restart_now = false;
        let container_id = format!("kubesim://{pid}");
        self.proc =
            Some(Proc { pid, since: Instant::now(), container_id, _probes: probes, kill_at: None, killed: false });
    }

    /// SIGTERM to the process group now (once), SIGKILL after `grace`; a shorter grace given
    /// later (a second delete with --grace-period) brings the kill forward.
    pub fn stop(&mut self, grace: Duration) {
        let Some(p) = &mut self.proc else { return };
        let kill_at = Instant::now() + grace;
        if p.kill_at.is_none() {
            process::signal_group(p.pid, libc::SIGTERM);
        }
        if p.kill_at.is_none_or(|k| kill_at < k) {
            p.kill_at = Some(kill_at);
        }
        self.enforce_kill(Instant::now());
    }

    /// SIGKILL once the grace period is over.
    pub fn enforce_kill(&mut self, now: Instant) {
        if let Some(p) = &mut self.proc
            && !p.killed
            && p.kill_at.is_some_and(|k| k <= now)
        {
            process::signal_group(p.pid, libc::SIGKILL);
            p.killed = true;
        }
    }

    /// The process ended: clears it (and anything it left in its group) and returns the
    /// termination record.
    pub fn exited(&mut self, code: i32, signal: Option<i32>, now: &str) -> Option<(Terminated, Duration)> {
        let p = self.proc.take()?;
        // The container's other processes go with it, as with a container's PID namespace.
        process::signal_group(p.pid, libc::SIGKILL);
        self.started = false;
        self.probe_ready = false;
        let started_at = match &self.state {
            State::Running { started_at } => Some(started_at.clone()),
            _ => None,
        };
        let term = Terminated {
            exit_code: code,
            signal,
            reason: if code == 0 { "Completed" } else { "Error" }.to_owned(),
            message: None,
            started_at,
            finished_at: now.to_owned(),
            container_id: Some(p.container_id),
        };
        Some((term, p.since.elapsed()))
    }

    /// Whether a container that ended with `exit_code` runs again under the pod's policy.
    pub fn restarts_after(&self, pod_policy: &str, exit_code: i32) -> bool {
        if self.restart_now {
            return true;
        }
        match (self.kind, pod_policy) {
            (Kind::Sidecar, _) => true,
            (Kind::Init, "Never") => false,
            (Kind::Init, _) => exit_code != 0,
            (Kind::Main, "Always") => true,
            (Kind::Main, "OnFailure") => exit_code != 0,
            (Kind::Main, _) => false,
        }
    }

    /// Terminated for good, or waiting in CrashLoopBackOff for the next back-off step. Returns
    /// the delay when it restarts.
    pub fn after_exit(&mut self, term: Terminated, ran: Duration, restart: bool, pod: &str) -> Option<Duration> {
        if !restart {
            self.state = State::Terminated(term);
            self.retry_at = None;
            return None;
        }
        if ran >= BACKOFF_RESET {
            self.backoff = BACKOFF_START;
        }
        let delay = if self.restart_now { Duration::ZERO } else { self.backoff };
        if !self.restart_now {
            self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        }
        self.last = Some(term);
        let message = format!("back-off {}s restarting failed container={} pod={pod}", delay.as_secs(), self.name);
        let reason = if self.restart_now { "ContainerCreating" } else { "CrashLoopBackOff" };
        self.wait(reason, (!self.restart_now).then_some(message), Some(delay));
        Some(delay)
    }

    /// When the SIGKILL of a stop in progress is due.
    pub fn kill_at(&self) -> Option<Instant> {
        self.proc.as_ref().filter(|p| !p.killed).and_then(|p| p.kill_at)
    }

    pub fn status_json(&self) -> Value {
        let mut s = json!({
            "name": self.name,
            "image": self.image(),
            "imageID": self.image_id,
            "ready": self.ready(),
            "started": self.started && self.is_running(),
            "restartCount": self.restarts,
            "state": self.state.to_json(),
            "lastState": self.last.as_ref().map_or(json!({}), |t| json!({"terminated": t.to_json()})),
        });
        let id = match (&self.proc, &self.state) {
            (Some(p), _) => Some(p.container_id.clone()),
            (None, State::Terminated(t)) => t.container_id.clone(),
            _ => None,
        };
        if let Some(id) = id {
            s["containerID"] = json!(id);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(code: i32) -> Terminated {
        Terminated {
            exit_code: code,
            signal: None,
            reason: "Error".into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
            container_id: None,
        }
    }

    #[test]
    fn back_off_doubles_to_its_cap_and_resets_after_a_long_run() {
        let mut c = Container::new(serde_json::json!({"name": "app"}), Kind::Main, "ContainerCreating");
        let delays: Vec<u64> =
            (0..7).map(|_| c.after_exit(term(1), Duration::ZERO, true, "p_ns(u)").unwrap().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(c.after_exit(term(1), BACKOFF_RESET, true, "p_ns(u)"), Some(BACKOFF_START));
        let State::Waiting { reason, message } = &c.state else { panic!() };
        assert_eq!(reason, "CrashLoopBackOff");
        assert_eq!(message.as_deref(), Some("back-off 1s restarting failed container=app pod=p_ns(u)"));
        assert!(c.restarting());
        assert_eq!(c.after_exit(term(0), Duration::ZERO, false, "p"), None);
        assert!(c.terminated() && c.completed());
    }

    #[test]
    fn restart_policies() {
        let c = |kind| Container::new(serde_json::json!({"name": "x"}), kind, "ContainerCreating");
        assert!(c(Kind::Main).restarts_after("Always", 0));
        assert!(!c(Kind::Main).restarts_after("OnFailure", 0));
        assert!(c(Kind::Main).restarts_after("OnFailure", 1));
        assert!(!c(Kind::Main).restarts_after("Never", 1));
        assert!(!c(Kind::Init).restarts_after("Always", 0));
        assert!(c(Kind::Init).restarts_after("Always", 2));
        assert!(!c(Kind::Init).restarts_after("Never", 2));
        assert!(c(Kind::Sidecar).restarts_after("Never", 0));
    }

    #[test]
    fn status_of_a_waiting_container() {
        let mut c =
            Container::new(serde_json::json!({"name": "web", "image": "img:1"}), Kind::Main, "ContainerCreating");
        c.wait("ErrImagePull", Some("not mapped".into()), None);
        let s = c.status_json();
        assert_eq!(s["state"]["waiting"]["reason"], "ErrImagePull");
        assert_eq!(
            (s["ready"].as_bool(), s["started"].as_bool(), s["restartCount"].as_u64()),
            (Some(false), Some(false), Some(0))
        );
        assert_eq!(s["lastState"], serde_json::json!({}));
        assert!(s.get("containerID").is_none());
        assert_eq!(c.retry_at, None, "an unmapped image is not retried");
    }
}
