//! Reading memories back by relevance. Ranking, the choice of vector path and the nudges that
//! reuse them change together (recall and cost are measured as one, docs/performance.md).

pub mod fusion;
pub mod keyword;
pub mod nudges;
pub mod search;
pub mod vector_path;
