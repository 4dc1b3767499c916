//! What the API reads from a request: a JSON body ([`Body`]), query parameters
//! ([`Params`]) and path segments ([`PathParts`]). Each is parsed with serde and, when it
//! can't be, refused in the API's one error shape with the field named and what is wrong
//! said in words; a parser's own text ("invalid digit found in string") never reaches
//! the client. Unknown fields and parameters are refused everywhere (each input type
//! says `deny_unknown_fields`), so a misspelt name is an error, never silently ignored.

use super::error::ApiError;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The largest request body the API reads, in bytes (a full batch of events fits).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// A JSON body (`Content-Type: application/json`).
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(not_json());
        }
        let bytes = Bytes::from_request(req, state).await.map_err(unread)?;
        json(&bytes).map(Body)
    }
}

fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as JSON, with the header Content-Type: application/json",
    )
    .on("body")
}

/// Whether the request says its body is JSON (`application/json`, or any `+json` type).
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|essence| essence.trim().to_ascii_lowercase())
        .is_some_and(|essence| {
            essence == "application/json"
                || (essence.starts_with("application/") && essence.ends_with("+json"))
        })
}

/// A body that could not be read at all: too large, or cut off.
fn unread(e: BytesRejection) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the body is larger than the {} MiB this API reads",
                BODY_LIMIT / (1024 * 1024)
            ),
        )
        .on("body")
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            "the body could not be read to its end",
        )
        .on("body")
    }
}

/// Parses a JSON body: 400 when it is not JSON at all, 422 naming the field when it is
/// JSON of the wrong shape.
pub fn json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Every body this API takes is an object. Anything else is refused whole (serde
    // would read a list into a struct's fields one by one, and name "[0]").
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        serde::de::IgnoredAny::deserialize(&mut de)
            .and_then(|_| de.end())
            .map_err(|e| json_refused("", &e))?;
        return Err(ApiError::invalid(
            "body",
            "the body should be a JSON object ({…})",
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| json_refused(&e.path().to_string(), e.inner()))?;
    // Nothing but white space may follow the value.
    de.end().map_err(|e| json_refused("", &e))?;
    Ok(value)
}

fn json_refused(path: &str, e: &serde_json::Error) -> ApiError {
    if e.is_data() {
        let message = e.to_string();
        // serde_json adds " at line 1 column 9" to data errors too.
        let message = match message.rsplit_once(" at line ") {
            Some((m, _)) => m.to_owned(),
            None => message,
        };
        described(path, &message, Input::Body)
    } else {
        let at = format!("on line {}, column {}", e.line(), e.column());
        let what = if e.is_eof() {
            format!("the body is not complete JSON: it ends early, {at}")
        } else {
            format!("the body is not valid JSON: it goes wrong {at}")
        };
        ApiError::new(StatusCode::BAD_REQUEST, "bad_json", what).on("body")
    }
}

/// One item of a JSON body already read as a value (an event in a batch), parsed as
/// `T`; errors name the field under `at` (`events[3].kind`).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value, at: &str) -> Result<T, ApiError> {
    if !value.is_object() {
        let field = if at.is_empty() { "body" } else { at };
        return Err(ApiError::invalid(
            field,
            format!("{field} should be a JSON object ({{…}})"),
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = match (path.as_str(), at) {
            (".", at) => at.to_owned(),
            (path, "") => path.to_owned(),
            (path, at) => format!("{at}.{path}"),
        };
        described(&path, &e.inner().to_string(), Input::Body)
    })
}

/// A whole number that JSON may write as `30` or `30.0` (one number to JSON Schema),
/// for `#[serde(deserialize_with)]` on an `Option<u64>` body field.
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(whole) = n.as_u64() {
        return Ok(Some(whole));
    }
    match n.as_f64() {
        // Below 2^53 every whole f64 is exact.
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9_007_199_254_740_992.0 => {
            Ok(Some(f as u64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "should be a whole number (0, 1, 2, …), not {n}"
        ))),
    }
}

/// The query string's parameters.
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        query(parts.uri.query().unwrap_or_default()).map(Params)
    }
}

/// Parses a query string (without its `?`) as `T`.
pub fn query<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let de = serde_html_form::Deserializer::from_bytes(text.as_bytes());
    serde_path_to_error::deserialize(de)
        .map_err(|e| described(&e.path().to_string(), &e.inner().to_string(), Input::Query))
}

/// An operation that takes no query parameters: any it is given are refused, as an
/// unknown one is where there are some.
pub struct NoParams;

impl<S: Send + Sync> FromRequestParts<S> for NoParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.uri.query().unwrap_or_default() {
            "" => Ok(NoParams),
            text => {
                let name = form_name(text);
                Err(ApiError::invalid(
                    &name,
                    format!("there is no parameter {name}; this operation takes none"),
                ))
            }
        }
    }
}

/// The first parameter's name in a query string, decoded.
fn form_name(text: &str) -> String {
    let first = text.split('&').next().unwrap_or_default();
    let name = first
        .split('=')
        .next()
        .unwrap_or_default()
        .replace('+', " ");
    percent_decode(&name)
}

/// `%XX` escapes decoded, invalid UTF-8 replaced (a name only goes into a message).
fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("{text}=").as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default()
}

/// A JSON body that may be left out: nothing (or only white space) reads as the
/// default; anything else must be JSON, sent as JSON.
pub struct OptionalBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let json_sent = is_json(req.headers());
        let bytes = Bytes::from_request(req, state).await.map_err(unread)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalBody(T::default()));
        }
        if !json_sent {
            return Err(not_json());
        }
        json(&bytes).map(OptionalBody)
    }
}

/// The path's `{segments}`.
pub struct PathParts<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParts<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(v)| PathParts(v))
            .map_err(path_rejected)
    }
}

fn path_rejected(r: PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    let PathRejection::FailedToDeserializePathParams(e) = r else {
        // The route and the handler disagree about the segments: our fault, not the
        // caller's.
        tracing::error!(rejection = %r, "a route's path segments don't fit its handler");
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side reading the path",
        );
    };
    match e.into_kind() {
        ErrorKind::InvalidUtf8InPathParam { key } => {
            ApiError::invalid(&key, format!("{key} is not UTF-8 text once decoded"))
        }
        ErrorKind::ParseErrorAtKey {
            key, expected_type, ..
        } => ApiError::invalid(&key, format!("{key} should be {}", expected(expected_type))),
        ErrorKind::DeserializeError { key, message, .. } => described(&key, &message, Input::Path),
        other => ApiError::invalid("path", format!("the path can't be read: {other}")),
    }
}

/// Where a refused value came from, for the words that say so.
#[derive(Clone, Copy)]
enum Input {
    Body,
    Query,
    Path,
}

/// A serde error about the value at `path` (`.` or empty at the top), as the API's
/// 422 answer: the field it is about and what is wrong, in words.
fn described(path: &str, message: &str, input: Input) -> ApiError {
    let at = match path {
        "" | "." => None,
        p => Some(p),
    };
    // serde_path_to_error's path stops at the object for a missing field, and takes in
    // the key itself for an unknown one.
    let under = |name: &str| match at {
        Some(p) if p == name || p.ends_with(&format!(".{name}")) => p.to_owned(),
        Some(p) => format!("{p}.{name}"),
        None => name.to_owned(),
    };
    let named = |rest: &str| -> Option<(String, String)> {
        let (_, after) = rest.split_once('`')?;
        let (name, tail) = after.split_once('`')?;
        Some((name.to_owned(), tail.to_owned()))
    };
    let noun = match input {
        Input::Body => "field",
        Input::Query => "parameter",
        Input::Path => "segment",
    };
    if let Some((name, _)) = message.strip_prefix("missing field ").and_then(named) {
        let field = under(&name);
        return ApiError::invalid(&field, format!("{field} is required"));
    }
    if let Some((name, tail)) = message.strip_prefix("unknown field ").and_then(named) {
        let field = under(&name);
        let known: Vec<&str> = tail
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|s| !s.is_empty())
            .collect();
        let takes = if known.is_empty() {
            format!("there are no {noun}s here")
        } else {
            format!("the {noun}s here are {}", known.join(", "))
        };
        return ApiError::invalid(&field, format!("there is no {noun} {field}; {takes}"));
    }
    if let Some((name, _)) = message.strip_prefix("duplicate field ").and_then(named) {
        let field = under(&name);
        return ApiError::invalid(&field, format!("{field} is given more than once"));
    }
    if let Some((name, tail)) = message.strip_prefix("unknown variant ").and_then(named) {
        let field = at.unwrap_or("body").to_owned();
        let known: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
        return ApiError::invalid(
            &field,
            format!("{field} is one of {}, not {name:?}", known.join(", ")),
        );
    }
    let field = at.unwrap_or(match input {
        Input::Body => "body",
        Input::Query => "query",
        Input::Path => "path",
    });
    let what = match message {
        "invalid digit found in string" | "invalid digit" => {
            format!("{field} should be a whole number (0, 1, 2, …)")
        }
        "cannot parse integer from empty string" => {
            format!("{field} is empty; give a whole number")
        }
        // serde_html_form's words for a parameter given twice.
        "unsupported value" if matches!(input, Input::Query) => {
            format!("{field} is given more than once")
        }
        "number too large to fit in target type" => format!("{field} is too large a number"),
        "number too small to fit in target type" => format!("{field} is too small a number"),
        m => {
            if let Some((got, want)) = m
                .strip_prefix("invalid type: ")
                .or_else(|| m.strip_prefix("invalid value: "))
                .and_then(|r| r.rsplit_once(", expected "))
            {
                format!("{field} should be {}, not {}", expected(want), given(got))
            } else if let Some((n, want)) = m
                .strip_prefix("invalid length ")
                .and_then(|r| r.split_once(", expected "))
            {
                format!("{field} should be {}, not {n} items", expected(want))
            } else if m.starts_with("should be ") {
                format!("{field} {m}")
            } else {
                // A message of our own (a domain type's parse error), already in words.
                format!("{field}: {m}")
            }
        }
    };
    ApiError::invalid(field, what)
}

/// serde's name for the type it wanted, as a person would say it.
fn expected(want: &str) -> String {
    match want.trim() {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0, 1, 2, …)".into(),
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number".into(),
        "f32" | "f64" | "a JSON number" => "a number".into(),
        "a string" | "a borrowed string" | "string" | "String" => "text".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "a list".into(),
        "a map" => "an object".into(),
        "a character" | "char" => "one character".into(),
        w if w.starts_with("struct ") => "an object".into(),
        w if w.starts_with("an option") || w.starts_with("option") => "a value or null".into(),
        w => w.to_owned(),
    }
}

/// serde's description of the value it got, as a person would say it.
fn given(got: &str) -> String {
    let quoted = |s: &str| s.trim_matches('`').to_owned();
    match got.trim() {
        "null" => "null".into(),
        "sequence" => "a list".into(),
        "map" => "an object".into(),
        "unit value" => "nothing".into(),
        g => match g.split_once(' ') {
            Some(("integer" | "floating" | "boolean", rest)) => {
                quoted(rest.trim_start_matches("point "))
            }
            Some(("string", rest)) => rest.to_owned(),
            _ => g.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Ask {
        reason: String,
        minutes: Option<u32>,
        #[serde(default)]
        capabilities: Vec<String>,
        inner: Option<Inner>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        flag: bool,
    }

    fn refused<T: std::fmt::Debug>(r: Result<T, ApiError>) -> (StatusCode, String, String) {
        let e = r.expect_err("refused");
        let (status, code, message, field) = e.parts();
        assert!(!code.is_empty());
        (
            status,
            field.unwrap_or_default().to_owned(),
            message.to_owned(),
        )
    }

    #[test]
    fn a_body_of_the_wrong_shape_names_the_field_in_words() {
        let cases: &[(&str, &str, &str)] = &[
            (r#"{}"#, "reason", "reason is required"),
            (
                r#"{"reason": "x", "minuts": 5}"#,
                "minuts",
                "there is no field minuts; the fields here are reason, minutes, capabilities, inner",
            ),
            (
                r#"{"reason": "x", "minutes": "ten"}"#,
                "minutes",
                "minutes should be a whole number (0, 1, 2, …), not \"ten\"",
            ),
            (
                r#"{"reason": "x", "minutes": -1}"#,
                "minutes",
                "minutes should be a whole number (0, 1, 2, …), not -1",
            ),
            (r#"{"reason": 5}"#, "reason", "reason should be text, not 5"),
            (
                r#"{"reason": "x", "capabilities": [1]}"#,
                "capabilities[0]",
                "capabilities[0] should be text, not 1",
            ),
            (
                r#"{"reason": "x", "inner": {"flag": "yes"}}"#,
                "inner.flag",
                "inner.flag should be true or false, not \"yes\"",
            ),
            (
                r#"{"reason": "x", "inner": {}}"#,
                "inner.flag",
                "inner.flag is required",
            ),
            (
                r#"{"reason": "x", "reason": "y"}"#,
                "reason",
                "reason is given more than once",
            ),
            (r#"[]"#, "body", "the body should be a JSON object ({…})"),
            (
                r#"[1, 2]"#,
                "body",
                "the body should be a JSON object ({…})",
            ),
            (
                r#""text""#,
                "body",
                "the body should be a JSON object ({…})",
            ),
        ];
        for (body, field, words) in cases {
            let (status, f, m) = refused(json::<Ask>(body.as_bytes()));
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!((f.as_str(), m.as_str()), (*field, *words), "{body}");
        }
    }

    #[derive(Debug, Deserialize)]
    struct Minutes {
        #[serde(default, deserialize_with = "whole_number")]
        minutes: Option<u64>,
    }

    #[test]
    fn a_whole_number_may_be_written_as_json_writes_it() {
        for (body, want) in [
            (r#"{"minutes": 30}"#, Some(30)),
            (r#"{"minutes": 30.0}"#, Some(30)),
            (r#"{"minutes": 3e1}"#, Some(30)),
            (r#"{"minutes": null}"#, None),
            (r#"{}"#, None),
        ] {
            assert_eq!(
                json::<Minutes>(body.as_bytes()).expect(body).minutes,
                want,
                "{body}"
            );
        }
        for (body, words) in [
            (
                r#"{"minutes": 1.5}"#,
                "minutes should be a whole number (0, 1, 2, …), not 1.5",
            ),
            (
                r#"{"minutes": -1}"#,
                "minutes should be a whole number (0, 1, 2, …), not -1",
            ),
            (
                r#"{"minutes": 1e300}"#,
                "minutes should be a whole number (0, 1, 2, …), not 1e+300",
            ),
            (
                r#"{"minutes": "30"}"#,
                "minutes should be a number, not \"30\"",
            ),
        ] {
            let (status, f, m) = refused(json::<Minutes>(body.as_bytes()));
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!((f.as_str(), m.as_str()), ("minutes", words), "{body}");
        }
    }

    #[test]
    fn a_body_that_is_not_json_says_where_it_goes_wrong() {
        for (body, words) in [
            (
                "{\"reason\": ",
                "the body is not complete JSON: it ends early, on line 1, column 11",
            ),
            (
                "{reason}",
                "the body is not valid JSON: it goes wrong on line 1, column 2",
            ),
            (
                "{\"reason\": \"x\"} trailing",
                "the body is not valid JSON: it goes wrong on line 1, column 17",
            ),
            (
                "",
                "the body is not complete JSON: it ends early, on line 1, column 0",
            ),
        ] {
            let (status, f, m) = refused(json::<Ask>(body.as_bytes()));
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!((f.as_str(), m.as_str()), ("body", words), "{body}");
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
        after: Option<u64>,
        q: Option<String>,
        format: Option<Format>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    enum Format {
        #[serde(rename = "json")]
        Json,
        #[serde(rename = "csv")]
        Csv,
    }

    #[test]
    fn query_parameters_are_named_and_said_in_words() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "limit=-1",
                "limit",
                "limit should be a whole number (0, 1, 2, …)",
            ),
            (
                "limit=ten",
                "limit",
                "limit should be a whole number (0, 1, 2, …)",
            ),
            ("limit=99999999999", "limit", "limit is too large a number"),
            (
                "limt=5",
                "limt",
                "there is no parameter limt; the parameters here are limit, after, q, format",
            ),
            ("limit=1&limit=2", "limit", "limit is given more than once"),
            (
                "format=xml",
                "format",
                "format is one of json, csv, not \"xml\"",
            ),
        ];
        for (q, field, words) in cases {
            let (status, f, m) = refused(query::<Page>(q));
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{q}");
            assert_eq!((f.as_str(), m.as_str()), (*field, *words), "{q}");
        }
        let ok: Page = query("limit=5&q=acme%20co").expect("parsed");
        assert_eq!((ok.limit, ok.q.as_deref()), (Some(5), Some("acme co")));
    }
}
