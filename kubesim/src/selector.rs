//! Label and field selectors with the grammar, matching rules and error texts of apimachinery's
//! `labels.Parse`, `metav1.LabelSelectorAsSelector` and `fields.ParseSelector`, so that clients see
//! the same 400 messages from kubesim as from a real API server.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operator {
    In,
    NotIn,
    Equals,
    DoubleEquals,
    NotEquals,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Requirement {
    key: String,
    op: Operator,
    values: Vec<String>,
}

impl Requirement {
    /// Validates like apimachinery's `NewRequirement`, whose errors carry the field paths `key`,
    /// `values` and `values[i][key]` that end up verbatim in the API server's message.
    fn new(key: &str, op: Operator, values: Vec<String>) -> Result<Self, String> {
        use Operator::*;
        let mut errs = Vec::new();
        let key_errs = qualified_name_errors(key);
        if !key_errs.is_empty() {
            errs.push(field_invalid("key", &go_quote(key), &key_errs.join("; ")));
        }
        let count_error = match op {
            In | NotIn if values.is_empty() => Some("for 'in', 'notin' operators, values set can't be empty"),
            Equals | DoubleEquals | NotEquals if values.len() != 1 => {
                Some("exact-match compatibility requires one single value")
            }
            Exists | DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            GreaterThan | LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            _ => None,
        };
        if let Some(detail) = count_error {
            errs.push(field_invalid("values", &go_json_list(&values), detail));
        }
        if matches!(op, GreaterThan | LessThan) {
            for (i, v) in values.iter().enumerate() {
                if v.parse::<i64>().is_err() {
                    let detail = "for 'Gt', 'Lt' operators, the value must be an integer";
                    errs.push(field_invalid(&format!("values[{i}]"), &go_quote(v), detail));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = label_value_errors(v);
            if !value_errs.is_empty() {
                let path = format!("values[{i}][{key}]");
                errs.push(field_invalid(&path, &go_quote(v), &value_errs.join("; ")));
            }
        }
        if errs.is_empty() { Ok(Self { key: key.to_string(), op, values }) } else { Err(aggregate(errs)) }
    }

    fn matches<'v>(&self, get: &impl Fn(&str) -> Option<&'v str>) -> bool {
        use Operator::*;
        let has_value = |v: &str| self.values.iter().any(|x| x == v);
        match (self.op, get(&self.key)) {
            (In | Equals | DoubleEquals, Some(v)) => has_value(v),
            (In | Equals | DoubleEquals, None) => false,
            (NotIn | NotEquals, Some(v)) => !has_value(v),
            (NotIn | NotEquals, None) => true,
            (Exists, found) => found.is_some(),
            (DoesNotExist, found) => found.is_none(),
            (GreaterThan | LessThan, None) => false,
            (GreaterThan | LessThan, Some(v)) => {
                // Non-integer labels never match a numeric comparison rather than erroring the list.
                let (Ok(actual), [bound]) = (v.parse::<i64>(), self.values.as_slice()) else {
                    return false;
                };
                let Ok(bound) = bound.parse::<i64>() else {
                    return false;
                };
                if self.op == GreaterThan { actual > bound } else { actual < bound }
            }
        }
    }
}

/// A label selector: the AND of its requirements.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// A null `metav1.LabelSelector` selects nothing, unlike an empty one which selects everything.
    nothing: bool,
}

impl LabelSelector {
    /// Parses the query-string syntax (`a=b,c!=d,e in (x,y),f notin (z),g,!h,n>3`), with the error
    /// texts of apimachinery's `labels.Parse`. An empty or blank string selects everything.
    pub fn parse(s: &str) -> Result<Self, String> {
        let requirements = Parser::new(s).parse()?;
        Ok(Self { requirements: sorted(requirements), nothing: false })
    }

    /// Converts a `metav1.LabelSelector` (matchLabels + matchExpressions) as
    /// `LabelSelectorAsSelector` does: JSON null selects nothing, `{}` selects everything.
    pub fn from_json(sel: &Value) -> Result<Self, String> {
        let obj = match sel {
            Value::Null => {
                return Ok(Self { requirements: Vec::new(), nothing: true });
            }
            Value::Object(obj) => obj,
            other => return Err(format!("label selector must be an object, got {other}")),
        };
        let mut requirements = Vec::new();
        for (key, value) in json_object(obj.get("matchLabels"), "matchLabels")? {
            let value = value.as_str().ok_or_else(|| format!("matchLabels[{key}] must be a string"))?;
            requirements.push(Requirement::new(key, Operator::Equals, vec![value.to_string()])?);
        }
        for expr in json_array(obj.get("matchExpressions"), "matchExpressions")? {
            let key = expr.get("key").and_then(Value::as_str).unwrap_or("");
            let op_name = expr.get("operator").and_then(Value::as_str).unwrap_or("");
            let op = match op_name {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                _ => return Err(format!("{} is not a valid label selector operator", go_quote(op_name))),
            };
            let values = json_array(expr.get("values"), "matchExpressions[].values")?
                .iter()
                .map(|v| v.as_str().map(str::to_string).ok_or("matchExpressions[].values must be strings"))
                .collect::<Result<Vec<_>, _>>()?;
            requirements.push(Requirement::new(key, op, values)?);
        }
        Ok(Self { requirements: sorted(requirements), nothing: false })
    }

    /// The selector that matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    /// True when the selector does not restrict anything (a "nothing" selector is not empty).
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Labels are read from `obj["metadata"]["labels"]`; an absent map means no labels.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let labels = obj.get("metadata").and_then(|m| m.get("labels"));
        self.matches_with(|k| labels.and_then(|l| l.get(k)).and_then(Value::as_str))
    }

    fn matches_with<'v>(&self, get: impl Fn(&str) -> Option<&'v str>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(&get))
    }
}

fn sorted(mut requirements: Vec<Requirement>) -> Vec<Requirement> {
    requirements.sort_by(|a, b| a.key.cmp(&b.key));
    requirements
}

fn json_object<'v>(v: Option<&'v Value>, what: &str) -> Result<Vec<(&'v String, &'v Value)>, String> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => Ok(m.iter().collect()),
        Some(_) => Err(format!("{what} must be an object")),
    }
}

fn json_array<'v>(v: Option<&'v Value>, what: &str) -> Result<&'v [Value], String> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(_) => Err(format!("{what} must be an array")),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    End,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

/// Whether `in`/`notin` are keywords (after a key) or plain identifiers (keys and values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

fn is_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits on ASCII bytes only, so every literal is a valid `&str` slice of the input.
fn lex(s: &str) -> Vec<(Token, &str)> {
    let bytes = s.as_bytes();
    let mut items = Vec::new();
    let mut pos = 0;
    loop {
        while bytes.get(pos).is_some_and(|&b| is_whitespace(b)) {
            pos += 1;
        }
        let Some(&first) = bytes.get(pos) else {
            items.push((Token::End, ""));
            return items;
        };
        let start = pos;
        let (token, len) = match (first, bytes.get(pos + 1)) {
            (b'=', Some(b'=')) => (Token::DoubleEquals, 2),
            (b'!', Some(b'=')) => (Token::NotEquals, 2),
            (b'=', _) => (Token::Equals, 1),
            (b'!', _) => (Token::DoesNotExist, 1),
            (b'(', _) => (Token::OpenPar, 1),
            (b')', _) => (Token::ClosedPar, 1),
            (b',', _) => (Token::Comma, 1),
            (b'>', _) => (Token::GreaterThan, 1),
            (b'<', _) => (Token::LessThan, 1),
            _ => {
                let len = bytes[pos..]
                    .iter()
                    .position(|&b| is_whitespace(b) || b"=!(),<>".contains(&b))
                    .unwrap_or(bytes.len() - pos);
                let token = match &s[pos..pos + len] {
                    "in" => Token::In,
                    "notin" => Token::NotIn,
                    _ => Token::Identifier,
                };
                (token, len)
            }
        };
        pos += len;
        items.push((token, &s[start..pos]));
    }
}

/// Recursive descent over the pre-lexed tokens, mirroring apimachinery's parser state machine so
/// that the same inputs fail with the same "found 'x', expected: ..." texts.
struct Parser<'a> {
    items: Vec<(Token, &'a str)>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Self { items: lex(s), pos: 0 }
    }

    fn lookahead(&self, ctx: Context) -> (Token, &'a str) {
        // `lex` always ends with `End` and `consume` never moves past it.
        let (token, lit) = self.items[self.pos];
        match token {
            Token::In | Token::NotIn if ctx == Context::Values => (Token::Identifier, lit),
            _ => (token, lit),
        }
    }

    fn consume(&mut self, ctx: Context) -> (Token, &'a str) {
        let item = self.lookahead(ctx);
        if self.pos + 1 < self.items.len() {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut requirements = Vec::new();
        loop {
            let (token, lit) = self.lookahead(Context::Values);
            match token {
                Token::Identifier | Token::DoesNotExist => {
                    let r = self.parse_requirement().map_err(|e| format!("unable to parse requirement: {e}"))?;
                    requirements.push(r);
                    match self.consume(Context::Values) {
                        (Token::End, _) => return Ok(requirements),
                        (Token::Comma, _) => {
                            let (next, next_lit) = self.lookahead(Context::Values);
                            if !matches!(next, Token::Identifier | Token::DoesNotExist) {
                                return Err(format!("found '{next_lit}', expected: identifier after ','"));
                            }
                        }
                        (_, lit) => return Err(format!("found '{lit}', expected: ',' or 'end of string'")),
                    }
                }
                Token::End => return Ok(requirements),
                _ => return Err(format!("found '{lit}', expected: !, identifier, or 'end of string'")),
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, inferred) = self.parse_key_and_infer_operator()?;
        if let Some(op) = inferred {
            return Requirement::new(key, op, Vec::new());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(key, op, values.into_iter().collect())
    }

    /// Returns the key and, for `key` / `!key`, the unary operator it implies.
    fn parse_key_and_infer_operator(&mut self) -> Result<(&'a str, Option<Operator>), String> {
        let mut op = None;
        let (mut token, mut lit) = self.consume(Context::Values);
        if token == Token::DoesNotExist {
            op = Some(Operator::DoesNotExist);
            (token, lit) = self.consume(Context::Values);
        }
        if token != Token::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let key_errs = qualified_name_errors(lit);
        if !key_errs.is_empty() {
            // The parser validates keys with a nil field path, which Go renders as "<nil>".
            return Err(field_invalid("<nil>", &go_quote(lit), &key_errs.join("; ")));
        }
        if op.is_none() && matches!(self.lookahead(Context::Values).0, Token::End | Token::Comma) {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        match self.consume(Context::KeyAndOperator) {
            (Token::In, _) => Ok(Operator::In),
            (Token::Equals, _) => Ok(Operator::Equals),
            (Token::DoubleEquals, _) => Ok(Operator::DoubleEquals),
            (Token::GreaterThan, _) => Ok(Operator::GreaterThan),
            (Token::LessThan, _) => Ok(Operator::LessThan),
            (Token::NotIn, _) => Ok(Operator::NotIn),
            (Token::NotEquals, _) => Ok(Operator::NotEquals),
            (_, lit) => Err(format!("found '{lit}', expected: in, notin, =, ==, !=, gt, lt")),
        }
    }

    fn parse_values(&mut self) -> Result<BTreeSet<String>, String> {
        let (token, lit) = self.consume(Context::Values);
        if token != Token::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (token, lit) = self.lookahead(Context::Values);
        match token {
            Token::Identifier | Token::Comma => {
                let values = self.parse_identifiers_list()?;
                if self.consume(Context::Values).0 != Token::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            // `()` is the set holding only the empty value.
            Token::ClosedPar => {
                self.consume(Context::Values);
                Ok(BTreeSet::from([String::new()]))
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    /// A comma list in which an omitted element stands for the empty value, as in `(a,,b)`.
    fn parse_identifiers_list(&mut self) -> Result<BTreeSet<String>, String> {
        let mut values = BTreeSet::new();
        loop {
            match self.consume(Context::Values) {
                (Token::Identifier, lit) => {
                    values.insert(lit.to_string());
                    match self.lookahead(Context::Values) {
                        (Token::Comma, _) => continue,
                        (Token::ClosedPar, _) => return Ok(values),
                        (_, next) => return Err(format!("found '{next}', expected: ',' or ')'")),
                    }
                }
                (Token::Comma, _) => {
                    if values.is_empty() {
                        values.insert(String::new());
                    }
                    match self.lookahead(Context::Values).0 {
                        Token::ClosedPar => {
                            values.insert(String::new());
                            return Ok(values);
                        }
                        Token::Comma => {
                            self.consume(Context::Values);
                            values.insert(String::new());
                        }
                        _ => {}
                    }
                }
                (_, lit) => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<BTreeSet<String>, String> {
        if matches!(self.lookahead(Context::Values).0, Token::End | Token::Comma) {
            return Ok(BTreeSet::from([String::new()]));
        }
        match self.consume(Context::Values) {
            (Token::Identifier, lit) => Ok(BTreeSet::from([lit.to_string()])),
            (_, lit) => Err(format!("found '{lit}', expected: identifier")),
        }
    }
}

const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end \
                                  with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_EXAMPLES: &[&str] = &["MyName", "my.name", "123-abc"];
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', \
                               '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
                                     characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";

/// Text of apimachinery's `validation.RegexError` (the double space before "or" is theirs).
fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!("{msg} (e.g. {}regex used for validation is '{fmt}')", examples.join(" or "))
}

/// Non-empty, alphanumeric at both ends, and only `allowed` bytes in between.
fn is_bracketed_by_alnum(s: &str, alnum: fn(&u8) -> bool, allowed: &[u8]) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => alnum(first) && alnum(last) && b.iter().all(|c| alnum(c) || allowed.contains(c)),
        _ => false,
    }
}

fn is_qualified_name_part(s: &str) -> bool {
    is_bracketed_by_alnum(s, u8::is_ascii_alphanumeric, b"-_.")
}

fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let lower_alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if !s.split('.').all(|label| is_bracketed_by_alnum(label, lower_alnum, b"-")) {
        errs.push(regex_error(DNS1123_SUBDOMAIN_ERR, DNS1123_SUBDOMAIN_FMT, &["example.com"]));
    }
    errs
}

/// apimachinery's `validation.IsQualifiedName`: an optional DNS-subdomain prefix and a name part.
fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let name = match value.split('/').collect::<Vec<_>>().as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(dns1123_subdomain_errors(prefix).into_iter().map(|e| format!("prefix part {e}")));
            }
            *name
        }
        _ => {
            let regex = regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, QUALIFIED_NAME_EXAMPLES);
            return vec![format!(
                "a qualified name {regex} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            )];
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !is_qualified_name_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(QUALIFIED_NAME_ERR, QUALIFIED_NAME_FMT, QUALIFIED_NAME_EXAMPLES)
        ));
    }
    errs
}

fn label_value_errors(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !value.is_empty() && !is_qualified_name_part(value) {
        errs.push(regex_error(LABEL_VALUE_ERR, LABEL_VALUE_FMT, &["MyValue", "my_value", "12345"]));
    }
    errs
}

/// `field.Invalid(path, value, detail).Error()`; `quoted_value` is already rendered Go-style.
fn field_invalid(path: &str, quoted_value: &str, detail: &str) -> String {
    format!("{path}: Invalid value: {quoted_value}: {detail}")
}

/// How Go's `encoding/json` renders a possibly-nil `[]string` bad value.
fn go_json_list(values: &[String]) -> String {
    if values.is_empty() {
        return "null".to_string();
    }
    serde_json::to_string(values).unwrap_or_default()
}

/// `utilerrors.NewAggregate(errs).Error()`: one message bare, several deduplicated in brackets.
fn aggregate(errs: Vec<String>) -> String {
    let mut unique: Vec<String> = Vec::new();
    for e in errs {
        if !unique.contains(&e) {
            unique.push(e);
        }
    }
    match unique.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", unique.join(", ")),
    }
}

/// Go's `%q` (strconv.Quote) for the texts that end up in API error messages.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() || (c.is_whitespace() && c != ' ') || c == '\u{ad}' => {
                if (c as u32) < 0x10000 {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A field selector: the AND of `field=value` / `field!=value` terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldTerm {
    field: String,
    value: String,
    negated: bool,
}

impl FieldSelector {
    /// Parses `a=b,c!=d,e==f` with apimachinery's escapes (`\,` `\=` `\\`) and error texts.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut parts = split_field_terms(s);
        // apimachinery sorts the raw terms, which decides which bad term is reported first.
        parts.sort_unstable();
        let mut terms = Vec::new();
        for part in parts.into_iter().filter(|p| !p.is_empty()) {
            let (field, negated, raw) =
                split_field_term(part).ok_or_else(|| format!("invalid selector: '{s}'; can't understand '{part}'"))?;
            let value = unescape_field_value(raw)?;
            // A bare "=" term is dropped, as apimachinery's identity transform turns it into Everything.
            if field.is_empty() && value.is_empty() {
                continue;
            }
            terms.push(FieldTerm { field: field.to_string(), value, negated });
        }
        Ok(Self { terms })
    }

    /// The field labels used, so the server can reject the ones a resource does not support.
    pub fn fields(&self) -> Vec<&str> {
        self.terms.iter().map(|t| t.field.as_str()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// A term's field is a dotted path into the object; a missing field compares as "".
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| (field_value(obj, &t.field) == t.value.as_str()) != t.negated)
    }
}

/// Splits on commas that are not backslash-escaped, keeping the escapes for `unescape_field_value`.
fn split_field_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// The first operator occurrence splits the term, trying `!=` and `==` before `=` at each position
/// so the value does not keep a stray `=`. Returns (field, negated, raw value).
fn split_field_term(term: &str) -> Option<(&str, bool, &str)> {
    term.char_indices().find_map(|(i, _)| {
        let rest = &term[i..];
        [("!=", true), ("==", false), ("=", false)]
            .into_iter()
            .find_map(|(op, negated)| rest.strip_prefix(op).map(|value| (&term[..i], negated, value)))
    })
}

fn unescape_field_value(raw: &str) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut in_slash = false;
    for c in raw.chars() {
        if in_slash {
            if !matches!(c, '\\' | ',' | '=') {
                return Err(format!("invalid field selector: invalid escape sequence: \\{c}"));
            }
            out.push(c);
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            // Go prints the rune with %v, i.e. as its code point number.
            ',' | '=' => {
                return Err(format!("invalid field selector: unescaped character in value: {}", c as u32));
            }
            c => out.push(c),
        }
    }
    if in_slash {
        return Err("invalid field selector: invalid escape sequence: \\".to_string());
    }
    Ok(out)
}

fn field_value<'v>(obj: &'v Value, path: &str) -> Cow<'v, str> {
    let found = path.split('.').try_fold(obj, |v, segment| v.get(segment));
    match found {
        Some(Value::String(s)) => Cow::Borrowed(s),
        Some(v @ (Value::Bool(_) | Value::Number(_))) => Cow::Owned(v.to_string()),
        _ => Cow::Borrowed(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn sel(s: &str) -> LabelSelector {
        match LabelSelector::parse(s) {
            Ok(sel) => sel,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} should not parse, got {sel:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn equality_and_inequality() {
        let s = sel("app=web,tier!=db");
        assert!(s.matches(&labels(&[("app", "web")])));
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[("tier", "fe")])));
        assert!(sel("app==web").matches(&labels(&[("app", "web")])));
        assert!(!sel("app==web").matches(&labels(&[("app", "webx")])));
    }

    #[test]
    fn empty_value_forms() {
        // `a=` requires the label to be present and empty.
        let s = sel("a=");
        assert!(s.matches(&labels(&[("a", "")])));
        assert!(!s.matches(&labels(&[])));
        assert!(!s.matches(&labels(&[("a", "x")])));
        let s = sel("a=,b");
        assert!(s.matches(&labels(&[("a", ""), ("b", "1")])));
        assert!(!s.matches(&labels(&[("a", "")])));
    }

    #[test]
    fn set_based() {
        let s = sel("env in (prod, staging),zone notin (z1)");
        assert!(s.matches(&labels(&[("env", "prod")])));
        assert!(s.matches(&labels(&[("env", "staging"), ("zone", "z2")])));
        assert!(!s.matches(&labels(&[("env", "dev")])));
        assert!(!s.matches(&labels(&[("env", "prod"), ("zone", "z1")])));
        assert!(!s.matches(&labels(&[])));
        // notin also matches when the key is absent.
        assert!(sel("zone notin (z1)").matches(&labels(&[])));
    }

    #[test]
    fn set_with_empty_members() {
        let s = sel("x in (foo,,baz),y,z notin ()");
        assert!(s.matches(&labels(&[("x", ""), ("y", "1")])));
        assert!(s.matches(&labels(&[("x", "baz"), ("y", ""), ("z", "q")])));
        assert!(!s.matches(&labels(&[("x", "baz"), ("y", ""), ("z", "")])));
        assert!(sel("a in (,)").matches(&labels(&[("a", "")])));
        assert!(sel("a in (b,)").matches(&labels(&[("a", "")])));
        assert!(sel("a in (,b)").matches(&labels(&[("a", "b")])));
        assert!(sel("a in ()").matches(&labels(&[("a", "")])));
    }

    #[test]
    fn existence() {
        let s = sel("a,!b");
        assert!(s.matches(&labels(&[("a", "")])));
        assert!(!s.matches(&labels(&[("a", "1"), ("b", "2")])));
        assert!(!s.matches(&labels(&[("b", "2")])));
        assert!(sel(" !b ").matches(&labels(&[])));
    }

    #[test]
    fn keywords_as_keys_and_values() {
        assert!(sel("in in (in,notin)").matches(&labels(&[("in", "notin")])));
        assert!(sel("notin=in").matches(&labels(&[("notin", "in")])));
        assert!(sel("in").matches(&labels(&[("in", "x")])));
    }

    #[test]
    fn numeric_comparisons() {
        let s = sel("n>3,m<10");
        assert!(s.matches(&labels(&[("n", "4"), ("m", "9")])));
        assert!(!s.matches(&labels(&[("n", "3"), ("m", "9")])));
        assert!(!s.matches(&labels(&[("n", "4"), ("m", "10")])));
        assert!(!s.matches(&labels(&[("n", "abc"), ("m", "1")])));
        assert!(!s.matches(&labels(&[("m", "1")])));
    }

    #[test]
    fn whitespace_and_prefixed_keys() {
        let s = sel("\tapp.kubernetes.io/name = web ,\n tier in ( a , b )");
        assert!(s.matches(&labels(&[("app.kubernetes.io/name", "web"), ("tier", "b")])));
        assert!(!s.matches(&labels(&[("app.kubernetes.io/name", "web"), ("tier", "c")])));
    }

    #[test]
    fn everything_and_empty() {
        for s in ["", "   ", "\n"] {
            let parsed = sel(s);
            assert!(parsed.is_empty());
            assert!(parsed.matches(&labels(&[("a", "b")])));
        }
        assert_eq!(LabelSelector::everything(), sel(""));
        assert!(!sel("a").is_empty());
    }

    #[test]
    fn grammar_errors() {
        assert_eq!(parse_err("a=b c"), "found 'c', expected: ',' or 'end of string'");
        assert_eq!(parse_err("a,"), "found '', expected: identifier after ','");
        assert_eq!(parse_err("a,,b"), "found ',', expected: identifier after ','");
        assert_eq!(parse_err(",a"), "found ',', expected: !, identifier, or 'end of string'");
        assert_eq!(parse_err("=a"), "found '=', expected: !, identifier, or 'end of string'");
        assert_eq!(parse_err("a in"), "unable to parse requirement: found '' expected: '('");
        assert_eq!(parse_err("a in (b"), "unable to parse requirement: found '', expected: ',' or ')'");
        assert_eq!(parse_err("a in (b c)"), "unable to parse requirement: found 'c', expected: ',' or ')'");
        assert_eq!(parse_err("a in (="), "unable to parse requirement: found '=', expected: ',', ')' or identifier");
        assert_eq!(parse_err("a in (b,="), "unable to parse requirement: found '=', expected: ',', or identifier");
        assert_eq!(parse_err("a=(b"), "unable to parse requirement: found '(', expected: identifier");
        assert_eq!(parse_err("!"), "unable to parse requirement: found '', expected: identifier");
        assert_eq!(parse_err("!=a"), "found '!=', expected: !, identifier, or 'end of string'");
        assert_eq!(parse_err("!a=b"), "found '=', expected: ',' or 'end of string'");
        assert_eq!(parse_err("a b"), "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt");
        assert_eq!(parse_err("a notin notin"), "unable to parse requirement: found 'notin' expected: '('");
    }

    #[test]
    fn key_and_value_validation_errors() {
        let name_regex = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
                          alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for \
                          validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        assert_eq!(
            parse_err("-a=b"),
            format!("unable to parse requirement: <nil>: Invalid value: \"-a\": name part {name_regex}")
        );
        assert_eq!(
            parse_err("/a"),
            "unable to parse requirement: <nil>: Invalid value: \"/a\": prefix part must be non-empty"
        );
        assert!(parse_err("Ex.com/a").contains("prefix part a lowercase RFC 1123 subdomain must consist of"));
        assert!(parse_err("a/b/c").contains("a qualified name must consist of"));
        assert!(parse_err(&"k".repeat(64)).contains("name part must be no more than 63 characters"));
        assert_eq!(
            parse_err("a=b/c"),
            "unable to parse requirement: values[0][a]: Invalid value: \"b/c\": a valid label must be an empty \
             string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an \
             alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is \
             '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
        // Values are sorted before validation, so the index is the sorted position.
        assert!(
            parse_err("a in (z,-b)").starts_with("unable to parse requirement: values[0][a]: Invalid value: \"-b\"")
        );
        assert!(parse_err(&format!("a={}", "v".repeat(64))).contains("must be no more than 63 characters"));
        assert_eq!(
            parse_err("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value \
             must be an integer"
        );
        // "-1" is an integer but not a label value: one error, so no brackets.
        let one = parse_err("a<-1");
        assert!(one.starts_with("unable to parse requirement: values[0][a]: Invalid value: \"-1\": a valid label"));
        assert!(!one.contains("must be an integer"));
        // Two distinct problems are aggregated in brackets.
        let both = parse_err("a<x.");
        assert!(both.starts_with("unable to parse requirement: [values[0]: Invalid value: \"x.\": for 'Gt'"));
        assert!(both.ends_with("')]"));
    }

    #[test]
    fn from_json_forms() {
        let s = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "stg"]},
                {"key": "zone", "operator": "NotIn", "values": ["z1"]},
                {"key": "team", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist", "values": []}
            ]
        }))
        .expect("valid selector");
        assert!(s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "a"), ("legacy", "1")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("env", "prod"), ("team", "a"), ("zone", "z1")])));
        assert!(!s.matches(&labels(&[("app", "api"), ("env", "prod"), ("team", "a")])));

        let everything = LabelSelector::from_json(&json!({})).expect("empty object");
        assert!(everything.is_empty() && everything.matches(&labels(&[])));
        let everything = LabelSelector::from_json(&json!({"matchLabels": null, "matchExpressions": []}));
        assert!(everything.expect("nulls are absent").is_empty());

        let nothing = LabelSelector::from_json(&Value::Null).expect("null");
        assert!(!nothing.is_empty());
        assert!(!nothing.matches(&labels(&[])));
        assert!(!nothing.matches_object(&json!({"metadata": {"labels": {"a": "b"}}})));
    }

    #[test]
    fn from_json_errors() {
        let err = |v: Value| LabelSelector::from_json(&v).expect_err("should be rejected");
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]})),
            "\"Equals\" is not a valid label selector operator"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "In"}]})),
            "values: Invalid value: null: for 'in', 'notin' operators, values set can't be empty"
        );
        assert_eq!(
            err(json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})),
            "values: Invalid value: [\"x\"]: values set must be empty for exists and does not exist"
        );
        assert!(err(json!({"matchLabels": {"-bad": "x"}})).starts_with("key: Invalid value: \"-bad\": name part"));
        assert!(err(json!({"matchLabels": {"a": "b c"}})).starts_with("values[0][a]: Invalid value: \"b c\""));
        assert!(err(json!({"matchLabels": {"a": 1}})).contains("must be a string"));
        assert!(err(json!({"matchLabels": ["a"]})).contains("must be an object"));
        assert!(err(json!({"matchExpressions": {}})).contains("must be an array"));
        assert!(err(json!("app=web")).contains("must be an object"));
    }

    #[test]
    fn matches_object_reads_metadata_labels() {
        let s = sel("app=web,!canary");
        assert!(s.matches_object(&json!({"metadata": {"labels": {"app": "web"}}})));
        assert!(!s.matches_object(&json!({"metadata": {"labels": {"app": "web", "canary": "1"}}})));
        assert!(!s.matches_object(&json!({"metadata": {}})));
        assert!(sel("!x").matches_object(&json!({})));
        assert!(sel("").matches_object(&json!({"kind": "Pod"})));
    }

    #[test]
    fn go_quote_escapes() {
        assert_eq!(go_quote("plain"), "\"plain\"");
        assert_eq!(go_quote("a\"b\\c\n\t\u{1}\u{7f}é"), "\"a\\\"b\\\\c\\n\\t\\x01\\x7fé\"");
    }

    fn fsel(s: &str) -> FieldSelector {
        FieldSelector::parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn field_selector_matching() {
        let pod = json!({
            "metadata": {"name": "web-0", "namespace": "team-a"},
            "spec": {"nodeName": "n1", "unschedulable": true, "replicas": 3},
            "status": {"phase": "Running"}
        });
        assert!(fsel("metadata.name=web-0").matches(&pod));
        assert!(fsel("metadata.name==web-0,metadata.namespace=team-a").matches(&pod));
        assert!(!fsel("metadata.name=web-0,status.phase!=Running").matches(&pod));
        assert!(fsel("status.phase!=Pending").matches(&pod));
        assert!(fsel("spec.unschedulable=true,spec.replicas=3").matches(&pod));
        // Missing fields compare as the empty string.
        assert!(fsel("spec.missing=").matches(&pod));
        assert!(fsel("type!=Warning").matches(&pod));
        assert!(!fsel("type=Warning").matches(&pod));
        // Objects are not scalars and compare as "".
        assert!(fsel("spec=").matches(&pod));
        assert!(fsel("").matches(&pod) && fsel("").is_empty());
        assert!(fsel(",,").is_empty());
        assert!(fsel("=").is_empty());
    }

    #[test]
    fn field_selector_escapes() {
        let obj = json!({"metadata": {"name": "a,b=c\\d"}});
        let s = fsel(r"metadata.name=a\,b\=c\\d");
        assert_eq!(s.fields(), vec!["metadata.name"]);
        assert!(s.matches(&obj));
        assert!(!fsel(r"metadata.name=a\,b").matches(&obj));
        // The value keeps a leading '=' only when escaped; '==' is an operator.
        assert!(fsel(r"metadata.name==\=x").matches(&json!({"metadata": {"name": "=x"}})));
    }

    #[test]
    fn field_selector_fields_and_errors() {
        let s = fsel("spec.nodeName=n1,involvedObject.uid!=u");
        let mut fields = s.fields();
        fields.sort_unstable();
        assert_eq!(fields, vec!["involvedObject.uid", "spec.nodeName"]);
        let err = |s: &str| FieldSelector::parse(s).expect_err("should be rejected");
        assert_eq!(err("metadata.name"), "invalid selector: 'metadata.name'; can't understand 'metadata.name'");
        assert_eq!(err("b=1,zzz"), "invalid selector: 'b=1,zzz'; can't understand 'zzz'");
        assert_eq!(err("a=b=c"), "invalid field selector: unescaped character in value: 61");
        assert_eq!(err(r"a=b\,c,d=e,f"), r"invalid selector: 'a=b\,c,d=e,f'; can't understand 'f'");
        assert_eq!(err(r"a=b\x"), r"invalid field selector: invalid escape sequence: \x");
        assert_eq!(err(r"a=b\"), r"invalid field selector: invalid escape sequence: \");
        assert_eq!(err("a!==b"), "invalid field selector: unescaped character in value: 61");
    }
}
