//! Asymmetric token verification keys, selected by the JWT header `kid`.
//!
//! Two sources, merged (the directory wins when both name the same `kid`):
//! - `PINAK_JWT_KEYS_DIR`: one key per file, file name minus extension = `kid`; a PEM public
//!   key (Ed25519 -> `EdDSA`, RSA -> `RS256`, EC P-256/P-384 -> `ES256`/`ES384`) or a single JWK
//!   as JSON (its `alg`, else inferred from `kty`/`crv`). Polled every second (names, mtimes,
//!   sizes); on a change the whole set is re-read and swapped atomically, so in-flight requests
//!   keep the set they started with. Rotation = add the new file, move signers, remove the old
//!   one. A file that does not parse is logged and skipped; the other keys stay.
//! - `PINAK_JWT_JWKS_URL`: a JWKS fetched at start, every `PINAK_JWT_JWKS_REFRESH_SECS`, and on
//!   an unknown `kid` (at most once per 10 s). A failed fetch keeps the cached keys.
//!
//! Every key is bound to exactly one algorithm; the verifier rejects a token whose header `alg`
//! differs, so a public key can never be used as an HMAC secret. Symmetric (`oct`) JWKs and
//! private keys are refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};
use serde_json::Value;

/// How often the keys directory is checked for changes.
pub const DIR_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Minimum spacing of JWKS fetches triggered by an unknown `kid`.
pub const JWKS_UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
const JWKS_MAX_BYTES: usize = 1 << 20;
const MAX_KEY_FILE_BYTES: u64 = 64 * 1024;
const MIN_RSA_BITS: usize = 2048;
/// Longer `kid`s are never looked up (and never trigger a JWKS fetch).
const MAX_KID_LEN: usize = 256;

/// A public key and the one algorithm it verifies.
pub struct VerificationKey {
    pub alg: Algorithm,
    pub key: DecodingKey,
}

pub type KeySet = HashMap<String, Arc<VerificationKey>>;

/// The live key sets. Readers clone an `Arc` under a short read lock; reloads swap it.
pub struct KeyStore {
    dir_keys: RwLock<Arc<KeySet>>,
    jwks: Option<JwksSource>,
}

struct JwksSource {
    url: String,
    client: reqwest::Client,
    keys: RwLock<Arc<KeySet>>,
    /// Time of the last unknown-`kid` fetch; the lock also serialises those fetches.
    last_on_demand: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyStore {
    /// Loads both sources once and starts their background refresh tasks (which end when the
    /// store is dropped). Never fails: problems are logged and the affected keys are absent.
    pub async fn start(dir: Option<PathBuf>, jwks_url: Option<String>, jwks_refresh: Duration) -> Arc<KeyStore> {
        let jwks = match jwks_url {
            None => None,
            Some(url) => match reqwest::Client::builder().timeout(JWKS_TIMEOUT).build() {
                Ok(client) => Some(JwksSource {
                    url,
                    client,
                    keys: RwLock::new(Arc::new(KeySet::new())),
                    last_on_demand: tokio::sync::Mutex::new(None),
                }),
                Err(e) => {
                    tracing::error!(error = %e, "cannot build the JWKS HTTP client; JWKS keys are disabled");
                    None
                }
            },
        };
        let store = Arc::new(KeyStore { dir_keys: RwLock::new(Arc::new(KeySet::new())), jwks });
        if let Some(dir) = dir {
            let scan_dir = dir.clone();
            let (fingerprint, keys) = tokio::task::spawn_blocking(move || {
                let fingerprint = dir_fingerprint(&scan_dir);
                (fingerprint, load_dir(&scan_dir))
            })
            .await
            .unwrap_or_default();
            store.swap_dir_keys(keys);
            spawn_dir_poller(Arc::downgrade(&store), dir, fingerprint);
        }
        if let Some(jwks) = &store.jwks {
            jwks.refresh().await;
            spawn_jwks_refresher(Arc::downgrade(&store), jwks_refresh);
        }
        store
    }

    /// The key for `kid` as currently loaded (no network).
    pub fn get(&self, kid: &str) -> Option<Arc<VerificationKey>> {
        let dir = read(&self.dir_keys);
        if let Some(k) = dir.get(kid) {
            return Some(k.clone());
        }
        self.jwks.as_ref().and_then(|j| read(&j.keys).get(kid).cloned())
    }

    /// The key for `kid`; an unknown `kid` refreshes the JWKS first (rate-limited).
    pub async fn find(&self, kid: &str) -> Option<Arc<VerificationKey>> {
        if kid.is_empty() || kid.len() > MAX_KID_LEN {
            return None;
        }
        if let Some(k) = self.get(kid) {
            return Some(k);
        }
        let jwks = self.jwks.as_ref()?;
        jwks.refresh_for_unknown_kid().await;
        self.get(kid)
    }

    /// Loaded `kid`s (directory, then JWKS), sorted; for logs and diagnostics.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = read(&self.dir_keys).keys().cloned().collect();
        if let Some(j) = &self.jwks {
            kids.extend(read(&j.keys).keys().cloned());
        }
        kids.sort();
        kids.dedup();
        kids
    }

    fn swap_dir_keys(&self, keys: KeySet) {
        *self.dir_keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
    }
}

fn read(lock: &RwLock<Arc<KeySet>>) -> Arc<KeySet> {
    lock.read().unwrap_or_else(|p| p.into_inner()).clone()
}

// ---------------------------------------------------------------------------------------------
// Directory source

/// What the poller compares: (file name, mtime, size) of every visible regular file, sorted;
/// `None` when the directory cannot be read.
type Fingerprint = Option<Vec<(String, Option<SystemTime>, u64)>>;

/// Visible regular files (symlinks followed, as in a mounted Kubernetes Secret, whose `..data`
/// entries are hidden), sorted by name.
fn key_files(dir: &Path) -> std::io::Result<Vec<(String, PathBuf, std::fs::Metadata)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => files.push((name, path, meta)),
            _ => {}
        }
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(files)
}

fn dir_fingerprint(dir: &Path) -> Fingerprint {
    key_files(dir)
        .ok()
        .map(|files| files.into_iter().map(|(name, _, meta)| (name, meta.modified().ok(), meta.len())).collect())
}

/// Reads every key file; failures are logged per file and skipped.
pub fn load_dir(dir: &Path) -> KeySet {
    let files = match key_files(dir) {
        Ok(files) => files,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "PINAK_JWT_KEYS_DIR cannot be read; no directory keys loaded");
            return KeySet::new();
        }
    };
    let mut keys = KeySet::new();
    for (name, path, meta) in files {
        let kid = Path::new(&name).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if kid.is_empty() || kid.len() > MAX_KID_LEN {
            tracing::warn!(file = %name, "key file skipped: unusable kid (file name)");
            continue;
        }
        if keys.contains_key(&kid) {
            tracing::warn!(file = %name, kid = %kid, "key file skipped: another file already provides this kid");
            continue;
        }
        if meta.len() > MAX_KEY_FILE_BYTES {
            tracing::warn!(file = %name, "key file skipped: larger than 64 KiB");
            continue;
        }
        match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|bytes| parse_key_file(&bytes)) {
            Ok(key) => {
                keys.insert(kid, Arc::new(key));
            }
            Err(reason) => {
                tracing::warn!(file = %name, reason = %reason, "key file skipped: cannot load verification key")
            }
        }
    }
    if keys.is_empty() {
        tracing::warn!(dir = %dir.display(), "PINAK_JWT_KEYS_DIR holds no usable keys");
    } else {
        let mut kids: Vec<&String> = keys.keys().collect();
        kids.sort();
        tracing::info!(dir = %dir.display(), kids = ?kids, "verification keys loaded");
    }
    keys
}

fn spawn_dir_poller(store: Weak<KeyStore>, dir: PathBuf, mut last: Fingerprint) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(DIR_POLL_INTERVAL).await;
            if store.strong_count() == 0 {
                return;
            }
            let scan_dir = dir.clone();
            let seen = last.clone();
            let scanned = tokio::task::spawn_blocking(move || {
                let now = dir_fingerprint(&scan_dir);
                if now == seen { (now, None) } else { (now.clone(), Some(load_dir(&scan_dir))) }
            })
            .await;
            let Ok((now, reloaded)) = scanned else { continue };
            last = now;
            if let (Some(keys), Some(store)) = (reloaded, store.upgrade()) {
                store.swap_dir_keys(keys);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// JWKS source

impl JwksSource {
    /// Fetches the set and swaps it in; on failure the cached keys stay.
    async fn refresh(&self) {
        match self.fetch().await {
            Ok(keys) => {
                let mut kids: Vec<&String> = keys.keys().collect();
                kids.sort();
                tracing::info!(url = %self.url, kids = ?kids, "JWKS keys loaded");
                *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
            }
            Err(e) => tracing::warn!(url = %self.url, error = %e, "JWKS fetch failed; keeping the cached keys"),
        }
    }

    async fn refresh_for_unknown_kid(&self) {
        let mut last = self.last_on_demand.lock().await;
        if last.is_some_and(|t| t.elapsed() < JWKS_UNKNOWN_KID_INTERVAL) {
            return;
        }
        *last = Some(Instant::now());
        self.refresh().await;
    }

    async fn fetch(&self) -> Result<KeySet, String> {
        let resp = self.client.get(&self.url).send().await.map_err(|e| e.to_string())?;
        let resp = resp.error_for_status().map_err(|e| e.to_string())?;
        if resp.content_length().is_some_and(|n| n > JWKS_MAX_BYTES as u64) {
            return Err("JWKS larger than 1 MiB".into());
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > JWKS_MAX_BYTES {
            return Err("JWKS larger than 1 MiB".into());
        }
        let doc: Value = serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))?;
        let Some(list) = doc.get("keys").and_then(Value::as_array) else {
            return Err("no \"keys\" array".into());
        };
        let mut keys = KeySet::new();
        for (i, jwk) in list.iter().enumerate() {
            let Some(kid) = jwk.get("kid").and_then(Value::as_str).filter(|k| !k.is_empty() && k.len() <= MAX_KID_LEN)
            else {
                tracing::warn!(url = %self.url, index = i, "JWKS key skipped: no usable kid");
                continue;
            };
            if keys.contains_key(kid) {
                tracing::warn!(url = %self.url, kid = %kid, "JWKS key skipped: duplicate kid");
                continue;
            }
            if jwk.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
                continue; // encryption keys are not ours to use
            }
            match parse_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid.to_owned(), Arc::new(key));
                }
                Err(reason) => tracing::warn!(url = %self.url, kid = %kid, reason = %reason, "JWKS key skipped"),
            }
        }
        Ok(keys)
    }
}

fn spawn_jwks_refresher(store: Weak<KeyStore>, every: Duration) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let Some(store) = store.upgrade() else { return };
            if let Some(jwks) = &store.jwks {
                jwks.refresh().await;
            }
        }
    });
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// A key file: a single JWK when it is a JSON object, else a PEM public key.
pub fn parse_key_file(bytes: &[u8]) -> Result<VerificationKey, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    if text.trim_start().starts_with('{') {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON JWK: {e}"))?;
        if value.get("keys").is_some() {
            return Err("a JWK set; put one JWK per file".into());
        }
        if value.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
            return Err("JWK \"use\" is not \"sig\"".into());
        }
        parse_jwk(&value)
    } else {
        parse_pem(text)
    }
}

/// A PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`); its type fixes the algorithm.
pub fn parse_pem(text: &str) -> Result<VerificationKey, String> {
    if text.contains("PRIVATE KEY-----") {
        return Err("a private key; only public keys belong in the keys directory".into());
    }
    if !text.contains("-----BEGIN PUBLIC KEY-----") && !text.contains("-----BEGIN RSA PUBLIC KEY-----") {
        return Err("neither a PEM public key nor a JSON JWK".into());
    }
    let bytes = text.as_bytes();
    if let Ok(key) = DecodingKey::from_ed_pem(bytes) {
        return bind(key, Algorithm::EdDSA, None);
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
        return bind(key, Algorithm::RS256, None);
    }
    if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
        let alg = ec_default_alg(&key)?;
        return bind(key, alg, None);
    }
    Err("unsupported PEM key (Ed25519, RSA, EC P-256/P-384)".into())
}

/// One JWK: `alg` when given (it must fit the key type), else inferred from `kty`/`crv`.
pub fn parse_jwk(value: &Value) -> Result<VerificationKey, String> {
    if ["d", "p", "q", "k"].iter().any(|f| value.get(*f).is_some()) {
        return Err("private or symmetric key material; only public keys are accepted".into());
    }
    let jwk: Jwk = serde_json::from_value(value.clone()).map_err(|e| format!("not a JWK: {e}"))?;
    let key = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) | AlgorithmParameters::EllipticCurve(_) => DecodingKey::from_jwk(&jwk),
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => DecodingKey::from_jwk(&jwk),
        AlgorithmParameters::OctetKeyPair(_) => return Err("OKP key whose crv is not Ed25519".into()),
        AlgorithmParameters::OctetKey(_) => return Err("symmetric (oct) keys are not accepted".into()),
        _ => return Err("unsupported kty".into()),
    }
    .map_err(|e| format!("invalid key parameters: {e}"))?;
    let declared_curve = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => Some(p.curve.clone()),
        _ => None,
    };
    let alg = match value.get("alg") {
        None | Some(Value::Null) => match key.family() {
            AlgorithmFamily::Rsa => Algorithm::RS256,
            AlgorithmFamily::Ed => Algorithm::EdDSA,
            AlgorithmFamily::Ec => ec_default_alg(&key)?,
            AlgorithmFamily::Hmac => return Err("symmetric keys are not accepted".into()),
        },
        Some(Value::String(a)) => a.parse::<Algorithm>().map_err(|_| format!("unsupported alg {a:?}"))?,
        Some(other) => return Err(format!("alg is not a string: {other}")),
    };
    bind(key, alg, declared_curve)
}

/// ES256 for P-256, ES384 for P-384 (from the point's length).
fn ec_default_alg(key: &DecodingKey) -> Result<Algorithm, String> {
    match ec_curve(key)? {
        EllipticCurve::P256 => Ok(Algorithm::ES256),
        EllipticCurve::P384 => Ok(Algorithm::ES384),
        other => Err(format!("unsupported EC curve {other:?}")),
    }
}

fn ec_curve(key: &DecodingKey) -> Result<EllipticCurve, String> {
    match Jwk::from_decoding_key(key, None).map_err(|e| format!("invalid EC key: {e}"))?.algorithm {
        AlgorithmParameters::EllipticCurve(p) => Ok(p.curve),
        _ => Err("not an EC key".into()),
    }
}

/// Checks that `key` is well-formed and fits `alg`, and binds them.
fn bind(key: DecodingKey, alg: Algorithm, declared_curve: Option<EllipticCurve>) -> Result<VerificationKey, String> {
    if key.family() == AlgorithmFamily::Hmac || !key.family().algorithms().contains(&alg) {
        return Err(format!("alg {alg:?} does not fit a {:?} key", key.family()));
    }
    // Round-tripping through a public JWK parses the key material (RSA DER, EC point length,
    // Ed25519 length) so a broken file fails here, at load, not on every request.
    let public = Jwk::from_decoding_key(&key, Some(alg)).map_err(|e| format!("invalid key: {e}"))?;
    match &public.algorithm {
        AlgorithmParameters::RSA(p) => {
            // base64url without padding: 4 characters per 3 bytes.
            let modulus_bytes = p.n.trim_end_matches('=').len() * 3 / 4;
            if modulus_bytes * 8 < MIN_RSA_BITS {
                return Err(format!("RSA key shorter than {MIN_RSA_BITS} bits"));
            }
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let expected = match alg {
                Algorithm::ES256 => EllipticCurve::P256,
                _ => EllipticCurve::P384,
            };
            if p.curve != expected || declared_curve.is_some_and(|c| c != p.curve) {
                return Err(format!("alg {alg:?} does not fit the key's curve"));
            }
        }
        _ => {}
    }
    Ok(VerificationKey { alg, key })
}
