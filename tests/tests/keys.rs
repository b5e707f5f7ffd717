//! Asymmetric verification keys selected by `kid`: the keys directory (PEM and JWK files,
//! hot reload, rotation under load), keys-only mode, and a JWKS identity provider. Everything
//! goes through the real API over HTTP. Test keys come from the `openssl` CLI.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use pinak_api::runtime::config::Config;
use pinak_tests::keypair::{KeyPair, openssl};
use pinak_tests::{SECRET, TestApi, Token, unique};
use serde_json::{Value, json};

const SEARCH: &str = "/search?query=x";

// ---------------------------------------------------------------------------------------------
// Keys and tokens

/// A fresh read+write agent token of tenant `t` (the test API's), with `kid` in the header.
trait AgentToken {
    fn token(&self, kid: &str) -> String;
}

impl AgentToken for KeyPair {
    fn token(&self, kid: &str) -> String {
        self.token_with(Some(kid), claims())
    }
}

fn claims() -> Value {
    let now = chrono::Utc::now().timestamp();
    json!({
        "sub": "agent-1", "tenant": "t", "project_id": "p",
        "iss": "pinak-memory", "aud": "pinak-memory-api",
        "iat": now, "exp": now + 600, "jti": uuid::Uuid::new_v4().to_string(),
        "scopes": ["memory.read", "memory.write"], "roles": ["agent"], "client_id": "client-a",
    })
}

/// HS256 token with an arbitrary HMAC secret and header `kid`.
fn hs256_token(secret: &[u8], kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(String::from);
    encode(&header, &claims(), &EncodingKey::from_secret(secret)).unwrap()
}

fn b64url(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An unsigned `alg: none` token.
fn none_token(kid: Option<&str>) -> String {
    let mut header = json!({"alg": "none", "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    format!("{}.{}.", b64url(header.to_string().as_bytes()), b64url(claims().to_string().as_bytes()))
}

// ---------------------------------------------------------------------------------------------
// Keys directory and polling helpers

struct KeysDir(PathBuf);

impl KeysDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("pinak-keys"));
        std::fs::create_dir_all(&dir).unwrap();
        KeysDir(dir)
    }
    /// A path that does not exist yet.
    fn missing() -> Self {
        KeysDir(std::env::temp_dir().join(unique("pinak-keys-later")))
    }
    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
    /// Writes `name` atomically (hidden temp file, then rename), as a Secret mount would.
    fn put(&self, name: &str, bytes: &[u8]) {
        std::fs::create_dir_all(&self.0).unwrap();
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.0.join(name)).unwrap();
    }
    fn remove(&self, name: &str) {
        std::fs::remove_file(self.0.join(name)).unwrap();
    }
}

impl Drop for KeysDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `cond` every 100 ms for at most `limit`; true once it holds.
async fn eventually<F, Fut>(limit: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn search_status(api: &TestApi, token: &str) -> (u16, Value) {
    let (s, b) = api.get(token, SEARCH).await;
    (s, b["detail"].clone())
}

fn invalid() -> (u16, Value) {
    (401, json!("Invalid token"))
}

fn kids(api: &TestApi) -> Vec<String> {
    api.state.verifier.keys().expect("keys configured").kids()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn kid_selects_the_key_and_its_algorithm() {
    let (ed, rsa, es, rsa_pkcs1, ed_jwk, ps_jwk) = (
        KeyPair::ed25519(),
        KeyPair::rsa(),
        KeyPair::p256(),
        KeyPair::rsa(),
        KeyPair::ed25519(),
        KeyPair::rsa().with_alg(Algorithm::PS256),
    );
    let dir = KeysDir::new();
    dir.put("ed.pem", &ed.public_pem);
    dir.put("rsa.pem", &rsa.public_pem);
    dir.put("es.pub", &es.public_pem);
    dir.put("rsa1.pem", &openssl(&["pkey", "-pubin", "-pubout", "-traditional"], &rsa_pkcs1.public_pem));
    // JWK files: one with `alg` inferred from kty/crv, one bound to PS256 by its `alg`.
    let mut inferred = ed_jwk.jwk(None);
    inferred.as_object_mut().unwrap().remove("alg");
    dir.put("edjwk.json", inferred.to_string().as_bytes());
    dir.put("ps.json", ps_jwk.jwk(Some("ignored-the-file-name-wins")).to_string().as_bytes());
    // Files that must be skipped without affecting the others.
    dir.put("broken.pem", b"-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n");
    dir.put("leaked.pem", &ed.private_pem);
    dir.put("weak.pem", &KeyPair::rsa_bits(1024).public_pem);
    dir.put("hmac.json", json!({"kty": "oct", "k": b64url(SECRET.as_bytes()), "alg": "HS256"}).to_string().as_bytes());
    dir.put("garbage.json", b"{ not json");

    let api = TestApi::builder().env("PINAK_JWT_KEYS_DIR", dir.path()).start().await;
    assert_eq!(kids(&api), ["ed", "edjwk", "es", "ps", "rsa", "rsa1"]);

    for (key, kid) in [
        (&ed, "ed"),
        (&rsa, "rsa"),
        (&es, "es"),
        (&rsa_pkcs1.with_alg(Algorithm::RS256), "rsa1"),
        (&ed_jwk, "edjwk"),
        (&ps_jwk, "ps"),
    ] {
        assert_eq!(search_status(&api, &key.token(kid)).await.0, 200, "{:?} token with kid {kid}", key.alg);
    }
    // The compat HS256 secret still verifies tokens without a kid.
    assert_eq!(search_status(&api, &Token::new("t", "p").sign()).await.0, 200);
    // Registered-claim checks and details are unchanged for asymmetric tokens.
    let mut old = claims();
    old["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    assert_eq!(search_status(&api, &ed.token_with(Some("ed"), old)).await, (401, json!("Token expired")));
    let mut wrong_aud = claims();
    wrong_aud["aud"] = json!("someone-else");
    assert_eq!(search_status(&api, &ed.token_with(Some("ed"), wrong_aud)).await, invalid());

    // Unknown kid, skipped files, and an empty kid.
    for kid in ["nope", "broken", "leaked", "weak", "hmac", "garbage", ""] {
        assert_eq!(search_status(&api, &ed.token(kid)).await, invalid(), "kid {kid:?}");
    }
    // A kid naming another key: signature or algorithm mismatch.
    assert_eq!(search_status(&api, &rsa.token("ed")).await, invalid(), "RS256 token, Ed25519 kid");
    assert_eq!(search_status(&api, &ed.token("rsa")).await, invalid(), "EdDSA token, RSA kid");
    assert_eq!(search_status(&api, &es.token("rsa")).await, invalid(), "ES256 token, RSA kid");
    // Same RSA key, another algorithm of its family: the key is bound to one algorithm.
    assert_eq!(
        search_status(&api, &rsa.with_alg(Algorithm::PS256).token("rsa")).await,
        invalid(),
        "PS256 token, RS256 key"
    );
    assert_eq!(
        search_status(&api, &ps_jwk.with_alg(Algorithm::RS256).token("ps")).await,
        invalid(),
        "RS256 token, PS256 JWK"
    );
    // Classic confusion: HMAC keyed with the public key bytes, with and without the kid.
    for public in [&rsa.public_pem, &ed.public_pem] {
        assert_eq!(search_status(&api, &hs256_token(public, Some("rsa"))).await, invalid());
        assert_eq!(search_status(&api, &hs256_token(public, Some("ed"))).await, invalid());
        assert_eq!(search_status(&api, &hs256_token(public, None)).await, invalid());
    }
    // A correctly keyed HS256 token that names a kid is not a compat token.
    assert_eq!(search_status(&api, &hs256_token(SECRET.as_bytes(), Some("ed"))).await, invalid());
    // alg: none, with and without a kid.
    assert_eq!(search_status(&api, &none_token(Some("ed"))).await, invalid());
    assert_eq!(search_status(&api, &none_token(None)).await, invalid());
    api.stop().await;
}

#[tokio::test]
async fn rotation_under_load_has_no_failed_request() {
    let (a, b) = (KeyPair::ed25519(), KeyPair::rsa());
    let dir = KeysDir::new();
    dir.put("key-a.pem", &a.public_pem);
    let api = TestApi::builder().env("PINAK_JWT_KEYS_DIR", dir.path()).env("PINAK_JWT_SECRET", "").start().await;

    // The client signs every request with the key it is told is current.
    let current: Arc<RwLock<(KeyPair, &'static str)>> = Arc::new(RwLock::new((a.clone(), "key-a")));
    let log: Arc<Mutex<Vec<(&'static str, u16)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let client_task = tokio::spawn({
        let (current, log, stop, client, url) =
            (current.clone(), log.clone(), stop.clone(), api.client.clone(), api.mem(SEARCH));
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                let (key, kid) = current.read().unwrap().clone();
                let status = match client.get(&url).bearer_auth(key.token(kid)).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                log.lock().unwrap().push((kid, status));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let served = |kid: &'static str| {
        let log = log.clone();
        move || log.lock().unwrap().iter().filter(|(k, _)| *k == kid).count()
    };
    let (served_a, served_b) = (served("key-a"), served("key-b"));

    assert!(eventually(Duration::from_secs(10), || async { served_a() >= 5 }).await, "client is running on key A");
    // Add B (and a file that does not parse: it must not disturb A or B); wait until B verifies.
    dir.put("key-b.pem", &b.public_pem);
    dir.put("key-c.pem", b"not a key");
    let b_valid =
        eventually(Duration::from_secs(10), || async { search_status(&api, &b.token("key-b")).await.0 == 200 }).await;
    assert!(b_valid, "key B was never picked up");
    assert!(kids(&api).contains(&"key-a".to_string()), "A and B overlap");
    // Move the client to B, let it use B, then remove A.
    *current.write().unwrap() = (b.clone(), "key-b");
    assert!(eventually(Duration::from_secs(10), || async { served_b() >= 5 }).await);
    dir.remove("key-a.pem");
    let a_gone =
        eventually(Duration::from_secs(10), || async { search_status(&api, &a.token("key-a")).await == invalid() })
            .await;
    assert!(a_gone, "a fresh token signed by the removed key A is still accepted");
    let after = served_b();
    assert!(eventually(Duration::from_secs(10), || async { served_b() >= after + 5 }).await);
    stop.store(true, Ordering::Release);
    client_task.await.unwrap();

    let log = log.lock().unwrap().clone();
    let failures: Vec<_> = log.iter().filter(|(_, s)| *s != 200).collect();
    assert!(failures.is_empty(), "{} of {} client requests failed: {failures:?}", failures.len(), log.len());
    assert_eq!(kids(&api), ["key-b"]);
    api.stop().await;
}

#[tokio::test]
async fn keys_only_mode_starts_without_a_secret_and_refuses_hs256() {
    let ed = KeyPair::ed25519();
    // The directory does not exist yet: the service starts (with a warning) and picks it up.
    let dir = KeysDir::missing();
    let api = TestApi::builder().env("PINAK_JWT_KEYS_DIR", dir.path()).env("PINAK_JWT_SECRET", "").start().await;
    assert!(api.state.config.jwt_secret.is_none());
    assert!(kids(&api).is_empty());
    assert_eq!(search_status(&api, &ed.token("k1")).await, invalid());
    dir.put("k1.pem", &ed.public_pem);
    assert!(
        eventually(Duration::from_secs(10), || async { search_status(&api, &ed.token("k1")).await.0 == 200 }).await,
        "the new directory was never loaded"
    );
    // No secret: HS256 tokens (even signed with the usual test secret) are invalid.
    assert_eq!(search_status(&api, &Token::new("t", "p").sign()).await, invalid());
    assert_eq!(search_status(&api, &hs256_token(SECRET.as_bytes(), Some("k1"))).await, invalid());
    assert_eq!(search_status(&api, &hs256_token(b"", None)).await, invalid());
    assert_eq!(search_status(&api, &none_token(None)).await, invalid());
    api.stop().await;
}

#[test]
fn secret_rules_with_and_without_keys() {
    let load = |pairs: &[(&str, &str)]| {
        let mut vars: HashMap<String, String> =
            [("PINAK_DATABASE_URL", "postgres://localhost/x"), ("PINAK_EMBEDDING_BACKEND", "dummy")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        vars.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Config::from_lookup(|k| vars.get(k).cloned())
    };
    let strong = "0123456789abcdefghijklmnopqrstuvwxyz";
    assert!(load(&[]).is_err(), "no secret and no keys");
    assert!(load(&[("PINAK_JWT_SECRET", "")]).is_err(), "empty secret and no keys");
    assert!(load(&[("PINAK_JWT_SECRET", strong)]).is_ok());
    assert!(load(&[("PINAK_JWT_KEYS_DIR", "/keys")]).is_ok(), "keys only");
    assert!(load(&[("PINAK_JWT_JWKS_URL", "https://idp.example/jwks.json")]).is_ok(), "JWKS only");
    assert!(load(&[("PINAK_JWT_KEYS_DIR", "/keys"), ("PINAK_JWT_SECRET", strong)]).is_ok(), "both");
    // A configured secret must still be strong, keys or not.
    for weak in ["secret", "dev-secret-change-me", "too-short"] {
        assert!(load(&[("PINAK_JWT_KEYS_DIR", "/keys"), ("PINAK_JWT_SECRET", weak)]).is_err(), "{weak}");
        assert!(load(&[("PINAK_JWT_SECRET", weak)]).is_err(), "{weak}");
    }
    assert!(load(&[("PINAK_JWT_JWKS_URL", "file:///etc/passwd")]).is_err());
    assert!(load(&[("PINAK_JWT_JWKS_URL", "https://idp/jwks"), ("PINAK_JWT_JWKS_REFRESH_SECS", "0")]).is_err());
    let cfg = load(&[("PINAK_JWT_JWKS_URL", "https://idp/jwks")]).unwrap();
    assert_eq!(cfg.jwt_jwks_refresh, Duration::from_secs(300));
}

/// A stand-in identity provider: serves `keys` as a JWKS and counts fetches.
struct Idp {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    /// While set, the provider answers 503.
    down: Arc<AtomicBool>,
}

fn idp(keys: Vec<Value>) -> Idp {
    let keys = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let down = Arc::new(AtomicBool::new(false));
    let app = axum::Router::new().route(
        "/.well-known/jwks.json",
        axum::routing::get({
            let (keys, fetches, down) = (keys.clone(), fetches.clone(), down.clone());
            move || {
                fetches.fetch_add(1, Ordering::SeqCst);
                let status = if down.load(Ordering::SeqCst) {
                    axum::http::StatusCode::SERVICE_UNAVAILABLE
                } else {
                    axum::http::StatusCode::OK
                };
                let body = json!({"keys": keys.lock().unwrap().clone()});
                async move { (status, axum::Json(body)) }
            }
        }),
    );
    // Its own thread and runtime, like a real provider: it answers even while the test's
    // runtime is busy.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let _ = axum::serve(tokio::net::TcpListener::from_std(listener).unwrap(), app).await;
        });
    });
    Idp { url: format!("http://{addr}/.well-known/jwks.json"), keys, fetches, down }
}

#[tokio::test]
async fn jwks_unknown_kid_triggers_a_rate_limited_refresh() {
    let (k1, k2, k3) = (KeyPair::ed25519(), KeyPair::rsa(), KeyPair::p256());
    // An encryption key and a keyless entry are ignored, not fatal.
    let enc = json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"});
    let idp = idp(vec![k1.jwk(Some("idp-1")), enc, json!({"kty": "OKP"})]);
    let api = TestApi::builder()
        .env("PINAK_JWT_JWKS_URL", &idp.url)
        .env("PINAK_JWT_JWKS_REFRESH_SECS", "3600")
        .env("PINAK_JWT_SECRET", "")
        .start()
        .await;
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 1, "fetched once at start");
    assert_eq!(search_status(&api, &k1.token("idp-1")).await.0, 200);
    assert_eq!(kids(&api), ["idp-1"], "the encryption key and the keyless entry are skipped");

    // The provider rotates in a new key; the first token naming it triggers a refresh.
    idp.keys.lock().unwrap().push(k2.jwk(Some("idp-2")));
    let fetches = idp.fetches.load(Ordering::SeqCst);
    assert_eq!(search_status(&api, &k2.token("idp-2")).await.0, 200);
    assert_eq!(idp.fetches.load(Ordering::SeqCst), fetches + 1, "refreshed on the unknown kid");
    assert_eq!(search_status(&api, &k1.token("idp-1")).await.0, 200, "old key still valid");
    // Wrong algorithm for a JWKS key.
    assert_eq!(search_status(&api, &k2.with_alg(Algorithm::PS256).token("idp-2")).await, invalid());
    assert_eq!(search_status(&api, &hs256_token(&k2.public_pem, Some("idp-2"))).await, invalid());

    // Within 10 s, unknown kids do not reach the provider again.
    idp.keys.lock().unwrap().push(k3.jwk(Some("idp-3")));
    for _ in 0..5 {
        assert_eq!(search_status(&api, &k3.token("idp-3")).await, invalid());
        assert_eq!(search_status(&api, &k1.token("made-up")).await, invalid());
    }
    assert_eq!(idp.fetches.load(Ordering::SeqCst), fetches + 1, "unknown-kid refreshes are rate-limited");
    // After the interval, the next unknown kid refreshes again.
    let k3_valid =
        eventually(Duration::from_secs(15), || async { search_status(&api, &k3.token("idp-3")).await.0 == 200 }).await;
    assert!(k3_valid, "idp-3 never became valid");
    assert_eq!(idp.fetches.load(Ordering::SeqCst), fetches + 2);
    api.stop().await;
}

#[tokio::test]
async fn jwks_refreshes_periodically_and_merges_with_the_directory() {
    let (dir_key, idp_key) = (KeyPair::ed25519(), KeyPair::p256());
    let dir = KeysDir::new();
    dir.put("local.pem", &dir_key.public_pem);
    let idp = idp(vec![idp_key.jwk(Some("remote"))]);
    let api = TestApi::builder()
        .env("PINAK_JWT_KEYS_DIR", dir.path())
        .env("PINAK_JWT_JWKS_URL", &idp.url)
        .env("PINAK_JWT_JWKS_REFRESH_SECS", "1")
        .start()
        .await;
    assert_eq!(kids(&api), ["local", "remote"]);
    assert_eq!(search_status(&api, &dir_key.token("local")).await.0, 200);
    assert_eq!(search_status(&api, &idp_key.token("remote")).await.0, 200);
    assert_eq!(search_status(&api, &Token::new("t", "p").sign()).await.0, 200, "compat secret too");

    // The provider withdraws its key: the periodic refresh drops it; directory keys stay.
    idp.keys.lock().unwrap().clear();
    let withdrawn = eventually(Duration::from_secs(10), || async {
        search_status(&api, &idp_key.token("remote")).await == invalid()
    })
    .await;
    assert!(withdrawn, "the withdrawn JWKS key is still accepted");
    assert_eq!(search_status(&api, &dir_key.token("local")).await.0, 200);
    idp.keys.lock().unwrap().push(idp_key.jwk(Some("remote")));
    assert!(
        eventually(Duration::from_secs(10), || async { search_status(&api, &idp_key.token("remote")).await.0 == 200 })
            .await
    );
    // A provider outage keeps the cached keys.
    idp.down.store(true, Ordering::SeqCst);
    let failed_from = idp.fetches.load(Ordering::SeqCst);
    assert!(
        eventually(Duration::from_secs(10), || async { idp.fetches.load(Ordering::SeqCst) >= failed_from + 2 }).await,
        "no refresh during the outage"
    );
    assert_eq!(search_status(&api, &idp_key.token("remote")).await.0, 200, "cached key dropped on a failed fetch");
    api.stop().await;
}

#[tokio::test]
async fn hs256_secret_rotated_in_its_file_applies_without_a_restart() {
    let dir = KeysDir::new();
    let old = format!("old-{}", unique("secret"));
    let new = format!("new-{}", unique("secret"));
    dir.put("jwt-secret", format!("{old}\n").as_bytes());
    let file = format!("{}/jwt-secret", dir.path());
    let api = TestApi::builder().env("PINAK_JWT_SECRET", "").env("PINAK_JWT_SECRET_FILE", &file).start().await;
    assert_eq!(search_status(&api, &hs256_token(old.as_bytes(), None)).await.0, 200);
    assert_eq!(search_status(&api, &hs256_token(new.as_bytes(), None)).await, invalid());

    // A weak value in the file is refused and the last good secret stays in use.
    dir.put("jwt-secret", b"short");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(search_status(&api, &hs256_token(old.as_bytes(), None)).await.0, 200);
    assert_eq!(search_status(&api, &hs256_token(b"short", None)).await, invalid());

    dir.put("jwt-secret", new.as_bytes());
    assert!(
        eventually(Duration::from_secs(10), || async {
            search_status(&api, &hs256_token(new.as_bytes(), None)).await.0 == 200
        })
        .await,
        "the rotated secret was never used"
    );
    assert_eq!(search_status(&api, &hs256_token(old.as_bytes(), None)).await, invalid(), "the old secret still works");
}

#[tokio::test]
async fn a_weak_or_doubly_given_secret_file_stops_the_start() {
    let dir = KeysDir::new();
    dir.put("jwt-secret", b"too-short");
    let file = format!("{}/jwt-secret", dir.path());
    let only_file = |k: &str| match k {
        "PINAK_DATABASE_URL" => Some("postgres://x@127.0.0.1/x".to_owned()),
        "PINAK_EMBEDDING_BACKEND" => Some("dummy".to_owned()),
        "PINAK_JWT_SECRET_FILE" => Some(file.clone()),
        _ => None,
    };
    let cfg = Config::from_lookup(only_file).expect("the file is read when the verifier starts");
    let Err(err) = pinak_api::security::auth::TokenVerifier::from_config(&cfg).await else {
        panic!("a weak secret file was accepted")
    };
    assert!(err.to_string().contains("shorter than 32 bytes"), "{err}");
    let both = Config::from_lookup(|k| match k {
        "PINAK_JWT_SECRET" => Some(SECRET.to_owned()),
        other => only_file(other),
    });
    assert!(both.unwrap_err().to_string().contains("not both"));
}
