//! `pinak-operator`: not implemented yet. Exits with status 2 so nothing mistakes it for a
//! working controller.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!(
        "pinak-operator: not implemented yet (see issue \"Operator\"); the MemoryStore CRD is in crds/memorystore.yaml"
    );
    ExitCode::from(2)
}
