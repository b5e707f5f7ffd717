//! Prints the MemoryStore CustomResourceDefinition as YAML.
//!
//! `cargo run -p pinak-crds --bin crdgen > crds/memorystore.yaml`

fn main() {
    print!("{}", pinak_crds::crd_yaml());
}
