//! `pinak token mint`: a token signed with the HS256 secret (local development; the dev script
//! and the Helm chart's NOTES.txt use it, under its older name `pinak mint`), or with a private
//! key whose public half the API holds under a `kid`.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::builder::NonEmptyStringValueParser;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

use crate::Failure;

/// Environment variable holding the signing secret when `--secret-file` is not given.
const SECRET_ENV: &str = "PINAK_JWT_SECRET";
/// Minimum secret length in bytes (HS256 key as long as the hash).
const MIN_SECRET_LEN: usize = 32;
/// Secrets published in the prototype's docs; refused whatever their length.
const PUBLISHED_SECRETS: [&str; 2] = ["secret", "dev-secret-change-me"];

/// Print a JWT for the Pinak API on stdout.
///
/// Signed with the HS256 secret, which must be at least 32 bytes and not a published example
/// (`secret`, `dev-secret-change-me`; a refused secret exits with status 2), or with
/// `--key-file` and `--kid`.
#[derive(Debug, Clone, clap::Args)]
pub struct MintArgs {
    /// tenant claim
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub tenant: String,
    /// project_id claim
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub project: String,
    /// File holding the signing secret (one trailing newline is ignored); without it,
    /// PINAK_JWT_SECRET is used
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// PEM private key to sign with instead of the secret: Ed25519 (EdDSA), RSA (RS256) or EC
    /// P-256/P-384 (ES256/ES384); the API verifies it with the public key named by --kid
    #[arg(long, requires = "kid", conflicts_with = "secret_file")]
    pub key_file: Option<PathBuf>,
    /// Key id sent in the token's header: the public key's name in the API's
    /// PINAK_JWT_KEYS_DIR (file name without extension) or JWKS
    #[arg(long, requires = "key_file", value_parser = NonEmptyStringValueParser::new())]
    pub kid: Option<String>,
    /// Add scope memory.admin and roles ["admin"]
    #[arg(long)]
    pub admin: bool,
    /// Comma-separated scopes
    #[arg(long, value_delimiter = ',', default_value = "memory.read,memory.write")]
    pub scopes: Vec<String>,
    /// Subject
    #[arg(long, default_value = "local-dev", value_parser = NonEmptyStringValueParser::new())]
    pub sub: String,
    /// client_id claim (omitted by default)
    #[arg(long, value_parser = NonEmptyStringValueParser::new())]
    pub client_id: Option<String>,
    /// Lifetime in seconds
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(1..=10 * 365 * 24 * 3600))]
    pub ttl: i64,
    /// iss claim
    #[arg(long, default_value = "pinak-memory", value_parser = NonEmptyStringValueParser::new())]
    pub issuer: String,
    /// aud claim
    #[arg(long, default_value = "pinak-memory-api", value_parser = NonEmptyStringValueParser::new())]
    pub audience: String,
}

impl MintArgs {
    /// The scopes as the token carries them: blanks dropped, memory.admin added for `--admin`.
    fn scopes(&self) -> Result<Vec<String>, Failure> {
        let mut scopes: Vec<String> =
            self.scopes.iter().map(|s| s.trim()).filter(|s| !s.is_empty()).map(str::to_owned).collect();
        if scopes.is_empty() {
            return Err(Failure::Usage("--scopes must name at least one scope".into()));
        }
        if self.admin && !scopes.iter().any(|s| s == "memory.admin") {
            scopes.push("memory.admin".to_owned());
        }
        Ok(scopes)
    }
}

/// Reads the secret from `--secret-file` (dropping one trailing newline) or from the
/// environment value, and refuses missing, short and published secrets.
fn load_secret(args: &MintArgs, env_value: Option<OsString>) -> Result<Vec<u8>, Failure> {
    let secret = match &args.secret_file {
        Some(path) => {
            let mut bytes = std::fs::read(path)
                .map_err(|e| Failure::Usage(format!("cannot read secret file {}: {e}", path.display())))?;
            if bytes.last() == Some(&b'\n') {
                bytes.pop();
                if bytes.last() == Some(&b'\r') {
                    bytes.pop();
                }
            }
            bytes
        }
        None => match env_value {
            Some(v) => v.into_encoded_bytes(),
            None => {
                return Err(Failure::Usage(format!("no signing secret: set {SECRET_ENV} or pass --secret-file")));
            }
        },
    };
    check_secret(&secret)?;
    Ok(secret)
}

fn check_secret(secret: &[u8]) -> Result<(), Failure> {
    if secret.is_empty() {
        return Err(Failure::Usage(format!("no signing secret: {SECRET_ENV} / --secret-file is empty")));
    }
    if PUBLISHED_SECRETS.iter().any(|p| p.as_bytes() == secret) {
        return Err(Failure::Usage(
            "refusing a published example secret: the signing secret must be set to a non-default value".into(),
        ));
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(Failure::Usage(format!(
            "signing secret is {} bytes; at least {MIN_SECRET_LEN} are required",
            secret.len()
        )));
    }
    Ok(())
}

/// The token's claims, at time `now` (Unix seconds) with the given `jti`.
fn claims(args: &MintArgs, scopes: &[String], now: i64, jti: &str) -> Value {
    let mut c = Map::new();
    c.insert("sub".into(), json!(args.sub));
    c.insert("tenant".into(), json!(args.tenant));
    c.insert("project_id".into(), json!(args.project));
    c.insert("iss".into(), json!(args.issuer));
    c.insert("aud".into(), json!(args.audience));
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now + args.ttl));
    c.insert("jti".into(), json!(jti));
    c.insert("scopes".into(), json!(scopes));
    if args.admin {
        c.insert("roles".into(), json!(["admin"]));
    }
    if let Some(id) = &args.client_id {
        c.insert("client_id".into(), json!(id));
    }
    Value::Object(c)
}

fn mint(args: &MintArgs, secret: &[u8], now: i64) -> Result<String, Failure> {
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let claims = claims(args, &args.scopes()?, now, &jti);
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
        .map_err(|e| Failure::Other(format!("cannot sign token: {e}")))
}

/// Signs `claims` with the private key `pem`: the first algorithm the key serves.
fn sign_with_key(pem: &[u8], kid: &str, claims: &Value) -> Result<String, Failure> {
    type Load = fn(&[u8]) -> jsonwebtoken::errors::Result<EncodingKey>;
    let candidates: [(Algorithm, Load); 4] = [
        (Algorithm::EdDSA, EncodingKey::from_ed_pem),
        (Algorithm::RS256, EncodingKey::from_rsa_pem),
        (Algorithm::ES256, EncodingKey::from_ec_pem),
        (Algorithm::ES384, EncodingKey::from_ec_pem),
    ];
    for (alg, load) in candidates {
        let Ok(key) = load(pem) else { continue };
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_owned());
        if let Ok(token) = jsonwebtoken::encode(&header, claims, &key) {
            return Ok(token);
        }
    }
    Err(Failure::Usage("--key-file is not a PEM private key of Ed25519, RSA, or EC P-256/P-384".into()))
}

/// The signed token: with `--key-file`, or with the secret from the file or the environment.
pub fn run(args: &MintArgs) -> Result<String, Failure> {
    let now = chrono::Utc::now().timestamp();
    match (&args.key_file, &args.kid) {
        (Some(path), Some(kid)) => {
            let pem = std::fs::read(path)
                .map_err(|e| Failure::Usage(format!("cannot read key file {}: {e}", path.display())))?;
            let jti = uuid::Uuid::new_v4().simple().to_string();
            sign_with_key(&pem, kid, &claims(args, &args.scopes()?, now, &jti))
        }
        _ => mint(args, &load_secret(args, std::env::var_os(SECRET_ENV))?, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Cli, Command, TokenCommand};
    use clap::Parser;
    use jsonwebtoken::{DecodingKey, Validation};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn parse(s: &str) -> Result<MintArgs, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("pinak").chain(s.split_whitespace()))?;
        match cli.command {
            Command::Mint(a) | Command::Token { command: TokenCommand::Mint(a) } => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    fn mint_args(s: &str) -> MintArgs {
        parse(s).unwrap()
    }

    fn decode(token: &str, secret: &[u8], iss: &str, aud: &str) -> Value {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[iss]);
        v.set_audience(&[aud]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "jti"]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_secret(secret), &v).unwrap().claims
    }

    #[test]
    fn default_token_has_the_claims() {
        let args = mint_args("token mint --tenant acme --project proj1");
        let now = chrono::Utc::now().timestamp();
        let token = mint(&args, SECRET.as_bytes(), now).unwrap();
        let c = decode(&token, SECRET.as_bytes(), "pinak-memory", "pinak-memory-api");
        assert_eq!(c["sub"], "local-dev");
        assert_eq!(c["tenant"], "acme");
        assert_eq!(c["project_id"], "proj1");
        assert_eq!(c["iss"], "pinak-memory");
        assert_eq!(c["aud"], "pinak-memory-api");
        assert_eq!(c["iat"], now);
        assert_eq!(c["exp"], now + 3600);
        assert_eq!(c["scopes"], json!(["memory.read", "memory.write"]));
        let jti = c["jti"].as_str().unwrap();
        assert_eq!(jti.len(), 32);
        assert!(jti.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(c.get("roles").is_none());
        assert!(c.get("client_id").is_none());
    }

    #[test]
    fn admin_and_options() {
        // The old top-level form stays accepted.
        let args = mint_args(
            "mint --tenant t --project=p --admin --scopes memory.read --sub bob \
             --client-id cli-1 --ttl 60 --issuer me --audience=them",
        );
        let token = mint(&args, SECRET.as_bytes(), chrono::Utc::now().timestamp()).unwrap();
        let c = decode(&token, SECRET.as_bytes(), "me", "them");
        assert_eq!(c["scopes"], json!(["memory.read", "memory.admin"]));
        assert_eq!(c["roles"], json!(["admin"]));
        assert_eq!(c["sub"], "bob");
        assert_eq!(c["client_id"], "cli-1");
        assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 60);

        // memory.admin is not duplicated.
        let args = mint_args("mint --tenant t --project p --admin --scopes memory.admin,memory.read");
        assert_eq!(args.scopes().unwrap(), ["memory.admin", "memory.read"]);
        // Default scopes plus admin.
        let args = mint_args("token mint --tenant t --project p --admin");
        assert_eq!(args.scopes().unwrap(), ["memory.read", "memory.write", "memory.admin"]);
    }

    #[test]
    fn distinct_jti_per_token() {
        let args = mint_args("mint --tenant t --project p");
        let now = chrono::Utc::now().timestamp();
        let [a, b] = [(); 2].map(|()| {
            decode(&mint(&args, SECRET.as_bytes(), now).unwrap(), SECRET.as_bytes(), "pinak-memory", "pinak-memory-api")
        });
        assert_ne!(a["jti"], b["jti"]);
    }

    #[test]
    fn wrong_secret_does_not_verify() {
        let args = mint_args("mint --tenant t --project p");
        let token = mint(&args, SECRET.as_bytes(), chrono::Utc::now().timestamp()).unwrap();
        let v = Validation::new(Algorithm::HS256);
        let other = b"another-secret-that-is-long-enough-0000";
        assert!(jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_secret(other), &v).is_err());
    }

    fn refusal(r: Result<impl std::fmt::Debug, Failure>) -> String {
        match r {
            Err(Failure::Usage(m)) => m,
            other => panic!("expected a usage refusal, got {other:?}"),
        }
    }

    #[test]
    fn refuses_missing_short_and_published_secrets() {
        let args = mint_args("mint --tenant t --project p");
        assert!(refusal(load_secret(&args, None)).contains("PINAK_JWT_SECRET"));
        for bad in ["", "secret", "dev-secret-change-me", "test-secret", "x".repeat(31).as_str()] {
            assert!(load_secret(&args, Some(bad.into())).is_err(), "{bad:?} should be refused");
        }
        assert!(refusal(check_secret(b"secret")).contains("published"));
        assert!(refusal(check_secret(&[b'x'; 31])).contains("31 bytes"));
        assert_eq!(load_secret(&args, Some("y".repeat(32).into())).unwrap(), vec![b'y'; 32]);
    }

    #[test]
    fn secret_file_trailing_newline_is_trimmed() {
        let dir = std::env::temp_dir().join(format!("pinak-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret");
        std::fs::write(&path, format!("{SECRET}\n")).unwrap();
        let mut args = mint_args("mint --tenant t --project p");
        args.secret_file = Some(path.clone());
        // The file wins over the environment.
        assert_eq!(load_secret(&args, Some("z".repeat(40).into())).unwrap(), SECRET.as_bytes());
        std::fs::write(&path, format!("{SECRET}\r\n")).unwrap();
        assert_eq!(load_secret(&args, None).unwrap(), SECRET.as_bytes());
        std::fs::write(&path, "dev-secret-change-me\n").unwrap();
        assert!(load_secret(&args, None).is_err());
        std::fs::write(&path, "\n").unwrap();
        assert!(load_secret(&args, None).is_err());
        args.secret_file = Some(dir.join("absent"));
        assert!(refusal(load_secret(&args, None)).contains("cannot read"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn usage_errors() {
        for bad in [
            "mint --project p",
            "mint --tenant t",
            "mint --tenant --project p",
            "mint --tenant t --project p --ttl 0",
            "mint --tenant t --project p --ttl abc",
            "mint --tenant t --project p --bogus",
            "mint --tenant t --tenant u --project p",
            "mint --tenant t --project p --admin=yes",
            "mint --tenant t --project p --sub",
            "frobnicate",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        assert!(refusal(mint_args("mint --tenant t --project p --scopes ,").scopes()).contains("--scopes"));
        assert_eq!(parse("--help").unwrap_err().kind(), clap::error::ErrorKind::DisplayHelp);
        assert_eq!(parse("mint --help").unwrap_err().kind(), clap::error::ErrorKind::DisplayHelp);
    }
}
