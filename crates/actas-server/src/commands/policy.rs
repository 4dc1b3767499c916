//! `actas policy check FILE` and `actas policy unclassified`.

use super::Opened;
use crate::cli::{Failure, PolicyCommand};
use crate::config::DataDir;
use actas_core::policy::Policy;

pub(super) async fn run(data: &DataDir, command: PolicyCommand) -> Result<(), Failure> {
    match command {
        PolicyCommand::Unclassified => {
            let opened = Opened::open(data).await?;
            let fields = opened.service.unclassified_fields().await;
            opened.finish_reading().await;
            let fields = fields?;
            if fields.is_empty() {
                println!("No unclassified JSON fields or response headers have been seen.");
                return Ok(());
            }
            println!(
                "These were hidden because no rule classifies them. Give each JSON field ($.…) a masking rule (show, last4, email, hide or never), and name each response header you trust in [gateway] response_headers:"
            );
            println!("  {:>8}  {:<20}  path", "seen", "last seen");
            for f in fields {
                println!(
                    "  {:>8}  {:<20}  {}",
                    f.seen,
                    f.last_seen.to_string(),
                    f.path
                );
            }
            Ok(())
        }
        PolicyCommand::Check { file } => {
            let name = file.display().to_string();
            let text = std::fs::read_to_string(&file)
                .map_err(|e| Failure::input(format!("{name}: {e}")))?;
            let policy = Policy::from_toml(&text, &name).map_err(Failure::check)?;
            let s = policy.session;
            println!("{name} is valid.");
            println!(
                "  sessions: at most {} minutes, ending after {} idle minutes; staff must have signed in within {} minutes",
                s.hard_limit.as_secs() / 60,
                s.idle_limit.as_secs() / 60,
                s.reauth_within.as_secs() / 60
            );
            println!("  capabilities:");
            for c in policy.capabilities() {
                println!("    {:<16} {:<9} {}", c.name, c.risk, c.description);
            }
            println!("  routes: {}", policy.routes().len());
            println!(
                "  masking rules: {} (unclassified JSON fields: {})",
                policy.masking().len(),
                policy.unclassified
            );
            let flags: Vec<&str> = policy.sensitive_flags().map(|f| f.as_str()).collect();
            println!(
                "  sensitive account flags: {}",
                if flags.is_empty() {
                    "none".to_owned()
                } else {
                    flags.join(", ")
                }
            );
            let g = &policy.gateway;
            println!(
                "  gateway: routes match {}; a trailing slash is {}; messages on live connections need {}",
                if g.case_sensitive {
                    "letter case exactly"
                } else {
                    "whatever the letter case"
                },
                match g.trailing_slash {
                    actas_core::gateway::path::TrailingSlash::Remove => "removed",
                    actas_core::gateway::path::TrailingSlash::Keep => "kept",
                },
                g.websocket_capability.as_ref().map_or_else(
                    || "a capability the policy does not name, so none pass".to_owned(),
                    |c| c.to_string()
                )
            );
            for warning in g
                .warnings()
                .into_iter()
                .chain(policy.shadowed_rules())
                .chain(policy.weak_reveals())
            {
                println!("warning: {warning}");
            }
            Ok(())
        }
    }
}
