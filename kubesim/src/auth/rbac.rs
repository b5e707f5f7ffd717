//! RBAC authorization over the stored rbac.authorization.k8s.io/v1 objects, following the
//! kube-apiserver's RBAC authorizer and rule resolver, plus the slice of bootstrap policy that every
//! cluster has so a fresh kubesim behaves like a fresh cluster without seeding objects.

use std::borrow::Cow;

use serde_json::{Map, Value, json};

use crate::selector::{LabelSelector, go_quote};

const MASTERS_GROUP: &str = "system:masters";
const AUTHENTICATED_GROUP: &str = "system:authenticated";
const UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// The authenticated identity of a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub name: String,
    pub groups: Vec<String>,
}

impl UserInfo {
    fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What a request wants to do, as the API server's RequestInfo resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attributes {
    Resource {
        verb: String,
        api_group: String,
        resource: String,
        subresource: Option<String>,
        namespace: Option<String>,
        name: Option<String>,
    },
    NonResource {
        verb: String,
        path: String,
    },
}

/// The RBAC objects currently stored, as JSON (rbac.authorization.k8s.io/v1).
#[derive(Debug, Clone, Copy)]
pub struct Policy<'a> {
    pub roles: &'a [Value],
    pub cluster_roles: &'a [Value],
    pub role_bindings: &'a [Value],
    pub cluster_role_bindings: &'a [Value],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny,
}

/// Allows when any rule granted to `user` (built-in or through a binding) covers `attrs`.
pub fn authorize(user: &UserInfo, attrs: &Attributes, policy: &Policy) -> Decision {
    let namespace = match attrs {
        Attributes::Resource { namespace, .. } => namespace.as_deref().unwrap_or(""),
        Attributes::NonResource { .. } => "",
    };
    if applicable_rules(user, namespace, policy).iter().any(|rule| rule_allows(rule, attrs)) {
        Decision::Allow
    } else {
        Decision::Deny
    }
}

/// The API server's 403 message for a denied request, e.g. `deployments.apps "x" is forbidden:
/// User "u" cannot get resource "deployments" in API group "apps" in the namespace "ns"`.
pub fn forbidden_message(user: &UserInfo, attrs: &Attributes) -> String {
    let user_name = go_quote(&user.name);
    match attrs {
        Attributes::NonResource { verb, path } => {
            format!("forbidden: {}", sanitize(&format!("User {user_name} cannot {verb} path {}", go_quote(path))))
        }
        Attributes::Resource { verb, api_group, resource, subresource, namespace, name } => {
            let shown = match non_empty(subresource) {
                Some(sub) => format!("{resource}/{sub}"),
                None => resource.clone(),
            };
            let scope = match non_empty(namespace) {
                Some(ns) => format!("in the namespace {}", go_quote(ns)),
                None => "at the cluster scope".to_string(),
            };
            let detail = sanitize(&format!(
                "User {user_name} cannot {verb} resource {} in API group {} {scope}",
                go_quote(&shown),
                go_quote(api_group)
            ));
            // The qualified resource is the GroupResource, which never includes the subresource.
            let qualified = if api_group.is_empty() { resource.clone() } else { format!("{resource}.{api_group}") };
            match non_empty(name) {
                _ if qualified.is_empty() => format!("forbidden: {detail}"),
                Some(name) => format!("{qualified} {} is forbidden: {detail}", go_quote(name)),
                None => format!("{qualified} is forbidden: {detail}"),
            }
        }
    }
}

/// The rules that apply to `user` in `namespace` ("" for cluster-wide only), as the
/// SelfSubjectRulesReview status's (resourceRules, nonResourceRules).
pub fn rules_for(user: &UserInfo, namespace: &str, policy: &Policy) -> (Vec<Value>, Vec<Value>) {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in applicable_rules(user, namespace, policy) {
        // A policy rule may carry both halves; each half is reported in its own list.
        let resources = string_list(&rule, "resources");
        if !resources.is_empty() {
            let mut out = Map::new();
            out.insert("verbs".into(), Value::Array(string_list(&rule, "verbs")));
            insert_non_empty(&mut out, "apiGroups", string_list(&rule, "apiGroups"));
            out.insert("resources".into(), Value::Array(resources));
            insert_non_empty(&mut out, "resourceNames", string_list(&rule, "resourceNames"));
            resource_rules.push(Value::Object(out));
        }
        let urls = string_list(&rule, "nonResourceURLs");
        if !urls.is_empty() {
            non_resource_rules.push(json!({"verbs": string_list(&rule, "verbs"), "nonResourceURLs": urls}));
        }
    }
    (resource_rules, non_resource_rules)
}

/// Rules from the bootstrap policy that a real cluster stores as objects: cluster-admin bound to
/// system:masters, and system:basic-user, system:discovery and system:public-info-viewer.
fn builtin_rules(user: &UserInfo) -> Vec<Value> {
    let mut rules = Vec::new();
    if user.in_group(MASTERS_GROUP) {
        rules.push(json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}));
        rules.push(json!({"verbs": ["*"], "nonResourceURLs": ["*"]}));
    }
    let authenticated = user.in_group(AUTHENTICATED_GROUP);
    if authenticated {
        rules.push(json!({
            "verbs": ["create"],
            "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]
        }));
        rules.push(json!({
            "verbs": ["create"], "apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"]
        }));
        rules.push(json!({
            "verbs": ["get"],
            "nonResourceURLs": [
                "/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
                "/version", "/version/"
            ]
        }));
    }
    if authenticated || user.in_group(UNAUTHENTICATED_GROUP) {
        rules.push(json!({
            "verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]
        }));
    }
    rules
}

/// The rule resolver's walk: built-ins, then every ClusterRoleBinding, then the RoleBindings of
/// `namespace` when there is one.
fn applicable_rules<'a>(user: &UserInfo, namespace: &str, policy: &Policy<'a>) -> Vec<Cow<'a, Value>> {
    let mut rules: Vec<Cow<'a, Value>> = builtin_rules(user).into_iter().map(Cow::Owned).collect();
    let cluster_grants = policy.cluster_role_bindings.iter().map(|b| (b, ""));
    let namespace_grants = policy
        .role_bindings
        .iter()
        .filter(|b| !namespace.is_empty() && namespace_of(b) == namespace)
        .map(|b| (b, namespace));
    for (binding, binding_ns) in cluster_grants.chain(namespace_grants) {
        if binding_applies(user, binding, binding_ns) {
            rules.extend(role_ref_rules(policy, binding, binding_ns).into_iter().map(Cow::Borrowed));
        }
    }
    rules
}

fn binding_applies(user: &UserInfo, binding: &Value, binding_ns: &str) -> bool {
    objects(binding, "subjects").any(|subject| subject_applies(user, subject, binding_ns))
}

fn subject_applies(user: &UserInfo, subject: &Value, binding_ns: &str) -> bool {
    let name = str_at(subject, "name");
    match str_at(subject, "kind") {
        "User" => user.name == name,
        "Group" => user.in_group(name),
        "ServiceAccount" => {
            // A RoleBinding may leave the namespace out to mean its own; a ClusterRoleBinding may not.
            let sa_ns = match str_at(subject, "namespace") {
                "" => binding_ns,
                ns => ns,
            };
            !sa_ns.is_empty()
                && user
                    .name
                    .strip_prefix(SERVICE_ACCOUNT_PREFIX)
                    .and_then(|rest| rest.strip_prefix(sa_ns))
                    .and_then(|rest| rest.strip_prefix(':'))
                    == Some(name)
        }
        _ => false,
    }
}

/// A dangling roleRef grants nothing (the real authorizer only adds it to the denial reason).
fn role_ref_rules<'a>(policy: &Policy<'a>, binding: &Value, binding_ns: &str) -> Vec<&'a Value> {
    let role_ref = binding.get("roleRef").unwrap_or(&Value::Null);
    let name = str_at(role_ref, "name");
    match str_at(role_ref, "kind") {
        "Role" if !binding_ns.is_empty() => policy
            .roles
            .iter()
            .find(|r| namespace_of(r) == binding_ns && name_of(r) == name)
            .map(|r| objects(r, "rules").collect())
            .unwrap_or_default(),
        "ClusterRole" => policy
            .cluster_roles
            .iter()
            .find(|r| name_of(r) == name)
            .map(|r| cluster_role_rules(policy, r, &mut Vec::new()))
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A ClusterRole with an aggregationRule has exactly the rules its selectors gather, which is what
/// the aggregation controller would have written into it; computing it here keeps authorization
/// right whether or not such a controller has run. `visiting` breaks aggregation cycles.
fn cluster_role_rules<'a>(policy: &Policy<'a>, role: &'a Value, visiting: &mut Vec<&'a str>) -> Vec<&'a Value> {
    let Some(aggregation) = role.get("aggregationRule").filter(|a| !a.is_null()) else {
        return objects(role, "rules").collect();
    };
    visiting.push(name_of(role));
    // The controller visits candidates by name and keeps the first copy of each distinct rule.
    let mut candidates: Vec<&'a Value> =
        policy.cluster_roles.iter().filter(|c| !visiting.contains(&name_of(c))).collect();
    candidates.sort_by_key(|c| name_of(c));
    let mut rules: Vec<&'a Value> = Vec::new();
    for selector in objects(aggregation, "clusterRoleSelectors") {
        // The controller gives up on a role whose selector does not parse; skipping it is close enough.
        let Ok(selector) = LabelSelector::from_json(selector) else {
            continue;
        };
        for candidate in candidates.iter().filter(|c| selector.matches_object(c)) {
            for rule in cluster_role_rules(policy, candidate, visiting) {
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            }
        }
    }
    visiting.pop();
    rules
}

fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    match attrs {
        Attributes::Resource { verb, api_group, resource, subresource, name, .. } => {
            let sub = non_empty(subresource).unwrap_or("");
            let combined: Cow<str> = if sub.is_empty() { resource.into() } else { format!("{resource}/{sub}").into() };
            listed_or_star(rule, "verbs", verb)
                && listed_or_star(rule, "apiGroups", api_group)
                && resource_matches(rule, &combined, sub)
                && resource_name_matches(rule, non_empty(name).unwrap_or(""))
        }
        Attributes::NonResource { verb, path } => listed_or_star(rule, "verbs", verb) && url_matches(rule, path),
    }
}

fn listed_or_star(rule: &Value, key: &str, wanted: &str) -> bool {
    strs(rule, key).any(|x| x == "*" || x == wanted)
}

/// "*" covers subresources too; "*/scale" covers the scale subresource of any resource.
fn resource_matches(rule: &Value, combined: &str, subresource: &str) -> bool {
    strs(rule, "resources")
        .any(|r| r == "*" || r == combined || (!subresource.is_empty() && r.strip_prefix("*/") == Some(subresource)))
}

/// Requests without a name (list, watch, create, deletecollection) never match a rule that lists
/// resourceNames, because "" is never among them.
fn resource_name_matches(rule: &Value, name: &str) -> bool {
    let mut names = strs(rule, "resourceNames").peekable();
    names.peek().is_none() || names.any(|n| n == name)
}

fn url_matches(rule: &Value, path: &str) -> bool {
    strs(rule, "nonResourceURLs")
        .any(|u| u == "*" || u == path || (u.ends_with('*') && path.starts_with(u.trim_end_matches('*'))))
}

/// The API server escapes these so a 403 body can never be mistaken for HTML.
fn sanitize(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

fn str_at<'v>(v: &'v Value, key: &str) -> &'v str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

fn name_of(obj: &Value) -> &str {
    obj.get("metadata").map_or("", |m| str_at(m, "name"))
}

fn namespace_of(obj: &Value) -> &str {
    obj.get("metadata").map_or("", |m| str_at(m, "namespace"))
}

fn objects<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = &'v Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

fn strs<'v>(v: &'v Value, key: &str) -> impl Iterator<Item = &'v str> {
    objects(v, key).filter_map(Value::as_str)
}

fn string_list(v: &Value, key: &str) -> Vec<Value> {
    strs(v, key).map(|s| Value::String(s.to_string())).collect()
}

fn insert_non_empty(out: &mut Map<String, Value>, key: &str, list: Vec<Value>) {
    if !list.is_empty() {
        out.insert(key.to_string(), Value::Array(list));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OP: &str = "system:serviceaccount:pinak:op";

    fn user(name: &str, groups: &[&str]) -> UserInfo {
        UserInfo { name: name.to_string(), groups: groups.iter().map(|g| g.to_string()).collect() }
    }

    fn authed(name: &str) -> UserInfo {
        user(name, &[AUTHENTICATED_GROUP])
    }

    fn res(verb: &str, group: &str, resource: &str, ns: Option<&str>, name: Option<&str>) -> Attributes {
        Attributes::Resource {
            verb: verb.to_string(),
            api_group: group.to_string(),
            resource: resource.to_string(),
            subresource: None,
            namespace: ns.map(str::to_string),
            name: name.map(str::to_string),
        }
    }

    fn sub(verb: &str, group: &str, resource: &str, subresource: &str, ns: &str, name: &str) -> Attributes {
        Attributes::Resource {
            verb: verb.to_string(),
            api_group: group.to_string(),
            resource: resource.to_string(),
            subresource: Some(subresource.to_string()),
            namespace: Some(ns.to_string()),
            name: Some(name.to_string()),
        }
    }

    fn url(verb: &str, path: &str) -> Attributes {
        Attributes::NonResource { verb: verb.to_string(), path: path.to_string() }
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> Value {
        json!({"verbs": verbs, "apiGroups": groups, "resources": resources})
    }

    fn url_rule(verbs: &[&str], urls: &[&str]) -> Value {
        json!({"verbs": verbs, "nonResourceURLs": urls})
    }

    fn user_subject(name: &str) -> Value {
        json!({"kind": "User", "name": name})
    }

    fn role(ns: &str, name: &str, rules: Vec<Value>) -> Value {
        json!({"kind": "Role", "metadata": {"name": name, "namespace": ns}, "rules": rules})
    }

    fn cluster_role(name: &str, labels: Value, rules: Vec<Value>) -> Value {
        json!({"kind": "ClusterRole", "metadata": {"name": name, "labels": labels}, "rules": rules})
    }

    fn aggregating_role(name: &str, labels: Value, selectors: Value) -> Value {
        let mut role = cluster_role(name, labels, vec![rule(&["*"], &["*"], &["*"])]);
        role["aggregationRule"] = selectors;
        role
    }

    fn binding(ns: Option<&str>, kind: &str, role: &str, subjects: Vec<Value>) -> Value {
        let mut meta = json!({"name": format!("bind-{role}")});
        if let Some(ns) = ns {
            meta["namespace"] = json!(ns);
        }
        let role_ref = json!({"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role});
        json!({"metadata": meta, "roleRef": role_ref, "subjects": subjects})
    }

    #[derive(Default)]
    struct Store {
        roles: Vec<Value>,
        cluster_roles: Vec<Value>,
        role_bindings: Vec<Value>,
        cluster_role_bindings: Vec<Value>,
    }

    impl Store {
        fn policy(&self) -> Policy<'_> {
            Policy {
                roles: &self.roles,
                cluster_roles: &self.cluster_roles,
                role_bindings: &self.role_bindings,
                cluster_role_bindings: &self.cluster_role_bindings,
            }
        }

        fn allows(&self, u: &UserInfo, a: &Attributes) -> bool {
            authorize(u, a, &self.policy()) == Decision::Allow
        }

        /// A ClusterRole with `rules`, bound cluster-wide to the user named like the role.
        fn grant_cluster(&mut self, name: &str, rules: Vec<Value>) {
            self.cluster_roles.push(cluster_role(name, json!({}), rules));
            let crb = binding(None, "ClusterRole", name, vec![user_subject(name)]);
            self.cluster_role_bindings.push(crb);
        }
    }

    #[test]
    fn nothing_stored_denies_resources() {
        let s = Store::default();
        assert!(!s.allows(&authed("alice"), &res("get", "", "pods", Some("default"), Some("p"))));
        assert!(!s.allows(&authed("alice"), &res("list", "", "namespaces", None, None)));
    }

    #[test]
    fn masters_may_do_everything() {
        let s = Store::default();
        let admin = user("admin", &[MASTERS_GROUP, AUTHENTICATED_GROUP]);
        assert!(s.allows(&admin, &res("delete", "apps", "deployments", Some("x"), Some("d"))));
        assert!(s.allows(&admin, &sub("update", "", "pods", "status", "x", "p")));
        assert!(s.allows(&admin, &url("post", "/anything/at/all")));
        // The group, not the name, grants it.
        assert!(!s.allows(&authed("admin"), &res("get", "", "pods", Some("x"), Some("p"))));
    }

    #[test]
    fn builtin_discovery_and_self_reviews() {
        let s = Store::default();
        let alice = authed("alice");
        let paths = ["/api", "/api/v1", "/apis", "/apis/apps/v1", "/openapi/v3", "/version", "/version/"];
        for path in paths.into_iter().chain(["/healthz", "/livez", "/readyz"]) {
            assert!(s.allows(&alice, &url("get", path)), "{path}");
        }
        assert!(!s.allows(&alice, &url("post", "/api")));
        assert!(!s.allows(&alice, &url("get", "/metrics")));
        assert!(!s.allows(&alice, &url("get", "/healthz/etcd")));
        let ssar = res("create", "authorization.k8s.io", "selfsubjectaccessreviews", None, None);
        let ssrr = res("create", "authorization.k8s.io", "selfsubjectrulesreviews", None, None);
        let ssr = res("create", "authentication.k8s.io", "selfsubjectreviews", None, None);
        let sar = res("create", "authorization.k8s.io", "subjectaccessreviews", None, None);
        assert!(s.allows(&alice, &ssar) && s.allows(&alice, &ssrr) && s.allows(&alice, &ssr));
        assert!(!s.allows(&alice, &sar));
        // Without system:authenticated only the public-info endpoints remain.
        let anon = user("system:anonymous", &[UNAUTHENTICATED_GROUP]);
        assert!(s.allows(&anon, &url("get", "/version")));
        assert!(!s.allows(&anon, &url("get", "/api")));
        assert!(!s.allows(&anon, &ssar));
        assert!(!s.allows(&user("nobody", &[]), &url("get", "/healthz")));
    }

    #[test]
    fn role_binding_grants_only_in_its_namespace() {
        let mut s = Store::default();
        s.roles.push(role("team-a", "reader", vec![rule(&["get", "list"], &[""], &["pods"])]));
        s.role_bindings.push(binding(Some("team-a"), "Role", "reader", vec![user_subject("bob")]));
        let bob = authed("bob");
        assert!(s.allows(&bob, &res("get", "", "pods", Some("team-a"), Some("p"))));
        assert!(s.allows(&bob, &res("list", "", "pods", Some("team-a"), None)));
        assert!(!s.allows(&bob, &res("delete", "", "pods", Some("team-a"), Some("p"))));
        assert!(!s.allows(&bob, &res("get", "", "pods", Some("team-b"), Some("p"))));
        assert!(!s.allows(&bob, &res("list", "", "pods", None, None)));
        assert!(!s.allows(&bob, &res("get", "apps", "pods", Some("team-a"), Some("p"))));
        assert!(!s.allows(&authed("carol"), &res("get", "", "pods", Some("team-a"), Some("p"))));
    }

    #[test]
    fn role_ref_must_resolve_in_the_binding_namespace() {
        let mut s = Store::default();
        s.roles.push(role("team-b", "reader", vec![rule(&["*"], &["*"], &["*"])]));
        s.role_bindings.push(binding(Some("team-a"), "Role", "reader", vec![user_subject("bob")]));
        s.role_bindings.push(binding(Some("team-a"), "Role", "missing", vec![user_subject("bob")]));
        // A ClusterRoleBinding cannot reference a Role.
        s.cluster_role_bindings.push(binding(None, "Role", "reader", vec![user_subject("bob")]));
        let bob = authed("bob");
        assert!(!s.allows(&bob, &res("get", "", "pods", Some("team-a"), Some("p"))));
        assert!(!s.allows(&bob, &res("get", "", "pods", Some("team-b"), Some("p"))));
    }

    #[test]
    fn role_binding_to_cluster_role_is_namespaced() {
        let mut s = Store::default();
        s.cluster_roles.push(cluster_role("edit", json!({}), vec![rule(&["*"], &["apps"], &["deployments"])]));
        let devs = json!({"kind": "Group", "name": "devs"});
        s.role_bindings.push(binding(Some("team-a"), "ClusterRole", "edit", vec![devs]));
        let dev = user("dana", &["devs", AUTHENTICATED_GROUP]);
        let patch = |ns: &str| res("patch", "apps", "deployments", Some(ns), Some("d"));
        assert!(s.allows(&dev, &patch("team-a")));
        assert!(!s.allows(&dev, &patch("team-b")));
        assert!(!s.allows(&dev, &res("list", "apps", "deployments", None, None)));
        assert!(!s.allows(&authed("dana"), &patch("team-a")));
    }

    #[test]
    fn cluster_role_binding_grants_everywhere() {
        let mut s = Store::default();
        s.grant_cluster("bob", vec![rule(&["get", "list", "watch"], &[""], &["nodes", "pods"])]);
        let bob = authed("bob");
        assert!(s.allows(&bob, &res("list", "", "nodes", None, None)));
        assert!(s.allows(&bob, &res("watch", "", "pods", None, None)));
        assert!(s.allows(&bob, &res("get", "", "pods", Some("any"), Some("p"))));
        assert!(!s.allows(&bob, &res("create", "", "pods", Some("any"), None)));
    }

    #[test]
    fn service_account_subjects() {
        let mut s = Store::default();
        s.cluster_roles.push(cluster_role("cm", json!({}), vec![rule(&["get"], &[""], &["configmaps"])]));
        let sa = |name: &str| json!({"kind": "ServiceAccount", "name": name});
        let sa_in = |name: &str, ns: &str| json!({"kind": "ServiceAccount", "name": name, "namespace": ns});
        // Namespace omitted in a RoleBinding: defaults to the binding's namespace.
        s.role_bindings.push(binding(Some("pinak"), "ClusterRole", "cm", vec![sa("op")]));
        // Explicit namespace pointing elsewhere.
        s.role_bindings.push(binding(Some("team-a"), "ClusterRole", "cm", vec![sa_in("op", "pinak")]));
        // Namespace omitted in a ClusterRoleBinding: matches nobody.
        s.cluster_role_bindings.push(binding(None, "ClusterRole", "cm", vec![sa("other")]));
        let op = authed(OP);
        let get_cm = |ns: &str| res("get", "", "configmaps", Some(ns), Some("c"));
        assert!(s.allows(&op, &get_cm("pinak")));
        assert!(s.allows(&op, &get_cm("team-a")));
        assert!(!s.allows(&op, &get_cm("team-b")));
        assert!(!s.allows(&authed("system:serviceaccount:team-a:op"), &get_cm("team-a")));
        assert!(!s.allows(&authed("system:serviceaccount:pinak:op2"), &get_cm("pinak")));
        assert!(!s.allows(&authed("system:serviceaccount::other"), &get_cm("x")));
        assert!(!s.allows(&authed("op"), &get_cm("pinak")));
    }

    #[test]
    fn unknown_subject_kinds_match_nobody() {
        let mut s = Store::default();
        s.cluster_roles.push(cluster_role("all", json!({}), vec![rule(&["*"], &["*"], &["*"])]));
        let subjects = vec![json!({"kind": "user", "name": "bob"}), json!({"name": "bob"})];
        s.cluster_role_bindings.push(binding(None, "ClusterRole", "all", subjects));
        assert!(!s.allows(&authed("bob"), &res("get", "", "pods", Some("a"), Some("p"))));
    }

    #[test]
    fn resource_forms_and_subresources() {
        let mut s = Store::default();
        s.grant_cluster(
            "u",
            vec![
                rule(&["get", "patch"], &["apps"], &["deployments/scale"]),
                rule(&["get"], &["*"], &["*/status"]),
                rule(&["list"], &[""], &["*"]),
            ],
        );
        let u = authed("u");
        assert!(s.allows(&u, &sub("patch", "apps", "deployments", "scale", "a", "d")));
        assert!(!s.allows(&u, &res("patch", "apps", "deployments", Some("a"), Some("d"))));
        assert!(!s.allows(&u, &sub("patch", "apps", "statefulsets", "scale", "a", "s")));
        assert!(s.allows(&u, &sub("get", "apps", "deployments", "status", "a", "d")));
        assert!(s.allows(&u, &sub("get", "", "pods", "status", "a", "p")));
        assert!(!s.allows(&u, &res("get", "", "status", Some("a"), Some("p"))));
        assert!(!s.allows(&u, &sub("get", "", "pods", "log", "a", "p")));
        // "*" covers subresources as well.
        assert!(s.allows(&u, &res("list", "", "secrets", Some("a"), None)));
        assert!(s.allows(&u, &sub("list", "", "pods", "log", "a", "p")));
        assert!(!s.allows(&u, &res("list", "apps", "deployments", Some("a"), None)));
        // An empty subresource is no subresource.
        let mut empty_sub = res("patch", "apps", "deployments/scale", Some("a"), Some("d"));
        if let Attributes::Resource { subresource, .. } = &mut empty_sub {
            *subresource = Some(String::new());
        }
        assert!(s.allows(&u, &empty_sub));
    }

    #[test]
    fn resource_names() {
        let mut s = Store::default();
        let mut named = rule(&["get", "list", "watch", "create", "update"], &[""], &["configmaps"]);
        named["resourceNames"] = json!(["cfg", "other"]);
        s.grant_cluster("u", vec![named]);
        let u = authed("u");
        let cm = |verb: &str, name: Option<&str>| res(verb, "", "configmaps", Some("a"), name);
        assert!(s.allows(&u, &cm("get", Some("cfg"))));
        assert!(s.allows(&u, &cm("update", Some("other"))));
        assert!(!s.allows(&u, &cm("get", Some("nope"))));
        assert!(!s.allows(&u, &cm("list", None)));
        assert!(!s.allows(&u, &cm("watch", Some(""))));
        assert!(!s.allows(&u, &cm("create", None)));
        // A watch narrowed to one name (metadata.name field selector) carries the name, as in Kubernetes.
        assert!(s.allows(&u, &cm("watch", Some("cfg"))));
    }

    #[test]
    fn non_resource_urls() {
        let mut s = Store::default();
        s.grant_cluster(
            "m",
            vec![url_rule(&["get"], &["/metrics", "/logs/*", "/debug**"]), rule(&["get"], &[""], &["*"])],
        );
        let m = user("m", &[]);
        assert!(s.allows(&m, &url("get", "/metrics")));
        assert!(!s.allows(&m, &url("get", "/metrics/extra")));
        assert!(s.allows(&m, &url("get", "/logs/")));
        assert!(s.allows(&m, &url("get", "/logs/a/b")));
        assert!(!s.allows(&m, &url("get", "/logs")));
        assert!(s.allows(&m, &url("get", "/debug/pprof")));
        assert!(!s.allows(&m, &url("put", "/metrics")));
        // A resources-only rule never grants a path.
        assert!(!s.allows(&m, &url("get", "/api")));
    }

    #[test]
    fn aggregation_unions_labelled_roles() {
        let mut s = Store::default();
        let to_monitoring = json!({"rbac.example.com/aggregate-to-monitoring": "true"});
        let selectors = json!({"clusterRoleSelectors": [
            {"matchLabels": to_monitoring},
            {"matchExpressions": [{"key": "extra", "operator": "Exists"}]}
        ]});
        s.cluster_roles.push(aggregating_role("monitoring", json!({}), selectors));
        let pods = rule(&["get"], &[""], &["pods"]);
        let services = rule(&["get"], &[""], &["services"]);
        s.cluster_roles.push(cluster_role("pods-view", to_monitoring, vec![pods.clone()]));
        s.cluster_roles.push(cluster_role("svc-view", json!({"extra": "1"}), vec![services.clone(), pods.clone()]));
        let other_labels = json!({"rbac.example.com/aggregate-to-monitoring": "no"});
        s.cluster_roles.push(cluster_role("unrelated", other_labels, vec![rule(&["get"], &[""], &["secrets"])]));
        s.cluster_role_bindings.push(binding(None, "ClusterRole", "monitoring", vec![user_subject("mon")]));
        let mon = authed("mon");
        assert!(s.allows(&mon, &res("get", "", "pods", Some("a"), Some("p"))));
        assert!(s.allows(&mon, &res("get", "", "services", Some("a"), Some("s"))));
        assert!(!s.allows(&mon, &res("get", "", "secrets", Some("a"), Some("s"))));
        // The aggregating role's own "*" rule is replaced, as the controller overwrites it.
        assert!(!s.allows(&mon, &res("delete", "", "pods", Some("a"), Some("p"))));
        // Duplicate rules across aggregated roles appear once, ordered by role name.
        let (resource_rules, _) = rules_for(&mon, "", &s.policy());
        let stored: Vec<&Value> = resource_rules.iter().filter(|r| r["apiGroups"] == json!([""])).collect();
        assert_eq!(stored, vec![&pods, &services]);
    }

    #[test]
    fn aggregation_is_transitive_and_cycle_safe() {
        let mut s = Store::default();
        let selecting = |label: &str| json!({"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]});
        s.cluster_roles.push(aggregating_role("top", json!({}), selecting("to-top")));
        s.cluster_roles.push(aggregating_role("middle", json!({"to-top": "true"}), selecting("to-middle")));
        s.cluster_roles.push(aggregating_role("looped", json!({"to-middle": "true"}), selecting("to-top")));
        let leaf_rules = vec![rule(&["get"], &[""], &["pods"])];
        s.cluster_roles.push(cluster_role("leaf", json!({"to-middle": "true"}), leaf_rules));
        s.cluster_role_bindings.push(binding(None, "ClusterRole", "top", vec![user_subject("t")]));
        let t = authed("t");
        assert!(s.allows(&t, &res("get", "", "pods", Some("a"), Some("p"))));
        assert!(!s.allows(&t, &res("list", "", "pods", Some("a"), None)));
    }

    #[test]
    fn aggregation_edge_cases() {
        let mut s = Store::default();
        // An aggregationRule without selectors gathers nothing and replaces the stored rules.
        s.cluster_roles.push(aggregating_role("empty", json!({}), json!({})));
        let bad = json!({"clusterRoleSelectors": [
            {"matchExpressions": [{"key": "a", "operator": "Equals"}]},
            {"matchLabels": {"x": "y"}}
        ]});
        s.cluster_roles.push(aggregating_role("bad", json!({}), bad));
        // A null aggregationRule means a plain role.
        s.cluster_roles.push(aggregating_role("plain", json!({}), Value::Null));
        s.cluster_roles.push(cluster_role("xy", json!({"x": "y"}), vec![rule(&["get"], &[""], &["pods"])]));
        for name in ["empty", "bad", "plain"] {
            s.cluster_role_bindings.push(binding(None, "ClusterRole", name, vec![user_subject(name)]));
        }
        let get_pod = res("get", "", "pods", Some("a"), Some("p"));
        assert!(!s.allows(&authed("empty"), &get_pod));
        // A broken selector is skipped while the valid one still applies.
        assert!(s.allows(&authed("bad"), &get_pod));
        assert!(!s.allows(&authed("bad"), &res("get", "", "nodes", None, Some("n"))));
        assert!(s.allows(&authed("plain"), &res("delete", "", "nodes", None, Some("n"))));
    }

    #[test]
    fn forbidden_messages() {
        let op = user(OP, &[]);
        let who = "User \"system:serviceaccount:pinak:op\"";
        assert_eq!(
            forbidden_message(&op, &res("get", "apps", "deployments", Some("team-a"), Some("x"))),
            format!(
                "deployments.apps \"x\" is forbidden: {who} cannot get resource \"deployments\" in API group \
                 \"apps\" in the namespace \"team-a\""
            )
        );
        assert_eq!(
            forbidden_message(&op, &res("list", "", "nodes", None, None)),
            format!("nodes is forbidden: {who} cannot list resource \"nodes\" in API group \"\" at the cluster scope")
        );
        assert_eq!(
            forbidden_message(&op, &res("list", "apps", "deployments", Some("team-a"), None)),
            format!(
                "deployments.apps is forbidden: {who} cannot list resource \"deployments\" in API group \"apps\" \
                 in the namespace \"team-a\""
            )
        );
        assert_eq!(
            forbidden_message(&op, &sub("patch", "apps", "deployments", "scale", "team-a", "x")),
            format!(
                "deployments.apps \"x\" is forbidden: {who} cannot patch resource \"deployments/scale\" in API \
                 group \"apps\" in the namespace \"team-a\""
            )
        );
        assert_eq!(
            forbidden_message(&op, &res("get", "", "pods", Some(""), Some(""))),
            format!("pods is forbidden: {who} cannot get resource \"pods\" in API group \"\" at the cluster scope")
        );
        assert_eq!(
            forbidden_message(&user("x", &[]), &url("get", "/foo")),
            "forbidden: User \"x\" cannot get path \"/foo\""
        );
        assert_eq!(
            forbidden_message(&user("a\"<b>&", &[]), &url("get", "/x<y>")),
            "forbidden: User \"a\\\"&lt;b&gt;&amp;\" cannot get path \"/x&lt;y&gt;\""
        );
        assert_eq!(
            forbidden_message(&user("x", &[]), &res("get", "", "", None, None)),
            "forbidden: User \"x\" cannot get resource \"\" in API group \"\" at the cluster scope"
        );
    }

    #[test]
    fn rules_for_lists_builtin_and_bound_rules() {
        let mut s = Store::default();
        let mut named = rule(&["get"], &[""], &["configmaps"]);
        named["resourceNames"] = json!(["c"]);
        s.roles.push(role("team-a", "cfg", vec![named.clone()]));
        s.role_bindings.push(binding(Some("team-a"), "Role", "cfg", vec![user_subject("u")]));
        let mut mixed = rule(&["get"], &[""], &["nodes"]);
        mixed["nonResourceURLs"] = json!(["/metrics"]);
        s.grant_cluster("u", vec![mixed]);
        let u = authed("u");
        let (resource_rules, non_resource_rules) = rules_for(&u, "team-a", &s.policy());
        let reviews =
            rule(&["create"], &["authorization.k8s.io"], &["selfsubjectaccessreviews", "selfsubjectrulesreviews"]);
        assert!(resource_rules.contains(&reviews));
        assert!(resource_rules.contains(&rule(&["get"], &[""], &["nodes"])));
        assert!(resource_rules.contains(&named));
        assert!(non_resource_rules.contains(&url_rule(&["get"], &["/metrics"])));
        let discovery = non_resource_rules.iter().filter_map(|r| r["nonResourceURLs"].as_array());
        assert!(discovery.into_iter().any(|urls| urls.len() == 11));
        assert_eq!((resource_rules.len(), non_resource_rules.len()), (4, 3));
        // Another namespace drops the RoleBinding's rule; "" keeps cluster-wide grants only.
        let (elsewhere, _) = rules_for(&u, "team-b", &s.policy());
        assert_eq!(elsewhere.len(), 3);
        assert_eq!(rules_for(&u, "", &s.policy()).0, elsewhere);
        // Empty lists are omitted, as the status type's omitempty does.
        s.grant_cluster("v", vec![json!({"verbs": ["get"], "resources": ["pods"], "resourceNames": []})]);
        let (bare, _) = rules_for(&user("v", &[]), "", &s.policy());
        assert_eq!(bare, vec![json!({"verbs": ["get"], "resources": ["pods"]})]);
        // Masters see the cluster-admin rules.
        let (admin_res, admin_urls) = rules_for(&user("root", &[MASTERS_GROUP]), "", &s.policy());
        assert_eq!(admin_res, vec![rule(&["*"], &["*"], &["*"])]);
        assert_eq!(admin_urls, vec![url_rule(&["*"], &["*"])]);
        // Unbound users without groups get nothing.
        assert_eq!(rules_for(&user("x", &[]), "team-a", &s.policy()), (vec![], vec![]));
    }
}
