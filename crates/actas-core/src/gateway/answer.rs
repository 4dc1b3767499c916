//! What the product's answer is, decided once from its headers (the gateway's
//! `response_filter` acts on the class, never on the headers again).
//!
//! The gateway masks what it can read — HTML, JSON, NDJSON, server-sent events — and
//! passes static assets that prove to be assets. Everything else is refused, unless the
//! policy names that content type for that route (`[[gateway.pass_through]]`), because
//! an unmasked PDF, XML document or plain-text file can carry the customer's data past
//! every masking rule. Downloads (`Content-Disposition: attachment`) and every CSV,
//! spreadsheet or archive type are exports: they pass only in a session whose scope
//! includes an export capability. An answer with more than one content type is refused:
//! the gateway would read one and the browser another.

use std::fmt;

/// What an answer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// HTML or XHTML, masked as it streams; `charset` as the product named it (`None`:
    /// not named, read as UTF-8).
    Html {
        /// The charset label, lower case.
        charset: Option<String>,
    },
    /// JSON, masked whole.
    Json,
    /// Newline-delimited JSON, masked line by line.
    Ndjson,
    /// Server-sent events, masked event by event.
    Events,
    /// An export the session's scope allows: passed as it is.
    Export,
    /// A type the policy passes for this route: passed as it is.
    PassThrough,
}

/// Why an answer was refused, in words that finish "it …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It has a body but names no content type.
    Untyped,
    /// It names more than one content type.
    Conflicting(Vec<String>),
    /// A download or an export, and the scope allows none.
    Export,
    /// A type the gateway can't mask, and the policy doesn't pass for this route.
    Unmaskable(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Untyped => f.write_str(
                "did not say what kind of content it is, so it could not be checked for secrets",
            ),
            Refusal::Conflicting(types) => write!(
                f,
                "named more than one kind of content ({}), and the browser might read it as another than the gateway did",
                types.join(", ")
            ),
            Refusal::Export => f.write_str(
                "was a download, and downloads and exports need an approved export scope",
            ),
            Refusal::Unmaskable(kind) => write!(
                f,
                "was {kind}, which the gateway can't check for secrets, and the policy does not pass it for this page"
            ),
        }
    }
}

/// A content type's essence (`text/html`), lower case, without parameters.
pub fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A content type's `charset` parameter, lower case, unquoted.
pub fn charset(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_ascii_lowercase())
    })
}

/// Whether a content type is an export: a table or an archive the agent would save.
pub fn is_export_type(essence: &str) -> bool {
    matches!(
        essence,
        "text/csv"
            | "application/csv"
            | "text/tab-separated-values"
            | "application/vnd.ms-excel"
            | "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            | "application/vnd.oasis.opendocument.spreadsheet"
            | "application/zip"
            | "application/x-zip-compressed"
            | "application/gzip"
            | "application/x-gzip"
            | "application/x-tar"
            | "application/x-7z-compressed"
            | "application/x-rar-compressed"
            | "application/vnd.rar"
            | "application/x-bzip2"
            | "application/octet-stream"
    ) || essence.starts_with("application/vnd.ms-excel")
}

/// What the product said about its answer.
#[derive(Debug, Clone, Copy)]
pub struct Said<'a> {
    /// Every `Content-Type` value it sent.
    pub content_types: &'a [&'a str],
    /// Whether it said `Content-Disposition: attachment`.
    pub attachment: bool,
    /// Whether the answer has a body (a 204, a 304 or a redirect has none).
    pub has_body: bool,
}

/// Classifies an answer that is not an asset. `exports` says whether the session may
/// export; `passes(essence)` whether the policy passes that type for this route.
pub fn classify(
    said: &Said<'_>,
    exports: bool,
    passes: impl Fn(&str) -> bool,
) -> Result<Class, Refusal> {
    let mut distinct: Vec<String> = Vec::new();
    for t in said.content_types {
        let e = essence(t);
        if !e.is_empty() && !distinct.contains(&e) {
            distinct.push(e);
        }
    }
    let blank = said.content_types.iter().any(|t| essence(t).is_empty());
    if distinct.len() > 1 || (said.content_types.len() > 1 && blank) {
        return Err(Refusal::Conflicting(distinct));
    }
    let Some(kind) = distinct.pop() else {
        return if said.has_body {
            Err(Refusal::Untyped)
        } else {
            // Nothing to show: what passes is the status and the headers.
            Ok(Class::PassThrough)
        };
    };
    if said.attachment || is_export_type(&kind) {
        return if exports {
            Ok(Class::Export)
        } else {
            Err(Refusal::Export)
        };
    }
    let content_type = said.content_types.first().copied().unwrap_or("");
    Ok(match kind.as_str() {
        "text/html" | "application/xhtml+xml" => Class::Html {
            charset: charset(content_type),
        },
        "application/json" | "text/json" => Class::Json,
        k if k.ends_with("+json") => Class::Json,
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines"
        | "application/jsonlines" => Class::Ndjson,
        "text/event-stream" => Class::Events,
        _ if !said.has_body => Class::PassThrough,
        k if passes(k) => Class::PassThrough,
        k => return Err(Refusal::Unmaskable(k.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(types: &[&str], attachment: bool, exports: bool) -> Result<Class, Refusal> {
        classify(
            &Said {
                content_types: types,
                attachment,
                has_body: true,
            },
            exports,
            |k| k == "application/pdf",
        )
    }

    #[test]
    fn each_answer_has_one_class_or_is_refused() {
        assert_eq!(
            class(&["text/html; charset=UTF-8"], false, false),
            Ok(Class::Html {
                charset: Some("utf-8".into())
            })
        );
        assert_eq!(
            class(&["Application/XHTML+XML"], false, false),
            Ok(Class::Html { charset: None })
        );
        assert_eq!(class(&["text/json"], false, false), Ok(Class::Json));
        assert_eq!(
            class(&["application/problem+json"], false, false),
            Ok(Class::Json)
        );
        assert_eq!(
            class(&["application/x-ndjson"], false, false),
            Ok(Class::Ndjson)
        );
        assert_eq!(
            class(&["text/event-stream"], false, false),
            Ok(Class::Events)
        );
        assert_eq!(
            class(&["application/pdf"], false, false),
            Ok(Class::PassThrough)
        );
        for unmaskable in [
            "text/plain",
            "text/javascript",
            "image/svg+xml",
            "application/xml",
            "text/xml",
            "application/msword",
        ] {
            assert!(
                matches!(
                    class(&[unmaskable], false, false),
                    Err(Refusal::Unmaskable(_))
                ),
                "{unmaskable}"
            );
        }
        for export in [
            "text/csv",
            "application/vnd.ms-excel",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/zip",
            "application/octet-stream",
        ] {
            assert_eq!(
                class(&[export], false, false),
                Err(Refusal::Export),
                "{export}"
            );
            assert_eq!(class(&[export], false, true), Ok(Class::Export), "{export}");
        }
        assert_eq!(
            class(&["application/json"], true, false),
            Err(Refusal::Export)
        );
        assert_eq!(class(&["application/pdf"], true, true), Ok(Class::Export));
        assert!(matches!(
            class(&["text/plain", "text/html"], false, false),
            Err(Refusal::Conflicting(_))
        ));
        assert!(matches!(
            class(&["text/html", ""], false, false),
            Err(Refusal::Conflicting(_))
        ));
        assert_eq!(
            class(&["text/html", "text/html; charset=utf-8"], false, false),
            Ok(Class::Html { charset: None }),
            "the same type twice is one type"
        );
        assert_eq!(class(&[], false, false), Err(Refusal::Untyped));
        let empty = classify(
            &Said {
                content_types: &[],
                attachment: false,
                has_body: false,
            },
            false,
            |_| false,
        );
        assert_eq!(empty, Ok(Class::PassThrough));
    }
}
