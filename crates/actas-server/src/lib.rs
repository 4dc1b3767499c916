//! The `actas` binary's library: configuration and the data directory, the service layer
//! every front end calls, the HTTP server ([`app::Application`]) and the CLI commands.
//!
//! `main.rs` only parses arguments and calls [`cli::run`].
#![deny(missing_docs)]

pub mod app;
pub mod assertion;
pub mod cli;
pub mod commands;
pub mod config;
pub mod demo;
pub mod gateway;
pub mod http;
pub mod notify;
pub mod password;
pub mod service;
