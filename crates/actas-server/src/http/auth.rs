//! Who is calling: a personal API token (`Authorization: Bearer …`) or the console
//! cookie. Cookie requests that change state must also pass the CSRF and origin checks
//! (invariant 11), so a page on another origin — the gateway's included — can't act
//! with the staff member's cookie.

use super::AppState;
use super::error::ApiError;
use crate::service::access::{Auditor, Director, Lead};
use crate::service::auth::{Authenticated, Via};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, header};

/// The console cookie's name (HttpOnly, SameSite=Strict; `__Host-` and Secure over https).
pub const COOKIE: &str = "actas_console";
/// The cookie that binds a sign-in through the identity provider to the browser that
/// started it.
pub const BINDING_COOKIE: &str = "actas_sign_on";
/// The header carrying the CSRF token on cookie requests that change state.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authenticated staff member; the only way a handler gets one is through these checks.
pub struct Staff(pub Authenticated);

/// A cookie's value from a request's `Cookie` headers.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where the console is served from, which decides the cookie's name and flags and the
/// origin that state-changing requests must come from.
#[derive(Debug, Clone, Default)]
pub struct Site {
    /// The console's public origin (`https://support.example.com`), when configured;
    /// otherwise `http://` and the request's `Host`.
    pub origin: Option<String>,
}

impl Site {
    /// From the configured public URL of the console, if any.
    pub fn new(console_url: Option<&str>) -> Self {
        Self {
            origin: console_url
                .map(|u| u.trim_end_matches('/').to_owned())
                .filter(|u| !u.is_empty()),
        }
    }

    /// Whether the console is served over https.
    pub fn https(&self) -> bool {
        self.origin
            .as_deref()
            .is_some_and(|o| o.starts_with("https://"))
    }

    fn cookie_name(&self) -> String {
        if self.https() {
            format!("__Host-{COOKIE}")
        } else {
            COOKIE.to_owned()
        }
    }

    /// The console cookie's value from a request, if any.
    pub fn session_cookie<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie(headers, &self.cookie_name())
    }

    /// The `Set-Cookie` value for a sign-in (`max_age` 0 clears it): HttpOnly,
    /// SameSite=Strict, and over https `__Host-` prefixed and Secure.
    pub fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.https() { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
            self.cookie_name()
        )
    }

    fn binding_name(&self, key: &str) -> String {
        if self.https() {
            format!("__Host-{BINDING_COOKIE}_{key}")
        } else {
            format!("{BINDING_COOKIE}_{key}")
        }
    }

    /// The `Set-Cookie` value binding one sign-in through the identity provider (named by
    /// `key`, so sign-ins in two tabs don't spoil each other) to this browser (`max_age`
    /// 0 clears it). SameSite=Lax, not Strict: the provider sends the browser back with a
    /// cross-site navigation, which a Strict cookie would not join.
    pub fn binding_cookie(&self, key: &str, value: &str, max_age: u64) -> String {
        let secure = if self.https() { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            self.binding_name(key)
        )
    }

    /// The value of the binding cookie named by `key`, if the request has it.
    pub fn binding<'a>(&self, headers: &'a HeaderMap, key: &str) -> Option<&'a str> {
        cookie(headers, &self.binding_name(key))
    }

    /// Whether a cookie request that changes state comes from the console's own origin:
    /// `Origin` must be exactly the console's origin, and `Sec-Fetch-Site`, when sent,
    /// must be `same-origin`.
    pub fn same_origin(&self, headers: &HeaderMap) -> bool {
        let origin = headers.get(header::ORIGIN).and_then(|h| h.to_str().ok());
        let fetch_site = headers.get("sec-fetch-site").and_then(|h| h.to_str().ok());
        if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
            return false;
        }
        let Some(origin) = origin else {
            // No Origin (non-browser clients): the CSRF token alone decides.
            return true;
        };
        match &self.origin {
            Some(own) => origin == own,
            None => headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(|host| origin == format!("http://{host}")),
        }
    }
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let headers = &parts.headers;
        if let Some(auth) = headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
        {
            let token = auth
                .strip_prefix("Bearer ")
                .ok_or_else(|| ApiError::unauthenticated("use `Authorization: Bearer <token>`"))?;
            return Ok(Staff(
                state.service.authenticate_api_token(token.trim()).await?,
            ));
        }
        let token = state
            .site
            .session_cookie(headers)
            .ok_or_else(|| ApiError::unauthenticated("please sign in"))?;
        let who = state.service.authenticate_cookie(token).await?;
        let changes_state = !matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if changes_state {
            if !state.site.same_origin(headers) {
                return Err(ApiError::forbidden(
                    "this request came from another site, so it was refused",
                ));
            }
            let Via::Cookie { csrf, .. } = who.via() else {
                return Err(ApiError::unauthenticated("please sign in"));
            };
            let sent = headers
                .get(CSRF_HEADER)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
                return Err(ApiError::forbidden(
                    "the request is missing its CSRF token (reload the page and try again)",
                ));
            }
        }
        Ok(Staff(who))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request from one of the product's apps, authenticated by its app key
/// (`Authorization: Bearer actas_app_…`). Staff credentials are not accepted here, and
/// app keys are not accepted by [`Staff`].
#[derive(Debug, Clone)]
pub struct App(pub actas_core::app::AppRef);

impl FromRequestParts<AppState> for App {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = app_key(parts)?;
        Ok(App(state.service.authenticate_app(key).await?))
    }
}

/// Like [`App`], for `POST /api/v1/events` only: the key is looked up once and then
/// remembered, because recording the events checks in the same transaction that the key
/// is still live (a key revoked meanwhile gets 401 and nothing is written).
#[derive(Debug, Clone)]
pub struct ReportingApp(pub actas_core::app::AppRef);

impl FromRequestParts<AppState> for ReportingApp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = app_key(parts)?;
        Ok(ReportingApp(state.service.remembered_app(key).await?))
    }
}

fn app_key(parts: &Parts) -> Result<&str, ApiError> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::unauthenticated("send the app key as `Authorization: Bearer <app key>`")
        })
}

/// The signed-in caller in a role, or 403: taken before the rest of the request (its
/// query, its body) is read, so a caller without the role learns nothing from a 422.
async fn in_role<R>(
    parts: &mut Parts,
    state: &AppState,
    of: fn(&Authenticated) -> crate::service::ServiceResult<R>,
) -> Result<R, ApiError> {
    let Staff(who) = Staff::from_request_parts(parts, state).await?;
    Ok(of(&who)?)
}

impl FromRequestParts<AppState> for Lead {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        in_role(parts, state, Lead::of).await
    }
}

impl FromRequestParts<AppState> for Director {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        in_role(parts, state, Director::of).await
    }
}

impl FromRequestParts<AppState> for Auditor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        in_role(parts, state, Auditor::of).await
    }
}
