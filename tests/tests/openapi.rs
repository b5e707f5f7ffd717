//! `/openapi.json` describes exactly the routes that are served, and `/docs` lists them.

use std::collections::HashSet;

use pinak_tests::TestApi;
use serde_json::Value;

fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    doc.pointer(r.strip_prefix('#')?)
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn every_documented_operation_is_served_and_documented_well() {
    let api = TestApi::start().await;
    let doc: Value = api.client.get(api.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ids = HashSet::new();
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 35, "{} paths", paths.len());
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()), "unique operationId");
            let declared: HashSet<&str> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| p["name"].as_str().unwrap())
                .collect();
            let in_path: HashSet<&str> =
                path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
            assert_eq!(declared, in_path, "{method} {path} declares its path parameters");
            // The route exists with this method: never 404/405 from the router.
            let concrete = path.replace("{layer}", "semantic").replace(['{', '}'], "");
            let req = api.client.request(method.to_uppercase().parse().unwrap(), api.url(&concrete));
            let req = if method == "post" || method == "put" { req.json(&serde_json::json!({})) } else { req };
            let status = req.send().await.unwrap().status();
            if op["security"] == serde_json::json!([]) {
                assert!(status != 404 && status != 405, "public {method} {path} is served: {status}");
            } else {
                assert_eq!(status, 401, "{method} {path} is served and requires a bearer token");
            }
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for r in all {
        assert!(resolve(&doc, &r).is_some(), "dangling $ref {r}");
    }
    let page = api.client.get(api.url("/docs")).send().await.unwrap().text().await.unwrap();
    for path in paths.keys() {
        assert!(page.contains(&path.replace('&', "&amp;")), "/docs lists {path}");
    }
    api.stop().await;
}
