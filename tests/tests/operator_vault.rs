//! A store on Vault, end to end: the real operator logs in to the real OpenBao with the
//! kubernetes auth method (OpenBao calls kubesim's TokenReview), reads the store's admin URL
//! and token-verification material from KV, and delivers them to real `pinak-api` pods.
//! Verification keys rotate in Vault and reach the pods without a restart; a bad path, an
//! unreachable Vault and a revoked Vault token are reported precisely while the pods keep
//! serving with the last good values. Vault goes down and comes back for real: the operator
//! reaches it through a forwarder the test cuts and restores.
//!
//! With `PINAK_E2E_KUBECONFIG` set, the same on that cluster (OpenBao must reach its API server
//! for TokenReview), but for the count of TokenReviews, which only kubesim's request log shows.

use std::time::Duration;

use base64::Engine;
use kubesim::testing::{OpenBao, Sim};
use pinak_tests::keypair::KeyPair;
use pinak_tests::load::Load;
use pinak_tests::operator::{
    agent_claims, cluster, condition, new_namespace, operator_logs, pods, service_base, start_operator_with,
    store_secret, token, wait_condition, wait_ready,
};
use pinak_tests::proxy::Proxy;
use reqwest::Method;
use serde_json::{Value, json};

/// Short, so that the test sees the operator renew its token.
const TOKEN_TTL_SECS: u64 = 20;
const HS256: &str = "vault-hs256-secret-0123456789abcdef0123";
const HS256_ROTATED: &str = "vault-hs256-rotated-secret-abcdef0123456789";

fn store(ns: &str, vault_addr: &str, mount: &str, jwt_path: &str) -> String {
    store_named("notes", ns, vault_addr, &format!("kubernetes: {{role: pinak-operator, mountPath: {mount}}}"), jwt_path)
}

/// A store on Vault; `auth` is the YAML flow mapping of `spec.vault.auth`.
fn store_named(name: &str, ns: &str, vault_addr: &str, auth: &str, jwt_path: &str) -> String {
    format!(
        r#"
apiVersion: pinak.dev/v1alpha1
kind: MemoryStore
metadata: {{name: {name}, namespace: {ns}}}
spec:
  database:
    adminCredentials: {{vaultPath: {ns}/admin}}
    reclaimPolicy: Delete
  embedding: {{backend: dummy, apiKeyVaultKey: api-key}}
  api: {{replicas: 1}}
  vault:
    address: {vault_addr}
    auth: {{{auth}}}
    paths: {{jwt: {jwt_path}, embedding: {ns}/embedding}}
    refreshInterval: 1h
"#
    )
}

async fn put_kv(bao: &OpenBao, path: &str, data: Value) {
    bao.ok(Method::POST, &format!("secret/data/{path}"), json!({ "data": data })).await;
}

/// Status of a search through the store's Service with `bearer`.
async fn search(sim: &Sim, ns: &str, bearer: &str) -> u16 {
    reqwest::Client::new()
        .get(format!("{}/search?query=anything", service_base(sim, ns)))
        .bearer_auth(bearer)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Polls until a search with `bearer` answers `want`.
async fn until_search(sim: &Sim, ns: &str, bearer: &str, want: u16, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got = search(sim, ns, bearer).await;
        if got == want {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: still {got}, not {want}\n{}", operator_logs(sim));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn refresh(sim: &Sim, ns: &str, value: &str) {
    let annotation = format!("pinak.dev/vault-refresh={value}");
    sim.kubectl_ok(&["-n", ns, "annotate", "memorystore", "notes", &annotation, "--overwrite"], None);
}

fn last_refresh(sim: &Sim, ns: &str) -> Value {
    sim.kubectl_json(&["-n", ns, "get", "memorystore", "notes"])["status"]["vault"]["lastRefreshTime"].clone()
}

/// Logins the operator reported.
fn logged_in(sim: &Sim) -> usize {
    operator_logs(sim).matches("logged in to Vault").count()
}

fn expiry(sim: &Sim, ns: &str) -> String {
    let store = sim.kubectl_json(&["-n", ns, "get", "memorystore", "notes"]);
    store["status"]["vault"]["tokenExpiryTime"].as_str().unwrap_or_default().to_owned()
}

fn patch_spec(sim: &Sim, ns: &str, vault: Value) {
    let patch = json!({"spec": {"vault": vault}}).to_string();
    sim.kubectl_ok(&["-n", ns, "patch", "memorystore", "notes", "--type=merge", "-p", &patch], None);
}

/// TokenReviews answered so far; None on a real cluster (kubesim's request log counts them).
fn token_reviews(sim: &Sim) -> Option<usize> {
    let count = || sim.requests().iter().filter(|r| r["resource"] == "tokenreviews" && r["code"] == 201).count();
    (!sim.external()).then(count)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_on_vault_takes_its_secrets_from_vault_and_rotates_keys_without_restarts() {
    let (sim, admin_url) = cluster().await;
    let bao = OpenBao::from_env();
    let ns = new_namespace(&sim, "vault");

    // Vault as a platform team sets it up: kubernetes auth for this cluster, a policy that
    // lets the operator read its namespace's KV paths, and the store's secrets in KV.
    let mount = format!("k8s-{ns}");
    bao.enable_kubernetes_auth(&sim, &ns, &mount).await;
    let policy = format!("path \"secret/data/{ns}/*\" {{ capabilities = [\"read\"] }}");
    bao.ok(Method::POST, &format!("sys/policies/acl/{ns}"), json!({ "policy": policy })).await;
    let role = json!({
        "bound_service_account_names": ["pinak-operator"], "bound_service_account_namespaces": [ns],
        "token_policies": ["default", ns], "token_ttl": format!("{TOKEN_TTL_SECS}s"),
    });
    bao.ok(Method::POST, &format!("auth/{mount}/role/pinak-operator"), role).await;
    let (k1, k2) = (KeyPair::p256(), KeyPair::ed25519());
    let pem = |k: &KeyPair| String::from_utf8(k.public_pem.clone()).unwrap();
    put_kv(&bao, &format!("{ns}/admin"), json!({ "url": admin_url })).await;
    put_kv(&bao, &format!("{ns}/jwt"), json!({ "secret": HS256, "k1": pem(&k1) })).await;
    put_kv(&bao, &format!("{ns}/embedding"), json!({ "api-key": "sk-from-vault" })).await;

    // The operator logs in with its service account's token, as it would in its pod.
    sim.kubectl_ok(&["-n", &ns, "create", "serviceaccount", "pinak-operator"], None);
    let sa_token = sim.kubectl_ok(&["-n", &ns, "create", "token", "pinak-operator", "--duration=1h"], None);
    let token_file = sim.dir.join("operator-sa-token");
    std::fs::write(&token_file, sa_token.trim()).unwrap();
    let _operator = start_operator_with(
        &sim,
        "operator.log",
        &[("PINAK_OPERATOR_SERVICE_ACCOUNT_TOKEN_FILE", token_file.to_str().unwrap())],
    );
    let reviews_before = token_reviews(&sim);
    // The operator reaches Vault through a forwarder the test can cut: Vault down, then up.
    let upstream = bao.addr.trim_start_matches("http://").to_owned();
    let proxy = Proxy::start(upstream).await;
    let vault_addr = format!("http://{}", proxy.addr);
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&store(&ns, &vault_addr, &mount, &format!("{ns}/jwt"))));
    let ready = wait_ready(&sim, &ns);
    if sim.kubesim_only("that the operator's login went through TokenReview (kubesim's request log)") {
        assert!(token_reviews(&sim) > reviews_before, "the operator's login went through TokenReview");
    }
    assert!(ready["status"]["vault"]["lastRefreshTime"].is_string(), "{}", ready["status"]);
    assert!(ready["status"]["vault"]["tokenExpiryTime"].is_string(), "a token with a TTL: {}", ready["status"]);
    let secrets = condition(&sim, &ns, "notes", "SecretsReady").unwrap();
    assert!(secrets["message"].as_str().unwrap().contains("Vault"), "{secrets}");

    // Every value landed: the HS256 secret from Vault signs tokens the pods accept, and so
    // does the public key k1 by its kid.
    let claims = agent_claims(&ns);
    let (hs, t1, t2) = (
        token(HS256.as_bytes(), &ns),
        k1.token_with(Some("k1"), claims.clone()),
        k2.token_with(Some("k2"), claims.clone()),
    );
    assert_eq!(search(&sim, &ns, &hs).await, 200, "the HS256 secret from Vault");
    assert_eq!(search(&sim, &ns, &t1).await, 200, "k1 from Vault");
    assert_eq!(search(&sim, &ns, &t2).await, 401, "k2 is not in Vault yet");
    let keys = sim.kubectl_json(&["-n", &ns, "get", "secret", "notes-pinak-jwt-keys"]);
    assert_eq!(keys["data"].as_object().unwrap().keys().collect::<Vec<_>>(), ["k1.pem"]);
    let api_key = store_secret(&sim, &ns, "embedding-api-key");
    assert_eq!(api_key, b"sk-from-vault", "the embedding provider's key from Vault");

    // Rotation under load: k2 added in Vault reaches the pods without a restart, clients move
    // to it, k1 removed is refused; the clients of the HS256 secret and of k2 see no failure.
    let pods_before = pods(&sim, &ns);
    assert!(pods_before.iter().all(|(_, _, restarts)| *restarts == 0), "{pods_before:?}");
    let url = format!("{}/search?query=rotation", service_base(&sim, &ns));
    let steady = Load::start(url.clone(), hs.clone(), 4);
    put_kv(&bao, &format!("{ns}/jwt"), json!({ "secret": HS256, "k1": pem(&k1), "k2": pem(&k2) })).await;
    refresh(&sim, &ns, "1");
    until_search(&sim, &ns, &t2, 200, "k2 accepted after it was added in Vault").await;
    let moved = Load::start(url, t2.clone(), 4);
    put_kv(&bao, &format!("{ns}/jwt"), json!({ "secret": HS256, "k2": pem(&k2) })).await;
    refresh(&sim, &ns, "2");
    until_search(&sim, &ns, &t1, 401, "k1 refused after it was removed from Vault").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (steady, moved) = (steady.finish().await, moved.finish().await);
    println!(
        "JWT key rotation under load: {} requests ({:.0} req/s) with the HS256 secret and {} with k2 while k1 was removed; {} + {} failed",
        steady.ok + steady.failed,
        steady.per_second(),
        moved.ok + moved.failed,
        steady.failed,
        moved.failed
    );
    assert_eq!((steady.failed, moved.failed), (0, 0), "{:?} {:?}", steady.first_failure, moved.first_failure);
    assert!(steady.ok > 50 && moved.ok > 10, "the loads ran: {steady:?} {moved:?}");
    assert_eq!(pods(&sim, &ns), pods_before, "same pods, no restarts");

    // The HS256 secret rotated in Vault reaches the pods through their mounted Secret: tokens
    // of the new secret work, those of the old one stop, and no pod is replaced or restarted.
    let hs_rotated = token(HS256_ROTATED.as_bytes(), &ns);
    put_kv(&bao, &format!("{ns}/jwt"), json!({ "secret": HS256_ROTATED, "k2": pem(&k2) })).await;
    refresh(&sim, &ns, "2b");
    until_search(&sim, &ns, &hs_rotated, 200, "the rotated HS256 secret accepted").await;
    until_search(&sim, &ns, &hs, 401, "the old HS256 secret refused").await;
    assert_eq!(pods(&sim, &ns), pods_before, "an HS256 rotation replaces and restarts no pod");

    // A revoked Vault token: the operator logs in again by itself.
    let reviews_before = token_reviews(&sim);
    let before = last_refresh(&sim, &ns);
    bao.ok(Method::POST, &format!("sys/leases/revoke-prefix/auth/{mount}/login"), Value::Null).await;
    tokio::time::sleep(Duration::from_millis(1100)).await; // lastRefreshTime has second precision
    refresh(&sim, &ns, "3");
    kubesim::testing::eventually(60, "a refresh after the token was revoked", || {
        (last_refresh(&sim, &ns) != before).then_some(())
    })
    .await;
    if sim.kubesim_only("that the new login went through TokenReview (kubesim's request log)") {
        assert!(token_reviews(&sim) > reviews_before, "a new login after the revocation");
    }
    let c = condition(&sim, &ns, "notes", "SecretsReady").unwrap();
    assert_eq!(c["status"], "True", "{c}");

    // A path Vault does not have: a precise condition; the pods keep the last good keys.
    let vault = |address: &str, jwt: &str| json!({"address": address, "paths": {"jwt": jwt}});
    patch_spec(&sim, &ns, vault(&vault_addr, &format!("{ns}/missing")));
    let c = wait_condition(&sim, &ns, "notes", "SecretsReady", "False", "VaultPathNotFound").await;
    assert!(c["message"].as_str().unwrap().contains(&format!("secret/{ns}/missing")), "{c}");
    let degraded = condition(&sim, &ns, "notes", "Degraded").unwrap();
    assert_eq!((degraded["status"].as_str(), degraded["reason"].as_str()), (Some("True"), Some("VaultPathNotFound")));
    assert_eq!(search(&sim, &ns, &t2).await, 200, "pods keep serving with the last good keys");

    patch_spec(&sim, &ns, vault(&vault_addr, &format!("{ns}/jwt")));
    wait_condition(&sim, &ns, "notes", "SecretsReady", "True", "SecretApplied").await;

    // Vault down: reported, nothing deleted, the pods keep serving; up again: recovery by itself.
    proxy.cut();
    refresh(&sim, &ns, "4");
    let c = wait_condition(&sim, &ns, "notes", "SecretsReady", "False", "VaultUnreachable").await;
    assert!(c["message"].as_str().unwrap().contains(&vault_addr), "{c}");
    assert_eq!(search(&sim, &ns, &t2).await, 200, "pods keep serving while Vault is away");
    sim.kubectl_ok(&["-n", &ns, "get", "secret", "notes-pinak", "notes-pinak-jwt-keys"], None);
    proxy.restore().await;
    wait_condition(&sim, &ns, "notes", "SecretsReady", "True", "SecretApplied").await;
    wait_ready(&sim, &ns);
    assert_eq!(pods(&sim, &ns), pods_before, "still the same pods: no change needed new ones");

    // Renewal: a fresh login, then a refresh once two thirds of the token's TTL have passed
    // renews the token (its expiry moves on) instead of logging in again.
    bao.ok(Method::POST, &format!("sys/leases/revoke-prefix/auth/{mount}/login"), Value::Null).await;
    let before = last_refresh(&sim, &ns);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    refresh(&sim, &ns, "5");
    kubesim::testing::eventually(60, "a refresh with a new login", || {
        (last_refresh(&sim, &ns) != before).then_some(())
    })
    .await;
    let (logins, expires) = (logged_in(&sim), expiry(&sim, &ns));
    tokio::time::sleep(Duration::from_secs(TOKEN_TTL_SECS * 3 / 4)).await;
    refresh(&sim, &ns, "6");
    kubesim::testing::eventually(60, "a refresh with a renewed token", || (expiry(&sim, &ns) > expires).then_some(()))
        .await;
    // (OpenBao checks the service account again on renewal, so TokenReviews do not tell.)
    assert_eq!(logged_in(&sim), logins, "renewed, not logged in again");
    assert!(operator_logs(&sim).contains("renewed the Vault token"));

    // A second store logs in with a Vault token kept in a Secret; revoked, it is named.
    let created = bao.ok(Method::POST, "auth/token/create", json!({"policies": [ns], "ttl": "1h"})).await;
    let vault_token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let literal = format!("--from-literal=token={vault_token}");
    sim.kubectl_ok(&["-n", &ns, "create", "secret", "generic", "vault-token", &literal], None);
    let by_token =
        store_named("tokened", &ns, &vault_addr, "tokenSecretRef: {name: vault-token}", &format!("{ns}/jwt"));
    sim.kubectl_ok(&["apply", "-f", "-"], Some(&by_token));
    sim.kubectl_ok(&["-n", &ns, "wait", "--for=condition=SecretsReady", "memorystore/tokened", "--timeout=60s"], None);
    bao.ok(Method::POST, "auth/token/revoke", json!({ "token": vault_token })).await;
    let annotation = "pinak.dev/vault-refresh=after-revoke";
    sim.kubectl_ok(&["-n", &ns, "annotate", "memorystore", "tokened", annotation, "--overwrite"], None);
    let c = wait_condition(&sim, &ns, "tokened", "SecretsReady", "False", "VaultAuthFailed").await;
    assert!(c["message"].as_str().unwrap().contains(&format!("Secret {ns}/vault-token")), "{c}");

    // A new token in the Secret: the store recovers (and can then drop its schema on delete).
    let created = bao.ok(Method::POST, "auth/token/create", json!({"policies": [ns], "ttl": "1h"})).await;
    let token = created["auth"]["client_token"].as_str().unwrap();
    let patch = json!({"data": {"token": base64::engine::general_purpose::STANDARD.encode(token)}}).to_string();
    sim.kubectl_ok(&["-n", &ns, "patch", "secret", "vault-token", "--type=merge", "-p", &patch], None);
    let annotation = "pinak.dev/vault-refresh=new-token";
    sim.kubectl_ok(&["-n", &ns, "annotate", "memorystore", "tokened", annotation, "--overwrite"], None);
    wait_condition(&sim, &ns, "tokened", "SecretsReady", "True", "SecretApplied").await;

    for store in ["notes", "tokened"] {
        sim.kubectl_ok(&["-n", &ns, "delete", "memorystore", store, "--timeout=60s"], None);
    }
    let _ = bao.call(Method::DELETE, &format!("sys/auth/{mount}"), None, Value::Null).await;
}
