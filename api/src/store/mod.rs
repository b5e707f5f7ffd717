//! A store's data: the layers and their payload contracts, the pool and migrations of its
//! schema, and the only code that writes memory rows (`records`, reached through `write`), so the
//! store policy (validation, client checks, quarantine, embedding) cannot be skipped. The one
//! exception is `transfer`'s import, an admin's restore of rows that were stored before.

pub mod db;
pub mod layers;
pub mod pgcopy;
pub mod records;
pub mod schemas;
pub mod transfer;
pub mod write;
