//! Northwind Lending, a small customer portal of a lending company: the "product" that
//! `actas demo` runs and the end-to-end tests drive in a real browser.
//!
//! It is a fair stand-in for a real product: its own customer sign-in, several pages and
//! forms, a JSON endpoint used by a little JavaScript, a CSV export, and a strict CSP
//! (`script-src 'self'`). It trusts support staff only through actas: a request with an
//! `Actas-Assertion` is checked against actas's published keys and then served as that
//! customer, with the staff member recorded as the actor of every change and each change
//! answered with `Actas-Audit` (from/to). What the customer does themself is reported to
//! actas with the portal's app key. Its "Account access" page shows the customer the
//! access history, consent, one-time codes, the staff who acted and the audit extract.

pub mod data;
pub mod identity;

use askama::Template;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use data::{Customer, Customers, Payment};
use identity::{Actor, Verifier};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How the portal reaches actas.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// actas's console/API base URL, e.g. `http://127.0.0.1:8080`.
    pub actas_url: String,
    /// The portal's app key for actas's customer-side API.
    pub app_key: String,
    /// The `aud` the portal expects in assertions.
    pub audience: String,
    /// The secret actas signs session notifications with, if they are set up.
    pub webhook_secret: Option<String>,
}

struct Inner {
    config: PortalConfig,
    verifier: Verifier,
    customers: Mutex<Customers>,
    /// Customer sign-ins: cookie value → customer id.
    logins: Mutex<HashMap<String, String>>,
    /// Session notifications from actas, newest last: (account, sentence). Kept so the
    /// product could show "support is on your account now"; the demo shows the count.
    notifications: Mutex<Vec<(String, String)>>,
    client: reqwest::Client,
}

/// The portal's shared state.
#[derive(Clone)]
pub struct Portal(Arc<Inner>);

const COOKIE: &str = "portal_session";
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";

impl Portal {
    /// A portal with the seeded customers.
    pub fn new(config: PortalConfig) -> Self {
        let verifier = Verifier::new(
            format!(
                "{}/.well-known/jwks.json",
                config.actas_url.trim_end_matches('/')
            ),
            config.audience.clone(),
        );
        Self(Arc::new(Inner {
            config,
            verifier,
            customers: Mutex::new(data::seed()),
            logins: Mutex::default(),
            notifications: Mutex::default(),
            client: reqwest::Client::new(),
        }))
    }

    /// The portal's routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/sign-in", get(sign_in_page).post(sign_in))
            .route("/sign-out", post(sign_out))
            .route("/", get(overview))
            .route("/profile", get(profile).post(save_profile))
            .route("/address", get(address).post(save_address))
            .route("/settings", get(settings))
            .route("/settings/notifications", post(save_notifications))
            .route("/settings/tax", post(save_tax))
            .route("/loans", get(loans))
            .route("/payments", get(payments).post(pay))
            .route("/documents", get(documents).post(upload))
            .route("/agreement", get(agreement))
            .route("/agreement/sign", post(sign_agreement))
            .route("/security", get(security))
            .route("/transactions/export.csv", get(export))
            .route("/api/summary", get(summary))
            .route("/access", get(access))
            .route("/access/consent", post(set_consent))
            .route("/access/code", post(make_code))
            .route("/access/extract", get(extract))
            .route("/access/live", get(live))
            .route("/hooks/actas", post(notification))
            .route(
                "/static/portal.css",
                get(|| async { asset("text/css", include_str!("../static/portal.css")) }),
            )
            .route(
                "/static/portal.js",
                get(|| async { asset("text/javascript", include_str!("../static/portal.js")) }),
            )
            .route(
                "/static/live.js",
                get(|| async { asset("text/javascript", include_str!("../static/live.js")) }),
            )
            .route(
                "/static/favicon.svg",
                get(|| async { asset("image/svg+xml", include_str!("../static/favicon.svg")) }),
            )
            .layer(axum::middleware::map_response(security_headers))
            .with_state(self.clone())
    }

    fn customers(&self) -> std::sync::MutexGuard<'_, Customers> {
        self.0
            .customers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Reports what the customer did to actas (the gateway records what staff do).
    async fn report(&self, account: &str, kind: &str, details: Value, changes: Value) {
        let body =
            json!({ "account": account, "kind": kind, "details": details, "changes": changes });
        let url = format!(
            "{}/api/v1/events",
            self.0.config.actas_url.trim_end_matches('/')
        );
        match self
            .0
            .client
            .post(url)
            .bearer_auth(&self.0.config.app_key)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => tracing::warn!(status = %r.status(), "actas refused a customer event"),
            Err(e) => tracing::warn!(error = %e, "actas could not be told about a customer event"),
        }
    }

    async fn actas(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<reqwest::Response, String> {
        let url = format!(
            "{}/api/v1{path}",
            self.0.config.actas_url.trim_end_matches('/')
        );
        let mut rb = self
            .0
            .client
            .request(method, url)
            .bearer_auth(&self.0.config.app_key);
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        rb.send().await.map_err(|e| e.to_string())
    }
}

async fn security_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

/// A static file, the same for every customer: marked public, so a gateway in front of
/// the portal may pass it on as an asset without recording it.
fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "message.html")]
struct Message<'a> {
    title: &'a str,
    text: &'a str,
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    let page = Message { title, text }
        .render()
        .unwrap_or_else(|_| text.to_owned());
    (status, Html(page)).into_response()
}

/// Who is asking, resolved from an assertion or the customer's own cookie.
struct Viewer {
    customer: String,
    actor: Actor,
}

impl Viewer {
    fn who(&self, name: &str) -> String {
        match &self.actor {
            Actor::Customer => name.to_owned(),
            Actor::Staff(c) => format!("{} for {name}", c.act.name),
        }
    }
}

impl FromRequestParts<Portal> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Self, Response> {
        if let Some(token) = parts
            .headers
            .get("actas-assertion")
            .and_then(|v| v.to_str().ok())
        {
            return match portal.0.verifier.verify(token).await {
                Ok(claims) if portal.customers().contains_key(&claims.sub) => Ok(Viewer {
                    customer: claims.sub.clone(),
                    actor: Actor::Staff(claims),
                }),
                Ok(_) => Err(message(
                    StatusCode::NOT_FOUND,
                    "No such customer",
                    "The assertion names a customer this portal does not have.",
                )),
                Err(e) => Err(message(
                    StatusCode::UNAUTHORIZED,
                    "Not accepted",
                    &format!("The support assertion was refused: {e}."),
                )),
            };
        }
        let cookie = parts
            .headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| *k == COOKIE)
            .map(|(_, v)| v.to_owned());
        let customer = cookie.and_then(|c| {
            portal
                .0
                .logins
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(&c)
                .cloned()
        });
        match customer {
            Some(customer) => Ok(Viewer {
                customer,
                actor: Actor::Customer,
            }),
            None => Err(Redirect::to("/sign-in").into_response()),
        }
    }
}

fn random_token() -> String {
    let mut b = [0u8; 24];
    let _ = getrandom::getrandom(&mut b);
    hex::encode(b)
}

/// Records a change on the customer's activity log and answers it with `Actas-Audit`
/// (which the gateway records and removes) and a redirect back.
fn changed(
    customer: &mut Customer,
    viewer: &Viewer,
    field: &str,
    from: &str,
    to: &str,
    back: &str,
) -> Response {
    let line = format!(
        "{} changed the {field} from {from} to {to}",
        viewer.actor.describe(&customer.name)
    );
    customer.activity.push(line);
    let audit = json!({ "field": field.replace(' ', "_"), "from": from, "to": to }).to_string();
    let mut r = Redirect::to(&format!("{back}?saved=1")).into_response();
    if let Ok(v) = HeaderValue::from_str(&audit) {
        r.headers_mut()
            .insert(HeaderName::from_static("actas-audit"), v);
    }
    r
}

#[derive(Deserialize)]
struct Saved {
    saved: Option<String>,
}

fn saved(q: &Saved) -> Option<String> {
    q.saved.as_ref().map(|_| "Saved.".to_owned())
}

macro_rules! page {
    ($name:ident, $tpl:literal) => {
        #[derive(Template)]
        #[template(path = $tpl)]
        struct $name {
            who: String,
            message: Option<String>,
            c: Customer,
            /// The portal's own origin, named in `<base href>` as some products do.
            base: String,
        }
    };
}

page!(OverviewPage, "overview.html");
page!(ProfilePage, "profile.html");
page!(AddressPage, "address.html");
page!(SettingsPage, "settings.html");
page!(LoansPage, "loans.html");
page!(PaymentsPage, "payments.html");
page!(DocumentsPage, "documents.html");
page!(SecurityPage, "security.html");

/// `http://<host>/` for the host the request named.
fn own_origin(headers: &axum::http::HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/")
}

fn render(t: impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(_) => message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "The page could not be shown.",
        ),
    }
}

fn current(portal: &Portal, viewer: &Viewer) -> Option<Customer> {
    portal.customers().get(&viewer.customer).cloned()
}

fn no_customer() -> Response {
    message(
        StatusCode::NOT_FOUND,
        "No such customer",
        "This account does not exist.",
    )
}

macro_rules! view {
    ($fn_name:ident, $page:ident) => {
        async fn $fn_name(
            State(p): State<Portal>,
            viewer: Viewer,
            headers: axum::http::HeaderMap,
            axum::extract::Query(q): axum::extract::Query<Saved>,
        ) -> Response {
            let Some(c) = current(&p, &viewer) else {
                return no_customer();
            };
            render($page {
                who: viewer.who(&c.name),
                message: saved(&q),
                c,
                base: own_origin(&headers),
            })
        }
    };
}

view!(overview, OverviewPage);
view!(profile, ProfilePage);
view!(address, AddressPage);
view!(settings, SettingsPage);
view!(loans, LoansPage);
view!(payments, PaymentsPage);
view!(documents, DocumentsPage);
view!(security, SecurityPage);

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage {
    error: Option<String>,
}

async fn sign_in_page() -> Response {
    render(SignInPage { error: None })
}

#[derive(Deserialize)]
struct SignInForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    password: String,
}

async fn sign_in(State(p): State<Portal>, body: axum::body::Bytes) -> Response {
    let f: SignInForm = serde_html_form::from_bytes(&body).unwrap_or(SignInForm {
        id: String::new(),
        password: String::new(),
    });
    let ok = p
        .customers()
        .get(f.id.trim())
        .is_some_and(|c| c.password == f.password);
    if !ok {
        return (
            StatusCode::UNAUTHORIZED,
            render(SignInPage {
                error: Some("That customer id and password don't match.".into()),
            }),
        )
            .into_response();
    }
    let token = random_token();
    p.0.logins
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(token.clone(), f.id.trim().to_owned());
    p.report(f.id.trim(), "signed_in", json!({}), json!([]))
        .await;
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax"),
        )],
        Redirect::to("/"),
    )
        .into_response()
}

async fn sign_out(State(p): State<Portal>, viewer: Viewer, headers: HeaderMap) -> Response {
    if let Actor::Customer = viewer.actor {
        let cookie = headers
            .get(header::COOKIE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.split(';')
                    .filter_map(|kv| kv.trim().split_once('='))
                    .find(|(k, _)| *k == COOKIE)
                    .map(|(_, v)| v.to_owned())
            });
        if let Some(c) = cookie {
            p.0.logins
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&c);
        }
        p.report(&viewer.customer, "signed_out", json!({}), json!([]))
            .await;
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0"),
        )],
        Redirect::to("/sign-in"),
    )
        .into_response()
}

/// A form body as text fields.
fn form(body: &[u8]) -> HashMap<String, String> {
    serde_html_form::from_bytes::<Vec<(String, String)>>(body)
        .unwrap_or_default()
        .into_iter()
        .collect()
}

async fn save_profile(
    State(p): State<Portal>,
    viewer: Viewer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let f = form(&body);
    let mut changes = Vec::new();
    let response = {
        let mut all = p.customers();
        let Some(c) = all.get_mut(&viewer.customer) else {
            return no_customer();
        };
        let mut audit = Vec::new();
        for (field, label) in [
            ("name", "business name"),
            ("email", "email"),
            ("phone", "phone"),
        ] {
            let Some(new) = f
                .get(field)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
            else {
                continue;
            };
            let old = match field {
                "name" => std::mem::replace(&mut c.name, new.clone()),
                "email" => std::mem::replace(&mut c.email, new.clone()),
                _ => std::mem::replace(&mut c.phone, new.clone()),
            };
            if old != new {
                c.activity.push(format!(
                    "{} changed the {label} from {old} to {new}",
                    viewer.actor.describe(&c.name)
                ));
                audit.push(json!({ "field": field, "from": old, "to": new }));
                changes.push(json!({ "field": field, "from": old, "to": new }));
            }
        }
        // A change support made and confirmed comes with actas's signed receipt of it:
        // kept to show the customer, who can check it.
        if let Some(receipt) = headers.get("actas-receipt").and_then(|v| v.to_str().ok()) {
            c.receipts.push((
                format!(
                    "{} changed your contact details",
                    viewer.actor.describe(&c.name)
                ),
                receipt.to_owned(),
            ));
        }
        let mut r = Redirect::to("/profile?saved=1").into_response();
        if let Ok(v) = HeaderValue::from_str(&Value::Array(audit).to_string()) {
            r.headers_mut()
                .insert(HeaderName::from_static("actas-audit"), v);
        }
        r
    };
    if matches!(viewer.actor, Actor::Customer) && !changes.is_empty() {
        p.report(
            &viewer.customer,
            "profile_edited",
            json!({}),
            Value::Array(changes),
        )
        .await;
    }
    response
}

async fn save_address(
    State(p): State<Portal>,
    viewer: Viewer,
    body: axum::body::Bytes,
) -> Response {
    let f = form(&body);
    let Some(new) = f
        .get("address")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Address needed",
            "Give the new address.",
        );
    };
    let (r, old) = {
        let mut all = p.customers();
        let Some(c) = all.get_mut(&viewer.customer) else {
            return no_customer();
        };
        let old = std::mem::replace(&mut c.address, new.clone());
        (
            changed(c, &viewer, "shipping address", &old, &new, "/address"),
            old,
        )
    };
    if matches!(viewer.actor, Actor::Customer) {
        p.report(
            &viewer.customer,
            "address_changed",
            json!({}),
            json!([{ "field": "address", "from": old, "to": new }]),
        )
        .await;
    }
    r
}

async fn save_notifications(
    State(p): State<Portal>,
    viewer: Viewer,
    body: axum::body::Bytes,
) -> Response {
    let on = form(&body).contains_key("email_notifications");
    let mut all = p.customers();
    let Some(c) = all.get_mut(&viewer.customer) else {
        return no_customer();
    };
    let old = if c.notifications { "on" } else { "off" };
    c.notifications = on;
    changed(
        c,
        &viewer,
        "email notifications",
        old,
        if on { "on" } else { "off" },
        "/settings",
    )
}

async fn save_tax(State(p): State<Portal>, viewer: Viewer, body: axum::body::Bytes) -> Response {
    let f = form(&body);
    let Some(new) = f
        .get("tax_rate")
        .filter(|r| ["0%", "5%", "10%", "20%"].contains(&r.as_str()))
        .cloned()
    else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Choose a rate",
            "The VAT rate must be 0%, 5%, 10% or 20%.",
        );
    };
    let mut all = p.customers();
    let Some(c) = all.get_mut(&viewer.customer) else {
        return no_customer();
    };
    let old = std::mem::replace(&mut c.tax_rate, new.clone());
    changed(c, &viewer, "tax rate", &old, &new, "/settings")
}

async fn pay(State(p): State<Portal>, viewer: Viewer, body: axum::body::Bytes) -> Response {
    let f = form(&body);
    let Some(amount) = f
        .get("amount")
        .and_then(|a| a.trim().parse::<f64>().ok())
        .filter(|a| *a > 0.0 && *a < 100_000.0)
    else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Check the amount",
            "Give an amount in pounds, such as 100.00.",
        );
    };
    let amount = format!("£{amount:.2}");
    let loan = {
        let mut all = p.customers();
        let Some(c) = all.get_mut(&viewer.customer) else {
            return no_customer();
        };
        let loan = c.loans.first().map(|l| l.id.clone()).unwrap_or_default();
        c.payments.push(Payment {
            date: "today".into(),
            amount: amount.clone(),
            loan: loan.clone(),
        });
        c.activity.push(format!(
            "{} paid {amount} towards {loan}",
            viewer.actor.describe(&c.name)
        ));
        loan
    };
    if matches!(viewer.actor, Actor::Customer) {
        p.report(
            &viewer.customer,
            "payment_made",
            json!({ "amount": format!("{amount} towards {loan}") }),
            json!([]),
        )
        .await;
    }
    let mut r = Redirect::to("/payments?saved=1").into_response();
    if let Ok(v) = HeaderValue::from_str(&json!({ "field": "payment", "to": amount }).to_string()) {
        r.headers_mut()
            .insert(HeaderName::from_static("actas-audit"), v);
    }
    r
}

async fn upload(State(p): State<Portal>, viewer: Viewer, body: axum::body::Bytes) -> Response {
    let f = form(&body);
    let Some(name) = f
        .get("name")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty() && n.len() < 200)
    else {
        return message(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Name the document",
            "Give the document a name.",
        );
    };
    {
        let mut all = p.customers();
        let Some(c) = all.get_mut(&viewer.customer) else {
            return no_customer();
        };
        c.documents.push(name.clone());
        c.activity.push(format!(
            "{} uploaded {name}",
            viewer.actor.describe(&c.name)
        ));
    }
    if matches!(viewer.actor, Actor::Customer) {
        p.report(
            &viewer.customer,
            "document_uploaded",
            json!({ "document": name }),
            json!([]),
        )
        .await;
    }
    Redirect::to("/documents?saved=1").into_response()
}

#[derive(Template)]
#[template(path = "agreement.html")]
struct AgreementPage {
    who: String,
    message: Option<String>,
    c: Customer,
    loan: String,
}

async fn agreement(
    State(p): State<Portal>,
    viewer: Viewer,
    axum::extract::Query(q): axum::extract::Query<Saved>,
) -> Response {
    let Some(c) = current(&p, &viewer) else {
        return no_customer();
    };
    let loan = c.loans.first().map(|l| l.id.clone()).unwrap_or_default();
    render(AgreementPage {
        who: viewer.who(&c.name),
        message: saved(&q),
        c,
        loan,
    })
}

async fn sign_agreement(State(p): State<Portal>, viewer: Viewer) -> Response {
    if !matches!(viewer.actor, Actor::Customer) {
        return message(
            StatusCode::FORBIDDEN,
            "Only the customer can sign",
            "An agreement can only be signed by the customer themself.",
        );
    }
    let loan = {
        let mut all = p.customers();
        let Some(c) = all.get_mut(&viewer.customer) else {
            return no_customer();
        };
        let loan = c.loans.first().map(|l| l.id.clone()).unwrap_or_default();
        c.agreement_signed = Some("today".into());
        c.activity
            .push(format!("{} signed the loan agreement {loan}", c.name));
        loan
    };
    p.report(
        &viewer.customer,
        "agreement_signed",
        json!({ "document": format!("the loan agreement {loan}") }),
        json!([]),
    )
    .await;
    Redirect::to("/agreement?saved=1").into_response()
}

async fn export(State(p): State<Portal>, viewer: Viewer) -> Response {
    let Some(c) = current(&p, &viewer) else {
        return no_customer();
    };
    let mut csv = String::from("date,amount,loan\n");
    for pay in &c.payments {
        csv.push_str(&format!("{},{},{}\n", pay.date, pay.amount, pay.loan));
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"transactions.csv\"",
            ),
        ],
        csv,
    )
        .into_response()
}

async fn summary(State(p): State<Portal>, viewer: Viewer) -> Response {
    let Some(c) = current(&p, &viewer) else {
        return no_customer();
    };
    axum::Json(json!({
        "name": c.name,
        "email": c.email,
        "card": { "number": c.card_number.replace(' ', "") },
        "national_id": c.national_id,
        "loans": c.loans.iter().map(|l| json!({ "id": l.id, "balance": l.balance })).collect::<Vec<_>>(),
    }))
    .into_response()
}

struct SessionView {
    staff: String,
    started: String,
    ended: Option<String>,
    end_reason: Option<String>,
    ticket: String,
    reason: String,
    scope: String,
    approved_by: String,
    lines: Vec<String>,
}

#[derive(Template)]
#[template(path = "access.html")]
struct AccessPage {
    who: String,
    message: Option<String>,
    consent: String,
    code: Option<String>,
    sessions: Vec<SessionView>,
    staff: Vec<String>,
    /// actas's verifier page, for the downloaded extract.
    verify_url: String,
    /// The fingerprint of the key actas signs the ledger with, as actas publishes it.
    ledger_key_id: Option<String>,
    /// Signed changes support made: what changed, and its receipt.
    receipts: Vec<(String, String)>,
}

async fn access_page(
    p: &Portal,
    viewer: &Viewer,
    message_text: Option<String>,
    code: Option<String>,
) -> Response {
    if !matches!(viewer.actor, Actor::Customer) {
        return message(
            StatusCode::FORBIDDEN,
            "For the customer only",
            "Account access settings can only be seen by the customer.",
        );
    }
    let name = p
        .customers()
        .get(&viewer.customer)
        .map(|c| c.name.clone())
        .unwrap_or_default();
    let id = &viewer.customer;
    let get = |path: String| async move {
        match p.actas(reqwest::Method::GET, &path, None).await {
            Ok(r) if r.status().is_success() => r.json::<Value>().await.unwrap_or(Value::Null),
            _ => Value::Null,
        }
    };
    let account = get(format!("/accounts/{id}/access-history?per_page=50")).await;
    let who = get(format!("/accounts/{id}/staff-who-acted")).await;
    // actas sends times as milliseconds since 1970.
    let day = |v: &Value| {
        v.as_i64()
            .map(|ms| actas_core::words::clock(actas_core::Timestamp::from_millis(ms)))
    };
    let sessions = account["sessions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| SessionView {
            staff: s["staff"].as_str().unwrap_or("").to_owned(),
            started: day(&s["started_at"]).unwrap_or_default(),
            ended: day(&s["ended_at"]),
            end_reason: s["ended_because"].as_str().map(str::to_owned),
            ticket: s["ticket"].as_str().unwrap_or("").to_owned(),
            reason: s["reason"].as_str().unwrap_or("").to_owned(),
            scope: s["scope_described"].as_str().unwrap_or("").to_owned(),
            approved_by: s["approved_by"].as_str().unwrap_or("").to_owned(),
            lines: s["activity"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l["summary"].as_str().map(str::to_owned))
                .collect(),
        })
        .collect();
    let staff = who["staff"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            format!(
                "{} ({}), {}, last on {}",
                s["name"].as_str().unwrap_or(""),
                s["role"].as_str().unwrap_or(""),
                actas_core::words::count(
                    s["sessions"].as_u64().unwrap_or(0),
                    "session",
                    "sessions"
                ),
                day(&s["last_at"]).unwrap_or_default()
            )
        })
        .collect();
    let (consent, receipts) = p
        .customers()
        .get(id)
        .map(|c| (consent_label(&c.consent).to_owned(), c.receipts.clone()))
        .unwrap_or_default();
    let base = p.0.config.actas_url.trim_end_matches('/').to_owned();
    let ledger_key_id = match p
        .0
        .client
        .get(format!("{base}/.well-known/actas-ledger-keys"))
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            let keys: Value = r.json().await.unwrap_or(Value::Null);
            keys["keys"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|k| k["current"] == true)
                .and_then(|k| k["key_id"].as_str())
                .map(str::to_owned)
        }
        _ => None,
    };
    render(AccessPage {
        who: name,
        message: message_text,
        consent,
        code,
        sessions,
        staff,
        verify_url: format!("{base}/verify"),
        ledger_key_id,
        receipts,
    })
}

fn consent_label(consent: &str) -> &'static str {
    match consent {
        "revoked" => "not allowed",
        "code_required" => "only with a code from you",
        _ => "allowed",
    }
}

/// The account's activity, live, for the customer: actas's stream relayed as it comes
/// (the portal holds the app key; the browser never sees it).
async fn live(State(p): State<Portal>, viewer: Viewer) -> Response {
    if !matches!(viewer.actor, Actor::Customer) {
        return message(
            StatusCode::FORBIDDEN,
            "For the customer only",
            "The live view of support activity is for the customer.",
        );
    }
    let path = format!("/accounts/{}/activity/stream", viewer.customer);
    match p.actas(reqwest::Method::GET, &path, None).await {
        Ok(r) if r.status().is_success() => (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            axum::body::Body::from_stream(r.bytes_stream()),
        )
            .into_response(),
        _ => message(
            StatusCode::BAD_GATEWAY,
            "Not available",
            "The live view of support activity can't be shown right now.",
        ),
    }
}

async fn access(State(p): State<Portal>, viewer: Viewer) -> Response {
    access_page(&p, &viewer, None, None).await
}

async fn set_consent(State(p): State<Portal>, viewer: Viewer, body: axum::body::Bytes) -> Response {
    if !matches!(viewer.actor, Actor::Customer) {
        return message(
            StatusCode::FORBIDDEN,
            "For the customer only",
            "Only the customer can change consent.",
        );
    }
    let consent = form(&body).get("consent").cloned().unwrap_or_default();
    let r = p
        .actas(
            reqwest::Method::PUT,
            &format!("/accounts/{}/consent", viewer.customer),
            Some(json!({ "consent": consent })),
        )
        .await;
    let text = match r {
        Ok(r) if r.status().is_success() => {
            if let Some(c) = p.customers().get_mut(&viewer.customer) {
                c.consent = consent.clone();
            }
            format!(
                "Saved: support staff access is now {}.",
                consent_label(&consent)
            )
        }
        Ok(r) => format!("actas refused the change ({}).", r.status()),
        Err(e) => format!("actas could not be reached: {e}"),
    };
    access_page(&p, &viewer, Some(text), None).await
}

async fn make_code(State(p): State<Portal>, viewer: Viewer) -> Response {
    if !matches!(viewer.actor, Actor::Customer) {
        return message(
            StatusCode::FORBIDDEN,
            "For the customer only",
            "Only the customer can make a code.",
        );
    }
    let r = p
        .actas(
            reqwest::Method::POST,
            &format!("/accounts/{}/confirmation-codes", viewer.customer),
            None,
        )
        .await;
    match r {
        Ok(r) if r.status().is_success() => {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            access_page(&p, &viewer, None, v["code"].as_str().map(str::to_owned)).await
        }
        _ => {
            access_page(
                &p,
                &viewer,
                Some("A code could not be made right now.".into()),
                None,
            )
            .await
        }
    }
}

async fn extract(State(p): State<Portal>, viewer: Viewer) -> Response {
    if !matches!(viewer.actor, Actor::Customer) {
        return message(
            StatusCode::FORBIDDEN,
            "For the customer only",
            "Only the customer can download their audit log.",
        );
    }
    match p
        .actas(
            reqwest::Method::GET,
            &format!("/accounts/{}/audit-extract", viewer.customer),
            None,
        )
        .await
    {
        Ok(r) if r.status().is_success() => {
            let body = r.bytes().await.unwrap_or_default();
            (
                [
                    (header::CONTENT_TYPE, "application/json".to_owned()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!(
                            "attachment; filename=\"audit-extract-{}.json\"",
                            viewer.customer
                        ),
                    ),
                ],
                body,
            )
                .into_response()
        }
        _ => message(
            StatusCode::BAD_GATEWAY,
            "Not available",
            "The audit log could not be fetched from actas right now.",
        ),
    }
}

/// Session notifications from actas: checked (signature, freshness) and kept for the page.
async fn notification(
    State(p): State<Portal>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(secret) = p.0.config.webhook_secret.clone() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let ts: i64 = h("actas-webhook-timestamp").parse().unwrap_or(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if actas_core::webhook::verify(&secret, ts, &h("actas-signature"), &body, now).is_err() {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let account = v["account"].as_str().unwrap_or("").to_owned();
    let summary = v["event"]["summary"].as_str().unwrap_or("").to_owned();
    p.0.notifications
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((account, summary));
    StatusCode::NO_CONTENT.into_response()
}
