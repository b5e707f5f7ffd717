//! A real OpenBao's kubernetes auth method pointed at kubesim: the login path calls
//! TokenReview with a reviewer service account's token.

mod common;

use common::{OpenBao, Sim};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openbao_kubernetes_login_goes_through_token_review() {
    let sim = Sim::start().await;
    let ns = format!("vault-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    sim.kubectl_ok(&["create", "namespace", &ns], None);
    for sa in ["operator", "stranger"] {
        sim.kubectl_ok(&["-n", &ns, "create", "serviceaccount", sa], None);
    }
    let token = |sa: &str| sim.kubectl_ok(&["-n", &ns, "create", "token", sa], None).trim().to_owned();
    let bao = OpenBao::from_env();
    let mount = format!("k8s-{ns}");
    bao.enable_kubernetes_auth(&sim, &ns, &mount).await;
    let role = json!({"bound_service_account_names": ["operator"], "bound_service_account_namespaces": [ns], "token_policies": ["default"], "token_ttl": "10m"});
    bao.ok(reqwest::Method::POST, &format!("auth/{mount}/role/op"), role).await;

    let (c, b) = bao
        .call(
            reqwest::Method::POST,
            &format!("auth/{mount}/login"),
            None,
            json!({"role": "op", "jwt": token("operator")}),
        )
        .await;
    assert_eq!(c, 200, "login: {b}");
    assert!(b["auth"]["client_token"].as_str().is_some_and(|t| !t.is_empty()), "{b}");
    assert_eq!(b["auth"]["metadata"]["service_account_name"], "operator");

    let (c, b) = bao
        .call(
            reqwest::Method::POST,
            &format!("auth/{mount}/login"),
            None,
            json!({"role": "op", "jwt": token("stranger")}),
        )
        .await;
    assert!(c >= 400, "a service account the role does not bind is refused: {c} {b}");

    let reviews: Vec<Value> = sim.requests().into_iter().filter(|r| r["resource"] == "tokenreviews").collect();
    assert!(!reviews.is_empty(), "OpenBao called TokenReview");
    assert!(
        reviews.iter().all(|r| r["user"] == format!("system:serviceaccount:{ns}:reviewer") && r["code"] == 201),
        "{reviews:?}"
    );
    let _ = bao.call(reqwest::Method::DELETE, &format!("sys/auth/{mount}"), None, Value::Null).await;
}
