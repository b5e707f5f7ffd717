//! The pod status model: container states as the API shows them, the pod phase (the real
//! kubelet's `getPhase`), and conditions that keep their `lastTransitionTime` until their status
//! changes — so that recomputing an unchanged status yields the same JSON and no write.

use serde_json::{Value, json};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    Waiting { reason: String, message: Option<String> },
    Running { started_at: String },
    Terminated(Terminated),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub signal: Option<i32>,
    pub reason: String,
    pub message: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: String,
    pub container_id: Option<String>,
}

impl State {
    pub fn waiting(reason: &str, message: Option<String>) -> Self {
        State::Waiting { reason: reason.to_owned(), message }
    }

    pub fn to_json(&self) -> Value {
        match self {
            State::Waiting { reason, message } => {
                let mut w = json!({"reason": reason});
                if let Some(m) = message {
                    w["message"] = json!(m);
                }
                json!({"waiting": w})
            }
            State::Running { started_at } => json!({"running": {"startedAt": started_at}}),
            State::Terminated(t) => json!({"terminated": t.to_json()}),
        }
    }
}

impl Terminated {
    pub fn to_json(&self) -> Value {
        let mut t = json!({"exitCode": self.exit_code, "reason": self.reason, "finishedAt": self.finished_at});
        if let Some(s) = self.signal {
            t["signal"] = json!(s);
        }
        if let Some(m) = &self.message {
            t["message"] = json!(m);
        }
        if let Some(s) = &self.started_at {
            t["startedAt"] = json!(s);
        }
        if let Some(id) = &self.container_id {
            t["containerID"] = json!(id);
        }
        t
    }
}

/// What the phase depends on, per container.
pub struct PhaseInput<'a> {
    pub state: &'a State,
    /// Terminated before and waiting to run again.
    pub restarting: bool,
}

/// The pod phase from its regular containers, after the init containers: Pending while any
/// container has never run; Running while any runs or will restart; then Succeeded when all
/// exited 0, else Failed (with restartPolicy Never; OnFailure keeps restarting the failures).
pub fn phase(restart_policy: &str, init_failed: bool, init_done: bool, containers: &[PhaseInput]) -> &'static str {
    if init_failed {
        return "Failed";
    }
    if !init_done {
        return "Pending";
    }
    let (mut waiting, mut running, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for c in containers {
        match c.state {
            State::Running { .. } => running += 1,
            State::Terminated(t) => {
                stopped += 1;
                if t.exit_code == 0 {
                    succeeded += 1;
                }
            }
            State::Waiting { .. } if c.restarting => stopped += 1,
            State::Waiting { .. } => waiting += 1,
        }
    }
    if waiting > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if stopped > 0 {
        match restart_policy {
            "Always" => "Running",
            _ if stopped == succeeded => "Succeeded",
            "Never" => "Failed",
            _ => "Running",
        }
    } else {
        "Pending"
    }
}

/// The pod's conditions in the order the real kubelet lists them.
pub const CONDITION_TYPES: [&str; 5] =
    ["PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"];

#[derive(Clone, Debug, PartialEq, Eq)]
struct Condition {
    kind: &'static str,
    status: bool,
    since: String,
    reason: Option<String>,
    message: Option<String>,
}

#[derive(Default)]
pub struct Conditions {
    list: Vec<Condition>,
}

impl Conditions {
    /// Sets a condition; its transition time moves only when `status` flips.
    pub fn set(&mut self, kind: &'static str, status: bool, reason: Option<&str>, message: Option<String>, now: &str) {
        let reason = reason.map(str::to_owned);
        match self.list.iter_mut().find(|c| c.kind == kind) {
            Some(c) => {
                if c.status != status {
                    c.since = now.to_owned();
                    c.status = status;
                }
                c.reason = reason;
                c.message = message;
            }
            None => self.list.push(Condition { kind, status, since: now.to_owned(), reason, message }),
        }
    }

    pub fn to_json(&self) -> Value {
        let mut list: Vec<&Condition> = self.list.iter().collect();
        list.sort_by_key(|c| CONDITION_TYPES.iter().position(|t| *t == c.kind));
        Value::Array(
            list.into_iter()
                .map(|c| {
                    let mut v = json!({
                        "type": c.kind,
                        "status": if c.status { "True" } else { "False" },
                        "lastProbeTime": null,
                        "lastTransitionTime": c.since,
                    });
                    if let Some(r) = &c.reason {
                        v["reason"] = json!(r);
                    }
                    if let Some(m) = &c.message {
                        v["message"] = json!(m);
                    }
                    v
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn term(code: i32) -> State {
        State::Terminated(Terminated {
            exit_code: code,
            signal: None,
            reason: "x".into(),
            message: None,
            started_at: None,
            finished_at: "t".into(),
            container_id: None,
        })
    }

    fn run() -> State {
        State::Running { started_at: "t".into() }
    }

    fn input(state: &State, restarting: bool) -> PhaseInput<'_> {
        PhaseInput { state, restarting }
    }

    #[test]
    fn phases_follow_get_phase() {
        let wait = State::waiting("ContainerCreating", None);
        let (ok, bad, running) = (term(0), term(1), run());
        assert_eq!(phase("Always", false, false, &[input(&running, false)]), "Pending", "init containers pending");
        assert_eq!(phase("Always", true, false, &[]), "Failed");
        assert_eq!(phase("Always", false, true, &[input(&wait, false), input(&running, false)]), "Pending");
        assert_eq!(phase("Always", false, true, &[input(&running, false), input(&ok, false)]), "Running");
        assert_eq!(phase("Always", false, true, &[input(&wait, true)]), "Running", "backing off is still running");
        assert_eq!(phase("Never", false, true, &[input(&ok, false), input(&ok, false)]), "Succeeded");
        assert_eq!(phase("Never", false, true, &[input(&ok, false), input(&bad, false)]), "Failed");
        assert_eq!(phase("OnFailure", false, true, &[input(&ok, false), input(&wait, true)]), "Running");
        assert_eq!(phase("OnFailure", false, true, &[input(&ok, false)]), "Succeeded");
    }

    #[test]
    fn transition_times_move_only_on_flips() {
        let mut c = Conditions::default();
        c.set("Ready", false, Some("ContainersNotReady"), Some("containers with unready status: [a]".into()), "t1");
        c.set("PodScheduled", true, None, None, "t0");
        c.set("Ready", false, Some("ContainersNotReady"), Some("containers with unready status: [a]".into()), "t2");
        let v = c.to_json();
        assert_eq!(v[0]["type"], "Ready");
        assert_eq!(v[0]["lastTransitionTime"], "t1");
        assert_eq!(v[1]["type"], "PodScheduled");
        c.set("Ready", true, None, None, "t3");
        let v = c.to_json();
        assert_eq!((v[0]["status"].as_str(), v[0]["lastTransitionTime"].as_str()), (Some("True"), Some("t3")));
        assert!(v[0].get("reason").is_none());
    }

    #[test]
    fn states_render_as_the_api_does() {
        assert_eq!(
            State::waiting("ErrImagePull", Some("m".into())).to_json(),
            json!({"waiting": {"reason": "ErrImagePull", "message": "m"}})
        );
        assert_eq!(run().to_json(), json!({"running": {"startedAt": "t"}}));
        assert_eq!(term(2).to_json(), json!({"terminated": {"exitCode": 2, "reason": "x", "finishedAt": "t"}}));
    }
}
