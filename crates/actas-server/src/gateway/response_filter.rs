//! Phase 4, `response_filter`: the product's answer is classified once
//! ([`actas_core::gateway::answer::classify`]), and every later phase acts on that class,
//! never on the headers again: HTML, JSON, NDJSON and event streams are masked; an asset
//! passes only if it proves to be one; an export only in a session that may export; any
//! other type only where the policy passes it for the route. Everything else is refused
//! (and recorded): a body with no type or two, a type the gateway can't mask, a body
//! packed so it can't be read, a page in a charset it can't read.
//!
//! An asset is forwarded unrecorded, so its answer must be one: an image, a font, a
//! style sheet or a script, that the product marks as the same for every user
//! (`Cache-Control: public`, or a `max-age` without `private` or `no-store`; no
//! `Set-Cookie`; no `Vary` on `Cookie` or `Authorization`). Anything else on an asset path
//! is refused and recorded: a script or an SVG that carries one customer's data is not an
//! asset. `trusted_assets` in the policy skip the mark, never the type.

use super::GatewayState;
use super::context::ProxyCtx;
use super::error::{AnswerRefusal, GatewayError};
use actas_core::gateway::ForwardKind;
use actas_core::gateway::answer::{self, Said};
use actas_core::policy::AssetTrust;
use axum::http::{HeaderMap, StatusCode, header};

/// What the answer is, decided once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Class {
    /// HTML (and XHTML, sent on as HTML): streamed through the masking rewriter, read in
    /// this encoding.
    Html(&'static encoding_rs::Encoding),
    /// JSON: read whole and masked.
    Json,
    /// Newline-delimited JSON: masked line by line.
    Ndjson,
    /// Server-sent events: masked event by event.
    Events,
    /// A static asset that proved to be one: passed on as it is.
    Asset,
    /// An export the session may make, or a type the policy passes for this route:
    /// passed on as it is.
    Passed,
}

impl Class {
    /// Whether the body is rewritten (so its length, and its validators, are not the
    /// product's).
    pub(super) fn rewritten(self) -> bool {
        matches!(
            self,
            Class::Html(_) | Class::Json | Class::Ndjson | Class::Events
        )
    }

    /// The one `Content-Type` the gateway sends for a rewritten body.
    pub(super) fn content_type(self) -> Option<String> {
        match self {
            Class::Html(enc) => Some(format!(
                "text/html; charset={}",
                enc.name().to_ascii_lowercase()
            )),
            Class::Json => Some("application/json".into()),
            Class::Ndjson => Some("application/x-ndjson".into()),
            Class::Events => Some("text/event-stream".into()),
            Class::Asset | Class::Passed => None,
        }
    }
}

/// The product's answer and its class.
pub(super) struct Answer {
    /// What it is.
    pub(super) class: Class,
    /// The answer, body still unread.
    pub(super) upstream: reqwest::Response,
    /// Its one content type as the product sent it (empty if none), for what passes as
    /// it is.
    pub(super) content_type: String,
}

pub(super) async fn response_filter(
    state: &GatewayState,
    ctx: &ProxyCtx,
    mut upstream: reqwest::Response,
) -> Result<Answer, GatewayError> {
    let headers = upstream.headers();
    let owned: Vec<String> = headers
        .get_all(header::CONTENT_TYPE)
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .collect();
    let content_type = owned.first().cloned().unwrap_or_default();
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
            proves_asset(headers, &content_type.to_ascii_lowercase(), trust)
                .map_err(|why| GatewayError::Answer(AnswerRefusal::NotAnAsset(why)))?;
        }
        return Ok(Answer {
            class: Class::Asset,
            upstream,
            content_type,
        });
    }
    let session = ctx.session.as_ref().ok_or(GatewayError::Internal(
        "the answer came back without a session",
    ))?;
    let (Some(method), Some(path)) = (ctx.method, ctx.path.as_ref()) else {
        return Err(GatewayError::Internal(
            "the answer came back without its request",
        ));
    };
    let policy = state.service.policy();
    let attachment = upstream
        .headers()
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|d| d.trim().to_ascii_lowercase().starts_with("attachment"));
    let mut has_body = may_have_body(status, &upstream) && ctx.method_sent != "HEAD";
    // A browser would guess what an untyped body is, and might show it as a page: one
    // that was never masked and carries no banner. Only one that turns out empty passes.
    if owned.is_empty() && has_body {
        has_body = !matches!(upstream.chunk().await, Ok(None));
    }
    let types: Vec<&str> = owned.iter().map(String::as_str).collect();
    let said = Said {
        content_types: &types,
        attachment,
        has_body,
    };
    let class = answer::classify(
        &said,
        policy.allows_export(&session.session.info().scope),
        |k| policy.gateway.pass_through.passes(method, path, k),
    )
    .map_err(|r| GatewayError::Answer(AnswerRefusal::Class(r)))?;
    let class = match class {
        answer::Class::Html { charset } => Class::Html(encoding(charset.as_deref())?),
        answer::Class::Json => Class::Json,
        answer::Class::Ndjson => Class::Ndjson,
        answer::Class::Events => Class::Events,
        answer::Class::Export | answer::Class::PassThrough => Class::Passed,
    };
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

/// The encoding a page names, if the rewriter can read it: UTF-8 when it names none,
/// or any encoding that keeps ASCII as ASCII (ISO-8859-1, Windows-1252, Shift_JIS, …).
/// One that doesn't (UTF-16) can't be masked, so the page is refused.
fn encoding(label: Option<&str>) -> Result<&'static encoding_rs::Encoding, GatewayError> {
    let Some(label) = label else {
        return Ok(encoding_rs::UTF_8);
    };
    encoding_rs::Encoding::for_label(label.as_bytes())
        .filter(|e| lol_html::AsciiCompatibleEncoding::new(e).is_some())
        .ok_or_else(|| GatewayError::Answer(AnswerRefusal::Charset(label.to_owned())))
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

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
