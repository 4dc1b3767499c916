//! Staff sign-in through the company's identity provider (OpenID Connect): discovery, the
//! authorization-code flow with PKCE, `state` and `nonce`, and the ID token's checks.
//!
//! The protocol is the `openidconnect` crate's (discovery, the token request, the ID
//! token's signature against the issuer's JWKS, `iss`, `aud`, `exp` and `nonce`); what
//! it leaves to the client is decided here: `azp`, an `iat` from the future, `auth_time`
//! (the crate accepts any), `acr`, the e-mail and groups claims, and who may sign in.
//!
//! A sign-in in progress lives in the database (`Change::BeginSignOn`), so whichever
//! instance the browser comes back to can finish it, and is taken once
//! (`Change::TakeSignOn`): a replayed `state` finds nothing. It finishes only in the
//! browser that started it (a binding cookie whose hash the flow keeps), so nobody can
//! sign a colleague's browser in as themselves. Every sign-in and every refusal, with its
//! reason, is a ledger event.

use super::HandoffToken;
use super::auth::{Secret, SignedIn, secret_hash};
use super::sessions::random_hex;
use super::{Service, ServiceError, ServiceResult};
use crate::config::{OidcSettings, Provisioning};
use actas_core::Timestamp;
use actas_core::event::{Actor, EventData, NewEvent};
use actas_core::ids::RequestId;
use actas_core::staff::{DisplayName, Email};
use actas_core::words;
use actas_store::{Applied, Change, SignOnFlow, StaffRecord, Unit};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm,
    CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthenticationContextClass, AuthorizationCode, ClaimsVerificationError,
    ClientId, ClientSecret, CsrfToken, EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IdTokenClaims, IdTokenFields, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, SignatureVerificationError, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// How long a sign-in may take at the provider.
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);
/// How often the provider's metadata and keys are fetched again at most when a token
/// names a key actas doesn't have (the provider rotated its keys).
const REFRESH_AT_MOST_EVERY: Duration = Duration::from_secs(10);
/// How long fetched metadata and keys are used before they are fetched again anyway.
const METADATA_TTL: Duration = Duration::from_secs(60 * 60);
/// What the `iat` check says of a token from the future.
const ISSUED_IN_THE_FUTURE: &str = "it was issued in the future";
/// How far a provider's clock may run ahead of this one.
const CLOCK_SKEW: Duration = Duration::from_secs(60);

/// Every claim the ID token carries beyond the standard ones (groups, custom e-mail
/// claims), kept so the configured claim names can be read.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OtherClaims(serde_json::Map<String, serde_json::Value>);

impl AdditionalClaims for OtherClaims {}

type Claims = IdTokenClaims<OtherClaims, CoreGenderClaim>;
type Tokens = StandardTokenResponse<
    IdTokenFields<
        OtherClaims,
        EmptyExtraTokenFields,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    >,
    CoreTokenType,
>;
/// The crate's client with [`OtherClaims`]: an authorization endpoint, and the token
/// and user-info endpoints as discovery found them.
type Client = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// What a sign-in through the provider is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Signing in to the console, then going to this console path.
    SignIn {
        /// Where to go afterwards.
        then: Option<String>,
    },
    /// Confirming who they are at the provider, now (`prompt=login`, `max_age`), before
    /// starting a session from this request.
    StepUp {
        /// The approved request the session is started from.
        request: RequestId,
        /// SHA-256 of the console login it is done in.
        login: [u8; 32],
    },
    /// Confirming who they are at the provider, now, as [`Purpose::StepUp`] does, to
    /// confirm a signed action held at the gateway.
    ConfirmAction {
        /// The held action's id.
        action: String,
        /// SHA-256 of the console login it is done in.
        login: [u8; 32],
    },
}

/// How a confirming flow names the held action it confirms, in its `then` (a step-up's
/// `then` is otherwise a request id, which never starts with this).
const ACTION_PREFIX: &str = "action:";

impl Purpose {
    fn column(&self) -> &'static str {
        match self {
            Purpose::SignIn { .. } => "sign_in",
            // Both are step-ups; `then` tells them apart.
            Purpose::StepUp { .. } | Purpose::ConfirmAction { .. } => "step_up",
        }
    }
}

/// What a finished sign-in through the provider led to.
pub enum Finished {
    /// A console login, and where to go next.
    SignedIn(Box<SignedIn>, Option<String>),
    /// A session started after the step-up, and the single-use way into it.
    Started(HandoffToken),
    /// A held action confirmed after the step-up: its id and the single-use token the
    /// gateway sends it with.
    Confirmed(String, Secret),
}

/// A sign-in sent to the provider: where to send the browser, and the value of the
/// cookie that binds the sign-in to it.
pub struct Started {
    /// The provider's authorization URL.
    pub url: String,
    /// The binding cookie's value (secret; 10 minutes).
    pub binding: Secret,
    /// What names the binding cookie of this sign-in ([`binding_key`] of its state).
    pub key: String,
}

/// The identity provider as configured, with its metadata once fetched.
pub struct SignOn {
    settings: OidcSettings,
    redirect: RedirectUrl,
    http: reqwest::Client,
    discovered: tokio::sync::Mutex<Discovered>,
}

/// The provider's metadata and keys as last fetched, and when a token naming an unknown
/// key last made actas fetch them again.
#[derive(Default)]
struct Discovered {
    metadata: Option<(CoreProviderMetadata, Instant)>,
    refreshed_for_unknown_key: Option<Instant>,
}

/// What names a sign-in's binding cookie: the start of its `state`'s hash (the state
/// comes back with the browser, so the callback finds its own cookie however many
/// sign-ins the browser has going).
pub fn binding_key(state: &str) -> String {
    hex::encode(&secret_hash(state)[..8])
}

/// Why talking to the provider failed, said plainly (the details go to the log).
fn provider_trouble(what: &str, e: impl std::fmt::Display) -> ServiceError {
    tracing::warn!(error = %e, "identity provider: {what}");
    ServiceError::Unauthenticated(format!(
        "signing in through your identity provider did not work: {what}; please try again, and tell your administrator if it keeps happening"
    ))
}

impl SignOn {
    /// The provider `settings` name, with the browser sent back to `redirect`.
    pub fn new(settings: OidcSettings, redirect: &str) -> Result<Self, String> {
        let redirect = RedirectUrl::new(redirect.to_owned())
            .map_err(|e| format!("the sign-in callback URL {redirect:?} is not valid: {e}"))?;
        // No redirects (the crate's advice against SSRF), and bounded waits: a provider
        // that hangs must not hold a sign-in forever.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .map_err(|e| format!("no HTTP client for the identity provider: {e}"))?;
        Ok(Self {
            settings,
            redirect,
            http,
            discovered: tokio::sync::Mutex::new(Discovered::default()),
        })
    }

    /// The provider's name, for the sign-in button.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The provider's metadata and keys: fetched at first use, again after an hour, and
    /// again when `stale` says a token named a key actas doesn't have (the provider
    /// rotated), at most every few seconds for that reason.
    async fn metadata(&self, stale: bool) -> ServiceResult<CoreProviderMetadata> {
        let mut cached = self.discovered.lock().await;
        let refetch_for_key = stale
            && cached
                .refreshed_for_unknown_key
                .is_none_or(|at| at.elapsed() >= REFRESH_AT_MOST_EVERY);
        if let Some((metadata, at)) = cached.metadata.as_ref()
            && at.elapsed() < METADATA_TTL
            && !refetch_for_key
        {
            return Ok(metadata.clone());
        }
        if refetch_for_key {
            cached.refreshed_for_unknown_key = Some(Instant::now());
        }
        let issuer = IssuerUrl::new(self.settings.issuer.clone())
            .map_err(|e| provider_trouble("its issuer URL is not valid", e))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, &self.http)
            .await
            .map_err(|e| provider_trouble("actas could not read its settings", e))?;
        cached.metadata = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn client(&self, metadata: CoreProviderMetadata) -> Client {
        Client::from_provider_metadata(
            metadata,
            ClientId::new(self.settings.client_id.clone()),
            Some(ClientSecret::new(self.settings.client_secret.clone())),
        )
        .set_redirect_uri(self.redirect.clone())
    }
}

/// What the ID token says about who signed in, once every check passed.
struct Identity {
    /// The provider's `sub`: who they are there, for good.
    subject: String,
    email: Email,
    /// The authentication context class the provider reports (`acr`).
    acr: Option<String>,
    name: Option<String>,
    groups: Vec<String>,
    /// Whether the token carried the groups claim itself (not absent, nor only
    /// referred to elsewhere, as Entra ID does past 200 groups): only then do roles follow.
    groups_given: bool,
    auth_time: Option<Timestamp>,
}

impl Service {
    /// The identity provider, if one is configured.
    pub fn sign_on(&self) -> Option<&SignOn> {
        self.sign_on.as_deref()
    }

    fn provider(&self) -> ServiceResult<&SignOn> {
        self.sign_on().ok_or_else(|| {
            ServiceError::NotFound("signing in through an identity provider is not set up".into())
        })
    }

    /// Starts a sign-in through the provider: remembers its `state`, `nonce` and PKCE
    /// verifier, and says where to send the browser.
    pub async fn begin_sign_on(&self, purpose: Purpose) -> ServiceResult<Started> {
        let provider = self.provider()?;
        let metadata = provider.metadata(false).await?;
        let client = provider.client(metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in provider.settings.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (then, login_hash) = match &purpose {
            Purpose::SignIn { then } => (then.clone(), None),
            Purpose::StepUp { request: id, login } => (Some(id.to_string()), Some(*login)),
            Purpose::ConfirmAction { action, login } => {
                (Some(format!("{ACTION_PREFIX}{action}")), Some(*login))
            }
        };
        if login_hash.is_some() {
            // A step-up: ask the provider to sign them in again now; actas checks
            // `auth_time` and `acr` itself, as the browser can strip these.
            request = request
                .set_max_age(self.policy().session.reauth_within)
                .add_prompt(CoreAuthPrompt::Login);
            for acr in &provider.settings.require_acr {
                request =
                    request.add_auth_context_value(AuthenticationContextClass::new(acr.clone()));
            }
        }
        let (url, state, nonce) = request.url();
        let binding = random_hex(32)?;
        let now = Timestamp::now();
        let flow = SignOnFlow {
            state_hash: secret_hash(state.secret()),
            binding_hash: secret_hash(&binding),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
            purpose: purpose.column().to_owned(),
            login_hash,
            then,
            created_at: now,
            expires_at: now.plus(FLOW_TTL),
        };
        self.store
            .commit(Unit::new(vec![Change::BeginSignOn(flow)], |_| vec![]))
            .await?;
        Ok(Started {
            url: url.to_string(),
            binding: Secret::new(binding),
            key: binding_key(state.secret()),
        })
    }

    /// Records a refusal of `flow`, after its browser binding was checked, and says why.
    /// The confirmation of a held action is refused on that action's account, as the
    /// held change was recorded (`session.action_not_confirmed`); anything else is a
    /// refused sign-in.
    async fn refuse_flow(
        &self,
        flow: &SignOnFlow,
        who: Option<String>,
        reason: String,
    ) -> ServiceError {
        let Some(action) = action_of(flow) else {
            return self.refuse_as(who, reason, lead_of(flow)).await;
        };
        // The browser that started it (its binding was checked) and a console sign-in
        // still open: theirs.
        if let Some(hash) = flow.login_hash
            && let Ok(Some(login)) = self.store.login(&hash).await
            && !login.ended
            && login.expires_at > Timestamp::now()
        {
            let tried = format!(
                "a new sign-in at {}",
                self.sign_on().map_or("the identity provider", |p| p.name())
            );
            // Where it can't be written there (the action gone), a refused sign-in.
            if let Ok(refusal) = self
                .action_not_confirmed(login.staff, action, &tried, &reason)
                .await
            {
                return refusal;
            }
        }
        self.refuse_as(who, reason, lead_of(flow)).await
    }

    /// Records a refused sign-in at the provider and says why, after `lead` (what did
    /// not happen: a sign-in, a confirmation).
    async fn refuse_as(&self, who: Option<String>, reason: String, lead: &str) -> ServiceError {
        let through = self
            .sign_on()
            .map(|p| p.name().to_owned())
            .unwrap_or_default();
        let event = NewEvent::new(
            Actor::System,
            EventData::SignInRefused {
                through,
                who,
                reason: reason.clone(),
            },
        );
        if let Err(e) = self.store.append(event).await {
            return e.into();
        }
        ServiceError::Forbidden(format!("{lead}: {reason}."))
    }

    /// Finishes a sign-in the provider sent back (`state`, and `code` or its `error`) in
    /// the browser whose binding cookie is `binding`: checks the ID token and who it
    /// names, then opens a console login, or for a step-up starts the session.
    pub async fn finish_sign_on(
        &self,
        state: &str,
        code: Result<&str, &str>,
        binding: Option<&str>,
    ) -> ServiceResult<Finished> {
        let provider = self.provider()?;
        let flow = self.take_flow(state).await;
        let flow = match flow {
            Ok(f) => f,
            // Nothing of this request is known (anyone can send one): logged, not
            // written to the ledger.
            Err(reason) => {
                tracing::info!(%reason, "a sign-in came back with an unknown state");
                return Err(ServiceError::Forbidden(format!(
                    "You were not signed in: {reason}."
                )));
            }
        };
        let bound = binding.is_some_and(|b| {
            subtle::ConstantTimeEq::ct_eq(&secret_hash(b)[..], &flow.binding_hash[..]).into()
        });
        if !bound {
            // Not necessarily the person who started it: recorded as nobody's.
            return Err(self
                .refuse_as(
                    None,
                    "the sign-in was finished in a different browser from the one that started it"
                        .into(),
                    lead_of(&flow),
                )
                .await);
        }
        let code = match code {
            Ok(code) => code,
            Err(error) => {
                return Err(self
                    .refuse_flow(
                        &flow,
                        None,
                        format!(
                            "the identity provider answered “{error}” instead of signing you in"
                        ),
                    )
                    .await);
            }
        };
        let identity = match self.identify(provider, &flow, code).await {
            Ok(identity) => identity,
            Err(Refusal::Plain(reason)) => return Err(self.refuse_flow(&flow, None, reason).await),
            Err(Refusal::Of(who, reason)) => {
                return Err(self.refuse_flow(&flow, Some(who), reason).await);
            }
            Err(Refusal::Trouble(e)) => return Err(e),
        };
        if flow.purpose == "step_up" {
            return match self.step_up(provider, &flow, &identity).await {
                Ok(finished) => Ok(finished),
                Err(Refusal::Of(who, reason)) => {
                    Err(self.refuse_flow(&flow, Some(who), reason).await)
                }
                Err(Refusal::Plain(reason)) => Err(self.refuse_flow(&flow, None, reason).await),
                Err(Refusal::Trouble(e)) => Err(e),
            };
        }
        let staff = match self.staff_for(provider, &identity).await {
            Ok(staff) => staff,
            Err(Refusal::Of(who, reason)) => {
                return Err(self.refuse_flow(&flow, Some(who), reason).await);
            }
            Err(Refusal::Plain(reason)) => return Err(self.refuse_flow(&flow, None, reason).await),
            Err(Refusal::Trouble(e)) => return Err(e),
        };
        let who = staff.email.as_str().to_owned();
        match self.login_through(provider, staff).await {
            Ok(signed) => Ok(Finished::SignedIn(Box::new(signed), flow.then)),
            Err(ServiceError::Forbidden(reason) | ServiceError::Conflict(reason)) => {
                Err(self.refuse_flow(&flow, Some(who), reason).await)
            }
            Err(e) => Err(e),
        }
    }

    /// After the provider confirmed who they are: the same person as the console login
    /// that asked, signed in at the provider within the policy's window (`auth_time`,
    /// which the crate doesn't check), with a second factor where `require_acr` says so;
    /// then the login counts as just authenticated, and the session starts or the held
    /// action is confirmed.
    async fn step_up(
        &self,
        provider: &SignOn,
        flow: &SignOnFlow,
        identity: &Identity,
    ) -> Result<Finished, Refusal> {
        let who = identity.email.as_str().to_owned();
        let action = flow
            .then
            .as_deref()
            .and_then(|t| t.strip_prefix(ACTION_PREFIX));
        let doing = if action.is_some() {
            "confirming a signed change"
        } else {
            "starting a session"
        };
        let now = Timestamp::now();
        let login_hash = flow
            .login_hash
            .ok_or_else(|| Refusal::Plain("the confirmation names no console sign-in".into()))?;
        let login = self
            .store
            .login(&login_hash)
            .await
            .map_err(ServiceError::from)?
            .filter(|l| !l.ended && l.expires_at > now)
            .ok_or_else(|| {
                Refusal::Of(
                    who.clone(),
                    "you were signed out of the console meanwhile; sign in again".into(),
                )
            })?;
        let staff = self
            .store
            .staff(login.staff)
            .await
            .map_err(ServiceError::from)?
            .filter(|s| s.active)
            .ok_or_else(|| {
                Refusal::Of(
                    who.clone(),
                    "this staff member is deactivated in actas".into(),
                )
            })?;
        let same = staff
            .subject
            .as_ref()
            .is_some_and(|(iss, sub)| *iss == provider.settings.issuer && *sub == identity.subject);
        if staff.email != identity.email || !same {
            return Err(Refusal::Of(
                who.clone(),
                format!(
                    "you confirmed as {who} at the identity provider, but you are signed in to actas as {}",
                    staff.email
                ),
            ));
        }
        let window = self.policy().session.reauth_within;
        let Some(at) = identity.auth_time else {
            return Err(Refusal::Of(
                who,
                "the identity provider did not say when you signed in, so actas can't tell it was just now".into(),
            ));
        };
        if now.since(at) > window {
            return Err(Refusal::Of(
                who,
                format!(
                    "you last signed in at the identity provider {} ago; {doing} needs a sign-in there within the last {}",
                    words::duration(now.since(at)),
                    words::duration(window)
                ),
            ));
        }
        let required = &provider.settings.require_acr;
        if !required.is_empty() && !identity.acr.as_ref().is_some_and(|a| required.contains(a)) {
            return Err(Refusal::Of(
                who,
                format!(
                    "{doing} needs a sign-in with a second factor at the identity provider ({}), and this one was {}",
                    required.join(" or "),
                    identity
                        .acr
                        .as_deref()
                        .map_or("not said".to_owned(), |a| format!("“{a}”"))
                ),
            ));
        }
        let request = match action {
            Some(action) => Err(action),
            None => Ok(flow
                .then
                .as_deref()
                .and_then(|r| RequestId::parse(r).ok())
                .ok_or_else(|| Refusal::Plain("the confirmation names no request".into()))?),
        };
        let at = if at > now { now } else { at };
        self.store
            .commit(Unit::new(
                vec![Change::Reauthenticate {
                    token_hash: login_hash,
                    at,
                }],
                |_| vec![],
            ))
            .await
            .map_err(ServiceError::from)?;
        match request {
            Ok(request) => {
                let (_, token) = self.start_session(&staff, request, at).await?;
                Ok(Finished::Started(token))
            }
            Err(action) => {
                let confirmed_with = format!("a new sign-in at {}", provider.name());
                match self
                    .confirm_action(staff.id, action, &confirmed_with, at)
                    .await
                {
                    Ok(token) => Ok(Finished::Confirmed(action.to_owned(), token)),
                    // Refused for a reason they can act on: said and recorded.
                    Err(
                        ServiceError::Invalid { message, .. }
                        | ServiceError::Conflict(message)
                        | ServiceError::NotFound(message),
                    ) => Err(Refusal::Of(who, message)),
                    Err(e) => Err(Refusal::Trouble(e)),
                }
            }
        }
    }

    /// Takes the flow `state` names, or says why there is none.
    async fn take_flow(&self, state: &str) -> Result<SignOnFlow, String> {
        let taken = std::sync::Arc::new(std::sync::Mutex::new(None));
        let out = taken.clone();
        let committed = self
            .store
            .commit(Unit::new(
                vec![Change::TakeSignOn {
                    state_hash: secret_hash(state),
                    at: Timestamp::now(),
                }],
                move |applied| {
                    if let Some(Applied::SignOn(flow)) = applied.first()
                        && let Ok(mut slot) = out.lock()
                    {
                        *slot = Some(flow.clone());
                    }
                    vec![]
                },
            ))
            .await;
        match committed {
            Ok(_) => taken
                .lock()
                .ok()
                .and_then(|mut f| f.take())
                .ok_or_else(|| "the sign-in could not be read back".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Why a sign-in is refused: with who the token named, without, or trouble that isn't a
/// refusal (the ledger or the provider unreachable).
enum Refusal {
    Plain(String),
    Of(String, String),
    Trouble(ServiceError),
}

impl From<ServiceError> for Refusal {
    fn from(e: ServiceError) -> Self {
        Refusal::Trouble(e)
    }
}

/// One claim of the ID token as a string.
fn claim_text(all: &serde_json::Value, name: &str) -> Option<String> {
    all.get(name)
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The groups claim: a list of names, or one name.
fn claim_list(all: &serde_json::Value, name: &str) -> Vec<String> {
    match all.get(name) {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::to_owned)
            .collect(),
        Some(serde_json::Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    }
}

fn to_timestamp(t: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp::from_millis(t.timestamp_millis())
}

impl Service {
    /// Exchanges the code and checks the ID token: the crate's checks, then actas's own.
    async fn identify(
        &self,
        provider: &SignOn,
        flow: &SignOnFlow,
        code: &str,
    ) -> Result<Identity, Refusal> {
        let metadata = provider.metadata(false).await?;
        let client = provider.client(metadata);
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| provider_trouble("it has no token endpoint", e))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()));
        let tokens = match exchange.request_async(&provider.http).await {
            Ok(tokens) => tokens,
            Err(openidconnect::RequestTokenError::ServerResponse(answer)) => {
                return Err(Refusal::Plain(format!(
                    "the identity provider would not exchange the sign-in code (it said “{}”)",
                    answer.error()
                )));
            }
            Err(e) => {
                return Err(
                    provider_trouble("actas could not exchange the sign-in code", e).into(),
                );
            }
        };
        let Some(id_token) = tokens.id_token() else {
            return Err(Refusal::Plain(
                "the identity provider sent no ID token".into(),
            ));
        };
        let nonce = Nonce::new(flow.nonce.clone());
        let verify = |client: &Client| -> Result<Claims, ClaimsVerificationError> {
            let now = chrono::Utc::now();
            let verifier = client
                .id_token_verifier()
                .set_issue_time_verifier_fn(move |iat| {
                    if iat > now + chrono::Duration::from_std(CLOCK_SKEW).unwrap_or_default() {
                        Err(ISSUED_IN_THE_FUTURE.to_owned())
                    } else {
                        Ok(())
                    }
                });
            id_token.claims(&verifier, &nonce).cloned()
        };
        let claims = match verify(&client) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // The provider may have rotated its keys since actas fetched them.
                let fresh = provider.client(provider.metadata(true).await?);
                verify(&fresh)
            }
            other => other,
        };
        let claims = claims.map_err(|e| Refusal::Plain(id_token_refusal(&e)))?;
        // `azp` (left to the client by the crate): when present it must be actas; with
        // several audiences it must be present.
        let client_id = &provider.settings.client_id;
        match claims.authorized_party() {
            Some(azp) if azp.as_str() != client_id => {
                return Err(Refusal::Plain(format!(
                    "the ID token was issued to another application ({})",
                    azp.as_str()
                )));
            }
            None if claims.audiences().len() > 1 => {
                return Err(Refusal::Plain(
                    "the ID token names several applications but not which one asked for it".into(),
                ));
            }
            _ => {}
        }
        let all = serde_json::to_value(&claims)
            .map_err(|e| provider_trouble("its ID token could not be read", e))?;
        let subject = claims.subject().as_str().to_owned();
        let email_claim = &provider.settings.email_claim;
        let Some(email_text) = claim_text(&all, email_claim) else {
            return Err(Refusal::Of(
                subject,
                format!("the identity provider gave no e-mail address (claim “{email_claim}”)"),
            ));
        };
        let unverified = match all.get("email_verified") {
            Some(serde_json::Value::Bool(b)) => !b,
            Some(serde_json::Value::String(v)) => !v.eq_ignore_ascii_case("true"),
            _ => false,
        };
        if !email_text.is_ascii() {
            return Err(Refusal::Of(
                subject,
                "the e-mail address the identity provider gave has characters other than plain letters, digits and punctuation".into(),
            ));
        }
        if email_claim == "email" && unverified {
            return Err(Refusal::Of(
                email_text,
                "the identity provider says this e-mail address is not verified".into(),
            ));
        }
        let email = Email::parse(&email_text).map_err(|e| {
            Refusal::Of(
                subject.clone(),
                format!("the e-mail address the identity provider gave is not valid: {e}"),
            )
        })?;
        let auth_time = claims.auth_time().map(to_timestamp);
        if let Some(at) = auth_time
            && at > Timestamp::now().plus(CLOCK_SKEW)
        {
            return Err(Refusal::Of(
                email_text,
                "the identity provider says you signed in at a time still to come".into(),
            ));
        }
        Ok(Identity {
            subject: claims.subject().as_str().to_owned(),
            acr: claims.auth_context_ref().map(|a| a.as_str().to_owned()),
            name: claim_text(&all, "name"),
            groups: claim_list(&all, &provider.settings.groups_claim),
            groups_given: all.get(&provider.settings.groups_claim).is_some()
                && all
                    .get("_claim_names")
                    .and_then(|n| n.get(&provider.settings.groups_claim))
                    .is_none(),
            email,
            auth_time,
        })
    }

    /// The staff member the identity is, made at first sign-in under `just_in_time`, with
    /// their role following their groups when groups are mapped.
    async fn staff_for(
        &self,
        provider: &SignOn,
        identity: &Identity,
    ) -> Result<StaffRecord, Refusal> {
        let who = identity.email.as_str().to_owned();
        let mapped = !provider.settings.groups.is_empty();
        if mapped && !identity.groups_given {
            tracing::warn!(
                claim = %provider.settings.groups_claim,
                "the ID token carries no groups claim; roles are left as they are"
            );
        }
        let mapped = mapped && identity.groups_given;
        let role = provider.settings.groups.role(&identity.groups);
        let existing = self
            .store
            .staff_by_email(&identity.email)
            .await
            .map_err(ServiceError::from)?;
        let staff = match existing {
            Some(staff) if !staff.active => {
                return Err(Refusal::Of(
                    who,
                    "this staff member is deactivated in actas".into(),
                ));
            }
            Some(staff) => staff,
            None => match provider.settings.provisioning {
                Provisioning::Pre => {
                    return Err(Refusal::Of(
                        who.clone(),
                        format!(
                            "{who} is not a staff member in actas; a director can add them with `actas staff add`"
                        ),
                    ));
                }
                Provisioning::JustInTime => {
                    let domain = identity.email.as_str().rsplit('@').next().unwrap_or("");
                    if !provider
                        .settings
                        .allowed_domains
                        .iter()
                        .any(|d| d.eq_ignore_ascii_case(domain))
                    {
                        return Err(Refusal::Of(
                            who.clone(),
                            format!(
                                "{who} is not in a domain whose staff may join actas by signing in ({})",
                                provider.settings.allowed_domains.join(", ")
                            ),
                        ));
                    }
                    let name = identity
                        .name
                        .as_deref()
                        .and_then(|n| DisplayName::parse(n).ok())
                        .or_else(|| {
                            DisplayName::parse(
                                identity.email.as_str().split('@').next().unwrap_or("staff"),
                            )
                            .ok()
                        })
                        .ok_or_else(|| {
                            Refusal::Of(
                                who.clone(),
                                "the identity provider gave no usable name".into(),
                            )
                        })?;
                    self.provision_staff(identity.email.clone(), name, role)
                        .await?
                }
            },
        };
        // Linked to one identity at the provider for good: someone who changes their
        // e-mail there to a colleague's is refused, not let in as the colleague.
        let issuer = provider.settings.issuer.clone();
        match &staff.subject {
            Some((iss, sub)) if *iss == issuer && *sub == identity.subject => {}
            Some(_) => {
                return Err(Refusal::Of(
                    who,
                    "this staff member is linked to another identity at the identity provider"
                        .into(),
                ));
            }
            None => {
                let linked = self
                    .store
                    .commit(Unit::new(
                        vec![Change::LinkSubject {
                            staff: staff.id,
                            issuer,
                            subject: identity.subject.clone(),
                        }],
                        |_| vec![],
                    ))
                    .await;
                match linked {
                    Ok(_) => {}
                    Err(actas_store::StoreError::Conflict(reason)) => {
                        return Err(Refusal::Of(who, reason));
                    }
                    Err(e) => return Err(ServiceError::from(e).into()),
                }
            }
        }
        if mapped && staff.role != role {
            let from = staff.role;
            let event = NewEvent::new(
                Actor::System,
                EventData::RoleChanged {
                    staff: staff.to_ref(),
                    from,
                    to: role,
                    through: provider.name().to_owned(),
                },
            );
            self.store
                .commit(Unit::change(
                    Change::SetRole {
                        staff: staff.id,
                        role,
                    },
                    event,
                ))
                .await
                .map_err(ServiceError::from)?;
            let mut staff = staff;
            staff.role = role;
            return Ok(staff);
        }
        Ok(staff)
    }

    /// Opens the console login for `staff`: for the policy's `console_sign_in`, and
    /// never a recent check (starting a session through it needs a step-up at the
    /// provider, its `auth_time` and `acr` checked then, whatever path asks).
    async fn login_through(
        &self,
        provider: &SignOn,
        staff: StaffRecord,
    ) -> ServiceResult<SignedIn> {
        self.open_login(
            staff,
            Timestamp::from_millis(0),
            self.policy().session.console_sign_in,
            Some(provider.name().to_owned()),
            None,
        )
        .await
    }
}

/// Why an ID token failed the crate's checks, in plain words.
fn id_token_refusal(e: &ClaimsVerificationError) -> String {
    match e {
        // The crate reports a failed `iat` check as expiry.
        ClaimsVerificationError::Expired(m) if m == ISSUED_IN_THE_FUTURE => {
            "the ID token was issued in the future".into()
        }
        ClaimsVerificationError::Expired(_) => "the ID token has expired".into(),
        ClaimsVerificationError::InvalidAudience(_) => {
            "the ID token was issued for another application".into()
        }
        ClaimsVerificationError::InvalidIssuer(_) => {
            "the ID token comes from another issuer".into()
        }
        ClaimsVerificationError::InvalidNonce(_) => {
            "the ID token does not belong to this sign-in (its nonce differs)".into()
        }
        ClaimsVerificationError::SignatureVerification(_) => {
            "the ID token's signature is not one of the identity provider's keys".into()
        }
        other => format!("the ID token did not pass its checks ({other})"),
    }
}

/// What did not happen when `flow` is refused: a confirmation or a sign-in.
fn lead_of(flow: &SignOnFlow) -> &'static str {
    match action_of(flow) {
        Some(_) => "The change was not confirmed",
        None => "You were not signed in",
    }
}

/// The held action a step-up flow confirms, if that is what it is for.
fn action_of(flow: &SignOnFlow) -> Option<&str> {
    flow.then
        .as_deref()
        .and_then(|t| t.strip_prefix(ACTION_PREFIX))
        .filter(|_| flow.purpose == "step_up")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_come_as_a_list_or_one_name() {
        let all = serde_json::json!({"groups": ["a", "b", 3], "one": "c", "email": " x@y.z "});
        assert_eq!(claim_list(&all, "groups"), vec!["a", "b"]);
        assert_eq!(claim_list(&all, "one"), vec!["c"]);
        assert!(claim_list(&all, "none").is_empty());
        assert_eq!(claim_text(&all, "email").as_deref(), Some("x@y.z"));
    }
}
