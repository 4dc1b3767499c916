//! What the gateway itself shows: the banner every page carries, and the notice page
//! (under the banner, while a session is known) that explains a refusal in plain words.

use crate::service::gateway::GatewayContext;
use actas_core::Timestamp;
use actas_core::policy::Policy;
use actas_core::words;
use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

#[derive(Template)]
#[template(path = "banner.html")]
struct Banner<'a> {
    account: &'a str,
    account_id: &'a str,
    staff: &'a str,
    ticket: &'a str,
    scope: String,
    time_left: String,
    ends_ms: i64,
    csrf: &'a str,
}

#[derive(Template)]
#[template(path = "gateway_notice.html")]
struct Notice<'a> {
    title: &'a str,
    message: &'a str,
    banner: &'a str,
}

/// The banner for a live session; empty if it can't be rendered (the caller then refuses
/// the page: a banner must never silently disappear).
pub(super) fn banner(ctx: &GatewayContext, policy: &Policy, csrf: &str) -> String {
    let info = ctx.session.info();
    Banner {
        account: ctx.account.name.as_str(),
        account_id: ctx.account.id.as_str(),
        staff: ctx.staff.name.as_str(),
        ticket: ctx.ticket.as_str(),
        scope: words::scope(policy, &info.scope),
        time_left: words::count(
            ctx.session
                .time_left(Timestamp::now())
                .as_secs()
                .div_ceil(60),
            "minute",
            "minutes",
        ),
        ends_ms: info.expires_at.as_millis(),
        csrf,
    }
    .render()
    .unwrap_or_default()
}

/// A notice page: `title` and `message` under `banner` (empty outside a session). Never
/// cached: it speaks of one moment of one session.
pub(super) fn notice(status: StatusCode, title: &str, message: &str, banner: &str) -> Response {
    let page = Notice {
        title,
        message,
        banner,
    }
    .render()
    .unwrap_or_else(|_| title.to_owned());
    (
        status,
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(page),
    )
        .into_response()
}
