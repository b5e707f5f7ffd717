//! `pinak`: the Pinak command line. For now one subcommand, `mint`, which prints an HS256
//! token for local development (the dev script uses it).

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

const USAGE: &str = "\
pinak: Pinak command line

Usage:
  pinak mint --tenant T --project P [options]   print a signed HS256 token
  pinak --help | pinak mint --help

Run `pinak mint --help` for the mint options.";

const MINT_USAGE: &str = "\
pinak mint: print an HS256 JWT for the Pinak API on stdout

Usage:
  pinak mint --tenant T --project P [options]

Options:
  --tenant T          tenant claim (required)
  --project P         project_id claim (required)
  --secret-file F     file holding the signing secret (one trailing newline is ignored);
                      without it, PINAK_JWT_SECRET is used
  --admin             add scope memory.admin and roles [\"admin\"]
  --scopes a,b        comma-separated scopes (default memory.read,memory.write)
  --sub S             subject (default local-dev)
  --client-id C       client_id claim (omitted by default)
  --ttl SECONDS       lifetime in seconds (default 3600)
  --issuer I          iss claim (default pinak-memory)
  --audience A        aud claim (default pinak-memory-api)
  -h, --help          show this help

The secret must be at least 32 bytes and not a published example
(`secret`, `dev-secret-change-me`). Exit status 2 on a usage error or a refused secret.";

/// Environment variable holding the signing secret when `--secret-file` is not given.
const SECRET_ENV: &str = "PINAK_JWT_SECRET";
/// Minimum secret length in bytes (HS256 key as long as the hash).
const MIN_SECRET_LEN: usize = 32;
/// Secrets published in the prototype's docs; refused whatever their length.
const PUBLISHED_SECRETS: [&str; 2] = ["secret", "dev-secret-change-me"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct MintArgs {
    tenant: String,
    project: String,
    secret_file: Option<PathBuf>,
    admin: bool,
    scopes: Vec<String>,
    sub: String,
    client_id: Option<String>,
    ttl: i64,
    issuer: String,
    audience: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Command {
    Help(&'static str),
    Mint(MintArgs),
}

/// A command-line mistake or refused input: reported as one line on stderr, exit status 2.
#[derive(Debug, PartialEq, Eq)]
struct Refusal(String);

impl Refusal {
    fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}

fn parse_args(args: &[String]) -> Result<Command, Refusal> {
    match args.first().map(String::as_str) {
        None => Err(Refusal::new("missing command (try `pinak --help`)")),
        Some("-h" | "--help" | "help") => Ok(Command::Help(USAGE)),
        Some("mint") => parse_mint(&args[1..]),
        Some(other) => Err(Refusal::new(format!("unknown command `{other}` (try `pinak --help`)"))),
    }
}

fn parse_mint(args: &[String]) -> Result<Command, Refusal> {
    let mut tenant = None;
    let mut project = None;
    let mut secret_file = None;
    let mut admin = false;
    let mut scopes = None;
    let mut sub = None;
    let mut client_id = None;
    let mut ttl = None;
    let mut issuer = None;
    let mut audience = None;

    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_owned())),
            _ => (arg, None),
        };
        match flag {
            "-h" | "--help" => return Ok(Command::Help(MINT_USAGE)),
            "--admin" => {
                if inline.is_some() {
                    return Err(Refusal::new("--admin takes no value"));
                }
                admin = true;
                continue;
            }
            _ => {}
        }
        let slot = match flag {
            "--tenant" => &mut tenant,
            "--project" => &mut project,
            "--secret-file" => &mut secret_file,
            "--scopes" => &mut scopes,
            "--sub" => &mut sub,
            "--client-id" => &mut client_id,
            "--ttl" => &mut ttl,
            "--issuer" => &mut issuer,
            "--audience" => &mut audience,
            _ => {
                return Err(Refusal::new(format!("unknown argument `{arg}` (try `pinak mint --help`)")));
            }
        };
        let value = match inline {
            Some(v) => v,
            None => match args.get(i) {
                Some(v) if !v.starts_with("--") => {
                    i += 1;
                    v.clone()
                }
                _ => return Err(Refusal::new(format!("{flag} needs a value"))),
            },
        };
        if slot.is_some() {
            return Err(Refusal::new(format!("{flag} given more than once")));
        }
        *slot = Some(value);
    }

    let required = |v: Option<String>, flag: &str| match v {
        Some(v) if !v.trim().is_empty() => Ok(v),
        Some(_) => Err(Refusal::new(format!("{flag} must not be empty"))),
        None => Err(Refusal::new(format!("{flag} is required (try `pinak mint --help`)"))),
    };
    let non_empty = |v: Option<String>, flag: &str, default: &str| match v {
        Some(v) if v.trim().is_empty() => Err(Refusal::new(format!("{flag} must not be empty"))),
        Some(v) => Ok(v),
        None => Ok(default.to_owned()),
    };

    let mut scopes: Vec<String> = match scopes {
        Some(s) => {
            let list: Vec<String> = s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect();
            if list.is_empty() {
                return Err(Refusal::new("--scopes must name at least one scope"));
            }
            list
        }
        None => vec!["memory.read".to_owned(), "memory.write".to_owned()],
    };
    if admin && !scopes.iter().any(|s| s == "memory.admin") {
        scopes.push("memory.admin".to_owned());
    }
    let ttl = match ttl {
        None => 3600,
        Some(t) => match t.parse::<i64>() {
            Ok(n) if n > 0 && n <= 10 * 365 * 24 * 3600 => n,
            _ => {
                return Err(Refusal::new(format!("--ttl must be a positive number of seconds, got `{t}`")));
            }
        },
    };
    if matches!(&client_id, Some(c) if c.trim().is_empty()) {
        return Err(Refusal::new("--client-id must not be empty"));
    }

    Ok(Command::Mint(MintArgs {
        tenant: required(tenant, "--tenant")?,
        project: required(project, "--project")?,
        secret_file: secret_file.map(PathBuf::from),
        admin,
        scopes,
        sub: non_empty(sub, "--sub", "local-dev")?,
        client_id,
        ttl,
        issuer: non_empty(issuer, "--issuer", "pinak-memory")?,
        audience: non_empty(audience, "--audience", "pinak-memory-api")?,
    }))
}

/// Reads the secret from `--secret-file` (dropping one trailing newline) or from the
/// environment value, and refuses missing, short and published secrets.
fn load_secret(args: &MintArgs, env_value: Option<OsString>) -> Result<Vec<u8>, Refusal> {
    let secret = match &args.secret_file {
        Some(path) => {
            let mut bytes = std::fs::read(path)
                .map_err(|e| Refusal::new(format!("cannot read secret file {}: {e}", path.display())))?;
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
                return Err(Refusal::new(format!("no signing secret: set {SECRET_ENV} or pass --secret-file")));
            }
        },
    };
    check_secret(&secret)?;
    Ok(secret)
}

fn check_secret(secret: &[u8]) -> Result<(), Refusal> {
    if secret.is_empty() {
        return Err(Refusal::new(format!("no signing secret: {SECRET_ENV} / --secret-file is empty")));
    }
    if PUBLISHED_SECRETS.iter().any(|p| p.as_bytes() == secret) {
        return Err(Refusal::new(
            "refusing a published example secret: the signing secret must be set to a non-default value",
        ));
    }
    if secret.len() < MIN_SECRET_LEN {
        return Err(Refusal::new(format!(
            "signing secret is {} bytes; at least {MIN_SECRET_LEN} are required",
            secret.len()
        )));
    }
    Ok(())
}

/// The token's claims, at time `now` (Unix seconds) with the given `jti`.
fn claims(args: &MintArgs, now: i64, jti: &str) -> Value {
    let mut c = Map::new();
    c.insert("sub".into(), json!(args.sub));
    c.insert("tenant".into(), json!(args.tenant));
    c.insert("project_id".into(), json!(args.project));
    c.insert("iss".into(), json!(args.issuer));
    c.insert("aud".into(), json!(args.audience));
    c.insert("iat".into(), json!(now));
    c.insert("exp".into(), json!(now + args.ttl));
    c.insert("jti".into(), json!(jti));
    c.insert("scopes".into(), json!(args.scopes));
    if args.admin {
        c.insert("roles".into(), json!(["admin"]));
    }
    if let Some(id) = &args.client_id {
        c.insert("client_id".into(), json!(id));
    }
    Value::Object(c)
}

fn mint(args: &MintArgs, secret: &[u8], now: i64) -> Result<String, jsonwebtoken::errors::Error> {
    let jti = uuid::Uuid::new_v4().simple().to_string();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims(args, now, &jti), &EncodingKey::from_secret(secret))
}

/// What to print on stdout (help text or the token), or a refusal.
fn run(args: &[String]) -> Result<String, Refusal> {
    let args = match parse_args(args)? {
        Command::Help(text) => return Ok(text.to_owned()),
        Command::Mint(args) => args,
    };
    let secret = load_secret(&args, std::env::var_os(SECRET_ENV))?;
    let now = chrono::Utc::now().timestamp();
    mint(&args, &secret, now).map_err(|e| Refusal::new(format!("cannot sign token: {e}")))
}

fn main() -> ExitCode {
    let args: Vec<String> = match std::env::args_os().skip(1).map(OsString::into_string).collect::<Result<_, _>>() {
        Ok(a) => a,
        Err(_) => {
            eprintln!("pinak: arguments must be valid UTF-8");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(out) => {
            // Write errors (e.g. a closed pipe) must not panic.
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{out}").and_then(|()| stdout.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(_) => ExitCode::FAILURE,
            }
        }
        Err(Refusal(msg)) => {
            eprintln!("pinak: {msg}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    fn mint_args(s: &str) -> MintArgs {
        match parse_args(&argv(s)).unwrap() {
            Command::Mint(a) => a,
            other => panic!("{other:?}"),
        }
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
        let args = mint_args("mint --tenant acme --project proj1");
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
        assert_eq!(args.scopes, ["memory.admin", "memory.read"]);
        // Default scopes plus admin.
        let args = mint_args("mint --tenant t --project p --admin");
        assert_eq!(args.scopes, ["memory.read", "memory.write", "memory.admin"]);
    }

    #[test]
    fn distinct_jti_per_token() {
        let args = mint_args("mint --tenant t --project p");
        let now = chrono::Utc::now().timestamp();
        let a = decode(
            &mint(&args, SECRET.as_bytes(), now).unwrap(),
            SECRET.as_bytes(),
            "pinak-memory",
            "pinak-memory-api",
        );
        let b = decode(
            &mint(&args, SECRET.as_bytes(), now).unwrap(),
            SECRET.as_bytes(),
            "pinak-memory",
            "pinak-memory-api",
        );
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

    #[test]
    fn refuses_missing_short_and_published_secrets() {
        let args = mint_args("mint --tenant t --project p");
        let err = load_secret(&args, None).unwrap_err();
        assert!(err.0.contains("PINAK_JWT_SECRET"), "{err:?}");
        for bad in ["", "secret", "dev-secret-change-me", "test-secret", "x".repeat(31).as_str()] {
            assert!(load_secret(&args, Some(bad.into())).is_err(), "{bad:?} should be refused");
        }
        assert!(check_secret(b"secret").unwrap_err().0.contains("published"));
        assert!(check_secret(&[b'x'; 31]).unwrap_err().0.contains("31 bytes"));
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
        assert!(load_secret(&args, None).unwrap_err().0.contains("cannot read"));
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
            "mint --tenant t --project p --scopes ,",
            "mint --tenant t --project p --admin=yes",
            "mint --tenant t --project p --sub",
            "frobnicate",
        ] {
            assert!(parse_args(&argv(bad)).is_err(), "{bad:?} should be rejected");
        }
        assert!(matches!(parse_args(&argv("--help")), Ok(Command::Help(_))));
        assert!(parse_args(&argv("")).is_err());
        assert!(matches!(parse_args(&argv("mint --help")), Ok(Command::Help(MINT_USAGE))));
    }
}
