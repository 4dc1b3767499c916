//! Phase 4, `response_filter`: the product's answer is classified once, from what the
//! gateway can check, and every later phase acts on that class, never on the headers
//! again. An answer is HTML, JSON or an event stream (masked), an asset (passed on as it
//! is, and only if it proves to be one), or passed on as it is — or it is refused: a
//! download without an export scope, a body that says nothing of what it is, a body
//! packed so it can't be read.
//!
//! An asset is forwarded unrecorded, so its answer must be one: an image, a font, a
//! style sheet or a script, that the product marks as the same for every user
//! (`Cache-Control: public`, or a `max-age` without `private` or `no-store`; no
//! `Set-Cookie`; no `Vary` on `Cookie` or `Authorization`). Anything else on an asset path
//! is refused and recorded: a script or an SVG that carries one customer's data is not an
//! asset. `trusted_assets` in the policy skip the mark, never the type.

use super::context::ProxyCtx;
use super::error::{AnswerRefusal, GatewayError};
use super::{GatewayState, rewrite};
use actas_core::gateway::ForwardKind;
use actas_core::policy::{AssetTrust, GatewayRules};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use std::collections::BTreeSet;

/// What the answer is, decided once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// HTML (and XHTML, sent on as HTML): streamed through the masking rewriter.
    Html,
    /// JSON: read whole and masked.
    Json,
    /// Server-sent events: masked event by event.
    Events,
    /// A static asset that proved to be one: passed on as it is.
    Asset,
    /// Anything else, passed on as it is.
    Passed,
}

impl Class {
    /// Whether the body is rewritten (so its length is not the product's).
    pub(super) fn rewritten(self) -> bool {
        matches!(self, Class::Html | Class::Json | Class::Events)
    }
}

/// The product's answer and its class.
pub(super) struct Answer {
    /// What it is.
    pub(super) class: Class,
    /// The answer, body still unread.
    pub(super) upstream: reqwest::Response,
    /// Its content type, lower case (empty if none).
    pub(super) content_type: String,
}

pub(super) async fn response_filter(
    state: &GatewayState,
    ctx: &ProxyCtx,
    mut upstream: reqwest::Response,
) -> Result<Answer, GatewayError> {
    let headers = upstream.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let status = upstream.status();
    if let Some(ForwardKind::Asset(trust)) = ctx.forwarded {
        // Only "not modified" passes unexamined: the browser shows what it cached, which
        // passed this check before. A redirect could send the browser off the gateway to
        // the customer's file, and a HEAD's headers (a file name, a cookie) say as much
        // as a body, so both are checked or refused like any answer.
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            return Err(GatewayError::Answer(AnswerRefusal::NotAnAsset(
                "the product answered with a redirect".into(),
            )));
        }
        if status != StatusCode::NOT_MODIFIED {
            proves_asset(headers, &content_type, trust)
                .map_err(|why| GatewayError::Answer(AnswerRefusal::NotAnAsset(why)))?;
        }
        return Ok(Answer {
            class: Class::Asset,
            upstream,
            content_type,
        });
    }
    let attachment = headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|d| d.to_ascii_lowercase().starts_with("attachment"));
    let session = ctx.session.as_ref().ok_or(GatewayError::Internal(
        "the answer came back without a session",
    ))?;
    let policy = state.service.policy();
    if (attachment || content_type.starts_with("text/csv"))
        && !policy.allows_export(&session.session.info().scope)
    {
        return Err(GatewayError::Answer(AnswerRefusal::Export));
    }
    // XHTML is read as HTML by the rewriter, and sent on as text/html so the browser reads
    // it the same way (the banner is HTML, not XML).
    let class = if content_type.starts_with("text/html")
        || content_type.starts_with("application/xhtml+xml")
    {
        Class::Html
    } else if content_type.starts_with("application/json") || content_type.contains("+json") {
        Class::Json
    } else if content_type.starts_with("text/event-stream") {
        Class::Events
    } else {
        Class::Passed
    };
    // A browser would guess what an untyped body is, and might show it as a page: one
    // that was never masked and carries no banner. Only one that turns out empty passes.
    if content_type.is_empty()
        && may_have_body(status, &upstream)
        && !matches!(upstream.chunk().await, Ok(None))
    {
        return Err(GatewayError::Answer(AnswerRefusal::Untyped));
    }
    // The client unpacks gzip, deflate and brotli as the body streams in, so everything
    // after this sees plain bytes, and a compression bomb costs time, never memory. A
    // body still packed some other way can't be read to be masked, so it is not shown.
    let packed = upstream
        .headers()
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("(unreadable)").trim().to_owned())
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity"));
    if let (true, Some(packing)) = (class.rewritten(), packed) {
        return Err(GatewayError::Answer(AnswerRefusal::Packed(packing)));
    }
    Ok(Answer {
        class,
        upstream,
        content_type,
    })
}

/// Content types an asset may have: images, fonts, style sheets, scripts.
fn is_asset_type(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.starts_with("image/")
        || essence.starts_with("font/")
        || matches!(
            essence,
            "text/css"
                | "text/javascript"
                | "application/javascript"
                | "application/x-javascript"
                | "application/ecmascript"
                | "text/ecmascript"
                | "application/font-woff"
                | "application/x-font-woff"
                | "application/vnd.ms-fontobject"
        )
}

/// Whether an answer on an asset path is one the gateway may pass on unrecorded; if
/// not, why, in words that finish "it was asked for as a static file, but …".
fn proves_asset(headers: &HeaderMap, content_type: &str, trust: AssetTrust) -> Result<(), String> {
    if headers.get_all(header::CONTENT_TYPE).iter().count() > 1 {
        return Err("the product gave it more than one content type".into());
    }
    if !is_asset_type(content_type) {
        return Err(if content_type.is_empty() {
            "the product did not say what kind of file it is".into()
        } else {
            format!(
                "it is {}, not an image, font, style sheet or script",
                content_type.split(';').next().unwrap_or("").trim()
            )
        });
    }
    if trust == AssetTrust::Trusted {
        return Ok(());
    }
    if headers.contains_key(header::SET_COOKIE) {
        return Err("the product set a cookie with it".into());
    }
    let varies_by_user = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .any(|v| v == "cookie" || v == "authorization" || v == "*");
    if varies_by_user {
        return Err("the product said it differs from one user to another".into());
    }
    let directives: Vec<String> = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| d.trim().to_ascii_lowercase())
        .collect();
    let has = |name: &str| directives.iter().any(|d| d == name);
    let max_age = directives.iter().any(|d| {
        d.strip_prefix("max-age=")
            .or_else(|| d.strip_prefix("s-maxage="))
            .and_then(|n| n.trim_matches('"').parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    });
    if has("private") || has("no-store") || !(has("public") || max_age) {
        return Err(
            "the product did not mark it as the same for every user (Cache-Control: public)".into(),
        );
    }
    Ok(())
}

/// Whether an answer may carry a body for the browser to show: not one that is
/// informational, a redirect, `204 No Content` or `304 Not Modified`, or says it is empty.
fn may_have_body(status: StatusCode, upstream: &reqwest::Response) -> bool {
    !(status.is_informational()
        || status.is_redirection()
        || status == StatusCode::NO_CONTENT
        || upstream.content_length() == Some(0))
}

/// The product's response headers as the browser gets them: hop-by-hop and `Actas-*`
/// headers dropped, and any header the policy doesn't let through (see
/// [`GatewayRules::passes_response_header`]) dropped and returned, named `header <name>`,
/// to be counted; `Location` and `Set-Cookie` kept on the gateway, XHTML labelled as HTML,
/// and `Content-Length` kept only for a body that is not rewritten.
pub(super) fn product_headers(
    mut response: axum::http::response::Builder,
    headers: &HeaderMap,
    rules: &GatewayRules,
    answer: &Answer,
    base: &str,
) -> (axum::http::response::Builder, BTreeSet<String>) {
    let mut dropped = BTreeSet::new();
    for (name, value) in headers {
        let n = name.as_str();
        if n == "content-length" {
            // Kept for a body passed on as it came (the client drops it itself when it
            // unpacks one); a rewritten body's length is not known ahead.
            if !answer.class.rewritten() {
                response = response.header(name, value);
            }
            continue;
        }
        if HOP_BY_HOP.contains(&n) || n == "x-content-type-options" {
            continue;
        }
        if !rules.passes_response_header(n) {
            // It could carry what masking hides: dropped, and counted for the team.
            dropped.insert(format!("header {n}"));
            continue;
        }
        match n {
            "content-type" if answer.content_type.starts_with("application/xhtml+xml") => {
                // Same parameters (the charset), read as HTML.
                let params = &answer.content_type["application/xhtml+xml".len()..];
                if let Ok(v) = HeaderValue::from_str(&format!("text/html{params}")) {
                    response = response.header(header::CONTENT_TYPE, v);
                }
            }
            "location" => {
                // Keep the browser inside the gateway.
                let loc = value.to_str().unwrap_or("/");
                let local = rewrite::ProductOrigin::new(base).and_then(|o| o.keep_on_gateway(loc));
                if let Ok(v) = HeaderValue::from_str(local.as_deref().unwrap_or(loc)) {
                    response = response.header(header::LOCATION, v);
                }
            }
            "set-cookie" => {
                // Cookies belong to the gateway origin: drop any Domain the product names.
                let kept: Vec<&str> = value
                    .to_str()
                    .unwrap_or("")
                    .split(';')
                    .filter(|p| !p.trim().to_ascii_lowercase().starts_with("domain="))
                    .collect();
                if let Ok(v) = HeaderValue::from_str(&kept.join(";")) {
                    response = response.header(header::SET_COOKIE, v);
                }
            }
            _ => response = response.header(name, value),
        }
    }
    (response, dropped)
}

/// Headers of one connection, never passed on.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn only_a_public_image_font_style_or_script_is_an_asset() {
        let public = |ct: &str, more: &[(&str, &str)]| {
            let mut pairs = vec![
                ("content-type", ct),
                ("cache-control", "public, max-age=600"),
            ];
            pairs.extend_from_slice(more);
            proves_asset(&headers(&pairs), ct, AssetTrust::MustBePublic)
        };
        assert!(public("text/css", &[]).is_ok());
        assert!(public("image/svg+xml", &[]).is_ok());
        assert!(public("text/javascript; charset=utf-8", &[]).is_ok());
        assert!(public("font/woff2", &[]).is_ok());
        assert!(public("text/html", &[]).is_err());
        assert!(public("application/json", &[]).is_err());
        assert!(public("text/csv", &[]).is_err());
        assert!(public("text/css", &[("set-cookie", "s=1")]).is_err());
        assert!(public("text/css", &[("vary", "Accept-Encoding, Cookie")]).is_err());
        assert!(public("text/css", &[("vary", "authorization")]).is_err());
        let marked = |cc: &str| {
            proves_asset(
                &headers(&[("content-type", "text/css"), ("cache-control", cc)]),
                "text/css",
                AssetTrust::MustBePublic,
            )
            .is_ok()
        };
        assert!(marked("max-age=60"));
        assert!(marked("public"));
        assert!(!marked("private, max-age=60"));
        assert!(!marked("max-age=60, no-store"));
        assert!(!marked("max-age=0"));
        assert!(!marked("no-cache"));
        let unmarked = headers(&[("content-type", "text/css")]);
        assert!(proves_asset(&unmarked, "text/css", AssetTrust::MustBePublic).is_err());
        assert!(proves_asset(&unmarked, "text/css", AssetTrust::Trusted).is_ok());
        let page = headers(&[("content-type", "text/html")]);
        assert!(
            proves_asset(&page, "text/html", AssetTrust::Trusted).is_err(),
            "trust skips the mark, never the type"
        );
        let two = headers(&[
            ("content-type", "text/css"),
            ("content-type", "text/html"),
            ("cache-control", "public"),
        ]);
        assert!(proves_asset(&two, "text/css", AssetTrust::MustBePublic).is_err());
    }
}
