//! Strategic merge patch and server-side apply with managed fields, over `serde_json::Value`.
//!
//! Pure functions: the API handlers decide which patch type applies and persist the result.

pub mod apply;
mod fieldset;
pub mod lists;
pub mod strategic;

pub use apply::{
    ApplyError, Conflict, apply, conflict_causes, conflict_message, record_update, try_apply, validate_applied,
};
pub use lists::{BuiltinLists, ListSchema, ListType, MergeStrategy, SchemaLists};
pub use strategic::strategic_merge;
