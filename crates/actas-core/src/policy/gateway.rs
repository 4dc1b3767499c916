//! The policy's `[gateway]` section: what the gateway does with what the routes don't
//! name — unnamed pages and changes, static assets, messages on live connections — how
//! paths are read (case, trailing slash), and which headers pass each way.

use super::routes::{Method, parse_route_key};
use super::{Capability, Lines, PolicyError, is_header_name_byte};
use crate::gateway::path::{CanonicalPath, TrailingSlash};
use crate::scope::CapabilityName;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use toml::Spanned;

/// How the gateway treats what the routes don't name (`[gateway]` in the policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRules {
    /// The capability a GET no route names needs; `None` blocks it. Default: `view`.
    pub unmatched_get: Option<CapabilityName>,
    /// The capability any other method no route names needs; `None` (the default) blocks it.
    pub unmatched_change: Option<CapabilityName>,
    /// Static assets (`static_assets`): forwarded without a ledger event, and passed on
    /// only if the answer is an asset the product marks as the same for every user.
    pub assets: Vec<AssetPattern>,
    /// Assets passed on without that mark (`trusted_assets`); `actas policy check` warns
    /// about each, since a script there could carry one customer's data unrecorded.
    pub trusted_assets: Vec<AssetPattern>,
    /// Response headers, beyond [`STANDARD_RESPONSE_HEADERS`], that the product may send
    /// through to the browser (lower case). Any other header it sends is dropped and
    /// counted, like an unclassified JSON field: it could carry what masking hides.
    pub response_headers: Vec<String>,
    /// Request headers, beyond [`STANDARD_REQUEST_HEADERS`], that the browser may send
    /// on to the product (lower case).
    pub request_headers: Vec<String>,
    /// The capability a message the browser sends on a live connection (WebSocket)
    /// needs; `None` (the default) sends none on.
    pub websocket_capability: Option<CapabilityName>,
    /// What a trailing slash means to the product.
    pub trailing_slash: TrailingSlash,
    /// Whether routes match paths letter case and all (`case_sensitive = true`). By
    /// default they don't, as many frameworks route `/Export.csv` like `/export.csv`.
    pub case_sensitive: bool,
    /// Content types passed unmasked on named routes (`[[gateway.pass_through]]`); every
    /// other type the gateway can't mask is refused.
    pub pass_through: PassThrough,
    /// Origins the product answers on besides the address the gateway reaches it at
    /// (`product_origins = ["https://app.example.com"]`): pages name their public URL,
    /// and links to any of these stay on the gateway.
    pub product_origins: Vec<String>,
    /// The product's cookies that pass, both ways (`cookies = ["session_id"]`): any
    /// other cookie the product sets is dropped (and listed by `actas policy
    /// unclassified`), and the browser's others are not sent on. actas's own cookies
    /// never pass, whatever this says.
    pub cookies: Vec<String>,
}

/// Whether a cookie name is one of actas's own (`actas_gw`, `__Host-actas_console`), in
/// any case and with any prefix a browser knows.
pub fn is_actas_cookie(name: &str) -> bool {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower
        .strip_prefix("__host-")
        .or_else(|| lower.strip_prefix("__secure-"))
        .unwrap_or(&lower);
    bare.starts_with("actas")
}

/// One `[[gateway.pass_through]]`: a route, and the content types its answers may have
/// that the gateway passes as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassRule {
    /// The method.
    pub method: Method,
    /// The path pattern.
    pub path: String,
    /// Content types (essences, lower case).
    pub content_types: Vec<String>,
}

/// The pass-through rules, compiled like routes.
#[derive(Clone, Default)]
pub struct PassThrough {
    rules: Vec<PassRule>,
    routers: HashMap<Method, matchit::Router<usize>>,
    case_sensitive: bool,
}

impl PartialEq for PassThrough {
    fn eq(&self, other: &Self) -> bool {
        self.rules == other.rules && self.case_sensitive == other.case_sensitive
    }
}

impl Eq for PassThrough {}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.rules).finish()
    }
}

impl PassThrough {
    /// Whether an answer of `essence` to `method path` passes as it is.
    pub fn passes(&self, method: Method, path: &CanonicalPath, essence: &str) -> bool {
        let key = if self.case_sensitive {
            path.for_matching().to_owned()
        } else {
            path.for_matching().to_ascii_lowercase()
        };
        let method = crate::gateway::routing_method(method);
        self.routers
            .get(&method)
            .and_then(|r| r.at(&key).ok())
            .and_then(|m| self.rules.get(*m.value))
            .is_some_and(|rule| rule.content_types.iter().any(|t| t == essence))
    }

    /// The rules, in file order.
    pub fn rules(&self) -> &[PassRule] {
        &self.rules
    }
}

/// Response headers that always pass from the product to the browser: what a page needs
/// to work and be cached, and its security policies. `Location` and `Set-Cookie` are
/// rewritten to stay on the gateway, and `Content-Length` and `Content-Type` are set anew
/// where a body is rewritten. Anything else — `Server`, `X-Request-Id`, a product's own
/// `X-…` headers, `Link`, `Refresh` — passes only if the policy names it.
pub const STANDARD_RESPONSE_HEADERS: &[&str] = &[
    "accept-ranges",
    "age",
    "allow",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-range",
    "content-security-policy",
    "content-security-policy-report-only",
    "content-type",
    "cross-origin-embedder-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
    "date",
    "etag",
    "expires",
    "last-modified",
    "location",
    "permissions-policy",
    "pragma",
    "referrer-policy",
    "retry-after",
    "set-cookie",
    "vary",
    "x-frame-options",
];

/// Request headers that pass from the agent's browser to the product: what content it
/// accepts, what it sends, conditional requests, where it comes from (for the product's
/// own CSRF checks) and the common CSRF token headers. The gateway sets `Host`,
/// `X-Forwarded-*`, `Cookie` (the product's own cookies only), `Accept-Encoding` and
/// `Actas-Assertion` itself. Everything else is dropped: `Range` and `If-Range` (an
/// answer cut to start inside a masked element), `X-Original-URL` and `X-Rewrite-URL`
/// (routing overrides), `X-HTTP-Method-Override`, `Authorization`, `X-Real-IP`, and any
/// name with an underscore, which CGI-style servers (Rack, WSGI, PHP) read as the same
/// header as its dashed spelling (`Actas_Assertion`).
pub const STANDARD_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "cache-control",
    "content-type",
    "dnt",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-unmodified-since",
    "origin",
    "pragma",
    "referer",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "upgrade-insecure-requests",
    "user-agent",
    "x-csrf-token",
    "x-csrftoken",
    "x-requested-with",
    "x-xsrf-token",
];

/// Request headers a policy may not add to the pass list: the gateway sets them itself,
/// or they change the shape of the answer, or the route the product takes.
const REQUEST_HEADERS_NEVER: &[&str] = &[
    "host",
    "cookie",
    "forwarded",
    "range",
    "if-range",
    "accept-encoding",
    "content-length",
    "content-encoding",
    "transfer-encoding",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "proxy-authorization",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "expect",
];

/// The static asset patterns used when the policy names none.
pub const DEFAULT_STATIC_ASSETS: &[&str] = &[
    ".css", ".js", ".mjs", ".png", ".jpg", ".jpeg", ".gif", ".svg", ".ico", ".woff", ".woff2",
    ".webp",
];

/// A pattern naming static assets: a path ending (`.css`), a folder (`/static/`) or
/// one path (`/favicon.ico`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetPattern {
    /// Paths ending so, e.g. `.css`.
    Ending(String),
    /// Paths under a folder, e.g. `/static/`.
    Folder(String),
    /// One path, e.g. `/favicon.ico`.
    Path(String),
}

impl AssetPattern {
    /// Reads `.css`, `/static/` or `/favicon.ico`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(rest) = t.strip_prefix('.') {
            if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(format!(
                    "{t:?} is not a file ending such as \".css\" (letters and digits after the dot)"
                ));
            }
            return Ok(AssetPattern::Ending(t.to_ascii_lowercase()));
        }
        if t.starts_with('/') {
            // A folder keeps its slash: "/static/" must not match "/static-reports".
            let canonical = CanonicalPath::parse(t, TrailingSlash::Keep)
                .map_err(|e| format!("{t:?} can't be used: {e}"))?;
            if canonical.changed || t == "/" {
                return Err(format!(
                    "write {t:?} in its plain form, such as \"/static/\" or \"/favicon.ico\""
                ));
            }
            return Ok(if t.ends_with('/') {
                AssetPattern::Folder(t.to_owned())
            } else {
                AssetPattern::Path(t.to_owned())
            });
        }
        Err(format!(
            "{t:?} is neither a file ending (\".css\"), a folder (\"/static/\") nor a path (\"/favicon.ico\")"
        ))
    }

    /// Whether the canonical `path` is one of these assets; letter case counts only
    /// where the routes' does.
    pub fn matches(&self, path: &str, case_sensitive: bool) -> bool {
        let starts = |p: &str| {
            path.get(..p.len()).is_some_and(|head| {
                if case_sensitive {
                    head == p
                } else {
                    head.eq_ignore_ascii_case(p)
                }
            })
        };
        match self {
            AssetPattern::Ending(e) => path
                .len()
                .checked_sub(e.len())
                .and_then(|at| path.get(at..))
                .is_some_and(|tail| tail.eq_ignore_ascii_case(e)),
            AssetPattern::Folder(f) => starts(f) && path.len() > f.len(),
            AssetPattern::Path(p) => starts(p) && path.len() == p.len(),
        }
    }
}

impl std::fmt::Display for AssetPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AssetPattern::Ending(s) | AssetPattern::Folder(s) | AssetPattern::Path(s) => {
                f.write_str(s)
            }
        }
    }
}

/// Whether an asset must prove it is one, or is trusted as named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssetTrust {
    /// Passed on only if its answer is an asset the product marks as the same for
    /// every user.
    MustBePublic,
    /// Named in `trusted_assets`: passed on if its answer is an asset, marked or not.
    Trusted,
}

impl Default for GatewayRules {
    fn default() -> Self {
        Self {
            unmatched_get: Some(CapabilityName::view()),
            unmatched_change: None,
            assets: DEFAULT_STATIC_ASSETS
                .iter()
                .map(|s| AssetPattern::Ending((*s).to_owned()))
                .collect(),
            trusted_assets: Vec::new(),
            response_headers: Vec::new(),
            request_headers: Vec::new(),
            websocket_capability: None,
            trailing_slash: TrailingSlash::Remove,
            case_sensitive: false,
            pass_through: PassThrough::default(),
            product_origins: Vec::new(),
            cookies: Vec::new(),
        }
    }
}

impl GatewayRules {
    /// Whether the canonical `path` names a static asset, and how far it is trusted.
    pub fn asset(&self, path: &CanonicalPath) -> Option<AssetTrust> {
        let p = path.for_matching();
        if self
            .trusted_assets
            .iter()
            .any(|a| a.matches(p, self.case_sensitive))
        {
            Some(AssetTrust::Trusted)
        } else if self
            .assets
            .iter()
            .any(|a| a.matches(p, self.case_sensitive))
        {
            Some(AssetTrust::MustBePublic)
        } else {
            None
        }
    }

    /// Whether the product's response header `name` (lower case, as HTTP libraries give
    /// it) may reach the browser. `Actas-*` never does, whatever the policy says.
    pub fn passes_response_header(&self, name: &str) -> bool {
        !name.starts_with("actas-")
            && (STANDARD_RESPONSE_HEADERS.contains(&name)
                || self.response_headers.iter().any(|h| h == name))
    }

    /// Whether the browser's request header `name` (lower case) may reach the product:
    /// only those on the pass list, never `Actas-*`, and never a name with an underscore.
    pub fn passes_request_header(&self, name: &str) -> bool {
        !name.contains('_')
            && !name.starts_with("actas-")
            && (STANDARD_REQUEST_HEADERS.contains(&name)
                || self.request_headers.iter().any(|h| h == name))
    }

    /// What `actas policy check` should point out: rules that are valid but weaken a
    /// guarantee.
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .trusted_assets
            .iter()
            .map(|a| {
                format!(
                    "gateway.trusted_assets: {a} is passed on without the product marking it the same for every user; a script or image there that carries one customer's data would reach the agent without being recorded"
                )
            })
            .collect();
        for rule in self.pass_through.rules() {
            out.push(format!(
                "gateway.pass_through: {} {} passes {} as it is, unmasked and unchecked",
                rule.method,
                rule.path,
                rule.content_types.join(", ")
            ));
        }
        if self.request_headers.iter().any(|h| h == "authorization") {
            out.push(
                "gateway.request_headers: authorization passes to the product; in a session the product should trust the Actas-Assertion, not a token the agent's browser holds".to_owned(),
            );
        }
        out
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGateway {
    unmatched_get: Option<Spanned<String>>,
    unmatched_change: Option<Spanned<String>>,
    static_assets: Option<Vec<Spanned<String>>>,
    trusted_assets: Option<Vec<Spanned<String>>>,
    response_headers: Option<Vec<Spanned<String>>>,
    request_headers: Option<Vec<Spanned<String>>>,
    websocket_capability: Option<Spanned<String>>,
    trailing_slash: Option<Spanned<String>>,
    case_sensitive: Option<bool>,
    pass_through: Option<Vec<Spanned<RawPassThrough>>>,
    cookies: Option<Vec<Spanned<String>>>,
    product_origins: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPassThrough {
    route: Spanned<String>,
    content_types: Vec<Spanned<String>>,
}

impl RawGateway {
    /// Checks the section against the capabilities defined.
    pub(super) fn check(
        &self,
        lines: &Lines<'_>,
        capabilities: &BTreeMap<CapabilityName, Capability>,
    ) -> Result<GatewayRules, PolicyError> {
        let d = GatewayRules::default();
        let capability = |v: &Spanned<String>, name: &str| -> Result<CapabilityName, PolicyError> {
            CapabilityName::parse(v.get_ref())
                .ok()
                .filter(|c| capabilities.contains_key(c))
                .ok_or_else(|| {
                    lines.err(
                        v,
                        format!("gateway.{name}"),
                        format!(
                            "give \"block\" or a capability defined above, not {:?}",
                            v.get_ref()
                        ),
                    )
                })
        };
        let unmatched = |v: &Option<Spanned<String>>,
                         name: &str,
                         default: Option<CapabilityName>|
         -> Result<Option<CapabilityName>, PolicyError> {
            match v {
                None => Ok(default),
                Some(v) if v.get_ref() == "block" => Ok(None),
                Some(v) => capability(v, name).map(Some),
            }
        };
        let patterns = |list: &Option<Vec<Spanned<String>>>,
                        name: &str|
         -> Result<Option<Vec<AssetPattern>>, PolicyError> {
            list.as_ref()
                .map(|list| {
                    list.iter()
                        .enumerate()
                        .map(|(i, s)| {
                            AssetPattern::parse(s.get_ref())
                                .map_err(|e| lines.err(s, format!("gateway.{name}[{i}]"), e))
                        })
                        .collect()
                })
                .transpose()
        };
        let websocket_capability = match &self.websocket_capability {
            None => None,
            Some(v) if v.get_ref() == "block" => None,
            Some(v) => {
                let cap = capability(v, "websocket_capability")?;
                if cap == CapabilityName::view() {
                    return Err(lines.err(
                        v,
                        "gateway.websocket_capability",
                        "a message sent on a live connection can change things, so it needs a capability other than view",
                    ));
                }
                Some(cap)
            }
        };
        let trailing_slash = match &self.trailing_slash {
            None => TrailingSlash::Remove,
            Some(v) => match v.get_ref().as_str() {
                "remove" => TrailingSlash::Remove,
                "keep" => TrailingSlash::Keep,
                other => {
                    return Err(lines.err(
                        v,
                        "gateway.trailing_slash",
                        format!("give \"remove\" or \"keep\", not {other:?}"),
                    ));
                }
            },
        };
        let case_sensitive = self.case_sensitive.unwrap_or(false);
        let mut pass_through = PassThrough {
            case_sensitive,
            ..PassThrough::default()
        };
        for (i, raw) in self.pass_through.iter().flatten().enumerate() {
            let field = format!("gateway.pass_through[{i}]");
            let r = raw.get_ref();
            let (method, path) = parse_route_key(r.route.get_ref())
                .map_err(|e| lines.err(&r.route, format!("{field}.route"), e))?;
            let mut types = Vec::new();
            for (j, t) in r.content_types.iter().enumerate() {
                let e = crate::gateway::answer::essence(t.get_ref());
                if !e.contains('/') || e.contains(' ') {
                    return Err(lines.err(
                        t,
                        format!("{field}.content_types[{j}]"),
                        format!(
                            "{:?} is not a content type such as \"application/pdf\"",
                            t.get_ref()
                        ),
                    ));
                }
                if matches!(e.as_str(), "text/html" | "application/xhtml+xml") {
                    return Err(lines.err(
                        t,
                        format!("{field}.content_types[{j}]"),
                        "pages are always masked and can't be passed as they are",
                    ));
                }
                types.push(e);
            }
            let key = if case_sensitive {
                path.clone()
            } else {
                path.to_ascii_lowercase()
            };
            let index = pass_through.rules.len();
            pass_through
                .routers
                .entry(method)
                .or_default()
                .insert(key, index)
                .map_err(|e| lines.err(&r.route, format!("{field}.route"), e.to_string()))?;
            pass_through.rules.push(PassRule {
                method,
                path,
                content_types: types,
            });
        }
        let mut cookies = Vec::new();
        for (i, c) in self.cookies.iter().flatten().enumerate() {
            let name = c.get_ref().trim();
            let field = format!("gateway.cookies[{i}]");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
            {
                return Err(lines.err(c, field, format!("{name:?} is not a cookie name")));
            }
            if is_actas_cookie(name) {
                return Err(lines.err(
                    c,
                    field,
                    "cookies named actas… are actas's own and never pass",
                ));
            }
            cookies.push(name.to_owned());
        }
        let mut product_origins = Vec::new();
        for (i, o) in self.product_origins.iter().flatten().enumerate() {
            let text = o.get_ref().trim();
            match url::Url::parse(text) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                    product_origins.push(u.origin().ascii_serialization());
                }
                _ => {
                    return Err(lines.err(
                        o,
                        format!("gateway.product_origins[{i}]"),
                        format!("{text:?} is not an origin such as \"https://app.example.com\""),
                    ));
                }
            }
        }
        Ok(GatewayRules {
            product_origins,
            cookies,
            pass_through,
            unmatched_get: unmatched(&self.unmatched_get, "unmatched_get", d.unmatched_get)?,
            unmatched_change: unmatched(
                &self.unmatched_change,
                "unmatched_change",
                d.unmatched_change,
            )?,
            assets: patterns(&self.static_assets, "static_assets")?.unwrap_or(d.assets),
            trusted_assets: patterns(&self.trusted_assets, "trusted_assets")?.unwrap_or_default(),
            response_headers: header_names(lines, &self.response_headers, Direction::Response)?,
            request_headers: header_names(lines, &self.request_headers, Direction::Request)?,
            websocket_capability,
            trailing_slash,
            case_sensitive,
        })
    }
}

/// Which way a list of headers passes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    /// From the product to the browser.
    Response,
    /// From the browser to the product.
    Request,
}

/// A list of header names, lower-cased.
fn header_names(
    lines: &Lines<'_>,
    list: &Option<Vec<Spanned<String>>>,
    direction: Direction,
) -> Result<Vec<String>, PolicyError> {
    let name = match direction {
        Direction::Response => "response_headers",
        Direction::Request => "request_headers",
    };
    let request = direction == Direction::Request;
    list.iter()
        .flatten()
        .enumerate()
        .map(|(i, h)| {
            let header = h.get_ref().trim().to_ascii_lowercase();
            let field = format!("gateway.{name}[{i}]");
            if header.is_empty() || !header.bytes().all(is_header_name_byte) {
                Err(lines.err(
                    h,
                    field,
                    format!("{:?} is not an HTTP header name", h.get_ref()),
                ))
            } else if header.starts_with("actas-") {
                Err(lines.err(
                    h,
                    field,
                    if request {
                        "Actas-* headers are actas's own and never pass to the product"
                    } else {
                        "Actas-* headers are actas's own and never pass to the browser"
                    },
                ))
            } else if request && header.contains('_') {
                Err(lines.err(
                    h,
                    field,
                    "a name with an underscore is read by CGI-style servers as another header's, so it never passes",
                ))
            } else if request
                && (REQUEST_HEADERS_NEVER.contains(&header.as_str())
                    || header.starts_with("x-forwarded-"))
            {
                Err(lines.err(
                    h,
                    field,
                    format!(
                        "{header} is set by the gateway or changes what the product answers, so it can't be passed on"
                    ),
                ))
            } else {
                Ok(header)
            }
        })
        .collect()
}
