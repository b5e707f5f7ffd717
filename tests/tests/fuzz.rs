//! Deterministic fuzz storm over every route: "no 5xx, no panic, no partial write".
//!
//! A seeded xorshift PRNG (override with `PINAK_FUZZ_SEED`) drives mutations of a valid
//! request per route: malformed JSON, wrong types for every field, huge and hostile strings
//! (NUL, emoji, RTL, combining marks, SQL/tsquery/LIKE metacharacters), bodies over the cap,
//! bad path and query parameters, wrong methods and tokens. Every response must be < 500
//! (except the contract's `capture_disabled` 503) with a JSON `detail` on errors. Afterwards
//! the store must hold exactly the rows that 2xx responses announced, every record must have
//! its access row, every access row its audit row, and the audit chain must verify.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pinak_tests::{TestApi, Token};
use reqwest::Method;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TENANT: &str = "t1";
const PROJECT: &str = "p1";
const HUGE_BYTES: usize = 900_000;
const CONCURRENCY: usize = 8;

// ------------------------------------------------------------------ PRNG ---

struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())].clone()
    }
}

// ------------------------------------------------------------- material ---

const META: &str = "' ; -- % _ \\ & | ! : * ( ) <-> \"";
const META_CHARS: &[char] =
    &['\'', ';', '-', '%', '_', '\\', '&', '|', '!', ':', '*', '(', ')', '<', '>', '"', ' ', 'a', '$', '?', '\u{0}'];
const UNICODE_PIECES: &[&str] = &[
    "🧠",
    "👩‍👩‍👧‍👦",
    "שלום",
    "مرحبا",
    "\u{202E}",
    "\u{202C}",
    "e\u{301}",
    "Z\u{337}\u{322}\u{31b}\u{330}\u{308}",
    "日本語",
    "\u{FEFF}",
    "\u{200B}",
    " ",
    "ß",
    "İ",
    "\u{10FFFF}",
    "\u{FFFD}",
];

fn random_words(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 16);
    while s.len() < bytes {
        let n = 2 + rng.below(10);
        for _ in 0..n {
            s.push((b'a' + rng.below(26) as u8) as char);
        }
        s.push(' ');
    }
    s
}

fn random_unicode(rng: &mut Rng, bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 32);
    while s.len() < bytes {
        s.push_str(UNICODE_PIECES[rng.below(UNICODE_PIECES.len())]);
    }
    s
}

fn random_meta(rng: &mut Rng, len: usize) -> String {
    (0..len).map(|_| rng.pick(META_CHARS)).collect()
}

/// Small hostile strings (safe to put anywhere, including URLs).
fn hostile_strings(rng: &mut Rng) -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("spaces", "   ".into()),
        ("emoji", "🧠💾🔥 👩‍👩‍👧‍👦".into()),
        ("rtl", "שלום עולם مرحبا \u{202E}txt.exe\u{202C}".into()),
        ("combining", "e\u{301}\u{302}\u{303}\u{304}".repeat(50)),
        ("nul", "a\u{0}b".into()),
        ("nul_only", "\u{0}".into()),
        ("controls", "\u{1}\u{8}\u{1b}[31m\u{7f}\r\n\t".into()),
        ("meta", META.into()),
        ("sql", "'; DROP TABLE memories_semantic; --".into()),
        ("like", "%_%\\%\\_".into()),
        ("tsquery", "a & !b | c:* <-> (d".into()),
        ("long300", "x".repeat(300)),
        ("long10k", random_words(rng, 10_000)),
        ("rand_meta", random_meta(rng, 64)),
        ("rand_unicode", random_unicode(rng, 256)),
    ]
}

fn wrong_types() -> Vec<Value> {
    vec![
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(-0.0),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(-1e300),
        json!(""),
        json!("x"),
        json!([]),
        json!([1, "a", null]),
        json!({}),
        json!({"a": {"b": [1]}}),
    ]
}

fn nested_arrays(depth: usize) -> Value {
    let mut v = json!("bottom");
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

/// A random JSON value of bounded depth.
fn random_value(rng: &mut Rng, depth: usize) -> Value {
    let choices = if depth == 0 { 6 } else { 8 };
    match rng.below(choices) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!((rng.next() % 2000) as f64 / 7.0 - 100.0),
        4 => {
            let n = rng.below(20);
            json!(random_meta(rng, n))
        }
        5 => {
            let n = rng.below(40);
            json!(random_unicode(rng, n))
        }
        6 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth - 1)).collect()),
        _ => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                let n = 1 + rng.below(6);
                m.insert(random_meta(rng, n), random_value(rng, depth - 1));
            }
            Value::Object(m)
        }
    }
}

fn hex(bytes: impl AsRef<[u8]>) -> String {
    bytes.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// ------------------------------------------------------------- requests ---

#[derive(Clone)]
struct Req {
    /// Route template (as in `api/src/routes/mod.rs`), for accounting.
    route: &'static str,
    method: Method,
    path: String,
    body: Option<Vec<u8>>,
    auth: Option<String>,
    headers: Vec<(&'static str, String)>,
    /// Send byte-exact over a raw socket (paths with dot segments that URL parsers rewrite).
    raw: bool,
    note: String,
}

impl Req {
    fn new(route: &'static str, method: Method, path: impl Into<String>, auth: &str, note: impl Into<String>) -> Self {
        Req {
            route,
            method,
            path: path.into(),
            body: None,
            auth: Some(format!("Bearer {auth}")),
            headers: Vec::new(),
            raw: false,
            note: note.into(),
        }
    }
    fn json(mut self, v: &Value) -> Self {
        self.body = Some(serde_json::to_vec(v).unwrap());
        self
    }
    fn bytes(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = Some(b.into());
        self
    }
    fn describe(&self) -> String {
        let body = match &self.body {
            None => "<none>".to_string(),
            Some(b) => {
                let s = String::from_utf8_lossy(b);
                let short: String = s.chars().take(240).collect();
                format!("{} bytes: {short}{}", b.len(), if s.chars().count() > 240 { "…" } else { "" })
            }
        };
        let path: String = self.path.chars().take(240).collect();
        format!(
            "[{}] {} {path} body={body} headers={:?}",
            self.note,
            self.method,
            self.headers.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
        )
    }
}

struct Outcome {
    status: u16,
    json: Option<Value>,
    text: String,
    has_request_id: bool,
}

async fn send(client: &reqwest::Client, base: &str, r: &Req) -> Result<Outcome, String> {
    if r.raw {
        return send_raw(base, r).await;
    }
    let mut rb = client.request(r.method.clone(), format!("{base}{}", r.path));
    if let Some(a) = &r.auth {
        rb = rb.header("authorization", a);
    }
    for (k, v) in &r.headers {
        rb = rb.header(*k, v);
    }
    if let Some(b) = &r.body {
        rb = rb.header("content-type", "application/json").body(b.clone());
    }
    let resp = rb.send().await.map_err(|e| format!("transport error (panic or dropped connection?): {e:?}"))?;
    let status = resp.status().as_u16();
    let has_request_id = resp.headers().contains_key("x-request-id");
    let text = resp.text().await.map_err(|e| format!("body read error: {e}"))?;
    Ok(Outcome { status, json: serde_json::from_str(&text).ok(), text, has_request_id })
}

/// HTTP/1.1 over a plain socket, path sent byte for byte.
async fn send_raw(base: &str, r: &Req) -> Result<Outcome, String> {
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut head =
        format!("{} {} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: 0\r\n", r.method, r.path);
    if let Some(a) = &r.auth {
        head.push_str(&format!("authorization: {a}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .map_err(|_| "raw read timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no HTTP response: {text:?}"))?;
    let status =
        head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line: {head:?}"))?;
    let has_request_id = head.to_ascii_lowercase().contains("\r\nx-request-id:");
    Ok(Outcome { status, json: serde_json::from_str(body).ok(), text: body.to_owned(), has_request_id })
}

/// The response rules every request must satisfy; `None` when it does.
fn violation(r: &Req, o: &Outcome) -> Option<String> {
    if !o.has_request_id {
        return Some("no x-request-id header".into());
    }
    if o.status >= 500 {
        let capture_disabled = r.path.starts_with("/api/v1/memory/capture")
            && o.status == 503
            && o.json.as_ref().is_some_and(|j| j["detail"]["code"] == "capture_disabled");
        if !capture_disabled {
            return Some(format!("status {}", o.status));
        }
    }
    if o.status >= 400 && o.json.as_ref().is_none_or(|j| j.get("detail").is_none()) {
        return Some(format!("status {} without a JSON detail", o.status));
    }
    // Successes are JSON, except Prometheus text, the HTML reference and an export's JSON lines.
    let json_lines = r.path == "/api/v1/memory/export"
        && o.text.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object()));
    if (200..300).contains(&o.status)
        && o.status != 204
        && !["/metrics", "/docs"].contains(&r.path.as_str())
        && !json_lines
        && o.json.is_none()
    {
        return Some(format!("status {} with a non-JSON body", o.status));
    }
    None
}

// ---------------------------------------------------------------- ledger ---

/// What the store must contain, from the 2xx responses.
#[derive(Default)]
struct Ledger {
    rows: BTreeMap<&'static str, i64>,
    /// `logs_access` write rows per target layer.
    writes: BTreeMap<&'static str, i64>,
    jtis: HashSet<String>,
}

fn layer_table(layer: &str) -> Option<(&'static str, &'static str)> {
    Some(match layer {
        "semantic" => ("semantic", "memories_semantic"),
        "episodic" => ("episodic", "memories_episodic"),
        "procedural" => ("procedural", "memories_procedural"),
        "rag" => ("rag", "memories_rag"),
        "working" => ("working", "working_memory"),
        "session" => ("session", "logs_session"),
        "event" => ("event", "logs_events"),
        _ => return None,
    })
}

impl Ledger {
    fn add_row(&mut self, layer: &str) {
        let (name, table) = layer_table(layer).expect("known layer");
        *self.rows.entry(table).or_default() += 1;
        *self.writes.entry(name).or_default() += 1;
    }
    fn bump(&mut self, table: &'static str, n: i64) {
        *self.rows.entry(table).or_default() += n;
    }

    /// Books a response; `Err` for a success status a route must never give.
    fn book(&mut self, r: &Req, o: &Outcome) -> Result<(), String> {
        if !(200..300).contains(&o.status) {
            return Ok(());
        }
        let body = o.json.clone().unwrap_or(Value::Null);
        let m = r.method.as_str();
        let expect =
            |want: u16| if o.status == want { Ok(()) } else { Err(format!("unexpected success status {}", o.status)) };
        let added = match (m, r.route) {
            ("POST", "/add") => Some("semantic"),
            ("POST", "/episodic/add") => Some("episodic"),
            ("POST", "/procedural/add") => Some("procedural"),
            ("POST", "/rag/add") => Some("rag"),
            ("POST", "/working/add") => Some("working"),
            ("POST", "/session/add") => Some("session"),
            ("POST", "/event") => Some("event"),
            _ => None,
        };
        if let Some(layer) = added {
            expect(201)?;
            self.add_row(layer);
            return Ok(());
        }
        match (m, r.route) {
            ("POST", "/quarantine/propose/{layer}") => {
                expect(202)?;
                self.bump("memory_quarantine", 1);
                if body["validation_errors"].as_array().is_some_and(|e| !e.is_empty()) {
                    self.bump("logs_client_issues", 1);
                }
            }
            ("POST", "/quarantine/approve/{item_id}") => {
                self.add_row(body["layer"].as_str().ok_or("approve without layer")?)
            }
            ("DELETE", "/{layer}/{memory_id}") => {
                expect(204)?;
                let layer = r.path.trim_start_matches("/api/v1/memory/").split('/').next().unwrap_or_default();
                let (_, table) = layer_table(layer).ok_or("delete of an unknown layer succeeded")?;
                self.bump(table, -1);
            }
            ("POST", "/client/issues") => {
                expect(201)?;
                self.bump("logs_client_issues", 1);
            }
            ("POST", "/units") => {
                expect(201)?;
                self.bump("memory_units", 1);
                self.bump("memory_unit_members", body["members"].as_array().map_or(0, |m| m.len() as i64));
            }
            ("POST", "/api/v1/auth/revoke") => {
                expect(204)?;
                let sent: Value =
                    serde_json::from_slice(r.body.as_deref().unwrap_or_default()).map_err(|e| e.to_string())?;
                self.jtis.insert(sent["jti"].as_str().ok_or("revoke without jti")?.to_owned());
            }
            (_, "wrong method" | "unmatched" | "raw") => return Err(format!("unexpected success status {}", o.status)),
            _ => {}
        }
        Ok(())
    }
}

// ------------------------------------------------------------ generation ---

/// A valid request body for a route, to be mutated.
struct Template {
    route: &'static str,
    method: Method,
    path: String,
    body: Value,
    auth: String,
}

struct Seeds {
    semantic: String,
    episodic: String,
    procedural: String,
    rag: String,
    issue: String,
    quarantine: Vec<String>,
}

const MEM: &str = "/api/v1/memory";

fn capture_envelope() -> Value {
    json!({
        "tenant_id": TENANT, "agent_id": "agent-1", "client_id": "client-a", "client_version": "1.0",
        "session_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV", "event_id": "01ARZ3NDEKTSV4RRFFQ69G5FAW", "task_id": null,
        "sequence": 1, "client_ts": "2024-01-01T00:00:00Z", "actor": "user", "event_type": "message",
        "payload": {"text": "hi"}, "payload_hash": "a".repeat(64), "boundary_source": "client_hook",
        "source": "api", "provenance": {"via": "fuzz"}, "envelope_version": "0.3",
    })
}

fn templates(s: &Seeds, admin: &str, capture: &str) -> Vec<Template> {
    let t = |route: &'static str, method: Method, path: String, body: Value| Template {
        route,
        method,
        path,
        body,
        auth: admin.to_owned(),
    };
    let mem = |p: &str| format!("{MEM}{p}");
    vec![
        t("/add", Method::POST, mem("/add"), json!({"content": "fuzz semantic note", "tags": ["a", "b"]})),
        t(
            "/episodic/add",
            Method::POST,
            mem("/episodic/add"),
            json!({"content": "fuzz episode", "salience": 3, "goal": "g", "plan": ["p1"], "outcome": "o", "tool_logs": [{"tool": "t"}]}),
        ),
        t(
            "/procedural/add",
            Method::POST,
            mem("/procedural/add"),
            json!({"skill_name": "fuzz skill", "steps": ["s1"], "description": "d", "trigger": "t", "code_snippet": "c"}),
        ),
        t(
            "/rag/add",
            Method::POST,
            mem("/rag/add"),
            json!({"query": "q", "external_source": "https://e.test", "content": "c"}),
        ),
        t(
            "/working/add",
            Method::POST,
            mem("/working/add"),
            json!({"content": "fuzz working", "session_id": "s", "key": "k", "ttl_seconds": 600}),
        ),
        t(
            "/working/add",
            Method::POST,
            mem("/working/add"),
            json!({"content": "fuzz working", "expires_at": "2999-01-01T00:00:00Z"}),
        ),
        t(
            "/session/add",
            Method::POST,
            mem("/session/add"),
            json!({"session_id": "s1", "content": "c", "role": "user", "ttl_seconds": 600}),
        ),
        t(
            "/session/add",
            Method::POST,
            mem("/session/add"),
            json!({"session_id": "s1", "content": "c", "expires_at": "2999-01-01T00:00:00+05:30"}),
        ),
        t("/event", Method::POST, mem("/event"), json!({"event_type": "fuzz", "payload": {"k": "v", "n": 1}})),
        t(
            "/agent/heartbeat",
            Method::POST,
            mem("/agent/heartbeat"),
            json!({"status": "active", "hostname": "h", "pid": "123", "meta": {"k": "v"}}),
        ),
        t(
            "/client/register",
            Method::POST,
            mem("/client/register"),
            json!({"client_id": "fuzz-client", "client_name": "n", "parent_client_id": "parent", "status": "registered", "metadata": {"k": "v"}}),
        ),
        t(
            "/client/issues",
            Method::POST,
            mem("/client/issues"),
            json!({"error_code": "E1", "message": "m", "layer": "semantic", "payload": {"k": "v"}, "metadata": {"k": "v"}}),
        ),
        t(
            "/client/issues/{issue_id}/resolve",
            Method::POST,
            mem(&format!("/client/issues/{}/resolve", s.issue)),
            json!({"resolution": "done"}),
        ),
        t(
            "/quarantine/propose/{layer}",
            Method::POST,
            mem("/quarantine/propose/semantic"),
            json!({"content": "proposal", "tags": ["x"]}),
        ),
        t(
            "/quarantine/propose/{layer}",
            Method::POST,
            mem("/quarantine/propose/procedural"),
            json!({"skill_name": "s", "steps": ["a"]}),
        ),
        t(
            "/{layer}/{memory_id}",
            Method::PUT,
            mem(&format!("/semantic/{}", s.semantic)),
            json!({"content": "updated", "tags": ["u"]}),
        ),
        t(
            "/{layer}/{memory_id}",
            Method::PUT,
            mem(&format!("/episodic/{}", s.episodic)),
            json!({"content": "u", "goal": "g", "outcome": "o", "plan": ["p"], "salience": 5}),
        ),
        t(
            "/{layer}/{memory_id}",
            Method::PUT,
            mem(&format!("/procedural/{}", s.procedural)),
            json!({"skill_name": "s", "trigger": "t", "steps": ["a"], "description": "d", "code_snippet": "c"}),
        ),
        t(
            "/{layer}/{memory_id}",
            Method::PUT,
            mem(&format!("/rag/{}", s.rag)),
            json!({"query": "q", "external_source": "e", "content": "c"}),
        ),
        t(
            "/units",
            Method::POST,
            mem("/units"),
            json!({"label": "unit", "members": [{"layer": "semantic", "id": s.semantic, "role": "r"}]}),
        ),
        Template {
            route: "/capture/session",
            method: Method::POST,
            path: mem("/capture/session"),
            body: json!({"client_session_ref": "ref", "client_version": "1.0"}),
            auth: capture.to_owned(),
        },
        Template {
            route: "/capture",
            method: Method::POST,
            path: mem("/capture"),
            body: capture_envelope(),
            auth: capture.to_owned(),
        },
        t(
            "/api/v1/auth/revoke",
            Method::POST,
            "/api/v1/auth/revoke".into(),
            json!({"jti": "fuzz-jti", "expires_at": "2999-01-01T00:00:00Z"}),
        ),
    ]
}

fn body_requests(
    rng: &mut Rng,
    tpl: &Template,
    first_of_route: bool,
    hostile: &[(&'static str, String)],
    huge: &[(&'static str, String)],
) -> Vec<Req> {
    let base = |note: String| Req::new(tpl.route, tpl.method.clone(), tpl.path.clone(), &tpl.auth, note);
    let mut out = vec![base("valid".into()).json(&tpl.body)];
    let obj = tpl.body.as_object().cloned().unwrap_or_default();
    let with = |k: &str, v: Value| {
        let mut o = obj.clone();
        o.insert(k.to_owned(), v);
        Value::Object(o)
    };
    for (k, valid) in &obj {
        let mut o = obj.clone();
        o.remove(k);
        out.push(base(format!("without {k}")).json(&Value::Object(o)));
        for w in wrong_types() {
            out.push(base(format!("{k}={w}")).json(&with(k, w)));
        }
        for (name, h) in hostile {
            let v = match valid {
                Value::String(_) => json!(h),
                Value::Array(_) => json!([h, "ok"]),
                Value::Object(_) => json!({ h.clone(): h, "nested": {"deep": h} }),
                _ => continue,
            };
            out.push(base(format!("{k}={name}")).json(&with(k, v)));
        }
        if valid.is_string() {
            for (name, h) in huge {
                out.push(base(format!("{k}={name}")).json(&with(k, json!(h))));
            }
        }
        // Fields of list items (unit members, tool logs): wrong types and hostile strings too.
        if let Some(Value::Object(item)) = valid.as_array().and_then(|a| a.first()) {
            for (ik, iv) in item {
                let mut values: Vec<(String, Value)> = wrong_types().into_iter().map(|w| (w.to_string(), w)).collect();
                if iv.is_string() {
                    values.extend(hostile.iter().map(|(n, h)| (n.to_string(), json!(h))));
                }
                for (label, v) in values {
                    let mut it = item.clone();
                    it.insert(ik.clone(), v);
                    out.push(base(format!("{k}[0].{ik}={label}")).json(&with(k, json!([it]))));
                }
            }
        }
        if valid.is_object() || valid.is_array() {
            out.push(base(format!("{k}=nested100")).json(&with(
                k,
                if valid.is_object() { json!({ "n": nested_arrays(100) }) } else { nested_arrays(100) },
            )));
        }
    }
    out.push(base("unknown field".into()).json(&with("zzz_unknown", json!(1))));
    out.push(base("__proto__".into()).json(&with("__proto__", json!({"admin": true}))));
    // Random multi-field mutations.
    for i in 0..12 {
        let mut o = obj.clone();
        for _ in 0..1 + rng.below(3) {
            let keys: Vec<String> = o.keys().cloned().collect();
            match rng.below(4) {
                0 if !keys.is_empty() => {
                    o.remove(&rng.pick(&keys));
                }
                1 => {
                    let n = 1 + rng.below(8);
                    o.insert(random_meta(rng, n), random_value(rng, 3));
                }
                _ if !keys.is_empty() => {
                    let k = rng.pick(&keys);
                    o.insert(k, random_value(rng, 3));
                }
                _ => {}
            }
        }
        out.push(base(format!("random #{i}")).json(&Value::Object(o)));
    }
    if first_of_route {
        let valid = serde_json::to_vec(&tpl.body).unwrap();
        let raw: Vec<(&str, Vec<u8>)> = vec![
            ("empty body", Vec::new()),
            ("whitespace body", b"  \n ".to_vec()),
            ("truncated", valid[..valid.len() / 2].to_vec()),
            ("open brace", b"{".to_vec()),
            ("trailing garbage", [valid.as_slice(), b"garbage"].concat()),
            ("trailing brace", [valid.as_slice(), b"}"].concat()),
            ("two documents", [valid.as_slice(), valid.as_slice()].concat()),
            ("non-utf8", b"{\"content\": \"\xff\xfe\xfd\", \"x\": \"\xc3\x28\"}".to_vec()),
            ("non-utf8 bare", vec![0xff, 0xfe, 0x00, 0x80]),
            ("raw NUL", b"{\"content\": \"a\x00b\"}".to_vec()),
            ("lone surrogate", br#"{"content": "\ud800", "query": "\udfff"}"#.to_vec()),
            ("escaped NUL key", br#"{"\u0000": "x", "content": "y"}"#.to_vec()),
            ("deep arrays 10k", [vec![b'['; 10_000], vec![b']'; 10_000]].concat()),
            ("deep objects 10k", ["{\"a\":".repeat(10_000).into_bytes(), b"1".to_vec(), vec![b'}'; 10_000]].concat()),
            ("top array", b"[]".to_vec()),
            ("top array of body", [b"[".as_slice(), valid.as_slice(), b"]"].concat()),
            ("top string", b"\"content\"".to_vec()),
            ("top number", b"42".to_vec()),
            ("top huge number", b"1e999".to_vec()),
            ("top null", b"null".to_vec()),
            ("top bool", b"true".to_vec()),
            ("duplicate keys", [&valid[..valid.len() - 1], b",".as_slice(), &valid[1..]].concat()),
            ("bom", [b"\xef\xbb\xbf".as_slice(), valid.as_slice()].concat()),
            ("over cap", [b"{\"content\": \"".as_slice(), &vec![b'x'; 1_048_600], b"\"}"].concat()),
            ("just under cap", [b"{\"content\": \"".as_slice(), &vec![b'y'; 1_048_500], b"\"}"].concat()),
        ];
        for (name, bytes) in raw {
            out.push(base(name.into()).bytes(bytes));
        }
    }
    out
}

struct QueryRoute {
    route: &'static str,
    path: &'static str,
    params: Vec<(&'static str, Kind, &'static str)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Str,
    Int,
    Bool,
    Cursor,
}

fn query_routes() -> Vec<QueryRoute> {
    use Kind::*;
    let q = |route, path, params| QueryRoute { route, path, params };
    vec![
        q("/search", "/search", vec![("query", Str, "fuzz"), ("k", Int, "5")]),
        q("/retrieve_context", "/retrieve_context", vec![("query", Str, "fuzz"), ("limit", Int, "5")]),
        q("/rag/search", "/rag/search", vec![("query", Str, "fuzz"), ("limit", Int, "5")]),
        q("/events", "/events", vec![("limit", Int, "5"), ("cursor", Cursor, "")]),
        q(
            "/session/list",
            "/session/list",
            vec![("session_id", Str, "s1"), ("limit", Int, "5"), ("cursor", Cursor, "")],
        ),
        q("/working/list", "/working/list", vec![("limit", Int, "5"), ("cursor", Cursor, "")]),
        q("/agent/list", "/agent/list", vec![("limit", Int, "5")]),
        q("/access/list", "/access/list", vec![("limit", Int, "5")]),
        q("/client/list", "/client/list", vec![("limit", Int, "5")]),
        q("/client/summary", "/client/summary", vec![("include_children", Bool, "true")]),
        q(
            "/client/issues",
            "/client/issues",
            vec![("status_filter", Str, "open"), ("limit", Int, "5"), ("cursor", Cursor, "")],
        ),
        q(
            "/quarantine/list",
            "/quarantine/list",
            vec![("status_filter", Str, "pending"), ("limit", Int, "5"), ("cursor", Cursor, "")],
        ),
        q("/schema", "/schema", vec![]),
    ]
}

fn cursor_garbage() -> Vec<String> {
    let id = "0195c3b0-0000-7000-8000-000000000000";
    vec![
        "zz".into(),
        "00".into(),
        "0".into(),
        "%00".into(),
        hex("garbage"),
        hex("x|y"),
        hex("2024-01-01T00:00:00Z|not-a-uuid"),
        hex(format!("2024-01-01T00:00:00Z|{id}")),
        hex(format!("9999-12-31T23:59:59.999999Z|{id}")),
        hex(format!("0000-01-01T00:00:00Z|{id}")),
        hex(format!("2024-01-01T00:00:00+14:00|{id}")),
        hex(format!("2024-01-01T00:00:00Z|{id}\u{0}")),
        hex([0xff, 0xfe, b'|', 0x00]),
        "g".repeat(10_000),
        "ab".repeat(5_000),
        urlencode(META),
    ]
}

fn int_garbage() -> Vec<&'static str> {
    vec![
        "-1",
        "0",
        "1",
        "100",
        "101",
        "200",
        "201",
        "-9223372036854775808",
        "9223372036854775807",
        "99999999999999999999",
        "abc",
        "1.5",
        "1e3",
        "0x10",
        "%205",
        "5%20",
        "",
        "%00",
        "%FF",
        "NaN",
        "-0",
        "+5",
    ]
}

fn query_requests(rng: &mut Rng, qr: &QueryRoute, admin: &str, hostile: &[(&'static str, String)]) -> Vec<Req> {
    let build = |pairs: &[(String, String)]| -> String {
        let q: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{MEM}{}?{}", qr.path, q.join("&"))
    };
    let valid: Vec<(String, String)> =
        qr.params.iter().filter(|(_, _, v)| !v.is_empty()).map(|(k, _, v)| (k.to_string(), v.to_string())).collect();
    let base = |path: String, note: String| Req::new(qr.route, Method::GET, path, admin, note);
    let mut out = vec![base(build(&valid), "valid".into())];
    for (i, (name, kind, _)) in qr.params.iter().enumerate() {
        let others: Vec<(String, String)> = valid.iter().filter(|(k, _)| k != name).cloned().collect();
        out.push(base(build(&others), format!("without {name}")));
        let values: Vec<(String, String)> = match kind {
            Kind::Int => int_garbage().into_iter().map(|v| (v.to_owned(), v.to_owned())).collect(),
            Kind::Bool => ["true", "false", "1", "0", "yes", "maybe", "", "%00", "TRUE"]
                .iter()
                .map(|v| (v.to_string(), v.to_string()))
                .collect(),
            Kind::Cursor => cursor_garbage().into_iter().map(|v| (v.chars().take(20).collect(), v)).collect(),
            Kind::Str => {
                let mut v: Vec<(String, String)> = hostile.iter().map(|(n, s)| (n.to_string(), urlencode(s))).collect();
                for j in 0..8 {
                    let n = 1 + rng.below(40);
                    v.push((format!("rand meta #{j}"), urlencode(&random_meta(rng, n))));
                }
                v.push(("raw meta".into(), "'%20;--%25_\\&|!:*()<->\"".into()));
                v.push(("invalid percent".into(), "%zz%".into()));
                v
            }
        };
        for (label, v) in values {
            let mut pairs = others.clone();
            pairs.insert(i.min(pairs.len()), (name.to_string(), v));
            out.push(base(build(&pairs), format!("{name}={label}")));
        }
        let mut dup = valid.clone();
        dup.push((name.to_string(), "2".into()));
        out.push(base(build(&dup), format!("duplicate {name}")));
    }
    for (note, q) in [
        ("unknown param", "zzz=1"),
        ("ampersands", "&&&"),
        ("bare key", "query"),
        ("equals", "=&=="),
        ("a=b=c", "query=a=b=c&session_id=x=y"),
        ("bad utf8", "query=%FF%FE&session_id=%C3%28"),
    ] {
        let sep = if valid.is_empty() { "" } else { "&" };
        let vq: Vec<String> = valid.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push(base(format!("{MEM}{}?{}{sep}{q}", qr.path, vq.join("&")), note.into()));
    }
    out
}

fn segment_garbage(seed_id: &str) -> Vec<(String, String)> {
    let up = seed_id.to_uppercase();
    vec![
        ("x".into(), "x".into()),
        ("..evil".into(), "..evil".into()),
        ("encoded dots".into(), "%2E%2E".into()),
        ("encoded traversal".into(), "..%2F..%2Fetc%2Fpasswd".into()),
        ("SEMANTIC".into(), "SEMANTIC".into()),
        ("long".into(), "a".repeat(10_000)),
        ("nul".into(), "%00".into()),
        ("bad utf8".into(), "%FF%FE".into()),
        ("emoji".into(), urlencode("🧠")),
        ("space".into(), "%20".into()),
        ("sql".into(), urlencode("' OR 1=1 --")),
        ("nil uuid".into(), "00000000-0000-0000-0000-000000000000".into()),
        ("random uuid".into(), "0195c3b0-0000-7000-8000-00000000abcd".into()),
        ("seed uuid".into(), seed_id.into()),
        ("upper uuid".into(), up),
        ("braced uuid".into(), format!("%7B{seed_id}%7D")),
        ("urn uuid".into(), format!("urn:uuid:{seed_id}")),
        ("simple uuid".into(), seed_id.replace('-', "")),
        ("-1".into(), "-1".into()),
        ("semantic".into(), "semantic".into()),
        ("event".into(), "event".into()),
    ]
}

fn path_requests(s: &Seeds, admin: &str) -> (Vec<Req>, Vec<Req>) {
    let mut safe = Vec::new();
    let mut destructive = Vec::new();
    let garbage = segment_garbage(&s.semantic);
    for (label, g) in &garbage {
        let r = |route: &'static str, m: Method, p: String| {
            Req::new(route, m, format!("{MEM}{p}"), admin, format!("path {label}"))
        };
        safe.push(r("/schema/{layer}", Method::GET, format!("/schema/{g}")));
        safe.push(r("/client/issues/{issue_id}/resolve", Method::POST, format!("/client/issues/{g}/resolve")));
        safe.push(
            r("/quarantine/propose/{layer}", Method::POST, format!("/quarantine/propose/{g}"))
                .json(&json!({"content": "p"})),
        );
        safe.push(r("/units/related/{layer}/{record_id}", Method::GET, format!("/units/related/{g}/{}", s.semantic)));
        safe.push(r("/units/related/{layer}/{record_id}", Method::GET, format!("/units/related/semantic/{g}")));
        for layer in ["semantic", "episodic", "procedural", "rag", "working", "session", "event"] {
            safe.push(r("/{layer}/{memory_id}", Method::GET, format!("/{layer}/{g}")));
        }
        safe.push(r("/{layer}/{memory_id}", Method::GET, format!("/{g}/{}", s.semantic)));
        safe.push(
            r("/{layer}/{memory_id}", Method::PUT, format!("/{g}/{}", s.semantic)).json(&json!({"content": "x"})),
        );
        safe.push(r("/{layer}/{memory_id}", Method::PUT, format!("/semantic/{g}")).json(&json!({"content": "x"})));
        destructive.push(r("/quarantine/approve/{item_id}", Method::POST, format!("/quarantine/approve/{g}")));
        destructive.push(r("/quarantine/reject/{item_id}", Method::POST, format!("/quarantine/reject/{g}")));
        destructive.push(r("/{layer}/{memory_id}", Method::DELETE, format!("/{g}/{}", s.semantic)));
        destructive.push(r("/{layer}/{memory_id}", Method::DELETE, format!("/semantic/{g}")));
    }
    // Dot segments, byte for byte (a URL parser would resolve them away).
    for p in [
        "/schema/..",
        "/schema/.",
        "/../memory/schema",
        "/semantic/..",
        "/units/related/../..",
        "/client/issues/../resolve",
        "/quarantine/approve/..",
    ] {
        let mut r = Req::new("raw", Method::GET, format!("{MEM}{p}"), admin, "raw dot segments");
        r.raw = true;
        safe.push(r.clone());
        r.method = Method::POST;
        safe.push(r);
    }
    // Real ids: approve one proposal, reject another, then delete the seeded records.
    for (i, q) in s.quarantine.iter().enumerate() {
        let route = if i % 2 == 0 { "/quarantine/approve/{item_id}" } else { "/quarantine/reject/{item_id}" };
        let verb = if i % 2 == 0 { "approve" } else { "reject" };
        destructive.push(Req::new(
            route,
            Method::POST,
            format!("{MEM}/quarantine/{verb}/{q}"),
            admin,
            "real quarantine id",
        ));
    }
    for (layer, id) in [
        ("semantic", &s.semantic),
        ("episodic", &s.episodic),
        ("procedural", &s.procedural),
        ("rag", &s.rag),
        ("working", &s.semantic),
    ] {
        destructive.push(Req::new(
            "/{layer}/{memory_id}",
            Method::DELETE,
            format!("{MEM}/{layer}/{id}"),
            admin,
            "real id",
        ));
    }
    (safe, destructive)
}

/// The route table the router is built from: (method, path template).
fn catalog() -> Vec<(Method, &'static str)> {
    pinak_api::routes::catalog::routes()
        .into_iter()
        .map(|(op, _)| (op.method.to_ascii_uppercase().parse().expect("HTTP method"), op.path))
        .collect()
}

/// The template a concrete path hits; literal segments beat parameters, as in the router.
fn template_of(ops: &[(Method, &'static str)], path: &str) -> Option<&'static str> {
    let segs: Vec<&str> = path.split('?').next().unwrap_or_default().split('/').collect();
    ops.iter()
        .map(|(_, t)| *t)
        .filter(|t| {
            let ts: Vec<&str> = t.split('/').collect();
            ts.len() == segs.len() && ts.iter().zip(&segs).all(|(a, b)| a.starts_with('{') || a == b)
        })
        .min_by_key(|t| t.matches('{').count())
}

/// Every route of the table with each method it lacks, with no body and with a 10k-deep one,
/// plus paths that match nothing.
fn method_and_route_requests(ops: &[(Method, &'static str)], admin: &str) -> Vec<Req> {
    let mut out = Vec::new();
    for (method, template) in ops {
        let path = template.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
        let allowed: Vec<&Method> =
            ops.iter().filter(|(_, t)| template_of(ops, &path) == Some(*t)).map(|(m, _)| m).collect();
        for m in [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            if !allowed.contains(&&m) && method == allowed[0] {
                out.push(Req::new("wrong method", m, path.clone(), admin, "wrong method"));
            }
        }
        out.push(Req::new("allowed method", method.clone(), path.clone(), admin, "no body"));
        if matches!(*method, Method::POST | Method::PUT) {
            out.push(
                Req::new("allowed method", method.clone(), path.clone(), admin, "deep body")
                    .bytes([vec![b'['; 10_000], vec![b']'; 10_000]].concat()),
            );
        }
    }
    out.push(Req::new(
        "/schema",
        Method::GET,
        format!("{MEM}/schema?%zz&%00"),
        admin,
        "garbage query on a route without parameters",
    ));
    out.push(Req::new("/{layer}/{memory_id}", Method::PATCH, format!("{MEM}/semantic/x"), admin, "PATCH catch-all"));
    out.push(Req::new("/{layer}/{memory_id}", Method::POST, format!("{MEM}/semantic/x"), admin, "POST catch-all"));
    for p in [
        "/api/v1/memory/a/b/c",
        "/api/v1/nope",
        "/api/v1/memory/",
        "/api/v1/memory",
        "//api/v1/memory/add",
        "/api/v1/memory/add/",
        "/API/V1/MEMORY/SCHEMA",
    ] {
        out.push(Req::new("unmatched", Method::GET, p, admin, "unmatched path"));
        out.push(Req::new("unmatched", Method::POST, p, admin, "unmatched path").json(&json!({"content": "x"})));
    }
    out
}

/// Valid requests with other identities: read-only, no token, garbage tokens, odd headers.
fn identity_requests(templates: &[Template], ro: &str, admin: &str) -> Vec<Req> {
    let mut out = Vec::new();
    let mut rng = Rng::new(7);
    let long_name = random_words(&mut rng, 4_000);
    let none_alg = format!("{}.{}.", hex("x"), hex("y"));
    for t in templates {
        let mk = |note: &str| Req::new(t.route, t.method.clone(), t.path.clone(), ro, note).json(&t.body);
        out.push(mk("read-only token"));
        let mut r = mk("no token");
        r.auth = None;
        out.push(r);
        for bad in ["Bearer x.y.z", "Basic YWRtaW46YWRtaW4=", "Bearer ", "Bearer a.b", none_alg.as_str()] {
            let mut r = mk("garbage token");
            r.auth = Some(bad.to_owned());
            out.push(r);
        }
        let mut r = mk("long client name header");
        r.auth = Some(format!("Bearer {admin}"));
        r.headers.push(("x-pinak-client-name", long_name.clone()));
        out.push(r);
        let mut r = mk("mismatched client id header");
        r.auth = Some(format!("Bearer {admin}"));
        r.headers.push(("x-pinak-client-id", "someone-else".into()));
        out.push(r);
        let mut r = mk("conflicting child headers");
        r.auth = Some(format!("Bearer {admin}"));
        r.headers.push(("x-pinak-child-id", "a".into()));
        r.headers.push(("x-pinak-child-client-id", "b".into()));
        out.push(r);
    }
    for qr in query_routes() {
        out.push(Req::new(
            qr.route,
            Method::GET,
            format!("{MEM}{}?query=x&session_id=s", qr.path),
            ro,
            "read-only token",
        ));
    }
    out.push(Req::new("/maintenance/verify", Method::POST, format!("{MEM}/maintenance/verify"), ro, "read-only token"));
    out.push(Req::new("/api/v1/metrics", Method::GET, "/api/v1/metrics", ro, "read-only token"));
    out.push(Req::new("/api/v1/metrics", Method::GET, "/api/v1/metrics", admin, "admin token"));
    out
}

// --------------------------------------------------------------- running ---

struct Storm {
    client: reqwest::Client,
    base: String,
    ledger: Ledger,
    failures: Vec<String>,
    failure_kinds: BTreeMap<String, usize>,
    statuses: BTreeMap<u16, usize>,
    sent: usize,
    ops: Vec<(Method, &'static str)>,
    /// Routes of the table that some request got through to (past routing and auth).
    reached: HashSet<(Method, &'static str)>,
}

impl Storm {
    async fn run(&mut self, reqs: Vec<Req>) -> Vec<(Req, Option<Value>)> {
        let sem = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
        let mut set = tokio::task::JoinSet::new();
        for (i, r) in reqs.into_iter().enumerate() {
            let (client, base, sem) = (self.client.clone(), self.base.clone(), sem.clone());
            set.spawn(async move {
                let _permit = sem.acquire_owned().await.unwrap();
                let res = send(&client, &base, &r).await;
                (i, r, res)
            });
        }
        let mut done = Vec::new();
        while let Some(joined) = set.join_next().await {
            done.push(joined.expect("request task"));
        }
        done.sort_by_key(|d| d.0);
        let mut out = Vec::new();
        for (_, r, res) in done {
            self.sent += 1;
            match res {
                Err(e) => self.fail(&r, "transport", format!("{} -> {e}", r.describe())),
                Ok(o) => {
                    *self.statuses.entry(o.status).or_default() += 1;
                    let router_404 = o.status == 404 && o.json.as_ref().is_some_and(|j| j["detail"] == "Not Found");
                    if let Some(t) =
                        template_of(&self.ops, &r.path).filter(|_| ![401, 403, 405].contains(&o.status) && !router_404)
                    {
                        self.reached.insert((r.method.clone(), t));
                    }
                    if let Some(v) = violation(&r, &o) {
                        let text: String = o.text.chars().take(300).collect();
                        self.fail(&r, &v, format!("{} -> {v}: {text}", r.describe()));
                    }
                    if let Err(e) = self.ledger.book(&r, &o) {
                        self.fail(&r, &e, format!("{} -> {e}", r.describe()));
                    }
                    out.push((r, o.json));
                }
            }
        }
        out
    }

    fn fail(&mut self, r: &Req, kind: &str, detail: String) {
        *self.failure_kinds.entry(format!("{} {} -> {kind}", r.method, r.route)).or_default() += 1;
        self.failures.push(detail);
    }

    async fn one(&mut self, r: Req) -> Value {
        let desc = r.describe();
        let mut out = self.run(vec![r]).await;
        out.pop().and_then(|(_, v)| v).unwrap_or_else(|| panic!("seed request failed: {desc}"))
    }
}

#[tokio::test]
async fn fuzz_storm_gives_no_5xx_and_no_partial_writes() {
    let started = Instant::now();
    let seed: u64 = std::env::var("PINAK_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_F00D_CAFE_1234);
    let mut rng = Rng::new(seed);
    let api = TestApi::builder().env("PINAK_DB_POOL_SIZE", "8").start().await;
    let admin = Token::admin(TENANT, PROJECT).sign();
    let ro = Token::new(TENANT, PROJECT).set("scopes", json!(["memory.read"])).sign();
    let capture = Token::admin(TENANT, PROJECT).set("agent_id", json!("agent-1")).sign();
    let mut storm = Storm {
        client: reqwest::Client::new(),
        base: api.base.clone(),
        ledger: Ledger::default(),
        failures: Vec::new(),
        failure_kinds: BTreeMap::new(),
        statuses: BTreeMap::new(),
        sent: 0,
        ops: catalog(),
        reached: HashSet::new(),
    };

    // Seed records so that path parameters can name real rows.
    let seed_req = |route: &'static str, p: &str, body: Value| {
        Req::new(route, Method::POST, format!("{MEM}{p}"), &admin, "seed").json(&body)
    };
    let semantic = storm.one(seed_req("/add", "/add", json!({"content": "seed semantic"}))).await;
    let episodic = storm.one(seed_req("/episodic/add", "/episodic/add", json!({"content": "seed episode"}))).await;
    let procedural =
        storm.one(seed_req("/procedural/add", "/procedural/add", json!({"skill_name": "seed", "steps": ["a"]}))).await;
    let rag = storm
        .one(seed_req("/rag/add", "/rag/add", json!({"query": "q", "external_source": "e", "content": "seed rag"})))
        .await;
    let issue =
        storm.one(seed_req("/client/issues", "/client/issues", json!({"error_code": "E0", "message": "seed"}))).await;
    let mut quarantine = Vec::new();
    for i in 0..4 {
        let q = storm
            .one(seed_req(
                "/quarantine/propose/{layer}",
                "/quarantine/propose/semantic",
                json!({"content": format!("seed proposal {i}")}),
            ))
            .await;
        quarantine.push(q["id"].as_str().unwrap().to_owned());
    }
    let id = |v: &Value| v["id"].as_str().unwrap_or_else(|| panic!("seed has an id: {v}")).to_owned();
    let seeds = Seeds {
        semantic: id(&semantic),
        episodic: id(&episodic),
        procedural: id(&procedural),
        rag: id(&rag),
        issue: id(&issue),
        quarantine,
    };
    assert!(storm.failures.is_empty(), "seeding failed: {:#?}", storm.failures);

    let hostile = hostile_strings(&mut rng);
    let huge =
        [("huge_words", random_words(&mut rng, HUGE_BYTES)), ("huge_unicode", random_unicode(&mut rng, HUGE_BYTES))];
    let tpls = templates(&seeds, &admin, &capture);
    let ops = storm.ops.clone();

    let mut safe: Vec<Req> = Vec::new();
    let mut seen_routes = HashSet::new();
    for t in &tpls {
        let first = seen_routes.insert((t.route, t.method.clone()));
        // One huge variant per string field keeps the storm fast; the seed picks which.
        let h = [huge[rng.below(huge.len())].clone()];
        safe.extend(body_requests(&mut rng, t, first, &hostile, &h));
    }
    for qr in query_routes() {
        safe.extend(query_requests(&mut rng, &qr, &admin, &hostile));
    }
    let (paths, destructive) = path_requests(&seeds, &admin);
    safe.extend(paths);
    safe.extend(method_and_route_requests(&ops, &admin));
    safe.extend(identity_requests(&tpls, &ro, &admin));
    for p in ["/", "/api/v1/live", "/api/v1/health", "/metrics", "/openapi.json", "/docs"] {
        safe.push(Req::new("system", Method::GET, p, &admin, "system"));
    }
    // Hostile search text, many random combinations.
    for i in 0..60 {
        let n = 1 + rng.below(30);
        let q = urlencode(&random_meta(&mut rng, n));
        let route = ["/search", "/retrieve_context", "/rag/search"][i % 3];
        safe.push(Req::new(route, Method::GET, format!("{MEM}{route}?query={q}"), &admin, "random search text"));
    }
    let planned = safe.len() + destructive.len();
    storm.run(safe).await;
    storm.run(destructive).await;
    let storm_time = started.elapsed();

    // ---- every route of the table was exercised -----------------------------
    let mut problems: Vec<String> = Vec::new();
    let unreached: Vec<String> =
        ops.iter().filter(|op| !storm.reached.contains(*op)).map(|(m, t)| format!("{m} {t}")).collect();
    if !unreached.is_empty() {
        problems.push(format!("routes no request got through to (add them to the storm): {unreached:?}"));
    }

    // ---- no partial writes -------------------------------------------------
    let ledger = std::mem::take(&mut storm.ledger);
    let tables = [
        "memories_semantic",
        "memories_episodic",
        "memories_procedural",
        "memories_rag",
        "working_memory",
        "logs_session",
        "logs_events",
        "memory_quarantine",
        "logs_client_issues",
        "memory_units",
        "memory_unit_members",
    ];
    for table in tables {
        let want = ledger.rows.get(table).copied().unwrap_or(0);
        let got = api.count(table).await;
        if got != want {
            problems.push(format!("{table}: {got} rows, but 2xx responses account for {want}"));
        }
    }
    let mut db = api.db().await;
    let revoked: Vec<String> = sqlx::query_scalar("SELECT jti FROM revoked_jti").fetch_all(&mut db).await.unwrap();
    if revoked.iter().cloned().collect::<HashSet<_>>() != ledger.jtis {
        problems.push(format!("revoked_jti {revoked:?} != jtis of 204 revocations {:?}", ledger.jtis));
    }
    let writes: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT target_layer, count(*) FROM logs_access WHERE event_type = 'write' GROUP BY 1")
            .fetch_all(&mut db)
            .await
            .unwrap();
    let writes: BTreeMap<String, i64> = writes.into_iter().map(|(l, n)| (l.unwrap_or_default(), n)).collect();
    let want_writes: BTreeMap<String, i64> = ledger.writes.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    if writes != want_writes {
        problems.push(format!("access write rows per layer {writes:?} != 2xx writes {want_writes:?}"));
    }
    for layer in ["semantic", "episodic", "procedural", "rag", "working", "session", "event"] {
        let (_, table) = layer_table(layer).unwrap();
        let orphans: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} x WHERE NOT EXISTS (SELECT 1 FROM logs_access a WHERE a.event_type = 'write' AND a.memory_id = x.id::text)"
        )))
        .fetch_one(&mut db)
        .await
        .unwrap();
        let foreign: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant <> $1 OR project_id <> $2"
        )))
        .bind(TENANT)
        .bind(PROJECT)
        .fetch_one(&mut db)
        .await
        .unwrap();
        if orphans + foreign > 0 {
            problems.push(format!(
                "{table}: {orphans} rows without their access row, {foreign} outside the caller's scope"
            ));
        }
    }
    let empty_content: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM memories_semantic WHERE content = '' OR jsonb_typeof(tags) <> 'array')
              + (SELECT count(*) FROM memories_episodic WHERE content = '' OR salience NOT BETWEEN 0 AND 10)
              + (SELECT count(*) FROM memories_procedural WHERE skill_name = '' OR jsonb_typeof(steps) <> 'array')
              + (SELECT count(*) FROM memories_rag WHERE query = '' OR content = '' OR external_source = '')
              + (SELECT count(*) FROM working_memory WHERE value = '')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    if empty_content > 0 {
        problems.push(format!("{empty_content} stored records violate their layer schema"));
    }
    let (access, audited): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM logs_access), (SELECT count(*) FROM logs_audit WHERE event_type LIKE 'access:%')",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    if access != audited {
        problems.push(format!("{access} access rows but {audited} access audit rows"));
    }
    let audit_rows: i64 = sqlx::query_scalar("SELECT count(*) FROM logs_audit WHERE tenant = $1")
        .bind(TENANT)
        .fetch_one(&mut db)
        .await
        .unwrap();
    let (s, verify) = api.post(&admin, "/maintenance/verify", Value::Null).await;
    if s != 200 || verify["audit"]["valid"] != json!(true) || verify["audit"]["checked"] != json!(audit_rows) {
        problems.push(format!("audit chain: {s} {verify} (expected {audit_rows} rows checked)"));
    }
    let health = reqwest::get(api.url("/api/v1/health")).await.unwrap().status().as_u16();
    if health != 200 {
        problems.push(format!("health after the storm: {health}"));
    }

    eprintln!(
        "fuzz: seed {seed:#x}, {} requests ({planned} planned) in {:.1}s (storm {:.1}s); statuses {:?}; rows {:?}",
        storm.sent,
        started.elapsed().as_secs_f64(),
        storm_time.as_secs_f64(),
        storm.statuses,
        ledger.rows
    );
    let n = storm.failures.len();
    let show: usize = std::env::var("PINAK_FUZZ_SHOW").ok().and_then(|s| s.parse().ok()).unwrap_or(40);
    let shown: Vec<&String> = storm.failures.iter().take(show).collect();
    assert!(
        n == 0 && problems.is_empty(),
        "seed {seed:#x}: {n} bad responses by route: {:#?}\nfirst {show} (PINAK_FUZZ_SHOW=n for more):\n{}\nstore problems: {problems:#?}",
        storm.failure_kinds,
        shown.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    api.stop().await;
}
