//! Admin credentials from a CloudNativePG `Cluster` (`spec.database.adminCredentials.cnpgCluster`):
//! the Cluster's superuser Secret and its read-write Service, the way platform teams that run
//! Postgres with CloudNativePG already reach it.
//!
//! The URL names the `-rw` Service by its cluster IP: stable for the Service's life, valid for
//! the operator and the pods alike, and reachable without cluster DNS (an operator run outside
//! the cluster during development, the test cluster).

use k8s_openapi::api::core::v1::{Secret, Service};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use pinak_crds::CnpgClusterRef;
use serde_json::Value;

use crate::database::AdminUrl;
use crate::error::{Error, Result};

/// CloudNativePG's default application database.
const DEFAULT_DATABASE: &str = "app";
const PORT: u16 = 5432;

/// The superuser Secret of `cluster` (its `spec.superuserSecret.name`, else `<name>-superuser`).
pub fn superuser_secret(name: &str, cluster: &Value) -> String {
    cluster["spec"]["superuserSecret"]["name"].as_str().map_or_else(|| format!("{name}-superuser"), str::to_owned)
}

/// The database the stores live in: the reference's, the Cluster's bootstrap database, or `app`.
pub fn database(r: &CnpgClusterRef, cluster: &Value) -> String {
    r.database
        .clone()
        .or_else(|| cluster["spec"]["bootstrap"]["initdb"]["database"].as_str().map(str::to_owned))
        .unwrap_or_else(|| DEFAULT_DATABASE.to_owned())
}

/// `postgres://user:password@host:5432/database`, with user and password escaped.
pub fn url(host: &str, user: &str, password: &str, database: &str) -> std::result::Result<AdminUrl, String> {
    let mut url = url::Url::parse(&format!("postgres://{host}:{PORT}/"))
        .map_err(|e| format!("the Service address {host:?} does not make a URL ({e})"))?;
    url.set_path(database);
    url.set_username(user).map_err(|()| "the superuser name does not fit a URL".to_owned())?;
    url.set_password(Some(password)).map_err(|()| "the password does not fit a URL".to_owned())?;
    AdminUrl::parse(url.as_str())
}

/// The admin URL of the Cluster `r` in `namespace`.
pub async fn admin_url(client: &Client, namespace: &str, r: &CnpgClusterRef) -> Result<AdminUrl> {
    let gvk = GroupVersionKind::gvk("postgresql.cnpg.io", "v1", "Cluster");
    let clusters: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ApiResource::from_gvk(&gvk));
    let found = match clusters.get_opt(&r.name).await {
        Ok(found) => found,
        // No CloudNativePG at all: the API server knows no such resource.
        Err(kube::Error::Api(status)) if status.is_not_found() => None,
        Err(e) => return Err(e.into()),
    };
    let cluster =
        found.ok_or_else(|| Error::CnpgClusterNotFound { namespace: namespace.to_owned(), name: r.name.clone() })?;
    let cluster = serde_json::to_value(&cluster).map_err(|e| Error::Serialize("a CloudNativePG Cluster", e))?;
    if cluster["spec"]["enableSuperuserAccess"] == Value::Bool(false) {
        return Err(Error::CnpgNotUsable(format!(
            "Cluster {namespace}/{} has spec.enableSuperuserAccess: false; the operator logs in as its superuser",
            r.name
        )));
    }
    let secret_name = superuser_secret(&r.name, &cluster);
    let secret = Api::<Secret>::namespaced(client.clone(), namespace).get_opt(&secret_name).await?.ok_or_else(|| {
        Error::CnpgNotUsable(format!(
            "the superuser Secret {namespace}/{secret_name} of Cluster {} does not exist (set spec.enableSuperuserAccess: true on the Cluster)",
            r.name
        ))
    })?;
    let field = |key: &str| crate::secret_ref::value(&secret, &secret_name, key);
    let (user, password) = (field("username")?, field("password")?);
    let service_name = format!("{}-rw", r.name);
    let service = Api::<Service>::namespaced(client.clone(), namespace).get_opt(&service_name).await?;
    let host = service
        .and_then(|s| s.spec)
        .and_then(|s| s.cluster_ip)
        .filter(|ip| !ip.is_empty() && ip != "None")
        .ok_or_else(|| {
            Error::CnpgNotUsable(format!(
                "Service {namespace}/{service_name} of Cluster {} is missing or has no cluster IP (is the Cluster running?)",
                r.name
            ))
        })?;
    let host = if host.contains(':') { format!("[{host}]") } else { host };
    url(&host, &user, &password, &database(r, &cluster))
        .map_err(|reason| Error::InvalidAdminUrl { origin: format!("CloudNativePG Cluster {}", r.name), reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_database_follow_cloudnative_pg_defaults() {
        let plain = json!({"spec": {"instances": 3}});
        assert_eq!(superuser_secret("pg", &plain), "pg-superuser");
        assert_eq!(superuser_secret("pg", &json!({"spec": {"superuserSecret": {"name": "root"}}})), "root");
        let r = CnpgClusterRef { name: "pg".into(), database: None };
        assert_eq!(database(&r, &plain), "app");
        let bootstrapped = json!({"spec": {"bootstrap": {"initdb": {"database": "pinak"}}}});
        assert_eq!(database(&r, &bootstrapped), "pinak");
        let named = CnpgClusterRef { database: Some("memories".into()), ..r };
        assert_eq!(database(&named, &bootstrapped), "memories");
    }

    #[test]
    fn urls_escape_credentials_and_take_ipv6_hosts() {
        let u = url("10.96.0.7", "postgres", "p@ss/word:#", "pinak").unwrap();
        assert_eq!(u.for_login("x", "y"), "postgres://x:y@10.96.0.7:5432/pinak");
        assert_eq!(u.for_pods(), "postgres://10.96.0.7:5432/pinak");
        let v6 = url("[fd00::7]", "postgres", "pw", "app").unwrap();
        assert_eq!(v6.for_pods(), "postgres://[fd00::7]:5432/app");
        assert!(format!("{u:?}").contains("postgres@") && !format!("{u:?}").contains("word"));
    }
}
