//! The binary's command line: `crd` prints exactly the checked-in manifest.

use std::process::Command;

#[test]
fn crd_subcommand_prints_the_checked_in_manifest() {
    let out = Command::new(env!("CARGO_BIN_EXE_pinak-operator")).arg("crd").output().expect("run pinak-operator crd");
    assert!(out.status.success());
    let expected = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/memorystore.yaml")).unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn unknown_subcommand_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_pinak-operator")).arg("nope").output().expect("run pinak-operator");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: pinak-operator"));
}
