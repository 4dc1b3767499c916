//! `[auth]`: how staff sign in to the console — actas's own passwords, the company's
//! identity provider (OpenID Connect, `[auth.oidc]`), or both. Every `[auth.oidc]`
//! setting can also come from the environment (`ACTAS_OIDC_ISSUER`, …), which wins; the
//! client secret comes only from a file or the environment, never from `actas.toml`.

use super::ConfigError;
use actas_core::staff::Role;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[auth]` as written in `actas.toml`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Whether staff may sign in with a password kept by actas (`ACTAS_LOCAL_PASSWORDS`).
    /// With it off, the identity provider is the only way in.
    #[serde(default = "yes")]
    pub local_passwords: bool,
    /// Sign-in through the company's identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcConfig>,
    /// The identity provider's user sync (SCIM 2.0, `/scim/v2/Users`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scim: Option<ScimConfig>,
}

/// `[auth.scim]`: the bearer token the identity provider pushes users with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ScimConfig {
    /// A file holding the token (relative to the data directory); or set
    /// `ACTAS_SCIM_TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
}

fn yes() -> bool {
    true
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            local_passwords: true,
            oidc: None,
            scim: None,
        }
    }
}

impl AuthConfig {
    pub(super) fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Who may sign in through the identity provider.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Provisioning {
    /// Only staff added with `actas staff add` (matched by e-mail).
    #[default]
    Pre,
    /// Anyone the provider signs in gets an agent record at their first sign-in (never a
    /// place on the allow-list: directors still decide who may act as customers).
    JustInTime,
}

/// Which provider groups give which role (`[auth.oidc.groups]`, e.g.
/// `lead = ["support-leads"]`). Someone in none of them is an agent.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RoleGroups {
    /// Groups whose members are directors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub director: Vec<String>,
    /// Groups whose members are leads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lead: Vec<String>,
    /// Groups whose members are auditors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub auditor: Vec<String>,
}

impl RoleGroups {
    /// Whether any group is mapped (otherwise roles stay as `actas staff add` set them).
    pub fn is_empty(&self) -> bool {
        self.director.is_empty() && self.lead.is_empty() && self.auditor.is_empty()
    }

    /// The role `groups` give: director over lead over auditor, agent otherwise.
    pub fn role(&self, groups: &[String]) -> Role {
        let member = |mapped: &[String]| mapped.iter().any(|g| groups.contains(g));
        if member(&self.director) {
            Role::Director
        } else if member(&self.lead) {
            Role::Lead
        } else if member(&self.auditor) {
            Role::Auditor
        } else {
            Role::Agent
        }
    }
}

/// `[auth.oidc]` as written in `actas.toml`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's name on the sign-in button ("Sign in with Okta").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The issuer URL (discovery is at `<issuer>/.well-known/openid-configuration`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// actas's client id at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// A file holding the client secret (relative to the data directory); or set
    /// `ACTAS_OIDC_CLIENT_SECRET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for (`openid` is always asked for).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The claim holding the staff member's e-mail (default `email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_claim: Option<String>,
    /// The claim holding their groups (default `groups`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// Who may sign in (default `pre`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<Provisioning>,
    /// `acr` values of which the ID token must carry one when a session is started (a
    /// second factor, as the provider names it); empty: not checked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_acr: Vec<String>,
    /// The e-mail domains whose people may join at their first sign-in
    /// (`just_in_time`, where it is required); e.g. `["example.com"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_domains: Vec<String>,
    /// Where the provider sends the browser back (default: the console's URL +
    /// `/sign-in/sso/callback`). Register exactly this at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_url: Option<String>,
    /// Groups → roles.
    #[serde(default, skip_serializing_if = "RoleGroups::is_empty")]
    pub groups: RoleGroups,
}

/// How staff sign in, with the environment applied and the secret read.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Whether actas's own passwords are accepted.
    pub local_passwords: bool,
    /// The identity provider, if one is configured.
    pub oidc: Option<OidcSettings>,
    /// The bearer token of the SCIM endpoint; without one the endpoint is off.
    pub scim_token: Option<String>,
}

/// A configured identity provider.
#[derive(Clone)]
pub struct OidcSettings {
    /// Its name on the sign-in button.
    pub name: String,
    /// The issuer URL, exactly as the provider's ID tokens name it.
    pub issuer: String,
    /// actas's client id.
    pub client_id: String,
    /// actas's client secret.
    pub client_secret: String,
    /// Scopes asked for, `openid` first.
    pub scopes: Vec<String>,
    /// The claim with the e-mail.
    pub email_claim: String,
    /// The claim with the groups.
    pub groups_claim: String,
    /// Who may sign in.
    pub provisioning: Provisioning,
    /// Acceptable `acr` values before a session (empty: any).
    pub require_acr: Vec<String>,
    /// The callback URL, when configured (otherwise the console's own).
    pub redirect_url: Option<String>,
    /// The e-mail domains whose people may join at first sign-in (`just_in_time`).
    pub allowed_domains: Vec<String>,
    /// Groups → roles.
    pub groups: RoleGroups,
}

impl std::fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcSettings")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &"…")
            .field("provisioning", &self.provisioning)
            .finish_non_exhaustive()
    }
}

/// Reads an environment variable, if set and not blank.
fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// A list from the environment: items separated by commas or spaces.
fn env_list(name: &str) -> Option<Vec<String>> {
    env(name).map(|v| {
        v.split([',', ' '])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// The shortest SCIM token accepted (it is a password the provider keeps).
const SCIM_TOKEN_MIN: usize = 32;

impl AuthConfig {
    /// The SCIM bearer token: `ACTAS_SCIM_TOKEN`, or the file `ACTAS_SCIM_TOKEN_FILE` or
    /// `[auth.scim] token_file` names.
    fn scim_token(
        &self,
        dir: &Path,
        bad: &dyn Fn(String) -> ConfigError,
    ) -> Result<Option<String>, ConfigError> {
        let token = match env("ACTAS_SCIM_TOKEN") {
            Some(t) => Some(t),
            None => {
                let file = env("ACTAS_SCIM_TOKEN_FILE")
                    .map(PathBuf::from)
                    .or_else(|| self.scim.as_ref().and_then(|s| s.token_file.clone()));
                match file {
                    Some(path) => {
                        let path = dir.join(path);
                        let text = std::fs::read_to_string(&path).map_err(super::io(&path))?;
                        Some(text.trim().to_owned())
                    }
                    None if self.scim.is_some() => {
                        return Err(bad(
                            "[auth.scim] needs token_file (or ACTAS_SCIM_TOKEN)".into()
                        ));
                    }
                    None => None,
                }
            }
        };
        match token {
            Some(t) if t.len() < SCIM_TOKEN_MIN => Err(bad(format!(
                "the SCIM token is {} characters; use at least {SCIM_TOKEN_MIN} random ones",
                t.len()
            ))),
            other => Ok(other),
        }
    }

    /// The settings in force: `actas.toml`'s, with the environment over them, and the
    /// client secret read from its file (relative to `dir`) or the environment.
    pub fn resolve(&self, dir: &Path, config_path: &Path) -> Result<AuthSettings, ConfigError> {
        let bad = |message: String| ConfigError::Parse {
            path: config_path.to_owned(),
            message,
        };
        let local_passwords = match env("ACTAS_LOCAL_PASSWORDS") {
            Some(v) => match v.as_str() {
                "true" | "1" | "yes" => true,
                "false" | "0" | "no" => false,
                other => {
                    return Err(bad(format!(
                        "ACTAS_LOCAL_PASSWORDS is {other:?}; use true or false"
                    )));
                }
            },
            None => self.local_passwords,
        };
        let scim_token = self.scim_token(dir, &bad)?;
        let file = self.oidc.clone().unwrap_or_default();
        let issuer = env("ACTAS_OIDC_ISSUER").or(file.issuer.clone());
        let Some(issuer) = issuer else {
            if self.oidc.is_some() {
                return Err(bad(
                    "[auth.oidc] needs an issuer (or ACTAS_OIDC_ISSUER)".into()
                ));
            }
            if !local_passwords {
                return Err(bad(
                    "[auth] local_passwords = false leaves no way to sign in: configure [auth.oidc] too".into(),
                ));
            }
            return Ok(AuthSettings {
                local_passwords,
                oidc: None,
                scim_token,
            });
        };
        // Exactly as written: the ID token's `iss` must match it to the character
        // (some providers' issuers end in `/`).
        let parsed = url::Url::parse(&issuer)
            .map_err(|e| bad(format!("[auth.oidc] issuer {issuer:?} is not a URL: {e}")))?;
        let loopback = parsed
            .host_str()
            .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]");
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(bad(format!(
                "[auth.oidc] issuer {issuer:?} must be https (plain http only on this machine's loopback)"
            )));
        }
        let client_id = env("ACTAS_OIDC_CLIENT_ID")
            .or(file.client_id.clone())
            .ok_or_else(|| bad("[auth.oidc] needs a client_id (or ACTAS_OIDC_CLIENT_ID)".into()))?;
        let client_secret = match env("ACTAS_OIDC_CLIENT_SECRET") {
            Some(s) => s,
            None => {
                let path = env("ACTAS_OIDC_CLIENT_SECRET_FILE")
                    .map(PathBuf::from)
                    .or(file.client_secret_file.clone())
                    .ok_or_else(|| {
                        bad("[auth.oidc] needs the client secret: client_secret_file, or ACTAS_OIDC_CLIENT_SECRET".into())
                    })?;
                let path = dir.join(path);
                let text = std::fs::read_to_string(&path).map_err(super::io(&path))?;
                let text = text.trim().to_owned();
                if text.is_empty() {
                    return Err(ConfigError::Key {
                        path,
                        why: "the client secret file is empty".into(),
                    });
                }
                text
            }
        };
        let provisioning = match env("ACTAS_OIDC_PROVISIONING") {
            Some(v) => match v.as_str() {
                "pre" => Provisioning::Pre,
                "just_in_time" => Provisioning::JustInTime,
                other => {
                    return Err(bad(format!(
                        "ACTAS_OIDC_PROVISIONING is {other:?}; use pre or just_in_time"
                    )));
                }
            },
            None => file.provisioning.unwrap_or_default(),
        };
        let allowed_domains =
            env_list("ACTAS_OIDC_ALLOWED_DOMAINS").unwrap_or_else(|| file.allowed_domains.clone());
        if provisioning == Provisioning::JustInTime && allowed_domains.is_empty() {
            return Err(bad(
                "[auth.oidc] provisioning = \"just_in_time\" needs allowed_domains (or ACTAS_OIDC_ALLOWED_DOMAINS): the e-mail domains whose people may join by signing in".into(),
            ));
        }
        let mut scopes = vec!["openid".to_owned()];
        let asked = env_list("ACTAS_OIDC_SCOPES").unwrap_or_else(|| {
            if file.scopes.is_empty() {
                vec!["email".into(), "profile".into()]
            } else {
                file.scopes.clone()
            }
        });
        scopes.extend(asked.into_iter().filter(|s| s != "openid"));
        let mut groups = file.groups.clone();
        for (var, list) in [
            ("ACTAS_OIDC_GROUPS_DIRECTOR", &mut groups.director),
            ("ACTAS_OIDC_GROUPS_LEAD", &mut groups.lead),
            ("ACTAS_OIDC_GROUPS_AUDITOR", &mut groups.auditor),
        ] {
            if let Some(v) = env_list(var) {
                *list = v;
            }
        }
        Ok(AuthSettings {
            local_passwords,
            scim_token,
            oidc: Some(OidcSettings {
                name: env("ACTAS_OIDC_NAME")
                    .or(file.name.clone())
                    .unwrap_or_else(|| "your company's sign-in".into()),
                issuer,
                client_id,
                client_secret,
                scopes,
                email_claim: env("ACTAS_OIDC_EMAIL_CLAIM")
                    .or(file.email_claim.clone())
                    .unwrap_or_else(|| "email".into()),
                groups_claim: env("ACTAS_OIDC_GROUPS_CLAIM")
                    .or(file.groups_claim.clone())
                    .unwrap_or_else(|| "groups".into()),
                provisioning,
                require_acr: env_list("ACTAS_OIDC_REQUIRE_ACR").unwrap_or(file.require_acr),
                redirect_url: env("ACTAS_OIDC_REDIRECT_URL").or(file.redirect_url),
                allowed_domains,
                groups,
            }),
        })
    }
}
