//! The HTTP contract every route shares: how connections are accepted, the pipeline around each
//! request, and how bad input and failures become the contract's status codes and bodies.

pub mod error;
pub mod extract;
pub mod http;
pub mod server;
