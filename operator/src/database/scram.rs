//! Passwords for the store's login role: generated here, and handed to Postgres only as a
//! SCRAM-SHA-256 verifier (RFC 5802/7677, the format `pg_authid` stores), so the plaintext
//! never appears in Postgres' statement logs or `pg_stat_statements`.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Postgres' default (`scram_iterations`).
const ITERATIONS: u32 = 4096;

pub fn random_bytes(n: usize) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    getrandom::fill(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
    Ok(buf)
}

/// A new login password: 32 random bytes, URL-safe base64, so it needs no escaping in the
/// `database-url` the pods get.
pub fn generate_password() -> Result<String> {
    Ok(URL_SAFE_NO_PAD.encode(random_bytes(32)?))
}

/// A new HS256 token secret for the API: 48 random bytes, base64 (64 characters; the API
/// requires at least 32 bytes).
pub fn generate_jwt_secret() -> Result<String> {
    Ok(STANDARD.encode(random_bytes(48)?))
}

/// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` for `password` and `salt`.
/// Passwords generated here are ASCII, for which SASLprep is the identity.
pub fn verifier(password: &str, salt: &[u8]) -> String {
    let salted = hi(password.as_bytes(), salt, ITERATIONS);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(client_key);
    let server_key = hmac(&salted, b"Server Key");
    format!(
        "SCRAM-SHA-256${ITERATIONS}:{}${}:{}",
        STANDARD.encode(salt),
        STANDARD.encode(stored_key),
        STANDARD.encode(server_key)
    )
}

/// A verifier with a fresh 16-byte salt.
pub fn new_verifier(password: &str) -> Result<String> {
    Ok(verifier(password, &random_bytes(16)?))
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// PBKDF2-HMAC-SHA-256 with one output block, as SCRAM's `Hi()`.
fn hi(password: &[u8], salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut first = salt.to_vec();
    first.extend_from_slice(&1u32.to_be_bytes());
    let mut u = hmac(password, &first);
    let mut out = u;
    for _ in 1..iterations {
        u = hmac(password, &u);
        out.iter_mut().zip(u).for_each(|(o, b)| *o ^= b);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==,
    /// 4096 iterations; the server signature it shows is HMAC(ServerKey, AuthMessage).
    #[test]
    fn rfc7677_test_vector() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = verifier("pencil", &salt);
        let server_key = STANDARD.decode(v.rsplit(':').next().unwrap()).unwrap();
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let signature = hmac(&server_key, auth_message.as_bytes());
        assert_eq!(STANDARD.encode(signature), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        // The client's proof in the same exchange must check out against StoredKey.
        let stored_key = STANDARD.decode(v.split('$').nth(2).unwrap().split(':').next().unwrap()).unwrap();
        let proof = STANDARD.decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=").unwrap();
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let client_key: Vec<u8> = proof.iter().zip(client_signature).map(|(p, s)| p ^ s).collect();
        assert_eq!(Sha256::digest(&client_key)[..], stored_key[..]);
        assert!(v.starts_with("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"));
    }

    #[test]
    fn generated_secrets_have_the_promised_shape() {
        let p = generate_password().unwrap();
        assert_eq!(p.len(), 43);
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_ne!(p, generate_password().unwrap());
        let j = generate_jwt_secret().unwrap();
        assert_eq!(STANDARD.decode(&j).unwrap().len(), 48);
    }
}
