//! Console pages and form handlers. Each handler calls the service layer; the templates
//! only display.

use super::{PageError, Posted, Signed, render};
use crate::http::AppState;
use crate::service::auth::Authenticated;
use crate::service::{AllowChange, Approval, RequestInput, ServiceError};
use actas_core::Timestamp;
use actas_core::ids::{AccountId, RequestId, SessionId};
use actas_core::request::{AccessRequest, RequestStatus};
use actas_core::scope::Risk;
use actas_core::staff::{Email, Role};
use actas_store::{Account, EventFilter};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

type Page = Result<Response, PageError>;

/// The signed-in person, for the header.
pub(crate) struct Me {
    name: String,
    role: String,
    csrf: String,
    is_lead: bool,
    sees_log: bool,
    is_director: bool,
}

fn me(who: &Authenticated, csrf: &str) -> Option<Me> {
    let role = who.staff.role;
    Some(Me {
        name: who.staff.name.to_string(),
        role: role.to_string(),
        csrf: csrf.to_owned(),
        is_lead: matches!(role, Role::Lead | Role::Director),
        sees_log: role != Role::Agent,
        is_director: role == Role::Director,
    })
}

fn ok(html: Html<String>) -> Page {
    Ok(html.into_response())
}

fn see_other(to: &str) -> Page {
    Ok(Redirect::to(to).into_response())
}

// ---- sign-in ----

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    me: Option<Me>,
    flash: Option<String>,
    email: String,
    error: Option<String>,
}

pub(super) async fn sign_in_page() -> Page {
    ok(render(&SignInPage {
        me: None,
        flash: None,
        email: String::new(),
        error: None,
    })?)
}

#[derive(Deserialize)]
pub(super) struct SignInForm {
    email: String,
    password: String,
    #[serde(default)]
    totp: String,
}

pub(super) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Page {
    // No login yet, so no CSRF token: the origin check stops cross-site sign-in forms.
    if !state.site.same_origin(&headers) {
        return Err(PageError::status(
            StatusCode::FORBIDDEN,
            "This form was sent from another site, so it was refused.",
        ));
    }
    let form: SignInForm = serde_html_form::from_bytes(&body).map_err(|_| {
        PageError::status(StatusCode::BAD_REQUEST, "Enter your email and password.")
    })?;
    match state
        .service
        .sign_in(&form.email, &form.password, Some(form.totp.as_str()))
        .await
    {
        Ok(signed) => {
            let cookie = state.site.cookie(
                signed.token.expose(),
                crate::service::auth::LOGIN_TTL.as_secs(),
            );
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/accounts")).into_response())
        }
        Err(
            e @ (ServiceError::Unauthenticated(_)
            | ServiceError::Forbidden(_)
            | ServiceError::Invalid { .. }),
        ) => {
            let page = render(&SignInPage {
                me: None,
                flash: None,
                email: form.email,
                error: Some(e.to_string()),
            })?;
            Ok((StatusCode::UNAUTHORIZED, page).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct Empty {}

pub(super) async fn sign_out(State(state): State<AppState>, Posted(who, _): Posted<Empty>) -> Page {
    state.service.sign_out(&who).await?;
    Ok((
        [(header::SET_COOKIE, state.site.cookie("", 0))],
        Redirect::to("/sign-in"),
    )
        .into_response())
}

// ---- accounts ----

struct AccountRow {
    id: String,
    name: String,
    flags: String,
    consent: String,
}

fn row(a: &Account) -> AccountRow {
    let flags: Vec<&str> = a.flags.iter().map(|f| f.as_str()).collect();
    AccountRow {
        id: a.id.to_string(),
        name: a.name.to_string(),
        flags: if flags.is_empty() {
            "none".into()
        } else {
            flags.join(", ")
        },
        consent: a.consent.to_string().replace('_', " "),
    }
}

#[derive(Template)]
#[template(path = "accounts.html")]
struct AccountsPage {
    me: Option<Me>,
    flash: Option<String>,
    q: String,
    accounts: Vec<AccountRow>,
}

#[derive(Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub(super) async fn accounts(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Query(s): Query<SearchQuery>,
) -> Page {
    let q = s.q.trim().to_lowercase();
    let all = state
        .service
        .store()
        .list_accounts()
        .await
        .map_err(ServiceError::from)?;
    let accounts = all
        .iter()
        .filter(|a| {
            q.is_empty()
                || a.id.as_str().to_lowercase().contains(&q)
                || a.name.as_str().to_lowercase().contains(&q)
        })
        .take(100)
        .map(row)
        .collect();
    ok(render(&AccountsPage {
        me: me(&who, &csrf),
        flash: None,
        q: s.q,
        accounts,
    })?)
}

struct CapChoice {
    name: String,
    description: String,
    risk: String,
    blocked: Option<String>,
    checked: bool,
    always: bool,
}

#[derive(Default)]
struct RequestForm {
    ticket: String,
    reason: String,
    minutes: String,
    mode: String,
}

#[derive(Default)]
struct FieldErrors {
    ticket: Option<String>,
    reason: Option<String>,
    capabilities: Option<String>,
    minutes: Option<String>,
    code: Option<String>,
    password: Option<String>,
    other: Option<String>,
}

impl FieldErrors {
    fn set(&mut self, field: &str, message: String) {
        let slot = match field {
            "ticket" => &mut self.ticket,
            "reason" => &mut self.reason,
            "capabilities" => &mut self.capabilities,
            "minutes" | "mode" => &mut self.minutes,
            "code" => &mut self.code,
            "password" => &mut self.password,
            _ => &mut self.other,
        };
        slot.get_or_insert(message);
    }

    fn from(e: ServiceError) -> Result<Self, PageError> {
        let mut out = FieldErrors::default();
        match e {
            ServiceError::Invalid { field, message } => out.set(&field, message),
            ServiceError::Forbidden(m) | ServiceError::Conflict(m) | ServiceError::NotFound(m) => {
                out.other = Some(m)
            }
            other => return Err(other.into()),
        }
        Ok(out)
    }
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    account: AccountRow,
    can_act_as: bool,
    why_not: String,
    capabilities: Vec<CapChoice>,
    max_minutes: u64,
    form: RequestForm,
    errors: FieldErrors,
}

async fn account_page(
    state: &AppState,
    who: &Authenticated,
    csrf: &str,
    id: &str,
    form: RequestForm,
    chosen: &[String],
    errors: FieldErrors,
) -> Result<AccountPage, PageError> {
    let id = AccountId::parse(id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such account."))?;
    let account = state.service.account(&id).await?;
    let allowed = state
        .service
        .store()
        .allowed(who.staff.id)
        .await
        .map_err(ServiceError::from)?;
    let policy = state.service.policy();
    let revoked = account.consent == actas_core::account::Consent::Revoked;
    let why_not = if revoked {
        format!(
            "{} has revoked consent for support staff to act on the account.",
            account.name
        )
    } else {
        "You are not on the allow-list, so you can't act as customers. A director can add you."
            .into()
    };
    let mut capabilities: Vec<CapChoice> = policy
        .capabilities()
        .filter(|c| c.risk != Risk::Forbidden)
        .filter(|c| allowed.as_ref().is_some_and(|a| c.risk <= a.max_risk))
        .map(|c| CapChoice {
            name: c.name.to_string(),
            description: c.description.clone(),
            risk: c.risk.to_string(),
            blocked: c.blocked.clone(),
            checked: chosen.iter().any(|x| x == c.name.as_str()),
            always: c.name.as_str() == "view",
        })
        .collect();
    // `view` first: it is always included; then the rest by risk.
    capabilities.sort_by_key(|c| (!c.always, c.risk.clone()));
    let form = RequestForm {
        minutes: if form.minutes.is_empty() {
            policy
                .session
                .default_duration
                .as_secs()
                .div_euclid(60)
                .to_string()
        } else {
            form.minutes
        },
        mode: if form.mode.is_empty() {
            "read-only".into()
        } else {
            form.mode
        },
        ..form
    };
    Ok(AccountPage {
        me: me(who, csrf),
        flash: None,
        csrf: csrf.to_owned(),
        account: row(&account),
        can_act_as: allowed.is_some() && !revoked,
        why_not,
        capabilities,
        max_minutes: policy.session.hard_limit.as_secs() / 60,
        form,
        errors,
    })
}

pub(super) async fn account(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Path(id): Path<String>,
) -> Page {
    let page = account_page(
        &state,
        &who,
        &csrf,
        &id,
        RequestForm::default(),
        &[],
        FieldErrors::default(),
    )
    .await?;
    ok(render(&page)?)
}

#[derive(Deserialize)]
pub(super) struct NewRequestForm {
    #[serde(default)]
    ticket: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    mode: String,
}

pub(super) async fn create_request(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<NewRequestForm>,
) -> Page {
    let minutes = match f.minutes.trim() {
        "" => None,
        m => match m.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => Some(0),
        },
    };
    let caps: Vec<String> = f
        .capabilities
        .iter()
        .filter(|c| c.as_str() != "view")
        .cloned()
        .collect();
    let input = RequestInput {
        account: id.clone(),
        ticket: f.ticket.clone(),
        reason: f.reason.clone(),
        capabilities: caps.clone(),
        minutes,
        mode: Some(f.mode.clone()),
        for_session: None,
    };
    let problems = state.service.request_input_problems(&input);
    let outcome = if problems.is_empty() {
        state
            .service
            .create_request(&who.staff, input)
            .await
            .map_err(FieldErrors::from)
    } else {
        let mut errors = FieldErrors::default();
        for (field, message) in problems {
            errors.set(field, message);
        }
        Err(Ok(errors))
    };
    match outcome {
        Ok(r) => see_other(&format!("/requests/{}", r.id)),
        Err(errors) => {
            let errors = errors?;
            let csrf = csrf_of(&who);
            let form = RequestForm {
                ticket: f.ticket,
                reason: f.reason,
                minutes: f.minutes,
                mode: f.mode,
            };
            let page = account_page(&state, &who, &csrf, &id, form, &caps, errors).await?;
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
    }
}

fn csrf_of(who: &Authenticated) -> String {
    match &who.via {
        crate::service::auth::Via::Cookie { csrf, .. } => csrf.clone(),
        crate::service::auth::Via::ApiToken => String::new(),
    }
}

// ---- requests ----

#[derive(Template)]
#[template(path = "request.html")]
struct RequestPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    r: AccessRequest,
    account_name: String,
    scope: String,
    mine: bool,
    needs_code: bool,
    can_start: bool,
    needs_password: bool,
    open: bool,
    errors: FieldErrors,
}

fn request_id(id: &str) -> Result<RequestId, PageError> {
    RequestId::parse(id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such request."))
}

async fn request_page(
    state: &AppState,
    who: &Authenticated,
    id: &str,
    errors: FieldErrors,
    flash: Option<String>,
) -> Result<RequestPage, PageError> {
    let r = state.service.request(request_id(id)?).await?;
    let mine = r.requester == who.staff.id;
    if !mine && who.staff.role == Role::Agent {
        return Err(PageError::status(
            StatusCode::FORBIDDEN,
            "This is someone else's request.",
        ));
    }
    let account = state.service.account(&r.account).await?;
    let open = !r.status.is_final() && !r.locked;
    let needs_code = r.needs_code && !r.code_confirmed && open;
    let can_start = r.status == RequestStatus::Approved && !needs_code && !r.locked;
    let needs_password =
        Timestamp::now().since(who.authenticated_at) > state.service.policy().session.reauth_within;
    let csrf = csrf_of(who);
    Ok(RequestPage {
        me: me(who, &csrf),
        flash,
        csrf,
        scope: r.scope.joined(),
        account_name: account.name.to_string(),
        mine,
        needs_code,
        can_start,
        needs_password,
        open,
        r,
        errors,
    })
}

pub(super) async fn request(
    State(state): State<AppState>,
    Signed(who, _): Signed,
    Path(id): Path<String>,
) -> Page {
    ok(render(
        &request_page(&state, &who, &id, FieldErrors::default(), None).await?,
    )?)
}

#[derive(Deserialize)]
pub(super) struct CodeForm {
    #[serde(default)]
    code: String,
}

pub(super) async fn enter_code(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<CodeForm>,
) -> Page {
    match state
        .service
        .enter_code(&who.staff, request_id(&id)?, &f.code)
        .await
    {
        Ok(_) => see_other(&format!("/requests/{id}")),
        Err(e) => {
            let mut errors = FieldErrors::from(e)?;
            if let Some(m) = errors.other.take() {
                errors.code = Some(m);
            }
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&request_page(&state, &who, &id, errors, None).await?)?,
            )
                .into_response())
        }
    }
}

#[derive(Deserialize)]
pub(super) struct StartForm {
    #[serde(default)]
    password: String,
}

pub(super) async fn start(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<StartForm>,
) -> Page {
    let authenticated_at = if f.password.is_empty() {
        who.authenticated_at
    } else {
        match state.service.reauthenticate(&who, &f.password).await {
            Ok(t) => t,
            Err(e) => {
                let errors = FieldErrors::from(e)?;
                return Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    render(&request_page(&state, &who, &id, errors, None).await?)?,
                )
                    .into_response());
            }
        }
    };
    match state
        .service
        .start_session(&who.staff, request_id(&id)?, authenticated_at)
        .await
    {
        Ok((_, token)) => see_other(&format!("/session?handoff={}", token.expose())),
        Err(e) => {
            let errors = FieldErrors::from(e)?;
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                render(&request_page(&state, &who, &id, errors, None).await?)?,
            )
                .into_response())
        }
    }
}

pub(super) async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, _): Posted<Empty>,
) -> Page {
    state
        .service
        .cancel_request(&who.staff, request_id(&id)?)
        .await?;
    see_other(&format!("/requests/{id}"))
}

#[derive(Deserialize)]
pub(super) struct ApproveForm {
    #[serde(default)]
    capabilities: Vec<String>,
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    note: String,
}

pub(super) async fn approve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<ApproveForm>,
) -> Page {
    let caps: Vec<String> = f.capabilities.into_iter().filter(|c| c != "view").collect();
    let decision = Approval {
        capabilities: Some(caps),
        minutes: f.minutes.trim().parse().ok(),
        note: Some(f.note),
    };
    state
        .service
        .approve_request(&who.staff, request_id(&id)?, decision)
        .await?;
    see_other("/queue")
}

#[derive(Deserialize)]
pub(super) struct DenyForm {
    #[serde(default)]
    note: String,
}

pub(super) async fn deny(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted<DenyForm>,
) -> Page {
    state
        .service
        .deny_request(&who.staff, request_id(&id)?, &f.note)
        .await?;
    see_other("/queue")
}

struct QueueItem {
    id: String,
    requester: String,
    account: String,
    ticket: String,
    reason: String,
    minutes: u64,
    mode: String,
    risk: String,
    needs_code: bool,
    caps: Vec<String>,
    own: bool,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    items: Vec<QueueItem>,
}

pub(super) async fn queue(State(state): State<AppState>, Signed(who, csrf): Signed) -> Page {
    if !matches!(who.staff.role, Role::Lead | Role::Director) {
        return Err(PageError::status(
            StatusCode::FORBIDDEN,
            "Only leads and directors decide on requests.",
        ));
    }
    let mut items = Vec::new();
    for r in state
        .service
        .store()
        .pending_requests()
        .await
        .map_err(ServiceError::from)?
    {
        let requester = state
            .service
            .store()
            .staff(r.requester)
            .await
            .map_err(ServiceError::from)?;
        let account = state.service.account(&r.account).await?;
        items.push(QueueItem {
            id: r.id.to_string(),
            requester: requester.map_or_else(|| "someone".into(), |s| s.name.to_string()),
            account: account.name.to_string(),
            ticket: r.ticket.to_string(),
            reason: r.reason.to_string(),
            minutes: r.duration.minutes(),
            mode: r.mode.to_string(),
            risk: r.risk.to_string(),
            needs_code: r.needs_code,
            caps: r
                .scope
                .iter()
                .filter(|c| c.as_str() != "view")
                .map(|c| c.to_string())
                .collect(),
            own: r.requester == who.staff.id,
        });
    }
    ok(render(&QueuePage {
        me: me(&who, &csrf),
        flash: None,
        csrf,
        items,
    })?)
}

// ---- sessions ----

struct SessionRow {
    id: String,
    account: String,
    expires_ms: i64,
    minutes_left: u64,
}

struct Line {
    seq: u64,
    time: String,
    summary: String,
}

#[derive(Template)]
#[template(path = "session.html")]
struct SessionPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    session: Option<SessionRow>,
    handoff: Option<String>,
    timeline: Vec<Line>,
}

#[derive(Deserialize)]
pub(super) struct HandoffQuery {
    handoff: Option<String>,
}

fn line(e: &actas_store::RecordedEvent) -> Line {
    let t = e.body.time.to_rfc3339();
    Line {
        seq: e.body.seq,
        time: format!("{} {}", &t[..10], &t[11..19]),
        summary: e.body.summary.clone(),
    }
}

pub(super) async fn session(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Query(q): Query<HandoffQuery>,
) -> Page {
    let active = state
        .service
        .store()
        .active_session_of(who.staff.id)
        .await
        .map_err(ServiceError::from)?;
    let mut timeline = Vec::new();
    let session = match active {
        Some(a) => {
            let info = a.info();
            let account = state.service.account(&info.account).await?;
            let filter = EventFilter {
                session: Some(info.id),
                ..EventFilter::default()
            };
            timeline = state
                .service
                .store()
                .events(&filter, 0, 500)
                .await
                .map_err(ServiceError::from)?
                .iter()
                .map(line)
                .collect();
            Some(SessionRow {
                id: info.id.to_string(),
                account: account.name.to_string(),
                expires_ms: info.expires_at.as_millis(),
                minutes_left: a.time_left(Timestamp::now()).as_secs() / 60,
            })
        }
        None => None,
    };
    let handoff = q.handoff.filter(|_| session.is_some()).map(|t| {
        format!(
            "{}/__actas/enter?token={t}",
            state.gateway_url.as_deref().unwrap_or("")
        )
    });
    ok(render(&SessionPage {
        me: me(&who, &csrf),
        flash: None,
        csrf,
        session,
        handoff,
        timeline,
    })?)
}

pub(super) async fn end_session(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted(who, _): Posted<Empty>,
) -> Page {
    let id = SessionId::parse(&id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such session."))?;
    state.service.end_session_by(&who.staff, id).await?;
    see_other("/session")
}

// ---- logs ----

#[derive(Deserialize, Default)]
pub(super) struct LogFilter {
    #[serde(default)]
    account: String,
    #[serde(default)]
    staff: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
}

#[derive(Template)]
#[template(path = "log.html")]
struct LogPage {
    me: Option<Me>,
    flash: Option<String>,
    heading: String,
    action: String,
    show_account_filter: bool,
    f: LogFilter,
    error: Option<String>,
    events: Vec<Line>,
}

async fn log_page(
    state: &AppState,
    who: &Authenticated,
    csrf: &str,
    heading: String,
    action: String,
    account: Option<AccountId>,
    f: LogFilter,
) -> Page {
    if who.staff.role == Role::Agent {
        return Err(PageError::status(
            StatusCode::FORBIDDEN,
            "The activity log is for leads, directors and auditors.",
        ));
    }
    let mut error = None;
    let mut parse = |t: &str, name: &str| {
        if t.trim().is_empty() {
            return None;
        }
        let parsed = Timestamp::parse(t);
        if parsed.is_none() {
            error = Some(format!("{name}: {t:?} is not a date; write 2026-11-23"));
        }
        parsed
    };
    let since = parse(&f.since, "From");
    let until = parse(&f.until, "Before");
    let account = match account {
        Some(a) => Some(a),
        None if f.account.trim().is_empty() => None,
        None => match AccountId::parse(f.account.trim()) {
            Ok(a) => Some(a),
            Err(e) => {
                error = Some(format!("Account: {e}"));
                None
            }
        },
    };
    let filter = EventFilter {
        account,
        session: None,
        kind: Some(f.kind.trim().to_owned()).filter(|k| !k.is_empty()),
        since,
        until,
    };
    let staff = f.staff.trim().to_lowercase();
    let mut events = Vec::new();
    let mut after = 0;
    // Newest 500 matching events, oldest first.
    loop {
        let page = state
            .service
            .store()
            .events(&filter, after, 1000)
            .await
            .map_err(ServiceError::from)?;
        let Some(last) = page.last() else { break };
        after = last.body.seq;
        events.extend(page.into_iter().filter(|e| {
            staff.is_empty() || matches!(&e.body.actor, actas_core::event::Actor::Staff(s) if s.email.as_str() == staff)
        }));
        if events.len() > 5000 {
            break;
        }
    }
    let skip = events.len().saturating_sub(500);
    let events = events[skip..].iter().map(line).collect();
    ok(render(&LogPage {
        me: me(who, csrf),
        flash: None,
        heading,
        action,
        show_account_filter: true,
        f,
        error,
        events,
    })?)
}

pub(super) async fn activity(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Query(f): Query<LogFilter>,
) -> Page {
    log_page(
        &state,
        &who,
        &csrf,
        "Activity log".into(),
        "/activity".into(),
        None,
        f,
    )
    .await
}

pub(super) async fn account_audit(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Path(id): Path<String>,
    Query(f): Query<LogFilter>,
) -> Page {
    let id = AccountId::parse(&id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such account."))?;
    let account = state.service.account(&id).await?;
    let heading = format!("Audit log of {}", account.name);
    log_page(
        &state,
        &who,
        &csrf,
        heading,
        format!("/accounts/{id}/audit"),
        Some(id),
        f,
    )
    .await
}

// ---- allow-list ----

struct AllowRow {
    name: String,
    email: String,
    max_risk: String,
    granted_by: String,
    granted_at: String,
    reason: String,
    revoked: bool,
}

#[derive(Template)]
#[template(path = "allow_list.html")]
struct AllowPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    entries: Vec<AllowRow>,
    error: Option<String>,
    apps: Vec<AppRow>,
    notifications: String,
    failing: bool,
}

struct AppRow {
    name: String,
    webhook: String,
    state: String,
}

async fn allow_page(
    state: &AppState,
    who: &Authenticated,
    error: Option<String>,
) -> Result<AllowPage, PageError> {
    if who.staff.role != Role::Director {
        return Err(PageError::status(
            StatusCode::FORBIDDEN,
            "Only directors keep the allow-list.",
        ));
    }
    let entries = state
        .service
        .store()
        .allow_list()
        .await
        .map_err(ServiceError::from)?
        .into_iter()
        .map(|a| AllowRow {
            name: a.staff.name.to_string(),
            email: a.staff.email.to_string(),
            max_risk: a.max_risk.to_string(),
            granted_by: a.granted_by.name.to_string(),
            granted_at: a.granted_at.to_rfc3339()[..10].to_owned(),
            reason: a.reason.to_string(),
            revoked: a.revoked.is_some(),
        })
        .collect();
    let apps = state
        .service
        .app_keys()
        .await?
        .into_iter()
        .map(|k| AppRow {
            name: k.app.name.to_string(),
            webhook: k
                .webhook_url
                .unwrap_or_else(|| "no notifications".to_owned()),
            state: match k.revoked_at {
                Some(t) => format!("revoked {}", &t.to_rfc3339()[..10]),
                None => "active".to_owned(),
            },
        })
        .collect();
    let outbox = state
        .service
        .store()
        .outbox_stats()
        .await
        .map_err(ServiceError::from)?;
    let failing = outbox.failing > 0;
    let notifications = if failing {
        format!(
            "{} notifications to the product are failing and being retried; {} delivered. Last error: {}",
            outbox.failing,
            outbox.delivered,
            outbox.last_error.unwrap_or_default()
        )
    } else {
        format!(
            "All notifications delivered ({}); {} waiting.",
            outbox.delivered, outbox.pending
        )
    };
    let csrf = csrf_of(who);
    Ok(AllowPage {
        me: me(who, &csrf),
        flash: None,
        csrf,
        entries,
        error,
        apps,
        notifications,
        failing,
    })
}

pub(super) async fn allow_list(State(state): State<AppState>, Signed(who, _): Signed) -> Page {
    ok(render(&allow_page(&state, &who, None).await?)?)
}

#[derive(Deserialize)]
pub(super) struct GrantForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    max_risk: String,
    #[serde(default)]
    reason: String,
}

pub(super) async fn grant(
    State(state): State<AppState>,
    Posted(who, f): Posted<GrantForm>,
) -> Page {
    let result = async {
        let email = Email::parse(&f.email).map_err(|e| ServiceError::invalid("email", e))?;
        let risk: Risk = f
            .max_risk
            .parse()
            .map_err(|e| ServiceError::invalid("max_risk", e))?;
        state
            .service
            .change_allow_list(
                &email,
                AllowChange::Grant(risk),
                &who.staff.email,
                &f.reason,
            )
            .await
    }
    .await;
    match result {
        Ok(()) => see_other("/allow-list"),
        Err(
            e @ (ServiceError::Invalid { .. }
            | ServiceError::Forbidden(_)
            | ServiceError::Conflict(_)),
        ) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&allow_page(&state, &who, Some(e.to_string())).await?)?,
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct RevokeForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    reason: String,
}

pub(super) async fn revoke(
    State(state): State<AppState>,
    Posted(who, f): Posted<RevokeForm>,
) -> Page {
    let email = Email::parse(&f.email).map_err(|_| {
        PageError::status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "That is not an email address.",
        )
    })?;
    match state
        .service
        .change_allow_list(&email, AllowChange::Revoke, &who.staff.email, &f.reason)
        .await
    {
        Ok(()) => see_other("/allow-list"),
        Err(
            e @ (ServiceError::Invalid { .. }
            | ServiceError::Forbidden(_)
            | ServiceError::Conflict(_)),
        ) => Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            render(&allow_page(&state, &who, Some(e.to_string())).await?)?,
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

// ---- a session's timeline ----

#[derive(Template)]
#[template(path = "session_timeline.html")]
struct TimelinePage {
    me: Option<Me>,
    flash: Option<String>,
    staff: String,
    account: String,
    status: String,
    timeline: Vec<Line>,
}

pub(super) async fn session_timeline(
    State(state): State<AppState>,
    Signed(who, csrf): Signed,
    Path(id): Path<String>,
) -> Page {
    let id = SessionId::parse(&id)
        .map_err(|_| PageError::status(StatusCode::NOT_FOUND, "There is no such session."))?;
    let s = state
        .service
        .store()
        .session(id)
        .await
        .map_err(ServiceError::from)?
        .ok_or_else(|| PageError::status(StatusCode::NOT_FOUND, "There is no such session."))?;
    let info = s.info();
    if info.staff != who.staff.id && who.staff.role == Role::Agent {
        return Err(PageError::status(
            StatusCode::FORBIDDEN,
            "This is someone else's session.",
        ));
    }
    let staff = state
        .service
        .store()
        .staff(info.staff)
        .await
        .map_err(ServiceError::from)?;
    let account = state.service.account(&info.account).await?;
    let status = match &s {
        actas_core::session::Session::Active(_) => "Active".to_owned(),
        actas_core::session::Session::Ended(e) => {
            format!("Ended ({})", e.reason.as_str().replace('_', " "))
        }
    };
    let filter = EventFilter {
        session: Some(id),
        ..EventFilter::default()
    };
    let timeline = state
        .service
        .store()
        .events(&filter, 0, 1000)
        .await
        .map_err(ServiceError::from)?
        .iter()
        .map(line)
        .collect();
    ok(render(&TimelinePage {
        me: me(&who, &csrf),
        flash: None,
        staff: staff.map_or_else(|| "Someone".into(), |s| s.name.to_string()),
        account: account.name.to_string(),
        status,
        timeline,
    })?)
}

// ---- settings: two-step sign-in and API tokens ----

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    me: Option<Me>,
    flash: Option<String>,
    csrf: String,
    totp_on: bool,
    otpauth: Option<String>,
    totp_error: Option<String>,
    new_token: Option<String>,
    token_error: Option<String>,
}

async fn settings_page(state: &AppState, who: &Authenticated) -> Result<SettingsPage, PageError> {
    let staff = state
        .service
        .store()
        .staff(who.staff.id)
        .await
        .map_err(ServiceError::from)?;
    let csrf = csrf_of(who);
    Ok(SettingsPage {
        me: me(who, &csrf),
        flash: None,
        csrf,
        totp_on: staff.as_ref().is_some_and(|s| s.totp.is_some()),
        otpauth: None,
        totp_error: None,
        new_token: None,
        token_error: None,
    })
}

pub(super) async fn settings(State(state): State<AppState>, Signed(who, _): Signed) -> Page {
    ok(render(&settings_page(&state, &who).await?)?)
}

pub(super) async fn begin_totp(
    State(state): State<AppState>,
    Posted(who, _): Posted<Empty>,
) -> Page {
    let uri = state.service.begin_totp(&who).await?;
    let page = SettingsPage {
        otpauth: Some(uri),
        ..settings_page(&state, &who).await?
    };
    ok(render(&page)?)
}

pub(super) async fn confirm_totp(
    State(state): State<AppState>,
    Posted(who, f): Posted<CodeForm>,
) -> Page {
    match state.service.confirm_totp(&who, &f.code).await {
        Ok(()) => see_other("/settings"),
        Err(ServiceError::Invalid { message, .. }) => {
            let page = SettingsPage {
                totp_error: Some(message),
                ..settings_page(&state, &who).await?
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub(super) struct TokenForm {
    #[serde(default)]
    name: String,
}

pub(super) async fn create_token(
    State(state): State<AppState>,
    Posted(who, f): Posted<TokenForm>,
) -> Page {
    match state.service.create_api_token(&who, &f.name).await {
        Ok(token) => {
            let page = SettingsPage {
                new_token: Some(token.expose().to_owned()),
                ..settings_page(&state, &who).await?
            };
            let mut response = render(&page)?.into_response();
            // The token is on this page only: don't let any cache keep it.
            response.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            Ok(response)
        }
        Err(ServiceError::Invalid { message, .. }) => {
            let page = SettingsPage {
                token_error: Some(message),
                ..settings_page(&state, &who).await?
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, render(&page)?).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
