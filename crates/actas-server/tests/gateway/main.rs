//! The gateway over real HTTP: a small product server on a random port behind it, and a
//! real client in front. Each test walks one of DESIGN.md's gateway invariants, and every
//! test ends by checking that each request the product served is in the ledger.

#[path = "../common/mod.rs"]
mod common;

mod adversary;
mod copies;
mod pages;
mod signed;
mod world;
