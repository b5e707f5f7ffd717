//! One pod's worker: binds the pod to the node, gives it an IP and its volumes, runs its init
//! containers in order and then its containers, follows their processes and probes, restarts
//! them by policy, writes the pod status when it changes, and on deletion stops the processes
//! (SIGTERM, SIGKILL after the grace period) before completing the delete.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::container::{AbortOnDrop, Container, Kind};
use super::events::{self, Event};
use super::objects::InNamespace;
use super::probes::{self, Probes, Target, Verdict};
use super::process::{self, Launch, SpawnError};
use super::status::{self, CONDITION_TYPES, Conditions, PhaseInput, State, Terminated};
use super::volumes::{self, Volumes};
use super::{HOST_IP, NODE_NAME, Shared, env, image};
use crate::api::{Ctx, PatchType};
use crate::resources::GroupResource;

/// How soon a container whose configuration was incomplete (a missing Secret) tries again; a
/// change of a Secret, ConfigMap or ServiceAccount in the namespace retries at once.
const CONFIG_RETRY: Duration = Duration::from_secs(2);
/// How soon failed volume setups and status writes are retried.
const RETRY: Duration = Duration::from_secs(1);
/// The longest grace kubesim's own shutdown gives a container.
const SHUTDOWN_GRACE: i64 = 5;

pub enum Msg {
    /// The pod as stored now.
    Updated(Value),
    /// The pod is gone from the store.
    Removed,
    /// A Secret, ConfigMap or ServiceAccount of the namespace changed.
    Refresh,
    Exited {
        index: usize,
        run: u64,
        code: i32,
        signal: Option<i32>,
    },
    Probe {
        index: usize,
        run: u64,
        verdict: Verdict,
    },
    /// kubesim is stopping.
    Shutdown,
}

/// Why the pod's processes stop, in increasing precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ending {
    /// Deleted through the API: stop, write the final status, complete the delete.
    Deleting,
    /// Removed from the store behind the kubelet's back: just stop.
    Removed,
    /// kubesim exits.
    Shutdown,
}

pub struct Worker {
    sh: Arc<Shared>,
    pod: Value,
    uid: String,
    ns: String,
    name: String,
    dir: PathBuf,
    ip: String,
    start_time: String,
    volumes: Volumes,
    volume_error: Option<String>,
    volumes_dirty: bool,
    volume_retry: Option<Instant>,
    containers: Vec<Container>,
    conditions: Conditions,
    initialized: bool,
    terminal: Option<&'static str>,
    ending: Option<Ending>,
    done: bool,
    /// The status last written and the resourceVersion it got.
    written: Option<(Value, u64)>,
    write_retry: Option<Instant>,
    tx: UnboundedSender<Msg>,
    rx: UnboundedReceiver<Msg>,
}

/// Starts the worker of a pod the kubelet takes.
pub fn start(sh: Arc<Shared>, pod: Value) -> (UnboundedSender<Msg>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let meta = &pod["metadata"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let (uid, ns, name) = (text(&meta["uid"]), text(&meta["namespace"]), text(&meta["name"]));
    let dir = super::pod_dir(&sh.cfg.state_dir, &ns, &name, &uid);
    let mut containers = Vec::new();
    for c in pod["spec"]["initContainers"].as_array().into_iter().flatten() {
        let kind = if c["restartPolicy"] == "Always" { Kind::Sidecar } else { Kind::Init };
        containers.push(Container::new(c.clone(), kind, "PodInitializing"));
    }
    let has_init = !containers.is_empty();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        let mut main =
            Container::new(c.clone(), Kind::Main, if has_init { "PodInitializing" } else { "ContainerCreating" });
        if has_init {
            main.retry_at = None;
        }
        containers.push(main);
    }
    let worker = Worker {
        volumes: Volumes::new(dir.join("volumes")),
        sh,
        pod,
        uid,
        ns,
        name,
        dir,
        ip: String::new(),
        start_time: crate::api::now(),
        volume_error: None,
        volumes_dirty: true,
        volume_retry: None,
        containers,
        conditions: Conditions::default(),
        initialized: false,
        terminal: None,
        ending: None,
        done: false,
        written: None,
        write_retry: None,
        tx: tx.clone(),
        rx,
    };
    (tx, tokio::spawn(worker.run()))
}

fn rv_of(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl Worker {
    async fn run(mut self) {
        if !self.take() {
            return;
        }
        loop {
            self.step();
            if self.done {
                return;
            }
            let wake = self.wake();
            let sleep = async move {
                match wake {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(m) => self.on_msg(m),
                    None => self.begin_ending(Ending::Shutdown),
                },
                () = sleep => {}
            }
            while let Ok(m) = self.rx.try_recv() {
                self.on_msg(m);
            }
        }
    }

    fn pod_desc(&self) -> String {
        format!("{}_{}({})", self.name, self.ns, self.uid)
    }

    fn restart_policy(&self) -> &str {
        self.pod["spec"]["restartPolicy"].as_str().unwrap_or("Always")
    }

    fn grace_seconds(&self) -> i64 {
        self.pod["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30).max(0)
    }

    fn event(&self, kind: events::Kind, reason: &str, message: String, container: Option<&str>) {
        let field_path = container.map(|c| format!("spec.containers{{{c}}}"));
        events::record(&self.sh.cluster, &self.pod, Event { kind, reason, message, field_path, component: "kubelet" });
    }

    /// Binds the pod to the node (as the scheduler would) and allocates its IP. False when the
    /// pod is already gone.
    fn take(&mut self) -> bool {
        let cluster = &self.sh.cluster;
        if self.pod["spec"]["nodeName"].is_null()
            && let Some(rt) = cluster.registry().find_gr(&GroupResource::new("", "pods")).cloned()
        {
            let body = json!({"spec": {"nodeName": NODE_NAME}}).to_string();
            match cluster.patch(
                &Ctx::system("kubelet"),
                &rt,
                Some(&self.ns),
                &self.name,
                PatchType::Merge,
                body.as_bytes(),
                false,
                None,
            ) {
                Ok(out) => self.pod = out.object,
                Err(e) if e.code == 404 => return false,
                Err(e) => {
                    tracing::warn!(pod = %self.pod_desc(), error = %e.message, "binding the pod to the node failed")
                }
            }
        }
        self.ip = {
            let mut inner = cluster.lock();
            let n = inner.next_pod_ip;
            inner.next_pod_ip += 1;
            format!("127.2.{}.{}", (n / 250) % 256, n % 250 + 1)
        };
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            tracing::warn!(pod = %self.pod_desc(), error = %e, "creating the pod directory failed");
        }
        let now = crate::api::now();
        self.conditions.set("PodScheduled", true, None, None, &now);
        let message = format!("Successfully assigned {}/{} to {NODE_NAME}", self.ns, self.name);
        let scheduled = Event {
            kind: events::Kind::Normal,
            reason: "Scheduled",
            message,
            field_path: None,
            component: "default-scheduler",
        };
        events::record(cluster, &self.pod, scheduled);
        true
    }

    /// The pod as its containers see it: bound, with its IPs.
    fn view(&self) -> Value {
        let mut v = self.pod.clone();
        v["spec"]["nodeName"] = json!(NODE_NAME);
        v["status"]["podIP"] = json!(self.ip);
        v["status"]["podIPs"] = json!([{"ip": self.ip}]);
        v["status"]["hostIP"] = json!(HOST_IP);
        v["status"]["hostIPs"] = json!([{"ip": HOST_IP}]);
        v
    }

    fn on_msg(&mut self, msg: Msg) {
        match msg {
            Msg::Updated(pod) => {
                if rv_of(&pod) >= rv_of(&self.pod) {
                    self.pod = pod;
                    self.volumes_dirty = true;
                    self.apply_spec_changes();
                }
            }
            Msg::Removed => self.begin_ending(Ending::Removed),
            Msg::Refresh => {
                self.volumes_dirty = true;
                for c in &mut self.containers {
                    if matches!(&c.state, State::Waiting { reason, .. } if reason.starts_with("CreateContainer")) {
                        c.retry_at = Some(Instant::now());
                    }
                }
            }
            Msg::Exited { index, run, code, signal } => self.on_exit(index, run, code, signal),
            Msg::Probe { index, run, verdict } => self.on_probe(index, run, verdict),
            Msg::Shutdown => self.begin_ending(Ending::Shutdown),
        }
    }

    fn begin_ending(&mut self, ending: Ending) {
        self.ending = self.ending.max(Some(ending));
    }

    /// A container whose image changed is restarted with the new one (the only container field
    /// the API lets change), whatever the restart policy, as the real kubelet does.
    fn apply_spec_changes(&mut self) {
        let specs: Vec<Value> = ["initContainers", "containers"]
            .iter()
            .flat_map(|list| self.pod["spec"][*list].as_array().cloned().unwrap_or_default())
            .collect();
        let grace = Duration::from_secs(self.grace_seconds() as u64);
        let mut changed = Vec::new();
        for c in &mut self.containers {
            let Some(new) = specs.iter().find(|s| s["name"] == c.name.as_str()) else { continue };
            if new["image"] == c.spec["image"] {
                continue;
            }
            c.spec = new.clone();
            c.restart_now = true;
            if c.is_running() {
                c.stop(grace);
                changed.push(c.name.clone());
            } else if c.kind != Kind::Init || !c.completed() {
                c.wait("ContainerCreating", None, Some(Duration::ZERO));
            }
        }
        for name in changed {
            self.event(
                events::Kind::Normal,
                "Killing",
                format!("Container {name} definition changed, will be restarted"),
                Some(&name),
            );
        }
    }

    fn on_exit(&mut self, index: usize, run: u64, code: i32, signal: Option<i32>) {
        let pod = self.pod_desc();
        let policy = self.restart_policy().to_owned();
        let stopping = self.ending.is_some() || self.terminal.is_some();
        let Some(c) = self.containers.get_mut(index).filter(|c| c.run == run) else { return };
        let Some((term, ran)) = c.exited(code, signal, &crate::api::now()) else { return };
        let restart = !stopping && c.restarts_after(&policy, code);
        let backing_off = restart && !c.restart_now;
        let name = c.name.clone();
        c.after_exit(term, ran, restart, &pod);
        if backing_off {
            self.event(
                events::Kind::Warning,
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod}"),
                Some(&name),
            );
        }
    }

    fn on_probe(&mut self, index: usize, run: u64, verdict: Verdict) {
        let default_grace = self.grace_seconds();
        let Some(c) = self.containers.get_mut(index).filter(|c| c.run == run && c.is_running()) else { return };
        let name = c.name.clone();
        match verdict {
            Verdict::Started => c.started = true,
            Verdict::Ready(ready, message) => {
                c.probe_ready = ready;
                if let Some(m) = message {
                    self.event(events::Kind::Warning, "Unhealthy", format!("Readiness probe failed: {m}"), Some(&name));
                }
            }
            Verdict::Failed { probe, message, grace_seconds } => {
                c.stop(Duration::from_secs(grace_seconds.unwrap_or(default_grace).max(0) as u64));
                self.event(events::Kind::Warning, "Unhealthy", format!("{probe} probe failed: {message}"), Some(&name));
                let why = format!("Container {name} failed {} probe, will be restarted", probe.to_lowercase());
                self.event(events::Kind::Normal, "Killing", why, Some(&name));
            }
        }
    }

    fn step(&mut self) {
        let now = Instant::now();
        if !self.pod["metadata"]["deletionTimestamp"].is_null() {
            self.begin_ending(Ending::Deleting);
        }
        match self.ending {
            Some(ending) => self.stop_all(ending),
            None if self.terminal.is_none() => {
                let token_due = self.volumes.next_refresh().is_some_and(|t| t <= now);
                if self.volumes_dirty || token_due || self.volume_retry.is_some_and(|t| t <= now) {
                    self.sync_volumes();
                }
                self.start_due();
            }
            None => {}
        }
        for c in &mut self.containers {
            c.enforce_kill(now);
        }
        if matches!(self.ending, None | Some(Ending::Deleting)) {
            self.sync_status();
        }
        if let Some(ending) = self.ending
            && !self.containers.iter().any(Container::is_running)
        {
            self.finish(ending);
        }
    }

    fn sync_volumes(&mut self) {
        let view = self.view();
        let objects = InNamespace { cluster: &self.sh.cluster, namespace: &self.ns };
        let cx =
            volumes::Context { objects: &objects, pod: &view, auth: &self.sh.cfg.auth, ca_pem: &self.sh.cfg.ca_pem };
        let result = self.volumes.sync(&cx);
        self.volumes_dirty = false;
        match result {
            Ok(()) => {
                self.volume_retry = None;
                if self.volume_error.take().is_some() {
                    for c in self.containers.iter_mut().filter(|c| !c.is_running() && c.retry_at.is_none()) {
                        if matches!(&c.state, State::Waiting { reason, .. } if reason == "ContainerCreating") {
                            c.wait("ContainerCreating", None, Some(Duration::ZERO));
                        }
                    }
                }
            }
            Err(message) => {
                self.volume_retry = Some(Instant::now() + RETRY);
                if self.volume_error.as_ref() != Some(&message) {
                    self.event(events::Kind::Warning, "FailedMount", message.clone(), None);
                }
                for c in self.containers.iter_mut().filter(|c| !c.is_running() && !c.restarting() && !c.terminated()) {
                    if matches!(&c.state, State::Waiting { reason, .. } if reason == "ContainerCreating") {
                        c.wait("ContainerCreating", Some(message.clone()), None);
                    }
                }
                self.volume_error = Some(message);
            }
        }
    }

    /// The containers that may start now: init containers one at a time (a sidecar lets the
    /// next one go once started), then, once initialized, the regular containers.
    fn eligible(&self) -> Vec<usize> {
        if self.volume_error.is_some() || self.ending.is_some() || self.terminal.is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, c) in self.containers.iter().enumerate() {
            match c.kind {
                Kind::Main if self.initialized => out.push(i),
                Kind::Main => {}
                Kind::Init if c.completed() => {}
                Kind::Init | Kind::Sidecar => {
                    out.push(i);
                    let passed = c.kind == Kind::Sidecar && c.is_running() && c.started;
                    if !passed && !self.initialized {
                        break;
                    }
                }
            }
        }
        out
    }

    fn start_due(&mut self) {
        // Starting a sidecar or completing initialization can make more containers eligible;
        // each round starts something or stops, so the bound is never reached in practice.
        for _ in 0..=self.containers.len() {
            let now = Instant::now();
            let due: Vec<usize> = self.eligible().into_iter().filter(|i| self.containers[*i].due(now)).collect();
            for &i in &due {
                self.start_container(i);
            }
            if !self.update_initialized() && due.is_empty() {
                return;
            }
        }
    }

    /// Latches `initialized` once every init container completed (or, for sidecars, started);
    /// the regular containers then may start.
    fn update_initialized(&mut self) -> bool {
        if self.initialized {
            return false;
        }
        let passed = |c: &Container| match c.kind {
            Kind::Init => c.completed(),
            Kind::Sidecar => c.is_running() && c.started,
            Kind::Main => true,
        };
        if !self.containers.iter().all(passed) {
            return false;
        }
        self.initialized = true;
        for c in self.containers.iter_mut().filter(|c| c.kind == Kind::Main && !c.is_running()) {
            c.wait("ContainerCreating", None, Some(Duration::ZERO));
        }
        true
    }

    fn config_error(&mut self, index: usize, reason: &str, message: String) {
        let c = &mut self.containers[index];
        let same = matches!(&c.state, State::Waiting { reason: r, message: Some(m) } if r == reason && *m == message);
        c.wait(reason, Some(message.clone()), Some(CONFIG_RETRY));
        if !same {
            let name = c.name.clone();
            self.event(events::Kind::Warning, "Failed", format!("Error: {message}"), Some(&name));
        }
    }

    fn start_container(&mut self, index: usize) {
        let sh = self.sh.clone();
        let spec = self.containers[index].spec.clone();
        let name = self.containers[index].name.clone();
        let image = self.containers[index].image().to_owned();
        let Some(entrypoint) = image::resolve(&sh.cfg.images, &image) else {
            let message = image::unmapped_message(&image);
            let c = &mut self.containers[index];
            let first = !matches!(&c.state, State::Waiting { reason, .. } if reason == "ErrImagePull");
            c.wait("ErrImagePull", Some(message.clone()), None);
            if first {
                self.event(
                    events::Kind::Warning,
                    "Failed",
                    format!("Failed to pull image {image:?}: {message}"),
                    Some(&name),
                );
            }
            return;
        };
        let view = self.view();
        let objects = InNamespace { cluster: &sh.cluster, namespace: &self.ns };
        let hostname: String = self.pod["spec"]["hostname"].as_str().unwrap_or(&self.name).chars().take(63).collect();
        let mut env = match env::container_env(&objects, &view, &spec, &sh.api_endpoint()) {
            Ok(env) => env,
            Err(message) => return self.config_error(index, "CreateContainerConfigError", message),
        };
        // Container runtimes set HOSTNAME unless the spec does.
        if !env.iter().any(|(k, _)| k == "HOSTNAME") {
            env.push(("HOSTNAME".into(), hostname.clone()));
        }
        let mounts = match self.volumes.mounts(&objects, &view, &spec) {
            Ok(m) => m,
            Err(message) => return self.config_error(index, "CreateContainerConfigError", message),
        };
        let command = env::expand_words(&spec["command"], &env);
        let args = env::expand_words(&spec["args"], &env);
        let line = image::command_line(entrypoint, &command, &args);
        let log = super::log_path(&sh.cfg.state_dir, &self.ns, &self.name, &self.uid, &name);
        let launch = Launch {
            program: &line.program,
            args: &line.args,
            env: &env,
            cwd: &self.dir,
            log: &log,
            mounts: &mounts,
            hostname: &hostname,
        };
        let now = crate::api::now();
        let child = match process::spawn(&launch) {
            Ok(child) => child,
            Err(SpawnError::Create(message)) => return self.config_error(index, "CreateContainerError", message),
            Err(SpawnError::Start(message)) => {
                self.event(events::Kind::Warning, "Failed", format!("Error: {message}"), Some(&name));
                let term = Terminated {
                    exit_code: 128,
                    signal: None,
                    reason: "StartError".into(),
                    message: Some(message),
                    started_at: None,
                    finished_at: now,
                    container_id: None,
                };
                let policy = self.restart_policy().to_owned();
                let pod = self.pod_desc();
                let c = &mut self.containers[index];
                // A start that fails backs off even after an image change.
                c.restart_now = false;
                let restart = c.restarts_after(&policy, 128);
                c.after_exit(term, Duration::ZERO, restart, &pod);
                return;
            }
        };
        let pid = child.id().unwrap_or(0);
        let c = &mut self.containers[index];
        c.run += 1;
        let run = c.run;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            let mut child = child;
            let (code, signal) = match child.wait().await {
                Ok(status) => process::exit_code(&status),
                Err(_) => (-1, None),
            };
            let _ = tx.send(Msg::Exited { index, run, code, signal });
        });
        let probes = Probes::parse(&spec, &self.ip).unwrap_or_else(|e| {
            tracing::warn!(pod = %self.pod_desc(), container = %name, error = %e, "ignoring an invalid probe");
            Probes::default()
        });
        let probe_task = (!probes.is_empty()).then(|| {
            let tx = self.tx.clone();
            let target = Target { pid, env: env.clone(), cwd: self.dir.clone() };
            let report = move |verdict| {
                let _ = tx.send(Msg::Probe { index, run, verdict });
            };
            AbortOnDrop(tokio::spawn(probes::run(probes, target, report)))
        });
        let image_id = format!("kubesim://{}", entrypoint.display());
        self.containers[index].started_process(pid, probe_task, image_id, &now);
        let normal = events::Kind::Normal;
        self.event(normal, "Pulled", format!("Container image {image:?} already present on machine"), Some(&name));
        self.event(normal, "Created", format!("Created container: {name}"), Some(&name));
        self.event(normal, "Started", format!("Started container {name}"), Some(&name));
    }

    fn stop_all(&mut self, ending: Ending) {
        let grace = match ending {
            Ending::Deleting => {
                self.pod["metadata"]["deletionGracePeriodSeconds"].as_i64().unwrap_or_else(|| self.grace_seconds())
            }
            Ending::Removed => self.grace_seconds(),
            Ending::Shutdown => self.grace_seconds().min(SHUTDOWN_GRACE),
        };
        let grace = Duration::from_secs(grace.max(0) as u64);
        let mut stopping = Vec::new();
        for c in &mut self.containers {
            if c.proc.as_ref().is_some_and(|p| p.kill_at.is_none()) {
                stopping.push(c.name.clone());
            }
            c.stop(grace);
            // Nothing restarts any more.
            if !c.is_running() && matches!(c.state, State::Waiting { .. }) {
                c.retry_at = None;
            }
        }
        if ending == Ending::Deleting {
            for name in stopping {
                self.event(events::Kind::Normal, "Killing", format!("Stopping container {name}"), Some(&name));
            }
        }
    }

    /// Every process is gone: complete the deletion (the final status was just written).
    fn finish(&mut self, ending: Ending) {
        if ending != Ending::Shutdown {
            self.volumes.remove();
        }
        if ending == Ending::Deleting {
            self.sh.cluster.finish_delete(&GroupResource::new("", "pods"), Some(&self.ns), &self.name, &self.uid);
        }
        self.done = true;
    }

    fn wake(&self) -> Option<Instant> {
        let eligible = self.eligible();
        let retries = eligible.iter().filter_map(|i| {
            let c = &self.containers[*i];
            c.retry_at.filter(|_| !c.is_running() && matches!(c.state, State::Waiting { .. }))
        });
        let kills = self.containers.iter().filter_map(Container::kill_at);
        let active = self.ending.is_none() && self.terminal.is_none();
        let volumes =
            if active { self.volume_retry.into_iter().chain(self.volumes.next_refresh()).min() } else { None };
        let writes = if matches!(self.ending, None | Some(Ending::Deleting)) { self.write_retry } else { None };
        retries.chain(kills).chain(volumes).chain(writes).min()
    }

    fn compute_status(&mut self) -> Value {
        let now = crate::api::now();
        let mains: Vec<&Container> = self.containers.iter().filter(|c| c.kind == Kind::Main).collect();
        let inputs: Vec<PhaseInput> =
            mains.iter().map(|c| PhaseInput { state: &c.state, restarting: c.restarting() }).collect();
        let init_failed = self.containers.iter().any(|c| c.kind == Kind::Init && c.terminated() && !c.completed());
        let mut phase = status::phase(self.restart_policy(), init_failed, self.initialized, &inputs);
        let all_stopped = !self.containers.iter().any(Container::is_running);
        if self.ending == Some(Ending::Deleting) && all_stopped && !matches!(phase, "Succeeded" | "Failed") {
            // A deleted pod ends in a terminal phase before it goes, as with the real kubelet.
            phase = if mains.iter().all(|c| c.completed()) { "Succeeded" } else { "Failed" };
        }
        match self.terminal {
            Some(t) => phase = t,
            None if matches!(phase, "Succeeded" | "Failed") => self.terminal = Some(phase),
            None => {}
        }
        let terminal = self.terminal.is_some();
        let names = |f: &dyn Fn(&Container) -> bool| -> Vec<String> {
            self.containers.iter().filter(|c| f(c)).map(|c| c.name.clone()).collect()
        };
        let incomplete = names(&|c| match c.kind {
            Kind::Init => !c.completed(),
            Kind::Sidecar => !(c.is_running() && c.started),
            Kind::Main => false,
        });
        let unready = names(&|c| c.kind != Kind::Init && !c.ready());
        let gates = self.unready_gates();
        let statuses = |kinds: &[Kind]| -> Vec<Value> {
            self.containers.iter().filter(|c| kinds.contains(&c.kind)).map(Container::status_json).collect()
        };
        let (main_statuses, init_statuses) = (statuses(&[Kind::Main]), statuses(&[Kind::Init, Kind::Sidecar]));

        let cond = &mut self.conditions;
        cond.set("PodReadyToStartContainers", self.volume_error.is_none() && !terminal, None, None, &now);
        let not_init =
            (!self.initialized).then(|| format!("containers with incomplete status: [{}]", incomplete.join(" ")));
        cond.set(
            "Initialized",
            self.initialized,
            not_init.as_ref().map(|_| "ContainersNotInitialized"),
            not_init.clone(),
            &now,
        );
        let (ready, reason, message) = if terminal {
            (false, Some("PodCompleted"), None)
        } else if unready.is_empty() {
            (true, None, None)
        } else {
            (
                false,
                Some("ContainersNotReady"),
                Some(format!("containers with unready status: [{}]", unready.join(" "))),
            )
        };
        cond.set("ContainersReady", ready, reason, message.clone(), &now);
        match gates {
            Some(why) if ready => cond.set("Ready", false, Some("ReadinessGatesNotReady"), Some(why), &now),
            _ => cond.set("Ready", ready, reason, message, &now),
        }

        let mut status = self.pod["status"].as_object().cloned().unwrap_or_default();
        let foreign: Vec<Value> = status
            .get("conditions")
            .and_then(Value::as_array)
            .map(|cs| cs.iter().filter(|c| !CONDITION_TYPES.iter().any(|t| c["type"] == *t)).cloned().collect())
            .unwrap_or_default();
        for key in ["message", "reason", "initContainerStatuses"] {
            status.remove(key);
        }
        let mut conditions = self.conditions.to_json();
        if let Some(list) = conditions.as_array_mut() {
            list.extend(foreign);
        }
        if let Some(generation) = self.pod["metadata"]["generation"].as_i64() {
            status.insert("observedGeneration".into(), json!(generation));
        }
        status.insert("phase".into(), json!(phase));
        status.insert("conditions".into(), conditions);
        status.insert("hostIP".into(), json!(HOST_IP));
        status.insert("hostIPs".into(), json!([{"ip": HOST_IP}]));
        status.insert("podIP".into(), json!(self.ip));
        status.insert("podIPs".into(), json!([{"ip": self.ip}]));
        status.insert("startTime".into(), json!(self.start_time));
        status.insert("containerStatuses".into(), json!(main_statuses));
        if !init_statuses.is_empty() {
            status.insert("initContainerStatuses".into(), json!(init_statuses));
        }
        Value::Object(status)
    }

    /// Why the pod's readiness gates hold it back, if they do.
    fn unready_gates(&self) -> Option<String> {
        let conditions = self.pod["status"]["conditions"].as_array();
        self.pod["spec"]["readinessGates"].as_array().into_iter().flatten().find_map(|g| {
            let kind = g["conditionType"].as_str().unwrap_or_default();
            match conditions.and_then(|cs| cs.iter().find(|c| c["type"] == kind)) {
                None => Some(format!("corresponding condition of pod readiness gate {kind:?} does not exist.")),
                Some(c) if c["status"] != "True" => Some(format!(
                    "the status of pod readiness gate {kind:?} is not \"True\", but {}",
                    c["status"].as_str().unwrap_or_default()
                )),
                Some(_) => None,
            }
        })
    }

    /// Writes the status when it differs from what was last written (or someone else changed
    /// it since): recomputing an unchanged pod costs no write.
    fn sync_status(&mut self) {
        let status = self.compute_status();
        let live_rv = rv_of(&self.pod);
        let needed = match &self.written {
            Some((w, rv)) => *w != status || (self.pod["status"] != status && live_rv > *rv),
            None => self.pod["status"] != status,
        };
        if !needed || self.write_retry.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let cluster = &self.sh.cluster;
        let Some(rt) = cluster.registry().find_gr(&GroupResource::new("", "pods")).cloned() else { return };
        // A merge patch would keep keys the new status dropped (a waiting state's message):
        // replace the status whole.
        let body = json!([{"op": "add", "path": "/status", "value": status}]).to_string();
        match cluster.patch(
            &Ctx::system("kubelet"),
            &rt,
            Some(&self.ns),
            &self.name,
            PatchType::Json,
            body.as_bytes(),
            false,
            Some("status"),
        ) {
            Ok(out) => {
                self.write_retry = None;
                let rv = rv_of(&out.object);
                if rv >= live_rv {
                    self.pod = out.object;
                }
                self.written = Some((status, rv));
            }
            Err(e) if e.code == 404 => self.begin_ending(Ending::Removed),
            Err(e) => {
                tracing::warn!(pod = %self.pod_desc(), error = %e.message, "writing the pod status failed");
                self.write_retry = Some(Instant::now() + RETRY);
            }
        }
    }
}
