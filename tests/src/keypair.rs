//! Signing key pairs for test tokens, made by the `openssl` CLI: the private key signs, the
//! public key goes to the API (a keys directory, a JWKS, or Vault).

use std::process::{Command, Stdio};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::Value;

#[derive(Clone)]
pub struct KeyPair {
    pub alg: Algorithm,
    pub private_pem: Vec<u8>,
    pub public_pem: Vec<u8>,
}

/// Runs `openssl args` with `stdin`; its standard output.
pub fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI is needed to generate test keys (apt-get install openssl)");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

impl KeyPair {
    pub fn generate(alg: Algorithm, genpkey: &[&str]) -> Self {
        let private_pem = openssl(&[&["genpkey"], genpkey].concat(), b"");
        let public_pem = openssl(&["pkey", "-pubout"], &private_pem);
        KeyPair { alg, private_pem, public_pem }
    }
    pub fn ed25519() -> Self {
        Self::generate(Algorithm::EdDSA, &["-algorithm", "ed25519"])
    }
    pub fn rsa() -> Self {
        Self::rsa_bits(2048)
    }
    pub fn rsa_bits(bits: u32) -> Self {
        Self::generate(Algorithm::RS256, &["-algorithm", "RSA", "-pkeyopt", &format!("rsa_keygen_bits:{bits}")])
    }
    pub fn p256() -> Self {
        Self::generate(Algorithm::ES256, &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"])
    }
    /// The same key for another algorithm of its family (e.g. PS256 for an RSA key).
    pub fn with_alg(&self, alg: Algorithm) -> Self {
        KeyPair { alg, ..self.clone() }
    }
    pub fn encoding_key(&self) -> EncodingKey {
        match self.alg {
            Algorithm::EdDSA => EncodingKey::from_ed_pem(&self.private_pem),
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&self.private_pem),
            _ => EncodingKey::from_rsa_pem(&self.private_pem),
        }
        .unwrap()
    }
    /// Public JWK (with `alg`, and `kid` when given).
    pub fn jwk(&self, kid: Option<&str>) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding_key(), self.alg).unwrap();
        jwk.common.key_id = kid.map(String::from);
        serde_json::to_value(jwk).unwrap()
    }
    /// A token with `claims`, signed by this key, with `kid` in the header.
    pub fn token_with(&self, kid: Option<&str>, claims: Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(String::from);
        encode(&header, &claims, &self.encoding_key()).unwrap()
    }
}
