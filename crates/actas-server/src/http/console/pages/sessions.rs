//! The agent's own session (with its way in), ending it, and any session's timeline.

use super::{Line, Me, Page, csrf_of, line, me, ok, see_other};
use crate::http::AppState;
use crate::http::console::{PageError, Posted, Signed, render};
use crate::service::ServiceError;
use crate::service::auth::Authenticated;
use actas_core::Timestamp;
use actas_core::ids::SessionId;
use actas_core::session::Session;
use actas_core::words;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

struct SessionRow {
    id: String,
    account: String,
    expires_ms: i64,
    minutes_left: u64,
}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    session: Option<SessionRow>,
    handoff: Option<String>,
    needs_password: bool,
    error: Option<String>,
    ended: Option<String>,
    note: String,
    note_error: Option<String>,
    timeline: Vec<Line>,
}

#[derive(Deserialize)]
pub(in crate::http::console) struct HandoffQuery {
    handoff: Option<String>,
    #[serde(default)]
    done: String,
    /// The session just ended, to link its timeline.
    ended: Option<String>,
}

pub(in crate::http::console) async fn session(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Query(q): Query<HandoffQuery>,
) -> Page {
    let mut page = session_page(&state, &who, q.handoff, None).await?;
    page.flash = super::Done { done: q.done }.message();
    page.ended = q.ended.filter(|e| SessionId::parse(e).is_ok());
    ok(render(&page)?)
}

async fn session_page(
    state: &AppState,
    who: &Authenticated,
    handoff: Option<String>,
    error: Option<String>,
) -> Result<SessionPage, PageError> {
    let csrf = csrf_of(who);
    let mine = state.service.my_session(who).await?;
    let timeline = mine
        .as_ref()
        .map(|m| m.timeline.iter().map(line).collect())
        .unwrap_or_default();
    let session = mine.map(|m| {
        let info = m.session.info();
        SessionRow {
            id: info.id.to_string(),
            account: m.account.name.to_string(),
            expires_ms: info.expires_at.as_millis(),
            minutes_left: m.session.time_left(Timestamp::now()).as_secs() / 60,
        }
    });
    let handoff = match handoff {
        Some(t) if state.service.handoff_is_theirs(who.staff(), &t).await? => Some(t),
        _ => None,
    };
    let handoff = handoff.filter(|_| session.is_some()).map(|t| {
        format!(
            "{}/__actas/enter?token={t}",
            state.gateway_url.as_deref().unwrap_or("")
        )
    });
    Ok(SessionPage {
        me: me(who, &csrf),
        flash: None,
        csrf,
        session,
        handoff,
        // A password field only where passwords are kept: otherwise a new link works
        // within the minutes after a confirmation at the identity provider.
        needs_password: state.service.local_passwords()
            && Timestamp::now().since(who.authenticated_at())
                > state.service.policy().session.reauth_within,
        error,
        ended: None,
        note: String::new(),
        note_error: None,
        timeline,
    })
}

#[derive(Deserialize)]
pub(in crate::http::console) struct ReissueForm {
    #[serde(default)]
    password: String,
}

/// A new single-use way into the caller's running session (never a second session).
pub(in crate::http::console) async fn reissue_handoff(
    State(state): State<AppState>,
    Posted(who, f): Posted<ReissueForm>,
) -> Page {
    let result = async {
        let at = if f.password.is_empty() {
            who.authenticated_at()
        } else {
            state.service.reauthenticate(&who, &f.password).await?
        };
        state.service.reissue_handoff(who.staff(), at).await
    }
    .await;
    match result {
        Ok((_, token)) => see_other(&format!("/session?handoff={}", token.expose())),
        Err(e @ (ServiceError::Invalid { .. } | ServiceError::Conflict(_))) => {
            let message = match e {
                ServiceError::Invalid { message, .. } => message,
                other => other.to_string(),
            };
            let page = session_page(&state, &who, None, Some(words::sentence(&message))).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(in crate::http::console) struct NoteForm {
    #[serde(default)]
    note: String,
}

pub(in crate::http::console) async fn end_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<NoteForm>,
) -> Page {
    let id = session_id(&id)?;
    match state
        .service
        .end_session_with_note(who.staff(), id, &f.note)
        .await
    {
        Ok(_) => see_other(&format!("/session?done=ended&ended={id}")),
        Err(ServiceError::Invalid { message, .. }) => {
            let mut page = session_page(&state, &who, None, None).await?;
            page.note_error = Some(words::sentence(&message));
            page.note = f.note;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// A note on one of the caller's own sessions, after it ended (by the banner's End,
/// or its time running out).
pub(in crate::http::console) async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<NoteForm>,
) -> Page {
    let id = session_id(&id)?;
    match state
        .service
        .add_session_note(who.staff(), id, &f.note)
        .await
    {
        Ok(()) => see_other(&format!("/sessions/{id}?done=noted")),
        Err(ServiceError::Invalid { message, .. }) => {
            let mut page = timeline_page(&state, &who, id, None).await?;
            page.note_error = Some(words::sentence(&message));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The timeline's lines, each request whose page was kept linking to its copy.
fn with_copies(events: &[actas_store::RecordedEvent]) -> Vec<Line> {
    let kept: std::collections::HashSet<u64> = events
        .iter()
        .filter_map(|e| match &e.body.data {
            actas_core::event::EventData::PagesKept { pages, .. } => Some(pages),
            _ => None,
        })
        .flatten()
        .filter(|p| p.kept)
        .map(|p| p.page)
        .collect();
    events
        .iter()
        .map(|e| {
            let mut l = line(e);
            l.copy = kept.contains(&l.seq).then_some(l.seq);
            l
        })
        .collect()
}

pub(super) fn session_id(id: &str) -> Result<SessionId, PageError> {
    SessionId::parse(id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such session."))
}

#[derive(Template)]
#[template(path = "session_timeline.html")]
pub(super) struct TimelinePage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    id: String,
    mine: bool,
    note_error: Option<String>,
    /// A lead may record a verdict here: the session ended and is not theirs.
    review_form: bool,
    pub(super) review_error: Option<String>,
    pub(super) review_note: String,
    staff: String,
    account: String,
    status: String,
    timeline: Vec<Line>,
}

#[derive(Deserialize, Default)]
pub(in crate::http::console) struct TimelineQuery {
    #[serde(default)]
    done: String,
}

pub(in crate::http::console) async fn session_timeline(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Path(id): Path<String>,
    Query(q): Query<TimelineQuery>,
) -> Page {
    let flash = super::Done { done: q.done }.message();
    ok(render(
        &timeline_page(&state, &who, session_id(&id)?, flash).await?,
    )?)
}

pub(super) async fn timeline_page(
    state: &AppState,
    who: &Authenticated,
    id: SessionId,
    flash: Option<String>,
) -> Result<TimelinePage, PageError> {
    let view = state.service.session_view(who, id).await?;
    let status = match &view.session {
        Session::Active(_) => "Active".to_owned(),
        Session::Ended(e) => format!(
            "Ended {}. {}",
            words::clock(e.ended_at),
            words::end_reason(e.reason)
        ),
    };
    let csrf = csrf_of(who);
    let mine = view.session.info().staff == who.staff().id;
    Ok(TimelinePage {
        me: me(who, &csrf),
        flash,
        csrf,
        id: id.to_string(),
        mine,
        review_form: !mine
            && matches!(view.session, Session::Ended(_))
            && crate::service::access::Lead::of(who).is_ok(),
        review_error: None,
        review_note: String::new(),
        note_error: None,
        staff: view.staff,
        account: view.account.name.to_string(),
        status,
        timeline: with_copies(&view.timeline),
    })
}

#[derive(Template)]
#[template(path = "page_copy.html")]
struct PageCopyPage {
    me: Option<Me>,
    flash: Option<String>,
    id: String,
    seq: u64,
    staff: String,
    account: String,
    path: String,
    served: String,
    served_at: String,
    actual: String,
    recorded: Option<(u64, String)>,
    matches: bool,
}

/// The copy goes out as the browser got it: HTML (or XHTML) in the page's own encoding.
trait ContentType {
    fn map_content_type(self, served: &str) -> Self;
}

impl ContentType for axum::response::Response {
    fn map_content_type(mut self, served: &str) -> Self {
        let html = served
            .split(';')
            .next()
            .map(str::trim)
            .is_some_and(|t| t.eq_ignore_ascii_case("text/html"));
        let value = if html { served } else { "text/html" };
        if let Ok(v) = axum::http::HeaderValue::from_str(value) {
            self.headers_mut()
                .insert(axum::http::header::CONTENT_TYPE, v);
        }
        self
    }
}

fn page_seq(seq: &str) -> Result<u64, PageError> {
    seq.parse()
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such page view."))
}

/// A kept page, as the agent saw it, checked against the ledger: the page names who
/// saw it and when, and shows the copy in a sandboxed frame only when its hash is the
/// one the ledger holds.
pub(in crate::http::console) async fn page_copy(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Path((id, seq)): Path<(String, String)>,
) -> Page {
    let (id, seq) = (session_id(&id)?, page_seq(&seq)?);
    let copy = state.service.page_copy(&who, id, seq, false).await?;
    let csrf = csrf_of(&who);
    ok(render(&PageCopyPage {
        me: me(&who, &csrf),
        flash: None,
        id: id.to_string(),
        seq,
        staff: copy.staff,
        account: copy.account,
        path: copy.path,
        served: words::clock(copy.served_at),
        served_at: copy.served_at.to_rfc3339(),
        actual: copy.actual,
        recorded: copy.recorded,
        matches: copy.matches,
    })?)
}

/// The kept bytes themselves, for the frame: sandboxed (no scripts, no forms, its own
/// opaque origin) and loading nothing, so the product's page can't act on the console.
/// A copy whose hash is not the ledger's is not served.
pub(in crate::http::console) async fn page_copy_raw(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Path((id, seq)): Path<(String, String)>,
) -> Page {
    let (id, seq) = (session_id(&id)?, page_seq(&seq)?);
    let copy = state.service.page_copy(&who, id, seq, true).await?;
    if !copy.matches {
        return Err(PageError::status(
            StatusCode::CONFLICT,
            "This copy's SHA-256 is not the one the ledger recorded for the page, so it is not shown.",
        ));
    }
    Ok((
        [
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'",
            ),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (axum::http::header::CACHE_CONTROL, "no-store"),
            (axum::http::header::REFERRER_POLICY, "no-referrer"),
        ],
        copy.html,
    )
        .into_response()
        .map_content_type(&copy.content_type))
}
