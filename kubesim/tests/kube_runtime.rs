//! kube-rs's watcher and Controller against kubesim: watch resume, 410 Gone → relist, and
//! a reconciler that converges.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Sim;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::{WatchStreamExt, watcher};

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap()
}

async fn admin_post(sim: &Sim, client: &kube::Client, path: &str) {
    let req = http::Request::post(path).body(Vec::new()).unwrap();
    client.request_text(req).await.unwrap_or_else(|e| panic!("POST {path} on {}: {e}", sim.kubesim().address));
}

/// Waits (15 s at most) until the watcher reports `want`.
async fn next(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<String>,
    want: &str,
) -> Result<(), tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(15), async { while rx.recv().await.expect("watcher alive") != want {} })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watcher_resumes_and_relists_after_gone() {
    let sim = Sim::start().await;
    let client = common::kube_client(&sim).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let w = watcher(api.clone(), watcher::Config::default()).default_backoff().applied_objects();
    tokio::spawn(async move {
        let mut w = std::pin::pin!(w);
        while let Some(ev) = w.next().await {
            if let Ok(o) = ev {
                let _ = tx.send(o.metadata.name.unwrap_or_default());
            }
        }
    });
    api.create(&PostParams::default(), &cm("a")).await.unwrap();
    next(&mut rx, "a").await.expect("watcher sees a");
    // Cut every watch and hold the watcher's reconnect, while a change lands and the history is
    // forgotten: the resume from its old resourceVersion gets 410 and it relists. The hold is
    // long (5 s) because the three calls below must all land inside it: with 1.5 s, a loaded
    // machine let the reconnect through first, and the watcher then saw "b" without a relist.
    let fault = serde_json::json!({"path": "/api/v1/namespaces/default/configmaps", "method": "GET", "count": 1, "delayMs": 5000});
    let req = http::Request::post("/kubesim/faults")
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&fault).unwrap())
        .unwrap();
    client.request_text(req).await.expect("fault accepted");
    admin_post(&sim, &client, "/kubesim/drop-watches").await;
    api.create(&PostParams::default(), &cm("mid")).await.unwrap();
    admin_post(&sim, &client, "/kubesim/compact").await;
    api.create(&PostParams::default(), &cm("b")).await.unwrap();
    next(&mut rx, "b").await.expect("watcher sees b after the relist");
    let lists = sim
        .requests()
        .into_iter()
        .filter(|r| r["verb"] == "list" && r["resource"] == "configmaps" && r["code"] == 200)
        .count();
    assert!(lists >= 2, "the 410 forced a relist ({lists} lists)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_controller_reconciles_through_server_side_apply() {
    let sim = Sim::start().await;
    let client = common::kube_client(&sim).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let reconcile = |obj: Arc<ConfigMap>, api: Arc<Api<ConfigMap>>| async move {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let patch = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"seen": "yes"}});
        api.patch(&name, &PatchParams::apply("test-controller").force(), &Patch::Apply(&patch)).await?;
        Ok::<_, kube::Error>(Action::await_change())
    };
    let ctl_api = api.clone();
    tokio::spawn(
        Controller::new(api.clone(), watcher::Config::default())
            .run(reconcile, |_, _, _| Action::requeue(Duration::from_secs(1)), Arc::new(ctl_api))
            .for_each(|_| async {}),
    );
    api.create(&PostParams::default(), &cm("x")).await.unwrap();
    let marked = async {
        loop {
            let got = api.get("x").await.unwrap();
            if got.data.and_then(|d| d.get("seen").cloned()).as_deref() == Some("yes") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(15), marked).await.expect("the controller marks x");
    // Steady state: the controller's no-op applies do not change the object again.
    let rv = api.get("x").await.unwrap().metadata.resource_version;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(api.get("x").await.unwrap().metadata.resource_version, rv);
}
