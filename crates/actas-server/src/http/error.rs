//! The one place service errors become HTTP responses:
//! `{ "error": { "code", "message", "field" } }` with the right status. Internal failures
//! get an opaque message and a correlation id; the cause is logged, never sent.

use crate::service::ServiceError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    field: Option<String>,
}

impl ApiError {
    /// An error with a status, a machine code and a message for people.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    /// Not signed in.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    /// Signed in but not allowed.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// The same error, about `field`.
    pub fn on(self, field: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..self
        }
    }

    /// Its status, code, message and field.
    pub fn parts(&self) -> (StatusCode, &'static str, &str, Option<&str>) {
        (self.status, self.code, &self.message, self.field.as_deref())
    }

    /// Bad input in a field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message)
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid { field, message } => ApiError::invalid(field, message),
            ServiceError::Unauthenticated(m) => ApiError::unauthenticated(m),
            ServiceError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            ServiceError::Forbidden(m) => ApiError::forbidden(m),
            ServiceError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            ServiceError::TooMany(m) => ApiError::new(StatusCode::TOO_MANY_REQUESTS, "too_many", m),
            ServiceError::Unavailable(cause) => {
                tracing::error!(error = %cause, "ledger unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    "the audit ledger can't be written right now, so nothing was done; try again shortly",
                )
            }
            ServiceError::Unexpected(cause) => {
                let id = correlation_id();
                tracing::error!(error = ?cause, correlation_id = %id, "unexpected failure");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("something went wrong on our side (reference {id})"),
                )
            }
        }
    }
}

fn correlation_id() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every error answer's body, as the API document describes it.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, in words and as a code to branch on.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// A short code that stays the same: `invalid`, `not_found`, `bad_json`, …
    pub code: &'static str,
    /// What went wrong and what to do, for a person.
    pub message: String,
    /// The body field, query parameter or path segment at fault (`limit`,
    /// `events[3].kind`), or `body`, `path`, `method`; null when no one input is.
    pub field: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                field: self.field,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

/// The API document's error answers, one per status, each described once (they all carry
/// an [`ErrorBody`]).
pub mod responses {
    use super::ErrorBody;

    /// The body is not JSON.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct NotJson(ErrorBody);

    /// No valid credential came with the request.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct Unauthenticated(ErrorBody);

    /// The caller's role may not do this, or a cookie request lacks its CSRF token or the console's Origin.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct Forbidden(ErrorBody);

    /// There is no such request, session, account or tree size.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct NotFound(ErrorBody);

    /// It can't be done in its present state.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct Conflict(ErrorBody);

    /// The body is over 2 MiB.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct TooLarge(ErrorBody);

    /// The body is not sent as application/json.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct NotSentAsJson(ErrorBody);

    /// A value, parameter or path segment can't be used; `field` names it.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct Invalid(ErrorBody);

    /// Too many sign-ins from this address or for this account; wait a minute.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct TooMany(ErrorBody);

    /// Something went wrong on our side.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct Internal(ErrorBody);

    /// The ledger can't be written right now, so nothing was done.
    #[derive(utoipa::ToResponse)]
    #[allow(dead_code)]
    pub struct LedgerUnavailable(ErrorBody);
}

pub use responses::*;
