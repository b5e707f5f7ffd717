//! The process rather than the API: what it is configured with, the state its handlers share,
//! how it starts and stops, the background jobs it runs, and what it reports (logs, metrics).

pub mod config;
pub mod jobs;
pub mod lifecycle;
pub mod metrics;
pub mod state;
pub mod telemetry;
