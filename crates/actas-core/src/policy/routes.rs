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
}

/// A request matched to its rule, with the description filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    /// The capability needed.
    pub capability: CapabilityName,
    /// The description with the path's parameters filled in.
    pub description: String,
}

/// All route rules, compiled.
#[derive(Clone, Default)]
pub struct RouteTable {
    routers: HashMap<Method, matchit::Router<usize>>,
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
        let canonical = CanonicalPath::parse(&route.path, TrailingSlash::Remove).map_err(|e| {
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
        for used in placeholders(&route.description) {
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
        let matched = self.routers.get(&method)?.at(key).ok()?;
        let route = self.routes.get(*matched.value)?;
        let mut description = route.description.clone();
        for (name, value) in matched.params.iter() {
            let start = (value.as_ptr() as usize).checked_sub(key.as_ptr() as usize)?;
            let value = path.get(start..start + value.len())?;
            description = description.replace(&format!("{{{name}}}"), value);
            description = description.replace(&format!("{{*{name}}}"), value);
        }
        Some(RouteMatch {
            capability: route.capability.clone(),
            description,
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
