//! A store's data: the layers and their payload contracts, the pool and migrations of its
//! schema, and the only code that writes memory rows (`records`, reached through `write`), so the
//! store policy (validation, client checks, quarantine, embedding) cannot be skipped.

pub mod db;
pub mod layers;
pub mod pgcopy;
pub mod records;
pub mod schemas;
pub mod write;
