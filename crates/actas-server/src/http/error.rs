//! The one place service errors become HTTP responses:
//! `{ "error": { "code", "message", "field" } }` with the right status. Internal failures
//! get an opaque message and a correlation id; the cause is logged, never sent.

use crate::service::ServiceError;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

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

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            "unsupported_media_type"
        } else {
            "bad_json"
        };
        let text = r.body_text();
        // serde names the field in backticks: "missing field `reason`", "unknown field `x`".
        // and axum puts the path of a wrongly typed value first: "…target type: minutes: …".
        let field = text
            .split_once("field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name.to_owned())
            .or_else(|| {
                text.split_once("target type: ")
                    .and_then(|(_, rest)| rest.split_once(": "))
                    .map(|(path, _)| path.to_owned())
                    .filter(|p| !p.contains(' '))
            });
        ApiError {
            field,
            ..ApiError::new(
                status,
                code,
                format!("the request body could not be read: {text}"),
            )
        }
    }
}

fn correlation_id() -> String {
    let mut b = [0u8; 6];
    let _ = getrandom::getrandom(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({ "error": { "code": self.code, "message": self.message, "field": self.field } });
        (self.status, Json(body)).into_response()
    }
}

/// JSON bodies whose parse errors come back in the API's error format.
#[derive(axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Body<T>(pub T);
