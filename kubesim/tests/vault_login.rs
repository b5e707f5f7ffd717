//! A real OpenBao's kubernetes auth method pointed at kubesim: the login path calls
//! TokenReview with a reviewer service account's token.

mod common;

use common::Sim;
use serde_json::{Value, json};

fn vault() -> (String, String) {
    let addr = std::env::var("PINAK_TEST_VAULT_ADDR")
        .expect("PINAK_TEST_VAULT_ADDR is not set: run the suite with scripts/test");
    let token = std::env::var("PINAK_TEST_VAULT_TOKEN").expect("PINAK_TEST_VAULT_TOKEN is not set");
    (addr, token)
}

async fn bao(method: reqwest::Method, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    let (addr, root) = vault();
    let req = reqwest::Client::new()
        .request(method, format!("{addr}/v1/{path}"))
        .header("X-Vault-Token", token.unwrap_or(&root))
        .json(&body);
    let resp = req.send().await.expect("OpenBao answers");
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openbao_kubernetes_login_goes_through_token_review() {
    let sim = Sim::start().await;
    let ns = format!("vault-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    sim.kubectl_ok(&["create", "namespace", &ns], None);
    for sa in ["reviewer", "operator", "stranger"] {
        sim.kubectl_ok(&["-n", &ns, "create", "serviceaccount", sa], None);
    }
    let binding = format!("{ns}-reviewer");
    sim.kubectl_ok(
        &[
            "create",
            "clusterrolebinding",
            &binding,
            "--clusterrole=system:auth-delegator",
            &format!("--serviceaccount={ns}:reviewer"),
        ],
        None,
    );
    let token = |sa: &str| sim.kubectl_ok(&["-n", &ns, "create", "token", sa], None).trim().to_owned();
    let ca = std::fs::read_to_string(sim.kubeconfig()).unwrap();
    let kc: Value = serde_yaml::from_str(&ca).unwrap();
    let ca_b64 = kc["clusters"][0]["cluster"]["certificate-authority-data"].as_str().unwrap();
    use base64::Engine;
    let ca_pem = String::from_utf8(base64::engine::general_purpose::STANDARD.decode(ca_b64).unwrap()).unwrap();

    let mount = format!("k8s-{ns}");
    let (c, b) = bao(reqwest::Method::POST, &format!("sys/auth/{mount}"), None, json!({"type": "kubernetes"})).await;
    assert!(c < 300, "enable auth: {c} {b}");
    let config = json!({
        "kubernetes_host": format!("https://{}", sim.running.address),
        "kubernetes_ca_cert": ca_pem,
        "token_reviewer_jwt": token("reviewer"),
        "disable_local_ca_jwt": true,
    });
    let (c, b) = bao(reqwest::Method::POST, &format!("auth/{mount}/config"), None, config).await;
    assert!(c < 300, "config: {c} {b}");
    let role = json!({"bound_service_account_names": ["operator"], "bound_service_account_namespaces": [ns], "token_policies": ["default"], "token_ttl": "10m"});
    let (c, b) = bao(reqwest::Method::POST, &format!("auth/{mount}/role/op"), None, role).await;
    assert!(c < 300, "role: {c} {b}");

    let (c, b) = bao(
        reqwest::Method::POST,
        &format!("auth/{mount}/login"),
        None,
        json!({"role": "op", "jwt": token("operator")}),
    )
    .await;
    assert_eq!(c, 200, "login: {b}");
    assert!(b["auth"]["client_token"].as_str().is_some_and(|t| !t.is_empty()), "{b}");
    assert_eq!(b["auth"]["metadata"]["service_account_name"], "operator");

    let (c, b) = bao(
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
    let _ = bao(reqwest::Method::DELETE, &format!("sys/auth/{mount}"), None, Value::Null).await;
}
