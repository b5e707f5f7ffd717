//! The checks between a request and the data. Handlers get a verified `Principal` and its
//! `Scope` from here and never read identity from the request themselves; the verification keys
//! and the secret files sit here too, since the checks are only as sound as they are.

pub mod auth;
pub mod credentials;
pub mod keys;
pub mod permissions;
pub mod secret_file;
pub mod tenancy;
