//! The Helm chart `charts/pinak`, driven by the real Helm 3 and Helm 4:
//! - `helm lint --strict` and `helm template` over a matrix of values; both Helms must render
//!   the same manifests, and every manifest passes `kubernetes-validate --strict` for each
//!   Kubernetes minor the chart supports;
//! - `values.schema.json` refuses bad values, each with a message that says what to do;
//! - the ClusterRole is exactly the table of calls the operator makes;
//! - the chart's CRD is the generated one, the examples are valid, and docs/values.md is the
//!   reference generated from the schema;
//! - `helm install` into kubesim (RBAC enforced): the operator pod runs, a store from the
//!   examples becomes Ready and serves its tenant through its Service, no request of the operator
//!   is refused or beyond its ClusterRole, and `helm upgrade` and `helm uninstall` leave nothing
//!   behind but the CRD and the retained store.
//!
//! With `PINAK_E2E_KUBECONFIG` set, the tests that need a cluster run on that one (the chart's
//! image is then `PINAK_E2E_API_IMAGE`, each install gets its own release name and namespace,
//! and what the operator requested, which only kubesim's request log shows, is not checked).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use kubesim::testing::{Sim, eventually, repo_root, tool};
use pinak_tests::operator::{admin_url, api_image, operator_during_cleanup, workspace_bin};
use pinak_tests::service::service_url;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Connection, Executor};

/// The Helm majors users run; each must accept, render and refuse alike.
const HELMS: [&str; 2] = ["PINAK_HELM3", "PINAK_HELM"];
/// The Kubernetes minors the chart supports (`kubeVersion` in Chart.yaml).
const KUBERNETES: [&str; 6] = ["1.30.0", "1.31.0", "1.32.0", "1.33.0", "1.34.0", "1.35.0"];
const RELEASE: &str = "pinak";
const NAMESPACE: &str = "pinak-system";

/// What the operator calls (operator/src/main.rs, operator/src/reconcile/), as the ClusterRole
/// must grant it: (API group, resource, verbs).
const OPERATOR_RBAC: &[(&str, &str, &[&str])] = &[
    ("pinak.dev", "memorystores", &["list", "watch", "patch"]),
    ("pinak.dev", "memorystores/status", &["patch"]),
    ("apps", "deployments", &["get", "list", "watch", "create", "patch", "delete"]),
    ("", "services", &["get", "list", "watch", "create", "patch", "delete"]),
    ("", "secrets", &["get", "list", "watch", "create", "patch"]),
    ("policy", "poddisruptionbudgets", &["get", "list", "watch", "create", "patch", "delete"]),
    ("serving.knative.dev", "services", &["get", "list", "watch", "create", "patch", "delete"]),
    ("autoscaling", "horizontalpodautoscalers", &["get", "list", "watch", "create", "patch", "delete"]),
    ("events.k8s.io", "events", &["create", "patch"]),
    ("postgresql.cnpg.io", "clusters", &["get"]),
];

/// What leader election needs, as the Role in the release namespace must grant it.
const LEASE_RBAC: &[(&str, &str, &[&str])] = &[("coordination.k8s.io", "leases", &["get", "create", "patch"])];

fn chart() -> String {
    repo_root().join("charts/pinak").display().to_string()
}

/// A directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("pinak-chart-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Helm without a cluster (lint, template); its config and cache go to a scratch HOME.
fn helm(env: &str, args: &[&str]) -> Output {
    let home = Scratch::new();
    Command::new(tool(env))
        .args(args)
        .env("HOME", &home.0)
        .env("HELM_CACHE_HOME", home.0.join("cache"))
        .env("HELM_CONFIG_HOME", home.0.join("config"))
        .env("HELM_DATA_HOME", home.0.join("data"))
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {env}: {e}"))
}

/// stdout and stderr together: Helm reports schema errors on one or the other.
fn all_output(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn template_args<'a>(chart: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["template", RELEASE, chart, "--namespace", NAMESPACE];
    args.extend(extra);
    args
}

/// The rendered manifests; panics with Helm's message if it refuses the values.
fn template(env: &str, extra: &[&str]) -> String {
    let chart = chart();
    let out = helm(env, &template_args(&chart, extra));
    assert!(out.status.success(), "{env} template {extra:?} failed:\n{}", all_output(&out));
    String::from_utf8(out.stdout).expect("Helm prints UTF-8")
}

/// YAML documents as JSON values. pinak-tests has no YAML crate; the Python beside the
/// kubernetes-validate entry point has PyYAML (a dependency of kubernetes-validate).
fn yaml_docs(text: &str) -> Vec<Value> {
    const PARSE: &str =
        "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)";
    let validator = tool("PINAK_KUBERNETES_VALIDATE");
    let python = validator.parent().expect("kubernetes-validate lives in a venv's bin").join("python");
    let mut child = Command::new(&python)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    // The script reads all of stdin before it writes anything, so this cannot deadlock.
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "YAML does not parse:\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the parser prints JSON")
}

fn yaml_file(path: &Path) -> Vec<Value> {
    yaml_docs(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn kinds(docs: &[Value]) -> Vec<&str> {
    let mut kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    kinds.sort_unstable();
    kinds
}

fn find<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter().find(|d| d["kind"] == kind).unwrap_or_else(|| panic!("no {kind} rendered"))
}

/// Runs kubernetes-validate --strict on `files` for every supported minor. It only warns about
/// kinds it has no schema for, so a warning fails too: nothing may be skipped silently.
fn validate(files: &[PathBuf]) {
    for minor in KUBERNETES {
        let out = Command::new(tool("PINAK_KUBERNETES_VALIDATE"))
            .args(["--strict", "-k", minor])
            .args(files)
            .output()
            .expect("kubernetes-validate runs");
        let text = all_output(&out);
        assert!(
            out.status.success() && !text.contains("WARN") && !text.contains("ERROR"),
            "kubernetes-validate --strict -k {minor}:\n{text}"
        );
    }
}

/// (group, resource[/subresource], verb) of every rule of a ClusterRole, which must use no
/// wildcards, resource names or non-resource URLs.
fn rbac_triples(role: &Value) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().expect("a ClusterRole with rules") {
        assert!(rule.get("resourceNames").is_none() && rule.get("nonResourceURLs").is_none(), "{rule}");
        let strings = |k: &str| -> Vec<String> {
            rule[k].as_array().into_iter().flatten().map(|v| v.as_str().unwrap().to_owned()).collect()
        };
        for g in strings("apiGroups") {
            for r in strings("resources") {
                for v in strings("verbs") {
                    assert!(![&g, &r, &v].iter().any(|s| s.contains('*')), "wildcard in {rule}");
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

fn expected_rbac() -> BTreeSet<(String, String, String)> {
    triples(OPERATOR_RBAC)
}

fn triples(table: &[(&str, &str, &[&str])]) -> BTreeSet<(String, String, String)> {
    table.iter().flat_map(|(g, r, verbs)| verbs.iter().map(|v| (g.to_string(), r.to_string(), v.to_string()))).collect()
}

// ---------------------------------------------------------------- the values matrix ---

struct Case {
    name: &'static str,
    /// Values flags.
    values: &'static [&'static str],
    /// `--include-crds`, or `--skip-crds`.
    crds: bool,
    /// The kinds rendered, sorted.
    kinds: &'static [&'static str],
    /// Facts of this case beyond the ones every case is checked for.
    check: fn(&[Value]),
}

const DEFAULT_KINDS: &[&str] = &[
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Deployment",
    "Role",
    "RoleBinding",
    "Service",
    "ServiceAccount",
];

const CASES: &[Case] = &[
    Case {
        name: "defaults",
        values: &[],
        crds: true,
        kinds: DEFAULT_KINDS,
        check: |docs| {
            let role = find(docs, "ClusterRole");
            assert_eq!(rbac_triples(role), expected_rbac(), "ClusterRole");
            let env = operator_env(docs);
            assert_eq!(env["PINAK_OPERATOR_API_IMAGE"], "pinak:0.1.0", "the API image is the operator's");
            assert_eq!(env["PINAK_OPERATOR_LISTEN"], "$(POD_IP):8080");
        },
    },
    Case {
        name: "network-policy",
        values: &[
            "--set",
            "networkPolicy.enabled=true",
            "--set-json",
            r#"networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]"#,
        ],
        crds: true,
        kinds: &[
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "NetworkPolicy",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ],
        check: |docs| {
            let np = &find(docs, "NetworkPolicy")["spec"];
            assert_eq!(np["podSelector"]["matchLabels"], find(docs, "Deployment")["spec"]["selector"]["matchLabels"]);
            assert_eq!(np["ingress"][0]["ports"], json!([{"port": 8080, "protocol": "TCP"}]));
            assert_eq!(
                np["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
                "monitoring"
            );
            let egress_ports: BTreeSet<i64> = np["egress"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["ports"].as_array().unwrap().iter().map(|p| p["port"].as_i64().unwrap()))
                .collect();
            assert_eq!(egress_ports, BTreeSet::from([53, 443, 5432, 6443]), "DNS, the API server, Postgres");
        },
    },
    Case {
        name: "pod-disruption-budget",
        values: &["--set", "podDisruptionBudget.enabled=true"],
        crds: true,
        kinds: &[
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ],
        check: |docs| {
            let pdb = &find(docs, "PodDisruptionBudget")["spec"];
            // One replica: the default lets the pod be evicted, so a drain never blocks.
            assert_eq!(pdb["maxUnavailable"], 1);
            assert!(pdb.get("minAvailable").is_none());
            assert_eq!(pdb["selector"]["matchLabels"], find(docs, "Deployment")["spec"]["selector"]["matchLabels"]);
        },
    },
    Case {
        name: "service-monitor",
        values: &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "serviceMonitor.labels.release=kube-prometheus-stack",
        ],
        crds: true,
        kinds: &[
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ],
        check: check_service_monitor,
    },
    Case {
        name: "crds-off",
        values: &[],
        crds: false,
        kinds: &["ClusterRole", "ClusterRoleBinding", "Deployment", "Role", "RoleBinding", "Service", "ServiceAccount"],
        check: |_| {},
    },
    Case {
        name: "ha",
        values: &["--set", "replicaCount=2", "--set", "leaderElection.leaseDurationSeconds=20"],
        crds: true,
        kinds: DEFAULT_KINDS,
        check: |docs| {
            let d = find(docs, "Deployment");
            assert_eq!(d["spec"]["replicas"], 2);
            assert_eq!(d["spec"]["strategy"]["type"], "RollingUpdate", "standbys make a rolling update safe");
            let env = operator_env(docs);
            assert_eq!(env["PINAK_OPERATOR_LEASE_DURATION_SECS"], "20");
            assert!(env.contains_key("POD_NAMESPACE"), "POD_NAMESPACE turns leader election on");
            let role = find(docs, "Role");
            assert_eq!(rbac_triples(role), triples(LEASE_RBAC), "the Role grants exactly the Lease");
            assert_eq!(role["metadata"]["namespace"], NAMESPACE);
        },
    },
    Case {
        name: "own-service-account-and-rbac",
        values: &[
            "--set",
            "serviceAccount.create=false",
            "--set",
            "serviceAccount.name=pinak-ops",
            "--set",
            "rbac.create=false",
        ],
        crds: true,
        kinds: &["CustomResourceDefinition", "Deployment", "Service"],
        check: |docs| {
            assert_eq!(find(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"], "pinak-ops")
        },
    },
    Case {
        name: "everything-set",
        values: &[
            "--set",
            "replicaCount=0",
            "--set",
            "image.repository=registry.example.com/pinak/pinak",
            "--set",
            "image.tag=0.1.0",
            "--set",
            "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "--set",
            "image.pullPolicy=Always",
            "--set",
            "apiImage.repository=registry.example.com/pinak/api",
            "--set",
            "apiImage.tag=0.1.1",
            "--set-json",
            r#"imagePullSecrets=[{"name":"registry"}]"#,
            "--set",
            "fullnameOverride=memory-operator",
            "--set",
            "commonLabels.team=platform",
            "--set",
            "serviceAccount.annotations.example\\.com/role=pinak",
            "--set",
            "operator.resyncSeconds=60",
            "--set",
            "operator.modelDir=/models/minilm",
            "--set-json",
            r#"operator.extraEnv=[{"name":"HTTPS_PROXY","value":"http://proxy:3128"}]"#,
            "--set",
            "metrics.port=9090",
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "networkPolicy.enabled=true",
            "--set",
            "podDisruptionBudget.enabled=true",
            "--set",
            "podDisruptionBudget.minAvailable=0",
            "--set-string",
            "podAnnotations.example\\.com/scrape=true",
            "--set",
            "podLabels.tier=control",
            "--set",
            "priorityClassName=system-cluster-critical",
            "--set",
            "nodeSelector.kubernetes\\.io/os=linux",
            "--set-json",
            r#"tolerations=[{"key":"dedicated","operator":"Equal","value":"control","effect":"NoSchedule"}]"#,
            "--set-json",
            r#"affinity={"nodeAffinity":{"preferredDuringSchedulingIgnoredDuringExecution":[{"weight":1,"preference":{"matchExpressions":[{"key":"tier","operator":"In","values":["control"]}]}}]}}"#,
        ],
        crds: true,
        kinds: &[
            "ClusterRole",
            "ClusterRoleBinding",
            "CustomResourceDefinition",
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",
            "RoleBinding",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ],
        check: |docs| {
            let d = find(docs, "Deployment");
            assert_eq!(d["metadata"]["name"], "memory-operator");
            assert_eq!(d["spec"]["replicas"], 0);
            let pod = &d["spec"]["template"];
            let c = &pod["spec"]["containers"][0];
            assert_eq!(
                c["image"],
                "registry.example.com/pinak/pinak:0.1.0@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            );
            assert_eq!(c["imagePullPolicy"], "Always");
            let env = operator_env(docs);
            assert_eq!(env["PINAK_OPERATOR_API_IMAGE"], "registry.example.com/pinak/api:0.1.1");
            assert_eq!(env["PINAK_OPERATOR_RESYNC_SECS"], "60");
            assert_eq!(env["PINAK_OPERATOR_MODEL_DIR"], "/models/minilm");
            assert_eq!(env["PINAK_OPERATOR_LISTEN"], "$(POD_IP):9090");
            assert_eq!(env["HTTPS_PROXY"], "http://proxy:3128");
            assert_eq!(c["ports"][0]["containerPort"], 9090);
            assert_eq!(pod["metadata"]["labels"]["tier"], "control");
            assert_eq!(pod["metadata"]["annotations"]["example.com/scrape"], "true");
            assert_eq!(pod["spec"]["imagePullSecrets"], json!([{"name": "registry"}]));
            assert_eq!(pod["spec"]["priorityClassName"], "system-cluster-critical");
            assert_eq!(pod["spec"]["nodeSelector"]["kubernetes.io/os"], "linux");
            assert_eq!(pod["spec"]["tolerations"][0]["key"], "dedicated");
            assert!(pod["spec"]["affinity"]["nodeAffinity"].is_object());
            assert_eq!(find(docs, "PodDisruptionBudget")["spec"]["minAvailable"], 0);
            assert_eq!(find(docs, "ServiceAccount")["metadata"]["annotations"]["example.com/role"], "pinak");
            // The CRD comes from crds/, which Helm does not template.
            let templated = docs.iter().filter(|o| o["kind"] != "CustomResourceDefinition");
            assert!(templated.into_iter().all(|o| o["metadata"]["labels"]["team"] == "platform"), "commonLabels");
            check_service_monitor(docs);
        },
    },
];

/// The operator container's environment, name → value (valueFrom entries as their field path).
fn operator_env(docs: &[Value]) -> serde_json::Map<String, Value> {
    let env = &find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"];
    env.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let value = e.get("value").cloned().unwrap_or_else(|| e["valueFrom"]["fieldRef"]["fieldPath"].clone());
            (e["name"].as_str().unwrap().to_owned(), value)
        })
        .collect()
}

/// The ServiceMonitor is a Prometheus Operator kind, which kubernetes-validate has no schema
/// for: it is checked here instead, against the metrics Service it must select.
fn check_service_monitor(docs: &[Value]) {
    let sm = find(docs, "ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    let svc = find(docs, "Service");
    let labels = svc["metadata"]["labels"].as_object().unwrap();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(labels.get(k), Some(v), "the ServiceMonitor selects the metrics Service by {k}");
    }
    assert_eq!(sm["spec"]["namespaceSelector"]["matchNames"], json!([NAMESPACE]));
    assert_eq!(sm["spec"]["endpoints"][0]["port"], svc["spec"]["ports"][0]["name"]);
    assert_eq!(sm["spec"]["endpoints"][0]["path"], "/metrics");
    if let Some(release) = sm["metadata"]["labels"].get("release") {
        assert_eq!(release, "kube-prometheus-stack");
    }
}

/// What holds for every rendering: the restricted pod security baseline, leader election on
/// (so replicas and rollouts never run two active operators), and every object in the
/// release's namespace.
fn check_every_case(docs: &[Value]) {
    let d = find(docs, "Deployment");
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0, "a standby is up before a pod goes");
    assert!(operator_env(docs).contains_key("POD_NAMESPACE"), "leader election is on in every rendering");
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    let c = &pod["containers"][0];
    assert_eq!(c["command"], json!(["/usr/local/bin/pinak-operator"]));
    assert_eq!(c["args"], json!(["run"]));
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert!(c["resources"]["requests"].is_object() && c["resources"]["limits"]["memory"].is_string());
    for o in docs {
        let cluster_scoped =
            matches!(o["kind"].as_str(), Some("ClusterRole" | "ClusterRoleBinding" | "CustomResourceDefinition"));
        assert_eq!(o["metadata"]["namespace"].as_str().is_none(), cluster_scoped, "namespace of {}", o["kind"]);
        if !cluster_scoped {
            assert_eq!(o["metadata"]["namespace"], NAMESPACE);
        }
    }
}

#[test]
fn lint_strict_passes_for_every_case() {
    let chart = chart();
    for env in HELMS {
        for case in CASES {
            let mut args = vec!["lint", "--strict", chart.as_str()];
            args.extend(case.values);
            let out = helm(env, &args);
            assert!(out.status.success(), "{env} lint --strict, case {}:\n{}", case.name, all_output(&out));
        }
    }
}

#[test]
fn template_matrix_renders_alike_with_helm_3_and_4_and_validates_for_kubernetes_1_30_to_1_35() {
    let dir = Scratch::new();
    let mut files = Vec::new();
    for case in CASES {
        let mut extra = case.values.to_vec();
        extra.push(if case.crds { "--include-crds" } else { "--skip-crds" });
        let [helm3, helm4] = HELMS.map(|env| template(env, &extra));
        assert_eq!(helm3, helm4, "Helm 3 and Helm 4 render case {} differently", case.name);
        let docs = yaml_docs(&helm4);
        assert_eq!(kinds(&docs), case.kinds, "kinds of case {}", case.name);
        check_every_case(&docs);
        (case.check)(&docs);
        // JSON is YAML: one file per case, without the kinds kubernetes-validate cannot know.
        let known: Vec<String> =
            docs.iter().filter(|d| d["kind"] != "ServiceMonitor").map(|d| serde_json::to_string(d).unwrap()).collect();
        let file = dir.0.join(format!("{}.yaml", case.name));
        std::fs::write(&file, known.join("\n---\n")).unwrap();
        files.push(file);
    }
    validate(&files);
}

#[test]
fn schema_refuses_bad_values_with_readable_messages() {
    // (values, what Helm 3 says, what Helm 4 says): the two validators word errors differently.
    let cases: &[(&[&str], &str, &str)] = &[
        (
            &["--set", "podDisruptionBudget.minAvailable=1", "--set", "podDisruptionBudget.maxUnavailable=1"],
            "only one of podDisruptionBudget.minAvailable and maxUnavailable is required",
            "missing property 'only one of podDisruptionBudget.minAvailable and maxUnavailable'",
        ),
        (
            &["--set", "podDisruptionBudget.maxUnavailable=half"],
            "podDisruptionBudget.maxUnavailable: Does not match pattern '^[0-9]+%$'",
            "at '/podDisruptionBudget/maxUnavailable': 'half' does not match pattern '^[0-9]+%$'",
        ),
        (
            &["--set", "serviceAccount.create=false"],
            "serviceAccount.name (the existing ServiceAccount the operator runs as, since serviceAccount.create is false) is required",
            "missing property 'serviceAccount.name (the existing ServiceAccount the operator runs as, since serviceAccount.create is false)'",
        ),
        (
            &["--set", "apiImage.tag=0.2.0"],
            "apiImage.repository (apiImage.tag and apiImage.digest apply to it; leave all three empty to use the image of the operator) is required",
            "missing property 'apiImage.repository (apiImage.tag and apiImage.digest apply to it; leave all three empty to use the image of the operator)'",
        ),
        (
            &["--set", "image.digest=sha256:abc"],
            "image.digest: Does not match pattern '^(sha256:[a-f0-9]{64})?$'",
            "at '/image/digest': 'sha256:abc' does not match pattern '^(sha256:[a-f0-9]{64})?$'",
        ),
        (
            &["--set", "image.repository="],
            "image.repository: String length must be greater than or equal to 1",
            "at '/image/repository': minLength: got 0, want 1",
        ),
        (
            &["--set", "image.pullPolicy=Sometimes"],
            r#"image.pullPolicy: image.pullPolicy must be one of the following: "Always", "IfNotPresent", "Never""#,
            "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'",
        ),
        (
            &["--set-json", "image.tag=1.2"],
            "image.tag: Invalid type. Expected: string, given: number",
            "at '/image/tag': got number, want string",
        ),
        (
            &["--set", "replicas=2"],
            "(root): Additional property replicas is not allowed",
            "at '': additional properties 'replicas' not allowed",
        ),
        (
            &["--set", "operator.resyncSeconds=0"],
            "operator.resyncSeconds: Must be greater than or equal to 1",
            "at '/operator/resyncSeconds': minimum: got 0, want 1",
        ),
        (
            &["--set", "metrics.port=70000"],
            "metrics.port: Must be less than or equal to 65535",
            "at '/metrics/port': maximum: got 70,000, want 65,535",
        ),
        (
            &["--set", "serviceMonitor.interval=5min"],
            "serviceMonitor.interval: Does not match pattern '^([0-9]+(ms|s|m|h))+$'",
            "at '/serviceMonitor/interval': '5min' does not match pattern '^([0-9]+(ms|s|m|h))+$'",
        ),
        (
            &["--set", "fullnameOverride=Pinak_Operator"],
            "fullnameOverride: Does not match pattern",
            "at '/fullnameOverride': 'Pinak_Operator' does not match pattern",
        ),
        (
            &["--set", "nodeSelector.disk=1"],
            "nodeSelector.disk: Invalid type. Expected: string, given: integer",
            "at '/nodeSelector/disk': got number, want string",
        ),
    ];
    let chart = chart();
    for (values, helm3, helm4) in cases {
        for (env, expected) in [("PINAK_HELM3", helm3), ("PINAK_HELM", helm4)] {
            let out = helm(env, &template_args(&chart, values));
            let text = all_output(&out);
            assert!(!out.status.success() && out.stdout.is_empty(), "{env} accepted {values:?}");
            assert!(text.contains("values don't meet the specifications of the schema"), "{env} {values:?}:\n{text}");
            assert!(text.contains(expected), "{env} {values:?}: expected {expected:?} in\n{text}");
        }
    }
}

#[test]
fn cluster_role_is_exactly_the_operators_calls() {
    let docs = yaml_docs(&template("PINAK_HELM", &[]));
    let role = find(&docs, "ClusterRole");
    let granted = rbac_triples(role);
    let expected = expected_rbac();
    let missing: Vec<_> = expected.difference(&granted).collect();
    let extra: Vec<_> = granted.difference(&expected).collect();
    assert!(missing.is_empty() && extra.is_empty(), "ClusterRole differs: missing {missing:?}, extra {extra:?}");
    let binding = find(&docs, "ClusterRoleBinding");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(
        binding["subjects"],
        json!([{"kind": "ServiceAccount", "name": find(&docs, "ServiceAccount")["metadata"]["name"], "namespace": NAMESPACE}])
    );
}

#[test]
fn chart_crd_is_the_generated_crd() {
    let root = repo_root();
    let generated = std::fs::read_to_string(root.join("crds/memorystore.yaml")).unwrap();
    let in_chart = std::fs::read_to_string(root.join("charts/pinak/crds/memorystore.yaml")).unwrap();
    assert!(
        generated == in_chart,
        "charts/pinak/crds/memorystore.yaml differs from crds/memorystore.yaml: run `cp crds/memorystore.yaml charts/pinak/crds/`"
    );
}

// ---------------------------------------------------------------- values reference ---

/// docs/values.md: every key of the schema with its type and constraints, its default from
/// values.yaml and its description, then the rules that span keys.
fn values_reference(schema: &Value, values: &Value) -> String {
    let mut out = String::from(
        "# Values of the `pinak` chart\n\n\
         Generated from `charts/pinak/values.schema.json` (types, constraints, descriptions) and\n\
         `charts/pinak/values.yaml` (defaults) by `tests/tests/chart.rs`; do not edit. Regenerate with\n\
         `PINAK_UPDATE_GOLDEN=1 cargo nextest run -p pinak-tests --test chart values_reference`.\n\
         The comments in `values.yaml` say more about each choice.\n\n\
         | key | type | default | description |\n|---|---|---|---|\n",
    );
    rows(schema, schema, values, "", &mut out);
    out.push_str(
        "\n## Rules across keys\n\nValues that break one of these are refused with its text as the message:\n\n",
    );
    let mut rules = Vec::new();
    collect_rules(schema, &mut rules);
    for rule in rules {
        out.push_str(&format!("- {rule}\n"));
    }
    out
}

fn rows(root: &Value, node: &Value, values: &Value, prefix: &str, out: &mut String) {
    let Some(props) = node["properties"].as_object() else { return };
    for (key, prop) in props {
        let path = format!("{prefix}{key}");
        let nested = prop["properties"].is_object();
        let default =
            if nested { String::new() } else { values.get(key).map_or_else(|| "-".to_owned(), |v| format!("`{v}`")) };
        let description = prop["description"].as_str().unwrap_or_default();
        assert!(!description.is_empty(), "values.schema.json: {path} has no description");
        let cell = |s: &str| s.replace('|', "\\|");
        out.push_str(&format!(
            "| `{path}` | {} | {} | {} |\n",
            cell(&type_text(root, prop)),
            cell(&default),
            cell(description)
        ));
        if nested {
            rows(root, prop, values.get(key).unwrap_or(&Value::Null), &format!("{path}."), out);
        }
    }
}

/// The type and constraints of a schema node, following `$ref`s to the definitions.
fn type_text(root: &Value, node: &Value) -> String {
    let node = match node["$ref"].as_str().and_then(|r| r.strip_prefix("#/")) {
        Some(pointer) => root.pointer(&format!("/{pointer}")).expect("a $ref the schema defines"),
        None => node,
    };
    if let Some(alternatives) = node["oneOf"].as_array() {
        return alternatives.iter().map(|a| type_text(root, a)).collect::<Vec<_>>().join(" / ");
    }
    let mut text = match &node["type"] {
        Value::String(t) => t.clone(),
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" or "),
        _ => "any".to_owned(),
    };
    if node["additionalProperties"]["type"] == "string" {
        text = "map of string".to_owned();
    }
    if let Some(e) = node["enum"].as_array() {
        let names: Vec<String> = e.iter().map(|v| format!("`{}`", v.as_str().unwrap_or_default())).collect();
        text.push_str(&format!(", one of {}", names.join(", ")));
    }
    match (node["minimum"].as_i64(), node["maximum"].as_i64()) {
        (Some(lo), Some(hi)) => text.push_str(&format!(", {lo} to {hi}")),
        (Some(lo), None) => text.push_str(&format!(", at least {lo}")),
        (None, Some(hi)) => text.push_str(&format!(", at most {hi}")),
        (None, None) => {}
    }
    if node["minLength"].as_i64() == Some(1) {
        text.push_str(", not empty");
    }
    if let Some(max) = node["maxLength"].as_i64() {
        text.push_str(&format!(", at most {max} characters"));
    }
    if let Some(p) = node["pattern"].as_str() {
        text.push_str(&format!(", matching `{p}`"));
    }
    text
}

/// The explanations of the `if <wrong> then required: [<explanation>]` rules, in schema order.
fn collect_rules(node: &Value, out: &mut Vec<String>) {
    for rule in node["allOf"].as_array().into_iter().flatten() {
        out.extend(
            rule["then"]["required"].as_array().into_iter().flatten().filter_map(|m| m.as_str().map(str::to_owned)),
        );
    }
    for prop in node["properties"].as_object().into_iter().flat_map(|p| p.values()) {
        collect_rules(prop, out);
    }
}

#[test]
fn values_reference_is_generated_from_the_schema() {
    let root = repo_root();
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("charts/pinak/values.schema.json")).unwrap()).unwrap();
    let values = yaml_file(&root.join("charts/pinak/values.yaml")).pop().expect("values.yaml has one document");
    // Every value has a schema entry (the schema's additionalProperties would refuse it anyway)
    // and every documented leaf has a default, so the reference misses nothing.
    let generated = values_reference(&schema, &values);
    for key in values.as_object().unwrap().keys() {
        assert!(generated.contains(&format!("| `{key}")), "values.yaml key {key} is not in the reference");
    }
    let path = root.join("docs/values.md");
    if std::env::var_os("PINAK_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/values.md is stale: run `PINAK_UPDATE_GOLDEN=1 cargo nextest run -p pinak-tests --test chart values_reference`"
    );
}

// ---------------------------------------------------------------- examples ---

fn example(name: &str) -> Vec<Value> {
    yaml_file(&repo_root().join("charts/pinak/examples").join(name))
}

fn docs_of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Namespace `name`, created (and so deleted at the end on a real cluster) unless it exists.
fn namespace_for_examples(sim: &Sim, name: &str) {
    if !sim.kubectl(&["get", "namespace", name], None).status.success() {
        sim.create_namespace(name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_are_valid() {
    let sim = Sim::scenario().await;
    let crd = repo_root().join("charts/pinak/crds/memorystore.yaml");
    sim.kubectl_ok(&["apply", "--server-side", "-f", crd.to_str().unwrap()], None);
    sim.kubectl_ok(&["wait", "--for=condition=Established", "crd/memorystores.pinak.dev", "--timeout=20s"], None);
    namespace_for_examples(&sim, "team-a");
    let dir = Scratch::new();
    let mut secrets = Vec::new();
    for file in ["postgres-url.yaml", "cloudnative-pg.yaml", "vault.yaml"] {
        let docs = example(file);
        let stores = docs_of_kind(&docs, "MemoryStore");
        assert_eq!(stores.len(), 1, "{file} has one MemoryStore");
        // The CRD's schema and CEL rules, as the API server applies them.
        let out = sim.kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&stores[0].to_string()));
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        for (i, s) in docs_of_kind(&docs, "Secret").into_iter().enumerate() {
            let path = dir.0.join(format!("{file}-{i}.json"));
            std::fs::write(&path, s.to_string()).unwrap();
            secrets.push(path);
        }
        let others: Vec<&str> = kinds(&docs).into_iter().filter(|k| !matches!(*k, "MemoryStore" | "Secret")).collect();
        // A CloudNativePG Cluster has no schema here (no CloudNativePG CRDs): its fields are
        // the ones checked below, against the Secret and the store.
        assert_eq!(others, if file == "cloudnative-pg.yaml" { vec!["Cluster"] } else { vec![] }, "{file}");
    }
    validate(&secrets);

    // The store's URL Secret is a URL on the admin role...
    let docs = example("postgres-url.yaml");
    let secret = docs_of_kind(&docs, "Secret")[0];
    let store = docs_of_kind(&docs, "MemoryStore")[0];
    assert_eq!(store["spec"]["database"]["adminCredentials"]["secretRef"]["name"], secret["metadata"]["name"]);
    assert!(secret["stringData"]["url"].as_str().unwrap().starts_with("postgresql://"));

    // ...and on CloudNativePG the store names the Cluster, which grants what the operator uses.
    let docs = example("cloudnative-pg.yaml");
    let cluster = docs_of_kind(&docs, "Cluster")[0];
    let store = docs_of_kind(&docs, "MemoryStore")[0];
    assert_eq!(cluster["apiVersion"], "postgresql.cnpg.io/v1");
    assert_eq!(store["spec"]["database"]["adminCredentials"]["cnpgCluster"]["name"], cluster["metadata"]["name"]);
    assert_eq!(cluster["spec"]["enableSuperuserAccess"], true, "the operator logs in as the superuser");
    assert!(cluster["spec"]["imageName"].as_str().unwrap().contains("-standard-"), "an image with pgvector");

    // The Vault example reads what its header tells the Vault side to hold.
    let text = std::fs::read_to_string(repo_root().join("charts/pinak/examples/vault.yaml")).unwrap();
    let vault = example("vault.yaml").remove(0);
    let admin = vault["spec"]["database"]["adminCredentials"]["vaultPath"].as_str().unwrap();
    let jwt = vault["spec"]["vault"]["paths"]["jwt"].as_str().unwrap();
    let mount = vault["spec"]["vault"]["kvMount"].as_str().unwrap();
    for documented in [format!("{mount}/{admin}` with key `url`"), format!("{mount}/{jwt}` with key `secret`")] {
        assert!(text.contains(&documented), "vault.yaml's header names {documented}");
    }
    assert!(text.contains("pinak.dev/vault-refresh"), "and the refresh annotation");
}

// ---------------------------------------------------------------- helm install ---

/// A store's Postgres objects left by `reclaimPolicy: Retain`, dropped from the shared test
/// database when the test ends (keeping them is what the test checks, not what it wants).
struct RetainedStore {
    url: String,
    /// The ownership marker the operator comments its schemas and roles with.
    marker: String,
}

impl Drop for RetainedStore {
    fn drop(&mut self) {
        let (url, marker) = (self.url.clone(), self.marker.clone());
        let sql = format!(
            "SET lock_timeout = '10s';
             DO $$ DECLARE r record; BEGIN
               FOR r IN SELECT nspname FROM pg_namespace WHERE obj_description(oid, 'pg_namespace') LIKE '{marker}%' LOOP
                 EXECUTE format('DROP SCHEMA %I CASCADE', r.nspname);
               END LOOP;
               FOR r IN SELECT rolname FROM pg_roles WHERE shobj_description(oid, 'pg_authid') LIKE '{marker}%' LOOP
                 EXECUTE format('DROP OWNED BY %I CASCADE', r.rolname);
                 EXECUTE format('DROP ROLE %I', r.rolname);
               END LOOP;
             END $$;"
        );
        // Drop cannot await, and may run inside the test's runtime: a thread with its own.
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&url).await?;
                conn.execute(sqlx::raw_sql(AssertSqlSafe(sql.as_str()))).await.map(drop)
            })
        })
        .join();
        if let Ok(Err(e)) = done {
            eprintln!("could not drop the retained store ({}): {e}", self.marker);
        }
    }
}

/// A release of the chart in a cluster: `pinak` in `pinak-system` on kubesim; on a real
/// cluster, which may have its own, a name and namespace of the test's.
struct Release {
    name: String,
    namespace: String,
}

impl Release {
    fn of(sim: &Sim) -> Release {
        if sim.external() {
            let name = format!("pinak-e2e-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
            Release { namespace: name.clone(), name }
        } else {
            Release { name: RELEASE.to_owned(), namespace: NAMESPACE.to_owned() }
        }
    }

    /// The operator's ServiceAccount, as the request log names it.
    fn operator_user(&self) -> String {
        format!("system:serviceaccount:{}:{}", self.namespace, self.name)
    }
}

/// `--set` arguments for the chart's `image` from `PINAK_E2E_API_IMAGE` on a real cluster
/// (`repository[:tag][@digest]`); none on kubesim, which maps the chart's own `pinak`.
fn image_values(sim: &Sim) -> Vec<String> {
    if !sim.external() {
        return Vec::new();
    }
    let image = api_image();
    let (rest, digest) = image.split_once('@').map_or((image.as_str(), None), |(r, d)| (r, Some(d)));
    let (repository, tag) = match rest.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (rest, "latest"),
    };
    let mut args = vec!["--set".to_owned(), format!("image.repository={repository}")];
    args.extend(["--set".to_owned(), format!("image.tag={tag}")]);
    if let Some(d) = digest {
        args.extend(["--set".to_owned(), format!("image.digest={d}")]);
    }
    args
}

/// (group, resource[/subresource], verb) of each request of the operator. The API server also
/// authorizes an apply that creates its object as `create` (kubesim does not check that): a
/// 201 answer to a patch counts as both.
fn used_by_operator(requests: &[Value]) -> BTreeSet<(String, String, String)> {
    let mut used = BTreeSet::new();
    for r in requests {
        let (verb, group) = (r["verb"].as_str().unwrap_or_default(), r["apiGroup"].as_str().unwrap_or_default());
        let resource = match (r["resource"].as_str(), r["subresource"].as_str()) {
            (Some(res), Some(sub)) => format!("{res}/{sub}"),
            (Some(res), None) => res.to_owned(),
            // A non-resource URL: no ClusterRole rule of the chart grants one.
            (None, _) => format!("nonResourceURL {}", r["path"].as_str().unwrap_or_default()),
        };
        used.insert((group.to_owned(), resource.clone(), verb.to_owned()));
        if verb == "patch" && r["code"] == 201 {
            used.insert((group.to_owned(), resource, "create".to_owned()));
        }
    }
    used
}

/// The operator's requests that RBAC refused. A refusal usually shows first as a store that
/// never gets somewhere, so waits check for them to fail with the cause. (kubesim only: a real
/// cluster has no request log; a refusal shows there as the store stuck.)
fn assert_no_refusals(sim: &Sim, release: &Release) {
    if sim.external() {
        return;
    }
    let user = release.operator_user();
    let refused: Vec<Value> = sim
        .requests()
        .into_iter()
        .filter(|r| r["user"] == user.as_str() && matches!(r["code"].as_u64(), Some(401 | 403)))
        .collect();
    assert!(refused.is_empty(), "requests of the operator were refused: {refused:#?}");
}

/// No request of the operator was refused, and each is within its ClusterRole. With
/// `all_paths` (the scenario took every path of the reconciler), every grant was also used.
fn check_operator_requests(sim: &Sim, release: &Release, all_paths: bool) {
    if !sim.kubesim_only("the operator's requests against its ClusterRole (kubesim's request log)") {
        return;
    }
    let user = release.operator_user();
    let requests: Vec<Value> = sim.requests().into_iter().filter(|r| r["user"] == user.as_str()).collect();
    assert!(!requests.is_empty(), "no request was made as {user}: did the operator use its ServiceAccount?");
    assert_no_refusals(sim, release);
    let mut granted = rbac_triples(&sim.kubectl_json(&["get", "clusterrole", &release.name]));
    granted.extend(rbac_triples(&sim.kubectl_json(&[
        "-n",
        &release.namespace,
        "get",
        "role",
        &format!("{}-leader-election", release.name),
    ])));
    let mut used = used_by_operator(&requests);
    // API discovery (the operator asks whether Knative Serving is installed) is granted to every
    // authenticated user by the built-in ClusterRole system:discovery, not by the chart.
    used.retain(|(_, resource, verb)| {
        let path = resource.strip_prefix("nonResourceURL ");
        !(verb == "get" && path.is_some_and(|p| p == "/api" || p == "/apis" || p.starts_with("/apis/")))
    });
    let beyond: Vec<_> = used.difference(&granted).collect();
    assert!(beyond.is_empty(), "the operator made calls its ClusterRole does not grant: {beyond:?}");
    if all_paths {
        // Patching an event needs the same event twice within kube-runtime's 6-minute series
        // window, which no test waits for; every other grant must have been used.
        let series = ("events.k8s.io".to_owned(), "events".to_owned(), "patch".to_owned());
        let unused: Vec<_> = granted.difference(&used).filter(|g| **g != series).collect();
        assert!(unused.is_empty(), "granted but never used by the operator: {unused:?}");
    }
}

/// Mode Serverless, then back to Deployment, with Knative played by the test: the Knative
/// Service is created; once its revision is reported ready, the Deployment, Service and PDB
/// are deleted; back in mode Deployment, the Knative Service is deleted and the store's own
/// objects return (tests/tests/operator_knative.rs runs the pods of both modes).
async fn serverless_and_back(sim: &Sim, release: &Release, ns: &str) {
    let mode = |mode: &str| {
        let patch = format!(r#"{{"spec":{{"api":{{"mode":"{mode}"}}}}}}"#);
        sim.kubectl_ok(&["-n", ns, "patch", "memorystore", "notes", "--type=merge", "-p", &patch], None);
    };
    let exists = |kind: &str| sim.kubectl(&["-n", ns, "get", kind, "notes"], None).status.success();
    const KSVC: &str = "services.serving.knative.dev";
    mode("Serverless");
    eventually(60, "the Knative Service", || {
        assert_no_refusals(sim, release);
        exists(KSVC).then_some(())
    })
    .await;
    let ksvc = sim.kubectl_json(&["-n", ns, "get", KSVC, "notes"]);
    let ready = json!({"status": {"observedGeneration": ksvc["metadata"]["generation"],
                                  "conditions": [{"type": "ConfigurationsReady", "status": "True"}]}});
    let patch = ["-n", ns, "patch", KSVC, "notes", "--subresource=status", "--type=merge", "-p"];
    sim.kubectl_ok(&[&patch[..], &[ready.to_string().as_str()]].concat(), None);
    eventually(60, "the Deployment, Service and PDB of mode Deployment deleted", || {
        assert_no_refusals(sim, release);
        ["deployment", "service", "poddisruptionbudget"].iter().all(|k| !exists(k)).then_some(())
    })
    .await;
    mode("Deployment");
    eventually(120, "the Knative Service deleted and the store's Service back", || {
        assert_no_refusals(sim, release);
        (!exists(KSVC) && exists("service")).then_some(())
    })
    .await;
    wait_for(sim, release, ns, &["--for=condition=Ready", "memorystore/notes", "--timeout=120s"]);
}

/// Applies `docs` (JSON) with kubectl.
fn apply(sim: &Sim, docs: &[Value]) {
    for d in docs {
        sim.kubectl_ok(&["apply", "-f", "-"], Some(&d.to_string()));
    }
}

/// Waits for `what` with kubectl wait; on failure, shows the store and the operator's log.
fn wait_for(sim: &Sim, release: &Release, ns: &str, what: &[&str]) {
    let mut args = vec!["-n", ns, "wait"];
    args.extend(what);
    let out = sim.kubectl(&args, None);
    if !out.status.success() {
        assert_no_refusals(sim, release);
        let store = sim.kubectl(&["-n", ns, "get", "memorystores", "-o", "yaml"], None);
        let log = sim.kubectl(&["-n", &release.namespace, "logs", &format!("deployment/{}", release.name)], None);
        panic!(
            "kubectl wait {what:?}: {}\nstores:\n{}\noperator log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&store.stdout),
            all_output(&log)
        );
    }
}

fn helm_ok(sim: &Sim, env: &str, args: &[&str]) -> String {
    let out = sim.helm(env, args);
    assert!(out.status.success(), "{env} {args:?}:\n{}", all_output(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `postgres-url.yaml` as a test runs it: in `ns`, on the test database, with the dummy
/// embedder (the model is not what this test is about) and one API pod.
fn first_store(ns: &str, admin_url: &str) -> Vec<Value> {
    let mut docs = example("postgres-url.yaml");
    for d in &mut docs {
        d["metadata"]["namespace"] = json!(ns);
        match d["kind"].as_str() {
            Some("Secret") => d["stringData"]["url"] = json!(admin_url),
            Some("MemoryStore") => {
                d["spec"]["embedding"] = json!({"backend": "dummy"});
                d["spec"]["api"]["replicas"] = json!(1);
            }
            _ => {}
        }
    }
    docs
}

async fn install_upgrade_uninstall(helm: &str) {
    let admin_url = admin_url();
    // The chart's image (`pinak:<appVersion>`, for the operator and the API pods alike) is the
    // local build; the operator's `command` picks pinak-operator beside pinak-api.
    let sim = Sim::scenario_with(vec![("pinak".into(), workspace_bin("pinak-api"))]).await;
    operator_during_cleanup(&sim);
    let release = Release::of(&sim);
    let (name, namespace) = (release.name.as_str(), release.namespace.as_str());
    sim.adopt_namespace(namespace);
    let instance = format!("app.kubernetes.io/instance={name}");
    sim.on_cleanup(&["delete", "clusterroles,clusterrolebindings", "-l", &instance, "--ignore-not-found"], None);
    // A stand-in for Knative Serving's Service CRD, there before the operator starts so that it
    // watches Knative Services: the serverless switch below uses every grant on them.
    let knative = sim.kubesim_only("the serverless switch (the test plays Knative)");
    if knative {
        sim.kubectl_ok(&["apply", "-f", "-"], Some(include_str!("../fixtures/knative-serving-crd.yaml")));
        let established = ["wait", "--for=condition=Established", "crd/services.serving.knative.dev", "--timeout=20s"];
        sim.kubectl_ok(&established, None);
    }
    let chart = chart();
    let image = image_values(&sim);
    let mut install = vec!["install", name, &chart, "--namespace", namespace, "--create-namespace"];
    install.extend(["--wait", "--timeout", "180s"]);
    install.extend(image.iter().map(String::as_str));
    let notes = helm_ok(&sim, helm, &install);
    assert!(notes.contains("pinak mint --tenant team-a"), "NOTES:\n{notes}");
    // The store NOTES.txt shows is valid as written.
    let manifest = notes.split("<<'EOF'\n").nth(1).and_then(|rest| rest.split("\nEOF\n").next());
    namespace_for_examples(&sim, "team-a");
    sim.kubectl_ok(&["apply", "--dry-run=server", "-f", "-"], Some(manifest.expect("NOTES.txt has a heredoc")));
    let available = format!("deployment/{name}");
    wait_for(&sim, &release, namespace, &["--for=condition=Available", &available, "--timeout=60s"]);

    // The first store, as NOTES.txt and the example say.
    let ns = format!("chart-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    sim.create_namespace(&ns);
    apply(&sim, &first_store(&ns, &admin_url));
    wait_for(&sim, &release, &ns, &["--for=condition=Ready", "memorystore/notes", "--timeout=240s"]);
    let store = sim.kubectl_json(&["-n", &ns, "get", "memorystore", "notes"]);
    let _retained = RetainedStore {
        url: admin_url.clone(),
        marker: format!("pinak-operator:{ns}/notes:{}", store["metadata"]["uid"].as_str().unwrap()),
    };

    // A token as NOTES.txt gets one: the store's jwt-secret and `pinak mint`.
    let secret = sim.kubectl_json(&["-n", &ns, "get", "secret", "notes-pinak"]);
    let key = base64::engine::general_purpose::STANDARD.decode(secret["data"]["jwt-secret"].as_str().unwrap()).unwrap();
    let key_file = sim.dir.join("notes.jwt-secret");
    std::fs::write(&key_file, key).unwrap();
    let minted = Command::new(workspace_bin("pinak"))
        .args(["mint", "--tenant", &ns, "--project", "demo", "--secret-file", key_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(minted.status.success(), "pinak mint: {}", all_output(&minted));
    let bearer = format!("Bearer {}", String::from_utf8(minted.stdout).unwrap().trim());
    let base = format!("{}/api/v1/memory", service_url(&sim, &ns, "notes", 80));
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let add = http
        .post(format!("{base}/add"))
        .header("authorization", &bearer)
        .json(&json!({"content": "The staging database moved to eu-west"}))
        .send()
        .await
        .expect("the store's Service answers");
    assert_eq!(add.status().as_u16(), 201, "{}", add.text().await.unwrap_or_default());
    let found = http
        .get(format!("{base}/search?query=staging%20database"))
        .header("authorization", &bearer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(found.contains("eu-west"), "the memory is found: {found}");

    // The Vault example, with no Vault at its address: the store says so, nothing is provisioned.
    let vault_ns = format!("{ns}-vault");
    sim.create_namespace(&vault_ns);
    let mut vault = example("vault.yaml");
    vault[0]["metadata"]["namespace"] = json!(vault_ns);
    apply(&sim, &vault);
    wait_for(&sim, &release, &vault_ns, &["--for=condition=Degraded", "memorystore/notes", "--timeout=60s"]);
    let vault_store = sim.kubectl_json(&["-n", &vault_ns, "get", "memorystore", "notes"]);
    let degraded = vault_store["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Degraded");
    assert_eq!(degraded.unwrap()["reason"], "VaultUnreachable", "{}", vault_store["status"]);
    assert!(degraded.unwrap()["message"].as_str().unwrap().contains("https://vault.vault.svc:8200"));
    let unprovisioned = sim.kubectl_ok(&["-n", &vault_ns, "get", "deployments,services,secrets", "-o", "name"], None);
    assert_eq!(unprovisioned.trim(), "", "nothing is deployed while Vault cannot be read");
    check_operator_requests(&sim, &release, false);

    // The CloudNativePG example, with CloudNativePG's Cluster CRD but no CloudNativePG to make
    // the superuser Secret: the store names what is missing (tests/tests/operator_cnpg.rs runs
    // one to Ready). A real cluster that has the CRD has CloudNativePG itself, whose CRD the
    // stand-in must not replace.
    let cnpg_crd = "crd/clusters.postgresql.cnpg.io";
    if !sim.external() || !sim.kubectl(&["get", cnpg_crd], None).status.success() {
        sim.on_cleanup(&["delete", cnpg_crd, "--ignore-not-found"], None);
        sim.kubectl_ok(&["apply", "-f", "-"], Some(include_str!("../fixtures/cnpg-cluster-crd.yaml")));
        sim.kubectl_ok(&["wait", "--for=condition=Established", cnpg_crd, "--timeout=20s"], None);
        let cnpg_ns = format!("{ns}-cnpg");
        sim.create_namespace(&cnpg_ns);
        let mut cnpg = example("cloudnative-pg.yaml");
        for doc in &mut cnpg {
            doc["metadata"]["namespace"] = json!(cnpg_ns);
        }
        apply(&sim, &cnpg);
        wait_for(&sim, &release, &cnpg_ns, &["--for=condition=Degraded", "memorystore/notes", "--timeout=60s"]);
        let cnpg_store = sim.kubectl_json(&["-n", &cnpg_ns, "get", "memorystore", "notes"]);
        let degraded = cnpg_store["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Degraded");
        assert_eq!(degraded.unwrap()["reason"], "CnpgNotUsable", "{}", cnpg_store["status"]);
        assert!(degraded.unwrap()["message"].as_str().unwrap().contains("pinak-pg-superuser"));
        check_operator_requests(&sim, &release, false);
    } else {
        eprintln!("not checked on a real cluster: the CloudNativePG example (the cluster has CloudNativePG's CRD)");
    }

    // The CRD upgrade as docs/upgrade.md does it: a changed CRD, applied server-side over the
    // one Helm created (whose fields Helm owns, hence --force-conflicts). A real cluster gets
    // the chart's CRD back at the end.
    let chart_crd = repo_root().join("charts/pinak/crds/memorystore.yaml");
    let restore = ["apply", "--server-side", "--force-conflicts", "-f", chart_crd.to_str().unwrap()];
    sim.on_cleanup(&restore, None);
    let mut crd = yaml_file(&chart_crd).remove(0);
    let description = "/spec/versions/0/schema/openAPIV3Schema/properties/spec/description";
    *crd.pointer_mut(description).unwrap() = json!("Desired state of a Pinak memory store (upgraded).");
    sim.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", "-"], Some(&crd.to_string()));
    let live = sim.kubectl_json(&["get", "crd", "memorystores.pinak.dev"]);
    assert_eq!(live.pointer(description), crd.pointer(description), "the new CRD is in place");

    // Upgrade: the new operator replaces the old one (never beside it) and keeps reconciling.
    let mut upgrade = vec!["upgrade", name, &chart, "--namespace", namespace, "--set", "operator.resyncSeconds=60"];
    upgrade.extend(["--wait", "--timeout", "180s"]);
    upgrade.extend(image.iter().map(String::as_str));
    helm_ok(&sim, helm, &upgrade);
    let deployment = sim.kubectl_json(&["-n", namespace, "get", "deployment", name]);
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(env.as_array().unwrap().iter().any(|e| e["name"] == "PINAK_OPERATOR_RESYNC_SECS" && e["value"] == "60"));
    wait_for(&sim, &release, namespace, &["--for=condition=Available", &available, "--timeout=60s"]);
    sim.kubectl_ok(
        &["-n", &ns, "patch", "memorystore", "notes", "--type=merge", "-p", r#"{"spec":{"api":{"replicas":2}}}"#],
        None,
    );
    wait_for(&sim, &release, &ns, &["--for=jsonpath={.status.replicas}=2", "memorystore/notes", "--timeout=120s"]);

    // Autoscaling on, then off: the store's HPA is created, then deleted again.
    let autoscaling = |spec: &str| {
        let patch = format!(r#"{{"spec":{{"api":{{"autoscaling":{spec}}}}}}}"#);
        sim.kubectl_ok(&["-n", &ns, "patch", "memorystore", "notes", "--type=merge", "-p", &patch], None);
    };
    let hpa_exists = || sim.kubectl(&["-n", &ns, "get", "horizontalpodautoscaler", "notes"], None).status.success();
    autoscaling(r#"{"minReplicas":1,"maxReplicas":3}"#);
    eventually(60, "the store's HPA", || {
        assert_no_refusals(&sim, &release);
        hpa_exists().then_some(())
    })
    .await;
    autoscaling("null");
    eventually(60, "the store's HPA deleted", || {
        assert_no_refusals(&sim, &release);
        (!hpa_exists()).then_some(())
    })
    .await;
    if knative {
        serverless_and_back(&sim, &release, &ns).await;
    }
    check_operator_requests(&sim, &release, true);

    // Uninstall: everything of the release goes; the CRD and the store (with its data) stay.
    helm_ok(&sim, helm, &["uninstall", name, "--namespace", namespace, "--wait", "--timeout", "120s"]);
    let selector = instance;
    eventually(60, "nothing of the release left", || {
        let left = sim.kubectl_ok(
            &[
                "get",
                "deployments,replicasets,pods,services,serviceaccounts,secrets,configmaps,networkpolicies,poddisruptionbudgets,clusterroles,clusterrolebindings",
                "-A",
                "-l",
                &selector,
                "-o",
                "name",
            ],
            None,
        );
        left.trim().is_empty().then_some(())
    })
    .await;
    let releases = sim.kubectl_ok(&["-n", namespace, "get", "secrets", "-l", "owner=helm", "-o", "name"], None);
    assert_eq!(releases.trim(), "", "Helm's release records are gone");
    sim.kubectl_ok(&["get", "crd", "memorystores.pinak.dev"], None);
    let kept = sim.kubectl_ok(
        &[
            "-n",
            &ns,
            "get",
            "memorystore/notes",
            "deployment/notes",
            "service/notes",
            "secret/notes-pinak",
            "-o",
            "name",
        ],
        None,
    );
    assert_eq!(kept.lines().count(), 4, "the store and its objects are retained:\n{kept}");
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm4_installs_upgrades_and_uninstalls_into_kubesim() {
    install_upgrade_uninstall("PINAK_HELM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn helm3_installs_upgrades_and_uninstalls_into_kubesim() {
    install_upgrade_uninstall("PINAK_HELM3").await;
}
