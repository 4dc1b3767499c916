//! Staff sign-in through an identity provider, against a real one: the certified
//! `oidc-provider` package on Node (`tests/oidc/provider.mjs`, installed by `cargo xtask
//! test`), started on port 0 for each test. Its login form signs in whoever the test
//! says (subject, e-mail, groups, `acr`, how long ago); its `/__test/` hooks make it
//! misbehave the ways a token can be wrong (another audience, a wrong nonce, expired, a
//! key it never published) and rotate its signing key.

mod common;

use actas_core::staff::{Email, Role};
use actas_server::app::{Application, ServeSettings};
use actas_store::{EventFilter, Store};
use common::idp::{Idp, SCIM_TOKEN};
use common::*;
use serde_json::{Value, json};

/// actas with `[auth]` pointing at a fresh identity provider.
struct Installation {
    dir: tempfile::TempDir,
    app: Application,
    console: String,
    idp: Idp,
}

impl Installation {
    /// `auth` is added to `[auth.oidc]` (provisioning, groups…); `extra` after it (e.g. an
    /// `[auth]` table of its own).
    async fn start(oidc: &str, local_passwords: bool) -> Self {
        let idp = Idp::start().await;
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path().join("data");
        let data = fresh_data(&root).await;
        idp.configure(&root, local_passwords, oidc);
        let app = Application::build(&data, ServeSettings::on(([127, 0, 0, 1], 0).into()))
            .await
            .expect("start");
        let console = format!("http://{}", app.console_addr());
        idp.hook(
            "redirect_uris",
            json!([format!("{console}/sign-in/sso/callback")]),
        )
        .await;
        add_staff(
            app.service(),
            &[
                ("sarah@example.com", "Sarah Lee", Role::Agent),
                ("dana@example.com", "Dana Park", Role::Director),
            ],
        )
        .await;
        Self {
            dir,
            app,
            console,
            idp,
        }
    }

    fn store(&self) -> &std::sync::Arc<dyn Store> {
        self.app.store()
    }

    async fn summaries(&self) -> Vec<String> {
        self.store()
            .events(&EventFilter::default(), 0, 10_000)
            .await
            .expect("events")
            .into_iter()
            .map(|e| e.body.summary)
            .collect()
    }

    async fn role_of(&self, email: &str) -> Option<Role> {
        self.store()
            .staff_by_email(&Email::parse(email).expect("email"))
            .await
            .expect("read")
            .map(|s| s.role)
    }
}

/// Where the console and the provider are.
trait Sites {
    fn console(&self) -> &str;
    fn issuer(&self) -> &str;
}

impl Sites for Installation {
    fn console(&self) -> &str {
        &self.console
    }
    fn issuer(&self) -> &str {
        &self.idp.issuer
    }
}

/// Who the test identity provider signs in.
#[derive(Clone)]
struct Login {
    sub: &'static str,
    email: &'static str,
    groups: &'static str,
    acr: &'static str,
    age_seconds: u64,
}

const SARAH: Login = Login {
    sub: "u-sarah",
    email: "sarah@example.com",
    groups: "support",
    acr: "urn:actas:mfa",
    age_seconds: 0,
};

/// A browser: cookies kept, redirects seen one at a time.
struct Browser {
    http: reqwest::Client,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
        }
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.expect("get")
    }

    /// Where a redirect goes, made absolute against `base`.
    fn location(r: &reqwest::Response, base: &str) -> String {
        assert!(
            r.status().is_redirection(),
            "expected a redirect from {}, got {}",
            r.url(),
            r.status()
        );
        let to = r
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("location")
            .to_owned();
        url::Url::parse(base)
            .expect("base")
            .join(&to)
            .expect("location")
            .to_string()
    }

    /// Starts signing in at actas and signs in at the provider as `login`; the URL the
    /// provider sends the browser back to (not yet followed).
    async fn to_provider_and_back(&self, at: &impl Sites, login: &Login) -> String {
        let start = self.get(&format!("{}/sign-in/sso", at.console())).await;
        let authorize = Self::location(&start, at.console());
        self.at_provider(at, &authorize, login).await
    }

    /// At the provider's authorization URL: signs in as `login` if it asks, and returns
    /// the URL it sends the browser back to.
    async fn at_provider(&self, at: &impl Sites, authorize: &str, login: &Login) -> String {
        assert!(
            authorize.starts_with(at.issuer()),
            "sent to the provider: {authorize}"
        );
        let r = self.get(authorize).await;
        let interaction = Self::location(&r, at.issuer());
        if interaction.starts_with(at.console()) {
            // Still signed in at the provider: it sends the browser straight back.
            return interaction;
        }
        let form = [
            ("sub", login.sub.to_owned()),
            ("email", login.email.to_owned()),
            ("groups", login.groups.to_owned()),
            ("acr", login.acr.to_owned()),
            ("age", login.age_seconds.to_string()),
        ];
        let r = self
            .http
            .post(format!("{interaction}/login"))
            .form(&form)
            .send()
            .await
            .expect("login");
        let mut next = Self::location(&r, at.issuer());
        for _ in 0..5 {
            if next.starts_with(at.console()) {
                return next;
            }
            let r = self.get(&next).await;
            next = if r.status().is_redirection() {
                Self::location(&r, at.issuer())
            } else {
                self.submit_self_posting_form(r, at.issuer()).await
            };
        }
        panic!("the provider never sent the browser back: {next}");
    }

    /// The provider's page that posts itself with JavaScript ("Submitting Callback",
    /// e.g. ending the previous user's session when another signs in), posted as a
    /// browser would; where it redirects to.
    async fn submit_self_posting_form(&self, r: reqwest::Response, base: &str) -> String {
        let from = r.url().to_string();
        let html = r.text().await.expect("page");
        assert!(
            html.contains("<title>Submitting Callback</title>"),
            "expected a redirect or the provider's self-posting form from {from}: {html}"
        );
        let action = html
            .split("<form method=\"post\" action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the form's action")
            .replace("&amp;", "&");
        let fields: Vec<(String, String)> = html
            .split("<input type=\"hidden\" name=\"")
            .skip(1)
            .filter_map(|rest| {
                let (name, rest) = rest.split_once('"')?;
                let value = rest.split("value=\"").nth(1)?.split('"').next()?;
                Some((name.to_owned(), value.to_owned()))
            })
            .collect();
        let target = url::Url::parse(&from)
            .expect("url")
            .join(&action)
            .expect("action")
            .to_string();
        let r = self
            .http
            .post(target)
            .form(&fields)
            .send()
            .await
            .expect("post");
        Self::location(&r, base)
    }

    /// A whole sign-in as `login`: the callback's status and page.
    async fn sign_in(&self, at: &Installation, login: &Login) -> (u16, String) {
        let back = self.to_provider_and_back(at, login).await;
        let r = self.get(&back).await;
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    /// The console's start page as this browser sees it.
    async fn home(&self, at: &Installation) -> (u16, String) {
        let r = self.get(&format!("{}/", at.console)).await;
        (r.status().as_u16(), r.text().await.expect("body"))
    }
}

const GROUPS: &str =
    "[auth.oidc.groups]\nlead = [\"support-leads\"]\ndirector = [\"support-directors\"]\n";

#[tokio::test]
async fn a_staff_member_signs_in_through_the_provider_with_the_role_their_groups_give() {
    let at = Installation::start(GROUPS, true).await;
    let browser = Browser::new();
    let lead = Login {
        groups: "support,support-leads",
        ..SARAH
    };
    let back = browser.to_provider_and_back(&at, &lead).await;
    let r = browser.get(&back).await;
    assert_eq!(r.status(), 200);
    // A short console sign-in (the policy's 60 minutes), renewed through the provider.
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("actas_console="))
        .expect("the console cookie")
        .to_owned();
    assert!(cookie.contains("Max-Age=3600"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    let page = r.text().await.expect("page");
    assert!(page.contains("url=/"), "goes on to the console: {page}");
    let (status, home) = browser.home(&at).await;
    assert_eq!(status, 200, "signed in: {home}");
    assert!(home.contains("Sarah Lee"), "{home}");
    assert_eq!(at.role_of("sarah@example.com").await, Some(Role::Lead));
    let said = at.summaries().await;
    assert!(
        said.iter()
            .any(|s| s
                == "Sarah Lee is now a lead (was an agent), following their groups at Test IdP"),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|s| s == "Sarah Lee signed in through Test IdP"),
        "{said:#?}"
    );
    // Out of the group, back to agent at the next sign-in.
    let (status, _) = Browser::new().sign_in(&at, &SARAH).await;
    assert_eq!(status, 200);
    assert_eq!(at.role_of("sarah@example.com").await, Some(Role::Agent));
    drop(at.dir);
}

#[tokio::test]
async fn a_state_works_once_and_only_in_the_browser_that_started_it() {
    let at = Installation::start("", true).await;
    let browser = Browser::new();
    let back = browser.to_provider_and_back(&at, &SARAH).await;
    // Someone else's browser with the same link (login CSRF): refused, and the link is
    // spent.
    let other = Browser::new();
    let r = other.get(&back).await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.expect("body");
    assert!(page.contains("a different browser"), "{page}");
    let (status, _) = other.home(&at).await;
    assert_ne!(status, 200, "the other browser is not signed in");
    let r = browser.get(&back).await;
    assert_eq!(r.status(), 403, "replayed");
    let page = r.text().await.expect("body");
    assert!(page.contains("already finished"), "{page}");
    // Two sign-ins started in the same browser (two tabs) each finish.
    let first = browser.to_provider_and_back(&at, &SARAH).await;
    let second = browser.to_provider_and_back(&at, &SARAH).await;
    assert_eq!(browser.get(&first).await.status(), 200, "the first tab");
    assert_eq!(browser.get(&second).await.status(), 200, "the second tab");
    // A fresh sign-in works, and its state can't be replayed either.
    let back = browser.to_provider_and_back(&at, &SARAH).await;
    assert_eq!(browser.get(&back).await.status(), 200);
    let r = browser.get(&back).await;
    assert_eq!(r.status(), 403, "replayed after success");
    let said = at.summaries().await;
    assert!(
        said.iter().any(|s| s.starts_with("A sign-in through Test IdP was refused: the sign-in was finished in a different browser")),
        "{said:#?}"
    );
}

/// Signs in as Sarah with the next ID token changed by `tamper`: the page refusing it.
async fn refused_with(at: &Installation, tamper: Value) -> String {
    at.idp.tamper(tamper).await;
    let browser = Browser::new();
    let (status, page) = browser.sign_in(at, &SARAH).await;
    assert_eq!(status, 403, "refused: {page}");
    let (status, _) = browser.home(at).await;
    assert_ne!(status, 200, "not signed in");
    page
}

#[tokio::test]
async fn id_tokens_that_fail_a_check_are_refused_and_recorded() {
    let at = Installation::start("", true).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let cases = [
        (
            json!({"aud": "other-app"}),
            "issued for another application",
        ),
        (
            json!({"aud": ["actas", "other-app"]}),
            "issued for another application",
        ),
        (
            json!({"aud": ["actas", "other-app"], "azp": "other-app"}),
            "issued for another application",
        ),
        (json!({"azp": "other-app"}), "issued to another application"),
        (json!({"nonce": "someone-elses-nonce"}), "nonce differs"),
        (json!({"nonce": null}), "nonce differs"),
        (
            json!({"exp": now - 60, "iat": now - 700}),
            "the ID token has expired",
        ),
        (json!({"iat": now + 3600}), "issued in the future"),
        (
            json!({"iss": "https://idp.attacker.example"}),
            "comes from another issuer",
        ),
        (
            json!({"sign_with_unknown_key": true}),
            "signature is not one of the identity provider",
        ),
        (json!({"email": null}), "gave no e-mail address"),
        (json!({"email_verified": false}), "not verified"),
    ];
    for (tamper, why) in cases {
        let page = refused_with(&at, tamper.clone()).await;
        assert!(page.contains(why), "{tamper}: {page}");
    }
    let said = at.summaries().await;
    assert!(
        said.iter()
            .any(|s| s
                .starts_with("A sign-in through Test IdP was refused: the ID token has expired")),
        "{said:#?}"
    );
    assert!(
        !said.iter().any(|s| s.contains("signed in through")),
        "nobody got in: {said:#?}"
    );
    // And an honest token still works.
    assert_eq!(Browser::new().sign_in(&at, &SARAH).await.0, 200);
}

#[tokio::test]
async fn a_key_the_provider_rotated_to_is_fetched_and_accepted() {
    let at = Installation::start("", true).await;
    assert_eq!(Browser::new().sign_in(&at, &SARAH).await.0, 200);
    at.idp.rotate().await;
    let (status, page) = Browser::new().sign_in(&at, &SARAH).await;
    assert_eq!(status, 200, "the new key is fetched: {page}");
    // A key it never published still isn't.
    let page = refused_with(&at, json!({"sign_with_unknown_key": true})).await;
    assert!(page.contains("signature"), "{page}");
}

#[tokio::test]
async fn under_pre_provisioning_only_staff_added_to_actas_get_in() {
    let at = Installation::start("provisioning = \"pre\"\n", true).await;
    let eve = Login {
        sub: "u-eve",
        email: "eve@example.com",
        ..SARAH
    };
    let browser = Browser::new();
    let (status, page) = browser.sign_in(&at, &eve).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("eve@example.com is not a staff member"),
        "{page}"
    );
    assert_eq!(at.role_of("eve@example.com").await, None, "no record made");
    let said = at.summaries().await;
    assert!(
        said.iter().any(|s| s.starts_with(
            "Test IdP signed in eve@example.com, but actas refused them: eve@example.com is not a staff member"
        )),
        "{said:#?}"
    );
    // A deactivated staff member doesn't get in either.
    let dana = Email::parse("dana@example.com").expect("email");
    at.app
        .service()
        .disable_staff(
            &Email::parse("sarah@example.com").expect("email"),
            Some(&dana),
        )
        .await
        .expect("disable");
    let (status, page) = Browser::new().sign_in(&at, &SARAH).await;
    assert_eq!(status, 403);
    assert!(page.contains("deactivated"), "{page}");
}

#[tokio::test]
async fn just_in_time_provisioning_makes_an_agent_who_is_not_on_the_allow_list() {
    let at = Installation::start(
        "provisioning = \"just_in_time\"\nallowed_domains = [\"example.com\"]\n",
        true,
    )
    .await;
    let newcomer = Login {
        sub: "u-nina",
        email: "nina@example.com",
        ..SARAH
    };
    let browser = Browser::new();
    let (status, page) = browser.sign_in(&at, &newcomer).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(at.role_of("nina@example.com").await, Some(Role::Agent));
    let allowed = at
        .store()
        .allow_list()
        .await
        .expect("allow list")
        .into_iter()
        .any(|e| e.staff.email.as_str() == "nina@example.com");
    assert!(!allowed, "never on the allow-list");
    // Only people of the allowed domains join by signing in.
    let outsider = Login {
        sub: "u-olga",
        email: "olga@elsewhere.example",
        ..SARAH
    };
    let (status, page) = Browser::new().sign_in(&at, &outsider).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("is not in a domain whose staff may join"),
        "{page}"
    );
    assert_eq!(at.role_of("olga@elsewhere.example").await, None);
    // No password opens their record.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/sign-in", at.console))
        .json(&json!({"email": "nina@example.com", "password": "!signs-in-through-the-identity-provider"}))
        .send()
        .await
        .expect("post");
    assert!(r.status().is_client_error(), "{}", r.status());
}

#[tokio::test]
async fn with_local_passwords_off_the_provider_is_the_only_way_in() {
    let at = Installation::start("", false).await;
    let page = reqwest::get(format!("{}/sign-in", at.console))
        .await
        .expect("get")
        .text()
        .await
        .expect("body");
    assert!(page.contains("Sign in with Test IdP"), "{page}");
    assert!(
        !page.contains("type=\"password\""),
        "no password field: {page}"
    );
    let r = reqwest::Client::new()
        .post(format!("{}/sign-in", at.console))
        .header("origin", &at.console)
        .form(&[("email", "sarah@example.com"), ("password", PASSWORD)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);
    let page = r.text().await.expect("body");
    assert!(
        page.contains("passwords are turned off here; sign in with Test IdP instead"),
        "{page}"
    );
    assert_eq!(Browser::new().sign_in(&at, &SARAH).await.0, 200);
}

/// actas with sign-in only through the provider (`oidc` added to `[auth.oidc]`), Sarah on
/// the allow-list, the account `acme`, and Sarah signed in `signed_in_ago` seconds ago at
/// the provider; her browser and an approved request of hers.
async fn ready_to_start(oidc: &str, signed_in_ago: u64) -> (Installation, Browser, String) {
    let at = Installation::start(oidc, false).await;
    allow(
        at.app.service(),
        "sarah@example.com",
        actas_core::scope::Risk::Low,
    )
    .await;
    acme(at.app.service()).await;
    let browser = Browser::new();
    let (status, page) = browser
        .sign_in(
            &at,
            &Login {
                age_seconds: signed_in_ago,
                ..SARAH
            },
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let sarah = staff(at.app.service(), "sarah@example.com").await;
    let request = view_request(at.app.service(), &sarah).await;
    (at, browser, request.id.to_string())
}

impl Browser {
    /// Presses "Start support session" on the request's page: where actas sends the
    /// browser (the provider, for a step-up).
    async fn press_start(&self, at: &Installation, request: &str) -> String {
        let page = self
            .get(&format!("{}/requests/{request}", at.console))
            .await
            .text()
            .await
            .expect("page");
        let csrf = csrf_on(&page);
        let r = self
            .http
            .post(format!("{}/requests/{request}/start", at.console))
            .header("origin", &at.console)
            .form(&[("csrf", csrf.as_str()), ("confirm", "provider")])
            .send()
            .await
            .expect("start");
        Self::location(&r, &at.console)
    }

    /// Follows the provider's answer back to actas: status and page.
    async fn back(&self, url: &str) -> (u16, String) {
        let r = self.get(url).await;
        (r.status().as_u16(), r.text().await.expect("body"))
    }
}

async fn active_session(at: &Installation) -> bool {
    let sarah = staff(at.app.service(), "sarah@example.com").await;
    at.store()
        .active_session_of(sarah.id)
        .await
        .expect("read")
        .is_some()
}

#[tokio::test]
async fn starting_a_session_asks_the_provider_again_and_refuses_an_old_sign_in() {
    let (at, browser, request) = ready_to_start("", 0).await;
    let authorize = browser.press_start(&at, &request).await;
    let query: std::collections::HashMap<String, String> = url::Url::parse(&authorize)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(query.get("prompt").map(String::as_str), Some("login"));
    assert_eq!(query.get("max_age").map(String::as_str), Some("300"));
    // The provider asks again (prompt=login); signing in there with a sign-in that is
    // ten minutes old is refused.
    let stale = Login {
        age_seconds: 600,
        ..SARAH
    };
    let back = browser.at_provider(&at, &authorize, &stale).await;
    let (status, page) = browser.back(&back).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("you last signed in at the identity provider 10 minutes ago"),
        "{page}"
    );
    assert!(!active_session(&at).await, "no session");
    // Signing in there now starts it.
    let authorize = browser.press_start(&at, &request).await;
    let back = browser.at_provider(&at, &authorize, &SARAH).await;
    let (status, page) = browser.back(&back).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("/session?handoff="), "{page}");
    assert!(active_session(&at).await, "the session started");
    let said = at.summaries().await;
    assert!(
        said.iter().any(|s| s.starts_with(
            "Test IdP signed in sarah@example.com, but actas refused them: you last signed in at the identity provider 10 minutes ago"
        )),
        "{said:#?}"
    );
}

#[tokio::test]
async fn a_client_that_strips_prompt_and_max_age_is_still_refused() {
    // Signed in at the provider six minutes ago; the browser drops `prompt=login` and
    // `max_age`, so the provider sends it straight back with that old sign-in.
    let (at, browser, request) = ready_to_start("", 360).await;
    let authorize = browser.press_start(&at, &request).await;
    let mut url = url::Url::parse(&authorize).expect("url");
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != "prompt" && k != "max_age")
        .collect();
    url.query_pairs_mut().clear().extend_pairs(kept);
    let back = browser.at_provider(&at, url.as_str(), &SARAH).await;
    let (status, page) = browser.back(&back).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("you last signed in at the identity provider 6 minutes ago"),
        "{page}"
    );
    assert!(!active_session(&at).await, "no session");
}

#[tokio::test]
async fn a_required_second_factor_is_checked_by_actas() {
    let (at, browser, request) = ready_to_start("require_acr = [\"urn:actas:mfa\"]\n", 0).await;
    let authorize = browser.press_start(&at, &request).await;
    assert!(
        authorize.contains("acr_values=urn%3Aactas%3Amfa"),
        "{authorize}"
    );
    let password_only = Login {
        acr: "urn:actas:pwd",
        ..SARAH
    };
    let back = browser.at_provider(&at, &authorize, &password_only).await;
    let (status, page) = browser.back(&back).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("needs a sign-in with a second factor"),
        "{page}"
    );
    let authorize = browser.press_start(&at, &request).await;
    let back = browser.at_provider(&at, &authorize, &SARAH).await;
    assert_eq!(browser.back(&back).await.0, 200);
    assert!(active_session(&at).await);
}

#[tokio::test]
async fn a_step_up_as_someone_else_is_refused() {
    let (at, browser, request) = ready_to_start("", 0).await;
    let authorize = browser.press_start(&at, &request).await;
    let dana = Login {
        sub: "u-dana",
        email: "dana@example.com",
        ..SARAH
    };
    let back = browser.at_provider(&at, &authorize, &dana).await;
    let (status, page) = browser.back(&back).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("you confirmed as dana@example.com at the identity provider, but you are signed in to actas as sarah@example.com"),
        "{page}"
    );
    assert!(!active_session(&at).await);
}

impl Installation {
    /// A SCIM request with the provider's token (or `token`).
    async fn scim(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        let mut req = reqwest::Client::new()
            .request(method, format!("{}/scim/v2{path}", self.console))
            .bearer_auth(token.unwrap_or(SCIM_TOKEN));
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = req.send().await.expect("scim");
        let status = r.status().as_u16();
        if status != 204 {
            assert_eq!(
                r.headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok()),
                Some("application/scim+json")
            );
        }
        let text = r.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

fn deactivate(value: Value) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [{"op": "replace", "path": "active", "value": value}],
    })
}

#[tokio::test]
async fn a_user_deactivated_by_scim_loses_their_session_and_their_console_at_once() {
    let (at, browser, request) = ready_to_start("", 0).await;
    let authorize = browser.press_start(&at, &request).await;
    let back = browser.at_provider(&at, &authorize, &SARAH).await;
    assert_eq!(browser.back(&back).await.0, 200);
    assert!(active_session(&at).await);
    // The provider finds Sarah, then deactivates her.
    let (status, found) = at
        .scim(
            reqwest::Method::GET,
            "/Users?filter=userName%20eq%20%22sarah%40example.com%22",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["totalResults"], 1, "{found}");
    let id = found["Resources"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(found["Resources"][0]["active"], true);
    let (status, user) = at
        .scim(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(deactivate(json!(false))),
            None,
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["active"], false);
    assert!(!active_session(&at).await, "the session ended with her");
    let (status, _) = browser.home(&at).await;
    assert_ne!(status, 200, "her console cookie is refused on its next use");
    let said = at.summaries().await;
    assert!(
        said.iter()
            .any(|s| s == "Sarah Lee (sarah@example.com) was deactivated"),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|s| s.contains("Sarah Lee's session on Acme Co ended")),
        "{said:#?}"
    );
    // And she can't sign in again through the provider.
    let (status, page) = Browser::new().sign_in(&at, &SARAH).await;
    assert_eq!(status, 403, "{page}");
    // Made active again (Entra writes booleans as strings).
    let (status, user) = at
        .scim(
            reqwest::Method::PATCH,
            &format!("/Users/{id}"),
            Some(deactivate(json!("True"))),
            None,
        )
        .await;
    assert_eq!(status, 200, "{user}");
    assert_eq!(user["active"], true);
    let (status, _) = browser.home(&at).await;
    assert_ne!(status, 200, "reactivation brings no old sign-in back");
    assert_eq!(Browser::new().sign_in(&at, &SARAH).await.0, 200);
}

#[tokio::test]
async fn scim_creates_finds_and_deletes_users_behind_its_token() {
    let at = Installation::start("", true).await;
    for token in [Some("not-the-token"), Some("")] {
        let (status, body) = at.scim(reqwest::Method::GET, "/Users", None, token).await;
        assert_eq!(status, 401, "{body}");
    }
    let nina = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "nina@example.com",
        "name": {"givenName": "Nina", "familyName": "Berg"},
        "emails": [{"value": "nina@example.com", "primary": true}],
        "active": true,
    });
    let (status, made) = at
        .scim(reqwest::Method::POST, "/Users", Some(nina.clone()), None)
        .await;
    assert_eq!(status, 201, "{made}");
    assert_eq!(made["userName"], "nina@example.com");
    assert_eq!(made["displayName"], "Nina Berg");
    assert_eq!(at.role_of("nina@example.com").await, Some(Role::Agent));
    let (status, again) = at
        .scim(reqwest::Method::POST, "/Users", Some(nina), None)
        .await;
    assert_eq!(status, 409, "{again}");
    assert_eq!(again["scimType"], "uniqueness");
    let id = made["id"].as_str().expect("id");
    let (status, got) = at
        .scim(reqwest::Method::GET, &format!("/Users/{id}"), None, None)
        .await;
    assert_eq!(
        (status, got["userName"].clone()),
        (200, json!("nina@example.com"))
    );
    let (status, none) = at
        .scim(
            reqwest::Method::GET,
            "/Users?filter=userName%20eq%20%22nobody%40example.com%22",
            None,
            None,
        )
        .await;
    assert_eq!((status, none["totalResults"].clone()), (200, json!(0)));
    let (status, bad) = at
        .scim(reqwest::Method::GET, "/Users?filter=title%20pr", None, None)
        .await;
    assert_eq!(
        (status, bad["scimType"].clone()),
        (400, json!("invalidFilter"))
    );
    let (status, _) = at
        .scim(reqwest::Method::DELETE, &format!("/Users/{id}"), None, None)
        .await;
    assert_eq!(status, 204);
    let (_, got) = at
        .scim(reqwest::Method::GET, &format!("/Users/{id}"), None, None)
        .await;
    assert_eq!(
        got["active"], false,
        "deleting deactivates; the ledger still names her"
    );
    let (status, _) = at
        .scim(reqwest::Method::GET, "/Users/999999", None, None)
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn staff_added_without_a_password_sign_in_only_through_the_provider() {
    let at = Installation::start("provisioning = \"pre\"\n", true).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_actas"))
        .arg("--data")
        .arg(at.dir.path().join("data"))
        .args([
            "staff",
            "add",
            "omar@example.com",
            "--name",
            "Omar Haddad",
            "--role",
            "agent",
            "--no-password",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("actas runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let omar = Login {
        sub: "u-omar",
        email: "omar@example.com",
        ..SARAH
    };
    let (status, page) = Browser::new().sign_in(&at, &omar).await;
    assert_eq!(status, 200, "{page}");
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/sign-in", at.console))
        .json(&json!({"email": "omar@example.com", "password": "!signs-in-through-the-identity-provider"}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401, "no password opens the record");
}

#[tokio::test]
async fn a_colleague_who_takes_an_e_mail_at_the_provider_does_not_become_its_owner() {
    let at = Installation::start("", true).await;
    // Sarah's first sign-in links her record to her subject at the provider.
    assert_eq!(Browser::new().sign_in(&at, &SARAH).await.0, 200);
    // Someone else there sets their e-mail to Sarah's.
    let mallory = Login {
        sub: "u-mallory",
        ..SARAH
    };
    let browser = Browser::new();
    let (status, page) = browser.sign_in(&at, &mallory).await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("linked to another identity"), "{page}");
    assert_ne!(browser.home(&at).await.0, 200);
    // Nor can a subject already linked to Sarah take Dana's record.
    let sarah_as_dana = Login {
        email: "dana@example.com",
        ..SARAH
    };
    let (status, page) = Browser::new().sign_in(&at, &sarah_as_dana).await;
    assert_eq!(status, 403, "{page}");
    assert!(
        page.contains("already belongs to another staff member"),
        "{page}"
    );
}

#[tokio::test]
async fn a_state_nobody_started_is_refused_without_writing_to_the_ledger() {
    let at = Installation::start("", true).await;
    let before = at.store().ledger_size().await.expect("size");
    let r = reqwest::get(format!(
        "{}/sign-in/sso/callback?state=made-up&code=made-up",
        at.console
    ))
    .await
    .expect("get");
    assert_eq!(r.status(), 403);
    let r = reqwest::get(format!(
        "{}/sign-in/sso/callback?state=made-up&error=access_denied&error_description=<script>",
        at.console
    ))
    .await
    .expect("get");
    assert_eq!(r.status(), 403);
    assert!(!r.text().await.expect("body").contains("<script>"));
    assert_eq!(at.store().ledger_size().await.expect("size"), before);
}

#[tokio::test]
async fn a_provider_sign_in_alone_never_starts_a_session() {
    // With passwords on as well, pressing the plain start button (or the API) with a
    // login made through the provider is refused: only a step-up at the provider, with
    // its auth_time and acr checked, starts a session.
    let at = Installation::start("require_acr = [\"urn:actas:mfa\"]\n", true).await;
    allow(
        at.app.service(),
        "sarah@example.com",
        actas_core::scope::Risk::Low,
    )
    .await;
    acme(at.app.service()).await;
    let browser = Browser::new();
    let single_factor = Login {
        acr: "urn:actas:pwd",
        ..SARAH
    };
    assert_eq!(browser.sign_in(&at, &single_factor).await.0, 200);
    let sarah = staff(at.app.service(), "sarah@example.com").await;
    let request = view_request(at.app.service(), &sarah).await;
    let page = browser
        .get(&format!("{}/requests/{}", at.console, request.id))
        .await
        .text()
        .await
        .expect("page");
    let csrf = csrf_on(&page);
    let r = browser
        .http
        .post(format!("{}/requests/{}/start", at.console, request.id))
        .header("origin", &at.console)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .expect("start");
    let page = r.text().await.expect("page");
    assert!(
        page.contains("please confirm it is you again at Test IdP"),
        "{page}"
    );
    assert!(!active_session(&at).await);
}

/// The demo (whose `POST /profile` is a signed action) with sign-in only through the
/// provider: Sarah, signed in to the console there, has a change held at the gateway.
/// The demo, the provider, Sarah's browser, the held change's id, and a client with the
/// gateway's cookie.
async fn demo_with_a_held_change() -> (
    tempfile::TempDir,
    actas_server::demo::Demo,
    Idp,
    Browser,
    String,
    (String, String),
) {
    use actas_server::demo::{Demo, DemoSettings};
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("data");
    let settings = |database_url| DemoSettings {
        data: Some(root.clone()),
        console_addr: ([127, 0, 0, 1], 0).into(),
        gateway_addr: ([127, 0, 0, 1], 0).into(),
        portal_addr: ([127, 0, 0, 1], 0).into(),
        database_url,
        ..DemoSettings::default()
    };
    // Set up once, then started again with passwords off and the provider on.
    let first = Demo::start(settings(demo_database().await))
        .await
        .expect("demo starts");
    first.stop().await.expect("stops");
    idp.configure(&root, false, "");
    let d = Demo::start(settings(None))
        .await
        .expect("demo starts again");
    let console = format!("http://{}", d.app.console_addr());
    let gateway = format!("http://{}", d.app.gateway_addr().expect("gateway"));
    idp.hook(
        "redirect_uris",
        json!([format!("{console}/sign-in/sso/callback")]),
    )
    .await;
    let at = ProviderAt {
        console: console.clone(),
        issuer: idp.issuer.clone(),
    };
    let browser = Browser::new();
    let back = browser.to_provider_and_back(&at, &NW_SARAH).await;
    assert_eq!(browser.get(&back).await.status(), 200, "Sarah signs in");

    let s = d.app.service();
    let sarah = staff(s, "sarah@northwind.example").await;
    let lee = staff(s, "lee@northwind.example").await;
    let request = s
        .create_request(
            &sarah,
            actas_server::service::RequestInput {
                account: "acme".into(),
                ticket: "#4821".into(),
                reason: "Customer renamed their business and asked us to update it".into(),
                capabilities: vec!["edit_profile".into()],
                minutes: Some(15),
                mode: Some("live".into()),
                for_session: None,
            },
        )
        .await
        .expect("request");
    s.approve_request(&lee, request.id, actas_server::service::Approval::default())
        .await
        .expect("approved");
    let (_, token) = s
        .start_session(&sarah, request.id, actas_core::Timestamp::now())
        .await
        .expect("start");
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let entered = plain
        .get(format!("{gateway}/__actas/enter?token={}", token.expose()))
        .send()
        .await
        .expect("enter");
    let gw = entered.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie")
        .to_owned();
    let held = plain
        .post(format!("{gateway}/profile"))
        .header("cookie", &gw)
        .header("sec-fetch-mode", "navigate")
        .form(&[("name", "Acme Trading Ltd")])
        .send()
        .await
        .expect("post");
    assert_eq!(held.status(), 428, "held");
    let link = held.headers()["link"].to_str().expect("ascii").to_owned();
    let action = link
        .split(&format!("<{console}/actions/"))
        .nth(1)
        .and_then(|rest| rest.split('>').next())
        .expect("the confirm link")
        .to_owned();
    (dir, d, idp, browser, action, (gateway, gw))
}

/// Where the provider and the console are, for a [`Browser`] outside an [`Installation`].
struct ProviderAt {
    console: String,
    issuer: String,
}

impl Sites for ProviderAt {
    fn console(&self) -> &str {
        &self.console
    }
    fn issuer(&self) -> &str {
        &self.issuer
    }
}

const NW_SARAH: Login = Login {
    sub: "u-sarah-nw",
    email: "sarah@northwind.example",
    groups: "support",
    acr: "urn:actas:mfa",
    age_seconds: 0,
};

impl Browser {
    /// Presses "Confirm by signing in again" on a held change's page: where actas sends
    /// the browser (the provider), and the page it showed.
    async fn press_confirm(&self, at: &ProviderAt, action: &str) -> (String, String) {
        let page = self
            .get(&format!("{}/actions/{action}", at.console))
            .await
            .text()
            .await
            .expect("page");
        let r = self
            .http
            .post(format!("{}/actions/{action}/confirm", at.console))
            .header("origin", &at.console)
            .form(&[("csrf", csrf_on(&page).as_str()), ("confirm", "provider")])
            .send()
            .await
            .expect("confirm");
        (Self::location(&r, &at.console), page)
    }
}

#[tokio::test]
async fn with_passwords_off_a_signed_change_is_confirmed_by_signing_in_again_at_the_provider() {
    let (_dir, d, idp, browser, action, (gateway, gw)) = demo_with_a_held_change().await;
    let at = ProviderAt {
        console: format!("http://{}", d.app.console_addr()),
        issuer: idp.issuer.clone(),
    };
    let held = || async {
        d.app
            .store()
            .held_action(&action)
            .await
            .expect("read")
            .expect("held")
    };
    // The page offers the provider, not a password.
    let (authorize, page) = browser.press_confirm(&at, &action).await;
    assert!(
        page.contains("Confirm by signing in again at Test IdP")
            && !page.contains("type=\"password\""),
        "{page}"
    );
    let query: std::collections::HashMap<String, String> = url::Url::parse(&authorize)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(query.get("prompt").map(String::as_str), Some("login"));
    // A sign-in there ten minutes old confirms nothing.
    let stale = Login {
        age_seconds: 600,
        ..NW_SARAH
    };
    let back = browser.at_provider(&at, &authorize, &stale).await;
    let r = browser.get(&back).await;
    assert_eq!(r.status(), 403);
    let page = r.text().await.expect("page");
    assert!(
        page.contains("The change was not confirmed: you last signed in at the identity provider 10 minutes ago; confirming a signed change needs a sign-in there within the last"),
        "{page}"
    );
    assert!(held().await.confirmed_with.is_none(), "not confirmed");
    // Someone else signing in there confirms nothing either.
    let (authorize, _) = browser.press_confirm(&at, &action).await;
    let other = Login {
        sub: "u-ola",
        email: "ola@northwind.example",
        ..NW_SARAH
    };
    let back = browser.at_provider(&at, &authorize, &other).await;
    assert_eq!(browser.get(&back).await.status(), 403);
    assert!(held().await.confirmed_with.is_none(), "not confirmed");
    // Finished in another browser (without the binding cookie): refused, and recorded as
    // nobody's, since it need not be Sarah's doing.
    let (authorize, _) = browser.press_confirm(&at, &action).await;
    let back = browser.at_provider(&at, &authorize, &NW_SARAH).await;
    let elsewhere = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(&back)
        .send()
        .await
        .expect("callback");
    assert_eq!(elsewhere.status(), 403);
    assert!(held().await.confirmed_with.is_none(), "not confirmed");
    // Signing in again now confirms it, and the browser goes on to the gateway to send it.
    let (authorize, _) = browser.press_confirm(&at, &action).await;
    let back = browser.at_provider(&at, &authorize, &NW_SARAH).await;
    let r = browser.get(&back).await;
    let status = r.status();
    let page = r.text().await.expect("page");
    assert_eq!(status, 200, "{page}");
    let send = page
        .split("url=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the page sends the browser on")
        .replace("&amp;", "&");
    assert!(
        send.starts_with(&format!("{gateway}/__actas/send/{action}?token=")),
        "{send}"
    );
    assert_eq!(
        held().await.confirmed_with.as_deref(),
        Some("a new sign-in at Test IdP")
    );
    let sent = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .get(&send)
        .header("cookie", &gw)
        .send()
        .await
        .expect("send");
    assert_eq!(sent.status(), 303, "the product's answer");
    assert!(held().await.sent_at.is_some(), "sent");
    let events = d
        .app
        .store()
        .events(&EventFilter::default(), 0, 10_000)
        .await
        .expect("events");
    let summaries: Vec<String> = events.iter().map(|e| e.body.summary.clone()).collect();
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("a new sign-in at Test IdP")),
        "{summaries:#?}"
    );
    // Both refusals are on the account's history, next to the held change, in words.
    let refused: Vec<&str> = events
        .iter()
        .filter(|e| e.body.kind() == "session.action_not_confirmed")
        .inspect(|e| assert!(e.body.account.is_some(), "on the account"))
        .map(|e| e.body.summary.as_str())
        .collect();
    assert_eq!(refused.len(), 2, "{summaries:#?}");
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("was refused: the sign-in was finished in a different browser")),
        "{summaries:#?}"
    );
    assert!(
        refused[0].contains("tried to confirm a held change")
            && refused[0].contains("with a new sign-in at Test IdP, but it was not confirmed: you last signed in at the identity provider 10 minutes ago"),
        "{}",
        refused[0]
    );
    assert!(
        refused[1].contains("you confirmed as ola@northwind.example at the identity provider"),
        "{}",
        refused[1]
    );
    d.stop().await.expect("stops");
}
