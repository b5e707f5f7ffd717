//! Custom resources: what a CRD's structural schema does to the objects it serves.

pub mod schema;
