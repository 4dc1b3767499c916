//! The policy file: session limits, capabilities and their risk, routes, masking rules
//! and sensitive account flags. Parsed once and validated; every error names the file,
//! the line and the field.

mod gateway;
pub mod masking;
pub mod routes;

pub use gateway::{
    AssetPattern, AssetTrust, DEFAULT_STATIC_ASSETS, GatewayRules, PassRule, PassThrough,
    STANDARD_REQUEST_HEADERS, STANDARD_RESPONSE_HEADERS, is_actas_cookie,
};

use crate::Timestamp;
use crate::account::{AccountFlag, Consent};
use crate::activity::{ActivityKind, ActivityTemplate};
use crate::gateway::path::CanonicalPath;
use crate::scope::{CapabilityName, Risk, Scope};
use crate::text::{DEFAULT_TICKET_PATTERN, TicketPattern};
use masking::{FieldName, JsonPath, MaskRule, MaskingRule, Target};
use routes::{Method, Route, RouteMatch, RouteTable, parse_route_key};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;
use toml::Spanned;

/// The starter policy written by `actas init`, fully commented.
pub const DEFAULT_POLICY: &str = include_str!("default.toml");

/// A mistake in a policy file, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct PolicyError {
    /// The file's name as given.
    pub file: String,
    /// The 1-based line, when known.
    pub line: Option<usize>,
    /// The field, e.g. `routes[2].capability`.
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}, line {}: ", self.file, line)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.pad(&self.message)
    }
}

/// Why a requested scope or duration can't be granted under this policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeRefusal {
    /// The policy has no such capability.
    #[error("there is no capability called {0:?} in the policy")]
    Unknown(String),
    /// The capability is `forbidden`.
    #[error("{0} can never be requested: the policy marks it forbidden")]
    Forbidden(CapabilityName),
    /// The duration is zero or above the hard limit.
    #[error("a session lasts 1 to {max} minutes; {given} was asked for")]
    Duration {
        /// What was asked.
        given: u64,
        /// The hard limit.
        max: u64,
    },
}

/// Session timing rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// Longest a session may last.
    pub hard_limit: Duration,
    /// Longest a session may sit without a request.
    pub idle_limit: Duration,
    /// How recent the staff member's sign-in must be to start a session.
    pub reauth_within: Duration,
    /// The duration offered by default.
    pub default_duration: Duration,
    /// How long a console sign-in through the identity provider lasts before the console
    /// asks the provider again (which signs them straight back in while the provider
    /// still knows them): how soon someone removed at the provider, without user sync,
    /// is out of actas.
    pub console_sign_in: Duration,
    /// A session that made changes must be ended with a support note ("what I did") when
    /// its staff member ends it from the console.
    pub note_after_changes: bool,
}

impl SessionLimits {
    /// Whether a staff member ending their own session must write a support note first:
    /// when policy asks for one and the session made changes (which the ledger knows:
    /// every change is recorded before it is sent).
    pub fn note_required(&self, made_changes: bool, note_given: bool) -> bool {
        self.note_after_changes && made_changes && !note_given
    }
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            hard_limit: Duration::from_secs(30 * 60),
            idle_limit: Duration::from_secs(15 * 60),
            reauth_within: Duration::from_secs(5 * 60),
            default_duration: Duration::from_secs(15 * 60),
            console_sign_in: Duration::from_secs(60 * 60),
            note_after_changes: true,
        }
    }
}

/// A session length the policy allows: at least a minute, at most the hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SessionDuration(Duration);

impl SessionDuration {
    /// A duration read back from storage, where it was checked against policy when the
    /// request was made (the policy may have changed since; history is not rewritten).
    pub fn stored(minutes: u64) -> Self {
        Self(Duration::from_secs(minutes.max(1) * 60))
    }

    /// The length.
    pub fn get(self) -> Duration {
        self.0
    }

    /// Whole minutes.
    pub fn minutes(self) -> u64 {
        self.0.as_secs() / 60
    }
}

/// One capability as the policy defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capability {
    /// Its name.
    pub name: CapabilityName,
    /// How risky it is.
    pub risk: Risk,
    /// What it allows, in plain words.
    pub description: String,
    /// What stays blocked, in plain words.
    pub blocked: Option<String>,
    /// Whether it allows exports and bulk downloads.
    pub export: bool,
}

/// What approvals a request needs under this policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// The highest risk among the scope's capabilities.
    pub risk: Risk,
    /// A lead other than the requester must approve.
    pub needs_lead: bool,
    /// The customer must give a one-time confirmation code.
    pub needs_code: bool,
}

/// A validated policy.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Session timing rules.
    pub session: SessionLimits,
    capabilities: BTreeMap<CapabilityName, Capability>,
    routes: RouteTable,
    masking: Vec<MaskingRule>,
    /// What happens to JSON fields no rule classifies.
    pub unclassified: MaskRule,
    sensitive_flags: BTreeSet<AccountFlag>,
    /// The pattern ticket references must match.
    pub ticket_pattern: TicketPattern,
    /// How the gateway treats requests no route names.
    pub gateway: GatewayRules,
    activities: BTreeMap<ActivityKind, ActivityTemplate>,
    /// How often each allow-list grant is reviewed, and what an overdue review means.
    pub grant_review: GrantReview,
    /// How ended sessions are reviewed: how soon, and what share of quiet ones.
    pub review: crate::review::ReviewRules,
    /// What the gateway keeps of the pages it served.
    pub snapshots: Snapshots,
}

/// Pages as the agent saw them (`[snapshots]`): the masked HTML the gateway served, kept
/// compressed for `keep` (`keep_days`, default 90), at most `max_bytes_per_session`
/// compressed bytes per session (`max_kb_per_session`, default 4096; pages past it are
/// recorded without a copy, and the timeline says so). `keep_days = 0` keeps none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshots {
    /// How long a copy is kept; zero keeps none.
    pub keep: Duration,
    /// Compressed bytes kept per session at most.
    pub max_bytes_per_session: u64,
}

impl Default for Snapshots {
    fn default() -> Self {
        Self {
            keep: Duration::from_secs(90 * 86_400),
            max_bytes_per_session: 4096 * 1024,
        }
    }
}

impl Snapshots {
    /// Whether pages are kept at all.
    pub fn enabled(&self) -> bool {
        !self.keep.is_zero()
    }
}

/// Why a staff member whose grant is overdue for review can't start anything.
pub const SUSPENDED_FOR_REVIEW: &str = "your access to act as customers is overdue for its review, so it is suspended until a director confirms it; ask a director to review it on the allow-list";

/// Access recertification (`[allow_list]`): every grant is reviewed by a director every
/// `every` (`grant_review_days`, default 90); an overdue grant is either kept or, by
/// default, suspended (no new requests or sessions) until a director confirms it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantReview {
    /// How long a review holds.
    pub every: Duration,
    /// Suspend overdue grants (`overdue = "suspend"`) rather than keep them (`"keep"`).
    pub suspend_overdue: bool,
}

impl Default for GrantReview {
    fn default() -> Self {
        Self {
            every: Duration::from_secs(90 * 86_400),
            suspend_overdue: true,
        }
    }
}

impl GrantReview {
    /// When a grant last reviewed at `reviewed_at` is due again.
    pub fn due(&self, reviewed_at: Timestamp) -> Timestamp {
        reviewed_at.plus(self.every)
    }

    /// Whether a grant last reviewed at `reviewed_at` is suspended at `now`.
    pub fn suspended(&self, reviewed_at: Timestamp, now: Timestamp) -> bool {
        self.suspends_reviewed_before(now)
            .is_some_and(|since| reviewed_at < since)
    }

    /// Grants reviewed before this are suspended at `now`; `None` when policy keeps
    /// overdue grants.
    pub fn suspends_reviewed_before(&self, now: Timestamp) -> Option<Timestamp> {
        self.suspend_overdue
            .then(|| Timestamp::from_millis(now.as_millis() - self.every.as_millis() as i64))
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawGrantReview {
    grant_review_days: Option<Spanned<u64>>,
    overdue: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReview {
    within_days: Option<Spanned<u64>>,
    sample_unflagged_percent: Option<Spanned<u64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSnapshots {
    keep_days: Option<Spanned<u64>>,
    max_kb_per_session: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    allow_list: Option<Spanned<RawGrantReview>>,
    #[serde(default)]
    review: Option<Spanned<RawReview>>,
    #[serde(default)]
    snapshots: Option<Spanned<RawSnapshots>>,
    ticket_pattern: Option<Spanned<String>>,
    #[serde(default)]
    session: Option<Spanned<RawSession>>,
    #[serde(default)]
    capabilities: BTreeMap<String, Spanned<RawCapability>>,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
    #[serde(default)]
    masking: Vec<Spanned<RawMasking>>,
    unclassified: Option<Spanned<String>>,
    #[serde(default)]
    sensitive_flags: Vec<Spanned<String>>,
    gateway: Option<Spanned<gateway::RawGateway>>,
    #[serde(default)]
    customer_events: BTreeMap<String, Spanned<RawActivity>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawActivity {
    description: Spanned<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSession {
    hard_limit_minutes: Option<Spanned<u64>>,
    idle_limit_minutes: Option<Spanned<u64>>,
    reauth_within_minutes: Option<Spanned<u64>>,
    default_minutes: Option<Spanned<u64>>,
    console_sign_in_minutes: Option<Spanned<u64>>,
    note_after_changes: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapability {
    risk: Spanned<String>,
    description: String,
    blocked: Option<String>,
    #[serde(default)]
    export: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    route: Spanned<String>,
    capability: Spanned<String>,
    description: Spanned<String>,
    #[serde(default)]
    partial_forms: bool,
    #[serde(default)]
    inline_scripts: bool,
    #[serde(default)]
    signed_action: bool,
    current: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMasking {
    json: Option<Spanned<String>>,
    html: Option<Spanned<String>>,
    field: Option<Spanned<String>>,
    rule: Spanned<String>,
    reveal: Option<Spanned<String>>,
}

/// Turns byte offsets into 1-based line numbers.
struct Lines<'a> {
    file: &'a str,
    text: &'a str,
}

impl Lines<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn err<T>(
        &self,
        at: &Spanned<T>,
        field: impl Into<String>,
        message: impl fmt::Display,
    ) -> PolicyError {
        PolicyError {
            file: self.file.to_owned(),
            line: Some(self.line(at.span().start)),
            field: field.into(),
            message: message.to_string(),
        }
    }
}

impl Policy {
    /// Parses and validates a policy. `file` is only used to name the file in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self, PolicyError> {
        let lines = Lines { file, text };
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError {
            file: file.to_owned(),
            line: e.span().map(|s| lines.line(s.start)),
            field: String::new(),
            message: e.message().trim().to_owned(),
        })?;

        let ticket_pattern = match &raw.ticket_pattern {
            Some(p) => {
                TicketPattern::new(p.get_ref()).map_err(|e| lines.err(p, "ticket_pattern", e))?
            }
            None => TicketPattern::new(DEFAULT_TICKET_PATTERN).map_err(|e| PolicyError {
                file: file.to_owned(),
                line: None,
                field: "ticket_pattern".into(),
                message: e.to_string(),
            })?,
        };

        let session = match &raw.session {
            Some(s) => Self::session_limits(&lines, s)?,
            None => SessionLimits::default(),
        };

        let mut capabilities = BTreeMap::new();
        for (name, cap) in &raw.capabilities {
            let field = format!("capabilities.{name}");
            let cap_name = CapabilityName::parse(name).map_err(|e| lines.err(cap, &field, e))?;
            let c = cap.get_ref();
            let risk: Risk = c
                .risk
                .get_ref()
                .parse()
                .map_err(|e| lines.err(&c.risk, format!("{field}.risk"), e))?;
            if cap_name == CapabilityName::view() && risk != Risk::Low {
                return Err(lines.err(
                    &c.risk,
                    format!("{field}.risk"),
                    "view must be low risk: every session includes it",
                ));
            }
            if c.description.trim().is_empty() {
                return Err(lines.err(
                    cap,
                    format!("{field}.description"),
                    "say in plain words what this capability allows",
                ));
            }
            capabilities.insert(
                cap_name.clone(),
                Capability {
                    name: cap_name,
                    risk,
                    description: c.description.trim().to_owned(),
                    blocked: c.blocked.clone(),
                    export: c.export,
                },
            );
        }
        capabilities
            .entry(CapabilityName::view())
            .or_insert_with(|| Capability {
                name: CapabilityName::view(),
                risk: Risk::Low,
                description: "See the customer's pages as they see them".to_owned(),
                blocked: Some("Nothing can be changed, downloaded or exported".to_owned()),
                export: false,
            });

        let gateway = match &raw.gateway {
            Some(g) => g.get_ref().check(&lines, &capabilities)?,
            None => GatewayRules::default(),
        };

        let mut routes = RouteTable::new(gateway.case_sensitive);
        for (i, r) in raw.routes.iter().enumerate() {
            let field = format!("routes[{i}]");
            let r = r.get_ref();
            let (method, path) = parse_route_key(r.route.get_ref())
                .map_err(|e| lines.err(&r.route, format!("{field}.route"), e))?;
            let capability = CapabilityName::parse(r.capability.get_ref())
                .ok()
                .filter(|c| capabilities.contains_key(c))
                .ok_or_else(|| {
                    let known: Vec<&str> =
                        capabilities.keys().map(CapabilityName::as_str).collect();
                    lines.err(
                        &r.capability,
                        format!("{field}.capability"),
                        format!(
                            "there is no capability called {:?}; defined: {}",
                            r.capability.get_ref(),
                            known.join(", ")
                        ),
                    )
                })?;
            if r.description.get_ref().trim().is_empty() {
                return Err(lines.err(
                    &r.description,
                    format!("{field}.description"),
                    "describe in plain words what the route does",
                ));
            }
            let signed = match (r.signed_action, &r.current) {
                (false, None) => None,
                (false, Some(current)) => {
                    return Err(lines.err(
                        current,
                        format!("{field}.current"),
                        "only a signed action reads its current values: add signed_action = true, or remove current",
                    ));
                }
                (true, _) if method.is_safe() => {
                    return Err(lines.err(
                        &r.route,
                        format!("{field}.signed_action"),
                        "a signed action is a change: write it for POST, PUT, PATCH or DELETE",
                    ));
                }
                (true, None) => Some(path.clone()),
                (true, Some(current)) => {
                    let (_, p) = parse_route_key(current.get_ref())
                        .ok()
                        .filter(|(m, _)| *m == Method::Get)
                        .ok_or_else(|| {
                            lines.err(
                                current,
                                format!("{field}.current"),
                                "write the page that shows the values it changes, such as \"GET /profile\"",
                            )
                        })?;
                    Some(p)
                }
            };
            routes
                .insert(Route {
                    method,
                    path,
                    capability,
                    description: r.description.get_ref().trim().to_owned(),
                    allows: routes::RouteAllows {
                        partial_forms: r.partial_forms,
                        inline_scripts: r.inline_scripts,
                    },
                    signed,
                })
                .map_err(|e| lines.err(&r.route, format!("{field}.route"), e))?;
        }

        let mut masking = Vec::new();
        for (i, m) in raw.masking.iter().enumerate() {
            let field = format!("masking[{i}]");
            let mr = m.get_ref();
            let rule: MaskRule = mr
                .rule
                .get_ref()
                .parse()
                .map_err(|e| lines.err(&mr.rule, format!("{field}.rule"), e))?;
            let target = match (&mr.json, &mr.html, &mr.field) {
                (Some(j), None, None) => Target::Json(
                    JsonPath::parse(j.get_ref())
                        .map_err(|e| lines.err(j, format!("{field}.json"), e))?,
                ),
                (None, Some(h), None) if !h.get_ref().trim().is_empty() => {
                    Target::Html(h.get_ref().trim().to_owned())
                }
                (None, Some(h), None) => {
                    return Err(lines.err(h, format!("{field}.html"), "the CSS selector is empty"));
                }
                (None, None, Some(f)) => Target::Field(
                    FieldName::parse(f.get_ref())
                        .map_err(|e| lines.err(f, format!("{field}.field"), e))?,
                ),
                _ => {
                    return Err(lines.err(
                        m,
                        &field,
                        "give exactly one of json = \"$.path\", html = \"css selector\" or field = \"name\"",
                    ));
                }
            };
            let reveal = match &mr.reveal {
                None => None,
                Some(r) => {
                    let cap = CapabilityName::parse(r.get_ref())
                        .ok()
                        .filter(|c| capabilities.contains_key(c))
                        .ok_or_else(|| {
                            lines.err(
                                r,
                                format!("{field}.reveal"),
                                format!(
                                    "there is no capability called {:?}; define it (risk high, so a lead approves and the customer gives a code)",
                                    r.get_ref()
                                ),
                            )
                        })?;
                    if rule == MaskRule::Show {
                        return Err(lines.err(
                            r,
                            format!("{field}.reveal"),
                            "a rule that shows its value has nothing to reveal",
                        ));
                    }
                    Some(cap)
                }
            };
            masking.push(MaskingRule {
                target,
                rule,
                reveal,
            });
        }

        let unclassified = match &raw.unclassified {
            Some(u) => u
                .get_ref()
                .parse()
                .map_err(|e| lines.err(u, "unclassified", e))?,
            None => MaskRule::Hide,
        };

        let mut sensitive_flags = BTreeSet::new();
        for (i, f) in raw.sensitive_flags.iter().enumerate() {
            sensitive_flags.insert(
                AccountFlag::parse(f.get_ref())
                    .map_err(|e| lines.err(f, format!("sensitive_flags[{i}]"), e))?,
            );
        }

        let mut activities = BTreeMap::new();
        for (kind, template) in crate::activity::BUILT_IN {
            activities.insert(
                ActivityKind::parse(kind).map_err(|e| PolicyError {
                    file: file.to_owned(),
                    line: None,
                    field: "customer_events".into(),
                    message: e.to_string(),
                })?,
                ActivityTemplate::parse(template).map_err(|e| PolicyError {
                    file: file.to_owned(),
                    line: None,
                    field: "customer_events".into(),
                    message: e.to_string(),
                })?,
            );
        }
        for (name, raw) in &raw.customer_events {
            let field = format!("customer_events.{name}");
            let kind = ActivityKind::parse(name).map_err(|e| lines.err(raw, &field, e))?;
            let d = &raw.get_ref().description;
            let template = ActivityTemplate::parse(d.get_ref())
                .map_err(|e| lines.err(d, format!("{field}.description"), e))?;
            activities.insert(kind, template);
        }

        let grant_review = match &raw.allow_list {
            None => GrantReview::default(),
            Some(a) => {
                let a = a.get_ref();
                let d = GrantReview::default();
                let every = match &a.grant_review_days {
                    None => d.every,
                    Some(n) if (1..=3660).contains(n.get_ref()) => {
                        Duration::from_secs(n.get_ref() * 86_400)
                    }
                    Some(n) => {
                        return Err(lines.err(
                            n,
                            "allow_list.grant_review_days",
                            "must be between 1 and 3660 days",
                        ));
                    }
                };
                let suspend_overdue = match a.overdue.as_ref().map(|o| (o, o.get_ref().as_str())) {
                    None => d.suspend_overdue,
                    Some((_, "suspend")) => true,
                    Some((_, "keep")) => false,
                    Some((o, other)) => {
                        return Err(lines.err(
                            o,
                            "allow_list.overdue",
                            format!("{other:?} is not a choice; write \"suspend\" or \"keep\""),
                        ));
                    }
                };
                GrantReview {
                    every,
                    suspend_overdue,
                }
            }
        };
        let within = |v: &Option<Spanned<u64>>,
                      field: &str,
                      range: std::ops::RangeInclusive<u64>,
                      what: &str|
         -> Result<Option<u64>, PolicyError> {
            match v {
                None => Ok(None),
                Some(n) if range.contains(n.get_ref()) => Ok(Some(*n.get_ref())),
                Some(n) => Err(lines.err(
                    n,
                    field,
                    format!(
                        "must be between {} and {} {what}",
                        range.start(),
                        range.end()
                    ),
                )),
            }
        };
        let mut review = crate::review::ReviewRules::default();
        if let Some(r) = &raw.review {
            let r = r.get_ref();
            if let Some(d) = within(&r.within_days, "review.within_days", 1..=365, "days")? {
                review.within = Duration::from_secs(d * 86_400);
            }
            if let Some(p) = within(
                &r.sample_unflagged_percent,
                "review.sample_unflagged_percent",
                0..=100,
                "percent",
            )? {
                review.sample_percent = p as u8;
            }
        }
        let mut snapshots = Snapshots::default();
        if let Some(k) = &raw.snapshots {
            let k = k.get_ref();
            if let Some(d) = within(&k.keep_days, "snapshots.keep_days", 0..=3660, "days")? {
                snapshots.keep = Duration::from_secs(d * 86_400);
            }
            if let Some(kb) = within(
                &k.max_kb_per_session,
                "snapshots.max_kb_per_session",
                16..=1_048_576,
                "KB",
            )? {
                snapshots.max_bytes_per_session = kb * 1024;
            }
        }
        Ok(Self {
            grant_review,
            review,
            snapshots,
            session,
            capabilities,
            routes,
            masking,
            unclassified,
            sensitive_flags,
            ticket_pattern,
            gateway,
            activities,
        })
    }

    fn session_limits(
        lines: &Lines<'_>,
        s: &Spanned<RawSession>,
    ) -> Result<SessionLimits, PolicyError> {
        let d = SessionLimits::default();
        let raw = s.get_ref();
        let minutes = |v: &Option<Spanned<u64>>,
                       name: &str,
                       default: Duration|
         -> Result<Duration, PolicyError> {
            match v {
                Some(m) if *m.get_ref() == 0 || *m.get_ref() > 24 * 60 => Err(lines.err(
                    m,
                    format!("session.{name}"),
                    "must be between 1 and 1440 minutes",
                )),
                Some(m) => Ok(Duration::from_secs(m.get_ref() * 60)),
                None => Ok(default),
            }
        };
        let limits = SessionLimits {
            hard_limit: minutes(&raw.hard_limit_minutes, "hard_limit_minutes", d.hard_limit)?,
            idle_limit: minutes(&raw.idle_limit_minutes, "idle_limit_minutes", d.idle_limit)?,
            reauth_within: minutes(
                &raw.reauth_within_minutes,
                "reauth_within_minutes",
                d.reauth_within,
            )?,
            default_duration: minutes(&raw.default_minutes, "default_minutes", d.default_duration)?,
            console_sign_in: minutes(
                &raw.console_sign_in_minutes,
                "console_sign_in_minutes",
                d.console_sign_in,
            )?,
            note_after_changes: raw.note_after_changes.unwrap_or(d.note_after_changes),
        };
        if limits.idle_limit > limits.hard_limit {
            let at = raw
                .idle_limit_minutes
                .as_ref()
                .map_or(s.span().start, |m| m.span().start);
            return Err(PolicyError {
                file: lines.file.to_owned(),
                line: Some(lines.line(at)),
                field: "session.idle_limit_minutes".into(),
                message: "the idle limit can't be longer than the hard limit".into(),
            });
        }
        let limits = SessionLimits {
            default_duration: limits.default_duration.min(limits.hard_limit),
            ..limits
        };
        Ok(limits)
    }

    /// The sentence template for a kind of customer activity, if the policy knows it.
    pub fn activity(&self, kind: &ActivityKind) -> Option<&ActivityTemplate> {
        self.activities.get(kind)
    }

    /// Every kind of customer activity the policy knows.
    pub fn activities(&self) -> impl Iterator<Item = (&ActivityKind, &ActivityTemplate)> {
        self.activities.iter()
    }

    /// The built-in starter policy.
    pub fn starter() -> Self {
        // DEFAULT_POLICY is a constant checked by `the_starter_policy_is_valid`.
        #[allow(clippy::expect_used)]
        Self::from_toml(DEFAULT_POLICY, "default policy").expect("the starter policy is valid")
    }

    /// A capability by name.
    pub fn capability(&self, name: &CapabilityName) -> Option<&Capability> {
        self.capabilities.get(name)
    }

    /// Every capability, in name order.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.capabilities.values()
    }

    /// Every route rule.
    pub fn routes(&self) -> &[Route] {
        self.routes.routes()
    }

    /// The masking rules, in file order.
    pub fn masking(&self) -> &[MaskingRule] {
        &self.masking
    }

    /// The flags that force approval and a code.
    pub fn sensitive_flags(&self) -> impl Iterator<Item = &AccountFlag> {
        self.sensitive_flags.iter()
    }

    /// The masking rules for a session with `scope`: each rule its scope reveals becomes
    /// `show` (and still says it reveals, for the record). Borrowed when it reveals none.
    pub fn masking_for(&self, scope: &Scope) -> std::borrow::Cow<'_, [MaskingRule]> {
        if !self
            .masking
            .iter()
            .any(|r| r.reveal.as_ref().is_some_and(|c| scope.allows(c)))
        {
            return std::borrow::Cow::Borrowed(&self.masking);
        }
        std::borrow::Cow::Owned(
            self.masking
                .iter()
                .map(|r| match &r.reveal {
                    Some(c) if scope.allows(c) => MaskingRule {
                        rule: MaskRule::Show,
                        ..r.clone()
                    },
                    _ => r.clone(),
                })
                .collect(),
        )
    }

    /// The capabilities of `scope` that reveal some masking rule.
    pub fn reveals_in(&self, scope: &Scope) -> Vec<CapabilityName> {
        let mut out: Vec<CapabilityName> = self
            .masking
            .iter()
            .filter_map(|r| r.reveal.clone())
            .filter(|c| scope.allows(c))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Capabilities that reveal a masked field below high risk: a reveal should need a
    /// lead's approval and the customer's code. `actas policy check` prints them.
    pub fn weak_reveals(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.masking {
            let Some(cap) = &r.reveal else { continue };
            let risk = self
                .capabilities
                .get(cap)
                .map_or(Risk::Forbidden, |c| c.risk);
            if risk < Risk::High {
                let line = format!(
                    "capabilities.{cap} reveals {} at {risk} risk; revealing a masked field should be high risk (a lead's approval and the customer's code)",
                    r.target_text()
                );
                if !out.contains(&line) {
                    out.push(line);
                }
            }
        }
        out
    }

    /// Masking rules that can never apply: another rule names the same place first (the
    /// same JSON path, selector or field). `actas policy check` prints them.
    pub fn shadowed_rules(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, r) in self.masking.iter().enumerate() {
            let same = self.masking[..i]
                .iter()
                .position(|earlier| earlier.target == r.target);
            if let Some(first) = same {
                let what = match &r.target {
                    Target::Json(p) => format!("json = {:?}", p.as_str()),
                    Target::Html(h) => format!("html = {h:?}"),
                    Target::Field(f) => format!("field = {:?}", f.as_str()),
                };
                out.push(format!(
                    "masking[{i}] ({what}, {}) never applies: masking[{first}] names the same place first",
                    r.rule
                ));
            }
        }
        out
    }

    /// How a form field or JSON member called `name` is shown: by a `field` rule, else by
    /// a top-level JSON rule (`$.name`), as a submitted form is recorded; `None` when no
    /// rule classifies it.
    pub fn field_rule(&self, name: &str) -> Option<MaskRule> {
        masking::field_rule(&self.masking, name).map(|r| r.rule)
    }

    /// Finds the route rule for a request's canonical path.
    pub fn route(&self, method: Method, path: &CanonicalPath) -> Option<RouteMatch> {
        self.routes.find(method, path)
    }

    /// Builds a scope from capability names, refusing unknown and forbidden ones.
    pub fn scope<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<Scope, ScopeRefusal> {
        let mut caps = Vec::new();
        for name in names {
            let cap = CapabilityName::parse(name.trim())
                .ok()
                .and_then(|c| self.capabilities.get(&c))
                .ok_or_else(|| ScopeRefusal::Unknown(name.to_owned()))?;
            if cap.risk == Risk::Forbidden {
                return Err(ScopeRefusal::Forbidden(cap.name.clone()));
            }
            caps.push(cap.name.clone());
        }
        Ok(Scope::new(caps))
    }

    /// Checks a requested duration in minutes; `None` gives the default.
    pub fn duration(&self, minutes: Option<u64>) -> Result<SessionDuration, ScopeRefusal> {
        let max = self.session.hard_limit.as_secs() / 60;
        match minutes {
            None => Ok(SessionDuration(self.session.default_duration)),
            Some(m) if m >= 1 && m <= max => Ok(SessionDuration(Duration::from_secs(m * 60))),
            Some(m) => Err(ScopeRefusal::Duration { given: m, max }),
        }
    }

    /// The highest risk in a scope. Capabilities no longer in the policy count as forbidden,
    /// so a stale scope can never be treated as harmless.
    pub fn risk_of(&self, scope: &Scope) -> Risk {
        scope
            .iter()
            .map(|c| self.capabilities.get(c).map_or(Risk::Forbidden, |c| c.risk))
            .max()
            .unwrap_or(Risk::Low)
    }

    /// Whether a scope allows exports and bulk downloads.
    pub fn allows_export(&self, scope: &Scope) -> bool {
        scope.iter().any(|c| {
            self.capabilities
                .get(c)
                .is_some_and(|c| c.export && c.risk != Risk::Forbidden)
        })
    }

    /// What approvals a request for `scope` on an account with `flags` and `consent` needs.
    /// Low risk on a normal account is approved by policy; medium and high need a lead;
    /// high, sensitive accounts and `code_required` also need the customer's code.
    pub fn assess<'a>(
        &self,
        scope: &Scope,
        flags: impl IntoIterator<Item = &'a AccountFlag>,
        consent: Consent,
    ) -> Assessment {
        let risk = self.risk_of(scope);
        let sensitive = flags.into_iter().any(|f| self.sensitive_flags.contains(f));
        Assessment {
            risk,
            needs_lead: risk >= Risk::Medium || sensitive,
            needs_code: risk >= Risk::High || sensitive || consent == Consent::CodeRequired,
        }
    }
}

#[cfg(test)]
mod tests;

/// A byte HTTP allows in a header name (RFC 9110 `tchar`), upper case aside.
fn is_header_name_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}
