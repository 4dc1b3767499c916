//! Canonical request paths: the one spelling of a path that the policy matches and the
//! product receives (invariant 15).
//!
//! A product's framework reads many spellings as the same route: `/Access/`, `//access`,
//! `/%61ccess`, `/x/../access`, `/.\access`. If the gateway matched the spelling it was
//! sent, each of these would slip past a rule written for `/access`. So every path is
//! first read the way the WHATWG URL standard and common frameworks read it:
//!
//! - a backslash is a slash (browsers do this for http URLs, and so do IIS and some
//!   Windows-hosted servers);
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, and any
//!   other percent-encoding is written with upper-case hex;
//! - empty segments (`//`), `.` and `..` (also spelled `%2e`) are resolved, never above
//!   the root;
//! - a trailing slash is removed (or kept, where the policy says the product routes it).
//!
//! What can't be given one meaning is refused rather than guessed at: an encoded `/` or
//! `\` (some servers decode it before routing, others after), `;` (Java servers strip
//! `;params` from a segment before routing), control characters and encoded NUL (C-based
//! servers stop reading at it), bad percent-encoding and encodings that aren't UTF-8
//! (overlong forms such as `%c0%ae` were read as `.` by old decoders).
//!
//! Written by hand: URL crates resolve dot segments but keep `//` and encoded letters,
//! and none refuses what is ambiguous; the rules here are the gateway's, not a parser's.

use std::fmt;

/// What a trailing slash means for the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrailingSlash {
    /// `/profile/` is `/profile` (the default): the canonical form has no trailing slash.
    #[default]
    Remove,
    /// The product routes `/profile/` itself (Django's `APPEND_SLASH`, for one): a
    /// trailing slash is kept as sent. Matching ignores it either way.
    Keep,
}

/// Why a path can't be given one canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathRefusal {
    /// Not a path that starts with `/` (`*`, an empty target).
    #[error("the address is not a path that starts with a slash")]
    NotAbsolute,
    /// `%2F` or `%5C`.
    #[error("the address has an encoded slash or backslash, which servers read in different ways")]
    EncodedSeparator,
    /// A `;` in the path.
    #[error(
        "the address has a semicolon, which some servers read as the end of the path and others don't"
    )]
    Semicolon,
    /// A control character, raw or encoded (`%00`).
    #[error("the address has a control character, which some servers read as the end of the path")]
    ControlCharacter,
    /// `%` not followed by two hex digits.
    #[error("the address has a % that is not followed by two hexadecimal digits")]
    BadPercent,
    /// Percent-encoded bytes that are not UTF-8.
    #[error("the address has encoded bytes that are not UTF-8 text")]
    NotUtf8,
    /// A letter some servers read as a plain ASCII one (see
    /// [`CanonicalPath::has_ascii_lookalikes`]).
    #[error(
        "the address has a letter that some servers read as a plain one (such as ſ for s), so it could reach a page under another name"
    )]
    Lookalike,
}

/// A path in canonical form: starts with `/`, pure ASCII, no empty, `.` or `..`
/// segments, no backslash, unreserved characters never encoded, other encodings in
/// upper-case hex, and a trailing slash only where [`TrailingSlash::Keep`] kept one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalPath(String);

/// A request path read canonically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// The canonical form.
    pub path: CanonicalPath,
    /// Whether the request spelled it differently (it is then redirected there).
    pub changed: bool,
}

impl CanonicalPath {
    /// Reads `raw` (a request target's path, without the query) canonically.
    pub fn parse(raw: &str, trailing: TrailingSlash) -> Result<Canonical, PathRefusal> {
        let bytes = raw.as_bytes();
        if bytes.first() != Some(&b'/') && bytes.first() != Some(&b'\\') {
            return Err(PathRefusal::NotAbsolute);
        }
        // Pass 1: one spelling for every byte. `decoded` holds the bytes the path stands
        // for, to check they are UTF-8; `text` the canonical spelling.
        let mut text = String::with_capacity(raw.len());
        let mut decoded = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'\\' | b'/' => {
                    text.push('/');
                    decoded.push(b'/');
                    i += 1;
                }
                b'%' => {
                    let (hi, lo) = match (bytes.get(i + 1), bytes.get(i + 2)) {
                        (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                            (*h, *l)
                        }
                        _ => return Err(PathRefusal::BadPercent),
                    };
                    let byte = (hex(hi) << 4) | hex(lo);
                    match byte {
                        b'/' | b'\\' => return Err(PathRefusal::EncodedSeparator),
                        0..=0x1f | 0x7f => return Err(PathRefusal::ControlCharacter),
                        _ if is_raw(byte) => text.push(char::from(byte)),
                        _ => push_encoded(&mut text, byte),
                    }
                    decoded.push(byte);
                    i += 3;
                }
                b';' => return Err(PathRefusal::Semicolon),
                0..=0x20 | 0x7f => return Err(PathRefusal::ControlCharacter),
                // Non-ASCII, and what browsers encode in a path themselves: one spelling.
                _ if !is_raw(b) => {
                    push_encoded(&mut text, b);
                    decoded.push(b);
                    i += 1;
                }
                _ => {
                    text.push(char::from(b));
                    decoded.push(b);
                    i += 1;
                }
            }
        }
        if std::str::from_utf8(&decoded).is_err() {
            return Err(PathRefusal::NotUtf8);
        }
        // Pass 2: segments. A path that ends in `/`, `/.` or `/..` names a directory.
        let mut segments: Vec<&str> = Vec::new();
        let mut directory = false;
        for segment in text.split('/').skip(1) {
            directory = false;
            match segment {
                "" => directory = true,
                "." => directory = true,
                ".." => {
                    segments.pop();
                    directory = true;
                }
                s => segments.push(s),
            }
        }
        let mut path = String::with_capacity(text.len());
        for s in &segments {
            path.push('/');
            path.push_str(s);
        }
        if path.is_empty() || (directory && trailing == TrailingSlash::Keep) {
            path.push('/');
        }
        let changed = path != raw;
        Ok(Canonical {
            path: CanonicalPath(path),
            changed,
        })
    }

    /// The path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path as routes match it: without a trailing slash (but `/` itself).
    pub fn for_matching(&self) -> &str {
        match self.0.strip_suffix('/') {
            Some("") | None => &self.0,
            Some(p) => p,
        }
    }
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

fn push_encoded(out: &mut String, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(char::from(HEX[usize::from(byte >> 4)]));
    out.push(char::from(HEX[usize::from(byte & 0xf)]));
}

/// Whether a byte is spelled as itself in a canonical path: the unreserved characters and
/// the sub-delimiters, `:` and `@` (RFC 3986 `pchar`), which frameworks read the same
/// whether sent raw or percent-encoded, and which browsers send raw. Everything else —
/// non-ASCII, and what browsers percent-encode in a path (`"`, `<`, `>`, `` ` ``, `{`,
/// `}`, `^`, `|`, `[`, `]`) — is spelled encoded, so each path has exactly one spelling
/// and redirecting a browser to it can't loop. `;` never reaches here raw (it is
/// refused), and an encoded one stays encoded: it is data, not a parameter.
fn is_raw(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b'='
                | b':'
                | b'@'
        )
}

impl CanonicalPath {
    /// Whether the path holds a letter that a framework comparing without regard to case
    /// by Unicode's rules reads as a plain ASCII letter (`ſ` as `s`, the Kelvin sign as
    /// `k`, `ı` as `i`, `ﬁ` as `fi`): such a path could reach a route the gateway's
    /// case-blind ASCII match doesn't see, so it is refused where routes ignore case.
    pub fn has_ascii_lookalikes(&self) -> bool {
        if self.0.bytes().all(|b| b != b'%') {
            return false;
        }
        let mut bytes = Vec::with_capacity(self.0.len());
        let raw = self.0.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'%' && i + 2 < raw.len() {
                bytes.push((hex(raw[i + 1]) << 4) | hex(raw[i + 2]));
                i += 3;
            } else {
                bytes.push(raw[i]);
                i += 1;
            }
        }
        String::from_utf8_lossy(&bytes).chars().any(|c| {
            !c.is_ascii()
                && c.to_uppercase()
                    .flat_map(char::to_lowercase)
                    .any(|f| f.is_ascii_alphabetic())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(raw: &str) -> Result<(String, bool), PathRefusal> {
        CanonicalPath::parse(raw, TrailingSlash::Remove).map(|c| (c.path.0, c.changed))
    }

    #[test]
    fn every_spelling_of_a_route_reads_as_one_path() {
        for raw in [
            "/access",
            "/access/",
            "//access",
            "/access//",
            "/%61ccess",
            "/%61%63%63%65%73%73",
            "/./access",
            "/x/../access",
            "/x/y/../../access",
            "/../access",
            "/%2e%2e/access",
            "/.%2E/access",
            "/x/%2e%2e/access",
            "\\access",
            "/x\\..\\access",
            "/access/.",
            "/access/x/..",
        ] {
            let (path, _) = canon(raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            assert_eq!(path, "/access", "{raw}");
        }
        assert_eq!(canon("/access"), Ok(("/access".into(), false)));
        assert_eq!(canon("/access/"), Ok(("/access".into(), true)));
    }

    #[test]
    fn the_root_and_encodings_that_carry_meaning_are_kept() {
        assert_eq!(canon("/"), Ok(("/".into(), false)));
        assert_eq!(canon("//"), Ok(("/".into(), true)));
        assert_eq!(canon("/.."), Ok(("/".into(), true)));
        assert_eq!(canon("/a%20b"), Ok(("/a%20b".into(), false)));
        assert_eq!(canon("/a%3f"), Ok(("/a%3F".into(), true)));
        assert_eq!(canon("/caf%c3%a9"), Ok(("/caf%C3%A9".into(), true)));
        assert_eq!(canon("/caf\u{e9}"), Ok(("/caf%C3%A9".into(), true)));
        assert_eq!(canon("/a.b/c~d_e-f"), Ok(("/a.b/c~d_e-f".into(), false)));
        // Characters a path may hold raw have one spelling: raw.
        assert_eq!(canon("/users/%40me"), Ok(("/users/@me".into(), true)));
        assert_eq!(
            canon("/v1/reports%3Aexport"),
            Ok(("/v1/reports:export".into(), true))
        );
        assert_eq!(
            canon("/a%21%24%26%27%28%29%2A%2B%2C%3D"),
            Ok(("/a!$&'()*+,=".into(), true))
        );
        // What browsers encode themselves has one spelling: encoded.
        assert_eq!(canon("/a|b"), Ok(("/a%7Cb".into(), true)));
        assert_eq!(canon("/a%7cb"), Ok(("/a%7Cb".into(), true)));
        assert_eq!(canon("/{x}"), Ok(("/%7Bx%7D".into(), true)));
        assert_eq!(
            canon("/a%3Bb"),
            Ok(("/a%3Bb".into(), false)),
            "an encoded ; is data"
        );
        assert_eq!(canon("/...").map(|c| c.0), Ok("/...".into()));
    }

    #[test]
    fn what_servers_read_differently_is_refused() {
        let cases = [
            ("access", PathRefusal::NotAbsolute),
            ("*", PathRefusal::NotAbsolute),
            ("", PathRefusal::NotAbsolute),
            ("/a%2Fb", PathRefusal::EncodedSeparator),
            ("/a%2fb", PathRefusal::EncodedSeparator),
            ("/a%5cb", PathRefusal::EncodedSeparator),
            ("/export.csv;.png", PathRefusal::Semicolon),
            ("/access;jsessionid=1", PathRefusal::Semicolon),
            ("/export.csv%00.png", PathRefusal::ControlCharacter),
            ("/a%0ab", PathRefusal::ControlCharacter),
            ("/a b", PathRefusal::ControlCharacter),
            ("/a\tb", PathRefusal::ControlCharacter),
            ("/a%zz", PathRefusal::BadPercent),
            ("/a%4", PathRefusal::BadPercent),
            ("/a%u002e", PathRefusal::BadPercent),
            ("/%c0%ae%c0%ae/access", PathRefusal::NotUtf8),
            ("/%ff", PathRefusal::NotUtf8),
        ];
        for (raw, want) in cases {
            assert_eq!(canon(raw), Err(want), "{raw:?}");
        }
    }

    #[test]
    fn letters_that_fold_to_ascii_are_found() {
        let has = |raw| {
            CanonicalPath::parse(raw, TrailingSlash::Remove)
                .expect("canonical")
                .path
                .has_ascii_lookalikes()
        };
        assert!(has("/acce%C5%BFs"), "ſ folds to s");
        assert!(has("/%E2%84%AAey"), "the Kelvin sign folds to k");
        assert!(has("/adm%C4%B1n"), "dotless ı folds to i");
        assert!(has("/%EF%AC%81le"), "the ﬁ ligature folds to fi");
        assert!(!has("/caf%C3%A9"), "é folds to é");
        assert!(!has("/access"));
    }

    #[test]
    fn a_product_that_routes_trailing_slashes_keeps_them() {
        let keep = |raw| CanonicalPath::parse(raw, TrailingSlash::Keep).map(|c| c.path.0);
        assert_eq!(keep("/profile/"), Ok("/profile/".into()));
        assert_eq!(keep("/profile//"), Ok("/profile/".into()));
        assert_eq!(keep("/profile/x/.."), Ok("/profile/".into()));
        assert_eq!(keep("/profile"), Ok("/profile".into()));
        let p = CanonicalPath::parse("/profile/", TrailingSlash::Keep).expect("path");
        assert_eq!(p.path.for_matching(), "/profile");
        let root = CanonicalPath::parse("/", TrailingSlash::Keep).expect("path");
        assert_eq!(root.path.for_matching(), "/");
    }
}
