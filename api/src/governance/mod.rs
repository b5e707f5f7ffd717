//! Accountability for what agents store: every row and log entry names its `Actor`, reads and
//! writes land in the access log and the hash-chained audit log in the caller's transaction, and
//! client trust decides which writes an admin must review first (`quarantine`).

pub mod access;
pub mod actor;
pub mod audit;
pub mod clients;
pub mod quarantine;
