//! The actas domain, with no I/O.
//!
//! Everything here is pure: validated input types that can only be built valid, the
//! policy file and its checks, the access-request and session state machines, the
//! plain-language summaries written into the ledger, and the ledger's mathematics
//! (RFC 6962 Merkle tree, proofs, signed tree heads, full verification).
//!
//! Storage lives in `actas-store`, HTTP in `actas-server`; both speak only these types.
#![deny(missing_docs)]

pub mod account;
pub mod activity;
pub mod app;
pub mod checkpoint;
pub mod clock;
pub mod code;
pub mod event;
pub mod extract;
pub mod gateway;
pub mod ids;
pub mod mask;
pub mod merkle;
pub mod policy;
pub mod receipt;
pub mod request;
pub mod review;
pub mod scope;
pub mod session;
pub mod staff;
pub mod summary;
pub mod text;
pub mod ticket_check;
pub mod tree_head;
pub mod verify;
pub mod webhook;
pub mod words;

pub use clock::Timestamp;
