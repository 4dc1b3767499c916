//! SCIM 2.0 users (`/scim/v2/Users`, RFC 7643/7644), as identity providers push them:
//! create, get, list and filter by `userName`, `PATCH active=false`, `PUT`, delete. A
//! bearer token from configuration guards it; without one configured it is not served.
//!
//! Only what actas keeps is taken from a user: the e-mail (`userName`), a display name
//! and `active`. Other attributes a provider sends (phone numbers, titles) are accepted
//! and not stored. Deleting a user deactivates them: staff records stay, as the ledger
//! names them. Written by hand: no maintained crate serves SCIM for axum.

use super::AppState;
use crate::service::ServiceError;
use actas_core::ids::StaffId;
use actas_core::staff::{DisplayName, Email};
use actas_store::StaffRecord;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const LIST: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The most users one list answer holds.
const MAX_COUNT: usize = 200;

/// The SCIM routes, under `/scim/v2`.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/Users", get(list).post(create))
        .route("/Users/{id}", get(one).patch(patch).put(put).delete(delete))
        .layer(axum::middleware::from_fn_with_state(state, bearer))
}

/// A SCIM answer: `application/scim+json`.
fn scim(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/scim+json")],
        body.to_string(),
    )
        .into_response()
}

/// A SCIM error (RFC 7644 §3.12), with its `scimType` where one applies.
struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        scim(self.status, body)
    }
}

fn error(
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: impl std::fmt::Display,
) -> ScimError {
    ScimError {
        status,
        scim_type,
        detail: detail.to_string(),
    }
}

fn from_service(e: ServiceError) -> ScimError {
    match e {
        ServiceError::NotFound(m) => error(StatusCode::NOT_FOUND, None, m),
        ServiceError::Conflict(m) => error(StatusCode::CONFLICT, Some("uniqueness"), m),
        ServiceError::Invalid { field, message } => error(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            format!("{field}: {message}"),
        ),
        ServiceError::Forbidden(m) => error(StatusCode::FORBIDDEN, None, m),
        e @ ServiceError::Unavailable(_) => {
            tracing::error!(error = %e, "SCIM request failed");
            error(StatusCode::SERVICE_UNAVAILABLE, None, e)
        }
        other => {
            tracing::error!(error = %other, "SCIM request failed");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                None,
                "something went wrong in actas; nothing was changed",
            )
        }
    }
}

/// Refuses any request without the configured bearer token.
async fn bearer(
    State(state): State<AppState>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    if !state.service.directory_enabled() {
        return error(
            StatusCode::NOT_FOUND,
            None,
            "user sync (SCIM) is not set up here",
        )
        .into_response();
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    match token {
        Some(t) if state.service.directory_allows(t) => next.run(req).await,
        _ => {
            tracing::warn!("a SCIM request without the right bearer token was refused");
            error(
                StatusCode::UNAUTHORIZED,
                None,
                "a valid bearer token is needed for user sync",
            )
            .into_response()
        }
    }
}

/// A staff member as a SCIM user.
fn user(s: &StaffRecord) -> Value {
    let id = s.id.get().to_string();
    json!({
        "schemas": [USER],
        "id": id,
        "userName": s.email.as_str(),
        "displayName": s.name.as_str(),
        "name": {"formatted": s.name.as_str()},
        "emails": [{"value": s.email.as_str(), "primary": true}],
        "active": s.active,
        "meta": {"resourceType": "User", "location": format!("/scim/v2/Users/{id}")},
    })
}

fn staff_id(id: &str) -> Result<StaffId, ScimError> {
    id.parse::<i64>()
        .ok()
        .and_then(|n| StaffId::new(n).ok())
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                None,
                format!("there is no user {id}"),
            )
        })
}

fn json_body(body: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice(body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("the body is not JSON: {e}"),
        )
    })
}

/// `active` as providers send it: a boolean, or (Entra ID) the strings "True"/"False".
fn active_of(v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(error(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            format!("active must be true or false, not {other}"),
        )),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<String>,
    count: Option<String>,
}

/// `userName eq "value"`: the one filter providers use to find a user before pushing it.
fn user_name_filter(filter: &str) -> Result<String, ScimError> {
    let bad = || {
        error(
            StatusCode::BAD_REQUEST,
            Some("invalidFilter"),
            format!(
                "only filters of the form userName eq \"someone@example.com\" are supported, not {filter:?}"
            ),
        )
    };
    let mut parts = filter.trim().splitn(3, ' ');
    let (Some(attr), Some(op), Some(value)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if !attr.eq_ignore_ascii_case("userName") || !op.eq_ignore_ascii_case("eq") {
        return Err(bad());
    }
    let value = value.trim();
    let inner = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .ok_or_else(bad)?;
    serde_json::from_str::<String>(&format!("\"{inner}\"")).map_err(|_| bad())
}

fn number(v: &Option<String>, name: &str, default: usize) -> Result<usize, ScimError> {
    match v.as_deref() {
        None | Some("") => Ok(default),
        Some(t) => t.parse().map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                format!("{name} must be a whole number, not {t:?}"),
            )
        }),
    }
}

async fn list(
    State(state): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ScimError> {
    let start = number(&q.start_index, "startIndex", 1)?.max(1);
    let count = number(&q.count, "count", MAX_COUNT)?.min(MAX_COUNT);
    let mut users = state
        .service
        .directory_users()
        .await
        .map_err(from_service)?;
    if let Some(filter) = q.filter.as_deref().filter(|f| !f.trim().is_empty()) {
        let name = user_name_filter(filter)?;
        users.retain(|s| s.email.as_str().eq_ignore_ascii_case(&name));
    }
    let total = users.len();
    let page: Vec<Value> = users.iter().skip(start - 1).take(count).map(user).collect();
    Ok(scim(
        StatusCode::OK,
        json!({
            "schemas": [LIST],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    ))
}

async fn one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response, ScimError> {
    let staff = state
        .service
        .directory_user(staff_id(&id)?)
        .await
        .map_err(from_service)?;
    Ok(scim(StatusCode::OK, user(&staff)))
}

/// The e-mail and name of a pushed user: `userName` (or the primary e-mail), and
/// `displayName`, `name.formatted` or given and family names (or the e-mail's local
/// part).
fn identity_of(body: &Value) -> Result<(Email, DisplayName), ScimError> {
    let invalid = |field: &str, why: String| {
        error(
            StatusCode::BAD_REQUEST,
            Some("invalidValue"),
            format!("{field}: {why}"),
        )
    };
    let primary = body["emails"]
        .as_array()
        .and_then(|es| {
            es.iter()
                .find(|e| e["primary"] == json!(true))
                .or(es.first())
        })
        .and_then(|e| e["value"].as_str());
    let user_name = body["userName"].as_str().or(primary).ok_or_else(|| {
        invalid(
            "userName",
            "a user needs a userName (their e-mail address)".into(),
        )
    })?;
    let email = Email::parse(user_name).map_err(|e| invalid("userName", e.to_string()))?;
    let given = [
        body["name"]["givenName"].as_str(),
        body["name"]["familyName"].as_str(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let name = body["displayName"]
        .as_str()
        .or(body["name"]["formatted"].as_str())
        .map(str::to_owned)
        .filter(|n| !n.trim().is_empty())
        .or(Some(given).filter(|n| !n.trim().is_empty()))
        .unwrap_or_else(|| {
            email
                .as_str()
                .split('@')
                .next()
                .unwrap_or("staff")
                .to_owned()
        });
    let name = DisplayName::parse(&name).map_err(|e| invalid("displayName", e.to_string()))?;
    Ok((email, name))
}

async fn create(State(state): State<AppState>, body: Bytes) -> Result<Response, ScimError> {
    let body = json_body(&body)?;
    let (email, name) = identity_of(&body)?;
    let active = match body.get("active") {
        Some(v) => active_of(v)?,
        None => true,
    };
    let staff = state
        .service
        .directory_create(email, name, active)
        .await
        .map_err(from_service)?;
    Ok(scim(StatusCode::CREATED, user(&staff)))
}

/// What a PATCH asks of `active`, if anything (RFC 7644 §3.5.2): `replace`/`add` with
/// `path: "active"`, or without a path and `{"active": …}` as the value.
fn patched_active(body: &Value) -> Result<Option<bool>, ScimError> {
    let bad = |why: &str| error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), why);
    if !body["schemas"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v == PATCH))
    {
        return Err(bad("a PATCH body names the PatchOp schema"));
    }
    let ops = body["Operations"]
        .as_array()
        .ok_or_else(|| bad("a PATCH body has Operations"))?;
    let mut active = None;
    for op in ops {
        let kind = op["op"].as_str().unwrap_or_default().to_ascii_lowercase();
        if kind != "replace" && kind != "add" {
            continue;
        }
        match op["path"].as_str() {
            Some(p) if p.eq_ignore_ascii_case("active") => active = Some(active_of(&op["value"])?),
            None => {
                if let Some(v) = op["value"].get("active") {
                    active = Some(active_of(v)?);
                }
            }
            Some(_) => {}
        }
    }
    Ok(active)
}

async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let id = staff_id(&id)?;
    let body = json_body(&body)?;
    let staff = match patched_active(&body)? {
        Some(active) => state
            .service
            .directory_set_active(id, active)
            .await
            .map_err(from_service)?,
        None => state
            .service
            .directory_user(id)
            .await
            .map_err(from_service)?,
    };
    Ok(scim(StatusCode::OK, user(&staff)))
}

async fn put(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ScimError> {
    let id = staff_id(&id)?;
    let body = json_body(&body)?;
    let current = state
        .service
        .directory_user(id)
        .await
        .map_err(from_service)?;
    let (email, _) = identity_of(&body)?;
    if email != current.email {
        return Err(error(
            StatusCode::BAD_REQUEST,
            Some("mutability"),
            "a user's userName (their e-mail) can't be changed here; deactivate them and add the new address",
        ));
    }
    let active = match body.get("active") {
        Some(v) => active_of(v)?,
        None => current.active,
    };
    let staff = state
        .service
        .directory_set_active(id, active)
        .await
        .map_err(from_service)?;
    Ok(scim(StatusCode::OK, user(&staff)))
}

async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let id = staff_id(&id)?;
    state
        .service
        .directory_set_active(id, false)
        .await
        .map_err(from_service)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_name_filter_is_read_and_others_refused() {
        assert_eq!(
            user_name_filter("userName eq \"sarah@example.com\"").ok(),
            Some("sarah@example.com".into())
        );
        assert_eq!(
            user_name_filter("USERNAME EQ \"a\\\"b@example.com\"").ok(),
            Some("a\"b@example.com".into())
        );
        assert!(user_name_filter("emails co \"example\"").is_err());
        assert!(user_name_filter("userName eq sarah").is_err());
    }

    #[test]
    fn active_comes_as_a_boolean_or_as_entra_writes_it() {
        assert_eq!(active_of(&json!(false)).ok(), Some(false));
        assert_eq!(active_of(&json!("False")).ok(), Some(false));
        assert_eq!(active_of(&json!("True")).ok(), Some(true));
        assert!(active_of(&json!(0)).is_err());
    }
}
