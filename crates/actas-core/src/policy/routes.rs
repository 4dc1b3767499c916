//! Routes of the product, mapped to capabilities: `"POST /settings/tax"` → `edit_settings`.
//!
//! Compiled once into one radix tree per HTTP method (`matchit`), so matching a request is
//! a tree walk, not a scan over every rule. Routes match canonical paths only
//! ([`CanonicalPath`]), and by default without regard to letter case: many frameworks
//! route `/Export.csv` as `/export.csv`, so a rule must catch both.

use crate::gateway::path::{CanonicalPath, TrailingSlash};
use crate::scope::CapabilityName;
use std::collections::HashMap;
use std::fmt;

/// Why a route rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// Not `METHOD /path`.
    #[error(
        "a route is written \"METHOD /path/{{param}}\", e.g. \"POST /settings/tax\"; got {0:?}"
    )]
    Shape(String),
    /// An unknown method.
    #[error(
        "{0:?} is not an HTTP method this gateway routes (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)"
    )]
    Method(String),
    /// A `HEAD` route: `HEAD` is always matched as the `GET` it stands for.
    #[error("a HEAD request is matched as the GET it stands for: write the route as GET")]
    Head,
    /// The path pattern is malformed or overlaps another route.
    #[error("the path {path:?} can't be used: {why}")]
    Path {
        /// The path pattern.
        path: String,
        /// What the router said.
        why: String,
    },
    /// The path is not written in its canonical form.
    #[error("write the path as {canonical:?}: that is how the gateway reads {path:?}")]
    NotCanonical {
        /// The path pattern.
        path: String,
        /// How it would be read.
        canonical: String,
    },
    /// The description uses a `{name}` the path does not have.
    #[error("the description uses {{{0}}}, but the route has no such parameter")]
    Placeholder(String),
}

/// An HTTP method the gateway routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// PATCH
    Patch,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
}

impl Method {
    /// Parses an upper-case method name.
    pub fn parse(text: &str) -> Result<Self, RouteError> {
        Ok(match text {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            other => return Err(RouteError::Method(other.to_owned())),
        })
    }

    /// Whether the method is meant to change nothing (GET, HEAD, OPTIONS).
    pub fn is_safe(self) -> bool {
        matches!(self, Method::Get | Method::Head | Method::Options)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        })
    }
}

/// One route rule after checking.
#[derive(Debug, Clone)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path pattern, e.g. `/loans/{id}`.
    pub path: String,
    /// The capability that allows it.
    pub capability: CapabilityName,
    /// Plain-language template such as "changed the tax settings of loan {id}".
    pub description: String,
    /// What the route's answers and submissions may carry beyond the defaults.
    pub allows: RouteAllows,
    /// For a signed action (`signed_action = true`), the page whose form or JSON holds
    /// the values it changes (`current`, by default the route's own path), as a pattern
    /// that may use the route's parameters: the agent confirms the change from those
    /// values to the new ones.
    pub signed: Option<String>,
}

/// What a route allows beyond the gateway's defaults (each is a risk the policy takes
/// knowingly, listed by `actas policy check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RouteAllows {
    /// The product treats a field left out of a submission as unchanged, so a masked
    /// field sent back as its placeholder is dropped instead of refusing the submission
    /// (`partial_forms = true`).
    pub partial_forms: bool,
    /// Inline scripts that are not JSON data, and script templates, are kept in its pages
    /// (`inline_scripts = true`); they could carry the customer's data unmasked.
    pub inline_scripts: bool,
}

/// A request matched to its rule, with the description filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The capability needed.
    pub capability: CapabilityName,
    /// The description with the path's parameters filled in.
    pub description: String,
    /// What the route allows beyond the defaults.
    pub allows: RouteAllows,
    /// For a signed action, the path to read its current values from (parameters
    /// filled in).
    pub signed: Option<String>,
}

/// All route rules, compiled.
#[derive(Clone, Default)]
pub struct RouteTable {
    routers: HashMap<Method, matchit::Router<usize>>,
    /// The rules whose last segment has an extension, under their path without it
    /// (`/transactions/export` for `/transactions/export.csv`).
    stems: HashMap<Method, matchit::Router<usize>>,
    routes: Vec<Route>,
    case_sensitive: bool,
}

impl fmt::Debug for RouteTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteTable")
            .field("routes", &self.routes)
            .finish()
    }
}

/// Splits `"POST /settings/tax"` into its method and path.
pub fn parse_route_key(text: &str) -> Result<(Method, String), RouteError> {
    let (method, path) = text
        .trim()
        .split_once(' ')
        .ok_or_else(|| RouteError::Shape(text.to_owned()))?;
    let path = path.trim();
    if !path.starts_with('/') || path.contains(' ') {
        return Err(RouteError::Shape(text.to_owned()));
    }
    Ok((Method::parse(method)?, path.to_owned()))
}

fn placeholders(template: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                out.push(after[..end].trim_start_matches('*').to_owned());
                rest = &after[end + 1..];
            }
            None => break,
        }
    }
    out
}

/// `path` without the last extension of its last segment (`/a/b.tar.gz` → `/a/b.tar`),
/// if it has one; a segment that is only an extension (`/.env`) keeps it.
fn without_extension(path: &str) -> Option<&str> {
    let segment_start = path.rfind('/')? + 1;
    let dot = path[segment_start..].rfind('.')?;
    (dot > 0).then(|| &path[..segment_start + dot])
}

/// A route pattern with each `{param}` (and `{*rest}`) replaced by the word `param`.
fn without_params(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_param = false;
    for c in pattern.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("param");
            }
            '}' => in_param = false,
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// The literal parts of a route pattern in lower case; `{param}` names kept.
fn lower_literals(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_param = false;
    for c in pattern.chars() {
        match c {
            '{' => in_param = true,
            '}' => in_param = false,
            _ => {}
        }
        out.push(if in_param { c } else { c.to_ascii_lowercase() });
    }
    out
}

impl RouteTable {
    /// An empty table; `case_sensitive` makes routes match letter case exactly.
    pub fn new(case_sensitive: bool) -> Self {
        Self {
            case_sensitive,
            ..Self::default()
        }
    }

    /// Adds a rule; fails on a path not written canonically, a bad path, an overlap
    /// (in the table's case rule), or an unknown placeholder.
    pub fn insert(&mut self, route: Route) -> Result<(), RouteError> {
        if route.method == Method::Head {
            return Err(RouteError::Head);
        }
        // Checked with each `{param}` as a plain word: the pattern's literal parts must be
        // spelled as the gateway reads requests.
        let literal = without_params(&route.path);
        let canonical = CanonicalPath::parse(&literal, TrailingSlash::Remove).map_err(|e| {
            RouteError::Path {
                path: route.path.clone(),
                why: e.to_string(),
            }
        })?;
        if canonical.changed {
            return Err(RouteError::NotCanonical {
                path: route.path.clone(),
                canonical: canonical.path.as_str().to_owned(),
            });
        }
        let params = placeholders(&route.path);
        if let Some(current) = &route.signed {
            let literal = without_params(current);
            let canonical = CanonicalPath::parse(&literal, TrailingSlash::Remove).map_err(|e| {
                RouteError::Path {
                    path: current.clone(),
                    why: e.to_string(),
                }
            })?;
            if canonical.changed {
                return Err(RouteError::NotCanonical {
                    path: current.clone(),
                    canonical: canonical.path.as_str().to_owned(),
                });
            }
        }
        let templates = route
            .signed
            .iter()
            .chain(std::iter::once(&route.description));
        for used in templates.flat_map(|t| placeholders(t)) {
            if !params.contains(&used) {
                return Err(RouteError::Placeholder(used));
            }
        }
        let index = self.routes.len();
        let key = if self.case_sensitive {
            route.path.clone()
        } else {
            lower_literals(&route.path)
        };
        if let Some(stem) = without_extension(&key).filter(|_| !key.ends_with('}')) {
            // Two rules with one stem (`/x.csv`, `/x.pdf`): the first keeps it; both
            // still match as written.
            let _ = self
                .stems
                .entry(route.method)
                .or_default()
                .insert(stem.to_owned(), index);
        }
        self.routers
            .entry(route.method)
            .or_default()
            .insert(key, index)
            .map_err(|e| RouteError::Path {
                path: route.path.clone(),
                why: e.to_string(),
            })?;
        self.routes.push(route);
        Ok(())
    }

    /// Finds the rule for a request's canonical path, if any. Parameters are filled in
    /// as the path spells them, whatever the case rule.
    ///
    /// Frameworks also route a path with a format suffix to the same action (Rails'
    /// `(.:format)`, Spring's suffix matching): `/transactions/export.json` and
    /// `/transactions/export` reach `GET /transactions/export.csv`, and `/access.json`
    /// reaches `GET /access`. So when no rule names the path as it is, its last segment
    /// is tried without its extensions, one at a time, against the rules and against
    /// their paths without extensions.
    pub fn find(&self, method: Method, path: &CanonicalPath) -> Option<RouteMatch> {
        let path = path.for_matching();
        // A canonical path is ASCII, so lower-casing keeps every byte where it was and a
        // parameter's place in the lower-cased path is its place in the real one.
        let lowered;
        let key = if self.case_sensitive {
            path
        } else {
            lowered = path.to_ascii_lowercase();
            lowered.as_str()
        };
        let mut candidate = key;
        loop {
            for routers in [&self.routers, &self.stems] {
                if let Some(found) = self.found(routers, method, path, key, candidate) {
                    return Some(found);
                }
            }
            candidate = without_extension(candidate)?;
        }
    }

    fn found(
        &self,
        routers: &HashMap<Method, matchit::Router<usize>>,
        method: Method,
        path: &str,
        key: &str,
        candidate: &str,
    ) -> Option<RouteMatch> {
        let matched = routers.get(&method)?.at(candidate).ok()?;
        let route = self.routes.get(*matched.value)?;
        let mut description = route.description.clone();
        let mut signed = route.signed.clone();
        for (name, value) in matched.params.iter() {
            // `candidate` is a prefix of `key`, so places in it are places in `path`.
            let start = (value.as_ptr() as usize).checked_sub(key.as_ptr() as usize)?;
            let value = path.get(start..start + value.len())?;
            for template in std::iter::once(&mut description).chain(signed.as_mut()) {
                *template = template
                    .replace(&format!("{{{name}}}"), value)
                    .replace(&format!("{{*{name}}}"), value);
            }
        }
        Some(RouteMatch {
            capability: route.capability.clone(),
            description,
            allows: route.allows,
            signed,
        })
    }

    /// Every rule, in file order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(key: &str, cap: &str, desc: &str) -> Route {
        let (method, path) = parse_route_key(key).expect("key");
        Route {
            method,
            path,
            capability: CapabilityName::parse(cap).expect("cap"),
            description: desc.to_owned(),
            allows: RouteAllows::default(),
            signed: None,
        }
    }

    #[test]
    fn matches_by_method_and_fills_in_parameters() {
        let mut t = RouteTable::new(false);
        t.insert(route(
            "POST /loans/{id}/terms",
            "edit_loans",
            "changed the terms of loan {id}",
        ))
        .expect("ok");
        t.insert(route("GET /loans/{id}", "view", "viewed loan {id}"))
            .expect("ok");
        let m = t
            .find(Method::Post, &path("/loans/LA-77/terms"))
            .expect("match");
        assert_eq!(m.capability.as_str(), "edit_loans");
        assert_eq!(m.description, "changed the terms of loan LA-77");
        assert!(
            t.find(Method::Delete, &path("/loans/LA-77/terms"))
                .is_none()
        );
        assert!(t.find(Method::Post, &path("/loans")).is_none());
    }

    fn path(p: &str) -> CanonicalPath {
        CanonicalPath::parse(p, TrailingSlash::Remove)
            .expect("canonical")
            .path
    }

    #[test]
    fn letter_case_counts_only_where_the_policy_says_so() {
        let mut loose = RouteTable::new(false);
        loose
            .insert(route("GET /Loans/{id}", "view", "viewed loan {id}"))
            .expect("ok");
        let m = loose
            .find(Method::Get, &path("/LOANS/La-77"))
            .expect("match");
        assert_eq!(m.description, "viewed loan La-77", "the id as it was sent");
        assert!(
            loose.insert(route("GET /loans/{id}", "view", "x")).is_err(),
            "two rules that differ only in case overlap"
        );
        let mut exact = RouteTable::new(true);
        exact
            .insert(route("GET /Loans/{id}", "view", "viewed loan {id}"))
            .expect("ok");
        assert!(exact.find(Method::Get, &path("/loans/LA-77")).is_none());
        assert!(exact.find(Method::Get, &path("/Loans/LA-77")).is_some());
    }

    #[test]
    fn a_format_suffix_reaches_the_rule_it_would_reach_in_the_product() {
        let mut t = RouteTable::new(false);
        t.insert(route(
            "GET /transactions/export.csv",
            "export",
            "downloaded the export",
        ))
        .expect("ok");
        t.insert(route("GET /access", "account_access", "opened access"))
            .expect("ok");
        t.insert(route("GET /loans/{id}", "view", "viewed loan {id}"))
            .expect("ok");
        for p in [
            "/transactions/export.csv",
            "/transactions/export.json",
            "/transactions/export",
            "/transactions/export.csv.zip",
            "/Transactions/Export.XLSX",
        ] {
            assert_eq!(
                t.find(Method::Get, &path(p))
                    .map(|m| m.capability.to_string()),
                Some("export".to_owned()),
                "{p}"
            );
        }
        for p in ["/access.json", "/access.html", "/ACCESS.xml"] {
            assert_eq!(
                t.find(Method::Get, &path(p))
                    .map(|m| m.capability.to_string()),
                Some("account_access".to_owned()),
                "{p}"
            );
        }
        let m = t
            .find(Method::Get, &path("/loans/LA-7.json"))
            .expect("loan");
        assert_eq!(m.description, "viewed loan LA-7.json");
        assert!(t.find(Method::Get, &path("/transactions")).is_none());
        assert!(t.find(Method::Get, &path("/.env")).is_none());
        assert_eq!(without_extension("/a/b.tar.gz"), Some("/a/b.tar"));
        assert_eq!(without_extension("/a/.env"), None);
        assert_eq!(without_extension("/a.b/c"), None);
    }

    #[test]
    fn rules_are_written_in_canonical_form() {
        let mut t = RouteTable::new(false);
        for bad in [
            "GET /access/",
            "GET //access",
            "GET /a/../access",
            "GET /%61ccess",
        ] {
            assert!(
                matches!(
                    t.insert(route(bad, "view", "x")),
                    Err(RouteError::NotCanonical { .. })
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            t.insert(route("GET /a;b", "view", "x")),
            Err(RouteError::Path { .. })
        ));
    }

    #[test]
    fn bad_rules_are_refused_with_the_reason() {
        assert!(matches!(
            parse_route_key("/no-method"),
            Err(RouteError::Shape(_))
        ));
        assert!(matches!(
            parse_route_key("FETCH /x"),
            Err(RouteError::Method(_))
        ));
        let mut t = RouteTable::new(false);
        let err = t
            .insert(route("GET /a/{id}", "view", "saw {name}"))
            .expect_err("placeholder");
        assert_eq!(err, RouteError::Placeholder("name".into()));
        t.insert(route("GET /a/{id}", "view", "saw {id}"))
            .expect("ok");
        assert!(matches!(
            t.insert(route("GET /a/{other}", "view", "x")),
            Err(RouteError::Path { .. })
        ));
    }
}
