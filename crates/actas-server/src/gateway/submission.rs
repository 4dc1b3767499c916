//! What a request submits, read once for every phase that needs it: the query's fields,
//! and the body's — URL-encoded and multipart forms, JSON — as [`Field`]s. `record` uses
//! them for the ledger (masked), for a POST's `_method`, and to refuse or leave out
//! placeholders the gateway served ([`write_back`](actas_core::gateway::submission)).
//! A body of another kind is opaque: it is only searched for the placeholder mark.

use super::error::GatewayError;
use actas_core::gateway::submission::{Field, Source, drop_json_placeholders, json_fields};
use actas_core::policy::masking::carries_placeholder;
use actas_core::policy::routes::Method;
use axum::body::Bytes;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

/// How a body is encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Encoding {
    /// No body.
    Empty,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `multipart/form-data`, with its boundary.
    Multipart(String),
    /// JSON.
    Json,
    /// Anything else: not read, only searched for the placeholder mark.
    Opaque,
}

/// A request's fields, read.
#[derive(Debug, Clone)]
pub(super) struct Submission {
    /// Every field, query first.
    pub(super) fields: Vec<Field>,
    encoding: Encoding,
    /// Whether an opaque body holds the placeholder mark.
    opaque_placeholder: bool,
}

fn essence(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

/// The query's fields.
fn query_fields(query: Option<&str>) -> Result<Vec<Field>, GatewayError> {
    let Some(q) = query else {
        return Ok(Vec::new());
    };
    let pairs: Vec<(String, String)> =
        serde_html_form::from_str(q).map_err(|_| GatewayError::Unreadable("its query string"))?;
    Ok(pairs
        .into_iter()
        .map(|(name, value)| Field {
            name,
            value,
            source: Source::Query,
        })
        .collect())
}

/// Reads the request's fields. A form or JSON body that can't be read is refused: the
/// product might read it some other way than the gateway recorded it.
pub(super) async fn read(parts: &Parts, body: &Bytes) -> Result<Submission, GatewayError> {
    let mut fields = query_fields(parts.uri.query())?;
    let content_type = essence(&parts.headers);
    let lower = content_type.to_ascii_lowercase();
    let kind = lower.split(';').next().unwrap_or("").trim().to_owned();
    let encoding = if body.is_empty() {
        Encoding::Empty
    } else if kind == "application/x-www-form-urlencoded" {
        Encoding::Form
    } else if kind == "multipart/form-data" {
        let boundary = multer::parse_boundary(&content_type)
            .map_err(|_| GatewayError::Unreadable("its multipart form"))?;
        Encoding::Multipart(boundary)
    } else if kind == "application/json" || kind == "text/json" || kind.ends_with("+json") {
        Encoding::Json
    } else {
        Encoding::Opaque
    };
    let mut opaque_placeholder = false;
    match &encoding {
        Encoding::Empty => {}
        Encoding::Form => {
            let pairs: Vec<(String, String)> = serde_html_form::from_bytes(body)
                .map_err(|_| GatewayError::Unreadable("its form"))?;
            fields.extend(pairs.into_iter().map(|(name, value)| Field {
                name,
                value,
                source: Source::Body,
            }));
        }
        Encoding::Multipart(boundary) => {
            let body = body.clone();
            let stream =
                futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(body) });
            let mut form = multer::Multipart::new(stream, boundary.clone());
            let unreadable = |_| GatewayError::Unreadable("its multipart form");
            while let Some(part) = form.next_field().await.map_err(unreadable)? {
                let name = part.name().unwrap_or("").to_owned();
                let value = match part.file_name() {
                    // A file's content is the customer's document, not a field; its
                    // name is recorded.
                    Some(file) => {
                        let file = file.to_owned();
                        let size = part.bytes().await.map_err(unreadable)?.len();
                        format!("{file} ({size} bytes)")
                    }
                    None => part.text().await.map_err(unreadable)?,
                };
                fields.push(Field {
                    name,
                    value,
                    source: Source::Body,
                });
            }
        }
        Encoding::Json => {
            let doc: serde_json::Value =
                serde_json::from_slice(body).map_err(|_| GatewayError::Unreadable("its JSON"))?;
            fields.extend(json_fields(&doc));
        }
        Encoding::Opaque => {
            opaque_placeholder = carries_placeholder(&String::from_utf8_lossy(body));
        }
    }
    Ok(Submission {
        fields,
        encoding,
        opaque_placeholder,
    })
}

impl Submission {
    /// A POST's `_method`, as Rails, Laravel, Symfony and Express's method-override read
    /// it: the method the product will act on. Refused when it is given more than once or
    /// in more than one place (frameworks disagree on which one wins), or names no method
    /// the gateway routes.
    pub(super) fn method_override(&self) -> Result<Option<Method>, GatewayError> {
        let given: Vec<&Field> = self.fields.iter().filter(|f| f.name == "_method").collect();
        match given.as_slice() {
            [] => Ok(None),
            [one] => Method::parse(&one.value.trim().to_ascii_uppercase())
                .map(Some)
                .map_err(|_| GatewayError::Method(format!("POST with _method={}", one.value))),
            _ => Err(GatewayError::Method(
                "POST with more than one _method".to_owned(),
            )),
        }
    }

    /// The body's fields (not the query's), for the ledger.
    pub(super) fn body_fields(&self) -> impl Iterator<Item = &Field> {
        self.fields
            .iter()
            .filter(|f| f.source == Source::Body && f.name != "_method")
    }

    /// Whether the gateway read its fields (no body, a form or JSON), so it can show
    /// what it changes.
    pub(super) fn is_structured(&self) -> bool {
        self.encoding != Encoding::Opaque
    }

    /// Whether the body is a multipart form (which may carry files).
    pub(super) fn is_multipart(&self) -> bool {
        matches!(self.encoding, Encoding::Multipart(_))
    }

    /// Whether the body is JSON.
    pub(super) fn is_json(&self) -> bool {
        self.encoding == Encoding::Json
    }

    /// Whether an opaque body holds the placeholder mark: it can't be left out, so such a
    /// request is refused.
    pub(super) fn opaque_placeholder(&self) -> bool {
        self.opaque_placeholder
    }

    /// The request's query and body without the fields that carry a placeholder, for a
    /// route that takes partial forms; `None` where the body can't be rebuilt without
    /// them (a multipart form), and the request must be refused instead.
    pub(super) fn without_placeholders(
        &self,
        query: Option<&str>,
        body: &Bytes,
    ) -> Option<(Option<String>, Bytes)> {
        let keep = |f: &&Field| !carries_placeholder(&f.name) && !carries_placeholder(&f.value);
        let encode = |source: Source| -> Option<String> {
            let pairs: Vec<(&str, &str)> = self
                .fields
                .iter()
                .filter(|f| f.source == source)
                .filter(keep)
                .map(|f| (f.name.as_str(), f.value.as_str()))
                .collect();
            serde_html_form::to_string(&pairs).ok()
        };
        let query = match query {
            Some(_) => Some(encode(Source::Query)?).filter(|q| !q.is_empty()),
            None => None,
        };
        let body = match &self.encoding {
            Encoding::Empty | Encoding::Opaque => body.clone(),
            Encoding::Form => Bytes::from(encode(Source::Body)?),
            Encoding::Json => {
                let mut doc: serde_json::Value = serde_json::from_slice(body).ok()?;
                drop_json_placeholders(&mut doc);
                Bytes::from(serde_json::to_vec(&doc).ok()?)
            }
            Encoding::Multipart(_) => {
                if self
                    .fields
                    .iter()
                    .any(|f| f.source == Source::Body && !keep(&f))
                {
                    return None;
                }
                body.clone()
            }
        };
        Some((query, body))
    }
}
