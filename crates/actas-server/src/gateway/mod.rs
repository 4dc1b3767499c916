//! The gateway: the reverse proxy staff use while acting as a customer. This module grows
//! phase by phase (session check → route and scope → record → forward → rewrite →
//! record outcome); today it holds the response rewriting.

pub mod rewrite;
