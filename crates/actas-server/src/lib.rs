//! The `actas` binary's library: configuration and the data directory, the service layer
//! every front end (CLI today; console and API next) calls, and the CLI commands.
//!
//! `main.rs` only parses arguments and calls [`cli::run`].
#![deny(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod password;
pub mod service;
