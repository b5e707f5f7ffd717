//! Probes: httpGet (a raw HTTP/1.1 GET), tcpSocket and exec checks with the real thresholds.
//! Readiness drives the container's `ready`; liveness and startup failures get it killed. Until
//! the first success a probe runs every 200 ms instead of every `periodSeconds`, so that tests
//! see pods become ready quickly; a startup probe still gets its whole
//! `failureThreshold × periodSeconds` to succeed.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process;

/// How often a probe runs before its first success.
const FAST: Duration = Duration::from_millis(200);
/// How much of an HTTP response is read (the real prober reads 10 KiB too).
const MAX_RESPONSE: usize = 10 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Http { host: String, port: u16, path: String, headers: Vec<(String, String)>, https: bool },
    Tcp { host: String, port: u16 },
    Exec { argv: Vec<String> },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Probe {
    pub action: Action,
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    /// The probe's own `terminationGracePeriodSeconds` for the kill it causes.
    pub grace_seconds: Option<i64>,
}

/// What runs the checks of an exec probe: inside the container's process, with its env.
pub struct Target {
    pub pid: u32,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// A container's probes.
#[derive(Default)]
pub struct Probes {
    pub startup: Option<Probe>,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
}

/// What the probes tell the pod worker (only changes, never each check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The startup probe succeeded: liveness and readiness probing begins.
    Started,
    /// Readiness changed; a message says why it was lost.
    Ready(bool, Option<String>),
    /// A liveness or startup probe failed `failureThreshold` times: the container must go.
    Failed { probe: &'static str, message: String, grace_seconds: Option<i64> },
}

impl Probes {
    pub fn parse(container: &Value, pod_ip: &str) -> Result<Probes, String> {
        let one = |field: &str| Probe::parse(&container[field], container, pod_ip).map_err(|e| format!("{field}: {e}"));
        Ok(Probes { startup: one("startupProbe")?, readiness: one("readinessProbe")?, liveness: one("livenessProbe")? })
    }

    pub fn is_empty(&self) -> bool {
        self.startup.is_none() && self.readiness.is_none() && self.liveness.is_none()
    }
}

impl Probe {
    /// A probe from its spec (None when there is none); named ports resolve against `container`.
    pub fn parse(spec: &Value, container: &Value, pod_ip: &str) -> Result<Option<Probe>, String> {
        if !spec.is_object() {
            return Ok(None);
        }
        let host = |h: &Value| h.as_str().filter(|h| !h.is_empty()).unwrap_or(pod_ip).to_owned();
        let action = if spec["httpGet"].is_object() {
            let h = &spec["httpGet"];
            let path = h["path"].as_str().filter(|p| !p.is_empty()).unwrap_or("/");
            let headers = h["httpHeaders"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|x| {
                    (
                        x["name"].as_str().unwrap_or_default().to_owned(),
                        x["value"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            Action::Http {
                host: host(&h["host"]),
                port: port(&h["port"], container)?,
                path: if path.starts_with('/') { path.to_owned() } else { format!("/{path}") },
                headers,
                https: h["scheme"].as_str().is_some_and(|s| s.eq_ignore_ascii_case("HTTPS")),
            }
        } else if spec["tcpSocket"].is_object() {
            Action::Tcp { host: host(&spec["tcpSocket"]["host"]), port: port(&spec["tcpSocket"]["port"], container)? }
        } else if spec["grpc"].is_object() {
            // No gRPC client here: a connectable port stands for a serving health service.
            Action::Tcp { host: pod_ip.to_owned(), port: port(&spec["grpc"]["port"], container)? }
        } else if let Some(cmd) = spec["exec"]["command"].as_array() {
            Action::Exec { argv: cmd.iter().map(|w| w.as_str().unwrap_or_default().to_owned()).collect() }
        } else {
            return Err("a probe needs one of httpGet, tcpSocket, grpc or exec".into());
        };
        let secs =
            |field: &str, default: u64, min: u64| Duration::from_secs(spec[field].as_u64().unwrap_or(default).max(min));
        let count = |field: &str| spec[field].as_u64().map_or(0, |n| n as u32);
        Ok(Some(Probe {
            action,
            initial_delay: secs("initialDelaySeconds", 0, 0),
            period: secs("periodSeconds", 10, 1),
            timeout: secs("timeoutSeconds", 1, 1),
            success_threshold: count("successThreshold").max(1),
            failure_threshold: if count("failureThreshold") == 0 { 3 } else { count("failureThreshold") },
            grace_seconds: spec["terminationGracePeriodSeconds"].as_i64(),
        }))
    }

    /// One check. The error is the message the real prober gives.
    pub async fn check(&self, target: &Target) -> Result<(), String> {
        match &self.action {
            Action::Http { host, port, path, headers, https } => {
                let scheme = if *https { "https" } else { "http" };
                let url = format!("{scheme}://{host}:{port}{path}");
                let request = async {
                    let mut stream = connect(host, *port).await?;
                    if *https {
                        // No TLS client here: an HTTPS endpoint that accepts connections passes.
                        return Ok(());
                    }
                    stream
                        .write_all(request(host, *port, path, headers).as_bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                    let mut buf = Vec::new();
                    let _ = (&mut stream).take(MAX_RESPONSE as u64).read_to_end(&mut buf).await;
                    let code = parse_status_line(&buf)?;
                    if (200..400).contains(&code) {
                        Ok(())
                    } else {
                        Err(format!("HTTP probe failed with statuscode: {code}"))
                    }
                };
                match tokio::time::timeout(self.timeout, request).await {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) if e.starts_with("HTTP probe") => Err(e),
                    Ok(Err(e)) => Err(format!("Get \"{url}\": {e}")),
                    Err(_) => Err(format!(
                        "Get \"{url}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
                    )),
                }
            }
            Action::Tcp { host, port } => match tokio::time::timeout(self.timeout, connect(host, *port)).await {
                Ok(r) => r.map(drop),
                Err(_) => Err(format!("dial tcp {host}:{port}: i/o timeout")),
            },
            Action::Exec { argv } => {
                let (code, output) = process::exec_in(target.pid, argv, &target.env, &target.cwd, self.timeout).await?;
                if code == 0 {
                    Ok(())
                } else {
                    Err(format!("command {argv:?} exited with {code}: {}", output.trim_end()))
                }
            }
        }
    }
}

async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    TcpStream::connect((host, port)).await.map_err(|e| format!("dial tcp {host}:{port}: connect: {e}"))
}

/// A port given as a number, a numeric string, or the name of one of the container's ports.
fn port(v: &Value, container: &Value) -> Result<u16, String> {
    let named = |name: &str| {
        container["ports"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .and_then(|p| p["containerPort"].as_u64())
    };
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok().or_else(|| named(s)),
        _ => None,
    };
    n.and_then(|n| u16::try_from(n).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("port {v} not found in the container's ports"))
}

/// The request the real prober sends; `headers` replace its defaults by name.
fn request(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> String {
    let mut all: Vec<(String, String)> = vec![
        ("Host".into(), format!("{host}:{port}")),
        ("User-Agent".into(), "kube-probe/1.35".into()),
        ("Accept".into(), "*/*".into()),
    ];
    for (name, value) in headers {
        match all.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
            Some(slot) => slot.1 = value.clone(),
            None => all.push((name.clone(), value.clone())),
        }
    }
    all.push(("Connection".into(), "close".into()));
    let mut out = format!("GET {path} HTTP/1.1\r\n");
    for (n, v) in all {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out
}

/// The status code of an HTTP/1.x response.
pub fn parse_status_line(buf: &[u8]) -> Result<u16, String> {
    let line_end = buf.iter().position(|b| *b == b'\n').unwrap_or(buf.len());
    let line = String::from_utf8_lossy(&buf[..line_end]);
    let mut words = line.split_whitespace();
    match (words.next(), words.next().and_then(|c| c.parse::<u16>().ok())) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => Ok(code),
        _ if buf.is_empty() => Err("EOF".into()),
        _ => Err(format!("malformed HTTP response {:?}", line.trim_end())),
    }
}

/// Runs a container's probes until the task is dropped, reporting changes through `report`.
pub async fn run(probes: Probes, target: Target, report: impl Fn(Verdict) + Send + Sync) {
    if let Some(startup) = &probes.startup {
        match until_started(startup, &target).await {
            Ok(()) => report(Verdict::Started),
            Err(message) => {
                report(Verdict::Failed { probe: "Startup", message, grace_seconds: startup.grace_seconds });
                return;
            }
        }
    }
    let readiness = async {
        if let Some(p) = &probes.readiness {
            readiness_loop(p, &target, &report).await;
        }
    };
    let liveness = async {
        if let Some(p) = &probes.liveness {
            let message = liveness_loop(p, &target).await;
            report(Verdict::Failed { probe: "Liveness", message, grace_seconds: p.grace_seconds });
        }
    };
    tokio::join!(readiness, liveness);
}

async fn until_started(p: &Probe, target: &Target) -> Result<(), String> {
    tokio::time::sleep(p.initial_delay).await;
    let budget = p.period * p.failure_threshold;
    let start = tokio::time::Instant::now();
    loop {
        match p.check(target).await {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() >= budget => return Err(e),
            Err(_) => tokio::time::sleep(FAST).await,
        }
    }
}

async fn readiness_loop(p: &Probe, target: &Target, report: &(impl Fn(Verdict) + Send + Sync)) {
    tokio::time::sleep(p.initial_delay).await;
    let (mut ready, mut ever) = (false, false);
    let (mut successes, mut failures) = (0, 0);
    loop {
        match p.check(target).await {
            Ok(()) => {
                ever = true;
                failures = 0;
                successes += 1;
                if !ready && successes >= p.success_threshold {
                    ready = true;
                    report(Verdict::Ready(true, None));
                }
            }
            Err(e) => {
                successes = 0;
                failures += 1;
                if ready && failures >= p.failure_threshold {
                    ready = false;
                    report(Verdict::Ready(false, Some(e)));
                }
            }
        }
        tokio::time::sleep(if ever { p.period } else { FAST }).await;
    }
}

/// Returns the last failure's message once `failureThreshold` checks in a row failed.
async fn liveness_loop(p: &Probe, target: &Target) -> String {
    tokio::time::sleep(p.initial_delay).await;
    let mut failures = 0;
    loop {
        match p.check(target).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                if failures >= p.failure_threshold {
                    return e;
                }
            }
        }
        tokio::time::sleep(p.period).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::net::TcpListener;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), Ok(200));
        assert_eq!(parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\n"), Ok(503));
        assert_eq!(parse_status_line(b"HTTP/1.1 301"), Ok(301));
        assert_eq!(parse_status_line(b""), Err("EOF".into()));
        assert!(parse_status_line(b"SSH-2.0-OpenSSH\r\n").is_err());
    }

    #[test]
    fn specs_with_defaults_and_named_ports() {
        let c = json!({"ports": [{"name": "http", "containerPort": 8080}]});
        let headers = json!([{"name": "user-agent", "value": "me"}]);
        let spec = json!({"httpGet": {"path": "healthz", "port": "http", "httpHeaders": headers}});
        let p = Probe::parse(&spec, &c, "127.2.0.1").unwrap().unwrap();
        assert_eq!(p.period, Duration::from_secs(10));
        assert_eq!(p.timeout, Duration::from_secs(1));
        assert_eq!((p.success_threshold, p.failure_threshold), (1, 3));
        let Action::Http { host, port, path, headers, https } = &p.action else { panic!("{p:?}") };
        assert_eq!((host.as_str(), *port, path.as_str(), *https), ("127.2.0.1", 8080, "/healthz", false));
        let req = request(host, *port, path, headers);
        assert!(req.starts_with("GET /healthz HTTP/1.1\r\nHost: 127.2.0.1:8080\r\nUser-Agent: me\r\n"), "{req}");
        assert!(req.ends_with("Connection: close\r\n\r\n"));
        assert_eq!(Probe::parse(&Value::Null, &c, "x").unwrap(), None);
        assert!(Probe::parse(&json!({"tcpSocket": {"port": "nope"}}), &c, "x").is_err());
        assert!(Probe::parse(&json!({"periodSeconds": 1}), &c, "x").is_err());
        let tcp = Probe::parse(&json!({"tcpSocket": {"port": 5432}, "failureThreshold": 1}), &c, "h").unwrap().unwrap();
        assert_eq!((tcp.action, tcp.failure_threshold), (Action::Tcp { host: "h".into(), port: 5432 }, 1));
    }

    #[tokio::test]
    async fn http_checks_against_a_server() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            for code in [200, 500] {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                assert!(buf[..n].starts_with(b"GET /ready HTTP/1.1\r\n"));
                s.write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\n\r\nok").as_bytes()).await.unwrap();
            }
        });
        let probe = Probe::parse(&json!({"httpGet": {"path": "/ready", "port": port}}), &json!({}), "127.0.0.1")
            .unwrap()
            .unwrap();
        let target = Target { pid: 0, env: Vec::new(), cwd: PathBuf::from("/") };
        assert_eq!(probe.check(&target).await, Ok(()));
        assert_eq!(probe.check(&target).await, Err("HTTP probe failed with statuscode: 500".into()));
        let closed = Probe::parse(&json!({"tcpSocket": {"port": 1}}), &json!({}), "127.0.0.1").unwrap().unwrap();
        assert!(closed.check(&target).await.unwrap_err().starts_with("dial tcp 127.0.0.1:1: connect:"));
    }
}
