//! The staff console over real HTTP: pages, forms, escaping, CSRF and the flow up to a
//! started session.

mod common;

use actas_core::scope::Risk;
use actas_core::staff::{DisplayName, Email, Role};
use actas_server::app::{Application, ServeSettings};
use actas_server::password::Password;
use reqwest::StatusCode;
use reqwest::redirect::Policy;

struct T {
    _dir: tempfile::TempDir,
    app: Application,
    base: String,
}

async fn start() -> T {
    let (dir, app) = common::serve().await;
    let s = app.service();
    common::team(s, Risk::Medium).await;
    let base = format!("http://{}", app.console_addr());
    T {
        _dir: dir,
        app,
        base,
    }
}

struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

impl Browser {
    async fn sign_in(t: &T, email: &str) -> Browser {
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .build()
            .expect("client");
        let (token, form_cookie) = common::sign_in_form(&t.base).await;
        let r = http
            .post(format!("{}/sign-in", t.base))
            .header("origin", &t.base)
            .header("cookie", &form_cookie)
            .form(&[
                ("email", email),
                ("password", "a-long-password"),
                ("csrf", token.as_str()),
            ])
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        let cookie = r.headers()["set-cookie"]
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair")
            .to_owned();
        let mut b = Browser {
            http,
            base: t.base.clone(),
            cookie,
            csrf: String::new(),
        };
        let page = b.get("/accounts").await.1;
        b.csrf = page
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("the page carries a CSRF token")
            .to_owned();
        b
    }

    async fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("send");
        (r.status(), r.text().await.expect("text"))
    }

    async fn post(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> (StatusCode, String, Option<String>) {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf)];
        form.extend_from_slice(fields);
        self.post_raw(path, &form, Some(&self.base)).await
    }

    async fn post_raw(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: Option<&str>,
    ) -> (StatusCode, String, Option<String>) {
        let mut rb = self
            .http
            .post(format!("{}{path}", self.base))
            .header("cookie", &self.cookie)
            .form(form);
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        let r = rb.send().await.expect("send");
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().expect("ascii").to_owned());
        (status, r.text().await.expect("text"), location)
    }
}

const REASON: &str = "Check invoice tax rate after plan change";

#[tokio::test]
async fn the_act_as_control_exists_only_for_allow_listed_staff() {
    let t = start().await;
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let ola = Browser::sign_in(&t, "ola@example.com").await;
    let (_, page) = sarah.get("/accounts/acme").await;
    assert!(page.contains("Act as this customer"), "{page}");
    let (_, page) = ola.get("/accounts/acme").await;
    assert!(!page.contains("Act as this customer"));
    assert!(page.contains("You are not on the allow-list"));
    // Posting the form anyway is refused.
    let (s, page, _) = ola
        .post(
            "/accounts/acme/requests",
            &[("ticket", "#4821"), ("reason", REASON)],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("not on the allow-list"));
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn from_request_to_a_started_and_ended_session_in_the_console() {
    let t = start().await;
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let (s, _, to) = sarah
        .post(
            "/accounts/acme/requests",
            &[
                ("ticket", "#4821"),
                ("reason", REASON),
                ("minutes", "15"),
                ("mode", "read-only"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let to = to.expect("redirect");
    let (_, page) = sarah.get(&to).await;
    assert!(page.contains("Start support session"), "{page}");
    let id = to.trim_start_matches("/requests/");
    let (s, _, to) = sarah.post(&format!("/requests/{id}/start"), &[]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, page) = sarah.get(&to.expect("redirect")).await;
    assert!(
        page.contains("Acting as Acme Co")
            && page.contains("End session")
            && page.contains("/__actas/enter?token="),
        "{page}"
    );
    assert!(page.contains("Sarah Lee started a support session on Acme Co for ticket #4821"));
    let session = page
        .split("action=\"/sessions/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("session id")
        .to_owned();
    let (s, _, _) = sarah.post(&format!("/sessions/{session}/end"), &[]).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, page) = sarah.get("/session").await;
    assert!(page.contains("No active session"));
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn errors_are_shown_beside_their_field_and_nothing_is_written() {
    let t = start().await;
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let before = t.app.service().store().ledger_size().await.expect("size");
    let (s, page, _) = sarah
        .post(
            "/accounts/acme/requests",
            &[("ticket", "4821"), ("reason", "need access")],
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Each problem is shown under its own field, and what was typed is kept.
    assert!(page.contains("look like one of this team"), "{page}");
    assert!(page.contains("is too general"), "{page}");
    assert!(page.contains("value=\"4821\""), "typed values are kept");
    let (_, page, _) = sarah
        .post(
            "/accounts/acme/requests",
            &[("ticket", "#4821"), ("reason", "need access")],
        )
        .await;
    assert!(page.contains("is too general"), "{page}");
    assert_eq!(
        t.app.service().store().ledger_size().await.expect("size"),
        before
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn forms_without_the_csrf_token_or_from_another_origin_are_refused() {
    let t = start().await;
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let before = t.app.service().store().ledger_size().await.expect("size");
    let fields = [("ticket", "#4821"), ("reason", REASON)];
    let (s, _, _) = sarah
        .post_raw("/accounts/acme/requests", &fields, Some(&t.base))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "no token");
    let mut with_token: Vec<(&str, &str)> = vec![("csrf", &sarah.csrf)];
    with_token.extend_from_slice(&fields);
    let (s, _, _) = sarah
        .post_raw(
            "/accounts/acme/requests",
            &with_token,
            Some("http://127.0.0.1:8081"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the gateway's origin");
    assert_eq!(
        t.app.service().store().ledger_size().await.expect("size"),
        before
    );
    let (s, _, _) = sarah
        .post_raw("/accounts/acme/requests", &with_token, Some(&t.base))
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_reason_with_a_script_tag_is_shown_as_text_everywhere() {
    let t = start().await;
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let lee = Browser::sign_in(&t, "lee@example.com").await;
    let evil = "Customer pasted <script>alert(1)</script> into the invoice notes";
    let (s, _, to) = sarah
        .post(
            "/accounts/acme/requests",
            &[
                ("ticket", "#4821"),
                ("reason", evil),
                ("capabilities", "edit_settings"),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let to = to.expect("redirect");
    for (who, path) in [
        (&sarah, to.as_str()),
        (&lee, "/queue"),
        (&lee, "/activity"),
        (&lee, "/accounts/acme/audit"),
    ] {
        let (s, page) = who.get(path).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert!(
            !page.contains("<script>alert(1)</script>"),
            "{path} shows the script unescaped"
        );
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
                || page.contains("&#60;script&#62;"),
            "{path}: {page}"
        );
    }
    // The audit pages name the ledger key customers check their extracts against.
    let (_, page) = lee.get("/accounts/acme/audit").await;
    let key_id = t.app.service().ledger_key_id();
    assert!(
        page.contains(&format!("<code>{key_id}</code>")) && page.contains("/verify"),
        "{page}"
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_lead_narrows_or_denies_from_the_queue() {
    let t = start().await;
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let lee = Browser::sign_in(&t, "lee@example.com").await;
    let (_, _, to) = sarah
        .post(
            "/accounts/acme/requests",
            &[
                ("ticket", "#4821"),
                ("reason", REASON),
                ("capabilities", "edit_settings"),
                ("capabilities", "edit_profile"),
            ],
        )
        .await;
    let id = to
        .expect("redirect")
        .trim_start_matches("/requests/")
        .to_owned();
    let (_, queue) = lee.get("/queue").await;
    assert!(queue.contains("Sarah Lee → Acme Co"), "{queue}");
    let (s, _, _) = lee
        .post(
            &format!("/requests/{id}/approve"),
            &[
                ("capabilities", "edit_settings"),
                ("minutes", "10"),
                ("note", ""),
            ],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, page) = sarah.get(&format!("/requests/{id}")).await;
    assert!(
        page.contains("approved")
            && page.contains("Capabilities: edit_settings, view")
            && page.contains("change notification and tax settings")
            && page.contains("10 minutes"),
        "{page}"
    );

    let (_, _, to) = sarah
        .post(
            "/accounts/acme/requests",
            &[
                ("ticket", "#4822"),
                ("reason", REASON),
                ("capabilities", "edit_profile"),
            ],
        )
        .await;
    let id = to
        .expect("redirect")
        .trim_start_matches("/requests/")
        .to_owned();
    let (s, _, _) = lee
        .post(
            &format!("/requests/{id}/deny"),
            &[("note", "Ask for a screenshot first")],
        )
        .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, page) = sarah.get(&format!("/requests/{id}")).await;
    assert!(
        page.contains("denied") && page.contains("Ask for a screenshot first"),
        "{page}"
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn settings_make_api_tokens_once_and_start_two_step_sign_in() {
    let t = start().await;
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let (s, page, _) = sarah
        .post("/settings/tokens", &[("name", "billing script")])
        .await;
    assert_eq!(s, StatusCode::OK);
    let token = page
        .split("<code class=\"wrap\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .expect("token shown")
        .to_owned();
    assert!(token.starts_with("actas_"));
    let (_, again) = sarah.get("/settings").await;
    assert!(!again.contains(&token), "shown once");
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/me", t.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    let (s, page, _) = sarah.post("/settings/tokens", &[("name", " ")]).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("give the token a name"));

    let (_, page, _) = sarah.post("/settings/totp", &[]).await;
    assert!(
        page.contains("otpauth://totp/actas:sarah%40example.com"),
        "{page}"
    );
    let (s, page, _) = sarah
        .post("/settings/totp/confirm", &[("code", "000000")])
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.contains("that code doesn"));
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_past_sessions_timeline_reads_in_plain_language() {
    let t = start().await;
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let lee = Browser::sign_in(&t, "lee@example.com").await;
    let (_, _, to) = sarah
        .post(
            "/accounts/acme/requests",
            &[("ticket", "#4821"), ("reason", REASON)],
        )
        .await;
    let id = to
        .expect("redirect")
        .trim_start_matches("/requests/")
        .to_owned();
    sarah.post(&format!("/requests/{id}/start"), &[]).await;
    let (_, page) = sarah.get("/session").await;
    let session = page
        .split("action=\"/sessions/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("id")
        .to_owned();
    sarah.post(&format!("/sessions/{session}/end"), &[]).await;
    let (s, page) = lee.get(&format!("/sessions/{session}")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        page.contains("Sarah Lee acting as Acme Co") && page.contains("The staff member ended it."),
        "{page}"
    );
    assert!(
        page.contains("Sarah Lee&#39;s session on Acme Co ended: Sarah Lee ended it")
            || page.contains("Sarah Lee's session on Acme Co ended"),
        "{page}"
    );
    let ola = Browser::sign_in(&t, "ola@example.com").await;
    assert_eq!(
        ola.get(&format!("/sessions/{session}")).await.0,
        StatusCode::FORBIDDEN
    );
    t.app.stop().await.expect("stop");
}

#[tokio::test]
async fn over_https_the_cookie_is_host_prefixed_and_secure_and_only_the_public_origin_may_post() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = common::fresh_data(&dir.path().join("data")).await;
    let settings = ServeSettings {
        console_url: Some("https://support.example.com".into()),
        ..ServeSettings::on(([127, 0, 0, 1], 0).into())
    };
    let app = Application::build(&data, settings).await.expect("start");
    app.service()
        .add_staff(
            Email::parse("sarah@example.com").expect("e"),
            DisplayName::parse("Sarah Lee").expect("n"),
            Role::Agent,
            Password::new("a-long-password".into()).expect("p"),
            None,
        )
        .await
        .expect("staff");
    let base = format!("http://{}", app.console_addr());
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let (token, form_cookie) = common::sign_in_form(&base).await;
    let form = [
        ("email", "sarah@example.com"),
        ("password", "a-long-password"),
        ("csrf", token.as_str()),
    ];
    let r = http
        .post(format!("{base}/sign-in"))
        .header("origin", &base)
        .header("cookie", &form_cookie)
        .form(&form)
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "the bare address is not the console's public origin"
    );
    let r = http
        .post(format!("{base}/sign-in"))
        .header("origin", "https://support.example.com")
        .header("cookie", &form_cookie)
        .form(&form)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(cookie.starts_with("__Host-actas_console="), "{cookie}");
    for attr in ["Path=/", "HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    app.stop().await.expect("stop");
}

#[tokio::test]
async fn a_helpdesk_link_opens_the_request_form_with_the_ticket_after_signing_in() {
    let t = start().await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let link = "/start?account=acme&ticket=%235100&reason=Invoice+missing";
    // Not signed in: to the sign-in page, which remembers where to go back to.
    let r = http
        .get(format!("{}{link}", t.base))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let to = r.headers()["location"].to_str().expect("ascii").to_owned();
    assert!(
        to.starts_with("/sign-in?next=%2Fstart%3Faccount%3Dacme"),
        "{to}"
    );
    let page = http
        .get(format!("{}{to}", t.base))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    assert!(
        page.contains("name=\"next\" value=\"/start?account=acme&#38;ticket=%235100"),
        "{page}"
    );
    // Signing in with it goes back to the link, and only ever to this console.
    for (next, expected) in [
        (link, link),
        ("//evil.example/start", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
    ] {
        let (token, form_cookie) = common::sign_in_form(&t.base).await;
        let r = http
            .post(format!("{}/sign-in", t.base))
            .header("origin", &t.base)
            .header("cookie", &form_cookie)
            .form(&[
                ("email", "sarah@example.com"),
                ("password", "a-long-password"),
                ("next", next),
                ("csrf", token.as_str()),
            ])
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], expected, "next={next}");
    }
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let (s, page) = sarah.get(link).await;
    assert_eq!(s, StatusCode::OK);
    assert!(page.contains("name=\"ticket\" value=\"#5100\""), "{page}");
    assert!(page.contains(">Invoice missing</textarea>"), "{page}");
    // A link to an account that isn't there says so, with a way back.
    let (s, page) = sarah.get("/start?account=nobody&ticket=1").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(page.contains("href=\"/\""), "{page}");
}

#[tokio::test]
async fn each_decision_is_confirmed_on_the_page_it_leads_to() {
    let t = start().await;
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let lee = Browser::sign_in(&t, "lee@example.com").await;
    let (_, _, to) = sarah
        .post(
            "/accounts/acme/requests",
            &[
                ("ticket", "#4821"),
                ("reason", REASON),
                ("capabilities", "edit_settings"),
                ("minutes", "10"),
                ("mode", "live"),
            ],
        )
        .await;
    let id = to
        .expect("redirect")
        .trim_start_matches("/requests/")
        .to_owned();
    let (_, _, to) = lee
        .post(
            &format!("/requests/{id}/approve"),
            &[("capabilities", "edit_settings")],
        )
        .await;
    let to = to.expect("redirect");
    assert_eq!(to, "/queue?done=approved");
    let (_, page) = lee.get(&to).await;
    assert!(
        page.contains("Approved. The requester has been told"),
        "{page}"
    );
    // Words in the address that aren't a known confirmation show nothing.
    let (_, page) = lee.get("/queue?done=%3Cscript%3E").await;
    assert!(!page.contains("class=\"flash\""), "{page}");
    let (_, _, to) = sarah.post(&format!("/requests/{id}/start"), &[]).await;
    let (_, page) = sarah.get(&to.expect("redirect")).await;
    let session = page
        .split("action=\"/sessions/")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the end form")
        .to_owned();
    let (_, _, to) = sarah.post(&format!("/sessions/{session}/end"), &[]).await;
    let (_, page) = sarah.get(&to.expect("redirect")).await;
    assert!(page.contains("The session has ended."), "{page}");
    assert!(
        page.contains(&format!("href=\"/sessions/{session}\"")),
        "{page}"
    );
}

#[tokio::test]
async fn the_activity_log_pages_newest_first_keeps_its_filters_and_downloads_safe_csv() {
    let t = start().await;
    let s = t.app.service();
    // A product that names an account like a formula, and enough events for two pages.
    s.put_account(
        "evil",
        "=HYPERLINK(\"http://x.example\",\"hi\")",
        &[],
        actas_core::event::Actor::System,
    )
    .await
    .expect("account");
    for i in 0..110 {
        s.put_account(
            &format!("c{i}"),
            &format!("Customer {i}"),
            &[],
            actas_core::event::Actor::System,
        )
        .await
        .expect("account");
    }
    let lee = Browser::sign_in(&t, "lee@example.com").await;
    let (_, page) = lee.get("/activity?kind=account.updated").await;
    let first = page.find("Customer 109").expect("the newest first");
    let later = page.find("Customer 100").expect("an older one");
    assert!(first < later, "newest first");
    assert!(!page.contains("Customer 5<"), "only a page of them");
    let older = page
        .split("id=\"older\" href=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a link to older events")
        .replace("&#38;", "&")
        .replace("&amp;", "&");
    assert!(
        older.contains("kind=account.updated") && older.contains("before="),
        "{older}"
    );
    let (_, page) = lee.get(&older).await;
    assert!(
        page.contains("Customer 5 ") && !page.contains("Customer 109 "),
        "{page}"
    );
    assert!(page.contains("No older events."), "{page}");

    // The CSV holds every match, and a formula stays text.
    let r = lee
        .http
        .get(format!("{}/activity.csv?kind=account.updated", t.base))
        .header("cookie", &lee.cookie)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .expect("ascii")
            .contains("attachment")
    );
    let csv = r.text().await.expect("csv");
    assert_eq!(
        csv.lines().count(),
        1 + 112,
        "a header and every account.updated event (acme too)"
    );
    assert!(!csv.contains(",\"=HYPERLINK"), "{csv}");
    assert!(csv.contains("actas added the account Customer 0 "), "{csv}");
    let evil = csv
        .lines()
        .find(|l| l.contains("HYPERLINK"))
        .expect("the row");
    assert!(!evil.split(',').any(|c| c.starts_with("\"=")), "{evil}");
    // Agents get neither.
    let sarah = Browser::sign_in(&t, "sarah@example.com").await;
    let (s, _) = sarah.get("/activity.csv").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_sign_in_form_posted_without_its_own_token_is_refused() {
    let t = start().await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .expect("client");
    let post = |token: Option<String>, cookie: Option<String>| {
        let mut form = vec![
            ("email", "sarah@example.com".to_owned()),
            ("password", "a-long-password".to_owned()),
        ];
        if let Some(t) = token {
            form.push(("csrf", t));
        }
        let mut r = http
            .post(format!("{}/sign-in", t.base))
            .header("origin", &t.base)
            .form(&form);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        r.send()
    };
    let (mine, my_cookie) = common::sign_in_form(&t.base).await;
    let (theirs, their_cookie) = common::sign_in_form(&t.base).await;
    // A page elsewhere that posts the form (login CSRF) has neither this browser's
    // cookie nor its token; one that brings its own token lacks the cookie, and the
    // other way round.
    for (token, cookie) in [
        (None, None),
        (Some(theirs.clone()), None),
        (None, Some(my_cookie.clone())),
        (Some(theirs), Some(my_cookie.clone())),
        (
            Some(String::new()),
            Some(format!("{}=", my_cookie.split('=').next().expect("name"))),
        ),
    ] {
        let r = post(token.clone(), cookie.clone()).await.expect("post");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{token:?} {cookie:?}");
        let page = r.text().await.expect("page");
        assert!(page.contains("This sign-in form had expired"), "{page}");
    }
    // A second tab in the same browser gets the same token, so either tab signs in.
    let again = http
        .get(format!("{}/sign-in", t.base))
        .header("cookie", &my_cookie)
        .send()
        .await
        .expect("page")
        .text()
        .await
        .expect("page");
    assert_eq!(common::csrf_on(&again), mine, "the same form token");
    let r = post(Some(mine), Some(my_cookie)).await.expect("post");
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "its own token signs in");
    let _ = their_cookie;
    t.app.stop().await.expect("stop");
}
