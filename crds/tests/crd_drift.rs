//! The checked-in CRD must match what the Rust types generate.

#[test]
fn checked_in_crd_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/memorystore.yaml");
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    let generated = pinak_crds::crd_yaml();
    assert!(
        checked_in == generated,
        "crds/memorystore.yaml is stale: run `cargo run -p pinak-crds --bin crdgen > crds/memorystore.yaml`"
    );
}
