//! The real Helm 3 and Helm 4 against kubesim: a chart whose Deployment runs a mapped image
//! becomes Ready, answers through its Service, rolls on a Secret change, rolls back, and
//! uninstalls without leftovers.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{Sim, eventually};

/// The real python3 binary (not a shim script): the chart's image runs `python3 -m http.server`.
fn python3() -> PathBuf {
    let out = Command::new("python3")
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .expect("python3 is installed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn chart() -> String {
    common::repo_root().join("kubesim/tests/fixtures/web").display().to_string()
}

/// GET `path` from `addr` with a plain HTTP/1.0 request; the body, or None.
fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.0 200").then(|| body.to_owned())
}

async fn install_upgrade_rollback_uninstall(helm: &str) {
    let sim = Sim::start_with(vec![("web".into(), python3())]).await;
    let out = sim.helm(helm, &["install", "site", &chart(), "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "helm install: {}", String::from_utf8_lossy(&out.stderr));
    let svc = sim.kubectl_json(&["get", "service", "site"]);
    let addr = format!("{}:80", svc["spec"]["clusterIP"].as_str().unwrap());
    assert_eq!(http_get(&addr, "/index.html").as_deref(), Some("hello"), "served through the Service");
    let d = sim.kubectl_json(&["get", "deployment", "site"]);
    assert_eq!(d["status"]["readyReplicas"], 2, "{d}");

    let out = sim.helm(helm, &["upgrade", "site", &chart(), "--set", "message=bonjour", "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "helm upgrade: {}", String::from_utf8_lossy(&out.stderr));
    eventually(30, "the new page through the Service", || (http_get(&addr, "/index.html")? == "bonjour").then_some(()))
        .await;
    let rs = sim.kubectl_json(&["get", "replicasets", "-l", "app=site"]);
    assert_eq!(rs["items"].as_array().unwrap().len(), 2, "one ReplicaSet per template: {rs}");
    let pods = sim.kubectl_json(&["get", "pods", "-l", "app=site"]);
    eventually(30, "old pods gone", || {
        let pods = sim.kubectl_json(&["get", "pods", "-l", "app=site"]);
        (pods["items"].as_array()?.len() == 2).then_some(())
    })
    .await;
    drop(pods);

    let out = sim.helm(helm, &["rollback", "site", "1", "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "helm rollback: {}", String::from_utf8_lossy(&out.stderr));
    eventually(30, "the first page again", || (http_get(&addr, "/index.html")? == "hello").then_some(())).await;

    let out = sim.helm(helm, &["uninstall", "site", "--wait", "--timeout", "60s"]);
    assert!(out.status.success(), "helm uninstall: {}", String::from_utf8_lossy(&out.stderr));
    eventually(30, "nothing left of the release", || {
        let left = sim.kubectl_ok(&["get", "deployments,replicasets,pods,services,secrets", "-o", "name"], None);
        let leftovers: Vec<&str> = left.lines().filter(|l| !l.contains("kubernetes")).collect();
        leftovers.is_empty().then_some(())
    })
    .await;
    assert!(http_get(&addr, "/index.html").is_none(), "the Service's port is closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm4_chart_lifecycle() {
    install_upgrade_rollback_uninstall("PINAK_HELM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm3_chart_lifecycle() {
    install_upgrade_rollback_uninstall("PINAK_HELM3").await;
}
